// A second, independent WebSocket client for srv's black-box tests: Node's `ws` package.
// Usage: node ws_client.mjs <scenario> <base url ws://host:port or wss://host:port> [CA file]
// (wss: the server certificate must verify against the CA file, for the name "localhost").
// Prints "ok <check>" per check and "PASS" at the end; any failure prints "FAIL <why>" and exits
// 1. test_ws_node.py and test_tls_ws.py drive it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  console.log('FAIL the npm package ws is missing: run npm ci --prefix tests/integration');
  process.exit(2);
}

const [scenario, base, caFile] = process.argv.slice(2);
const tlsOpts = base.startsWith('wss:')
  ? { ca: caFile ? readFileSync(caFile) : undefined, servername: 'localhost' }
  : {};

function open(path, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base + path, {
      perMessageDeflate: false,
      maxPayload: 0,
      ...tlsOpts,
      ...opts,
    });
    ws.queue = [];
    ws.waiters = [];
    ws.on('message', (data, isBinary) => {
      const m = { data, isBinary };
      const w = ws.waiters.shift();
      if (w) w(m);
      else ws.queue.push(m);
    });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function next(ws) {
  const m = ws.queue.shift();
  if (m) return Promise.resolve(m);
  return new Promise((resolve) => ws.waiters.push(resolve));
}

function closed(ws) {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve({ code: ws.closeCode });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

function pattern(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

function text(n) {
  return 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil(n / 36) + 1).slice(0, n);
}

const SIZES = [0, 125, 126, 65535, 65536, 1 << 20];

async function echoAll(ws, label) {
  for (const n of SIZES) {
    const t = text(n);
    ws.send(t);
    let m = await next(ws);
    assert.equal(m.isBinary, false, `${label} text ${n}: came back binary`);
    assert.equal(m.data.toString(), t, `${label} text ${n}`);
    const b = pattern(n, n & 0xff);
    ws.send(b);
    m = await next(ws);
    assert.equal(m.isBinary, true, `${label} binary ${n}: came back text`);
    assert.ok(Buffer.compare(m.data, b) === 0, `${label} binary ${n}: ${m.data.length} bytes`);
    console.log(`ok ${label} echo ${n}`);
  }
  ws.send('héllo wörld ✓ 😀');
  assert.equal((await next(ws)).data.toString(), 'héllo wörld ✓ 😀');
}

const scenarios = {
  async echo() {
    const ws = await open('/ws');
    await echoAll(ws, 'plain');
    ws.close(1000);
    assert.equal((await closed(ws)).code, 1000);
  },

  async fragments() {
    const ws = await open('/ws');
    const parts = ['hello ', 'fragmented ', 'world'];
    parts.forEach((p, i) => ws.send(p, { fin: i === parts.length - 1 }));
    let m = await next(ws);
    assert.equal(m.isBinary, false);
    assert.equal(m.data.toString(), parts.join(''));
    const big = pattern(300000, 5);
    for (let i = 0; i < big.length; i += 30000)
      ws.send(big.subarray(i, i + 30000), { binary: true, fin: i + 30000 >= big.length });
    m = await next(ws);
    assert.equal(m.isBinary, true);
    assert.ok(Buffer.compare(m.data, big) === 0, 'fragmented binary');
    // a character split between fragments
    const e = Buffer.from('é✓');
    ws.send(e.subarray(0, 1), { binary: false, fin: false });
    ws.send(e.subarray(1), { binary: false, fin: true });
    assert.equal((await next(ws)).data.toString(), 'é✓');
    console.log('ok fragments');
    ws.close();
    await closed(ws);
  },

  async ping() {
    const ws = await open('/ws');
    for (const p of [Buffer.alloc(0), Buffer.from('abc'), pattern(125, 1)]) {
      const pong = new Promise((resolve) => ws.once('pong', resolve));
      ws.ping(p);
      const got = await pong;
      assert.ok(Buffer.compare(got, p) === 0, `pong payload ${got.length}`);
    }
    ws.send('after pings');
    assert.equal((await next(ws)).data.toString(), 'after pings');
    console.log('ok ping');
    ws.close();
    await closed(ws);
  },

  async close() {
    const ws = await open('/ws');
    ws.send('x');
    await next(ws);
    ws.close(4321, 'bye now');
    const c = await closed(ws);
    assert.equal(c.code, 4321, `close code ${c.code}`);
    console.log('ok close code echoed');
  },

  async closereason() {
    const ws = await open('/ws');
    ws.close(4321, 'bye now');
    const c = await closed(ws);
    assert.deepEqual([c.code, c.reason], [4321, 'bye now'], `close ${c.code} "${c.reason}"`);
    console.log('ok close reason echoed');
  },

  async refused() {
    // refused by the app: upgraded, then closed at once with its code (4004) and "refused"
    const ws = await open('/nope');
    const { code, reason } = await closed(ws);
    assert.equal(code, 4004);
    assert.equal(reason, 'refused');
    console.log('ok refused 4004');
    // plain HTTP on the same port still reaches the app
    const r = await fetch(base.replace('ws:', 'http:') + '/');
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'Hello, World!');
    console.log('ok plain http');
  },

  async deflate() {
    const ws = await open('/ws', { perMessageDeflate: true });
    assert.match(ws.extensions, /permessage-deflate/, `extensions "${ws.extensions}"`);
    console.log('ok deflate negotiated');
    await echoAll(ws, 'deflate');
    ws.close();
    await closed(ws);
  },

  async nodeflate() {
    const ws = await open('/ws', { perMessageDeflate: true });
    assert.equal(ws.extensions, '', `extensions "${ws.extensions}" on a listener without it`);
    ws.send('x'.repeat(1000));
    assert.equal((await next(ws)).data.toString(), 'x'.repeat(1000));
    console.log('ok deflate declined');
    ws.close();
    await closed(ws);
  },

  async chat() {
    const n = 200;
    const clients = await Promise.all(Array.from({ length: n }, () => open('/chat')));
    clients[0].send('from node');
    const msgs = await Promise.all(clients.map((ws) => next(ws)));
    for (const m of msgs) assert.match(m.data.toString(), /^#[0-9a-f]+: from node$/);
    assert.equal(new Set(msgs.map((m) => m.data.toString())).size, 1);
    console.log(`ok chat ${n}`);
    clients.forEach((ws) => ws.close());
    await Promise.all(clients.map(closed));
  },

  // wss:// without the test CA: the client refuses the server's certificate.
  async untrusted() {
    await assert.rejects(open('/ws', { ca: undefined }), /certificate|self.signed|verify/i);
    console.log('ok untrusted certificate refused');
  },

  // Connects, then waits for the server to close (the test stops the server).
  async stop() {
    const ws = await open('/ws');
    ws.send('x');
    await next(ws);
    console.log('READY');
    const c = await closed(ws);
    assert.equal(c.code, 1001, `close code ${c.code} on server stop`);
    console.log('ok going away');
  },
};

const fn = scenarios[scenario];
if (!fn) {
  console.log(`FAIL unknown scenario ${scenario}`);
  process.exit(2);
}
try {
  await fn();
  console.log('PASS');
  process.exit(0);
} catch (e) {
  console.log(`FAIL ${e && e.stack ? e.stack : e}`);
  process.exit(1);
}
