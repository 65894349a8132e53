// Fallback drivers, used ONLY when the anchors (../shared/bench-anchors or $BENCH_ANCHORS) are not
// on this machine, so that nano-vm can still be measured alone. They follow the anchors' README
// (same dataset rule, pool, mock tools, warm-ups, repetitions and result shape), but they are not the
// anchors' code: numbers from them are labelled "standalone" and are not put next to peer figures.

const log = (...a) => console.error(...a);
const r1 = (x) => Math.round(x * 10) / 10;

function seeded(seed) {
  // mulberry32
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const noopCap = { deadline: Infinity, calls: 0 };
const KB = 'x'.repeat(1000);
const TOOLS = {
  mock_processor: async () => ({ processed: true }),
  mock_finalize: async () => ({ status: 'done' }),
  workload: async () => KB,
  noop: async () => {
    noopCap.calls++;
    if ((noopCap.calls & 63) === 0 && performance.now() > noopCap.deadline) throw new Error('time cap reached');
    return { ok: true };
  },
};
const FAIL_TOOL = 'unregistered_tool_to_force_error';

const median = (xs) => {
  const s = xs.slice().sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length & 1 ? s[h] : (s[h - 1] + s[h]) / 2;
};
// The heap figures need a real gc(): children are started with --expose-gc (no node:vm trick to get it).
const gcFn = () => {
  if (typeof globalThis.gc === 'function') return globalThis.gc;
  throw new Error('W-LONG heap figures need gc(): run with node --expose-gc');
};
const MB = (b) => Math.round(b / 104857.6) / 10;

export const lib = {
  TOOLS,
  FAIL_TOOL,
  noopCap,
  median,
  mockModel: async () => await Promise.resolve(''),
  callTool: async (name, args) => {
    if (!(name in TOOLS)) throw new Error(`tool not registered: ${name}`);
    return TOOLS[name](args);
  },
  makeDataset: (n = 10_000, seed = 42) => {
    const next = seeded(seed);
    const out = [];
    for (let i = 0; i < n; i++) out.push({ value: Math.round(next() * 1000) / 1000 });
    return out;
  },
};

async function runPool(items, width, fn) {
  const results = new Array(items.length);
  let i = 0;
  const lane = async () => {
    for (let k = i++; k < items.length; k = i++) results[k] = await fn(items[k], k);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
  return results;
}

async function w10k(peer, { n = 10_000, conc = 200, runs = 5 } = {}) {
  const gc = gcFn();
  const data = lib.makeDataset(n, 42);
  const times = [];
  let ok;
  for (let r = 0; r <= runs; r++) {
    gc();
    const one = peer.w10k();
    const t0 = performance.now();
    const res = await runPool(data, conc, one);
    const dt = performance.now() - t0;
    const k = res.reduce((c, x) => c + (x.status === 'OK'), 0);
    if (ok !== undefined && ok !== k) throw new Error(`OK count changed: ${k} vs ${ok}`);
    ok = k;
    log(
      `  [${peer.name}] W-10K ${r ? `run ${r}` : 'warm-up'}: ${dt.toFixed(0)} ms  ${Math.round((n / dt) * 1000)} graphs/s  ok=${k} failed=${n - k}`,
    );
    if (r) times.push(dt);
  }
  const gps = times.map((t) => (n / t) * 1000);
  return {
    workload: 'w10k',
    peer: peer.name,
    ms: times,
    graphsPerSec: gps,
    median: median(gps),
    stepsPerSec: median(gps) * 4,
    ok,
    failed: n - ok,
  };
}

async function chain22(peer, { conc = 100, runs = 5, warmMs = 400, targetMs = 400 } = {}) {
  const gc = gcFn();
  const batch = (one) => Promise.all(Array.from({ length: conc }, (_, i) => one(i)));
  gc();
  let one = peer.chain22();
  let warm = 0;
  let last = 0;
  const w0 = performance.now();
  while (warm < 3 || performance.now() - w0 < warmMs) {
    const b0 = performance.now();
    await batch(one);
    last = performance.now() - b0;
    warm++;
  }
  const batches = Math.max(1, Math.ceil(targetMs / last));
  const times = [];
  for (let r = 1; r <= runs; r++) {
    gc();
    one = peer.chain22();
    const t0 = performance.now();
    for (let b = 0; b < batches; b++)
      if ((await batch(one)).some((x) => x.status !== 'OK')) throw new Error('chain22 run failed');
    times.push(performance.now() - t0);
    log(`  [${peer.name}] W-CHAIN22 run ${r}: ${times.at(-1).toFixed(0)} ms`);
  }
  const pps = times.map((t) => ((batches * conc) / t) * 1000);
  return {
    workload: 'chain22',
    peer: peer.name,
    batches,
    ms: times,
    programsPerSec: pps,
    median: median(pps),
    stepsPerSec: median(pps) * 22,
  };
}

async function measureLong(peer, n, capMs) {
  const gc = gcFn();
  gc();
  const before = process.memoryUsage().heapUsed;
  const b0 = performance.now();
  const run = peer.long(n);
  const buildMs = performance.now() - b0;
  noopCap.calls = 0;
  const t0 = performance.now();
  noopCap.deadline = t0 + capMs;
  let result;
  let error;
  try {
    result = await run();
    if (result.status !== 'OK') error = `status ${result.status}`;
  } catch (e) {
    error = String(e?.message ?? e).split('\n')[0];
  }
  const runMs = performance.now() - t0;
  noopCap.deadline = Infinity;
  const after = process.memoryUsage().heapUsed;
  gc();
  const kept = process.memoryUsage().heapUsed;
  if (runMs >= capMs) error = `stopped by the ${capMs / 1000} s cap after ${noopCap.calls} of ${n} steps (${error})`;
  void [run, result];
  return {
    buildMs,
    runMs,
    usPerStep: (runMs * 1000) / n,
    heapAfterMB: MB(after),
    heapDeltaMB: MB(after - before),
    retainedMB: MB(kept - before),
    error,
  };
}

async function long(peer, { ns = [250, 1000, 4000, 20000], capMs = 60_000, repMs = 2000, maxReps = 3 } = {}) {
  await peer.long(100)();
  const rows = [];
  for (const n of ns) {
    const reps = [];
    let spent = 0;
    while (reps.length < maxReps && spent < repMs) {
      const m = await measureLong(peer, n, capMs);
      reps.push(m);
      spent += m.runMs;
      if (m.error) break;
    }
    const med = (k) => median(reps.map((x) => x[k]));
    const row = {
      n,
      reps: reps.length,
      buildMs: med('buildMs'),
      runMs: med('runMs'),
      usPerStep: med('usPerStep'),
      heapAfterMB: r1(med('heapAfterMB')),
      heapDeltaMB: r1(med('heapDeltaMB')),
      retainedMB: r1(med('retainedMB')),
      error: reps.find((x) => x.error)?.error,
    };
    rows.push(row);
    log(
      `  [${peer.name}] W-LONG N=${n}: ${row.usPerStep.toFixed(1)} us/step (median of ${reps.length}); heapUsed ${row.heapAfterMB} MB (+${row.heapDeltaMB}), retained +${row.retainedMB} MB${row.error ? `  ERROR ${row.error}` : ''}`,
    );
  }
  return { workload: 'long', peer: peer.name, rows };
}

export const WORKLOADS = { w10k, chain22, long };
