// Small helpers shared by every page: JSON API calls, formatting, ids, clipboard.
import { plainError } from '/assets/errors.js';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    // What the page shows: the server's sentence, or a plain one for anything else.
    this.message = plainError(this);
  }
}

/** Go to the login page (replacing history so Back does not loop). */
export function goToLogin({ expired = false } = {}) {
  if (location.pathname !== '/login') location.replace(expired ? '/login?expired=1' : '/login');
}

/**
 * Call the JSON API. Resolves with the parsed body (null for 204).
 * Throws ApiError with the server's error.message on failure.
 * With {redirectOn401: true} a 401 sends the browser to /login.
 */
export async function api(method, path, body, { redirectOn401 = false } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'Could not reach the server. Check your connection and try again.');
  }
  if (res.status === 401 && redirectOn401) {
    goToLogin();
    throw new ApiError(401, 'unauthorized', 'Your session has ended. Please sign in again.');
  }
  let data = null;
  if (res.status !== 204) {
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
  }
  if (!res.ok) {
    const err = data && data.error;
    const retry = Number.parseInt(res.headers.get('Retry-After') || '', 10);
    throw new ApiError(res.status, (err && err.code) || `http_${res.status}`, (err && err.message) || '',
      Number.isFinite(retry) && retry > 0 ? retry : null);
  }
  return data;
}

/** Unix seconds -> local date/time string. */
export function formatTime(unixSeconds, fallback = '—') {
  if (unixSeconds === null || unixSeconds === undefined || unixSeconds === '') return fallback;
  const d = new Date(Number(unixSeconds) * 1000);
  if (Number.isNaN(d.getTime())) return fallback;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** Unix seconds -> short relative label for lists ("5 min ago", "Mar 3"). */
export function formatRelative(unixSeconds) {
  if (!unixSeconds) return '';
  const d = new Date(Number(unixSeconds) * 1000);
  const diff = (Date.now() - d.getTime()) / 1000;
  if (diff < 45) return 'just now';
  if (diff < 3600) return `${Math.round(diff / 60)} min ago`;
  if (diff < 86400 && d.getDate() === new Date().getDate()) {
    return d.toLocaleTimeString(undefined, { timeStyle: 'short' });
  }
  return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}

/** RFC 4122 v4 UUID; works outside secure contexts too. */
export function uuid() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Copy text to the clipboard (falls back to execCommand on plain http). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      /* fall through */
    }
  }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.style.position = 'fixed';
  ta.style.opacity = '0';
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

/** Wire a button so clicking it copies getText() and briefly says "Copied". */
export function makeCopyButton(button, getText, label = 'Copy') {
  button.textContent = label;
  button.addEventListener('click', async () => {
    const ok = await copyText(getText());
    button.textContent = ok ? 'Copied' : 'Copy failed';
    button.classList.toggle('copied', ok);
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(() => {
      button.textContent = label;
      button.classList.remove('copied');
    }, 1600);
  });
  return button;
}

/** Tiny element builder: h('div', {class: 'x', dataset: {...}}, child, 'text'). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
