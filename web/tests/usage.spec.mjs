// The Usage page against a running Roost whose user has already made model calls.
// Usage: ROOST_URL=… EMAIL=… PASSWORD=… EXPECT_BALANCE=… EXPECT_SPENT=… EXPECT_MODEL=… node usage.spec.mjs
import { run, assert } from './lib.mjs';

const { EMAIL, PASSWORD, EXPECT_BALANCE, EXPECT_SPENT, EXPECT_MODEL } = process.env;
const format = (n) => new Intl.NumberFormat().format(Number(n));

await run('usage', async (t) => {
  const { page, base } = t;
  const text = async (id) => (await page.getByTestId(id).textContent()).trim();

  await t.step('log in and open Usage from the navigation', async () => {
    await page.goto(`${base}/login`);
    await page.getByTestId('email').fill(EMAIL);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await page.locator('.nav-links a[data-route="usage"]').click();
    await page.waitForURL((u) => new URL(u).pathname === '/usage');
    await page.waitForFunction((want) => document.querySelector('[data-testid="usage-balance"]')?.textContent === want,
      format(EXPECT_BALANCE));
  });

  await t.step('the balance, the month spent and the low-balance warning are the server\'s figures', async () => {
    assert((await text('usage-spent')).startsWith(`${format(EXPECT_SPENT)} credits`), `spent: ${await text('usage-spent')}`);
    assert(await page.getByTestId('usage-low').isVisible(), 'the low-balance warning shows');
    assert((await text('usage-low')).includes('running low'), await text('usage-low'));
  });

  await t.step('the chart has today\'s bar for the model, and the table lists each call', async () => {
    const bars = await page.getByTestId('usage-bar').count();
    assert(bars === 1, `one bar (one day, one model), got ${bars}`);
    assert((await text('usage-legend')).includes(`${EXPECT_MODEL}: ${format(EXPECT_SPENT)} credits`), await text('usage-legend'));
    const rows = await page.getByTestId('usage-row').count();
    assert(rows === 3, `three calls listed, got ${rows}`);
    assert(await page.getByTestId('usage-empty').isHidden(), 'no "no calls" note');
    await t.shot('usage');
  });

  await t.step('a budget is saved, shown, refused when invalid, and removed', async () => {
    const input = page.getByTestId('budget-input');
    await input.fill('-5');
    await page.getByTestId('budget-save').click();
    await page.getByTestId('budget-error').waitFor();
    await input.fill('40');
    await page.getByTestId('budget-save').click();
    await page.getByTestId('budget-saved').waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid="usage-spent"]')?.textContent.includes('of your 40 budget'));
    assert(await page.getByTestId('budget-error').isHidden(), 'the earlier error is gone');
    await t.shot('usage-budget');
    await input.fill('');
    await page.getByTestId('budget-save').click();
    await page.waitForFunction(() => !document.querySelector('[data-testid="usage-spent"]')?.textContent.includes('budget'));
  });

  await t.step('the page fits a phone', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert(!overflow, 'no horizontal scrolling at 390 px');
    await t.shot('usage-phone');
  });
});
