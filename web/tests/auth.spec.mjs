// Auth + API token flow against a running Roost server.
// Usage: ROOST_URL=http://127.0.0.1:8080 node auth.spec.mjs
// Env: CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default ../../target/screenshots)
import { run, assert, randomEmail } from './lib.mjs';

const PASSWORD = 'correct-horse-battery';

await run('auth', async (t) => {
  const { page, base } = t;
  const email = randomEmail('auth');
  let token = null;
  let webhookSecret = null;

  const bearerMe = (tok) => fetch(`${base}/api/me`, { headers: { Authorization: `Bearer ${tok}` } });
  const pagePath = () => new URL(page.url()).pathname;
  // A navigation the page replaces with another one (logging out also ends requests that then
  // redirect on 401) aborts; the one that follows is the one to wait for.
  const waitForPath = async (p, timeout) => {
    const at = (u) => new URL(u).pathname === p;
    try {
      await page.waitForURL(at, { timeout });
    } catch (e) {
      if (!String(e.message).includes('ERR_ABORTED')) throw e;
      await page.waitForURL(at, { timeout });
    }
  };

  await t.step('signed-out visit to /chat redirects to /login', async () => {
    await page.goto(`${base}/chat`);
    await waitForPath('/login');
    await page.getByTestId('login-form').waitFor();
    await t.shot('login-page');
  });

  await t.step('sign up with a fresh email lands in the app', async () => {
    await page.goto(`${base}/signup`);
    await page.getByTestId('signup-form').waitFor();
    await page.getByTestId('email').fill(email);
    await page.getByTestId('password').fill(PASSWORD);
    await t.shot('signup-filled');
    await page.getByTestId('submit').click();
    await waitForPath('/chat');
    const shown = page.getByTestId('user-email');
    await shown.waitFor();
    await page.waitForFunction((e) => document.querySelector('[data-testid="user-email"]')?.textContent === e, email);
    assert((await shown.textContent()) === email, `signed-in email shown (${await shown.textContent()})`);
    await t.shot('signed-up-app');
  });

  await t.step('log out goes to /login', async () => {
    await page.getByTestId('logout').click();
    await waitForPath('/login');
    await page.getByTestId('login-form').waitFor();
    await t.shot('logged-out');
  });

  await t.step('wrong password shows the server error', async () => {
    await page.getByTestId('email').fill(email);
    await page.getByTestId('password').fill('not-the-password');
    await page.getByTestId('submit').click();
    const err = page.getByTestId('form-error');
    await err.waitFor({ state: 'visible' });
    assert(((await err.textContent()) || '').trim().length > 0, 'an error message is shown');
    assert(pagePath() === '/login', 'still on /login');
    await t.shot('login-error');
  });

  await t.step('log in again', async () => {
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await waitForPath('/chat');
    await page.waitForFunction((e) => document.querySelector('[data-testid="user-email"]')?.textContent === e, email);
    await t.shot('logged-in');
  });

  await t.step('open settings from the nav', async () => {
    await page.getByTestId('nav-settings').click();
    await waitForPath('/settings');
    await page.waitForFunction((e) => document.querySelector('[data-testid="settings-email"]')?.textContent === e, email);
    await page.getByTestId('token-form').waitFor();
    await t.shot('settings');
  });

  await t.step('create API token "ci" and see it once', async () => {
    await page.getByTestId('token-name').fill('ci');
    await page.getByTestId('token-create').click();
    const secret = page.getByTestId('new-token');
    await secret.waitFor({ state: 'visible' });
    token = ((await secret.textContent()) || '').trim();
    assert(token.startsWith('rst_'), `new token starts with rst_ (got "${token.slice(0, 8)}")`);
    webhookSecret = ((await page.getByTestId('new-webhook-secret').textContent()) || '').trim();
    assert(webhookSecret.startsWith('whsec_'), `its webhook secret is shown once, whsec_… (got "${webhookSecret.slice(0, 6)}")`);
    const row = page.getByTestId('token-row').filter({ hasText: 'ci' });
    await row.first().waitFor();
    const rowText = await row.first().textContent();
    assert(!rowText.includes(token), 'the token list shows only the prefix, not the full token');
    await t.shot('token-created');
  });

  await t.step('token is not shown again after reload', async () => {
    await page.reload();
    await page.getByTestId('token-row').filter({ hasText: 'ci' }).first().waitFor();
    assert(!(await page.getByTestId('new-token-panel').isVisible()), 'new-token panel hidden after reload');
    const html = await page.content();
    assert(!html.includes(token), 'full token absent from the page after reload');
    assert(!html.includes(webhookSecret), 'webhook secret absent from the page after reload');
  });

  await t.step('Bearer token works for GET /api/me (from Node)', async () => {
    const res = await bearerMe(token);
    assert(res.status === 200, `GET /api/me with token -> 200 (got ${res.status})`);
    const me = await res.json();
    assert(me.email === email, `token belongs to ${email} (got ${me.email})`);
  });

  await t.step('revoke the token in the UI', async () => {
    const row = page.getByTestId('token-row').filter({ hasText: 'ci' }).first();
    const id = await row.getAttribute('data-id');
    await row.getByTestId('revoke').click(); // confirm() is auto-accepted
    await page.locator(`[data-testid="token-row"][data-id="${id}"]`).waitFor({ state: 'detached' });
    await t.shot('token-revoked');
  });

  await t.step('revoked token gets 401', async () => {
    const res = await bearerMe(token);
    assert(res.status === 401, `GET /api/me with revoked token -> 401 (got ${res.status})`);
  });

  await t.step('log out from settings; /api/me is 401 afterwards', async () => {
    await page.getByTestId('settings-logout').click();
    await waitForPath('/login');
    await page.getByTestId('login-form').waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/me', { credentials: 'same-origin' })).status);
    assert(status === 401, `/api/me from the page after logout -> 401 (got ${status})`);
    await t.shot('logged-out');
  });

  await t.step('log in again and open settings', async () => {
    await page.getByTestId('email').fill(email);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await waitForPath('/chat');
    await page.getByTestId('nav-settings').click();
    await waitForPath('/settings');
    await page.getByTestId('delete-account').waitFor();
  });

  await t.step('delete account: a wrong password is refused and deletes nothing', async () => {
    await page.getByTestId('delete-start').click();
    await page.getByTestId('delete-password').fill('not my password');
    await page.getByTestId('delete-confirm').click();
    const error = page.getByTestId('delete-error');
    await error.waitFor();
    assert((await error.textContent()).includes('nothing was deleted'), `wrong password shown (${await error.textContent()})`);
    const status = await page.evaluate(async () => (await fetch('/api/me', { credentials: 'same-origin' })).status);
    assert(status === 200, `still signed in after a wrong password (got ${status})`);
    await t.shot('delete-wrong-password');
  });

  await t.step('delete account with the password goes to /login, and the account is gone', async () => {
    await page.getByTestId('delete-password').fill(PASSWORD);
    await page.getByTestId('delete-confirm').click();
    // The page and its closed socket both send the browser to /login; wait for where it lands.
    await page.getByTestId('login-form').waitFor();
    assert(pagePath() === '/login', `on the sign-in page (at ${pagePath()})`);
    const login = await page.evaluate(async ([e, p]) => (await fetch('/api/auth/login', {
      method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: e, password: p }),
    })).status, [email, PASSWORD]);
    assert(login === 401, `logging in to the deleted account -> 401 (got ${login})`);
    await t.shot('final-account-deleted');
  });
});
