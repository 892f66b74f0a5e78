// Settings: "Delete account", behind a confirmation (the password for local accounts; Clerk
// accounts have none here, so they confirm with a dialog).
import { api } from '/assets/api.js';

export function initDeleteAccount({ root, me }) {
  const $ = (sel) => root.querySelector(sel);
  const start = $('#delete-start');
  const form = $('#delete-form');
  const errorEl = $('#delete-error');
  const password = form.elements.namedItem('password');
  const confirmBtn = form.querySelector('button[type="submit"]');
  const needsPassword = me.auth !== 'clerk';
  $('#delete-password-field').hidden = !needsPassword;

  function showError(message) {
    errorEl.textContent = message || '';
    errorEl.hidden = !message;
  }

  function close() {
    form.reset();
    form.hidden = true;
    start.hidden = false;
    showError('');
  }

  start.addEventListener('click', () => {
    start.hidden = true;
    form.hidden = false;
    (needsPassword ? password : confirmBtn).focus();
  });
  $('#delete-cancel').addEventListener('click', close);
  form.addEventListener('input', () => showError(''));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let body = {};
    if (needsPassword) {
      if (!password.value) {
        showError('Type your password to delete your account.');
        password.focus();
        return;
      }
      body = { password: password.value };
    } else if (!window.confirm('Delete your account, your agent and all its data? This cannot be undone.')) {
      return;
    }
    confirmBtn.disabled = true;
    showError('');
    try {
      await api('DELETE', '/api/me', body, { redirectOn401: true });
    } catch (err) {
      confirmBtn.disabled = false;
      showError(err.message);
      password.select();
      return;
    }
    location.replace('/login');
  });

  return { hide: close };
}
