// The low-balance notice at the top of every page, from GET /api/billing, refreshed each minute.
import { api } from '/assets/api.js';

const number = new Intl.NumberFormat();

export function initLowBalance(el) {
  async function check() {
    try {
      const b = await api('GET', '/api/billing');
      const text = b.balance <= 0
        ? "You're out of credits: your agent cannot call its model. Buy a pack on the Usage page."
        : b.low_balance ? `Your credits are running low: ${number.format(b.balance)} left. See the Usage page.` : '';
      el.textContent = text;
      el.hidden = !text;
    } catch {
      /* the pages show their own errors */
    }
  }
  check();
  setInterval(check, 60_000);
  return { check };
}
