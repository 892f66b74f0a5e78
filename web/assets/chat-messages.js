// The message list: user and assistant bubbles (streamed replies render once per frame),
// notes, the empty state, and keeping the view pinned to the bottom while it is there.
import { h, formatTime, makeCopyButton } from '/assets/api.js';

/** Short time for under a message: "14:05", or the date too when it is not today. */
function shortTime(ts) {
  const d = new Date(Number(ts) * 1000);
  if (Number.isNaN(d.getTime())) return '';
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString(undefined, { timeStyle: 'short' })
    : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** The row under a message: its time (visible on touch screens too) and Copy. */
function actionsRow(ts, getText, who) {
  const copy = h('button', { type: 'button', class: 'msg-action', 'data-testid': 'msg-copy', 'aria-label': `Copy ${who}` });
  makeCopyButton(copy, getText);
  return h('div', { class: 'msg-actions' },
    ts ? h('time', { class: 'msg-time', 'data-testid': 'msg-time', datetime: new Date(Number(ts) * 1000).toISOString(), title: formatTime(ts) }, shortTime(ts)) : null,
    copy);
}
import { renderMarkdown } from '/assets/markdown.js';

export function createMessages(scroller, msgsEl) {
  // Screen readers hear each finished reply once, not every frame of it as it streams.
  const announcer = h('div', { class: 'sr-only', 'aria-live': 'polite', 'data-testid': 'announcer' });
  scroller.after(announcer);
  function announce(text) {
    announcer.textContent = '';
    const words = String(text || '').replace(/\s+/g, ' ').trim();
    if (!words) return;
    setTimeout(() => {
      announcer.textContent = `Your agent replied: ${words.length > 600 ? `${words.slice(0, 600)}…` : words}`;
    }, 50);
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
    return h('div', { class: 'msg msg-user', 'data-testid': 'msg', 'data-role': 'user' },
      h('div', { class: 'msg-body' }, text), actionsRow(ts, () => text, 'your message'));
  }

  function assistantMessage(text, ts) {
    const body = h('div', { class: 'msg-body markdown' });
    const el = h('div', { class: 'msg msg-assistant', 'data-testid': 'msg', 'data-role': 'assistant' }, body);
    const bubble = { el, body, text: '', raf: 0, note: null };
    el.append(actionsRow(ts || Math.floor(Date.now() / 1000), () => bubble.text, "the agent's reply"));
    if (text !== undefined) setBubbleText(bubble, text, true);
    return bubble;
  }

  function pendingBubble() {
    const b = assistantMessage();
    b.el.classList.add('pending');
    b.el.dataset.state = 'pending';
    b.live = true;
    b.body.append(h('span', { class: 'typing', 'data-testid': 'thinking' },
      h('i', { 'aria-hidden': 'true' }), h('i', { 'aria-hidden': 'true' }), h('i', { 'aria-hidden': 'true' }),
      h('span', { class: 'typing-label' }, 'Thinking…')));
    return b;
  }

  function setBubbleText(b, text, final) {
    b.text = text ?? '';
    if (final) {
      if (b.live) announce(b.text);
      b.live = false;
      cancelAnimationFrame(b.raf);
      b.raf = 0;
      b.el.classList.remove('pending');
      b.el.dataset.state = 'done';
      withScroll(() => renderMarkdown(b.body, b.text, { highlight: true }));
      return;
    }
    b.live = true;
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
    withScroll(() => b.el.querySelector('.msg-actions').before(b.note));
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

  return {
    scrollToBottom,
    renderEmptyState,
    userMessage,
    assistantMessage,
    pendingBubble,
    setBubbleText,
    bubbleNote,
    systemNote,
    appendMessageEl,
  };
}
