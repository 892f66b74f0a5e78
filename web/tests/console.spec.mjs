// The agent console (/agent/) against a real OpenClaw: the Control UI opens behind the Roost
// login with no token and no pairing prompt, reaches chat and settings, and everything the
// browser holds (frames, URLs, responses, cookies, storage, IndexedDB, page HTML) is dumped
// for the Rust side to scan for credentials.
// Env: ROOST_URL, ROOST_COOKIE (name=value of a signed-in session), DUMP_FILE, PHASE
//   (`open`: first visit, chat, settings, change the agent's name, try a platform-owned key;
//   `after-restart`: the name is still there), EXPECT_REPLY, READY_TIMEOUT_MS.
import fs from 'node:fs';
import { run, assert } from './lib.mjs';

const READY_TIMEOUT = Number(process.env.READY_TIMEOUT_MS || 300_000);
const PHASE = process.env.PHASE || 'open';
const NAME = process.env.AGENT_NAME || 'Pip the console test';
const EXPECT_REPLY = process.env.EXPECT_REPLY || 'Hello';

/**
 * In the page: one console socket, as the Control UI opens it (no token), and its RPCs. A config
 * write the agent applies by restarting closes the socket (1012); the calls are then made again
 * on a new one (each is idempotent).
 */
async function rpc(page, calls) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await rpcOnce(page, calls);
    } catch (err) {
      if (attempt >= 4) throw err;
      console.log(`  console socket attempt ${attempt} failed (${err.message}); retrying`);
      await page.waitForTimeout(3000);
    }
  }
}

async function rpcOnce(page, calls) {
  return page.evaluate(async (calls) => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/agent`);
    const waiting = new Map();
    let hello;
    const helloSeen = new Promise((resolve, reject) => {
      ws.onclose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`));
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data);
        if (f.event === 'connect.challenge') {
          ws.send(JSON.stringify({ type: 'req', id: 'c1', method: 'connect', params: {
            minProtocol: 4, maxProtocol: 4, role: 'operator',
            scopes: ['operator.read', 'operator.write', 'operator.admin'],
            client: { id: 'openclaw-control-ui', version: 'console-spec', platform: 'web', mode: 'webchat' } } }));
        } else if (f.type === 'res' && f.id === 'c1') {
          hello = f;
          resolve();
        } else if (f.type === 'res' && waiting.has(f.id)) {
          waiting.get(f.id)(f);
        }
      };
    });
    await helloSeen;
    const closed = new Promise((_, reject) => {
      ws.onclose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`));
    });
    closed.catch(() => {});
    const call = (method, params) => new Promise((resolve) => {
      const id = `r${Math.random().toString(36).slice(2)}`;
      waiting.set(id, resolve);
      ws.send(JSON.stringify({ type: 'req', id, method, params }));
    });
    const out = { hello, results: [] };
    for (const [method, params] of calls) {
      let p = params;
      if (p && p.raw && typeof p.raw !== 'string') {
        const got = await call('config.get', {});
        p = { ...p, raw: JSON.stringify(p.raw), baseHash: got.payload.hash };
      }
      const result = await Promise.race([call(method, p), closed]);
      out.results.push(result);
    }
    ws.close();
    return out;
  }, calls);
}

await run(`console-${PHASE}`, async (t) => {
  const { page, base } = t;
  const context = page.context();
  const [name, ...rest] = process.env.ROOST_COOKIE.split('=');
  await context.addCookies([{ name, value: rest.join('='), url: base }]);

  const frames = [];
  const urls = [];
  const html = [];
  page.on('request', (r) => urls.push(r.url()));
  page.on('websocket', (ws) => {
    urls.push(ws.url());
    ws.on('framereceived', (f) => frames.push({ dir: 'in', url: ws.url(), payload: String(f.payload) }));
    ws.on('framesent', (f) => frames.push({ dir: 'out', url: ws.url(), payload: String(f.payload) }));
  });
  const responses = [];
  page.on('response', async (r) => {
    try {
      const type = r.headers()['content-type'] || '';
      responses.push({ url: r.url(), headers: r.headers(), body: /json|html|javascript|text|css|svg/.test(type) ? await r.text() : '' });
    } catch { /* redirects and aborted bodies have none */ }
  });
  const snapshotPages = async () => {
    for (const frame of page.frames()) {
      try { html.push({ url: frame.url(), html: await frame.content() }); } catch { /* detached */ }
    }
  };
  const connected = () => frames.some((f) => f.dir === 'in' && /\/agent$/.test(f.url) && f.payload.includes('"hello-ok"'));
  const text = async () => page.locator('body').innerText();

  await t.step('open /agent/: the waiting page wakes the agent, then the console connects with no token asked', async () => {
    await page.goto(`${base}/agent/`);
    const deadline = Date.now() + READY_TIMEOUT;
    while (!connected()) {
      assert(Date.now() < deadline, 'the console connected to the agent');
      await page.waitForTimeout(500);
    }
    await page.getByText('Connected', { exact: false }).first().waitFor({ timeout: 60_000 });
    const body = await text();
    assert(!/model setup/i.test(body), 'no Model Setup step');
    assert(!/pairing required|not paired|gateway token|paste/i.test(body), `no token or pairing prompt: ${body.slice(0, 400)}`);
    await snapshotPages();
  });

  if (PHASE === 'open') {
    await t.step("Roost's app links to the console and says which settings it keeps", async () => {
      const app = await context.newPage();
      await app.goto(`${base}/settings`);
      const link = app.getByTestId('nav-agent-console');
      assert((await link.getAttribute('href')) === '/agent/', 'the nav link opens /agent/');
      const owned = await app.getByTestId('platform-owned-settings').innerText();
      assert(/gateway\.auth/.test(owned) && /models\.providers\.roost/.test(owned) && /channels\.telegram/.test(owned), owned);
      await app.close();
    });

    await t.step('chat with the agent in the console', async () => {
      const composer = page.getByPlaceholder(/Message/).first();
      await composer.fill('hello from the agent console');
      await composer.press('Enter');
      // The model's reply reaches the console's socket (the UI then renders it from history,
      // which the fake model's wrapped echo makes hard to match as text).
      const deadline = Date.now() + 120_000;
      const replied = () => frames.some((f) => f.dir === 'in' && /\/agent$/.test(f.url)
        && f.payload.includes('"event":"chat"') && f.payload.includes(EXPECT_REPLY));
      while (!replied()) {
        assert(Date.now() < deadline, 'the reply reached the console');
        await page.waitForTimeout(250);
      }
      await page.waitForTimeout(2000);
      await page.screenshot({ path: `${process.env.SHOTS}/ctrlui-chat.png` });
      await snapshotPages();
    });

    await t.step('the settings screen opens', async () => {
      await page.goto(`${base}/agent/settings/profile`);
      await page.waitForTimeout(5000);
      const body = await text();
      if (process.env.VERBOSE) console.log(`--- ${page.url()} ---\n${body.slice(0, 1500)}`);
      assert(!/model setup/i.test(body), 'no Model Setup step');
      await page.screenshot({ path: `${process.env.SHOTS}/ctrlui-settings.png` });
      await snapshotPages();
    });

    await t.step("a user's own setting is saved; a platform-owned key is refused and the agent keeps working", async () => {
      const out = await rpc(page, [
        ['config.patch', { raw: { agents: { entries: { main: { identity: { name: NAME } } } } }, note: 'console spec' }],
        ['config.patch', { raw: { gateway: { controlUi: { basePath: '/elsewhere' } } } }],
        ['config.patch', { raw: { models: { providers: { roost: { baseUrl: 'https://example.invalid/v1' } } } } }],
        ['health', {}],
        ['config.get', {}],
      ]);
      const [mine, basePath, provider, health, after] = out.results;
      assert(out.hello.ok && out.hello.payload.auth.scopes.includes('operator.admin'), `admin scope: ${JSON.stringify(out.hello).slice(0, 300)}`);
      assert(!JSON.stringify(out.hello).includes('deviceToken'), 'no device token in hello-ok');
      assert(mine.ok, `the name was saved: ${JSON.stringify(mine).slice(0, 400)}`);
      for (const refused of [basePath, provider]) {
        assert(!refused.ok && refused.error.code === 'FORBIDDEN' && /Roost manages/.test(refused.error.message),
          `refused: ${JSON.stringify(refused).slice(0, 400)}`);
      }
      console.log(`  refusal shown: ${basePath.error.message}`);
      assert(health.ok, 'the agent keeps working');
      const cfg = after.payload.config || after.payload.parsed;
      assert(cfg.gateway.controlUi.basePath === '/agent', 'the base path is unchanged');
      assert(cfg.agents.entries.main.identity.name === NAME, 'the name is in the config');
      // The console still connects (the agent may restart to apply the change).
      const hellos = () => frames.filter((f) => f.dir === 'in' && /\/agent$/.test(f.url) && f.payload.includes('"hello-ok"')).length;
      const before = hellos();
      await page.goto(`${base}/agent/`);
      const deadline = Date.now() + 180_000;
      while (hellos() <= before) {
        assert(Date.now() < deadline, 'the console connected again');
        await page.waitForTimeout(500);
      }
      await snapshotPages();
    });
  } else {
    await t.step("after the agent restarted, the user's setting is still there", async () => {
      const out = await rpc(page, [['config.get', {}]]);
      const cfg = out.results[0].payload.config || out.results[0].payload.parsed;
      assert(cfg.agents.entries.main.identity.name === NAME, `the name survived: ${JSON.stringify(cfg.agents).slice(0, 400)}`);
      assert(cfg.gateway.controlUi.basePath === '/agent', 'the platform keys are Roost\'s again');
      await snapshotPages();
    });
  }

  await t.step('dump what the browser holds', async () => {
    const storage = await page.evaluate(async () => {
      const dump = (s) => Object.fromEntries(Object.keys(s).map((k) => [k, s.getItem(k)]));
      const enc = (v) => JSON.stringify(v, (_, x) => {
        if (x instanceof ArrayBuffer) x = new Uint8Array(x);
        if (ArrayBuffer.isView(x)) return { bytes: btoa(String.fromCharCode(...new Uint8Array(x.buffer, x.byteOffset, x.byteLength))) };
        if (typeof CryptoKey !== 'undefined' && x instanceof CryptoKey) return { cryptoKey: x.type, extractable: x.extractable };
        return x;
      });
      const idb = [];
      for (const info of (await indexedDB.databases())) {
        const db = await new Promise((res, rej) => { const r = indexedDB.open(info.name); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
        for (const store of db.objectStoreNames) {
          const rows = await new Promise((res) => {
            const out = [];
            const c = db.transaction(store).objectStore(store).openCursor();
            c.onsuccess = () => { const cur = c.result; if (!cur) return res(out); out.push({ key: enc(cur.key), value: enc(cur.value) }); cur.continue(); };
            c.onerror = () => res(out);
          });
          idb.push({ db: info.name, store, rows });
        }
        db.close();
      }
      return { local: dump(localStorage), session: dump(sessionStorage), idb, location: location.href };
    });
    const cookies = await context.cookies();
    fs.writeFileSync(process.env.DUMP_FILE, JSON.stringify({ frames, urls, responses, html, storage, cookies }));
    const idbRows = storage.idb.reduce((n, s) => n + s.rows.length, 0);
    console.log(`  dumped: ${frames.length} frames, ${urls.length} URLs, ${responses.length} responses, ${html.length} page/frame snapshots, ${cookies.length} cookies, ${Object.keys(storage.local).length} localStorage and ${Object.keys(storage.session).length} sessionStorage entries, ${idbRows} IndexedDB rows in ${storage.idb.length} stores`);
  });
}, { timeoutMs: 60_000 });
