// Settings: change the password (the current one re-entered) and sign out every other session.
// Accounts that sign in through Clerk have no password here: the card is hidden for them.
import { api } from '/assets/api.js';

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

  $('#sign-out-others').addEventListener('click', async () => {
    try {
      const res = await api('POST', '/api/me/sign-out-others', {}, { redirectOn401: true });
      say('', res.signed_out ? others(res.signed_out) : 'You were not signed in anywhere else.');
    } catch (err) {
      say(err.message);
    }
  });
}
