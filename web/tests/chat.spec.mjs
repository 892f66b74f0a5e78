// Chat flow against a running Roost server with a working agent.
// Usage: ROOST_URL=http://127.0.0.1:8080 [EXPECT_REPLY=Hello] node chat.spec.mjs
// Env: CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default ../../target/screenshots)
// DROP_MID_REPLY=1 adds a step that cuts the page's WebSocket mid-reply (needs an agent that
// streams for a few seconds, e.g. the real OpenClaw agent with the slow fake model).
import { run, assert, randomEmail } from './lib.mjs';

const PASSWORD = 'correct-horse-battery';
const EXPECT_REPLY = process.env.EXPECT_REPLY || 'Hello';
const READY_TIMEOUT = Number(process.env.READY_TIMEOUT_MS || 120_000);
const REPLY_TIMEOUT = 120_000;
const DROP_MID_REPLY = process.env.DROP_MID_REPLY === '1';
const DROP_TIMEOUT = 60_000;
const OUTAGE_MS = 1_500;

/** Cumulative text of a chat event (same rule as the page). */
function chatText(message) {
  if (!message) return null;
  if (typeof message === 'string') return message;
  const c = message.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) {
    return c.filter((p) => p && (p.type === 'text' || p.type === undefined) && typeof p.text === 'string')
      .map((p) => p.text).join('');
  }
  return typeof message.text === 'string' ? message.text : null;
}
const squash = (s) => String(s ?? '').replace(/\s+/g, ' ').trim();
const occurrences = (hay, needle) => (needle ? hay.split(needle).length - 1 : 0);

await run('chat', async (t) => {
  const { page, base } = t;
  const email = randomEmail('chat');

  // Every stage the page renders, however briefly (a simulated agent is ready in milliseconds).
  await page.addInitScript(() => {
    window.__stagesShown = [];
    new MutationObserver((records) => {
      for (const record of records) {
        for (const node of record.addedNodes) {
          if (node.nodeType !== 1) continue;
          for (const el of [node, ...node.querySelectorAll('[data-stage]')]) {
            if (el.dataset && el.dataset.stage) window.__stagesShown.push(el.dataset.stage);
          }
        }
      }
    }).observe(document, { childList: true, subtree: true });
  });

  // Record every WebSocket the page opens and the frames on it.
  const sockets = [];
  {
    page.on('websocket', (ws) => {
      const rec = { url: ws.url(), received: [], sent: [], closed: false };
      sockets.push(rec);
      const parse = (payload) => {
        try {
          return JSON.parse(typeof payload === 'string' ? payload : payload.toString());
        } catch {
          return null;
        }
      };
      ws.on('framereceived', (f) => { const v = parse(f.payload); if (v) rec.received.push(v); });
      ws.on('framesent', (f) => { const v = parse(f.payload); if (v) rec.sent.push(v); });
      ws.on('close', () => { rec.closed = true; });
    });
  }
  const until = async (what, fn, timeout = DROP_TIMEOUT) => {
    const started = Date.now();
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() - started > timeout) throw new Error(`timed out after ${timeout / 1000}s waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const waitConnected = (timeout) => page.waitForFunction(
    () => document.querySelector('[data-testid="conn"]')?.dataset.state === 'connected', null, { timeout, polling: 100 });

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
    // Sign-up lands on /chat, whose socket wakes the agent (its stages are checked below).
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
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
    // The agent was started for this page: Roost sent its real stages and the page showed them.
    const sentStages = sockets.flatMap((s) => s.received)
      .filter((f) => f.type === 'event' && f.event === 'roost.status')
      .map((f) => f.payload.stage);
    const realStages = ['installing_runtime', 'preparing_state', 'queued', 'starting', 'waiting_ready', 'restarting', 'ready'];
    assert(sentStages.length > 0 && sentStages.every((st) => realStages.includes(st)),
      `Roost sent real stages before ready (got ${JSON.stringify(sentStages)})`);
    const shown = await page.evaluate(() => window.__stagesShown);
    assert(shown.some((st) => sentStages.includes(st)),
      `the page showed a stage it was sent (sent ${JSON.stringify(sentStages)}, showed ${JSON.stringify(shown)})`);
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

  if (!DROP_MID_REPLY) return;
  await t.step('drop the socket mid-reply: it resumes and nothing is lost or repeated', async () => {
    await waitConnected(DROP_TIMEOUT);
    const before = sockets.length;
    assert(before > 0 && !sockets[before - 1].closed, 'the page has an open WebSocket');
    assert(t.net.openWebSockets() >= 1, 'the page socket goes through the drop proxy');
    const assistantsBefore = await page.locator('[data-testid="msg"][data-role="assistant"]').count();
    // Distinct marker words: an agent that echoes them makes repeats easy to spot.
    const markers = Array.from({ length: 40 }, (_, i) => `m${String(i + 1).padStart(2, '0')}x`);
    const prompt = `Please repeat these marker words back to me: ${markers.join(' ')}`;

    const composer = page.getByTestId('composer');
    await composer.fill(prompt);
    await composer.press('Enter');

    // The new assistant bubble, as soon as it streams some text.
    const handle = await page.waitForFunction((n) => {
      const b = [...document.querySelectorAll('[data-testid="messages"] [data-testid="msg"][data-role="assistant"]')][n];
      if (!b) return null;
      if (b.dataset.state === 'streaming' && b.textContent.trim()) return b;
      return b.dataset.state && b.dataset.state !== 'pending' && b.dataset.state !== 'streaming' ? b : null;
    }, assistantsBefore, { timeout: DROP_TIMEOUT, polling: 'raf' });
    const bubble = handle.asElement();
    const stateAtDrop = await bubble.evaluate((el) => el.dataset.state);
    assert(stateAtDrop === 'streaming', `the reply is still streaming when the socket is cut (state=${stateAtDrop}; the agent answered too fast for a mid-reply drop)`);
    // chat.send must have been answered, so the page knows the run (its runId) before the cut.
    const live = sockets[sockets.length - 1];
    const sendReq = live.sent.find((f) => f.type === 'req' && f.method === 'chat.send' && f.params?.message === prompt);
    assert(sendReq, 'chat.send went out on the live socket');
    const sendRes = await until('the chat.send response', () => live.received.find((f) => f.type === 'res' && f.id === sendReq.id), 10_000);
    assert(sendRes.ok, `chat.send succeeded (${JSON.stringify(sendRes.error || {})})`);
    const textAtDrop = squash(await bubble.evaluate((el) => el.querySelector('.msg-body').textContent));
    await t.shot('drop-1-streaming-before-cut');

    const cut = t.net.dropWebSockets(OUTAGE_MS);
    assert(cut >= 1, `the socket was cut (${cut} cut)`);
    await page.waitForFunction(() => document.querySelector('[data-testid="conn"]')?.dataset.state !== 'connected', null, { timeout: 10_000, polling: 50 });
    await t.shot('drop-2-reconnecting');
    const stateWhileDown = await bubble.evaluate((el) => el.dataset.state);
    await until('the cut socket to be seen closed', () => live.closed, 10_000);

    await waitConnected(DROP_TIMEOUT);
    await page.waitForFunction((el) => !['pending', 'streaming'].includes(el.dataset.state), bubble, { timeout: DROP_TIMEOUT, polling: 100 });
    const finalState = await bubble.evaluate((el) => el.dataset.state);
    assert(finalState === 'done', `the reply finished normally after the reconnect (state=${finalState})`);
    const liveText = squash(await bubble.evaluate((el) => el.querySelector('.msg-body').textContent));
    await t.shot('drop-3-resumed-and-done');

    // Protocol: the page resumed from the last event it saw, got no gap, nothing twice, no hole.
    const seqs = (rec) => rec.received.filter((f) => Number.isInteger(f.roostSeq)).map((f) => f.roostSeq);
    const lastSeen = Math.max(...seqs(live));
    const later = sockets.slice(sockets.indexOf(live) + 1);
    const resumed = later.find((rec) => rec.received.some((f) => f.event === 'roost.ready'));
    assert(resumed, `a new socket reached roost.ready (${later.length} attempt(s): ${later.map((r) => r.url).join(', ')})`);
    const epoch = live.received.find((f) => f.event === 'roost.ready')?.payload?.epoch;
    assert(typeof epoch === 'string' && epoch.length > 0, 'roost.ready carried the epoch');
    const resumeParam = new URL(resumed.url).searchParams.get('resume');
    assert(resumeParam === `${epoch}:${lastSeen}`, `reconnected with ?resume=${epoch}:${lastSeen} (url ${resumed.url})`);
    const gaps = sockets.flatMap((rec) => rec.received).filter((f) => f.event === 'roost.gap');
    assert(gaps.length === 0, `no roost.gap was sent (${JSON.stringify(gaps)})`);
    const after = seqs(resumed);
    assert(after.length > 0 && after[0] === lastSeen + 1, `replay starts right after ${lastSeen} (got ${after[0]})`);
    assert(after.every((s, i) => i === 0 || s === after[i - 1] + 1), `seqs after the resume are contiguous (${after.join(',')})`);

    const runId = sendRes.payload?.runId;
    const chatEvents = [live, resumed].flatMap((rec) => rec.received)
      .filter((f) => f.event === 'chat' && f.payload && (!runId || f.payload.runId === runId) && f.payload.sessionKey);
    const runSeqs = chatEvents.map((f) => f.roostSeq);
    assert(new Set(runSeqs).size === runSeqs.length, 'no chat event reached the page twice');
    const final = chatEvents.find((f) => f.payload.state === 'final');
    assert(final, 'the final chat event reached the page');
    assert(final.roostSeq > lastSeen, `the reply was cut mid-way: its final event (seq ${final.roostSeq}) came after the resume point ${lastSeen}`);
    const deltas = chatEvents.filter((f) => f.payload.state === 'delta');
    const replayedDeltas = deltas.filter((f) => f.roostSeq > lastSeen).length;
    let prev = '';
    for (const d of deltas) {
      const text = chatText(d.payload.message) ?? '';
      assert(text.startsWith(prev), `each delta extends the previous one (seq ${d.roostSeq}: ${JSON.stringify(text.slice(0, 80))} after ${JSON.stringify(prev.slice(0, 80))})`);
      prev = text;
    }
    const finalText = chatText(final.payload.message) ?? '';
    assert(finalText.startsWith(prev), 'the final text extends the last delta');

    // The page: no gap/error notice, the streamed text kept going from where it was cut.
    const notes = await page.locator('[data-testid="chat-note"], [data-testid="chat-error"], [data-testid="msg-error"], [data-testid="msg-note"], [data-testid="stale-note"]').allTextContents();
    assert(notes.length === 0, `no notice was shown (${JSON.stringify(notes)})`);
    assert(liveText.startsWith(textAtDrop), `the text streamed before the cut is the start of the final text (${JSON.stringify(textAtDrop)})`);
    const firstChunk = squash(chatText(deltas[0]?.payload.message) ?? '');
    assert(firstChunk && occurrences(liveText, firstChunk) === 1, `the first chunk ${JSON.stringify(firstChunk)} appears once in ${JSON.stringify(liveText)}`);
    const repeated = markers.filter((m) => occurrences(liveText, m) > 1);
    assert(repeated.length === 0, `no marker word appears twice (${repeated.join(' ')})`);

    // The server's history (a full reload) shows exactly the text the page built from the stream.
    await page.reload();
    await page.getByTestId('composer').waitFor();
    await waitConnected(DROP_TIMEOUT);
    const reloaded = await page.waitForFunction((p) => {
      const msgs = [...document.querySelectorAll('[data-testid="messages"] [data-testid="msg"]')];
      const u = msgs.findIndex((m) => m.dataset.role === 'user' && m.textContent.includes(p));
      const a = u >= 0 ? msgs.slice(u + 1).find((m) => m.dataset.role === 'assistant') : null;
      return a && a.dataset.state === 'done' ? a.querySelector('.msg-body').textContent : null;
    }, prompt, { timeout: DROP_TIMEOUT, polling: 250 });
    const historyText = squash(await reloaded.jsonValue());
    await t.shot('drop-4-after-reload');
    assert(historyText === liveText, `the reply after the cut equals the saved reply\n  page:    ${JSON.stringify(liveText)}\n  history: ${JSON.stringify(historyText)}`);
    const users = (await messages()).filter((m) => m.role === 'user' && m.text.includes(prompt)).length;
    assert(users === 1, `the message was sent once (${users} in history)`);
    console.log(`     cut at ${textAtDrop.split(' ').length} words (seq ${lastSeen}), state while down: ${stateWhileDown}, `
      + `${later.length} reconnect attempt(s), ${replayedDeltas} of ${deltas.length} deltas after the resume, `
      + `final seq ${final.roostSeq}, ${liveText.split(' ').length} words in the reply`);
  });
}, { timeoutMs: 30_000, dropProxy: DROP_MID_REPLY });
