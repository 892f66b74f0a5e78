// The Usage page's billing cards: plans (Checkout without a subscription, the Portal for a live
// one: the server decides), credit packs, and auto-refill. Shown only when billing is on.
import { api, h, formatTime } from '/assets/api.js';

const number = new Intl.NumberFormat();
const price = (cents) => (cents == null ? '' : ` · $${(cents / 100).toFixed(cents % 100 ? 2 : 0)}`);

export function initOffers({ root, reload }) {
  const $ = (sel) => root.querySelector(sel);
  const form = $('#refill-form');
  const show = (el, message) => {
    el.textContent = message || '';
    el.hidden = !message;
  };

  async function go(path, body) {
    show($('#offers-error'), '');
    try {
      const { url } = await api('POST', path, body, { redirectOn401: true });
      location.assign(url);
    } catch (e) {
      show($('#offers-error'), e.message);
    }
  }

  function render(b) {
    $('#billing-offers').hidden = !b.billing;
    $('#refill-card').hidden = !b.billing;
    if (!b.billing) return;
    const current = b.plan.id;
    $('#offer-plans').replaceChildren(
      ...b.plans.map((p) => {
        const mine = p.id === current;
        const label = mine ? 'Your plan' : current ? 'Change to this plan' : 'Choose this plan';
        const button = h('button', { type: 'button', class: 'btn btn-primary btn-small', 'data-testid': `plan-${p.id}` }, label);
        button.disabled = mine;
        button.addEventListener('click', () => go('/api/billing/checkout', { plan: p.id }));
        return h('li', {}, `${p.name}: ${number.format(p.monthly_credits)} credits a month${price(p.amount_cents)} `, button);
      }),
    );
    $('#offer-packs').replaceChildren(
      ...b.packs.map((p) => {
        const button = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': `pack-${p.id}` }, 'Buy');
        button.addEventListener('click', () => go('/api/billing/checkout', { pack: p.id }));
        return h('li', {}, `${p.name}: ${number.format(p.credits)} credits${price(p.amount_cents)} `, button);
      }),
    );
    $('#offer-portal').hidden = !current;
    $('#refill-threshold').textContent = number.format(b.low_balance_below);
    const refill = b.auto_refill;
    const select = form.elements.namedItem('pack');
    if (!root.contains(document.activeElement) || !form.contains(document.activeElement)) {
      select.replaceChildren(...b.packs.filter((p) => p.amount_cents != null).map((p) => h('option', { value: p.id }, p.name)));
      if (refill.pack) select.value = refill.pack;
      form.elements.namedItem('enabled').checked = refill.enabled;
      form.elements.namedItem('cap').value = refill.monthly_cap == null ? '' : String(refill.monthly_cap);
    }
    const failure = refill.last_failure;
    show($('#refill-failure'), failure ? `The last auto-refill failed (${formatTime(failure.at)}): ${failure.message} Save again to retry.` : '');
  }

  $('#offer-portal').addEventListener('click', () => go('/api/billing/portal'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show($('#refill-saved'), '');
    const cap = Number(form.elements.namedItem('cap').value.trim());
    if (!Number.isInteger(cap) || cap <= 0) {
      show($('#refill-error'), 'Enter the most credits a month auto-refill may buy, as a whole number.');
      return;
    }
    const body = { enabled: form.elements.namedItem('enabled').checked, pack: form.elements.namedItem('pack').value, monthly_cap: cap };
    try {
      await api('PUT', '/api/billing/auto-refill', body, { redirectOn401: true });
      show($('#refill-error'), '');
      show($('#refill-saved'), body.enabled ? `Saved: up to ${number.format(cap)} credits a month.` : 'Auto-refill is off.');
      await reload();
    } catch (e) {
      show($('#refill-error'), e.message);
    }
  });
  return { render };
}
