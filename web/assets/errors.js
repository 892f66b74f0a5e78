// Errors in one voice: every error the pages show is a plain sentence saying what happened and
// what to do. Codes, HTTP statuses and the agent's own wording never reach the screen.

/** Sentences for the codes the chat socket and the API use. */
const BY_CODE = {
  network: 'Roost could not be reached. Check your connection and try again.',
  unauthenticated: 'Your session has ended. Sign in again to continue.',
  unauthorized: 'Your session has ended. Sign in again to continue.',
  not_connected: 'You are not connected to your agent right now. What you send is kept and goes out once it is.',
  disconnected: 'The connection to your agent dropped. Roost is reconnecting; try again in a moment.',
  timeout: 'Your agent did not answer in time. Try again in a moment.',
  agent_stopped: 'Your agent is stopped. Restart it from the banner above to chat again.',
  agent_unreachable: 'Roost could not reach your agent. It will try again when you reconnect.',
  agent_failed: 'Your agent stopped after repeated crashes. Restart it to try again.',
  internal: 'Something went wrong on the server. Try again in a moment.',
  forbidden: 'That is not allowed from this page. Reload the page and try again.',
  cross_origin: 'That request came from another site and was refused. Reload Roost and try again.',
  not_found: 'That chat or page no longer exists. Reload the page to see what is there.',
  invalid_frame: 'The page sent something Roost could not read. Reload the page and try again.',
};

const GENERIC = 'Something went wrong. Try again in a moment; if it keeps happening, restart your agent.';

/** "40 seconds", "1 minute", "3 minutes". */
export function waitWords(secs) {
  const s = Math.max(1, Math.round(Number(secs) || 0));
  if (s < 90) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.round(s / 60);
  return `${m} minute${m === 1 ? '' : 's'}`;
}

/** Whether `text` already reads as a sentence for a person (Roost's own messages do). */
function isSentence(text) {
  return typeof text === 'string' && text.length > 0 && text.length <= 300
    && /^[A-Z"“]/.test(text) && /[.!?]["”]?$/.test(text)
    && !/\b(at |stack|Error:|undefined|null\b|\{|\}|https?:\/\/|\/[a-z_]+\/[a-z_]+)/.test(text);
}

/**
 * The plain sentence for `err` (an ApiError, a socket request Error with `.code`, a string, or
 * anything thrown). `fallback` replaces the generic sentence when the message is not one.
 */
export function plainError(err, fallback = GENERIC) {
  if (!err) return fallback;
  if (typeof err === 'string') return isSentence(err) ? err : fallback;
  const code = typeof err.code === 'string' ? err.code : '';
  const status = Number(err.status) || 0;
  if (code === 'rate_limited' || status === 429) {
    return err.retryAfter ? `Too many attempts. Try again in ${waitWords(err.retryAfter)}.` : 'Too many attempts. Wait a minute and try again.';
  }
  // Upstream (agent) codes are SHOUTING_CASE; their wording is the agent's, not ours.
  const upstream = /^[A-Z][A-Z0-9_]+$/.test(code);
  if (!upstream && isSentence(err.message)) return err.message;
  if (BY_CODE[code]) return BY_CODE[code];
  if (status >= 500) return BY_CODE.internal;
  if (status === 401) return BY_CODE.unauthenticated;
  return fallback;
}

const RUN_ERRORS = {
  timeout: "Your agent's model took too long to answer. Try again.",
  rate_limit: "Your agent's model is busy right now. Wait a minute and try again.",
  context_length: 'This chat has grown too long for the model. Start a new chat to go on.',
  refusal: 'The model declined to answer this. Try rephrasing your message.',
};
const RUN_FAILED = 'Your agent could not finish this reply. Try again; if it keeps happening, restart your agent.';

/**
 * Why a reply failed. Roost's own reasons (no model, no credits, a budget) are shown as they are;
 * the agent's and the model provider's wording never is.
 */
export function runErrorText(message, kind) {
  if (kind === 'no_model_configured' || kind === 'out_of_credits') return isSentence(message) ? message : RUN_FAILED;
  if (RUN_ERRORS[kind]) return RUN_ERRORS[kind];
  // A saved end has no kind: Roost's reasons are the ones that speak of Roost, credits or budgets.
  if (!kind && isSentence(message) && /\b(Roost|credits|budget)\b/.test(message)) return message;
  return RUN_FAILED;
}
