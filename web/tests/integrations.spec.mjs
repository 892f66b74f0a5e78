// The Integrations page against a running Roost with a real agent and the fake Telegram Bot API.
// Usage: ROOST_URL=… EMAIL=… PASSWORD=… BOT_TOKEN=… TELEGRAM_URL=… STRANGER_ID=… node integrations.spec.mjs
import { run, assert } from './lib.mjs';

const { EMAIL, PASSWORD, BOT_TOKEN, TELEGRAM_URL, STRANGER_ID } = process.env;

async function fake(path, body) {
  const res = await fetch(`${TELEGRAM_URL}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const json = await res.json();
  assert(json.ok, `fake telegram ${path}: ${JSON.stringify(json)}`);
  return json.result;
}

await run('integrations', async (t) => {
  const { page, base } = t;
  const seen = [];
  page.on('response', async (r) => {
    try { seen.push(`${r.url()} ${await r.text()}`); } catch { /* bodies of redirects and aborted requests */ }
  });
  page.on('websocket', (ws) => {
    ws.on('framereceived', (f) => seen.push(String(f.payload)));
    ws.on('framesent', (f) => seen.push(String(f.payload)));
  });
  const state = () => page.getByTestId('status-telegram').getAttribute('data-state');

  await t.step('log in and open Integrations', async () => {
    await page.goto(`${base}/login`);
    await page.getByTestId('email').fill(EMAIL);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await page.locator('.nav-links a[data-route="integrations"]').click();
    await page.waitForURL((u) => new URL(u).pathname === '/integrations');
    await page.getByTestId('token-telegram').waitFor();
    const note = (await page.getByTestId('integrations-always-on').textContent()).replace(/\s+/g, ' ');
    assert(note.includes('Your agent stays on while a bot is connected'), `the always-on note: ${note}`);
  });

  await t.step('a malformed token is explained and nothing is connected', async () => {
    await page.getByTestId('token-telegram').fill('123:short/../x');
    await page.getByTestId('connect-telegram').click();
    await page.getByTestId('note-telegram').waitFor();
    const note = await page.getByTestId('note-telegram').textContent();
    assert(note.includes('does not look like a Telegram bot token'), note);
    assert(await state() === 'disconnected', 'still not connected');
  });

  await t.step('connect the bot and see "connected" from the agent\'s live status', async () => {
    await page.getByTestId('token-telegram').fill(BOT_TOKEN);
    await page.getByTestId('connect-telegram').click();
    // The agent may be asleep (it stopped when the earlier bot left): the page shows its stages.
    const started = Date.now();
    const stages = new Set();
    const watch = setInterval(async () => {
      const text = await page.getByTestId('integrations-waking').textContent().catch(() => '');
      if (text && !stages.has(text)) {
        stages.add(text);
        console.log(`  +${Math.round((Date.now() - started) / 1000)} s: ${text}`);
      }
    }, 1000);
    try {
      await page.waitForFunction(() => document.querySelector('[data-testid="status-telegram"]')?.dataset.state === 'connected',
        null, { timeout: 180_000 });
    } finally {
      clearInterval(watch);
    }
    assert((await page.getByTestId('status-telegram').textContent()) === 'Connected', 'the badge says Connected');
    assert((await page.getByTestId('bot-telegram').getAttribute('href')).startsWith('https://t.me/'), 'the bot link');
    await t.shot('connected');
  });

  await t.step('a DM gives a pairing request, approved from the page', async () => {
    await fake('/_fake/deliver', { token: BOT_TOKEN, from_id: Number(STRANGER_ID), first_name: 'Grace', text: 'hi there' });
    await page.getByTestId('pairing-request').waitFor({ timeout: 60_000 });
    await t.shot('pairing');
    await page.getByTestId('pairing-approve').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="note-telegram"]')?.textContent.includes('may now talk'));
  });

  await t.step('the test message reaches the approved chat', async () => {
    await page.getByTestId('test-telegram').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="note-telegram"]')?.textContent.includes('Test message sent'));
    const sent = await fake('/_fake/sent', { token: BOT_TOKEN });
    assert(sent.some((m) => String(m.chat_id) === STRANGER_ID && m.text.startsWith('Hello from Roost')), JSON.stringify(sent));
  });

  await t.step('the page fits a phone', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert(!overflow, 'no horizontal scrolling at 390 px');
    await t.shot('phone');
    await page.setViewportSize({ width: 1280, height: 820 });
  });

  await t.step('disconnect', async () => {
    await page.getByTestId('disconnect-telegram').click();
    await page.getByTestId('disconnect-telegram').click();
    await page.getByTestId('token-telegram').waitFor({ timeout: 30_000 });
    assert(await state() === 'disconnected', 'not connected any more');
  });

  await t.step('the token was never in an answer or a socket frame', async () => {
    assert(seen.length > 10, `frames and answers were captured (${seen.length})`);
    const leaks = seen.filter((s) => s.includes(BOT_TOKEN));
    assert(!leaks.length, `the token came back: ${leaks[0]?.slice(0, 200)}`);
  });
}, { timeoutMs: 30_000 });
