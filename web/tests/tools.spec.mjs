// A tool call shows as a card (issue 13 item 5), against a running Roost server whose agent's
// model asks for one tool call on the next message: name, arguments summarised, "thinking"
// while the agent works, running then done, the result folded; and the card is still there
// after a reload, from the agent's own history.
// Usage: ROOST_URL=… EMAIL=… PASSWORD=… EXPECT_ARGS=… EXPECT_RESULT=… EXPECT_REPLY=… node tools.spec.mjs
import { run, assert } from './lib.mjs';

const { EMAIL, EXPECT_ARGS, EXPECT_RESULT, EXPECT_REPLY } = process.env;
const PASSWORD = process.env.PASSWORD || 'correct-horse-battery';
const TOOL = process.env.EXPECT_TOOL || 'exec';
const PROMPT = 'Please greet me with a command.';

await run('tools', async (t) => {
  const { page, base } = t;
  const lastAssistant = () => page.locator('[data-testid="msg"][data-role="assistant"]').last();
  const connected = () => page.waitForFunction(
    () => document.querySelector('[data-testid="conn"]')?.dataset.state === 'connected', null, { polling: 50 });

  await t.step('log in and connect', async () => {
    await page.goto(`${base}/login`);
    await page.getByTestId('email').fill(EMAIL);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await connected();
  });

  let cardText;
  await t.step('the agent\'s tool call shows as a card while it runs, then done with its result folded', async () => {
    const before = await page.getByTestId('tool-card').count();
    await page.getByTestId('composer').fill(PROMPT);
    await page.getByTestId('composer').press('Enter');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="tool-card"]').length > n, before,
      { timeout: 120_000, polling: 50 });
    const card = page.getByTestId('tool-card').last();
    assert((await card.getByTestId('tool-name').textContent()) === TOOL, 'the tool name');
    const args = await card.getByTestId('tool-args').textContent();
    assert(args === EXPECT_ARGS, `the arguments summarised (${args})`);
    await page.waitForFunction((el) => el.dataset.status === 'done', await card.elementHandle(), { timeout: 120_000 });
    assert(!(await card.evaluate((el) => el.open)), 'the result is folded');
    await card.locator('summary').click();
    const result = await card.getByTestId('tool-result').textContent();
    assert(result.includes(EXPECT_RESULT), `the command's real output is inside (${result})`);
    await page.waitForFunction(() => {
      const a = [...document.querySelectorAll('[data-testid="msg"][data-role="assistant"]')].pop();
      return a && a.dataset.state === 'done';
    }, null, { timeout: 120_000, polling: 50 });
    const reply = await lastAssistant().locator('.msg-body').textContent();
    assert(reply.includes(EXPECT_REPLY), `the answer after the tool (${reply})`);
    cardText = await card.getByTestId('tool-args').textContent();
    await t.shot('tool-card');
  });

  await t.step('after a reload the card is still there, done, from the agent\'s history', async () => {
    await page.reload();
    await connected();
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="msg"]')]
      .some((m) => m.textContent.includes('Please greet me with a command.')), null, { timeout: 30_000, polling: 50 });
    const card = page.getByTestId('tool-card').last();
    await card.waitFor({ timeout: 30_000 });
    assert((await card.getByTestId('tool-name').textContent()) === TOOL, 'the tool name after a reload');
    assert((await card.getByTestId('tool-args').textContent()) === cardText, 'the same arguments after a reload');
    assert((await card.getAttribute('data-status')) === 'done', 'done after a reload');
    await card.locator('summary').click();
    const result = await card.getByTestId('tool-result').textContent();
    assert(result.includes(EXPECT_RESULT), `the result after a reload (${result})`);
    // The card sits in the reply it belongs to, before the reply's text.
    const order = await page.evaluate((prompt) => {
      const msgs = [...document.querySelectorAll('[data-testid="msg"]')];
      const i = msgs.findIndex((m) => m.textContent.includes(prompt));
      return msgs.slice(i, i + 2).map((m) => `${m.dataset.role}:${m.querySelector('[data-testid="tool-card"]') ? 'card' : ''}`);
    }, PROMPT);
    assert(JSON.stringify(order) === JSON.stringify(['user:', 'assistant:card']), `the prompt, then the reply with its card (${order})`);
    await t.shot('tool-card-after-reload');
  });
});
