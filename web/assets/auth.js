// Login and signup pages. The form's data-mode says which one this is.
import { api } from '/assets/api.js';
import { validEmail } from '/assets/email.js';

const MIN_PASSWORD = 8;
const AFTER_AUTH = '/chat';

const form = document.getElementById('auth-form');
const mode = form.dataset.mode; // "login" | "signup"
const errorEl = form.querySelector('.form-error');
const submit = form.querySelector('button[type="submit"]');
const submitLabel = submit.textContent;
const emailInput = form.elements.namedItem('email');
const passwordInput = form.elements.namedItem('password');

export { validEmail };

errorEl.id = 'form-error';
// A field's own hint (the sign-up password's length) is read with it, then any error.
for (const input of [emailInput, passwordInput]) {
  const hint = input.parentElement.querySelector('.hint[id]');
  input.setAttribute('aria-describedby', hint ? `${hint.id} form-error` : 'form-error');
}

function showError(message, field = null) {
  errorEl.textContent = message;
  errorEl.hidden = !message;
  for (const input of [emailInput, passwordInput, form.elements.namedItem('invite_code')].filter(Boolean)) {
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

// What the server allows: the invite field, or no sign-up at all.
const inviteField = document.getElementById('invite-field');
const inviteInput = form.elements.namedItem('invite_code');
let signups = 'open';
api('GET', '/api/auth/policy')
  .then((p) => {
    signups = p.signups;
    if (mode === 'signup') {
      if (inviteField) inviteField.hidden = signups !== 'invite';
      const closed = document.getElementById('signups-closed');
      if (closed && signups === 'closed') {
        closed.hidden = false;
        submit.disabled = true;
      }
      const code = new URLSearchParams(location.search).get('invite');
      if (inviteInput && code) inviteInput.value = code;
    } else {
      if (signups === 'closed') {
        const line = document.getElementById('to-signup-line');
        if (line) line.hidden = true;
      }
      if (p.password_reset_mail) initForgot();
    }
  })
  .catch(() => {});

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

  if (mode === 'signup' && signups === 'invite' && !inviteInput.value.trim()) {
    showError('Enter the invite code you were given.', inviteInput);
    inviteInput.focus();
    return;
  }

  submit.disabled = true;
  submit.textContent = mode === 'signup' ? 'Creating account…' : 'Signing in…';
  showError('');
  try {
    const body = { email, password };
    if (mode === 'signup' && signups === 'invite') body.invite_code = inviteInput.value.trim();
    await api('POST', mode === 'signup' ? '/api/auth/signup' : '/api/auth/login', body);
    location.assign(AFTER_AUTH);
  } catch (err) {
    showError(err.message);
    submit.disabled = false;
    submit.textContent = submitLabel;
  }
});

/** "Forgot password" by mail, when the server sends mail: always the server's one sentence. */
function initForgot() {
  const forgotForm = document.getElementById('forgot-form');
  const hint = document.querySelector('[data-testid="forgot"]');
  if (!forgotForm) return;
  if (hint) hint.hidden = true;
  forgotForm.hidden = false;
  const input = forgotForm.elements.namedItem('forgot_email');
  const status = document.getElementById('forgot-status');
  forgotForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const email = input.value.trim() || emailInput.value.trim();
    if (!validEmail(email)) {
      status.textContent = 'Enter a valid email address, like name@example.com.';
      input.setAttribute('aria-invalid', 'true');
      return;
    }
    input.removeAttribute('aria-invalid');
    try {
      const res = await api('POST', '/api/auth/forgot', { email });
      status.textContent = res.message;
    } catch (err) {
      status.textContent = err.message;
    }
  });
}
