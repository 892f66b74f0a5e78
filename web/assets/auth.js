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

function showError(message) {
  errorEl.textContent = message;
  errorEl.hidden = !message;
}

// Already signed in? Skip the form. Not when we were sent here because the
// server rejected the session (?expired=1), to avoid a redirect loop.
const params = new URLSearchParams(location.search);
if (params.has('expired')) {
  showError('Your session has ended. Please sign in again.');
} else {
  api('GET', '/api/me')
    .then(() => location.replace(AFTER_AUTH))
    .catch(() => {});
}

form.addEventListener('input', () => showError(''));

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const email = emailInput.value.trim();
  const password = passwordInput.value;

  if (!email || !/^[^\s@]+@[^\s@]+$/.test(email)) {
    showError('Enter a valid email address.');
    emailInput.focus();
    return;
  }
  if (!password) {
    showError('Enter your password.');
    passwordInput.focus();
    return;
  }
  if (mode === 'signup' && password.length < MIN_PASSWORD) {
    showError(`Password must be at least ${MIN_PASSWORD} characters.`);
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
