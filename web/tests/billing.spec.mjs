// The Usage page's billing part against a Roost with billing on (a fake Stripe behind it), for a
// user with a saved card and a low balance; the server injects a declined card for the first
// auto-refill. Usage: ROOST_URL=… EMAIL=… PASSWORD=… PACK=… PLAN=… node billing.spec.mjs
import { run, assert } from './lib.mjs';

const { EMAIL, PASSWORD, PACK, PLAN } = process.env;

await run('billing', async (t) => {
  const { page, base } = t;
  const text = async (id) => (await page.getByTestId(id).textContent()).trim();
  // Stripe's pages are not reached from the test: a Checkout URL is answered here.
  let checkout = null;
  await page.route('https://checkout.stripe.com/**', (route) => {
    checkout = route.request().url();
    return route.fulfill({ status: 200, contentType: 'text/html', body: '<p>Stripe Checkout</p>' });
  });

  await t.step('the low-balance notice shows on every page, the chat included', async () => {
    await page.goto(`${base}/login`);
    await page.getByTestId('email').fill(EMAIL);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await page.getByTestId('app-low-balance').waitFor();
    assert((await text('app-low-balance')).includes('running low'), await text('app-low-balance'));
    await t.shot('billing-low-balance-chat');
  });

  await t.step('plans and packs are offered with their prices, and a pack goes to Checkout', async () => {
    await page.locator('.nav-links a[data-route="usage"]').click();
    await page.getByTestId('billing-offers').waitFor();
    assert(await page.getByTestId('app-low-balance').isVisible(), 'still shown on Usage');
    const plans = await text('offer-plans');
    assert(plans.includes('Pro') && plans.includes('$149'), plans);
    assert((await page.getByTestId(`plan-${PLAN}`).textContent()).includes('Choose this plan'), 'no plan yet: Checkout');
    const packs = await text('offer-packs');
    assert(packs.includes('1,000 credits') && packs.includes('$10'), packs);
    await t.shot('billing-offers');
    await page.getByTestId(`pack-${PACK}`).click();
    await page.waitForURL((u) => u.href.startsWith('https://checkout.stripe.com/c/pay/cs_test_'));
    assert(checkout, 'the browser was sent to Stripe Checkout');
    await page.goto(`${base}/usage`);
    await page.getByTestId('refill-card').waitFor();
  });

  await t.step('auto-refill: a bad cap is refused, a declined card is shown, saving again refills', async () => {
    await page.getByTestId('refill-cap').fill('0');
    await page.getByTestId('refill-save').click();
    await page.getByTestId('refill-error').waitFor();
    await page.getByTestId('refill-enabled').check();
    await page.getByTestId('refill-pack').selectOption(PACK);
    await page.getByTestId('refill-cap').fill('3000');
    await page.getByTestId('refill-save').click();
    await page.getByTestId('refill-saved').waitFor();
    // The worker charges within a few seconds; the page shows the decline on its next load.
    for (let i = 0; i < 30 && !(await page.getByTestId('refill-failure').isVisible()); i++) {
      await page.waitForTimeout(500);
      await page.reload();
      await page.getByTestId('refill-card').waitFor();
    }
    assert((await text('refill-failure')).includes('Your card was declined.'), await text('refill-failure'));
    await t.shot('billing-refill-declined');
    await page.getByTestId('refill-save').click();
    await page.getByTestId('refill-saved').waitFor();
    for (let i = 0; i < 30 && (await page.getByTestId('app-low-balance').isVisible()); i++) {
      await page.waitForTimeout(500);
      await page.reload();
      await page.getByTestId('refill-card').waitFor();
    }
    assert(await page.getByTestId('app-low-balance').isHidden(), 'refilled: no longer low');
    assert(await page.getByTestId('refill-failure').isHidden(), 'the failure is cleared');
    await t.shot('billing-refilled');
  });
});
