// A stand-in for `openclaw gateway run`: reads the port from the config Roost wrote, answers
// /readyz like OpenClaw, records its environment, starts a helper process on GET /helper, and
// exits on GET /crash.
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';

const config = JSON.parse(readFileSync(process.env.OPENCLAW_CONFIG_PATH, 'utf8'));
writeFileSync(`${process.env.OPENCLAW_STATE_DIR}/env.json`, JSON.stringify(process.env));
let ready = false;
setTimeout(() => { ready = true; }, 300);
createServer((req, res) => {
  if (req.url === '/readyz') {
    res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify(ready ? { ready: true } : { ready: false, failing: ['startup-sidecars'] }));
  } else if (req.url === '/helper') {
    // A tool process the agent started, left in its process group.
    const child = spawn('sleep', ['300'], { stdio: 'ignore' });
    res.end(String(child.pid));
  } else if (req.url === '/crash') {
    res.end('bye');
    setTimeout(() => process.exit(3), 10);
  } else {
    res.writeHead(404);
    res.end();
  }
}).listen(config.gateway.port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
