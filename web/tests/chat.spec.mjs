// Chat flow against a running Roost server with a working agent.
// Usage: ROOST_URL=http://127.0.0.1:8080 [EXPECT_REPLY=Hello] node chat.spec.mjs
// Env: CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default ../../target/screenshots)
import { run, assert, randomEmail } from './lib.mjs';

const PASSWORD = 'correct-horse-battery';
const EXPECT_REPLY = process.env.EXPECT_REPLY || 'Hello';
const READY_TIMEOUT = 120_000;
const REPLY_TIMEOUT = 120_000;

await run('chat', async (t) => {
  const { page, base } = t;
  const email = randomEmail('chat');

  const connState = () => page.getByTestId('conn').getAttribute('data-state');
  const messages = () => page.evaluate(() =>
    [...document.querySelectorAll('[data-testid="messages"] [data-testid="msg"]')].map((m) => ({
      role: m.dataset.role,
      state: m.dataset.state || '',
      text: m.textContent || '',
    })));
  const waitForConversation = (timeout) => page.waitForFunction((expect) => {
    const msgs = [...document.querySelectorAll('[data-testid="messages"] [data-testid="msg"]')];
    const user = msgs.some((m) => m.dataset.role === 'user' && m.textContent.includes('hello'));
    const reply = msgs.some((m) => m.dataset.role === 'assistant' && m.textContent.includes(expect));
    return user && reply;
  }, EXPECT_REPLY, { timeout, polling: 250 });

  await t.step('sign up and open /chat', async () => {
    await page.goto(`${base}/signup`);
    await page.getByTestId('email').fill(email);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await page.goto(`${base}/chat`);
    await page.getByTestId('composer').waitFor();
    await page.getByTestId('sessions').locator('[data-testid="session"]').first().waitFor();
    await t.shot('chat-opened');
  });

  await t.step('agent becomes ready (status panel shows real stages meanwhile)', async () => {
    const started = Date.now();
    let sawStatus = false;
    let shotStatus = false;
    while ((await connState()) !== 'connected') {
      if (Date.now() - started > READY_TIMEOUT) {
        const status = await page.getByTestId('status').textContent().catch(() => '');
        throw new Error(`not connected after ${READY_TIMEOUT / 1000}s (state=${await connState()}, status="${(status || '').trim()}")`);
      }
      if (await page.getByTestId('status').isVisible()) {
        sawStatus = true;
        if (!shotStatus) {
          shotStatus = true;
          await t.shot('waking-status');
        }
      }
      await page.waitForTimeout(250);
    }
    console.log(`     ready after ${Date.now() - started} ms${sawStatus ? ' (status panel was shown)' : ''}`);
    await page.getByTestId('status').waitFor({ state: 'hidden' });
    await t.shot('connected');
  });

  await t.step('Shift+Enter inserts a newline instead of sending', async () => {
    const composer = page.getByTestId('composer');
    await composer.click();
    await composer.type('line one');
    await page.keyboard.press('Shift+Enter');
    await composer.type('line two');
    const value = await composer.inputValue();
    assert(value === 'line one\nline two', `composer holds two lines (got ${JSON.stringify(value)})`);
    assert((await messages()).length === 0, 'nothing was sent');
    await composer.fill('');
  });

  await t.step(`send "hello" with Enter and get a reply containing "${EXPECT_REPLY}"`, async () => {
    const composer = page.getByTestId('composer');
    await composer.fill('hello');
    await composer.press('Enter');
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="msg"][data-role="user"]')]
      .some((m) => m.textContent.includes('hello')));
    assert((await composer.inputValue()) === '', 'composer cleared after sending');
    await waitForConversation(REPLY_TIMEOUT);
    // Wait for the reply to finish (final event) so history has it.
    await page.waitForFunction(() => {
      const a = [...document.querySelectorAll('[data-testid="msg"][data-role="assistant"]')].pop();
      return a && a.dataset.state === 'done';
    }, null, { timeout: REPLY_TIMEOUT });
    const errors = await page.locator('[data-testid="chat-error"], [data-testid="msg-error"]').count();
    assert(errors === 0, 'no chat errors shown');
    await t.shot('reply');
  });

  await t.step('reload keeps the conversation (history)', async () => {
    await page.reload();
    await page.getByTestId('composer').waitFor();
    await waitForConversation(READY_TIMEOUT);
    const msgs = await messages();
    assert(msgs.filter((m) => m.role === 'user').length >= 1, 'user message in history');
    assert(msgs.filter((m) => m.role === 'assistant').length >= 1, 'assistant message in history');
    await t.shot('after-reload');
    await page.waitForFunction(() => document.querySelector('[data-testid="conn"]')?.dataset.state === 'connected', null, { timeout: READY_TIMEOUT });
    await waitForConversation(READY_TIMEOUT);
    await t.shot('after-reload-connected');
  });
}, { timeoutMs: 30_000 });
