// Shared helpers for the browser specs (plain Node, no test runner).
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
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
 * A local HTTP proxy for the browser that can cut its WebSockets the way a network drop does.
 * Plain HTTP is forwarded; WebSockets arrive as CONNECT tunnels and are relayed byte for byte.
 * `dropWebSockets(outageMs)` resets every open tunnel (TCP reset both ways: no close frame, the
 * page sees code 1006 and the server a reset) and answers new tunnels with 503 for `outageMs`.
 */
export async function startDropProxy() {
  const tunnels = new Set();
  const silent = new Set(); // stalled tunnels, closed with the proxy
  const stats = { tunnels: 0, refused: 0, dropped: 0 };
  let refuseUntil = 0;
  const server = http.createServer((req, res) => {
    let target;
    try {
      target = new URL(req.url);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    const upstream = http.request({
      host: target.hostname.replace(/^\[|\]$/g, ''),
      port: target.port || 80,
      method: req.method,
      path: `${target.pathname}${target.search}`,
      headers,
    }, (answer) => {
      res.writeHead(answer.statusCode, answer.statusMessage, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req, client, head) => {
    client.on('error', () => {});
    if (Date.now() < refuseUntil) {
      stats.refused += 1;
      client.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const { hostname, port } = new URL(`http://${req.url}`);
    const upstream = net.connect(Number(port || 80), hostname.replace(/^\[|\]$/g, ''));
    const tunnel = { client, upstream };
    tunnels.add(tunnel);
    stats.tunnels += 1;
    const end = () => {
      tunnels.delete(tunnel);
      client.destroy();
      upstream.destroy();
    };
    upstream.on('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head && head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', end);
    client.on('error', end);
    upstream.on('close', end);
    client.on('close', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server: `http://127.0.0.1:${server.address().port}`,
    stats,
    openWebSockets: () => tunnels.size,
    /** Cut every open WebSocket now; refuse new ones for `outageMs`. Returns how many were cut. */
    dropWebSockets(outageMs = 0) {
      refuseUntil = Date.now() + outageMs;
      const cut = [...tunnels];
      for (const tunnel of cut) {
        tunnels.delete(tunnel);
        tunnel.client.resetAndDestroy();
        tunnel.upstream.resetAndDestroy();
      }
      stats.dropped += cut.length;
      return cut.length;
    },
    /**
     * Make every open WebSocket go silent towards the browser, the way a dead link does: what the
     * page sends still reaches the server, nothing the server sends reaches the page, and nobody
     * sees a close. New tunnels work normally. Returns how many were stalled.
     */
    stallWebSockets() {
      const stalled = [...tunnels];
      for (const tunnel of stalled) {
        tunnels.delete(tunnel);
        silent.add(tunnel);
        tunnel.upstream.unpipe(tunnel.client);
        tunnel.upstream.on('data', () => {}); // read and drop, so the server is not held up
      }
      return stalled.length;
    },
    close() {
      for (const { client, upstream } of [...tunnels, ...silent]) {
        client.destroy();
        upstream.destroy();
      }
      server.closeAllConnections();
      server.close();
    },
  };
}

/**
 * Run `body(t)` with a fresh browser page. `t.step(name, fn)` runs one checked
 * step; `t.shot(name)` saves a screenshot. With {dropProxy: true} the
 * page goes through `startDropProxy()`, available as `t.net`. Prints "<label>: N passed, M failed"
 * and exits non-zero on the first failure. The browser is always closed. Waits default to 15 s
 * (`WAIT_MS` sets another, for a real agent on a busy machine).
 */
export async function run(label, body, { timeoutMs = Number(process.env.WAIT_MS) || 15_000, dropProxy = false } = {}) {
  const dir = screenshotDir();
  const base = baseUrl();
  let passed = 0;
  let failed = 0;
  let shotN = 0;
  let browser;
  let page;
  let proxy;
  const pageErrors = [];
  try {
    browser = await launch();
    if (dropProxy) proxy = await startDropProxy();
    const context = await browser.newContext({
      viewport: { width: 1280, height: 820 },
      ...(proxy ? { proxy: { server: proxy.server } } : {}),
    });
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
      net: proxy,
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
    if (proxy) proxy.close();
  }
  console.log(`screenshots: ${dir}`);
  console.log(`${label}: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
