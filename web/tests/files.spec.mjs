// The Files page against a running Roost (local provider): browse into a folder the agent made,
// read its Markdown (sanitized: the agent's <script> and <img onerror> never run), preview an
// image, upload with progress, download, and delete after the confirm.
// Usage: ROOST_URL=… EMAIL=… PASSWORD=… node files.spec.mjs
import { run, assert } from './lib.mjs';

const { EMAIL, PASSWORD } = process.env;

await run('files', async (t) => {
  const { page, base } = t;
  await page.addInitScript(() => { window.__ran = false; });

  await t.step('log in and open Files', async () => {
    await page.goto(`${base}/login`);
    await page.getByTestId('email').fill(EMAIL);
    await page.getByTestId('password').fill(PASSWORD);
    await page.getByTestId('submit').click();
    await page.waitForURL((u) => new URL(u).pathname === '/chat');
    await page.getByTestId('nav-files').click();
    await page.waitForURL((u) => new URL(u).pathname === '/files');
    await page.locator('[data-testid="file-row"][data-name="reports"]').waitFor();
    assert((await page.title()).startsWith('Files'), `the title names the page: ${await page.title()}`);
  });

  await t.step('open a folder and read its Markdown, sanitized', async () => {
    await page.locator('[data-testid="file-row"][data-name="reports"] [data-testid="file-open"]').click();
    await page.locator('[data-testid="file-row"][data-name="summary.md"]').waitFor();
    const crumbs = await page.getByTestId('files-crumb').allTextContents();
    assert(JSON.stringify(crumbs) === JSON.stringify(['Workspace', 'reports']), `breadcrumbs: ${crumbs}`);
    await page.locator('[data-testid="file-row"][data-name="summary.md"] [data-testid="file-open"]').click();
    const md = page.getByTestId('viewer-markdown');
    await md.locator('h1').waitFor();
    assert((await md.locator('h1').textContent()) === 'Weekly summary', 'the heading is rendered');
    assert((await md.locator('strong').textContent()) === 'done', 'emphasis is rendered');
    assert((await md.locator('script').count()) === 0, 'no script element survives');
    assert(!(await md.innerHTML()).includes('onerror'), 'no event handler survives');
    assert((await page.evaluate(() => window.__ran)) === false, 'nothing the agent wrote ran');
    await t.shot('markdown');
  });

  await t.step('preview an image', async () => {
    await page.getByTestId('files-crumb').first().click();
    await page.locator('[data-testid="file-row"][data-name="chart.png"] [data-testid="file-open"]').click();
    const img = page.getByTestId('viewer-image');
    await img.waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid="viewer-image"]')?.naturalWidth === 1);
  });

  await t.step('upload with progress, then download it', async () => {
    await page.getByTestId('files-upload').setInputFiles({ name: 'plan.txt', mimeType: 'text/plain', buffer: Buffer.from('step one\n') });
    await page.locator('[data-testid="file-row"][data-name="plan.txt"]').waitFor();
    const status = await page.getByTestId('files-status').textContent();
    assert(status === 'Uploaded plan.txt.', `progress ends in words: ${status}`);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('[data-testid="file-row"][data-name="plan.txt"] [data-testid="file-download"]').click(),
    ]);
    assert(download.suggestedFilename() === 'plan.txt', `the download's name: ${download.suggestedFilename()}`);
    const stream = await download.createReadStream();
    let text = '';
    for await (const chunk of stream) text += chunk;
    assert(text === 'step one\n', `the download's bytes: ${JSON.stringify(text)}`);
  });

  await t.step('delete after the confirm', async () => {
    await page.locator('[data-testid="file-row"][data-name="plan.txt"] [data-testid="file-delete"]').click();
    await page.locator('[data-testid="file-row"][data-name="plan.txt"]').waitFor({ state: 'detached' });
    const status = await page.getByTestId('files-status').textContent();
    assert(status === 'Deleted plan.txt.', `the page says what it did: ${status}`);
  });

  await t.step('a refusal is a sentence', async () => {
    await page.getByTestId('files-upload').setInputFiles({ name: 'reports', mimeType: 'text/plain', buffer: Buffer.from('x') });
    const error = page.getByTestId('files-error');
    await error.waitFor();
    const text = await error.textContent();
    assert(/^[A-Z].*\.$/.test(text), `the error is a sentence: ${text}`);
    await t.shot('refusal');
  });
});
