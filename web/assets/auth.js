// Login and signup pages. The form's data-mode says which one this is.
import { api } from '/assets/api.js';

const MIN_PASSWORD = 8;
const AFTER_AUTH = '/chat';

const form = document.getElementById('auth-form');
const mode = form.dataset.mode; // "login" | "signup"
const errorEl = form.querySelector('.form-error');
const submit = form.querySelector('button[type="submit"]');
const submitLabel = submit.textContent;
const emailInput = form.elements.namedItem('email');
const passwordInput = form.elements.namedItem('password');

/** The server's rule (`Email::parse`): one @, a dotted domain, no spaces, at most 254 bytes. */
export function validEmail(raw) {
  const email = raw.trim().toLowerCase();
  if (!email || new TextEncoder().encode(email).length > 254 || /[\s\p{Cc}]/u.test(email)) return false;
  const at = email.indexOf('@');
  if (at <= 0) return false;
  const domain = email.slice(at + 1);
  return domain.length > 0 && !domain.includes('@') && domain.includes('.') && !domain.startsWith('.') && !domain.endsWith('.');
}

errorEl.id = 'form-error';
for (const input of [emailInput, passwordInput]) input.setAttribute('aria-describedby', 'form-error');

function showError(message, field = null) {
  errorEl.textContent = message;
  errorEl.hidden = !message;
  for (const input of [emailInput, passwordInput]) {
    if (message && (field === input || field === null)) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
}

// Already signed in? Skip the form. Not when we were sent here because the
// server rejected the session (?expired=1), to avoid a redirect loop.
const params = new URLSearchParams(location.search);
if (params.has('expired')) {
  showError('Your session has ended. Please sign in again.');
} else {
  // Always answered 200, so a signed-out visit logs no failed request.
  api('GET', '/api/auth/session')
    .then((s) => { if (s && s.signed_in) location.replace(AFTER_AUTH); })
    .catch(() => {});
}

form.addEventListener('input', () => showError(''));

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const email = emailInput.value.trim();
  const password = passwordInput.value;

  if (!validEmail(email)) {
    showError('Enter a valid email address, like name@example.com.', emailInput);
    emailInput.focus();
    return;
  }
  if (!password) {
    showError('Enter your password.', passwordInput);
    passwordInput.focus();
    return;
  }
  if (mode === 'signup' && password.length < MIN_PASSWORD) {
    showError(`Your password must be at least ${MIN_PASSWORD} characters long.`, passwordInput);
    passwordInput.focus();
    return;
  }

  submit.disabled = true;
  submit.textContent = mode === 'signup' ? 'Creating account…' : 'Signing in…';
  showError('');
  try {
    await api('POST', mode === 'signup' ? '/api/auth/signup' : '/api/auth/login', { email, password });
    location.assign(AFTER_AUTH);
  } catch (err) {
    showError(err.message);
    submit.disabled = false;
    submit.textContent = submitLabel;
  }
});
