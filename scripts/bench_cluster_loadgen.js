'use strict';
// Fan-out load generator for scripts/bench_cluster.py: subscribers spread over SEVERAL nodes,
// publishes sent to ONE node over HTTP. (The team's harness, ../shared/bench/loadgen.js, connects
// every subscriber to one port and each of its processes publishes its own blast, so two of them
// cannot share one blast; this generator follows its method for everything else.)
//
//   node scripts/bench_cluster_loadgen.js --ws-urls ws://127.0.0.1:P1/socket,ws://127.0.0.1:P2/socket \
//        --publish-url http://127.0.0.1:P1/api/v1/broadcast --clients 1000 [--pids a:PID,b:PID,redis:PID]
//
// Protocol: the engine's native one, as the harness speaks it. Subscriber i connects to
// ws-urls[i % n] (so half on each of two nodes), waits for {"event":"connected"}, sends
// {"event":"subscribe","channel":"bench"} and waits for {"event":"subscribed"}. Publishing is
// POST --publish-url with "Authorization: Bearer $REALTIME_API_KEY" and
// {"channel":"bench","event":"bench","data":{"bench_ts":..,"seq":..,"p":"xx.."}} (deliveries of
// ~100 bytes), over keep-alive connections with at most --http-concurrency requests in flight.
// A delivery is any text frame carrying "bench_ts": every one is counted, on every subscriber.
//
// Phases: connect + subscribe all C -> settle -> warm-up blast (M/10 publishes, must be fully
// delivered) -> blast: M = ceil(--blast-deliveries / C) publishes queued back-to-back (only the
// in-flight limit and TCP hold them), deliveries/s = C x M / (time of the last expected delivery -
// time the first publish was queued). CPU of each process given in --pids is read from /proc over
// the blast. Latency (publish sent -> received) on every k-th subscriber of each node, k = ceil(C / 250).
//
// Output: one JSON object on stdout; progress on stderr. The raw WebSocket client (manual
// upgrade, frames parsed in place, client frames masked with a zero key) is the harness's design.

const fs = require('fs');
const http = require('http');
const net = require('net');
const { performance } = require('perf_hooks');

const argv = process.argv.slice(2);
function arg(name, def) {
  const i = argv.indexOf('--' + name);
  return i < 0 ? def : argv[i + 1];
}
const num = (name, def) => Number(arg(name, def));
const cfg = {
  wsUrls: String(arg('ws-urls', 'ws://127.0.0.1:8080/socket')).split(',').filter(Boolean),
  publishUrl: arg('publish-url', 'http://127.0.0.1:8080/api/v1/broadcast'),
  apiKey: process.env.REALTIME_API_KEY || '',
  clients: num('clients', 1000),
  blastDeliveries: num('blast-deliveries', 300000),
  httpConcurrency: num('http-concurrency', 16),
  connectConcurrency: num('connect-concurrency', 200),
  payloadBytes: num('payload-bytes', 100),
  phaseTimeout: num('phase-timeout', 30),
  settle: num('settle', 1.0),
  maxSeconds: num('max-seconds', 170),
  clkTck: num('clk-tck', 100),
  sampleMax: num('sample-max', 250),
  pids: String(arg('pids', '')).split(',').filter(Boolean).map((s) => {
    const [label, pid] = s.split(':');
    return { label, pid: Number(pid) };
  }),
};
const CH = 'bench';
const log = (...a) => process.stderr.write(a.join(' ') + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const result = { cfg: { ...cfg, apiKey: cfg.apiKey ? '(set)' : '' }, phases: {}, errors: [] };
let finished = false;
function finish(code) {
  if (finished) return;
  finished = true;
  result.closedDuringRun = closed;
  result.otherFramesAfterSubscribe = otherFrames;
  result.http = { ...pubStats };
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
}
setTimeout(() => { result.errors.push('max-seconds watchdog fired'); finish(3); }, cfg.maxSeconds * 1000);

// ------------------------------------------------------------------ CPU from /proc
function procCpu(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const io = readIo(pid);
    return { u: Number(f[11]) / cfg.clkTck, s: Number(f[12]) / cfg.clkTck, syscw: io };
  } catch (e) { return null; }
}
// write-type syscalls of a process (/proc/PID/io syscw): deliveries per write shows the coalescing
function readIo(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/io`, 'utf8').match(/syscw:\s+(\d+)/);
    return m ? Number(m[1]) : null;
  } catch (e) { return null; }
}
function cpuSnap() {
  const procs = {};
  for (const { label, pid } of cfg.pids) procs[label] = procCpu(pid);
  return { t: performance.now(), me: process.cpuUsage(), procs };
}
function cpuDelta(a, b) {
  const wall = (b.t - a.t) / 1000;
  const out = { wallS: +wall.toFixed(3),
    loadgenCpuPct: +(100 * ((b.me.user - a.me.user) + (b.me.system - a.me.system)) / 1e6 / wall).toFixed(1) };
  const procs = {};
  for (const { label } of cfg.pids) {
    const x = a.procs[label];
    const y = b.procs[label];
    if (x && y) {
      procs[label] = { cpuPct: +(100 * ((y.u - x.u) + (y.s - x.s)) / wall).toFixed(1),
        sysPct: +(100 * (y.s - x.s) / wall).toFixed(1), cpuS: +((y.u - x.u) + (y.s - x.s)).toFixed(3),
        writeSyscalls: x.syscw != null && y.syscw != null ? y.syscw - x.syscw : null };
    }
  }
  out.procs = procs;
  return out;
}

// ------------------------------------------------------------------ counting
let received = 0;
let target = Infinity;
let tTarget = 0;
let closed = 0;
let otherFrames = 0;
let stopping = false;
let abortReason = null;
const perUrl = cfg.wsUrls.map(() => 0);
const LAT_CAP = 2000000;
const lat = new Float64Array(LAT_CAP);
const latUrl = new Uint8Array(LAT_CAP); // which node the sample was received from
let nLat = 0;
function pct(from, to, urlIndex) {
  let a = lat.slice(from, to);
  if (urlIndex != null) a = a.filter((_, j) => latUrl[from + j] === urlIndex);
  const n = a.length;
  if (n <= 0) return null;
  a.sort();
  const q = (p) => a[Math.min(n - 1, Math.floor(p * n))];
  return { n, p50: +q(0.5).toFixed(2), p99: +q(0.99).toFixed(2), max: +a[n - 1].toFixed(2) };
}
const MARK = Buffer.from('"bench_ts"');

// ------------------------------------------------------------------ raw WebSocket client
function maskedFrame(opcode, payload) {
  const n = payload.length;
  let hdr;
  if (n < 126) hdr = Buffer.from([0x80 | opcode, 0x80 | n, 0, 0, 0, 0]);
  else if (n < 65536) hdr = Buffer.from([0x80 | opcode, 0x80 | 126, n >> 8, n & 255, 0, 0, 0, 0]);
  else throw new Error('frame too large');
  return Buffer.concat([hdr, payload]);
}

function connect(urlIndex, sampled) {
  const u = new URL(cfg.wsUrls[urlIndex]);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port || 80) });
    sock.setNoDelay(true);
    let httpDone = false;
    let ready = false;
    let pending = null;
    const send = (s) => sock.write(maskedFrame(1, Buffer.from(s)));
    const fail = (e) => { clearTimeout(timer); reject(e); sock.destroy(); };
    const timer = setTimeout(() => { if (!ready) fail(new Error('handshake timeout')); }, 20000);
    sock.on('connect', () => {
      sock.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    });
    sock.on('data', (chunk) => {
      if (pending !== null) { chunk = Buffer.concat([pending, chunk]); pending = null; }
      let off = 0;
      const len = chunk.length;
      if (!httpDone) {
        const idx = chunk.indexOf('\r\n\r\n');
        if (idx < 0) { pending = chunk; return; }
        if (chunk.toString('latin1', 0, 12) !== 'HTTP/1.1 101') {
          fail(new Error('bad handshake: ' + chunk.toString('latin1', 0, 60))); return;
        }
        httpDone = true;
        off = idx + 4;
      }
      while (len - off >= 2) {
        const b0 = chunk[off];
        let pl = chunk[off + 1] & 0x7f;
        let hl = 2;
        if (pl === 126) { if (len - off < 4) break; pl = chunk.readUInt16BE(off + 2); hl = 4; }
        else if (pl === 127) { if (len - off < 10) break; pl = Number(chunk.readBigUInt64BE(off + 2)); hl = 10; }
        if (len - off < hl + pl) break;
        const st = off + hl;
        const en = st + pl;
        off = en;
        const op = b0 & 0x0f;
        if (op <= 2) {
          if (ready) {
            const k = chunk.indexOf(MARK, st);
            if (k < 0 || k >= en) { otherFrames++; continue; }
            received++;
            perUrl[urlIndex]++;
            if (received === target) tTarget = performance.now();
            if (sampled && nLat < LAT_CAP) {
              const now = performance.now();
              latUrl[nLat] = urlIndex;
              lat[nLat++] = now - JSON.parse(chunk.toString('utf8', st, en)).data.bench_ts;
            }
          } else {
            let m;
            try { m = JSON.parse(chunk.toString('utf8', st, en)); } catch (e) { fail(e); return; }
            if (m.event === 'connected') send(JSON.stringify({ event: 'subscribe', channel: CH }));
            else if (m.event === 'subscribed' && (m.channel === CH || m.channel == null)) {
              ready = true; clearTimeout(timer); resolve({ sock });
            } else if (m.event === 'error') { fail(new Error('error during subscribe: ' + JSON.stringify(m).slice(0, 300))); return; }
          }
        } else if (op === 9) sock.write(maskedFrame(10, chunk.subarray(st, en)));
        else if (op === 8) sock.end();
      }
      if (off < len) pending = chunk.subarray(off);
    });
    sock.on('error', (e) => { clearTimeout(timer); if (!ready) reject(e); });
    sock.on('close', () => { clearTimeout(timer); if (!stopping && ready) closed++; if (!ready) reject(new Error('closed before ready')); });
  });
}

async function connectAll(n, stride) {
  const subs = new Array(n);
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      let lastErr = null;
      for (let attempt = 0; attempt < 3; attempt++) {
        const nu = cfg.wsUrls.length; // subscriber i on node i % nu; every stride-th of each node sampled
        try { subs[i] = await connect(i % nu, Math.floor(i / nu) % stride === 0); lastErr = null; break; }
        catch (e) { lastErr = e; await sleep(50); }
      }
      if (lastErr) throw lastErr;
    }
  }
  const ws = [];
  for (let k = 0; k < Math.min(cfg.connectConcurrency, n); k++) ws.push(worker());
  await Promise.all(ws);
  return subs;
}

// ------------------------------------------------------------------ HTTP publisher
let padStr = '';
const pubStats = { requests: 0, ok: 0, failed: 0, statuses: {}, firstError: null, maxInFlight: 0 };
const pu = new URL(cfg.publishUrl);
const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.httpConcurrency, maxFreeSockets: cfg.httpConcurrency });
const queue = [];
let head = 0;
let inFlight = 0;

function post(body, onDone) {
  const buf = Buffer.from(body);
  const req = http.request({ agent, hostname: pu.hostname, port: pu.port, path: pu.pathname, method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + cfg.apiKey, 'Content-Length': buf.length } },
  (res) => {
    const parts = [];
    res.on('data', (c) => parts.push(c));
    res.on('end', () => onDone(null, res.statusCode, Buffer.concat(parts).toString('utf8', 0, 300)));
    res.on('error', (e) => onDone(e));
  });
  req.on('socket', (s) => s.setNoDelay(true));
  req.setTimeout(20000, () => req.destroy(new Error('HTTP publish timeout (20 s)')));
  req.on('error', (e) => onDone(e));
  req.end(buf);
}

function pump() {
  while (inFlight < cfg.httpConcurrency && head < queue.length) {
    const seq = queue[head++];
    inFlight++;
    if (inFlight > pubStats.maxInFlight) pubStats.maxInFlight = inFlight;
    pubStats.requests++;
    // the timestamp is taken when the request is actually sent
    const body = JSON.stringify({ channel: CH, event: 'bench', data: { bench_ts: performance.now(), seq, p: padStr } });
    let settled = false;
    post(body, (err, status, text) => {
      if (settled) return;
      settled = true;
      inFlight--;
      if (err || status < 200 || status >= 300) {
        pubStats.failed++;
        const key = err ? 'error' : String(status);
        pubStats.statuses[key] = (pubStats.statuses[key] || 0) + 1;
        const why = err ? String(err.message || err) : `HTTP ${status} ${text}`;
        if (!pubStats.firstError) pubStats.firstError = why;
        if (!abortReason) abortReason = `publish failed: ${why}`;
      } else {
        pubStats.ok++;
        pubStats.statuses[status] = (pubStats.statuses[status] || 0) + 1;
      }
      pump();
    });
  }
  if (head > 4096 && head === queue.length) { queue.length = 0; head = 0; }
}
function publish(seq) { queue.push(seq); pump(); }

async function waitDeliveries(tgt, timeoutS) {
  const deadline = performance.now() + timeoutS * 1000;
  while (received < tgt && performance.now() < deadline && !abortReason) await sleep(1);
  return received >= tgt;
}

async function blast(name, n, C) {
  await sleep(200);
  const base = received;
  const baseUrl = perUrl.slice();
  const expected = n * C;
  target = base + expected;
  tTarget = 0;
  const latFrom = nLat;
  const h0 = pubStats.requests;
  const c0 = cpuSnap();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) publish(i);
  const tQueued = performance.now();
  const ok = await waitDeliveries(target, cfg.phaseTimeout);
  const t1 = ok ? tTarget : performance.now();
  const c1 = cpuSnap();
  const got = received - base;
  const r = {
    publishes: n, expectedDeliveries: expected, deliveries: got, complete: ok,
    deliveriesPerUrl: perUrl.map((x, i) => x - baseUrl[i]),
    durationS: +((t1 - t0) / 1000).toFixed(4), queueLoopMs: +(tQueued - t0).toFixed(1),
    deliveriesPerSec: Math.round(got / ((t1 - t0) / 1000)),
    requests: pubStats.requests - h0,
    latencyMs: pct(latFrom, nLat), latencyMsPerUrl: cfg.wsUrls.map((_, u) => pct(latFrom, nLat, u)),
    ...cpuDelta(c0, c1),
  };
  target = Infinity;
  if (!ok && !abortReason) r.lateDrainComplete = await waitDeliveries(base + expected, cfg.phaseTimeout);
  result.phases[name] = r;
  log(`[${name}] ${got}/${expected} in ${r.durationS}s -> ${r.deliveriesPerSec}/s per-url=${r.deliveriesPerUrl} ` +
    `lg=${r.loadgenCpuPct}% ${JSON.stringify(r.procs)}`);
  if (abortReason) throw new Error(abortReason);
  return r;
}

async function main() {
  const probe = JSON.stringify({ event: 'bench', channel: CH, data: { bench_ts: 123456.123456789, seq: 12345, p: '' } });
  padStr = 'x'.repeat(Math.max(0, cfg.payloadBytes - probe.length));
  // preflight: checks the publish URL and key before anything connects
  const pf = await new Promise((resolve) => {
    post(JSON.stringify({ channel: 'bench-preflight', event: 'bench', data: { preflight: true } }),
      (err, status, text) => resolve({ status: err ? null : status, error: err ? String(err.message || err) : null, body: text }));
  });
  result.publishPreflight = pf;
  if (pf.status == null || pf.status < 200 || pf.status >= 300) {
    throw new Error(`publish preflight failed: ${pf.error || `HTTP ${pf.status} ${pf.body}`}`);
  }
  const C = cfg.clients;
  const stride = Math.max(1, Math.ceil(C / cfg.sampleMax));
  const tc0 = performance.now();
  await connectAll(C, stride);
  result.connectS = +((performance.now() - tc0) / 1000).toFixed(3);
  log(`connected ${C} subscribers over ${cfg.wsUrls.length} node(s) in ${result.connectS}s`);
  await sleep(cfg.settle * 1000);
  const M = Math.max(5, Math.ceil(cfg.blastDeliveries / C));
  const w = await blast('warmup', Math.max(5, Math.ceil(M / 10)), C);
  if (!w.complete) throw new Error('warm-up incomplete: not every subscriber receives the publications');
  await blast('blast', M, C);
  stopping = true;
  finish(0);
}

main().catch((e) => {
  result.errors.push(e instanceof Error ? e.message : String(e));
  finish(2);
});
