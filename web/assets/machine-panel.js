// The agent's state badge in the app frame, and the panel it opens: state, since when and why,
// memory, idle policy, last use, history, Stop and Restart.
//
// The chat socket knows the state first (its roost.status frames and roost.ready), so it wins
// while it knows; GET /api/machine fills in the rest, and the state when the socket has nothing
// to say (before it connects, after a failure). Its row is written a moment after each stage,
// so it may lag the socket, never lead it.
import { api, h, formatTime } from '/assets/api.js';
import {
  activityText, eventTime, formatMemory, idlePolicyText, machineKind, machineLabel,
} from '/assets/machine-format.js';

/** While the panel is open it refreshes this often (memory, last use, new history). */
const OPEN_REFRESH_MS = 3000;
/** Socket events come in bursts (one per stage): one refresh per burst. */
const EVENT_REFRESH_MS = 250;

export function initMachinePanel({ socket, root }) {
  const $ = (sel) => root.querySelector(sel);
  const badge = $('#machine-badge');
  const badgeLabel = $('#machine-label');
  const panel = $('#machine-panel');
  const field = (name) => panel.querySelector(`[data-testid="machine-${name}"]`);
  const stopBtn = field('stop');
  const restartBtn = field('restart');
  const errorEl = field('error');
  const historyEl = field('history');
  const historyEmpty = field('history-empty');

  let machine = null; // the last GET /api/machine answer
  let openTimer = null;
  let eventTimer = null;
  let busy = false;

  /** What the agent is doing now: {state, stage, detail}, or null while nobody knows yet. */
  function current() {
    if (socket.parked) return { state: 'idle_stopped', stage: 'stopped', detail: 'stopped by you' };
    if (socket.ready) return { state: 'ready', stage: 'ready', detail: '' };
    const err = socket.lastError;
    if (err && err.code === 'agent_failed') {
      // The API's reason is the plain one ("your agent crashed…"), without the advice.
      const reason = machine && machine.state === 'failed' ? machine.detail : null;
      return { state: 'failed', stage: 'failed', detail: reason || err.message };
    }
    if (socket.lastStatus) return socket.lastStatus;
    return machine;
  }

  function renderBadge() {
    const now = current();
    const label = machineLabel(now);
    badgeLabel.textContent = label;
    badge.dataset.state = now ? now.state : 'unknown';
    badge.dataset.kind = machineKind(now);
    badge.setAttribute('aria-label', `Your agent: ${label}. Show details`);
  }

  function renderPanel() {
    const now = current();
    field('state').textContent = machineLabel(now);
    field('since').textContent = machine && machine.since ? formatTime(machine.since) : '—';
    const reason = (now && now.detail) || (machine && machine.detail) || '';
    field('reason').textContent = reason || '—';
    const memory = machine ? formatMemory(machine.memory_bytes) : null;
    field('memory').textContent = memory || (now && now.state === 'ready' ? 'not measured yet' : 'not running');
    field('idle').textContent = machine ? idlePolicyText(machine.idle_policy) : '—';
    field('activity').textContent = machine ? activityText(machine) : '—';
    const events = (machine && Array.isArray(machine.history)) ? machine.history : [];
    historyEl.replaceChildren(...events.map((e) => h('li', { 'data-testid': 'machine-event', 'data-state': e.state },
      h('time', { datetime: new Date(e.at * 1000).toISOString() }, eventTime(e.at)),
      ` — ${e.reason || e.stage}`)));
    historyEl.hidden = events.length === 0;
    historyEmpty.hidden = events.length > 0;
    stopBtn.disabled = busy || !now || now.state === 'idle_stopped';
    restartBtn.disabled = busy;
  }

  function render() {
    renderBadge();
    if (panel.open) renderPanel();
  }

  async function refresh() {
    try {
      machine = await api('GET', '/api/machine', undefined, { redirectOn401: true });
    } catch {
      // The badge keeps what it knew; the next refresh tries again.
      return;
    }
    render();
  }

  function refreshSoon() {
    clearTimeout(eventTimer);
    eventTimer = setTimeout(refresh, EVENT_REFRESH_MS);
  }

  function showError(message) {
    errorEl.textContent = message || '';
    errorEl.hidden = !message;
  }

  async function act(action) {
    if (busy) return;
    busy = true;
    showError('');
    render();
    try {
      await action();
    } catch (e) {
      showError(e.message);
    } finally {
      busy = false;
      render();
      refresh();
    }
  }

  stopBtn.addEventListener('click', () => act(async () => {
    // First, so the socket the stop closes does not reconnect and start the agent again.
    socket.park();
    try {
      await api('POST', '/api/machine/stop');
    } catch (e) {
      socket.unpark();
      throw e;
    }
  }));
  restartBtn.addEventListener('click', () => act(() => socket.restartAgent()));

  function open() {
    showError('');
    renderPanel();
    panel.showModal();
    refresh();
    clearInterval(openTimer);
    openTimer = setInterval(refresh, OPEN_REFRESH_MS);
  }
  badge.addEventListener('click', open);
  // Escape closes a modal dialog by itself; a click on the backdrop (the dialog's own box
  // outside its content) closes it too.
  panel.addEventListener('click', (ev) => {
    if (ev.target === panel) panel.close();
  });
  field('close').addEventListener('click', () => panel.close());
  panel.addEventListener('close', () => {
    clearInterval(openTimer);
    openTimer = null;
    badge.focus();
  });

  for (const type of ['status', 'ready', 'state', 'roost-error']) {
    socket.addEventListener(type, () => {
      render();
      refreshSoon();
    });
  }
  render();
  refresh();
}
