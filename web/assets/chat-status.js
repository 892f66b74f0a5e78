// The status panel above the chat: the agent's start stages as they happen, reconnects,
// offline, and errors, hidden once the agent is ready. A failed agent (a crash loop) shows its
// reason and a Restart button, and so does an agent the user stopped.
import { h } from '/assets/api.js';
import { stageLabel } from '/assets/chat-format.js';

export function createStatusPanel(socket, root) {
  const $ = (sel) => root.querySelector(sel);
  const statusEl = $('#status');
  const statusTitle = $('#status-title');
  const statusDetail = $('#status-detail');
  const statusStages = $('#status-stages');
  const statusDismiss = $('#status-dismiss');
  const statusRestart = $('#status-restart');
  let stages = []; // [{stage, detail}] seen since last ready
  let lastClose = null;

  function render() {
    const err = socket.lastError;
    let kind = 'info';
    let title = '';
    let detail = '';
    let showStages = false;
    const failedStatus = socket.lastStatus && socket.lastStatus.stage === 'failed';
    const failed = failedStatus || (err && err.code === 'agent_failed');
    if (failed) {
      kind = 'error';
      title = 'Your agent was stopped';
      detail = failedStatus ? socket.lastStatus.detail || '' : err.message;
    } else if (socket.parked) {
      kind = 'warn';
      title = 'Your agent is stopped';
      detail = 'You stopped it. Restart it to chat again.';
    } else if (err) {
      kind = 'error';
      title = err.message || 'Something went wrong with your agent.';
      detail = err.code ? `Error code: ${err.code}` : '';
    } else if (socket.ready) {
      statusEl.hidden = true;
      statusEl.dataset.state = 'ready';
      return;
    } else if (socket.state === 'offline') {
      kind = 'warn';
      title = 'You are offline';
      detail = 'Roost will reconnect automatically when your network is back.';
    } else if (socket.state === 'reconnecting' && !socket.lastStatus) {
      kind = 'warn';
      title = 'Reconnecting to your agent…';
      detail = lastClose && lastClose.reason ? `Connection closed: ${lastClose.reason}` : 'The connection dropped. Retrying automatically.';
    } else if (socket.lastStatus) {
      const st = socket.lastStatus;
      title = stageLabel(st.stage || st.state);
      detail = st.detail || '';
      showStages = stages.length > 1;
    } else {
      title = 'Connecting to your agent…';
      detail = 'Opening a connection to Roost.';
    }
    statusEl.hidden = false;
    statusEl.dataset.kind = kind;
    statusEl.dataset.state = socket.lastStatus ? (socket.lastStatus.stage || socket.lastStatus.state || '') : socket.state;
    statusTitle.textContent = title;
    statusDetail.textContent = detail;
    statusDetail.hidden = !detail;
    statusStages.hidden = !showStages;
    statusDismiss.hidden = !(err && socket.ready);
    statusRestart.hidden = !(failed || socket.parked);
    if (showStages) {
      statusStages.replaceChildren(
        ...stages.map((s, i) => h('li', { class: i === stages.length - 1 ? 'current' : 'done', 'data-stage': s.stage }, stageLabel(s.stage))),
      );
    }
  }

  socket.addEventListener('status', (ev) => {
    const st = ev.detail || {};
    const key = st.stage || st.state || 'unknown';
    const last = stages[stages.length - 1];
    if (last && last.stage === key) last.detail = st.detail;
    else stages.push({ stage: key, detail: st.detail });
    render();
  });
  socket.addEventListener('ready', () => {
    stages = [];
    lastClose = null;
    render();
  });
  socket.addEventListener('closed', (ev) => {
    lastClose = ev.detail;
    stages = [];
    render();
  });
  socket.addEventListener('state', render);
  socket.addEventListener('roost-error', render);
  statusRestart.addEventListener('click', async () => {
    statusRestart.disabled = true;
    try {
      await socket.restartAgent();
    } catch (e) {
      socket.lastError = { code: e.code || 'error', message: e.message };
      render();
    } finally {
      statusRestart.disabled = false;
    }
  });
  statusDismiss.addEventListener('click', () => {
    socket.lastError = null;
    render();
  });

  render();
}
