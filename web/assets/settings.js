// Settings view: account info, backups, API tokens and account deletion.
import { api, h, formatTime, makeCopyButton } from '/assets/api.js';
import { initDeleteAccount } from '/assets/settings-delete.js';
import { initAccountSecurity } from '/assets/settings-account.js';
import { initLlmKey } from '/assets/settings-llm-key.js';
import { initBackup } from '/assets/settings-backup.js';

export function initSettings({ root, me, onLogout }) {
  const $ = (sel) => root.querySelector(sel);
  const form = $('#token-form');
  const errorEl = $('#token-error');
  const rows = $('#token-rows');
  const empty = $('#tokens-empty');
  const table = root.querySelector('table.tokens');
  const panel = $('#new-token-panel');
  const secretEl = $('#new-token');
  const webhookSecretEl = $('#new-webhook-secret');
  const createBtn = form.querySelector('button[type="submit"]');
  const nameInput = form.elements.namedItem('name');
  const expiresInput = form.elements.namedItem('expires');

  $('#settings-email').textContent = me.email;
  $('#settings-created').textContent = formatTime(me.created_at);
  $('#settings-logout').addEventListener('click', onLogout);
  const deletion = initDeleteAccount({ root, me });
  initAccountSecurity({ root, me });
  initLlmKey({ root });
  initBackup({ root });

  makeCopyButton($('#copy-token'), () => secretEl.textContent);
  makeCopyButton($('#copy-webhook-secret'), () => webhookSecretEl.textContent);
  $('#new-token-done').addEventListener('click', hideSecret);

  function showError(message) {
    errorEl.textContent = message || '';
    errorEl.hidden = !message;
  }

  function hideSecret() {
    secretEl.textContent = '';
    webhookSecretEl.textContent = '';
    panel.hidden = true;
  }

  function render(tokens) {
    const now = Date.now() / 1000;
    rows.replaceChildren(
      ...tokens.map((t) => {
        const expired = t.expires_at != null && t.expires_at <= now;
        const revoke = h('button', { type: 'button', class: 'btn btn-small btn-danger-ghost', 'data-testid': 'revoke', 'aria-label': `Revoke ${t.name}` }, 'Revoke');
        revoke.addEventListener('click', () => revokeToken(t, revoke));
        return h('tr', { 'data-testid': 'token-row', 'data-id': t.id },
          h('td', { class: 'token-name', 'data-label': 'Name' }, t.name),
          h('td', { 'data-label': 'Token' }, h('code', { class: 'prefix' }, `${t.prefix}…`)),
          h('td', { 'data-label': 'Created' }, formatTime(t.created_at)),
          h('td', { 'data-label': 'Expires' },
            t.expires_at == null ? h('span', { class: 'muted' }, 'Never') : formatTime(t.expires_at),
            expired ? h('span', { class: 'badge badge-warn' }, 'Expired') : null),
          h('td', { 'data-label': 'Last used' }, t.last_used_at == null ? h('span', { class: 'muted' }, 'Never') : formatTime(t.last_used_at)),
          h('td', { class: 'actions' }, revoke));
      }),
    );
    empty.hidden = tokens.length > 0;
    table.hidden = tokens.length === 0;
  }

  async function load() {
    try {
      const data = await api('GET', '/api/tokens', undefined, { redirectOn401: true });
      render(Array.isArray(data && data.tokens) ? data.tokens : []);
    } catch (err) {
      showError(`Couldn't load tokens. ${err.message}`);
    }
  }

  async function revokeToken(t, button) {
    if (!window.confirm(`Revoke the token "${t.name}"? Anything using it will stop working immediately.`)) return;
    button.disabled = true;
    showError('');
    try {
      await api('DELETE', `/api/tokens/${encodeURIComponent(t.id)}`, undefined, { redirectOn401: true });
    } catch (err) {
      button.disabled = false;
      showError(`Couldn't revoke. ${err.message}`);
      return;
    }
    await load();
  }

  form.addEventListener('input', () => showError(''));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = nameInput.value.trim();
    const daysRaw = expiresInput.value.trim();
    if (name.length < 1 || name.length > 64) {
      showError('Give the token a name (1 to 64 characters).');
      nameInput.focus();
      return;
    }
    const body = { name };
    if (daysRaw !== '') {
      const days = Number(daysRaw);
      if (!Number.isInteger(days) || days < 1 || days > 3650) {
        showError('Expiry must be a whole number of days between 1 and 3650, or empty for no expiry.');
        expiresInput.focus();
        return;
      }
      body.expires_in_days = days;
    }
    createBtn.disabled = true;
    showError('');
    try {
      const t = await api('POST', '/api/tokens', body, { redirectOn401: true });
      secretEl.textContent = t.token;
      webhookSecretEl.textContent = t.webhook_secret || '';
      panel.hidden = false;
      form.reset();
      await load();
      panel.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    } catch (err) {
      showError(err.message);
    } finally {
      createBtn.disabled = false;
    }
  });

  return {
    show() {
      load();
    },
    hide() {
      // Never leave a secret lying around on a view the user left.
      hideSecret();
      deletion.hide();
    },
  };
}
