// "Forgot password" on the login page when the server sends mail (issue 13, item 11): the
// form answers the server's one sentence, and passes axe-core. The Rust side checks the mail.
// Usage: ROOST_URL=… MEMBER_EMAIL=… node forgot.spec.mjs
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { run, assert } from './lib.mjs';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

await run('forgot', async (t) => {
  const { page, base } = t;
  await t.step('the login page offers the mail form, not the operator hint', async () => {
    await page.goto(`${base}/login`);
    await page.getByTestId('forgot-form').waitFor({ state: 'visible' });
    assert(await page.getByTestId('forgot').isHidden(), 'no "ask the operator" when mail is on');
    await page.evaluate(AXE);
    const bad = await page.evaluate(async () => (await window.axe.run(document)).violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id));
    assert(bad.length === 0, `no serious axe violations: ${bad}`);
  });
  await t.step('asking answers the same sentence for any address', async () => {
    for (const email of ['nobody-here@example.com', process.env.MEMBER_EMAIL]) {
      await page.getByTestId('forgot-email').fill(email);
      await page.getByTestId('forgot-send').click();
      await page.getByTestId('forgot-status').filter({ hasText: 'If an account uses this email' }).waitFor();
      await page.evaluate(() => { document.querySelector('[data-testid="forgot-status"]').textContent = ''; });
    }
    await t.shot('forgot-sent');
  });
});
