// Operator admin and password reset (issue 15 item 7, issue 13 items 10-11): the admin page
// lists accounts, adjusts credits into the ledger, makes an invite code, suspends and
// unsuspends, and shows each action in the audit log; axe-core finds no serious violation.
// A reset link sets a new password once; the second use is refused in a sentence.
// Usage: ROOST_URL=… ADMIN_EMAIL=… MEMBER_EMAIL=… PASSWORD=… RESET_LINK=… node admin.spec.mjs
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { run, assert } from './lib.mjs';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const { ADMIN_EMAIL, MEMBER_EMAIL, PASSWORD, RESET_LINK } = process.env;

async function axeViolations(page) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

await run('admin', async (t) => {
  const { page, base } = t;
  const checkAxe = async (where) => {
    const bad = await axeViolations(page);
    assert(bad.length === 0, `${where}: no serious or critical axe violations (${JSON.stringify(bad)})`);
  };
  const memberRow = () => page.locator(`[data-testid="admin-user-row"][data-email="${MEMBER_EMAIL}"]`);

  await t.step('the login page says who resets a forgotten password', async () => {
    await page.goto(`${base}/login`);
    const forgot = await page.getByTestId('forgot').textContent();
    assert(/ask the operator/i.test(forgot), `the hint: ${forgot}`);
  });

  await t.step('the admin signs in and sees every account', async () => {
    await page.getByTestId('email').fill(ADMIN_EMAIL);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await page.getByTestId('nav-admin').click();
    await page.waitForURL((u) => new URL(u).pathname === '/admin');
    await memberRow().waitFor();
    assert((await page.getByTestId('admin-user-row').count()) === 2, 'two accounts');
    await checkAxe('admin');
    await t.shot('admin-users');
  });

  await t.step('credits adjusted with a reason show in the ledger and the audit log', async () => {
    await memberRow().getByTestId('admin-open').click();
    await page.getByTestId('admin-user').waitFor();
    const before = Number((await page.getByTestId('admin-detail-balance').textContent()).replace(/\D/g, ''));
    await page.getByTestId('admin-credits-delta').fill('250');
    await page.getByTestId('admin-credits-reason').fill('welcome bonus');
    await page.getByTestId('admin-credits-save').click();
    await page.getByTestId('admin-done').filter({ hasText: 'adjusted' }).waitFor();
    await page.waitForFunction((want) => Number(document.querySelector('[data-testid="admin-detail-balance"]').textContent.replace(/\D/g, '')) === want,
      before + 250, { timeout: 10_000 });
    await page.getByTestId('admin-ledger-row').filter({ hasText: '+250' }).first().waitFor();
    await page.getByTestId('admin-audit-row').filter({ hasText: 'welcome bonus' }).waitFor();
    await t.shot('admin-credits');
  });

  await t.step('an invite code is shown once and listed by its id', async () => {
    await page.getByTestId('admin-invite-uses').fill('3');
    await page.getByTestId('admin-invite-create').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="admin-invite-code"]')?.textContent.startsWith('inv_'));
    const code = (await page.getByTestId('admin-invite-code').textContent()).trim();
    assert(code.startsWith('inv_'), `a code: ${code}`);
    await page.getByTestId('admin-invite-row').filter({ hasText: '3 of 3' }).waitFor();
    const listed = await page.getByTestId('admin-invites').textContent();
    assert(!listed.includes(code), 'the list never shows the code itself');
  });

  await t.step('suspend and unsuspend, each in the audit log', async () => {
    await page.getByTestId('admin-suspend').click();
    await page.getByTestId('admin-done').filter({ hasText: 'suspended' }).waitFor();
    await memberRow().getByTestId('admin-user-state').filter({ hasText: 'suspended' }).waitFor();
    await page.getByTestId('admin-audit-row').filter({ hasText: 'user.suspend' }).waitFor();
    await page.mouse.move(0, 0);
    await checkAxe('admin with an account open');
    await t.shot('admin-suspended');
    await page.getByTestId('admin-suspend').click();
    await page.getByTestId('admin-done').filter({ hasText: 'sign in again' }).waitFor();
    await page.getByTestId('admin-audit-row').filter({ hasText: 'user.unsuspend' }).waitFor();
  });

  await t.step('a reset link sets a new password once', async () => {
    await page.getByTestId('logout').click();
    await page.waitForURL((u) => new URL(u).pathname === '/login');
    await page.goto(RESET_LINK);
    await page.getByTestId('reset-form').waitFor();
    assert(!page.url().includes('token='), 'the token leaves the address bar');
    await checkAxe('reset');
    await page.getByTestId('password').fill('a whole new password');
    await page.getByTestId('submit').click();
    await page.getByTestId('reset-done').waitFor({ state: 'visible' });
    await t.shot('reset-done');

    await page.goto(RESET_LINK);
    await page.getByTestId('password').fill('and yet another one');
    await page.getByTestId('submit').click();
    const error = await page.getByTestId('form-error').filter({ hasText: 'not valid any more' }).textContent();
    assert(/once, for 30 minutes/.test(error), `the refusal: ${error}`);

    await page.goto(`${base}/login`);
    await page.getByTestId('email').fill(MEMBER_EMAIL);
    await page.getByTestId('password').fill('a whole new password');
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    assert((await page.getByTestId('nav-admin').isHidden()), 'no Admin link for a member');
  });
});
