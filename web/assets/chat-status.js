// The status panel above the chat: the agent's start stages as they happen, reconnects,
// offline, and errors, hidden once the agent is ready. A failed agent (a crash loop) shows its
// reason and a Restart button, and so does an agent the user stopped.
import { h } from '/assets/api.js';
import { api } from '/assets/api.js';
import { durationWords, stageDetailIsPlain, stageLabel } from '/assets/chat-format.js';
import { plainError } from '/assets/errors.js';

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
  // The start in progress: when it began (this browser's clock, ms) and how long starts on this
  // server usually take (s, from its last starts), both from GET /api/machine.
  let startedAt = null;
  let usualSecs = null;
  let machineStatus = null; // the stage the server reported before the socket said anything
  let ticker = 0;
  const elapsedEl = h('div', { class: 'status-elapsed', 'data-testid': 'status-elapsed', 'aria-live': 'off' });
  statusDetail.after(elapsedEl);

  const STARTING = new Set(['provisioning', 'starting']);
  async function askServer() {
    let m;
    try {
      m = await api('GET', '/api/machine');
    } catch {
      return; // the socket's own stages still show
    }
    usualSecs = m.starts && Number.isInteger(m.starts.usual_secs) ? m.starts.usual_secs : null;
    const first = Array.isArray(m.history) ? m.history[0] : null;
    if (STARTING.has(m.state) && first && STARTING.has(first.state) && Number.isInteger(m.now)) {
      startedAt = Date.now() - Math.max(0, m.now - first.at) * 1000;
      if (!socket.lastStatus && !socket.ready) machineStatus = { state: m.state, stage: m.stage, detail: m.detail };
    }
    render();
  }

  function renderElapsed(show) {
    if (!show || startedAt === null) {
      elapsedEl.hidden = true;
      clearInterval(ticker);
      ticker = 0;
      return;
    }
    const secs = (Date.now() - startedAt) / 1000;
    const usual = usualSecs !== null ? ` (usually about ${durationWords(Math.max(1, usualSecs))})` : '';
    elapsedEl.textContent = `${durationWords(secs)} so far${usual}`;
    elapsedEl.hidden = false;
    if (!ticker) ticker = setInterval(() => renderElapsed(true), 1000);
  }

  function render() {
    const err = socket.lastError;
    let kind = 'info';
    let title = '';
    let detail = '';
    let showStages = false;
    let starting = false;
    const failedStatus = socket.lastStatus && socket.lastStatus.stage === 'failed';
    const failed = failedStatus || (err && err.code === 'agent_failed');
    if (failed) {
      kind = 'error';
      title = 'Your agent was stopped';
      detail = failedStatus ? socket.lastStatus.detail || '' : plainError(err);
    } else if (socket.parked) {
      kind = 'warn';
      title = 'Your agent is stopped';
      detail = 'You stopped it. Restart it to chat again.';
    } else if (err) {
      kind = 'error';
      title = plainError(err, 'Something went wrong with your agent.');
      detail = 'Roost keeps trying; reload the page if this stays.';
    } else if (socket.ready) {
      statusEl.hidden = true;
      statusEl.dataset.state = 'ready';
      renderElapsed(false);
      return;
    } else if (socket.state === 'offline') {
      kind = 'warn';
      title = 'You are offline';
      detail = 'Roost will reconnect automatically when your network is back.';
    } else if (socket.state === 'reconnecting' && !socket.lastStatus) {
      kind = 'warn';
      title = 'Reconnecting to your agent…';
      detail = 'The connection dropped. Roost reconnects by itself; you can keep typing.';
    } else if (socket.lastStatus || machineStatus) {
      const st = socket.lastStatus || machineStatus;
      const stage = st.stage || st.state;
      title = `${stageLabel(stage)}…`;
      // Only a detail written for people (the place in line); the rest reads like a log.
      detail = stageDetailIsPlain(stage) && st.detail ? st.detail.charAt(0).toUpperCase() + st.detail.slice(1) : '';
      showStages = stages.length > 1;
      starting = true;
    } else {
      title = 'Connecting to your agent…';
      detail = 'Opening a connection to Roost.';
    }
    statusEl.hidden = false;
    statusEl.dataset.kind = kind;
    const shown = socket.lastStatus || machineStatus;
    statusEl.dataset.state = shown ? (shown.stage || shown.state || '') : socket.state;
    renderElapsed(starting);
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
    machineStatus = null;
    if (startedAt === null && key !== 'ready') {
      startedAt = Date.now();
      askServer(); // when this start began (it may predate the page) and the usual time
    }
    const last = stages[stages.length - 1];
    if (last && last.stage === key) last.detail = st.detail;
    else stages.push({ stage: key, detail: st.detail });
    render();
  });
  socket.addEventListener('ready', () => {
    stages = [];
    startedAt = null;
    machineStatus = null;
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
  askServer();
}
