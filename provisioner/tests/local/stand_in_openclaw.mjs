// A stand-in for `openclaw gateway run`: reads the port from the config Roost wrote, answers
// /readyz like OpenClaw, records its environment, heap limit and each launch, starts a helper
// process on GET /helper, and exits with code 3 on GET /crash. GET /crash-loop does the same
// and leaves a `crash-loop` file in its state dir: while it is there, every launch exits at once.
// With a `never-ready` file there, it never reports ready.
import { createServer } from 'node:http';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { getHeapStatistics } from 'node:v8';

const state = process.env.OPENCLAW_STATE_DIR;
appendFileSync(`${state}/launches`, `${process.pid}\n`);
if (existsSync(`${state}/crash-loop`)) {
  console.error('stand-in: crash-loop file present, exiting');
  process.exit(3);
}
const config = JSON.parse(readFileSync(process.env.OPENCLAW_CONFIG_PATH, 'utf8'));
writeFileSync(`${state}/env.json`, JSON.stringify(process.env));
writeFileSync(`${state}/heap.json`, JSON.stringify({ heapSizeLimit: getHeapStatistics().heap_size_limit, execArgv: process.execArgv }));
let ready = false;
// A `never-ready` file in the state dir: the agent listens but never reports ready.
if (!existsSync(`${state}/never-ready`)) setTimeout(() => { ready = true; }, 300);
createServer((req, res) => {
  if (req.url === '/readyz') {
    res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify(ready ? { ready: true } : { ready: false, failing: ['startup-sidecars'] }));
  } else if (req.url === '/helper') {
    // A tool process the agent started, left in its process group.
    const child = spawn('sleep', ['300'], { stdio: 'ignore' });
    res.end(String(child.pid));
  } else if (req.url === '/crash' || req.url === '/crash-loop') {
    if (req.url === '/crash-loop') writeFileSync(`${state}/crash-loop`, '');
    res.end('bye');
    setTimeout(() => process.exit(3), 10);
  } else {
    res.writeHead(404);
    res.end();
  }
}).listen(config.gateway.port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
