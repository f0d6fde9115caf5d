// An independent HTTP/2 client for srv's black-box tests: Node's built-in `http2` module.
// Usage: node h2_client.mjs <scenario> <base url http://host:port or https://host:port>
// (https: the certificate is not verified). Prints "ok <check>" per check and "PASS" at the
// end; any failure prints "FAIL <why>" and exits 1. test_h2_clients.py drives it.
import assert from 'node:assert/strict';
import http2 from 'node:http2';

const [scenario, base] = process.argv.slice(2);

function connect() {
  return new Promise((resolve, reject) => {
    const s = http2.connect(base, { rejectUnauthorized: false });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

// One request on session s: resolves { status, headers, body (Buffer) }.
function request(s, path, { method = 'GET', body = null, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = s.request({ ':method': method, ':path': path, ...headers },
      { endStream: body === null });
    const chunks = [];
    let head;
    req.on('response', (h) => { head = h; });
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve({ status: head[':status'], headers: head,
      body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== null) req.end(body);
  });
}

function pattern(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

function chunks(n) {
  let s = '';
  for (let i = 0; i < n; i++) s += `chunk ${i}\n`;
  return s;
}

// 50 streams at once on one session (/, /stream, /big, /echo), then a 1 MiB POST.
async function many() {
  const s = await connect();
  const proto = await request(s, '/proto');
  assert.equal(proto.body.toString(), 'HTTP/2\n');
  console.log('ok proto HTTP/2');
  const jobs = [];
  for (let i = 0; i < 50; i++) {
    if (i % 4 === 0) {
      jobs.push(request(s, '/').then((r) => {
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), 'Hello, World!');
      }));
    } else if (i % 4 === 1) {
      jobs.push(request(s, `/stream?chunks=${i * 10}`).then((r) => {
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), chunks(i * 10), `stream ${i}`);
      }));
    } else if (i % 4 === 2) {
      const n = 100000 + i * 1000;
      jobs.push(request(s, `/big?bytes=${n}`).then((r) => {
        assert.equal(r.status, 200);
        assert.equal(r.body.length, n, `big ${i}`);
        assert.ok(r.body.every((c) => c === 0x78), `big ${i}: not all x`);
      }));
    } else {
      const b = pattern(20000 + i, i);
      jobs.push(request(s, '/echo', { method: 'POST', body: b }).then((r) => {
        assert.equal(r.status, 200);
        assert.ok(Buffer.compare(r.body, b) === 0, `echo ${i}: ${r.body.length} bytes`);
      }));
    }
  }
  await Promise.all(jobs);
  console.log('ok 50 concurrent streams');
  const big = pattern(1 << 20, 3);
  const r = await request(s, '/echo', { method: 'POST', body: big,
    headers: { 'content-type': 'application/x-node' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/x-node');
  assert.ok(Buffer.compare(r.body, big) === 0, `echo 1 MiB: ${r.body.length} bytes`);
  console.log('ok POST 1 MiB');
  const head = await request(s, '/', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], '13');
  assert.equal(head.body.length, 0);
  console.log('ok HEAD');
  await new Promise((resolve) => s.close(resolve));
}

const scenarios = { many };

const timer = setTimeout(() => {
  console.log('FAIL timed out');
  process.exit(1);
}, Number(process.env.H2_CLIENT_TIMEOUT_MS || 60000));

try {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  await scenarios[scenario]();
  clearTimeout(timer);
  console.log('PASS');
} catch (e) {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
}
