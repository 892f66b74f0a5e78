// Tool activity inside a reply: each OpenClaw tool call (an `agent` event with stream "tool")
// as a compact card: the tool's name, its arguments in a line, running / done / failed, and
// the result folded away. Everything shown is text (never HTML) and bounded in size.
import { h } from '/assets/api.js';

const MAX_CARDS = 40; // per reply; older ones give way
const ARGS_LINE = 80;
const DETAIL_CHARS = 4000;
const STATUS_WORDS = { running: 'Running…', done: 'Done', error: 'Failed' };

function clip(text, max) {
  const s = String(text ?? '');
  return s.length > max ? `${s.slice(0, max)}… (${s.length - max} more characters)` : s;
}

function oneLine(text, max) {
  const s = String(text ?? '').replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** `{command: "ls -la", cwd: "/tmp"}` -> `command: ls -la · cwd: /tmp` */
export function summariseArgs(args) {
  if (args == null) return '';
  if (typeof args !== 'object') return oneLine(args, ARGS_LINE);
  const parts = Object.entries(args).slice(0, 4).map(([k, v]) => {
    const value = typeof v === 'string' ? v : JSON.stringify(v);
    return `${k}: ${value}`;
  });
  return oneLine(parts.join(' · '), ARGS_LINE);
}

/** A tool result's text: OpenClaw's `{content:[{type:"text",text}]}`, a string, or JSON. */
export function resultText(result) {
  if (result == null) return '';
  if (typeof result === 'string') return result;
  const content = Array.isArray(result.content) ? result.content : Array.isArray(result) ? result : null;
  if (content) {
    const texts = content.filter((p) => p && typeof p.text === 'string').map((p) => p.text);
    if (texts.length) return texts.join('\n');
  }
  try {
    return JSON.stringify(result, null, 2);
  } catch {
    return '';
  }
}

function pretty(args) {
  if (args == null) return '';
  if (typeof args === 'string') return args;
  try {
    return JSON.stringify(args, null, 2);
  } catch {
    return '';
  }
}

/** The cards of one reply, kept in `bubble.tools` (a container above the reply's text). */
export function applyToolEvent(bubble, data) {
  if (!data || typeof data !== 'object') return null;
  const id = typeof data.toolCallId === 'string' ? data.toolCallId : null;
  const name = typeof data.name === 'string' && data.name ? data.name : 'tool';
  if (!id) return null;
  if (!bubble.tools) {
    bubble.tools = h('div', { class: 'tool-cards', 'data-testid': 'tool-cards' });
    bubble.toolCards = new Map();
    bubble.el.insertBefore(bubble.tools, bubble.body);
  }
  let card = bubble.toolCards.get(id);
  if (!card) {
    if (bubble.toolCards.size >= MAX_CARDS) {
      const [oldest, el] = bubble.toolCards.entries().next().value;
      el.root.remove();
      bubble.toolCards.delete(oldest);
    }
    const status = h('span', { class: 'tool-status', 'data-testid': 'tool-status' });
    const args = h('span', { class: 'tool-args', 'data-testid': 'tool-args' });
    const detail = h('div', { class: 'tool-detail' });
    const root = h('details', { class: 'tool-card', 'data-testid': 'tool-card', 'data-tool': name },
      h('summary', {},
        h('span', { class: 'tool-icon', 'aria-hidden': 'true' }, '⚙'),
        h('span', { class: 'tool-name', 'data-testid': 'tool-name' }, name),
        args, status),
      detail);
    card = { root, status, args, detail, argsText: '', result: '' };
    bubble.toolCards.set(id, card);
    bubble.tools.append(root);
  }
  if (data.phase === 'start' || data.args !== undefined) {
    card.args.textContent = summariseArgs(data.args);
    card.argsText = clip(pretty(data.args), DETAIL_CHARS);
  }
  let state = card.root.dataset.status || 'running';
  if (data.phase === 'start' || data.phase === 'update') state = state === 'running' ? 'running' : state;
  if (data.phase === 'result') {
    state = data.isError ? 'error' : 'done';
    card.result = clip(resultText(data.result) || (data.isError ? 'The tool failed.' : ''), DETAIL_CHARS);
  }
  card.root.dataset.status = state;
  card.status.textContent = STATUS_WORDS[state];
  card.root.querySelector('summary').setAttribute('aria-label', `Tool ${name}: ${STATUS_WORDS[state]}`);
  const parts = [];
  if (card.argsText) parts.push(h('div', { class: 'tool-label' }, 'Arguments'), h('pre', { class: 'tool-pre' }, card.argsText));
  if (card.result) parts.push(h('div', { class: 'tool-label' }, state === 'error' ? 'Error' : 'Result'),
    h('pre', { class: 'tool-pre', 'data-testid': 'tool-result' }, card.result));
  card.detail.replaceChildren(...parts);
  return card;
}

/** A reply that ended: tools still shown as running never finished. */
export function settleToolCards(bubble) {
  if (!bubble.toolCards) return;
  for (const card of bubble.toolCards.values()) {
    if (card.root.dataset.status === 'running') {
      card.root.dataset.status = 'error';
      card.status.textContent = 'Did not finish';
    }
  }
}
