// Shared helpers for the browser specs (plain Node, no test runner).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

export function baseUrl() {
  const url = process.env.ROOST_URL;
  if (!url) {
    console.error('ROOST_URL is not set (e.g. ROOST_URL=http://127.0.0.1:8080)');
    process.exit(2);
  }
  return url.replace(/\/+$/, '');
}

export function screenshotDir() {
  const dir = process.env.SCREENSHOT_DIR
    ? path.resolve(process.env.SCREENSHOT_DIR)
    : path.resolve(here, '../../target/screenshots');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export function randomEmail(prefix) {
  const rnd = Math.random().toString(36).slice(2, 10);
  return `${prefix}-${Date.now()}-${rnd}@example.test`;
}

export function assert(cond, message) {
  if (!cond) throw new Error(`Assertion failed: ${message}`);
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * Run `body(t)` with a fresh browser page. `t.step(name, fn)` runs one checked
 * step; `t.shot(name)` saves a screenshot. Prints "<label>: N passed, M failed"
 * and exits non-zero on the first failure. The browser is always closed.
 */
export async function run(label, body, { timeoutMs = 15_000 } = {}) {
  const dir = screenshotDir();
  const base = baseUrl();
  let passed = 0;
  let failed = 0;
  let shotN = 0;
  let browser;
  let page;
  const pageErrors = [];
  try {
    browser = await launch();
    const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    page = await context.newPage();
    page.setDefaultTimeout(timeoutMs);
    page.on('dialog', (d) => d.accept());
    page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && process.env.VERBOSE) console.log(`  [console] ${m.text()}`);
    });
    const t = {
      base,
      page,
      async shot(name) {
        shotN += 1;
        const file = path.join(dir, `${process.env.SCREENSHOT_PREFIX || ""}${label}-${String(shotN).padStart(2, '0')}-${name}.png`);
        await page.screenshot({ path: file, fullPage: false });
        return file;
      },
      async step(name, fn) {
        const started = Date.now();
        try {
          await fn();
        } catch (err) {
          failed += 1;
          console.error(`FAIL ${label}: ${name}\n  ${err && err.stack ? err.stack : err}`);
          throw err;
        }
        if (pageErrors.length) {
          failed += 1;
          const msg = `uncaught error in page: ${pageErrors.join(' | ')}`;
          console.error(`FAIL ${label}: ${name}\n  ${msg}`);
          throw new Error(msg);
        }
        passed += 1;
        console.log(`ok   ${label}: ${name} (${Date.now() - started} ms)`);
      },
    };
    await body(t);
  } catch (err) {
    if (!failed) {
      failed += 1;
      console.error(`FAIL ${label}: ${err && err.stack ? err.stack : err}`);
    }
    if (page) {
      try {
        const file = path.join(dir, `${process.env.SCREENSHOT_PREFIX || ""}${label}-failure.png`);
        await page.screenshot({ path: file });
        console.error(`  screenshot of the failure: ${file}`);
        console.error(`  page url at failure: ${page.url()}`);
      } catch {
        /* page may be gone */
      }
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  console.log(`screenshots: ${dir}`);
  console.log(`${label}: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
