// The agent's state badge and panel against a running Roost server with the simulated agent.
// Usage: ROOST_URL=http://127.0.0.1:8080 node lifecycle.spec.mjs
// With FAILED_EMAIL, PASSWORD and FAILED_REASON (an account whose agent already failed), it
// logs in as that user instead and checks the failed agent's reason and its Restart.
import { run, assert, randomEmail } from './lib.mjs';

const FAILED_EMAIL = process.env.FAILED_EMAIL;
const PASSWORD = process.env.PASSWORD || 'correct-horse-battery';
const FAILED_REASON = process.env.FAILED_REASON || '';
const READY_TIMEOUT = 60_000;

await run(FAILED_EMAIL ? 'lifecycle-failed' : 'lifecycle', async (t) => {
  const { page, base } = t;
  const badge = page.getByTestId('machine-badge');
  const panel = page.getByTestId('machine-panel');
  const field = (name) => page.getByTestId(`machine-${name}`);
  const badgeSays = (text, timeout = READY_TIMEOUT) => page.waitForFunction(
    (want) => document.querySelector('[data-testid="machine-label"], #machine-label')?.textContent === want,
    text, { timeout, polling: 50 });
  const historyHas = (text) => page.waitForFunction(
    (want) => [...document.querySelectorAll('[data-testid="machine-event"]')].some((li) => li.textContent.includes(want)),
    text, { polling: 100 });
  const focusedIsBadge = () => page.evaluate(() => document.activeElement?.dataset.testid === 'machine-badge');

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

  /** Opens the panel from the keyboard: the badge is a button in the tab order. */
  async function openWithKeyboard() {
    await badge.focus();
    await page.keyboard.press('Enter');
    await panel.waitFor({ state: 'visible' });
  }

  if (FAILED_EMAIL) {
    await t.step('log in: the badge says Failed and the chat shows why', async () => {
      await page.goto(`${base}/login`);
      await page.getByTestId('email').fill(FAILED_EMAIL);
      await page.getByTestId('password').fill(PASSWORD);
      await page.getByTestId('submit').click();
      await page.waitForURL((u) => new URL(u).pathname === '/chat');
      await badgeSays('Failed');
      await page.getByTestId('status-restart').waitFor();
      const status = await page.getByTestId('status').textContent();
      assert(status.includes(FAILED_REASON.slice(1, 40)), `the chat status gives the reason (got "${status}")`);
      await t.shot('failed-badge');
    });

    await t.step('the panel shows the reason and the failure in the history', async () => {
      await openWithKeyboard();
      assert((await field('state').textContent()) === 'Failed', 'state Failed');
      await page.waitForFunction((want) => document.querySelector('[data-testid="machine-reason"]')?.textContent === want,
        FAILED_REASON, { polling: 100 });
      await historyHas(FAILED_REASON);
      assert(!(await field('stop').isDisabled()), 'a failed agent can still be stopped');
      await t.shot('failed-panel');
    });

    await t.step('Restart brings it back to Ready', async () => {
      await field('restart').click();
      await badgeSays('Ready');
      await historyHas('the agent is ready');
      assert((await field('error').isHidden()), 'no error shown');
      await page.keyboard.press('Escape');
      await panel.waitFor({ state: 'hidden' });
      assert(await focusedIsBadge(), 'focus is back on the badge');
      await page.getByTestId('status').waitFor({ state: 'hidden' });
      await t.shot('failed-restarted');
    });
    return;
  }

  await t.step('sign up and open /chat: the badge says Ready', async () => {
    await page.goto(`${base}/signup`);
    await page.getByTestId('email').fill(randomEmail('lifecycle'));
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await badgeSays('Ready');
    await t.shot('ready-badge');
  });

  await t.step('the panel opens from the keyboard, and Escape closes it back onto the badge', async () => {
    await openWithKeyboard();
    assert((await field('state').textContent()) === 'Ready', 'state Ready');
    assert((await field('idle').textContent()) === 'stops after 30 min without use', 'the idle policy in words');
    await historyHas('the agent is ready');
    assert(!(await field('stop').isDisabled()), 'Stop is enabled while the agent runs');
    await t.shot('panel-ready');
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'hidden' });
    assert(await focusedIsBadge(), 'focus is back on the badge');
  });

  await t.step('Stop: the badge says Stopped and the history "stopped by you"', async () => {
    await openWithKeyboard();
    await field('stop').click();
    await badgeSays('Stopped');
    await historyHas('stopped by you');
    assert(await field('stop').isDisabled(), 'Stop is disabled once stopped');
    // The page does not reconnect (which would start the agent again): it offers Restart.
    assert((await page.getByTestId('conn').getAttribute('data-state')) === 'stopped', 'the socket waits');
    assert((await badge.textContent()).includes('Stopped'), 'still stopped after the history refreshed');
    await t.shot('panel-stopped');
  });

  await t.step('Restart: back to Ready, with the stages shown meanwhile', async () => {
    const shownBefore = await page.evaluate(() => window.__stagesShown.length);
    await field('restart').click();
    await badgeSays('Ready');
    const shown = await page.evaluate((n) => window.__stagesShown.slice(n), shownBefore);
    assert(shown.includes('starting'), `the restart's stages were shown (${JSON.stringify(shown)})`);
    await page.waitForFunction(() => document.querySelector('[data-testid="machine-history"] li')?.textContent
      .includes('the agent is ready'), null, { polling: 100 });
    await t.shot('panel-restarted');
  });

  await t.step('on a phone-sized screen the badge and panel fit', async () => {
    await page.setViewportSize({ width: 390, height: 760 });
    assert(await badge.isVisible(), 'the badge is visible');
    const box = await panel.boundingBox();
    assert(box && box.x >= 0 && box.x + box.width <= 390, `the panel fits the width (${JSON.stringify(box)})`);
    await t.shot('panel-mobile');
    await field('close').click();
    await panel.waitFor({ state: 'hidden' });
  });
});
