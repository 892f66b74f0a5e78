// Chat view: one chat's history, sending, and replies streaming in over the socket. The
// sidebar, the message bubbles and the status panel are modules of their own.
import { api, h, uuid } from '/assets/api.js';
import { canonicalKey, messageText, sameSession } from '/assets/chat-format.js';
import { createMessages } from '/assets/chat-messages.js';
import { createSessionList } from '/assets/chat-sessions.js';
import { createStatusPanel } from '/assets/chat-status.js';
import { plainError, runErrorText } from '/assets/errors.js';
import { applyToolEvent, settleToolCards } from '/assets/chat-tools.js';

const HISTORY_LIMIT = 100;

export function initChat({ socket, root }) {
  const $ = (sel) => root.querySelector(sel);
  const msgsEl = $('#messages-inner');
  const form = $('#composer-form');
  const composer = $('#composer');
  const sendBtn = $('#send');
  const stopBtn = $('#stop');
  const hintEl = $('#composer-hint');
  const defaultHint = hintEl.textContent;

  const {
    scrollToBottom, renderEmptyState, userMessage, assistantMessage, pendingBubble,
    setBubbleText, bubbleNote, systemNote, appendMessageEl,
  } = createMessages($('#messages'), msgsEl);
  createStatusPanel(socket, root);
  root.querySelector('.chat-pane').prepend(h('h1', { class: 'sr-only' }, 'Chat with your agent'));
  // No keyboard hints on a touch screen.
  const touch = window.matchMedia('(pointer: coarse)').matches;
  const idleHint = touch ? '' : defaultHint;

  let loadedOnce = false;
  let visible = false;
  let historySeq = 0;
  let staleRefetch = false; // history was stale: refetch on roost.ready
  let refetchOnReady = false; // something was lost while disconnected
  let deferredRefetch = false; // refetch once the current reply finishes

  // canonical session key -> {runId|null, bubble, abortRequested, sessionKey}
  const active = new Map();
  // Messages not yet acknowledged, oldest first: {sessionKey, text, idem, userEl, state, run}.
  // state: queued (waiting for a connection), sending, delivered, failed. A message is only
  // failed when Roost or the agent refused it; a lost link or a late answer sends it again, with
  // the same idempotency key, so the agent never runs it twice.
  const outbox = [];
  let delivering = null;
  // Idempotency keys of messages already shown (sent here, or relayed from another tab), so a
  // resume that replays one does not show it twice even after history re-rendered the list.
  const shownKeys = new Set();
  // Runs that ended, so a late tool event (OpenClaw sends some after the end) opens no reply.
  const endedRuns = new Set();
  const ended = (runId) => {
    if (!runId) return;
    if (endedRuns.size >= 200) endedRuns.clear();
    endedRuns.add(runId);
  };
  const remember = (key) => {
    if (shownKeys.size >= 1000) shownKeys.clear(); // bounded; older ones are in history by now
    shownKeys.add(key);
  };

  const sidebar = createSessionList({
    root,
    onSelect() {
      staleRefetch = false;
      deferredRefetch = false;
      updateComposer();
      loadHistory();
      if (visible && window.matchMedia('(min-width: 900px)').matches) composer.focus();
    },
    onDeleted(key) {
      active.delete(canonicalKey(key));
    },
    onLoadFailed(message, retry) {
      msgsEl.replaceChildren();
      systemNote(message, 'error', h('button', { type: 'button', class: 'btn btn-small', onclick: retry }, 'Retry'));
    },
  });
  const current = () => sidebar.currentKey;

  function currentRun() {
    return current() ? active.get(canonicalKey(current())) : undefined;
  }

  // ---------- history ----------
  // A saved reply's tool calls, as the cards the live reply showed.
  function showSavedTools(bubble, tools) {
    if (!Array.isArray(tools)) return;
    for (const t of tools) {
      applyToolEvent(bubble, { toolCallId: t.id, name: t.name, phase: 'start', args: t.args });
      if (t.status === 'done' || t.status === 'error') {
        applyToolEvent(bubble, { toolCallId: t.id, name: t.name, phase: 'result', isError: t.status === 'error', result: t.result });
      }
    }
  }

  async function loadHistory({ quiet = false } = {}) {
    if (!current()) return;
    const key = current();
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
      systemNote(`Couldn't load this chat's messages. ${plainError(err)}`, 'error', retry);
      return;
    }
    if (seq !== historySeq || key !== current()) return;

    const run = currentRun();
    const nodes = [];
    if (data.stale && (data.messages || []).length) {
      nodes.push(h('div', { class: 'system-note info', 'data-testid': 'stale-note' },
        'Showing saved messages. They will refresh when your agent is connected.'));
    }
    for (const m of data.messages || []) {
      if (m.role === 'user') {
        nodes.push(userMessage(m.text ?? '', m.ts));
        // A run that ended before the agent said anything: shown as it was live.
        if (m.end) nodes.push(endedBubble('', m.end).el);
      } else if (m.role === 'assistant') {
        const b = assistantMessage(m.text ?? '', m.ts);
        showSavedTools(b, m.tools);
        // With no run in flight, a call without a result never finished.
        if (!run) settleToolCards(b);
        if (m.end) endedBubble(m.text ?? '', m.end, b);
        nodes.push(b.el);
      }
    }
    // Keep a reply that is still streaming at the end of the list.
    if (run && run.bubble) {
      if (run.userEl && !data.messages?.some((m) => m.role === 'user' && m.text === run.userText)) nodes.push(run.userEl);
      nodes.push(run.bubble.el);
    }
    // And what is still waiting to be sent.
    for (const item of outbox) {
      if (sameSession(item.sessionKey, key) && item.userEl !== run?.userEl) nodes.push(item.userEl);
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

  /** A reply that was stopped or failed, marked as it was when it happened. */
  function endedBubble(text, end, b = assistantMessage(text)) {
    b.el.dataset.state = end.state;
    if (end.state === 'aborted') bubbleNote(b, text ? 'Stopped.' : 'Stopped before the agent replied.');
    else failedNote(b, runErrorText(end.message, end.kind));
    return b;
  }

  /** A failed reply's note, with Retry: the message before it is sent again (a new run). */
  function failedNote(b, text) {
    bubbleNote(b, text, 'error');
    const retry = h('button', { type: 'button', class: 'btn btn-small msg-retry', 'data-testid': 'msg-retry' }, 'Retry');
    retry.addEventListener('click', () => {
      let prev = b.el.previousElementSibling;
      while (prev && prev.dataset.role !== 'user') prev = prev.previousElementSibling;
      const text = prev?.querySelector('.msg-body')?.textContent;
      if (!text || currentRun()) return;
      retry.remove();
      sendText(text);
    });
    b.note.append(' ', retry);
  }

  function refetchHistory() {
    if (currentRun()) deferredRefetch = true;
    else loadHistory({ quiet: true });
  }

  // ---------- sending / streaming ----------
  function updateComposer() {
    const run = currentRun();
    const ready = socket.ready;
    sendBtn.hidden = !!run;
    stopBtn.hidden = !run;
    stopBtn.disabled = !!(run && run.stopping);
    stopBtn.textContent = run && run.stopping ? 'Stopping…' : 'Stop';
    sendBtn.disabled = !current();
    if (!current()) hintEl.textContent = 'Loading your chats…';
    else if (!ready) hintEl.textContent = 'Not connected: what you send now is queued and goes out, in order, once your agent is connected.';
    else if (run) hintEl.textContent = touch ? 'Your agent is replying' : 'Your agent is replying · Esc to stop';
    else hintEl.textContent = idleHint;
    root.querySelector('.composer-box').dataset.disabled = ready ? 'false' : 'true';
  }

  function autosize() {
    composer.style.height = 'auto';
    composer.style.height = `${Math.min(composer.scrollHeight, 220)}px`;
  }

  const SEND_LABELS = { queued: 'Queued · sends when connected', sending: 'Sending…', failed: "Couldn't send" };

  function markSend(item, state) {
    item.state = state;
    item.userEl.dataset.send = state;
    item.userEl.classList.toggle('failed', state === 'failed');
    item.userEl.classList.toggle('queued', state === 'queued' || state === 'sending');
    let label = item.userEl.querySelector('.msg-send');
    if (!SEND_LABELS[state]) {
      label?.remove();
      return;
    }
    if (!label) {
      label = h('div', { class: 'msg-send', 'data-testid': 'msg-send' });
      item.userEl.append(label);
    }
    label.textContent = SEND_LABELS[state];
  }

  function send() {
    if (sendText(composer.value.trim())) {
      composer.value = '';
      autosize();
    }
  }

  /** Queues `text` for the current chat; false if it cannot be sent now. */
  function sendText(text) {
    if (!text || !current()) return false;
    if (currentRun()) return false;
    const item = { sessionKey: current(), text, idem: uuid(), userEl: userMessage(text, Math.floor(Date.now() / 1000)), run: null };
    item.userEl.dataset.idem = item.idem;
    remember(item.idem);
    appendMessageEl(item.userEl, true);
    markSend(item, socket.ready ? 'sending' : 'queued');
    outbox.push(item);
    sidebar.noteSent(item.sessionKey, text);
    updateComposer();
    pump();
    return true;
  }

  /** Sends the oldest waiting message, once connected and once its chat's reply is done. */
  function pump() {
    if (delivering || !socket.ready) return;
    const item = outbox[0];
    if (!item) return;
    const busy = active.get(canonicalKey(item.sessionKey));
    if (busy && busy !== item.run) return; // finishRun pumps again
    delivering = item;
    deliver(item).finally(() => {
      delivering = null;
      pump();
    });
  }

  async function deliver(item) {
    const { sessionKey, text } = item;
    const ck = canonicalKey(sessionKey);
    if (!item.run) {
      // The first try: show the reply coming. A retry keeps the one already shown.
      const bubble = pendingBubble();
      // Right under its message: messages queued after it stay below its reply.
      if (item.userEl.isConnected) item.userEl.after(bubble.el);
      else if (sameSession(sessionKey, current())) appendMessageEl(bubble.el, true);
      item.run = { runId: null, bubble, userEl: item.userEl, userText: text, sessionKey, abortRequested: false, stopping: false };
      active.set(ck, item.run);
      updateComposer();
    }
    const run = item.run;
    markSend(item, 'sending');
    try {
      const res = await socket.request('chat.send', { sessionKey, message: text, idempotencyKey: item.idem });
      outbox.splice(outbox.indexOf(item), 1);
      markSend(item, 'delivered');
      if (active.get(ck) !== run) return; // already finished (events beat the response)
      if (res && res.runId) run.runId = res.runId;
      if (run.abortRequested) abort();
    } catch (err) {
      if (['not_connected', 'disconnected', 'timeout'].includes(err.code)) {
        // It may have arrived: send it again (same key) when connected; the agent runs it once.
        markSend(item, socket.ready ? 'sending' : 'queued');
        if (err.code === 'disconnected') refetchOnReady = true;
        return;
      }
      // Refused: it did not arrive, so give the text back to retry.
      outbox.splice(outbox.indexOf(item), 1);
      markSend(item, 'failed');
      // Known not to have arrived: Retry sends it again as a new message.
      const retry = h('button', { type: 'button', class: 'btn btn-small msg-retry', 'data-testid': 'msg-retry' }, 'Retry');
      retry.addEventListener('click', () => {
        if (currentRun()) return;
        item.userEl.remove();
        if (composer.value.trim() === text) composer.value = '';
        sendText(text);
      });
      item.userEl.querySelector('.msg-send')?.append(' ', retry);
      if (active.get(ck) === run) active.delete(ck);
      run.bubble.el.remove();
      const label = `Your message was not sent. ${plainError(err, 'Try sending it again.')}`;
      if (sameSession(sessionKey, current())) {
        systemNote(label, 'error');
        if (!composer.value) {
          composer.value = text;
          autosize();
        }
      }
      updateComposer();
    }
  }

  /** The user's message from another of their tabs (Roost relays it; the agent does not). */
  function onOwnMessage(p) {
    if (!p || typeof p.sessionKey !== 'string' || typeof p.message !== 'string' || typeof p.idempotencyKey !== 'string') return;
    if (shownKeys.has(p.idempotencyKey)) return; // a resume replays it
    remember(p.idempotencyKey);
    if (!sameSession(p.sessionKey, current())) {
      sidebar.refreshQuietly();
      return;
    }
    const el = userMessage(p.message, p.ts);
    el.dataset.idem = p.idempotencyKey;
    appendMessageEl(el);
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
      bubbleNote(run.bubble, `The reply could not be stopped. ${plainError(err)}`, 'error');
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
    queueMicrotask(pump);
    sidebar.refreshQuietly();
    // The server titles a new chat once the reply is saved: look again shortly.
    setTimeout(() => sidebar.refreshQuietly(), 1500);
    if (deferredRefetch && sameSession(sessionKey, current())) {
      deferredRefetch = false;
      loadHistory({ quiet: true });
    }
  }

  function onChatEvent(p) {
    if (!p || !p.sessionKey) return;
    const ck = canonicalKey(p.sessionKey);
    const terminal = p.state === 'final' || p.state === 'aborted' || p.state === 'error';
    if (terminal) ended(p.runId);

    if (!sameSession(p.sessionKey, current())) {
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
      run = { runId: p.runId || null, bubble, sessionKey: current(), abortRequested: false, stopping: false };
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
        settleToolCards(b);
        const text = messageText(p.message);
        setBubbleText(b, text ?? b.text, true);
        finishRun(run.sessionKey);
        break;
      }
      case 'aborted': {
        settleToolCards(b);
        setBubbleText(b, b.text, true);
        b.el.dataset.state = 'aborted';
        bubbleNote(b, b.text ? 'Stopped.' : 'Stopped before the agent replied.');
        finishRun(run.sessionKey);
        break;
      }
      case 'error': {
        settleToolCards(b);
        setBubbleText(b, b.text, true);
        b.el.dataset.state = 'error';
        failedNote(b, runErrorText(p.errorMessage, p.errorKind));
        finishRun(run.sessionKey);
        break;
      }
      default:
        break;
    }
  }

  /** A tool call of a reply (`agent` event, stream "tool"): a card in that reply. */
  function onToolEvent(p) {
    if (!p || !p.sessionKey || !p.data || !sameSession(p.sessionKey, current())) return;
    if (p.runId && endedRuns.has(p.runId)) return;
    const ck = canonicalKey(p.sessionKey);
    let run = active.get(ck);
    if (run && run.runId && p.runId && run.runId !== p.runId) return;
    if (!run) {
      // A run started elsewhere (another tab, a channel): its reply opens here.
      const bubble = pendingBubble();
      appendMessageEl(bubble.el);
      run = { runId: p.runId || null, bubble, sessionKey: current(), abortRequested: false, stopping: false };
      active.set(ck, run);
      updateComposer();
    } else if (!run.runId && p.runId) {
      run.runId = p.runId;
    }
    applyToolEvent(run.bubble, p.data);
  }

  // ---------- wiring ----------
  socket.addEventListener('state', () => updateComposer());
  socket.addEventListener('ready', () => {
    updateComposer();
    pump();
    if (staleRefetch || refetchOnReady) {
      refetchOnReady = false;
      staleRefetch = false;
      if (current()) refetchHistory();
    }
  });
  socket.addEventListener('gap', () => {
    // Events were missed: drop in-flight UI for this session and trust history.
    if (current()) {
      const run = currentRun();
      if (run && run.runId) {
        active.delete(canonicalKey(current()));
        updateComposer();
      }
      loadHistory({ quiet: true });
    }
  });
  socket.addEventListener('closed', () => {
    if (currentRun()) refetchOnReady = true;
    updateComposer();
  });
  socket.addEventListener('event', (ev) => {
    const frame = ev.detail;
    if (frame.event === 'chat') onChatEvent(frame.payload);
    else if (frame.event === 'roost.message') onOwnMessage(frame.payload);
    else if (frame.event === 'agent' && frame.payload && frame.payload.stream === 'tool') onToolEvent(frame.payload);
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
    } else if (sidebar.drawerOpen()) {
      sidebar.closeDrawer();
    }
  });

  updateComposer();

  return {
    show() {
      visible = true;
      if (!loadedOnce) {
        loadedOnce = true;
        sidebar.load();
      } else {
        sidebar.refreshQuietly();
      }
      if (window.matchMedia('(min-width: 900px)').matches) composer.focus();
    },
    hide() {
      visible = false;
      sidebar.closeDrawer();
    },
  };
}
