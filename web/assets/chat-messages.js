// The message list: user and assistant bubbles (streamed replies render once per frame),
// notes, the empty state, and keeping the view pinned to the bottom while it is there.
import { h, formatTime } from '/assets/api.js';
import { renderMarkdown } from '/assets/markdown.js';

export function createMessages(scroller, msgsEl) {
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
    b.body.append(h('span', { class: 'typing', 'data-testid': 'thinking' },
      h('i', { 'aria-hidden': 'true' }), h('i', { 'aria-hidden': 'true' }), h('i', { 'aria-hidden': 'true' }),
      h('span', { class: 'typing-label' }, 'Thinking…')));
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
