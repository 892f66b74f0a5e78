// Admin view (admins only): every account with its agent, age, memory, last activity and
// credits; one account's lifecycle events and ledger, with restart, re-provision, suspend and
// credit adjustments; invite codes; the audit log. Everything comes from /api/admin/*.
import { api, h, formatTime, formatRelative } from '/assets/api.js';

const number = new Intl.NumberFormat();

function age(createdAt, now) {
  const days = Math.floor((now - createdAt) / 86_400);
  if (days >= 1) return days === 1 ? '1 day' : `${days} days`;
  const hours = Math.floor((now - createdAt) / 3600);
  return hours >= 1 ? `${hours} h` : 'under an hour';
}

function memory(bytes) {
  if (bytes == null) return '—';
  return `${number.format(Math.round(bytes / (1024 * 1024)))} MB`;
}

function agentState(u) {
  if (u.suspended_at) return 'suspended';
  return u.machine_state ? u.machine_state.replace(/_/g, ' ') : 'never started';
}

export function initAdmin({ root, me }) {
  const $ = (sel) => root.querySelector(sel);
  let selected = null;

  function say(error, done = '') {
    $('#admin-error').textContent = error || '';
    $('#admin-error').hidden = !error;
    $('#admin-done').textContent = done;
    $('#admin-done').hidden = !done;
  }

  async function loadUsers() {
    const { users, now } = await api('GET', '/api/admin/users', undefined, { redirectOn401: true });
    $('#admin-user-rows').replaceChildren(
      ...users.map((u) =>
        h('tr', { 'data-testid': 'admin-user-row', dataset: { email: u.email || '' } },
          h('td', {}, u.email || '(Clerk account)', u.is_admin ? ' · admin' : ''),
          h('td', { 'data-testid': 'admin-user-state' }, agentState(u)),
          h('td', {}, age(u.created_at, now)),
          h('td', {}, memory(u.memory_bytes)),
          h('td', {}, u.last_activity_at ? formatRelative(u.last_activity_at) : '—'),
          h('td', { 'data-testid': 'admin-user-balance' }, number.format(u.balance)),
          h('td', {}, h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'admin-open',
            'aria-label': `Details of ${u.email || u.id}`, onclick: () => openUser(u.id) }, 'Details')))),
    );
  }

  async function openUser(id) {
    selected = id;
    const d = await api('GET', `/api/admin/users/${encodeURIComponent(id)}`, undefined, { redirectOn401: true });
    const u = d.user;
    $('#admin-user').hidden = false;
    $('#admin-user-title').textContent = u.email || u.id;
    $('#admin-user-facts').replaceChildren(
      h('dt', {}, 'Agent'), h('dd', { 'data-testid': 'admin-detail-state' }, `${agentState(u)}${u.machine_detail ? ` (${u.machine_detail})` : ''}`),
      h('dt', {}, 'Member since'), h('dd', {}, formatTime(u.created_at)),
      h('dt', {}, 'Memory'), h('dd', {}, memory(u.memory_bytes)),
      h('dt', {}, 'Credits'), h('dd', { 'data-testid': 'admin-detail-balance' }, number.format(u.balance)),
    );
    const suspended = Boolean(u.suspended_at);
    const own = u.id === me.id;
    $('#admin-suspend').textContent = suspended ? 'Unsuspend' : 'Suspend';
    $('#admin-suspend').hidden = own;
    $('#admin-restart').disabled = suspended;
    $('#admin-reprovision').disabled = suspended;
    $('#admin-event-rows').replaceChildren(
      ...d.events.map((e) => h('tr', {}, h('td', {}, formatTime(e.at)), h('td', {}, e.state), h('td', {}, e.reason))),
    );
    $('#admin-ledger-rows').replaceChildren(
      ...d.ledger.map((l) =>
        h('tr', { 'data-testid': 'admin-ledger-row' },
          h('td', {}, formatTime(l.at)), h('td', {}, l.entry_type),
          h('td', {}, `${l.delta > 0 ? '+' : ''}${number.format(l.delta)}`), h('td', {}, l.reference || ''))),
    );
  }

  async function loadInvites() {
    const { invites, now } = await api('GET', '/api/admin/invites', undefined, { redirectOn401: true });
    $('#admin-invite-rows').replaceChildren(
      ...invites.map((i) => {
        const state = i.revoked_at ? 'revoked' : i.uses_left === 0 ? 'used up' : i.expires_at && i.expires_at <= now ? 'expired' : 'live';
        return h('tr', { 'data-testid': 'admin-invite-row' },
          h('td', {}, h('code', {}, `${i.id}…`)), h('td', {}, `${i.uses_left} of ${i.uses}`),
          h('td', {}, formatTime(i.expires_at, 'never')), h('td', {}, state),
          h('td', {}, state === 'live'
            ? h('button', { type: 'button', class: 'btn btn-small btn-danger-ghost', 'aria-label': `Revoke ${i.id}`,
              onclick: () => act(() => api('DELETE', `/api/admin/invites/${encodeURIComponent(i.id)}`), 'The invite code was revoked.') }, 'Revoke')
            : ''));
      }),
    );
  }

  async function loadAudit() {
    const { audit } = await api('GET', '/api/admin/audit', undefined, { redirectOn401: true });
    $('#admin-audit-rows').replaceChildren(
      ...audit.map((a) =>
        h('tr', { 'data-testid': 'admin-audit-row' },
          h('td', {}, formatTime(a.at)), h('td', {}, a.actor_email || a.actor),
          h('td', {}, a.allowed ? a.action : `refused: ${a.action}`), h('td', {}, a.detail))),
    );
  }

  async function loadAll() {
    try {
      const policy = await api('GET', '/api/auth/policy');
      $('#admin-signups').textContent = {
        open: 'Sign-ups are open: anyone who reaches this server can make an account.',
        invite: 'Sign-ups need an invite code.',
        closed: 'Sign-ups are closed: invite codes are not accepted either.',
      }[policy.signups];
      await Promise.all([loadUsers(), loadInvites(), loadAudit()]);
      if (selected) await openUser(selected);
    } catch (err) {
      say(err.message);
    }
  }

  async function act(fn, done) {
    say('');
    try {
      await fn();
      say('', done);
    } catch (err) {
      say(err.message);
    }
    await loadAll();
  }

  $('#admin-restart').addEventListener('click', () =>
    act(() => api('POST', `/api/admin/users/${selected}/restart`), 'The agent is restarting.'));
  $('#admin-reprovision').addEventListener('click', () => {
    if (!window.confirm('Re-provisioning deletes this agent and all its data, then makes a new one. Go ahead?')) return;
    act(() => api('POST', `/api/admin/users/${selected}/reprovision`, { delete_data: true }), 'A fresh agent is being provisioned.');
  });
  $('#admin-suspend').addEventListener('click', () => {
    const unsuspend = $('#admin-suspend').textContent === 'Unsuspend';
    act(() => api('POST', `/api/admin/users/${selected}/${unsuspend ? 'unsuspend' : 'suspend'}`),
      unsuspend ? 'The account may sign in again.' : 'The account is suspended and its agent stopped.');
  });
  $('#admin-credits-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const delta = Number(form.elements.namedItem('delta').value);
    const reason = form.elements.namedItem('reason').value.trim();
    if (!Number.isInteger(delta) || delta === 0) return say('Enter a whole number of credits other than 0, like 500 or -200.');
    if (reason.length < 3) return say('Give a reason of 3 to 200 characters; it is kept in the audit log.');
    act(async () => {
      const res = await api('POST', `/api/admin/users/${selected}/credits`, { delta, reason });
      form.reset();
      return res;
    }, 'The credits were adjusted.');
  });
  $('#admin-invite-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    say('');
    try {
      const made = await api('POST', '/api/admin/invites', {
        uses: Number(form.elements.namedItem('uses').value), expires_in: form.elements.namedItem('expires').value.trim(),
      });
      $('#admin-invite-code').textContent = made.code;
      $('#admin-new-invite').hidden = false;
    } catch (err) {
      say(err.message);
    }
    await loadAll();
  });

  return {
    show() {
      loadAll();
    },
    hide() {
      $('#admin-new-invite').hidden = true;
    },
  };
}
