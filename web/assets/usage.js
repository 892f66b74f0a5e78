// Usage view: the credits balance and plan, a 30-day chart of credits by model, the user's
// monthly budget, recent model calls and prices. Everything shown comes from GET /api/billing.
import { api, h, formatTime } from '/assets/api.js';
import { initOffers } from '/assets/billing-offers.js';

const DAY = 86_400;
const DAYS = 30;
/** Below this share of the month's grant, the balance is called low. */
const LOW_SHARE = 0.1;
const COLORS = ['#4f46e5', '#12a150', '#dc8a06', '#d92d20', '#0891b2', '#7c3aed'];
const number = new Intl.NumberFormat();

export function initUsage({ root }) {
  const $ = (sel) => root.querySelector(sel);
  const form = $('#budget-form');
  const input = form.elements.namedItem('budget');
  const offers = initOffers({ root, reload: () => load() });

  function show(el, message) {
    el.textContent = message || '';
    el.hidden = !message;
  }

  async function load() {
    let billing;
    try {
      billing = await api('GET', '/api/billing', undefined, { redirectOn401: true });
    } catch (e) {
      show($('#usage-error'), e.message);
      return;
    }
    show($('#usage-error'), '');
    render(billing);
  }

  function render(b) {
    $('#usage-balance').textContent = number.format(b.balance);
    $('#usage-plan').textContent = `${b.plan.name}: ${number.format(b.plan.monthly_credits)} credits a month`;
    $('#usage-spent').textContent =
      `${number.format(b.spent_this_month)} credits` +
      (b.monthly_budget == null ? '' : ` of your ${number.format(b.monthly_budget)} budget`);
    $('#usage-period-end').textContent = formatTime(b.period_end);
    show($('#usage-low'), lowBalance(b));
    if (document.activeElement !== input) input.value = b.monthly_budget == null ? '' : String(b.monthly_budget);
    renderChart(b.usage.by_day);
    offers.render(b);
    $('#usage-rows').replaceChildren(
      ...b.usage.recent.map((u) =>
        h('tr', { 'data-testid': 'usage-row' },
          h('td', {}, formatTime(u.at)),
          h('td', {}, u.model),
          h('td', {}, number.format(u.input_tokens)),
          h('td', {}, number.format(u.output_tokens)),
          h('td', {}, number.format(u.credits)))),
    );
    $('#usage-prices').replaceChildren(
      ...b.models.map((m) =>
        h('tr', {},
          h('td', {}, m.model),
          h('td', {}, number.format(m.input_per_million)),
          h('td', {}, number.format(m.output_per_million)))),
    );
  }

  function lowBalance(b) {
    if (b.balance <= 0) return "You're out of credits: your agent cannot call its model until the month renews.";
    if (b.plan.monthly_credits > 0 && b.balance < b.plan.monthly_credits * LOW_SHARE) {
      return `Your credits are running low: ${number.format(b.balance)} left.`;
    }
    return '';
  }

  /** Stacked bars, one per day, one colour per model; an SVG, so it scales and prints. */
  function renderChart(byDay) {
    const chart = $('#usage-chart');
    const caption = $('#usage-chart-caption');
    const today = Math.floor(Date.now() / 1000 / DAY) * DAY;
    const days = Array.from({ length: DAYS }, (_, i) => today - (DAYS - 1 - i) * DAY);
    const models = [...new Set(byDay.map((r) => r.model))].sort();
    const perDay = new Map(days.map((d) => [d, new Map()]));
    for (const r of byDay) perDay.get(r.day)?.set(r.model, r.credits);
    const totals = days.map((d) => [...perDay.get(d).values()].reduce((a, b) => a + b, 0));
    const max = Math.max(1, ...totals);
    const [w, hgt, gap] = [DAYS * 12, 120, 2];
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
    // Days fill the card's width, however wide it is.
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-labelledby', 'usage-chart-caption');
    days.forEach((day, i) => {
      let y = hgt;
      models.forEach((model, m) => {
        const credits = perDay.get(day).get(model) || 0;
        if (!credits) return;
        const barH = Math.max(1, (credits / max) * hgt);
        y -= barH;
        const rect = document.createElementNS(ns, 'rect');
        Object.entries({ x: i * 12 + gap / 2, y, width: 12 - gap, height: barH, fill: COLORS[m % COLORS.length] })
          .forEach(([k, v]) => rect.setAttribute(k, String(v)));
        rect.dataset.testid = 'usage-bar';
        const title = document.createElementNS(ns, 'title');
        title.textContent = `${new Date(day * 1000).toLocaleDateString()} · ${model}: ${number.format(credits)} credits`;
        rect.append(title);
        svg.append(rect);
      });
    });
    const spent = totals.reduce((a, b) => a + b, 0);
    caption.textContent = `${number.format(spent)} credits in the last ${DAYS} days` +
      (models.length ? `, across ${models.join(', ')}` : '');
    chart.replaceChildren(caption, svg);
    $('#usage-legend').replaceChildren(
      ...models.map((model, m) => {
        const credits = byDay.filter((r) => r.model === model).reduce((a, r) => a + r.credits, 0);
        const swatch = h('span', { class: 'swatch' });
        // Through the CSSOM: the page's CSP allows no inline style attributes.
        swatch.style.background = COLORS[m % COLORS.length];
        return h('li', { 'data-testid': 'usage-legend-item' }, swatch, `${model}: ${number.format(credits)} credits`);
      }),
    );
    $('#usage-empty').hidden = models.length > 0;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show($('#budget-saved'), '');
    const raw = input.value.trim();
    const value = raw === '' ? null : Number(raw);
    if (value !== null && (!Number.isInteger(value) || value < 0)) {
      show($('#budget-error'), 'Enter a whole number of credits, or leave it empty for no budget.');
      return;
    }
    try {
      await api('PUT', '/api/billing/budget', { monthly_credits: value }, { redirectOn401: true });
      show($('#budget-error'), '');
      show($('#budget-saved'), value === null ? 'No budget: your agent spends until your credits run out.' : `Saved: at most ${number.format(value)} credits a month.`);
      await load();
    } catch (e) {
      show($('#budget-error'), e.message);
    }
  });

  let timer = null;
  return {
    show() {
      load();
      timer = setInterval(load, 30_000);
    },
    hide() {
      clearInterval(timer);
    },
  };
}
