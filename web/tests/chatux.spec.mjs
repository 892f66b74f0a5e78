// Chat UX (issue 13, items 5, 6, 9, 12 and 16) against a running Roost server with the
// simulated agent, whose chat commands give each kind of reply: `/say <text>` answers <text>,
// `/error <text>` fails with <text> as the agent's own error, `/tool <command>` runs its `exec`
// tool first (`/tool fail …` fails).
// Usage: ROOST_URL=… node chatux.spec.mjs
// Env: EXPECT_USUAL (the "usually about" the start-up shows, e.g. "20 s"); the server's simulated
// starts must be slow enough to be seen (the Rust test sets a 2 s stage delay).
import { run, assert, randomEmail } from './lib.mjs';

const PASSWORD = 'correct-horse-battery';
const EXPECT_USUAL = process.env.EXPECT_USUAL || '';
const UPSTREAM = 'No route-compatible authentication source is configured for openai.';

await run('chatux', async (t) => {
  const { page, base } = t;
  const consoleErrors = [];
  const failedRequests = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`); });
  page.on('response', (r) => { if (r.status() >= 400) failedRequests.push(`${r.status()} ${r.url()}`); });

  const lastAssistant = () => page.locator('[data-testid="msg"][data-role="assistant"]').last();
  const say = async (text) => {
    const before = await page.locator('[data-testid="msg"][data-role="assistant"]').count();
    await page.getByTestId('composer').fill(text);
    await page.getByTestId('composer').press('Enter');
    await page.waitForFunction((n) => {
      const all = [...document.querySelectorAll('[data-testid="msg"][data-role="assistant"]')];
      return all.length > n && !['pending', 'streaming'].includes(all[all.length - 1].dataset.state);
    }, before, { timeout: 30_000, polling: 50 });
    return lastAssistant();
  };

  await t.step('the sign-in and sign-up pages log no error, and make no failing request', async () => {
    for (const path of ['/login', '/signup']) {
      await page.goto(`${base}${path}`);
      await page.getByTestId('submit').waitFor();
      await page.waitForLoadState('networkidle');
    }
    assert(consoleErrors.length === 0, `no console errors (${JSON.stringify(consoleErrors)})`);
    assert(failedRequests.length === 0, `no failed requests (${JSON.stringify(failedRequests)})`);
    await t.shot('login-clean');
  });

  await t.step('an unknown page is the app\'s own "page not found", not JSON', async () => {
    const res = await page.goto(`${base}/no-such-page`);
    assert(res.status() === 404, `404 (got ${res.status()})`);
    await page.getByTestId('not-found').waitFor();
    const body = await page.textContent('body');
    assert(body.includes('Page not found') && !body.includes('"error"'), `a page, not JSON (${body.slice(0, 120)})`);
  });

  await t.step('sign-up errors read as sentences with what to do', async () => {
    await page.goto(`${base}/signup`);
    await page.getByTestId('email').fill('no-at-sign.example');
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    const err = (await page.getByTestId('form-error').textContent()).trim();
    assert(err === 'Enter a valid email address, like name@example.com.', `the page's email check (${err})`);
    // The server's rule is the page's: a domain without a dot passes neither.
    await page.getByTestId('email').fill('someone@localhost');
    await page.getByTestId('submit').click();
    const err2 = (await page.getByTestId('form-error').textContent()).trim();
    assert(err2 === err, `a dotless domain is refused by the page like the server (${err2})`);
  });

  await t.step('start-up shows plain stages, the time so far and the usual time', async () => {
    await page.getByTestId('email').fill(randomEmail('chatux'));
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    const status = page.getByTestId('status');
    await status.waitFor({ state: 'visible', timeout: 10_000 });
    const elapsed = page.getByTestId('status-elapsed');
    await page.waitForFunction(() => /so far/.test(document.querySelector('[data-testid="status-elapsed"]')?.textContent || ''),
      null, { timeout: 10_000, polling: 50 });
    const text = (await status.textContent()).replace(/\s+/g, ' ');
    assert(!/waiting for|simulated agent|preparing the/i.test(text), `no log words in the status (${text})`);
    const title = (await page.locator('#status-title').textContent()).trim();
    assert(/…$/.test(title) && /agent/.test(title), `a plain sentence for the stage (${title})`);
    const e = await elapsed.textContent();
    if (EXPECT_USUAL) assert(e.includes(`usually about ${EXPECT_USUAL}`), `the usual start time (${e})`);
    await t.shot('startup');
    await page.waitForFunction(() => document.querySelector('[data-testid="conn"]')?.dataset.state === 'connected',
      null, { timeout: 60_000, polling: 100 });
    await status.waitFor({ state: 'hidden' });
  });

  await t.step('a failed reply says what happened in Roost\'s words, never the agent\'s', async () => {
    const reply = await say(`/error ${UPSTREAM}`);
    const note = (await reply.getByTestId('msg-error').textContent()).trim();
    assert(!note.includes('openai') && !note.includes('route-compatible'), `no upstream text (${note})`);
    assert(/^Your agent could not finish this reply\. Try again/.test(note), `what happened and what to do (${note})`);
    // After a reload the saved end says the same.
    await page.reload();
    await page.getByTestId('msg-error').first().waitFor();
    const saved = (await page.getByTestId('msg-error').first().textContent()).trim();
    assert(saved === note, `the saved end reads the same (${saved})`);
    await page.waitForFunction(() => document.querySelector('[data-testid="conn"]')?.dataset.state === 'connected',
      null, { timeout: 30_000, polling: 100 });
  });

  await t.step('the page words errors itself: codes, statuses and agent text never show', async () => {
    const out = await page.evaluate(async () => {
      const { plainError, runErrorText } = await import('/assets/errors.js');
      const { ApiError } = await import('/assets/api.js');
      const shout = Object.assign(new Error('invalid chat.send params: must have required property'), { code: 'INVALID_REQUEST' });
      return {
        upstream: plainError(shout),
        timeout: plainError(Object.assign(new Error('x'), { code: 'timeout' })),
        limited: new ApiError(429, 'rate_limited', 'whatever', 40).message,
        internal: new ApiError(500, 'internal', 'panicked at src/main.rs:1').message,
        roost: new ApiError(409, 'email_taken', 'An account with this email already exists. Sign in instead.').message,
        lower: new ApiError(400, 'bad', 'title must be short').message,
        credits: runErrorText("You're out of credits, so your agent cannot answer. Buy more on the Usage page.", 'out_of_credits'),
        kind: runErrorText('429 from provider', 'rate_limit'),
      };
    });
    assert(!/INVALID|params/.test(out.upstream), `agent text replaced (${out.upstream})`);
    assert(out.limited === 'Too many attempts. Try again in 40 seconds.', out.limited);
    assert(!/panicked|src\//.test(out.internal) && /Try again/.test(out.internal), out.internal);
    assert(out.roost.startsWith('An account with this email'), `Roost's sentence kept (${out.roost})`);
    assert(!out.lower.includes('title must'), `a non-sentence replaced (${out.lower})`);
    assert(out.credits.startsWith("You're out of credits"), out.credits);
    assert(!out.kind.includes('429'), out.kind);
    for (const v of Object.values(out)) assert(/[.!?]$/.test(v) && /^[A-Z"Y]/.test(v), `a sentence: ${v}`);
  });

  await t.step('code blocks: language label, copy, sideways scroll, colour only when the language is named, safe', async () => {
    const long = `print("${'x'.repeat(400)}")`;
    const md = [
      'Here is code:', '', '```python', 'def hello():', '    return 42', long, '```', '',
      'And plain:', '', '```', 'SELECT * FROM users WHERE id = 1;', 'if (a) { return b; }', '```', '',
      '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> [link](javascript:window.__xss=3)',
    ].join('\n');
    const reply = await say(`/say ${md}`);
    const blocks = reply.locator('.code-block');
    assert((await blocks.count()) === 2, `two code blocks (${await blocks.count()})`);
    const langs = await reply.getByTestId('code-lang').allTextContents();
    assert(JSON.stringify(langs) === JSON.stringify(['python', 'text']), `labels ${JSON.stringify(langs)}`);
    const coloured = await blocks.nth(0).locator('code span[class^="hljs-"]').count();
    assert(coloured > 0, 'the python block is highlighted');
    const guessed = await blocks.nth(1).locator('code span').count();
    assert(guessed === 0, `the block without a language is not colour-guessed (${guessed} spans)`);
    const pre = await blocks.nth(0).locator('pre').evaluate((el) => ({ sw: el.scrollWidth, cw: el.clientWidth }));
    assert(pre.sw > pre.cw, `the long line scrolls inside the block (${JSON.stringify(pre)})`);
    const pageOverflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert(pageOverflow <= 0, `the page itself does not scroll sideways (${pageOverflow}px)`);
    const copy = blocks.nth(0).getByTestId('code-copy');
    assert((await copy.getAttribute('aria-label')) === 'Copy python code', 'the copy button is labelled');
    await copy.click();
    await page.waitForFunction((el) => el.textContent === 'Copied', await copy.elementHandle());
    const unsafe = await page.evaluate(() => ({
      xss: window.__xss, img: document.querySelectorAll('.markdown img').length,
      script: document.querySelectorAll('.markdown script').length,
      js: [...document.querySelectorAll('.markdown a')].filter((a) => /^javascript:/i.test(a.getAttribute('href') || '')).length,
    }));
    assert(!unsafe.xss && !unsafe.img && !unsafe.script && !unsafe.js, `nothing ran or loaded (${JSON.stringify(unsafe)})`);
    await t.shot('code-blocks');
  });

  await t.step('a tool call shows as a card: name, arguments, running then done, result folded', async () => {
    await page.getByTestId('composer').fill('/tool ls -la /workspace');
    await page.getByTestId('composer').press('Enter');
    const card = page.getByTestId('tool-card').last();
    await card.waitFor({ timeout: 10_000 });
    await page.waitForFunction(() => document.querySelector('[data-testid="thinking"]') !== null, null, { timeout: 5_000 });
    const running = await card.getAttribute('data-status');
    assert(running === 'running', `shown running while it runs (${running})`);
    assert((await card.getByTestId('tool-name').textContent()) === 'exec', 'the tool name');
    assert((await card.getByTestId('tool-args').textContent()) === 'command: ls -la /workspace', 'the arguments summarised');
    await t.shot('tool-running');
    await page.waitForFunction((el) => el.dataset.status === 'done', await card.elementHandle(), { timeout: 10_000 });
    assert(!(await card.evaluate((el) => el.open)), 'the result is folded');
    await card.locator('summary').click();
    const result = await card.getByTestId('tool-result').textContent();
    assert(result.includes('simulated output of `ls -la /workspace`'), `the result inside (${result})`);
    await page.waitForFunction(() => {
      const a = [...document.querySelectorAll('[data-testid="msg"][data-role="assistant"]')].pop();
      return a && a.dataset.state === 'done' && a.querySelector('[data-testid="tool-card"]');
    }, null, { timeout: 10_000 });
    await t.shot('tool-card');
    const failed = await say('/tool fail on purpose');
    const failedCard = failed.getByTestId('tool-card');
    assert((await failedCard.getAttribute('data-status')) === 'error', 'a failing tool is marked failed');
    assert((await failedCard.getByTestId('tool-status').textContent()) === 'Failed', 'and says so');
  });

  await t.step('per message: the time shows without hovering, Copy, and Retry of a failed reply', async () => {
    const times = page.getByTestId('msg-time');
    assert((await times.count()) > 0 && (await times.first().isVisible()), 'message times are visible');
    const copy = lastAssistant().getByTestId('msg-copy');
    await copy.click();
    await page.waitForFunction((el) => el.textContent === 'Copied', await copy.elementHandle());
    const failed = await say('/error the model provider said 502');
    const users = await page.locator('[data-testid="msg"][data-role="user"]').count();
    await failed.getByTestId('msg-retry').click();
    await page.waitForFunction((n) => {
      const msgs = [...document.querySelectorAll('[data-testid="msg"]')];
      const last = msgs[msgs.length - 1];
      return msgs.filter((m) => m.dataset.role === 'user').length === n + 1 && last.dataset.role === 'assistant'
        && last.dataset.state === 'error';
    }, users, { timeout: 10_000 });
    const lastUser = await page.locator('[data-testid="msg"][data-role="user"] .msg-body').last().textContent();
    assert(lastUser === '/error the model provider said 502', `Retry sent the same message again (${lastUser})`);
  });

  await t.step('chats: a title from the first message, "New chat" reuses the empty one, search, archive', async () => {
    const rows = page.getByTestId('sessions').locator('[data-testid="session"]');
    await page.getByTestId('new-session').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="session"][data-active="true"]')?.textContent.includes('New chat'));
    const fresh = await page.locator('[data-testid="session"][data-active="true"]').getAttribute('data-key');
    const count = await rows.count();
    await page.getByTestId('new-session').click();
    await page.waitForTimeout(300);
    assert((await rows.count()) === count, `no second empty chat (${await rows.count()} rows, was ${count})`);
    assert((await page.locator('[data-testid="session"][data-active="true"]').getAttribute('data-key')) === fresh, 'the empty one is reused');
    await say('/say Plan a trip to Rome');
    const row = page.locator(`[data-testid="session"][data-key="${fresh}"]`);
    await page.waitForFunction((k) => document.querySelector(`[data-testid="session"][data-key="${k}"]`)?.textContent.includes('/say Plan a trip to Rome'), fresh);
    assert((await page.getByTestId('chat-title').textContent()).includes('Plan a trip to Rome'), 'the header shows the title');
    // The server's title, after a reload.
    await page.reload();
    await page.waitForFunction((k) => document.querySelector(`[data-testid="session"][data-key="${k}"]`)?.textContent.includes('Plan a trip to Rome'), fresh);
    await page.getByTestId('session-search').fill('ROME');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="session"]').length === 1);
    await t.shot('chat-search');
    await page.getByTestId('session-search').fill('');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="session"]').length === n, count);
    await row.getByTestId('session-archive').click();
    await page.waitForFunction((k) => !document.querySelector(`[data-testid="session"][data-key="${k}"]`), fresh);
    await page.getByTestId('show-archived').click();
    await page.waitForFunction((k) => document.querySelector(`[data-testid="session"][data-key="${k}"]`), fresh);
    await row.getByTestId('session-unarchive').click();
    await page.getByTestId('show-archived').click();
    await page.waitForFunction((k) => document.querySelector(`[data-testid="session"][data-key="${k}"]`), fresh);
  });

  await t.step('settings: change the password (the current one re-entered), sign out everywhere else', async () => {
    await page.getByTestId('nav-settings').click();
    await page.getByTestId('password-form').waitFor();
    await page.getByTestId('password-current').fill('not my password');
    await page.getByTestId('password-new').fill('a fresh new password');
    await page.getByTestId('password-save').click();
    const err = page.getByTestId('password-error');
    await err.waitFor({ state: 'visible' });
    assert((await err.textContent()).startsWith('Your current password is not right'), `wrong password said plainly (${await err.textContent()})`);
    assert((await page.getByTestId('password-current').getAttribute('aria-invalid')) === 'true', 'and marked on the field');
    await page.getByTestId('password-current').fill(PASSWORD);
    await page.getByTestId('password-new').fill('a fresh new password');
    await page.getByTestId('password-save').click();
    await page.getByTestId('password-done').waitFor({ state: 'visible' });
    assert((await page.getByTestId('password-done').textContent()).startsWith('Your password was changed.'), 'changed');
    await page.getByTestId('sign-out-others').click();
    await page.waitForFunction(() => /signed in anywhere else|signed out/.test(document.querySelector('[data-testid="password-done"]').textContent));
    await t.shot('settings-security');
  });
}, { timeoutMs: 20_000 });
