// Chat view: session sidebar, message list, composer, streaming over the socket.
import { api, h, formatRelative, formatTime, uuid } from '/assets/api.js';
import { renderMarkdown } from '/assets/markdown.js';

const STORAGE_KEY = 'roost.currentSession';
const HISTORY_LIMIT = 100;

const STAGE_LABELS = {
  provisioning: 'Setting up your agent',
  installing_runtime: 'Installing the agent runtime',
  starting: 'Starting your agent',
  waiting_ready: 'Waiting for your agent to come online',
  connecting: 'Connecting to your agent',
  resuming: 'Waking your agent',
  waking: 'Waking your agent',
};

function stageLabel(stage) {
  if (!stage) return 'Connecting to your agent';
  if (STAGE_LABELS[stage]) return STAGE_LABELS[stage];
  const s = String(stage).replace(/[_.-]+/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** OpenClaw canonicalizes "K" to "agent:main:K"; compare both forms. */
function canonicalKey(key) {
  return String(key ?? '').replace(/^agent:[^:]+:/, '');
}
function sameSession(a, b) {
  return a != null && b != null && (a === b || canonicalKey(a) === canonicalKey(b));
}

/** Text of an OpenClaw message ({content:[{type:"text",text}]} or a string). */
function messageText(message) {
  if (!message) return null;
  if (typeof message === 'string') return message;
  const c = message.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) {
    return c
      .filter((p) => p && (p.type === 'text' || p.type === undefined) && typeof p.text === 'string')
      .map((p) => p.text)
      .join('');
  }
  if (typeof message.text === 'string') return message.text;
  return null;
}

export function initChat({ socket, root }) {
  const $ = (sel) => root.querySelector(sel);
  const listEl = $('#session-list');
  const sessionsEmpty = $('#sessions-empty');
  const sessionsError = $('#sessions-error');
  const titleEl = $('#chat-title');
  const statusEl = $('#status');
  const statusTitle = $('#status-title');
  const statusDetail = $('#status-detail');
  const statusStages = $('#status-stages');
  const statusDismiss = $('#status-dismiss');
  const scroller = $('#messages');
  const msgsEl = $('#messages-inner');
  const form = $('#composer-form');
  const composer = $('#composer');
  const sendBtn = $('#send');
  const stopBtn = $('#stop');
  const hintEl = $('#composer-hint');
  const defaultHint = hintEl.textContent;

  let sessions = [];
  let currentKey = null;
  let loadedOnce = false;
  let visible = false;
  let historySeq = 0;
  let staleRefetch = false; // history was stale: refetch on roost.ready
  let refetchOnReady = false; // something was lost while disconnected
  let deferredRefetch = false; // refetch once the current reply finishes
  let stages = []; // [{stage, detail}] seen since last ready
  let lastClose = null;

  // canonical session key -> {runId|null, bubble, abortRequested, sessionKey}
  const active = new Map();

  // ---------- helpers ----------
  function currentRun() {
    return currentKey ? active.get(canonicalKey(currentKey)) : undefined;
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  }
  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
  }
  function withScroll(fn, force = false) {
    const stick = force || nearBottom();
    fn();
    if (stick) scrollToBottom();
  }

  function showSessionsError(message) {
    sessionsError.textContent = message || '';
    sessionsError.hidden = !message;
  }

  // ---------- messages ----------
  function clearEmptyState() {
    msgsEl.querySelector('.messages-empty')?.remove();
  }

  function renderEmptyState() {
    if (msgsEl.querySelector('[data-testid="msg"]') || msgsEl.querySelector('.messages-empty')) return;
    msgsEl.append(
      h('div', { class: 'messages-empty' },
        h('h3', {}, 'Start a conversation'),
        h('p', { class: 'muted' }, 'Ask your agent anything. Replies stream in as they are written.')),
    );
  }

  function userMessage(text, ts) {
    return h('div', { class: 'msg msg-user', 'data-testid': 'msg', 'data-role': 'user', title: ts ? formatTime(ts) : null },
      h('div', { class: 'msg-body' }, text));
  }

  function assistantMessage(text, ts) {
    const body = h('div', { class: 'msg-body markdown' });
    const el = h('div', { class: 'msg msg-assistant', 'data-testid': 'msg', 'data-role': 'assistant', title: ts ? formatTime(ts) : null },
      body);
    const bubble = { el, body, text: '', raf: 0, note: null };
    if (text !== undefined) setBubbleText(bubble, text, true);
    return bubble;
  }

  function pendingBubble() {
    const b = assistantMessage();
    b.el.classList.add('pending');
    b.el.dataset.state = 'pending';
    b.body.append(h('span', { class: 'typing', 'aria-label': 'Agent is replying' }, h('i'), h('i'), h('i')));
    return b;
  }

  function setBubbleText(b, text, final) {
    b.text = text ?? '';
    if (final) {
      cancelAnimationFrame(b.raf);
      b.raf = 0;
      b.el.classList.remove('pending');
      b.el.dataset.state = 'done';
      withScroll(() => renderMarkdown(b.body, b.text, { highlight: true }));
      return;
    }
    b.el.classList.remove('pending');
    b.el.dataset.state = 'streaming';
    if (b.raf) return;
    b.raf = requestAnimationFrame(() => {
      b.raf = 0;
      withScroll(() => renderMarkdown(b.body, b.text, { highlight: false }));
    });
  }

  function bubbleNote(b, text, kind = 'muted') {
    b.note?.remove();
    b.note = h('div', { class: `msg-note ${kind}`, 'data-testid': kind === 'error' ? 'msg-error' : 'msg-note' }, text);
    withScroll(() => b.el.append(b.note));
  }

  function systemNote(text, kind = 'error', extra = null) {
    clearEmptyState();
    const el = h('div', { class: `system-note ${kind}`, 'data-testid': kind === 'error' ? 'chat-error' : 'chat-note', role: kind === 'error' ? 'alert' : null },
      h('span', {}, text), extra);
    withScroll(() => msgsEl.append(el), true);
    return el;
  }

  function appendMessageEl(el, force = false) {
    clearEmptyState();
    withScroll(() => msgsEl.append(el), force);
  }

  // ---------- history ----------
  async function loadHistory({ quiet = false } = {}) {
    if (!currentKey) return;
    const key = currentKey;
    const seq = ++historySeq;
    if (!quiet) {
      msgsEl.replaceChildren(h('div', { class: 'messages-loading muted', 'data-testid': 'history-loading' }, 'Loading messages…'));
    }
    let data;
    try {
      data = await api('GET', `/api/sessions/${encodeURIComponent(key)}/history?limit=${HISTORY_LIMIT}`, undefined, { redirectOn401: true });
    } catch (err) {
      if (seq !== historySeq) return;
      if (!quiet) msgsEl.replaceChildren();
      const retry = h('button', { type: 'button', class: 'btn btn-small', onclick: () => loadHistory() }, 'Retry');
      systemNote(`Couldn't load messages: ${err.message}`, 'error', retry);
      return;
    }
    if (seq !== historySeq || key !== currentKey) return;

    const run = currentRun();
    const nodes = [];
    if (data.stale && (data.messages || []).length) {
      nodes.push(h('div', { class: 'system-note info', 'data-testid': 'stale-note' },
        'Showing saved messages. They will refresh when your agent is connected.'));
    }
    for (const m of data.messages || []) {
      if (m.role === 'user') nodes.push(userMessage(m.text ?? '', m.ts));
      else if (m.role === 'assistant') nodes.push(assistantMessage(m.text ?? '', m.ts).el);
    }
    // Keep a reply that is still streaming at the end of the list.
    if (run && run.bubble) {
      if (run.userEl && !data.messages?.some((m) => m.role === 'user' && m.text === run.userText)) nodes.push(run.userEl);
      nodes.push(run.bubble.el);
    }
    msgsEl.replaceChildren(...nodes);
    if (!nodes.some((n) => n.dataset && n.dataset.testid === 'msg')) renderEmptyState();
    scrollToBottom();

    if (data.stale) {
      // The agent is waking: refetch once the socket says roost.ready.
      if (socket.ready && !staleRefetch) {
        staleRefetch = true;
        queueMicrotask(() => loadHistory({ quiet: true }));
      } else {
        staleRefetch = true;
      }
    } else {
      staleRefetch = false;
    }
  }

  function refetchHistory() {
    if (currentRun()) deferredRefetch = true;
    else loadHistory({ quiet: true });
  }

  // ---------- sessions ----------
  function sortSessions() {
    sessions.sort((a, b) => (b.updated_at || 0) - (a.updated_at || 0));
  }

  function sessionTitle(s) {
    return (s && s.title && String(s.title).trim()) || 'New chat';
  }

  function renderSessions() {
    sortSessions();
    listEl.replaceChildren(
      ...sessions.map((s) => {
        const isActive = s.key === currentKey;
        const li = h('li', {
          class: `session${isActive ? ' active' : ''}`,
          'data-testid': 'session',
          'data-key': s.key,
          'data-active': isActive ? 'true' : 'false',
        });
        const open = h('button', { type: 'button', class: 'session-open', 'data-testid': 'session-open', title: sessionTitle(s), 'aria-current': isActive ? 'true' : null },
          h('span', { class: 'session-title' }, sessionTitle(s)),
          h('span', { class: 'session-time' }, formatRelative(s.updated_at)));
        open.addEventListener('click', () => selectSession(s.key));
        const rename = h('button', { type: 'button', class: 'icon-btn', 'data-testid': 'session-rename', title: 'Rename', 'aria-label': `Rename ${sessionTitle(s)}` }, '✎');
        rename.addEventListener('click', () => startRename(li, s));
        const del = h('button', { type: 'button', class: 'icon-btn danger', 'data-testid': 'session-delete', title: 'Delete', 'aria-label': `Delete ${sessionTitle(s)}` }, '×');
        del.addEventListener('click', () => deleteSession(s));
        li.append(open, h('span', { class: 'session-actions' }, rename, del));
        return li;
      }),
    );
    sessionsEmpty.hidden = sessions.length > 0;
    const cur = sessions.find((s) => s.key === currentKey);
    titleEl.textContent = cur ? sessionTitle(cur) : 'Chat';
  }

  async function fetchSessions() {
    const data = await api('GET', '/api/sessions', undefined, { redirectOn401: true });
    sessions = Array.isArray(data && data.sessions) ? data.sessions : [];
  }

  async function loadSessions() {
    showSessionsError('');
    try {
      await fetchSessions();
      if (sessions.length === 0) {
        const s = await api('POST', '/api/sessions', {}, { redirectOn401: true });
        sessions = [s];
      }
    } catch (err) {
      showSessionsError(`Couldn't load chats: ${err.message}`);
      msgsEl.replaceChildren();
      const retry = h('button', { type: 'button', class: 'btn btn-small', onclick: () => loadSessions() }, 'Retry');
      systemNote(`Couldn't load your chats: ${err.message}`, 'error', retry);
      return;
    }
    sortSessions();
    let saved = null;
    try {
      saved = localStorage.getItem(STORAGE_KEY);
    } catch {
      /* storage disabled */
    }
    const pick = sessions.find((s) => s.key === saved) || sessions[0];
    selectSession(pick.key, { force: true });
  }

  async function refreshSessionsQuietly() {
    try {
      await fetchSessions();
      renderSessions();
    } catch {
      /* keep the list we have */
    }
  }

  function selectSession(key, { force = false } = {}) {
    closeDrawer();
    if (key === currentKey && !force) return;
    currentKey = key;
    try {
      localStorage.setItem(STORAGE_KEY, key);
    } catch {
      /* ignore */
    }
    staleRefetch = false;
    deferredRefetch = false;
    renderSessions();
    updateComposer();
    loadHistory();
    if (visible && window.matchMedia('(min-width: 900px)').matches) composer.focus();
  }

  async function createSession() {
    showSessionsError('');
    try {
      const s = await api('POST', '/api/sessions', {}, { redirectOn401: true });
      sessions.unshift(s);
      selectSession(s.key);
      composer.focus();
    } catch (err) {
      showSessionsError(err.message);
    }
  }

  function startRename(li, s) {
    const input = h('input', { class: 'session-rename-input', 'data-testid': 'session-rename-input', value: s.title || '', maxlength: 200, 'aria-label': 'Chat name' });
    const open = li.querySelector('.session-open');
    open.hidden = true;
    li.querySelector('.session-actions').hidden = true;
    li.prepend(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (!save || !title || title === s.title) {
        renderSessions();
        return;
      }
      try {
        const updated = await api('PATCH', `/api/sessions/${encodeURIComponent(s.key)}`, { title }, { redirectOn401: true });
        Object.assign(s, updated && updated.key ? updated : { title });
        showSessionsError('');
      } catch (err) {
        showSessionsError(`Couldn't rename: ${err.message}`);
      }
      renderSessions();
    };
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        finish(true);
      } else if (ev.key === 'Escape') {
        ev.preventDefault();
        ev.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener('blur', () => finish(true));
  }

  async function deleteSession(s) {
    if (!window.confirm(`Delete "${sessionTitle(s)}"? This cannot be undone.`)) return;
    try {
      await api('DELETE', `/api/sessions/${encodeURIComponent(s.key)}`, undefined, { redirectOn401: true });
    } catch (err) {
      showSessionsError(`Couldn't delete: ${err.message}`);
      return;
    }
    showSessionsError('');
    active.delete(canonicalKey(s.key));
    sessions = sessions.filter((x) => x.key !== s.key);
    if (s.key === currentKey) {
      currentKey = null;
      if (sessions.length) selectSession(sessions[0].key);
      else createSession();
    } else {
      renderSessions();
    }
  }

  // ---------- sending / streaming ----------
  function updateComposer() {
    const run = currentRun();
    const ready = socket.ready;
    sendBtn.hidden = !!run;
    stopBtn.hidden = !run;
    stopBtn.disabled = !!(run && run.stopping);
    stopBtn.textContent = run && run.stopping ? 'Stopping…' : 'Stop';
    sendBtn.disabled = !ready || !currentKey;
    if (!currentKey) hintEl.textContent = 'Loading your chats…';
    else if (!ready) hintEl.textContent = 'You can type now; sending unlocks when your agent is connected.';
    else if (run) hintEl.textContent = 'Your agent is replying · Esc to stop';
    else hintEl.textContent = defaultHint;
    root.querySelector('.composer-box').dataset.disabled = ready ? 'false' : 'true';
  }

  function autosize() {
    composer.style.height = 'auto';
    composer.style.height = `${Math.min(composer.scrollHeight, 220)}px`;
  }

  async function send() {
    const text = composer.value.trim();
    if (!text || !currentKey) return;
    if (currentRun()) return;
    if (!socket.ready) {
      hintEl.textContent = 'Not connected yet. Your message will be ready to send once your agent is connected.';
      return;
    }
    const sessionKey = currentKey;
    const userEl = userMessage(text, Math.floor(Date.now() / 1000));
    appendMessageEl(userEl, true);
    const bubble = pendingBubble();
    appendMessageEl(bubble.el, true);
    const run = { runId: null, bubble, userEl, userText: text, sessionKey, abortRequested: false, stopping: false };
    active.set(canonicalKey(sessionKey), run);
    composer.value = '';
    autosize();
    updateComposer();

    try {
      const res = await socket.request('chat.send', { sessionKey, message: text, idempotencyKey: uuid() });
      if (active.get(canonicalKey(sessionKey)) !== run) return; // already finished (events beat the response)
      if (res && res.runId) run.runId = res.runId;
      if (run.abortRequested) abort();
    } catch (err) {
      if (active.get(canonicalKey(sessionKey)) !== run) return;
      active.delete(canonicalKey(sessionKey));
      bubble.el.remove();
      userEl.classList.add('failed');
      if (err.code === 'disconnected') refetchOnReady = true;
      const label = err.code && !['not_connected', 'disconnected', 'timeout', 'error'].includes(err.code)
        ? `Couldn't send (${err.code}): ${err.message}` : `Couldn't send: ${err.message}`;
      if (sameSession(sessionKey, currentKey)) {
        systemNote(label, 'error');
        if (!composer.value) {
          composer.value = text; // let the user retry without retyping
          autosize();
        }
      }
      updateComposer();
    }
  }

  async function abort() {
    const run = currentRun();
    if (!run) return;
    if (!run.runId) {
      run.abortRequested = true;
      run.stopping = true;
      updateComposer();
      return;
    }
    run.stopping = true;
    updateComposer();
    try {
      await socket.request('chat.abort', { sessionKey: run.sessionKey, runId: run.runId });
    } catch (err) {
      run.stopping = false;
      if (active.get(canonicalKey(run.sessionKey)) !== run) return;
      bubbleNote(run.bubble, `Couldn't stop: ${err.message}`, 'error');
      if (!['not_connected', 'disconnected', 'timeout'].includes(err.code)) {
        // The gateway no longer knows this run: stop waiting for it here.
        setBubbleText(run.bubble, run.bubble.text, true);
        finishRun(run.sessionKey);
      } else {
        updateComposer();
      }
    }
  }

  function finishRun(sessionKey) {
    active.delete(canonicalKey(sessionKey));
    updateComposer();
    refreshSessionsQuietly();
    if (deferredRefetch && sameSession(sessionKey, currentKey)) {
      deferredRefetch = false;
      loadHistory({ quiet: true });
    }
  }

  function onChatEvent(p) {
    if (!p || !p.sessionKey) return;
    const ck = canonicalKey(p.sessionKey);
    const terminal = p.state === 'final' || p.state === 'aborted' || p.state === 'error';

    if (!sameSession(p.sessionKey, currentKey)) {
      // Not on screen: just keep run bookkeeping straight.
      if (terminal && active.has(ck) && (!active.get(ck).runId || active.get(ck).runId === p.runId)) active.delete(ck);
      return;
    }

    let run = active.get(ck);
    if (run && run.runId && p.runId && run.runId !== p.runId) {
      // A different run in this session (e.g. started from another tab).
      run = null;
    }
    if (!run) {
      if (terminal && p.state !== 'final') return; // nothing on screen to update
      const bubble = assistantMessage();
      appendMessageEl(bubble.el);
      run = { runId: p.runId || null, bubble, sessionKey: currentKey, abortRequested: false, stopping: false };
      if (!terminal) active.set(ck, run);
    } else if (!run.runId && p.runId) {
      run.runId = p.runId;
      if (run.abortRequested) queueMicrotask(abort);
    }
    const b = run.bubble;

    switch (p.state) {
      case 'delta': {
        let text = messageText(p.message);
        if (text == null) text = p.replace ? (p.deltaText ?? '') : b.text + (p.deltaText ?? '');
        setBubbleText(b, text, false);
        updateComposer();
        break;
      }
      case 'final': {
        const text = messageText(p.message);
        setBubbleText(b, text ?? b.text, true);
        finishRun(run.sessionKey);
        break;
      }
      case 'aborted': {
        setBubbleText(b, b.text, true);
        b.el.dataset.state = 'aborted';
        bubbleNote(b, b.text ? 'Stopped.' : 'Stopped before the agent replied.');
        finishRun(run.sessionKey);
        break;
      }
      case 'error': {
        setBubbleText(b, b.text, true);
        b.el.dataset.state = 'error';
        bubbleNote(b, `Error: ${p.errorMessage || 'the agent failed to reply.'}`, 'error');
        finishRun(run.sessionKey);
        break;
      }
      default:
        break;
    }
  }

  // ---------- status panel ----------
  function renderStatus() {
    const err = socket.lastError;
    let kind = 'info';
    let title = '';
    let detail = '';
    let showStages = false;
    if (err) {
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
    if (showStages) {
      statusStages.replaceChildren(
        ...stages.map((s, i) => h('li', { class: i === stages.length - 1 ? 'current' : 'done', 'data-stage': s.stage }, stageLabel(s.stage))),
      );
    }
  }

  // ---------- wiring ----------
  socket.addEventListener('state', () => {
    renderStatus();
    updateComposer();
  });
  socket.addEventListener('status', (ev) => {
    const st = ev.detail || {};
    const key = st.stage || st.state || 'unknown';
    const last = stages[stages.length - 1];
    if (last && last.stage === key) last.detail = st.detail;
    else stages.push({ stage: key, detail: st.detail });
    renderStatus();
  });
  socket.addEventListener('ready', () => {
    stages = [];
    lastClose = null;
    renderStatus();
    updateComposer();
    if (staleRefetch || refetchOnReady) {
      refetchOnReady = false;
      staleRefetch = false;
      if (currentKey) refetchHistory();
    }
  });
  socket.addEventListener('gap', () => {
    // Events were missed: drop in-flight UI for this session and trust history.
    if (currentKey) {
      const run = currentRun();
      if (run && run.runId) {
        active.delete(canonicalKey(currentKey));
        updateComposer();
      }
      loadHistory({ quiet: true });
    }
  });
  socket.addEventListener('roost-error', () => renderStatus());
  statusDismiss.addEventListener('click', () => {
    socket.lastError = null;
    renderStatus();
  });
  socket.addEventListener('closed', (ev) => {
    lastClose = ev.detail;
    stages = [];
    if (currentRun()) refetchOnReady = true;
    renderStatus();
    updateComposer();
  });
  socket.addEventListener('event', (ev) => {
    const frame = ev.detail;
    if (frame.event === 'chat') onChatEvent(frame.payload);
  });

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    send();
  });
  stopBtn.addEventListener('click', () => abort());
  composer.addEventListener('input', autosize);
  composer.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      send();
    }
  });
  document.addEventListener('keydown', (ev) => {
    if (!visible || ev.key !== 'Escape' || ev.defaultPrevented) return;
    if (currentRun()) {
      ev.preventDefault();
      abort();
    } else if (root.classList.contains('drawer-open')) {
      closeDrawer();
    }
  });
  $('#new-session').addEventListener('click', createSession);

  function closeDrawer() {
    root.classList.remove('drawer-open');
    $('#sessions-backdrop').hidden = true;
  }
  $('#sessions-toggle').addEventListener('click', () => {
    const open = !root.classList.contains('drawer-open');
    root.classList.toggle('drawer-open', open);
    $('#sessions-backdrop').hidden = !open;
  });
  $('#sessions-backdrop').addEventListener('click', closeDrawer);

  renderStatus();
  updateComposer();

  return {
    show() {
      visible = true;
      if (!loadedOnce) {
        loadedOnce = true;
        loadSessions();
      } else {
        refreshSessionsQuietly();
      }
      if (window.matchMedia('(min-width: 900px)').matches) composer.focus();
    },
    hide() {
      visible = false;
      closeDrawer();
    },
  };
}
