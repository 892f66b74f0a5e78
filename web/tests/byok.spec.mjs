// Settings → "Your own model key": add, refuse, replace, see failing, remove. The key is never
// shown back, only its last four characters.
// Usage: ROOST_URL=… EMAIL=… PASSWORD=… GOOD_KEY=… GOOD_KEY2=… BAD_KEY=… MODEL=… FAILING_EMAIL=… node byok.spec.mjs
import { run, assert } from './lib.mjs';

const { EMAIL, PASSWORD, GOOD_KEY, GOOD_KEY2, BAD_KEY, MODEL, FAILING_EMAIL } = process.env;

await run('byok', async (t) => {
  const { page, base } = t;
  const text = async (id) => (await page.getByTestId(id).textContent()).trim();
  const noKeyInPage = async (key) => {
    const html = await page.content();
    const values = await page.$$eval('input', (inputs) => inputs.map((i) => i.value));
    assert(!html.includes(key) && !values.includes(key), 'the key is nowhere in the page');
  };
  const logIn = async (email) => {
    await page.context().clearCookies();
    await page.goto(`${base}/login`);
    await page.getByTestId('email').fill(email);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await page.goto(`${base}/settings`);
    await page.getByTestId('llm-key-card').waitFor();
  };

  await t.step('without a key, the agent uses the server\'s model', async () => {
    await logIn(EMAIL);
    await page.getByTestId('llm-key-none').waitFor();
    assert(await page.getByTestId('llm-key-current').isHidden(), 'no key is shown');
    assert((await text('llm-key-billing')).includes('cost no credits'), await text('llm-key-billing'));
  });

  await t.step('a key the provider refuses is not saved, and the error says why', async () => {
    await page.getByTestId('llm-key-input').fill(BAD_KEY);
    await page.getByTestId('llm-key-save').click();
    await page.getByTestId('llm-key-error').waitFor();
    assert((await text('llm-key-error')).includes('does not accept this key'), await text('llm-key-error'));
    assert(await page.getByTestId('llm-key-current').isHidden(), 'still no key');
  });

  await t.step('a good key is saved and shown by its last four only', async () => {
    await page.getByTestId('llm-key-input').fill(GOOD_KEY);
    await page.getByTestId('llm-key-model-input').fill(MODEL);
    await page.getByTestId('llm-key-save').click();
    await page.getByTestId('llm-key-current').waitFor();
    assert((await text('llm-key-last4')) === `…${GOOD_KEY.slice(-4)}`, await text('llm-key-last4'));
    assert((await text('llm-key-model')) === MODEL, await text('llm-key-model'));
    assert((await text('llm-key-status')) === 'Working', await text('llm-key-status'));
    await noKeyInPage(GOOD_KEY);
    await page.reload();
    await page.getByTestId('llm-key-current').waitFor();
    await noKeyInPage(GOOD_KEY);
    await page.getByTestId('llm-key-card').scrollIntoViewIfNeeded();
    await t.shot('byok-saved');
  });

  await t.step('replacing the key shows the new one', async () => {
    await page.getByTestId('llm-key-input').fill(GOOD_KEY2);
    await page.getByTestId('llm-key-model-input').fill(MODEL);
    await page.getByTestId('llm-key-save').click();
    await page.waitForFunction((want) => document.querySelector('[data-testid="llm-key-last4"]')?.textContent === want,
      `…${GOOD_KEY2.slice(-4)}`);
    await noKeyInPage(GOOD_KEY2);
  });

  await t.step('removing it returns to the server\'s model', async () => {
    await page.getByTestId('llm-key-remove').click();
    await page.getByTestId('llm-key-none').waitFor();
    assert(await page.getByTestId('llm-key-current').isHidden(), 'the key is gone');
  });

  await t.step('a key the provider stopped accepting shows as failing', async () => {
    await logIn(FAILING_EMAIL);
    await page.getByTestId('llm-key-current').waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid="llm-key-status"]')?.dataset.status === 'failing');
    assert((await text('llm-key-status')).startsWith('Failing'), await text('llm-key-status'));
    await page.getByTestId('llm-key-card').scrollIntoViewIfNeeded();
    await t.shot('byok-failing');
  });

  await t.step('the card fits a phone', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert(!overflow, 'no horizontal scrolling at 390 px');
  });
});
