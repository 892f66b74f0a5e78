// The Settings "Backup" card against a running Roost (the simulated agent, which keeps
// OpenClaw's state layout on disk): download a backup (a gzip whose first entry is
// manifest.json), restore it after the confirm with its progress in words and what came back,
// and a tampered file refused in a sentence, nothing changed.
// The downloaded backup is written to BACKUP_FILE; the test then changes the agent's
// notes/plan.md and creates BACKUP_FILE.changed, and checks the file after the spec.
// Usage: ROOST_URL=… EMAIL=… PASSWORD=… BACKUP_FILE=… node backup.spec.mjs
import fs from 'node:fs';
import zlib from 'node:zlib';
import { run, assert } from './lib.mjs';

const { EMAIL, PASSWORD, BACKUP_FILE } = process.env;
const PLAN = 'notes/plan.md';

await run('backup', async (t) => {
  const { page, base } = t;
  let backup;

  await t.step('log in and open the Backup card', async () => {
    await page.goto(`${base}/login`);
    await page.getByTestId('email').fill(EMAIL);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await page.getByTestId('nav-settings').click();
    await page.waitForURL((u) => new URL(u).pathname === '/settings');
    await page.getByTestId('backup-card').waitFor();
  });

  await t.step('download a backup', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('backup-download').click()]);
    const name = download.suggestedFilename();
    assert(/^roost-backup-\d{4}-\d{2}-\d{2}\.tar\.gz$/.test(name), `the file's name: ${name}`);
    const chunks = [];
    for await (const chunk of await download.createReadStream()) chunks.push(chunk);
    backup = Buffer.concat(chunks);
    assert(backup[0] === 0x1f && backup[1] === 0x8b, 'the file is gzip');
    const tar = zlib.gunzipSync(backup);
    const first = tar.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    assert(first === 'manifest.json', `the manifest comes first: ${first}`);
    const manifest = JSON.parse(tar.subarray(512, 512 + Number.parseInt(tar.subarray(124, 136).toString(), 8)).toString());
    assert(manifest.files.some((f) => f.path === `workspace/${PLAN}`), 'the workspace file is in it');
    fs.writeFileSync(BACKUP_FILE, backup);
    for (let i = 0; i < 150 && !fs.existsSync(`${BACKUP_FILE}.changed`); i += 1) await page.waitForTimeout(100);
    assert(fs.existsSync(`${BACKUP_FILE}.changed`), 'the test changed the file after the backup');
  });

  await t.step('the restore needs the confirm', async () => {
    await page.getByTestId('restore-file').setInputFiles({ name: 'backup.tar.gz', mimeType: 'application/gzip', buffer: backup });
    await page.getByTestId('restore-submit').click();
    const error = page.getByTestId('restore-error');
    await error.waitFor();
    assert((await error.textContent()) === 'Tick the box to confirm that your chats and files are replaced.', await error.textContent());
  });

  await t.step('restore it, with its progress and what came back', async () => {
    await page.evaluate(() => {
      window.__statuses = [];
      const el = document.querySelector('[data-testid="restore-status"]');
      new MutationObserver(() => window.__statuses.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
    });
    await page.getByTestId('restore-confirm').check();
    await page.getByTestId('restore-submit').click();
    const status = page.getByTestId('restore-status');
    await page.waitForFunction(() => /^Restored \d+ files/.test(document.querySelector('[data-testid="restore-status"]').textContent));
    const text = await status.textContent();
    assert(/^Restored \d+ files \(.+\) from the backup made on .+\. Your agent is starting again; your chats are back\.$/.test(text), text);
    const seen = await page.evaluate(() => window.__statuses);
    assert(seen.some((s) => s.startsWith('Uploading the backup') || s.startsWith('Checking the backup')), `progress was shown: ${JSON.stringify(seen)}`);
    assert(await page.getByTestId('restore-error').isHidden(), 'no error is shown');
    await t.shot('restored');
  });

  await t.step('a tampered backup is refused in a sentence and nothing changes', async () => {
    const tar = zlib.gunzipSync(backup);
    const at = tar.indexOf('1. paint the door');
    assert(at > 0, 'the file is in the archive');
    tar.write('1. PAINT the door', at);
    await page.getByTestId('restore-file').setInputFiles({ name: 'tampered.tar.gz', mimeType: 'application/gzip', buffer: zlib.gzipSync(tar) });
    await page.getByTestId('restore-confirm').check();
    await page.getByTestId('restore-submit').click();
    const error = page.getByTestId('restore-error');
    await error.waitFor();
    const text = await error.textContent();
    assert(text === 'A file in this backup does not match its checksum; the backup was changed or damaged.', text);
    await t.shot('refused');
  });
});
