// Is nano-vm's per-step cost flat in N? W-LONG (N sequential no-op tool steps) for nano-vm only,
// each N in its own fresh `node --expose-gc` process, with the pre-flight validation timed apart
// from the run and the run cut into windows (µs/step of each tenth of the run: a cost that grows
// with the trace shows as windows getting slower, even within one N).
//
//   node bench/perStep.mjs [--ns=250,1000,4000,20000,100000] [--reps=3] [--windows=10]
//   node bench/perStep.mjs --cpu-prof [--ns=100000]              profile W-LONG; top functions by self time
//   node bench/perStep.mjs --cpu-prof --workload=w10k            profile W-10K (or chain22) on the anchors' driver
//   node bench/perStep.mjs --top=bench/.profiles/<file>.cpuprofile   top functions of any profile
//
// Profiles go to bench/.profiles/ (gitignored); open them in Chrome DevTools or speedscope.
// This uses the same nano-vm peer and mock tools as bench/run.mjs; run.mjs remains the place for
// comparisons with the peers.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BENCH, REPO, RUNTIME, fmt, locateAnchors, loadDrivers, loadNanoVm, median } from './common.mjs';

const log = (...a) => console.error(...a);
const argv = process.argv.slice(2);
const arg = (name, dflt) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt;
const has = (name) => argv.includes(`--${name}`) || argv.some((a) => a.startsWith(`--${name}=`));
const us = (x) => fmt(x, x < 10 ? 2 : 1);
const PROFILES = join(BENCH, '.profiles');

/** Top functions by self time in a .cpuprofile. */
function top(file, k = 25) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = prof.timeDeltas;
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const n = byId.get(prof.samples[i]);
    const { functionName, url, lineNumber } = n.callFrame;
    const where = url
      ? `${url.replace(pathToFileURL(REPO).href + '/', '').replace(/^file:\/\//, '')}:${lineNumber + 1}`
      : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    const t = dt[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + t);
    total += t;
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, k);
  console.log(`\nTop ${k} by self time of ${relative(REPO, file)} (${fmt(total / 1000)} ms sampled):\n`);
  console.log('| self ms | % | function |\n|---:|---:|---|');
  for (const [key, t] of rows) console.log(`| ${fmt(t / 1000, 1)} | ${fmt((t / total) * 100, 1)} | \`${key}\` |`);
}

/** Spawn node with optional --cpu-prof; returns the child's last stdout line (JSON) and the new profile, if any. */
function spawnNode(args, prof) {
  const before = Date.now();
  const flags = ['--expose-gc', ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${PROFILES}`] : [])];
  if (prof) mkdirSync(PROFILES, { recursive: true });
  const c = spawnSync(process.execPath, [...flags, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (c.status !== 0) throw new Error(`child exited ${c.status ?? c.signal}`);
  const profile = prof
    ? readdirSync(PROFILES)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(PROFILES, f))
        .filter((f) => statSync(f).mtimeMs >= before - 1000)
        .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]
    : undefined;
  return { out: JSON.parse(c.stdout.trim().split('\n').pop()), profile };
}

// ------------------------------------------------------------------ child: one N
async function child(n, reps, windows) {
  const drivers = await loadDrivers(locateAnchors().dir);
  const rt = await import(pathToFileURL(RUNTIME).href);
  // the anchors' no-op, plus a timestamp at every window boundary
  const marks = [];
  let every = Infinity;
  let calls = 0;
  const noop = drivers.lib.TOOLS.noop;
  const peer = await loadNanoVm(drivers.lib);
  const timed = await import('./nano-vm.mjs').then((m) =>
    m.makeNanoVm(drivers.lib, rt, {
      tools: {
        noop: (args) => {
          if (++calls % every === 0) marks.push(performance.now());
          return noop(args);
        },
      },
    }),
  );
  await peer.long(100)(); // warm-up, like the anchors' driver
  const rows = [];
  for (let r = 0; r < reps; r++)
    rows.push(
      await once(
        timed,
        n,
        windows,
        () => ((calls = 0), (marks.length = 0)),
        (k) => (every = k),
        marks,
        rt,
      ),
    );
  const m = (k) => median(rows.map((x) => x[k]));
  console.log(
    JSON.stringify({
      n,
      reps,
      buildMs: m('buildMs'),
      validateMs: m('validateMs'),
      runMs: m('runMs'),
      usPerStep: m('usPerStep'),
      windows: rows[0].windows.map((_, i) => median(rows.map((x) => x.windows[i]))),
      heapAfterMB: m('heapAfterMB'),
      retainedMB: m('retainedMB'),
      events: rows[0].events,
    }),
  );
}

/**
 * One measured run, in its own async function so that nothing of it outlives the call (an async
 * function's suspended frame would otherwise keep the previous run's result alive into the next
 * run's "before" heap).
 */
async function once(peer, n, windows, reset, setEvery, marks, rt) {
  const gc = globalThis.gc;
  gc();
  const h0 = process.memoryUsage().heapUsed;
  const b0 = performance.now();
  const run = peer.long(n);
  const buildMs = performance.now() - b0;
  const v0 = performance.now();
  const issues = rt.preflight(run.program, run.tools); // cached: run() below does not validate again
  const validateMs = performance.now() - v0;
  if (issues.some((i) => i.severity === 'error')) throw new Error(`program invalid: ${issues[0].message}`);
  reset();
  const per = Math.max(1, Math.floor(n / windows));
  setEvery(per);
  const t0 = performance.now();
  const res = await run();
  const runMs = performance.now() - t0;
  setEvery(Infinity);
  const h1 = process.memoryUsage().heapUsed;
  gc();
  const h2 = process.memoryUsage().heapUsed; // `run` (program, store) and `res` are still referenced below
  if (process.env.DEBUG_HEAP)
    log(`  heap ${fmt(h0 / 1048576, 1)} -> ${fmt(h1 / 1048576, 1)} -> ${fmt(h2 / 1048576, 1)} MB`);
  if (res.status !== 'OK') throw new Error(`run status ${res.result.status}`);
  const w = [t0, ...marks.slice(0, windows)].map((t, i, a) => (i ? ((t - a[i - 1]) * 1000) / per : null)).slice(1);
  return {
    buildMs,
    validateMs,
    runMs,
    usPerStep: (runMs * 1000) / n,
    windows: w,
    heapAfterMB: h1 / 1048576,
    retainedMB: (h2 - h0) / 1048576,
    events: res.result.events.length,
    kept: [run, res].length,
  };
}

// ------------------------------------------------------------------ main
if (has('child')) {
  await child(Number(arg('n')), Number(arg('reps')), Number(arg('windows')));
} else if (has('top')) {
  top(arg('top'));
} else {
  const prof = has('cpu-prof');
  const workload = arg('workload', 'long');
  if (workload !== 'long') {
    if (!prof)
      throw new Error(
        '--workload=w10k|chain22 is for profiling: add --cpu-prof (for throughput use node bench/run.mjs --only=...)',
      );
    const { profile } = spawnNode([join(BENCH, 'child.mjs'), workload, 'nano-vm'], true);
    top(profile);
  } else {
    const ns = arg('ns', prof ? '100000' : '250,1000,4000,20000,100000')
      .split(',')
      .map(Number);
    const reps = Number(arg('reps', prof ? 1 : 3));
    const windows = Number(arg('windows', 10));
    const rows = [];
    for (const n of ns) {
      log(`# W-LONG nano-vm N=${fmt(n)} (${reps} rep${reps > 1 ? 's' : ''}, fresh process)`);
      const { out, profile } = spawnNode(
        [join(BENCH, 'perStep.mjs'), '--child', `--n=${n}`, `--reps=${reps}`, `--windows=${windows}`],
        prof,
      );
      rows.push(out);
      log(
        `  ${us(out.usPerStep)} µs/step run, ${fmt(out.validateMs, 1)} ms pre-flight; windows: ${out.windows.map(us).join(' ')}`,
      );
      if (profile) top(profile);
    }
    const ref = rows.find((r) => r.n === 1000) ?? rows[0];
    console.log(
      `\nnano-vm W-LONG: N sequential no-op tool steps, median of ${reps} run(s) per N, each N in a fresh process`,
    );
    console.log(
      `µs/step = run time / N, pre-flight validation excluded (timed in its own column); windows = µs/step of each 1/${windows} of the run\n`,
    );
    console.log(
      `| N | µs/step | vs N=${fmt(ref.n)} | pre-flight ms | pre-flight µs/step | windows, µs/step (first → last) | last ÷ first window | heapUsed after, MB | retained, MB | retained bytes/event |`,
    );
    console.log('|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|');
    for (const r of rows) {
      const w = r.windows;
      console.log(
        `| ${fmt(r.n)} | ${us(r.usPerStep)} | ×${(r.usPerStep / ref.usPerStep).toFixed(2)} | ${fmt(r.validateMs, 1)} | ${us((r.validateMs * 1000) / r.n)} | ${w.map(us).join(' ')} | ×${(w.at(-1) / w[0]).toFixed(2)} | ${fmt(r.heapAfterMB, 1)} | ${fmt(r.retainedMB, 1)} | ${fmt((r.retainedMB * 1048576) / r.events)} |`,
      );
    }
  }
}
