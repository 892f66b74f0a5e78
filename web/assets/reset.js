// The page of a password reset link: `/reset#token=…`. The token stays in the fragment, which
// no request carries, and is taken off the address bar at once.
import { api } from '/assets/api.js';

const form = document.getElementById('reset-form');
const errorEl = document.getElementById('reset-error');
const doneEl = document.getElementById('reset-done');
const input = form.elements.namedItem('password');
const submit = form.querySelector('button[type="submit"]');
const token = new URLSearchParams(location.hash.slice(1)).get('token') || '';
history.replaceState(null, '', location.pathname);

function showError(message) {
  errorEl.textContent = message;
  errorEl.hidden = !message;
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

if (!token) {
  showError('This page needs the whole link you were given. Ask the operator of this server for a new one.');
  submit.disabled = true;
}

form.addEventListener('input', () => showError(''));
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (input.value.length < 8) {
    showError('Your password must be at least 8 characters long.');
    input.focus();
    return;
  }
  submit.disabled = true;
  try {
    await api('POST', '/api/auth/reset', { token, new_password: input.value });
    form.hidden = true;
    doneEl.hidden = false;
  } catch (err) {
    showError(err.message);
    submit.disabled = false;
  }
});

// A second link pasted into this tab changes only the fragment: start over with it.
window.addEventListener('hashchange', () => location.reload());
