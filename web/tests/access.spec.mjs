// Looks and access (issue 13, items 13–15): axe-core finds no serious or critical violation on
// the sign-in, chat, settings and usage pages, in light and dark; dark mode follows the system
// and the switch, which is remembered; a phone-sized screen has no sideways scroll and the
// composer in reach; a streamed reply is announced once it is finished, not while it streams.
// Usage: ROOST_URL=… node access.spec.mjs
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { run, assert, randomEmail, screenshotDir } from './lib.mjs';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const PASSWORD = 'correct-horse-battery';

/** Serious and critical axe violations on the page as it is now. */
async function axeViolations(page) {
  // Evaluated through the debugger protocol, so the page's CSP does not stand in the way.
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

const connected = (page) => page.waitForFunction(
  () => document.querySelector('[data-testid="conn"]')?.dataset.state === 'connected', null, { timeout: 60_000, polling: 100 });

await run('access', async (t) => {
  const { page, base } = t;
  const email = randomEmail('access');
  const checkAxe = async (where) => {
    const bad = await axeViolations(page);
    assert(bad.length === 0, `${where}: no serious or critical axe violations (${JSON.stringify(bad)})`);
  };

  await t.step('axe: the sign-in and sign-up pages', async () => {
    await page.goto(`${base}/login`);
    await page.getByTestId('submit').waitFor();
    await checkAxe('login');
    await page.getByTestId('email').fill('nope');
    await page.getByTestId('password').fill('x');
    await page.getByTestId('submit').click();
    const email = page.getByTestId('email');
    assert((await email.getAttribute('aria-invalid')) === 'true', 'the wrong field is marked invalid');
    assert((await email.getAttribute('aria-describedby')) === 'form-error', 'and linked to the error');
    await checkAxe('login with an error');
    await page.goto(`${base}/signup`);
    await page.getByTestId('submit').waitFor();
    await checkAxe('signup');
    const described = await page.getByTestId('password').getAttribute('aria-describedby');
    assert(described === 'password-hint form-error', `the password's length hint is read with it (${described})`);
    const hint = await page.locator(`#${described.split(' ')[0]}`).innerText();
    assert(hint.includes('8 characters'), hint);
  });

  await t.step('axe: chat, settings and usage', async () => {
    await page.getByTestId('email').fill(email);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await connected(page);
    await page.getByTestId('composer').fill('/say Here is **bold** and `code`:\n\n```js\nconst a = 1;\n```');
    await page.getByTestId('composer').press('Enter');
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="msg"][data-role="assistant"]')].pop()?.dataset.state === 'done');
    assert(await page.locator('h1').count() >= 1, 'the chat view has a heading');
    await checkAxe('chat');
    await t.shot('chat-light');
    for (const [nav, path] of [['nav-settings', '/settings'], ['nav-usage', '/usage']]) {
      await page.getByTestId(nav).click();
      await page.waitForURL((u) => new URL(u).pathname === path);
      await page.waitForLoadState('networkidle');
      await checkAxe(path);
    }
    await page.getByTestId('nav-chat').click();
  });

  await t.step('a streamed reply is announced once finished, not redrawn into a live region', async () => {
    const live = await page.evaluate(() => document.querySelector('[data-testid="messages"]').getAttribute('aria-live'));
    assert(!live, `the message list is not a live region (aria-live=${live})`);
    // Every change of the announcer is recorded with the reply's state at that moment, so the
    // check does not depend on catching the stream between two round trips.
    await page.evaluate(() => {
      window.__announced = [];
      new MutationObserver(() => {
        const reply = [...document.querySelectorAll('[data-testid="msg"][data-role="assistant"]')].pop();
        window.__announced.push({ text: document.querySelector('[data-testid="announcer"]').textContent, state: reply?.dataset.state });
      }).observe(document.querySelector('[data-testid="announcer"]'), { childList: true, characterData: true, subtree: true });
    });
    await page.getByTestId('composer').fill('/say one two three four five six seven eight');
    await page.getByTestId('composer').press('Enter');
    await page.waitForFunction(() => /Your agent replied: one two three four five six seven eight/.test(
      document.querySelector('[data-testid="announcer"]').textContent));
    const announced = await page.evaluate(() => window.__announced);
    assert(announced.every((a) => a.state !== 'streaming'), `nothing announced mid-stream (${JSON.stringify(announced)})`);
  });

  await t.step('dark mode: the switch flips it, it is remembered, and axe passes there too', async () => {
    const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
    assert((await theme()) === 'light', `light by default on a light system (${await theme()})`);
    await page.getByTestId('theme-toggle').click();
    assert((await theme()) === 'dark', 'the switch makes it dark');
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert(bg === 'rgb(15, 17, 21)', `the page is dark (${bg})`);
    await page.reload();
    await page.getByTestId('composer').waitFor();
    assert((await theme()) === 'dark', 'remembered after a reload');
    await connected(page);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="msg"]').length > 0);
    await checkAxe('chat in dark mode');
    await t.shot('chat-dark');
    await page.getByTestId('theme-toggle').click();
    assert((await theme()) === 'light', 'and back');
  });

  await t.step('with no choice made, a dark system gets dark', async () => {
    const context = await page.context().browser().newContext({ colorScheme: 'dark' });
    const p = await context.newPage();
    await p.goto(`${base}/login`);
    await p.getByTestId('submit').waitFor();
    const theme = await p.evaluate(() => document.documentElement.dataset.theme);
    assert(theme === 'dark', `follows prefers-color-scheme (${theme})`);
    await context.close();
  });

  await t.step('a phone: no sideways scroll, the composer in reach, big targets, no keyboard hints', async () => {
    const context = await page.context().browser().newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await context.newPage();
    // A long address, to see it wrap rather than widen or cut the page.
    const longEmail = randomEmail('a-very-long-mailbox-name-that-needs-to-wrap-on-a-phone-screen').replace('@', '@mail.subdomain.');
    await p.goto(`${base}/signup`);
    await p.getByTestId('email').fill(longEmail);
    await p.getByTestId('password').fill(PASSWORD);
    await p.getByTestId('submit').tap();
    await p.waitForURL((u) => new URL(u).pathname === '/chat');
    await connected(p);
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert(overflow <= 0, `no sideways scroll (${overflow}px)`);
    const box = await p.getByTestId('composer').boundingBox();
    assert(box && box.y >= 0 && box.y + box.height <= 844 && box.x >= 0 && box.x + box.width <= 390, `the composer is on screen (${JSON.stringify(box)})`);
    const send = await p.getByTestId('send').boundingBox();
    assert(send.height >= 44 && send.width >= 44, `Send is a 44 px target (${JSON.stringify(send)})`);
    const hint = (await p.locator('#composer-hint').textContent()).trim();
    assert(!/Enter|Shift|Esc/.test(hint), `no keyboard hints on touch (${hint})`);
    await p.getByTestId('composer').tap();
    await p.getByTestId('composer').fill('/say from the phone');
    await p.getByTestId('send').tap();
    await p.waitForFunction(() => [...document.querySelectorAll('[data-testid="msg"][data-role="assistant"]')].pop()?.textContent.includes('from the phone'));
    const times = await p.getByTestId('msg-time').count();
    const visible = times && await p.getByTestId('msg-time').first().isVisible();
    assert(visible, 'message times are shown without hovering');
    const after = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert(after <= 0, `still no sideways scroll (${after}px)`);
    await p.screenshot({ path: path.join(screenshotDir(), `${process.env.SCREENSHOT_PREFIX || ''}access-mobile.png`) });

    // The sections are labelled tabs at the bottom, each a big target, all on screen.
    const tabs = await p.evaluate(() => [...document.querySelectorAll('.nav-links a:not([hidden])')].map((a) => {
      const r = a.getBoundingClientRect();
      const label = a.querySelector('span');
      return { text: label.textContent, shown: label.getBoundingClientRect().width > 0 && getComputedStyle(label).display !== 'none' && label.scrollWidth <= label.clientWidth,
        top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height, width: r.width };
    }));
    assert(tabs.length === 6 && tabs.every((b) => b.shown), `every tab shows its label (${JSON.stringify(tabs)})`);
    assert(tabs.every((b) => b.height >= 44 && b.width >= 44 && b.bottom <= 844 && b.top > 600 && b.left >= 0 && b.right <= 390),
      `the tabs are 44 px targets at the bottom, on screen (${JSON.stringify(tabs)})`);
    const composerNow = await p.getByTestId('composer').boundingBox();
    assert(composerNow.y + composerNow.height <= Math.min(...tabs.map((b) => b.top)), 'the tab bar does not cover the composer');
    for (const id of ['logout', 'theme-toggle', 'machine-badge']) {
      const b = await p.getByTestId(id).boundingBox();
      assert(b && b.x >= 0 && b.x + b.width <= 390 && b.height >= 44, `${id} is whole on screen and a 44 px target (${JSON.stringify(b)})`);
    }
    // The chats drawer: a bordered button with an icon, which says whether the drawer is open.
    const toggle = p.getByTestId('sessions-toggle');
    const look = await toggle.evaluate((el) => ({ border: getComputedStyle(el).borderTopWidth, icon: !!el.querySelector('svg') }));
    assert(look.border !== '0px' && look.icon, `the drawer button looks like a button (${JSON.stringify(look)})`);
    assert((await toggle.getAttribute('aria-expanded')) === 'false', 'the drawer starts closed');
    await toggle.tap();
    assert((await toggle.getAttribute('aria-expanded')) === 'true', 'it says when it is open');
    await p.getByTestId('new-session').waitFor({ state: 'visible' });
    await p.locator('#sessions-backdrop').tap({ position: { x: 370, y: 400 } });
    await p.waitForFunction(() => document.querySelector('[data-testid="sessions-toggle"]').getAttribute('aria-expanded') === 'false');
    // The long address on the settings page wraps inside the screen.
    await p.getByTestId('nav-settings').tap();
    const shownEmail = p.getByTestId('settings-email');
    await p.waitForFunction((e) => document.querySelector('[data-testid="settings-email"]')?.textContent === e, longEmail);
    const eb = await shownEmail.boundingBox();
    assert(eb.x >= 0 && eb.x + eb.width <= 390 && eb.height > 30, `the long email wraps on screen (${JSON.stringify(eb)})`);
    const settingsOverflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert(settingsOverflow <= 0, `no sideways scroll on settings (${settingsOverflow}px)`);
    await p.screenshot({ path: path.join(screenshotDir(), `${process.env.SCREENSHOT_PREFIX || ''}access-mobile-settings.png`) });
    await context.close();
  });
}, { timeoutMs: 20_000 });
