// Browser side of test_dashboard.py: drives Debian's chromium (headless, through puppeteer-core)
// on srv's admin dashboard and answers the Python test's commands, one per stdin line, with one
// JSON line each on stdout:
//   open URL [T] -> {"opened": URL}           (loads the page; waits for its first poll)
//                  With T, or else #token=T in URL, the page's own request carries
//                  "Authorization: Bearer T" (srv asks for it on / as on every admin path but
//                  /health: in real life a proxy in front adds it); the page's fetches must
//                  carry it by themselves.
//   state     -> {"workerCount": "2", "rps": "0", "respawns": "0", "health": "ok", ...}
//   quit      -> closes the browser and exits 0
// The first line printed is {"ready": true, "chromePid": N}. Every request the page makes to
// anything but the origin given on the command line is aborted and reported under "offsite";
// console errors, page errors, failed requests and HTTP errors are reported under "problems".
// Usage: node dashboard.mjs ORIGIN USER_DATA_DIR
import readline from 'node:readline';
import puppeteer from 'puppeteer-core';

const [origin, userDataDir] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const problems = [], offsite = [];
let docToken = '';  // from the last open URL's #token=
const say = obj => process.stdout.write(JSON.stringify(obj) + '\n');

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  userDataDir,
  args: ['--no-sandbox', '--no-first-run', '--no-proxy-server', '--disable-extensions',
         '--disable-sync', '--disable-component-update', '--disable-background-networking',
         // Resolve no host name at all: the page may only talk to srv on 127.0.0.1.
         '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
const page = await browser.newPage();
await page.setRequestInterception(true);
page.on('request', req => {
  const url = req.url();
  if (url.startsWith('data:')) return req.continue();
  if (url.startsWith(origin + '/')) {
    if (!docToken || !req.isNavigationRequest()) return req.continue();
    return req.continue({headers: {...req.headers(), authorization: 'Bearer ' + docToken}});
  }
  offsite.push(url);
  return req.abort();
});
page.on('console', msg => {
  if (msg.type() === 'error') problems.push('console: ' + msg.text());
});
page.on('pageerror', err => problems.push('pageerror: ' + err.message));
page.on('requestfailed', req => {
  if (!offsite.includes(req.url()))
    problems.push(`requestfailed: ${req.url()} ${req.failure()?.errorText}`);
});
page.on('response', res => {
  if (res.status() >= 400) problems.push(`http ${res.status()}: ${res.url()}`);
});

async function state() {
  const s = await page.evaluate(() => {
    const text = id => document.getElementById(id)?.textContent ?? null;
    const D = window.srvDashboard;
    return {
      workerCount: text('worker-count'), rps: text('rps'), respawns: text('respawns'),
      health: text('health'), title: document.title,
      maintenance: document.getElementById('maintenance')?.hidden === false,
      polls: D ? D.polls : 0, samples: D ? D.samples.length : 0,
      lastReq: D && D.samples.length ? D.samples[D.samples.length - 1].req : null,
      maxRps: D ? Math.max(0, ...D.samples.map(s => s.rps ?? 0)) : 0,
      marks: D ? D.marks.map(m => m.kind) : [],
      pageErrors: D ? D.errors.map(e => e.msg) : [],
    };
  });
  return {...s, problems, offsite};
}

async function command(line) {
  const [cmd, arg, arg2] = line.trim().split(/\s+/, 3);
  if (cmd === 'open') {
    const m = /[#&]token=([^&]*)/.exec(new URL(arg).hash);
    docToken = arg2 ?? (m ? decodeURIComponent(m[1]) : '');
    await page.goto(arg, {waitUntil: 'load'});
    await page.waitForFunction(() => window.srvDashboard && window.srvDashboard.polls > 0,
                               {timeout: 60000});
    return {opened: arg};
  }
  if (cmd === 'state') return state();
  if (cmd === 'quit') {
    await browser.close();
    say({bye: true});
    process.exit(0);
  }
  return {error: 'unknown command ' + cmd};
}

say({ready: true, chromePid: browser.process().pid});
const rl = readline.createInterface({input: process.stdin});
let chain = Promise.resolve();
rl.on('line', line => {
  chain = chain.then(() => command(line)).then(say, err => say({error: String(err.stack || err)}));
});
// The test went away (stdin closed) without saying quit: close the browser all the same.
rl.on('close', () => chain.then(() => browser.close()).finally(() => process.exit(0)));
