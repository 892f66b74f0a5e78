// Integrations view: connect a Telegram or Discord bot, its live status (asked of the agent
// every few seconds while the page is open), a test message, DM pairing approvals, the DM
// policy, and disconnect. Tokens are sent once and never shown again.
import { api, h, formatRelative } from '/assets/api.js';

const REFRESH_MS = 3000;
/** How long a connect keeps retrying while the agent starts. */
const WAKE_LIMIT_MS = 5 * 60 * 1000;
const STATE_LABELS = { connected: 'Connected', connecting: 'Connecting', disconnected: 'Not connected', error: 'Error', unknown: 'Not known just now' };
const HELP = {
  telegram: 'In Telegram, message @BotFather, send /newbot, and paste the token it gives you (123456789:AA…).',
  discord: 'In the Discord Developer Portal: your application → Bot → Reset Token, and turn on the Message Content Intent.',
};
const POLICIES = [
  ['pairing', 'Pairing: strangers get a code, you approve them here'],
  ['allowlist', 'Only these user ids'],
  ['open', 'Anyone'],
];

export function initIntegrations({ root }) {
  const $ = (sel) => root.querySelector(sel);
  const listEl = $('#integrations-list');
  let timer = null;
  let visible = false;
  let data = null;
  let pairing = {};
  /** Messages shown under each card until the next action there. */
  const notes = {};
  const busy = new Set();
  let confirmDisconnect = null;

  function message(el, text) {
    el.textContent = text || '';
    el.hidden = !text;
  }

  async function load() {
    try {
      data = await api('GET', '/api/integrations', undefined, { redirectOn401: true });
      message($('#integrations-error'), '');
    } catch (e) {
      message($('#integrations-error'), e.message);
      return;
    }
    await Promise.all(
      data.channels.filter((c) => c.connected && c.dm_policy === 'pairing').map(async (c) => {
        try {
          pairing[c.channel] = (await api('GET', `/api/integrations/${c.channel}/pairing`)).requests;
        } catch (e) {
          pairing[c.channel] = null;
        }
      }),
    );
    render();
  }

  function schedule() {
    clearTimeout(timer);
    if (visible) timer = setTimeout(async () => { await load(); schedule(); }, REFRESH_MS);
  }

  async function act(channel, fn) {
    if (busy.has(channel)) return;
    busy.add(channel);
    notes[channel] = null;
    render();
    try {
      await fn();
    } catch (e) {
      notes[channel] = { kind: 'error', text: e.message };
    } finally {
      busy.delete(channel);
    }
    await load();
  }

  async function machineStage() {
    try {
      const m = await api('GET', '/api/machine');
      return m.detail ? `${m.stage.replaceAll('_', ' ')}: ${m.detail}` : m.stage.replaceAll('_', ' ');
    } catch {
      return 'starting';
    }
  }

  /** Connects, retrying while the agent wakes and showing its stages. */
  async function connect(channel, token) {
    const deadline = Date.now() + WAKE_LIMIT_MS;
    const waking = $('#integrations-waking');
    try {
      for (;;) {
        try {
          const result = await api('POST', `/api/integrations/${channel}`, { token });
          notes[channel] = { kind: 'ok', text: `${result.bot.name || result.bot.username} is connected.` };
          return;
        } catch (e) {
          if (!['agent_starting', 'agent_unreachable'].includes(e.code) || Date.now() > deadline) throw e;
          message(waking, `Your agent is waking up so the bot can be connected (${await machineStage()}). This page keeps trying.`);
          await new Promise((r) => setTimeout(r, 3000));
        }
      }
    } finally {
      message(waking, '');
    }
  }

  function statusBadge(c) {
    const state = c.status.state;
    return h('span', { class: 'int-state', dataset: { state }, 'data-testid': `status-${c.channel}` }, STATE_LABELS[state] || state);
  }

  function activity(c) {
    const ms = (v) => (v ? formatRelative(Math.floor(v / 1000)) : 'never');
    return h('p', { class: 'muted', 'data-testid': `activity-${c.channel}` },
      `Last message in: ${ms(c.status.last_inbound_at)} · last reply: ${ms(c.status.last_outbound_at)}`);
  }

  function connectForm(c) {
    const input = h('input', {
      type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', maxlength: '200',
      placeholder: 'Bot token', 'aria-label': `${c.label} bot token`, 'data-testid': `token-${c.channel}`,
    });
    const form = h('form', { class: 'token-form', novalidate: true },
      h('label', { class: 'field' }, h('span', {}, 'Bot token'), input),
      h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': `connect-${c.channel}`, disabled: busy.has(c.channel) },
        busy.has(c.channel) ? 'Connecting…' : 'Connect'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = input.value;
      input.value = '';
      act(c.channel, () => connect(c.channel, token));
    });
    return [h('p', { class: 'muted' }, HELP[c.channel]), form];
  }

  function policyForm(c) {
    const select = h('select', { 'data-testid': `policy-${c.channel}`, 'aria-label': 'Who may message the bot' },
      ...POLICIES.map(([v, label]) => h('option', { value: v, selected: v === c.dm_policy }, label)));
    const ids = h('input', { placeholder: 'Numeric user ids, comma-separated', value: c.allow_from.join(', '),
      'aria-label': 'Allowed user ids', 'data-testid': `allow-${c.channel}` });
    ids.hidden = c.dm_policy !== 'allowlist';
    select.addEventListener('change', () => { ids.hidden = select.value !== 'allowlist'; });
    const save = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': `policy-save-${c.channel}` }, 'Save');
    save.addEventListener('click', () => act(c.channel, async () => {
      const allow_from = ids.value.split(',').map((s) => s.trim()).filter(Boolean);
      await api('PUT', `/api/integrations/${c.channel}/policy`, { dm_policy: select.value, allow_from });
      notes[c.channel] = { kind: 'ok', text: 'Saved who may message the bot.' };
    }));
    return h('div', { class: 'int-policy' }, h('span', {}, 'Who may DM the bot: '), select, ids, save);
  }

  function pairingList(c) {
    const requests = pairing[c.channel];
    if (c.dm_policy !== 'pairing') return null;
    if (requests == null) return h('p', { class: 'muted' }, 'Pairing requests show here once your agent is running.');
    if (!requests.length) {
      return h('p', { class: 'muted', 'data-testid': `pairing-empty-${c.channel}` },
        `No one is waiting. Message your bot in ${c.label}: your request shows here to approve.`);
    }
    return h('ul', { class: 'int-requests', 'data-testid': `pairing-${c.channel}` }, ...requests.map((r) => {
      const decide = (action) => act(c.channel, async () => {
        await api('POST', `/api/integrations/${c.channel}/pairing/${encodeURIComponent(r.id)}/${action}`);
        notes[c.channel] = { kind: 'ok', text: action === 'approve' ? `${r.sender || r.sender_id} may now talk to your agent.` : 'Request rejected.' };
      });
      return h('li', { 'data-testid': 'pairing-request' },
        h('span', {}, r.sender ? `${r.sender} (user id ${r.sender_id})` : `${c.label} user ${r.sender_id}`),
        h('button', { type: 'button', class: 'btn btn-primary btn-small', onclick: () => decide('approve'), 'data-testid': 'pairing-approve' }, 'Approve'),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => decide('reject'), 'data-testid': 'pairing-reject' }, 'Reject'));
    }));
  }

  function connectedBody(c) {
    const test = h('button', { type: 'button', class: 'btn', 'data-testid': `test-${c.channel}`, disabled: busy.has(c.channel) }, 'Send a test message');
    test.addEventListener('click', () => act(c.channel, async () => {
      await api('POST', `/api/integrations/${c.channel}/test`);
      notes[c.channel] = { kind: 'ok', text: `Test message sent: check your chat with the bot in ${c.label}.` };
    }));
    const sure = confirmDisconnect === c.channel;
    const off = h('button', { type: 'button', class: sure ? 'btn btn-danger' : 'btn btn-danger-ghost', 'data-testid': `disconnect-${c.channel}` },
      sure ? 'Click again to disconnect' : 'Disconnect');
    off.addEventListener('click', () => {
      if (!sure) {
        confirmDisconnect = c.channel;
        render();
        return;
      }
      confirmDisconnect = null;
      act(c.channel, async () => {
        await api('DELETE', `/api/integrations/${c.channel}`);
        notes[c.channel] = { kind: 'ok', text: 'Disconnected. The token was deleted from Roost and your agent.' };
      });
    });
    return [
      h('p', {}, 'Bot: ', h('a', { href: c.bot.link, target: '_blank', rel: 'noopener', 'data-testid': `bot-${c.channel}` }, c.bot.name || c.bot.username),
        c.bot.username ? ` (@${c.bot.username})` : ''),
      h('p', { class: 'muted', 'data-testid': `detail-${c.channel}` }, c.status.detail),
      activity(c),
      ...c.warnings.map((w) => h('p', { class: 'notice-low', 'data-testid': `warning-${c.channel}` }, w)),
      c.invite_url ? h('p', {}, h('a', { href: c.invite_url, target: '_blank', rel: 'noopener', 'data-testid': 'discord-invite' }, 'Add the bot to a Discord server')) : null,
      policyForm(c),
      pairingList(c),
      h('div', { class: 'int-actions' }, test, off),
      c.can_test ? null : h('p', { class: 'muted' }, 'The test message goes to your own chat with the bot: message it first and approve your request.'),
    ];
  }

  function render() {
    if (!data) return;
    const cards = data.channels.map((c) => {
      const note = notes[c.channel];
      return h('div', { class: 'card int-card', 'data-testid': `card-${c.channel}` },
        h('h2', {}, c.label, ' ', statusBadge(c)),
        !data.plan_allows_channels && !c.connected
          ? h('p', { class: 'notice-low' }, 'Your plan does not include bots. Upgrade on the Usage page to connect one.')
          : c.connected ? connectedBody(c) : connectForm(c),
        note ? h('p', { class: note.kind === 'error' ? 'form-error' : 'int-ok', role: note.kind === 'error' ? 'alert' : 'status',
          'data-testid': `note-${c.channel}` }, note.text) : null);
    });
    listEl.replaceChildren(...cards);
  }

  return {
    show() {
      visible = true;
      load().then(schedule);
    },
    hide() {
      visible = false;
      clearTimeout(timer);
      pairing = {};
    },
  };
}
