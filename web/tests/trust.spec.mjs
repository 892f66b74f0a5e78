// What the chat page promises about sends, the connection, run ends and tabs (issue 13),
// against a running Roost server with the simulated agent, through a proxy that can cut or
// silence the page's WebSocket.
// Usage: ROOST_URL=… EMAIL=… PASSWORD=… node trust.spec.mjs
// The account's agent must answer slowly enough to be stopped (a long reply), and Roost must
// ping the browser often (--browser-ping-secs 1), so a silenced link is noticed quickly.
import { run, assert } from './lib.mjs';

const EMAIL = process.env.EMAIL;
const PASSWORD = process.env.PASSWORD || 'correct-horse-battery';

await run('trust', async (t) => {
  const { page, base } = t;
  const context = page.context();
  const sent = []; // every request frame any page sent
  const watch = (p) => p.on('websocket', (ws) => ws.on('framesent', (f) => {
    try {
      const v = JSON.parse(typeof f.payload === 'string' ? f.payload : f.payload.toString());
      if (v && v.type === 'req') sent.push(v);
    } catch { /* not JSON */ }
  }));
  watch(page);

  const conn = (p = page) => p.getByTestId('conn').getAttribute('data-state');
  const connected = (p = page) => p.waitForFunction(
    () => document.querySelector('[data-testid="conn"]')?.dataset.state === 'connected', null, { polling: 50 });
  const messages = (p = page) => p.evaluate(() =>
    [...document.querySelectorAll('[data-testid="messages"] [data-testid="msg"]')].map((m) => ({
      role: m.dataset.role, state: m.dataset.state || '', send: m.dataset.send || '',
      text: m.querySelector('.msg-body')?.textContent || '', note: m.querySelector('.msg-note')?.textContent || '',
    })));
  const settled = (p = page) => p.waitForFunction(() => {
    const msgs = [...document.querySelectorAll('[data-testid="messages"] [data-testid="msg"]')];
    const last = msgs[msgs.length - 1];
    const waiting = msgs.some((m) => m.dataset.send === 'queued' || m.dataset.send === 'sending');
    return last && last.dataset.role === 'assistant' && !['pending', 'streaming'].includes(last.dataset.state) && !waiting;
  }, null, { polling: 50 });
  const noErrors = async (p = page) => {
    const errors = await p.locator('[data-testid="chat-error"], [data-testid="msg-error"]').allTextContents();
    assert(errors.length === 0, `no error is shown (${JSON.stringify(errors)})`);
  };
  const say = async (text) => {
    await page.getByTestId('composer').fill(text);
    await page.getByTestId('composer').press('Enter');
  };

  await t.step('log in and connect', async () => {
    await page.goto(`${base}/login`);
    await page.getByTestId('email').fill(EMAIL);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await connected();
  });

  await t.step('going offline shows at once; what is typed meanwhile is queued, then sent in order', async () => {
    // What the indicator says the moment the browser reports offline (before any heartbeat is due).
    const atOffline = page.evaluate(() => new Promise((resolve) => window.addEventListener('offline',
      () => resolve(document.querySelector('[data-testid="conn"]')?.dataset.state), { once: true })));
    await context.setOffline(true);
    const shown = await atOffline;
    assert(shown === 'offline', `the indicator says offline at once (it said ${shown})`);
    assert(!(await page.getByTestId('send').isDisabled()), 'Send stays usable while offline');
    await say('queued one');
    await say('queued two');
    const queued = (await messages()).filter((m) => m.role === 'user');
    assert(queued.length === 2 && queued.every((m) => m.send === 'queued'), `both are shown queued (${JSON.stringify(queued)})`);
    await t.shot('queued-while-offline');
    await context.setOffline(false);
    await connected();
    await settled();
    const msgs = await messages();
    const order = msgs.map((m) => (m.role === 'user' ? m.text : m.role));
    assert(JSON.stringify(order) === JSON.stringify(['queued one', 'assistant', 'queued two', 'assistant']),
      `sent in order, each answered once (${JSON.stringify(order)})`);
    assert(msgs.filter((m) => m.role === 'user').every((m) => m.send === 'delivered'), 'both delivered');
    await noErrors();
  });

  await t.step('a link that goes silent is noticed from the missed heartbeats; the send is delivered once, never "Couldn\'t send"', async () => {
    const stalled = t.net.stallWebSockets();
    assert(stalled >= 1, 'the page socket was silenced');
    await say('sent into the void');
    // The frame reached Roost and the agent; its answer did not reach the page.
    await page.waitForFunction(() => document.querySelector('[data-testid="conn"]')?.dataset.state !== 'connected', null, { polling: 50 });
    await t.shot('silent-link-noticed');
    await connected();
    await settled();
    await noErrors();
    assert((await page.getByTestId('composer').inputValue()) === '', 'the text was not put back in the composer');
    const tries = sent.filter((f) => f.method === 'chat.send' && f.params?.message === 'sent into the void');
    assert(tries.length >= 2, `it was sent again after the reconnect (${tries.length} tries)`);
    assert(new Set(tries.map((f) => f.params.idempotencyKey)).size === 1, 'every try has the same idempotency key');
    const msgs = await messages();
    assert(msgs.filter((m) => m.text === 'sent into the void').length === 1, 'shown once');
    assert(msgs.filter((m) => m.role === 'assistant').length === 3, `answered once (${JSON.stringify(msgs.map((m) => m.role))})`);
  });

  let other;
  await t.step('a message sent in one tab shows in the other tab before its reply', async () => {
    other = await context.newPage();
    await other.goto(`${base}/chat`);
    await connected(other);
    await settled(other);
    const before = (await messages(other)).length;
    await say('from tab A');
    await settled();
    await other.waitForFunction((n) => document.querySelectorAll('[data-testid="messages"] [data-testid="msg"]').length >= n + 2
      && [...document.querySelectorAll('[data-testid="messages"] [data-testid="msg"]')].pop().dataset.state === 'done', before, { polling: 50 });
    const added = (await messages(other)).slice(before);
    assert(added.length === 2 && added[0].role === 'user' && added[0].text === 'from tab A' && added[1].role === 'assistant',
      `tab B shows the message, then the reply (${JSON.stringify(added)})`);
    await t.shot('tab-b');
  });

  await t.step('a stopped reply still says "Stopped." after a reload', async () => {
    await say('this one gets stopped');
    await page.waitForFunction(() => {
      const a = [...document.querySelectorAll('[data-testid="messages"] [data-testid="msg"][data-role="assistant"]')].pop();
      return a && a.dataset.state === 'streaming' && a.textContent.trim();
    }, null, { polling: 'raf' });
    await page.getByTestId('stop').click();
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="msg"][data-role="assistant"]')].pop()?.dataset.state === 'aborted', null, { polling: 50 });
    await page.reload();
    await connected();
    // Whether the agent's own history or the saved copy answers first (a busy agent is slow to),
    // the stopped reply comes back marked: wait for it rather than read the first render.
    await page.waitForFunction(() => {
      const msgs = [...document.querySelectorAll('[data-testid="messages"] [data-testid="msg"]')];
      const last = msgs[msgs.length - 1];
      return msgs.some((m) => m.textContent.includes('this one gets stopped'))
        && last?.dataset.role === 'assistant' && last.dataset.state === 'aborted';
    }, null, { polling: 50, timeout: 30000 });
    const msgs = await messages();
    const last = msgs[msgs.length - 1];
    assert(last.role === 'assistant' && last.state === 'aborted' && last.note === 'Stopped.', `the cut-off reply is marked (${JSON.stringify(last)})`);
    const sentOnce = ['queued one', 'queued two', 'sent into the void', 'from tab A'].every((x) => msgs.filter((m) => m.text === x).length === 1);
    assert(sentOnce, `history has each message once (${JSON.stringify(msgs.map((m) => m.text.slice(0, 20)))})`);
    await t.shot('stopped-after-reload');
  });
  await other?.close();
}, { dropProxy: true });
