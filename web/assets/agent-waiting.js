// The page /agent/ shows while the user's agent wakes: the start's stages from the chat socket
// (which is also what starts the agent), then the console itself once the agent is ready.
import { stageLabel } from '/assets/chat-format.js';

const stageEl = document.querySelector('[data-testid="agent-waiting-stage"]');
const listEl = document.querySelector('[data-testid="agent-waiting-stages"]');
const seen = [];

function show(status) {
  const stage = status.stage || status.state || 'starting';
  if (seen[seen.length - 1] !== stage) {
    seen.push(stage);
    const li = document.createElement('li');
    li.dataset.stage = stage;
    li.textContent = stageLabel(stage);
    listEl.append(li);
  }
  stageEl.textContent = `${stageLabel(stage)}…`;
}

function connect(delay) {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  ws.addEventListener('message', (e) => {
    let frame;
    try {
      frame = JSON.parse(e.data);
    } catch {
      return;
    }
    if (frame.event === 'roost.status') show(frame.payload || {});
    if (frame.event === 'roost.ready') {
      ws.close();
      location.reload();
    }
    if (frame.event === 'roost.error') stageEl.textContent = frame.payload?.message || 'Your agent could not be started.';
  });
  ws.addEventListener('close', (e) => {
    if (e.code === 4401 || e.code === 1008) location.replace('/login');
    else if (e.code !== 1000) setTimeout(() => connect(Math.min(delay * 2, 10000)), delay);
  });
}

connect(1000);
