// Settings: change the password (the current one re-entered) and sign out every other session.
// Accounts that sign in through Clerk have no password here: the card is hidden for them.
import { api } from '/assets/api.js';
import { validEmail } from '/assets/email.js';

export function initAccountSecurity({ root, me }) {
  const $ = (sel) => root.querySelector(sel);
  const card = $('#security-card');
  if (me.auth === 'clerk') {
    card.hidden = true;
    return;
  }
  const form = $('#password-form');
  const errorEl = $('#password-error');
  const doneEl = $('#password-done');
  const current = form.elements.namedItem('current');
  const next = form.elements.namedItem('next');

  function say(error, done = '', field = null) {
    errorEl.textContent = error || '';
    errorEl.hidden = !error;
    doneEl.textContent = done;
    doneEl.hidden = !done;
    for (const input of [current, next]) {
      if (error && input === field) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }
  const others = (n) => (n === 1 ? '1 other session was signed out.' : `${n} other sessions were signed out.`);

  form.addEventListener('input', () => say(''));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!current.value) return say('Type your current password.', '', current);
    if (next.value.length < 8) return say('Your new password must be at least 8 characters long.', '', next);
    const btn = form.querySelector('button[type="submit"]');
    btn.disabled = true;
    try {
      const res = await api('POST', '/api/me/password', { current_password: current.value, new_password: next.value }, { redirectOn401: true });
      form.reset();
      say('', `Your password was changed. ${others(res.signed_out || 0)}`);
    } catch (err) {
      say(err.message, '', err.code === 'wrong_password' ? current : next);
    } finally {
      btn.disabled = false;
    }
  });

  initEmailChange($);

  $('#sign-out-others').addEventListener('click', async () => {
    try {
      const res = await api('POST', '/api/me/sign-out-others', {}, { redirectOn401: true });
      say('', res.signed_out ? others(res.signed_out) : 'You were not signed in anywhere else.');
    } catch (err) {
      say(err.message);
    }
  });
}

/** Change the email, the password re-entered; checked as sign-up checks it. */
function initEmailChange($) {
  const form = $('#email-form');
  const errorEl = $('#email-error');
  const doneEl = $('#email-done');
  const email = form.elements.namedItem('email');
  const password = form.elements.namedItem('password');
  const say = (error, done = '', field = null) => {
    errorEl.textContent = error || '';
    errorEl.hidden = !error;
    doneEl.textContent = done;
    doneEl.hidden = !done;
    for (const input of [email, password]) {
      if (error && input === field) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  };
  form.addEventListener('input', () => say(''));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!validEmail(email.value)) return say('Enter a valid email address, like name@example.com.', '', email);
    if (!password.value) return say('Type your password to change your email.', '', password);
    const btn = form.querySelector('button[type="submit"]');
    btn.disabled = true;
    try {
      const res = await api('POST', '/api/me/email', { new_email: email.value, password: password.value }, { redirectOn401: true });
      form.reset();
      for (const el of document.querySelectorAll('[data-testid="settings-email"], [data-testid="user-email"]')) {
        el.textContent = res.email;
        el.title = res.email;
      }
      say('', `Your email is now ${res.email}.`);
    } catch (err) {
      say(err.message, '', err.code === 'wrong_password' ? password : email);
    } finally {
      btn.disabled = false;
    }
  });
}
