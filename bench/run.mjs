// nano-vm against the peers of ../shared/bench-anchors on W-10K, W-CHAIN22 and W-LONG.
// Every (round, workload, peer) runs in its own fresh `node --expose-gc bench/child.mjs` process,
// with the anchors' drivers; the peers (nano-vm included) are interleaved within each round and
// their order rotates from round to round. Prints markdown tables of medians across rounds and
// writes bench/results/<timestamp>.json + .md (a quick or partial run: <timestamp>.tmp.json/.md).
//
//   npm run bench                                   (= npm run build && node bench/run.mjs)
//   node bench/run.mjs [--rounds=2] [--only=w10k,chain22,long] [--peers=bare,xstate,...]
//                      [--ns=250,1000,4000,20000,100000]   nano-vm's (and bare's, bare-hash's) W-LONG Ns
//                      [--peer-ns=250,1000,4000,20000]     the other peers' W-LONG Ns (the anchors' default)
//                      [--quick]                           1 round, nano-vm + bare + bare-hash, Ns up to 20,000
//                      [--workers=N]                       nano-vm-pool's worker threads (default: one per core)
//                      [--no-pool]                         without the nano-vm-pool row (RunPool on worker threads)
//                      [--extras]                          also bench/durable.mjs and bench/llmOverhead.mjs (a full run always does)
//   node bench/run.mjs --render=bench/results/<file>.json  (the tables of a saved run again)
//
// xstate / langgraph* need `node bench/setup-peers.mjs` once; without it they are shown with the
// anchors' recorded figures, marked as such.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, relative } from 'node:path';
import {
  ANCHOR_PEERS,
  BENCH,
  LIGHT_PEERS,
  NANO,
  NANO_POOL,
  NANO_POOL_WORKLOADS,
  REPO,
  fmt,
  gitState,
  locateAnchors,
  median,
  recordedAnchors,
  snapshotBuild,
} from './common.mjs';

const log = (...a) => console.error(...a);
const argv = process.argv.slice(2);
const arg = (name) =>
  argv
    .find((a) => a === `--${name}` || a.startsWith(`--${name}=`))
    ?.split('=')
    .slice(1)
    .join('=');
const has = (name) => argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
const list = (s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const known = ['rounds', 'only', 'peers', 'ns', 'peer-ns', 'quick', 'render', 'workers', 'no-pool', 'extras'];
for (const a of argv)
  if (!known.includes(a.replace(/^--/, '').split('=')[0]))
    throw new Error(`unknown option ${a}; known: ${known.map((k) => `--${k}`).join(' ')}`);

const WORKLOADS = ['w10k', 'chain22', 'long'];
const TITLE = { w10k: 'W-10K', chain22: 'W-CHAIN22', long: 'W-LONG' };
const DEFAULT_NS = [250, 1000, 4000, 20000, 100000];
const DEFAULT_PEER_NS = [250, 1000, 4000, 20000];
const EXPECT_W10K = { ok: 8984, failed: 1016 };

// ------------------------------------------------------------------ formatting helpers
const r1 = (x) => Math.round(x * 10) / 10;
/** A ratio as ×k: two significant digits below 1, one decimal below 10, whole numbers above. */
const times = (k) => (!Number.isFinite(k) ? '' : `×${k < 1 ? k.toPrecision(2) : k < 10 ? k.toFixed(1) : fmt(k)}`);
const us = (x) => fmt(x, x < 10 ? 2 : 1);
const dur = (ms) => `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;

// ------------------------------------------------------------------ summaries (median across rounds of each round's median)
function summarise(results, workload) {
  const byPeer = {};
  for (const r of results.filter((x) => x.workload === workload)) (byPeer[r.peer] ??= []).push(r);
  const out = {};
  for (const [peer, rs] of Object.entries(byPeer)) {
    const good = rs.filter((r) => !r.crashed);
    const crashed = rs.find((r) => r.crashed)?.crashed;
    if (workload === 'long') {
      const ns = [...new Set(good.flatMap((r) => r.rows.map((x) => x.n)))].sort((a, b) => a - b);
      const byN = {};
      for (const n of ns) {
        const rows = good.map((r) => r.rows.find((x) => x.n === n)).filter(Boolean);
        const ok = rows.filter((x) => !x.error);
        const m = (xs, k) => median(xs.map((x) => x[k]));
        byN[n] = ok.length
          ? {
              usPerStep: m(ok, 'usPerStep'),
              perRound: ok.map((x) => x.usPerStep),
              buildMs: m(ok, 'buildMs'),
              heapAfterMB: r1(m(ok, 'heapAfterMB')),
              heapDeltaMB: r1(m(ok, 'heapDeltaMB')),
              retainedMB: r1(m(ok, 'retainedMB')),
              rounds: ok.length,
            }
          : {
              error: rows[0]?.error ?? 'not run',
              capped: rows
                .map((x) => /cap after (\d+) of/.exec(x.error ?? '')?.[1])
                .filter(Boolean)
                .map(Number),
              heapAfterMB: r1(m(rows, 'heapAfterMB')),
              heapDeltaMB: r1(m(rows, 'heapDeltaMB')),
              retainedMB: r1(m(rows, 'retainedMB')),
            };
      }
      out[peer] = { byN, crashed };
    } else {
      const all = good.flatMap((r) => r.graphsPerSec ?? r.programsPerSec);
      out[peer] = good.length
        ? {
            median: median(good.map((r) => r.median)),
            rounds: good.map((r) => r.median),
            min: Math.min(...all),
            max: Math.max(...all),
            ok: good[0].ok,
            failed: good[0].failed,
            batches: good.map((r) => r.batches),
            crashed,
          }
        : { crashed };
    }
  }
  return out;
}

// ------------------------------------------------------------------ markdown
function render(run) {
  const { results, recorded } = run;
  const md = [];
  // recorded rows: the peers not re-run, and the Python original; "vs bare" for them uses the bare of their own sitting
  const shown = recorded.show ?? [...recorded.peers, 'nano_vm-py'];
  const isRec = (p) => shown.includes(p);
  const poolWorkers = results.find((r) => r.peer === NANO_POOL && r.workers)?.workers;
  const label = (p) =>
    isRec(p)
      ? `${p} *(recorded ${recorded.date}, not re-run)*`
      : p === NANO
        ? `**${NANO}**`
        : p === NANO_POOL
          ? `**nano-vm, RunPool ×${poolWorkers ?? '?'} workers**`
          : p;
  const merge = (w) => {
    const now = summarise(results, w);
    const then = summarise(recorded.results, w);
    const s = { ...Object.fromEntries(Object.entries(then).filter(([p]) => isRec(p))), ...now };
    return { s, bareOf: (p) => (isRec(p) ? then.bare : now.bare) };
  };
  md.push(`# nano-vm benchmarks: ${run.machine.date}`);
  md.push('');
  md.push(
    `Machine: ${run.machine.cpu}, ${run.machine.cores} cores, ${run.machine.memGB} GiB, Node ${run.machine.node}, load average at start ${run.machine.loadavg}.`,
  );
  md.push(
    `nano-vm: commit ${run.git?.commit ?? '?'}${run.git?.dirtyFiles ? ` + ${run.git.dirtyFiles} changed/new files under packages/` : ''}, dist ${run.builds.join(' / ')}${run.builds.length > 1 ? ' — **the build changed during the run**' : ''}.`,
  );
  md.push(
    `Command: \`node bench/run.mjs ${run.argv.join(' ')}\` — ${run.rounds} round(s), ${dur(run.durationMs)}; ${run.full ? 'full run' : `**not a full run** (${run.partial.join('; ')}): saved as .tmp`}.`,
  );
  md.push(
    `Drivers: ${run.anchors.dir ? `the anchors' workloads.mjs from \`${run.anchors.dir}\`` : `**anchors not found** (${run.anchors.expected}): nano-vm alone, on bench/standalone.mjs`}.${recorded.peers.length ? ` Peers not installed here (run \`node bench/setup-peers.mjs\`): ${recorded.peers.join(', ')}; their rows are the anchors' figures of ${recorded.date} (${recorded.file}, another sitting: compare with care).` : ''}`,
  );
  md.push('');
  md.push(
    'Every figure is the median across rounds of each round\'s median. "vs nano-vm" = the peer\'s time per run divided by nano-vm\'s (×0.1 = ten times faster than nano-vm, ×10 = ten times slower); "vs bare" = the same against `bare` (the no-framework floor) — of the same sitting: recorded rows are divided by the recorded `bare`.',
  );

  const order = (ps) => [NANO, NANO_POOL, ...Object.keys(ANCHOR_PEERS), 'nano_vm-py'].filter((p) => ps.includes(p));
  for (const [w, unit, steps] of [
    ['w10k', 'graphs/s', 4],
    ['chain22', 'programs/s', 22],
  ]) {
    if (!run.workloads.includes(w)) continue;
    const { s, bareOf } = merge(w);
    const nano = s[NANO]?.median;
    md.push('', `## ${TITLE[w]} (${unit}; steps/s = ${unit} × ${steps})`, '');
    md.push(
      `| peer | ${unit} | steps/s | vs nano-vm | vs bare | per-round medians | all timed runs, min–max | ${w === 'w10k' ? 'OK / FAILED' : 'batches of 100 per timing'} |`,
    );
    md.push('|---|---:|---:|---:|---:|---|---|---|');
    for (const p of order(Object.keys(s))) {
      const v = s[p];
      if (!v.median) {
        md.push(`| ${label(p)} | crashed: ${v.crashed} | | | | | | |`);
        continue;
      }
      const bare = bareOf(p)?.median;
      md.push(
        `| ${label(p)} | ${fmt(v.median)} | ${fmt(v.median * steps)} | ${nano ? times(nano / v.median) : ''} | ${bare ? times(bare / v.median) : ''} | ${v.rounds.map((x) => fmt(x)).join(' / ')} | ${fmt(v.min)}–${fmt(v.max)} | ${w === 'w10k' ? `${v.ok} / ${v.failed}` : (v.batches ?? []).join(' / ')} |${v.crashed ? ` (a round crashed: ${v.crashed})` : ''}`,
      );
    }
    if (s[NANO_POOL]?.median)
      md.push(
        '',
        `nano-vm, RunPool: the same programs through the runtime's RunPool on ${poolWorkers ?? '?'} worker threads; each worker builds the program once at start-up and each run comes back as a summary (bench/README.md, "Fairness"). The other rows use one thread.`,
      );
    if (w === 'w10k' && s['nano_vm-py'])
      md.push(
        '',
        'nano_vm-py is the Python original (llm-nano-vm 0.8.8) on its own random.seed(42) dataset (9,027 / 973), measured by the anchors in their sitting.',
      );
  }

  if (run.workloads.includes('long')) {
    const { s, bareOf } = merge('long');
    const peers = order(Object.keys(s));
    const ns = [...new Set(peers.flatMap((p) => Object.keys(s[p].byN).map(Number)))].sort((a, b) => a - b);
    const cell = (p, n, f) => {
      const v = s[p].byN[n];
      if (!v) return s[p].crashed ? 'crashed' : '';
      if (v.error)
        return v.capped.length
          ? `**did not finish**: ${v.capped.map((c) => fmt(c)).join(' / ')} steps in the 60 s cap`
          : `**${v.error}**`;
      return f(v);
    };
    md.push('', `## W-LONG: one run of N sequential no-op tool steps, µs per step (vs bare)`, '');
    md.push(`| N | ${peers.map(label).join(' | ')} |`, `|---:|${peers.map(() => '---:').join('|')}|`);
    for (const n of ns)
      md.push(
        `| ${fmt(n)} | ${peers.map((p) => cell(p, n, (v) => `${us(v.usPerStep)}${bareOf(p)?.byN[n]?.usPerStep ? ` (${times(v.usPerStep / bareOf(p).byN[n].usPerStep)})` : ''}`)).join(' | ')} |`,
      );
    md.push(
      '',
      'W-LONG heapUsed right after the run, MB (gc() before the run; in brackets: growth over the pre-run heap / retained after a gc with the result still referenced)',
      '',
    );
    md.push(`| N | ${peers.map(label).join(' | ')} |`, `|---:|${peers.map(() => '---:').join('|')}|`);
    for (const n of ns)
      md.push(
        `| ${fmt(n)} | ${peers.map((p) => cell(p, n, (v) => `${v.heapAfterMB} (+${v.heapDeltaMB} / +${v.retainedMB})`)).join(' | ')} |`,
      );

    const nv = s[NANO];
    if (nv && Object.keys(nv.byN).length) {
      const ref = nv.byN[1000]?.usPerStep ?? Object.values(nv.byN).find((v) => !v.error)?.usPerStep;
      md.push('', `### nano-vm per-step cost by N (flat = the "vs N=1,000" column stays near ×1)`, '');
      md.push(
        '| N | µs/step | per-round | vs N=1,000 | build ms | heapUsed after, MB | growth, MB | retained, MB | retained bytes/step |',
        '|---:|---:|---|---:|---:|---:|---:|---:|---:|',
      );
      for (const [n, v] of Object.entries(nv.byN)) {
        if (v.error) md.push(`| ${fmt(Number(n))} | **${v.error}** | | | | | | | |`);
        else
          md.push(
            `| ${fmt(Number(n))} | ${us(v.usPerStep)} | ${v.perRound.map(us).join(' / ')} | ${times(v.usPerStep / ref)} | ${fmt(v.buildMs, 1)} | ${v.heapAfterMB} | +${v.heapDeltaMB} | +${v.retainedMB} | ${fmt((v.retainedMB * 1048576) / Number(n))} |`,
          );
      }
      md.push(
        '',
        'µs/step includes the pre-flight validation of the N-step program (it runs once per program object, inside the timing). The driver warms up with one 100-step run only, so small Ns include JIT warm-up (`node bench/perStep.mjs` separates warm-up from growth). The retained heap is the run result (its trace of 2N + 2 hash-chained events and its receipt) and the MemoryStore holding the same events.',
      );
    }
  }

  md.push('', '## Checks on the nano-vm results', '');
  for (const c of checks(run)) md.push(`- ${c}`);
  return md.join('\n') + '\n';
}

/** Things in the nano-vm results that look wrong (or the confirmation that they do not). */
function checks(run) {
  const out = [];
  const nano = run.results.filter((r) => r.peer === NANO);
  for (const r of run.results.filter((x) => (x.peer === NANO || x.peer === NANO_POOL) && x.crashed))
    out.push(`**${TITLE[r.workload]} crashed** (${r.peer}) in one round: ${r.crashed}`);
  const w = run.results.filter((r) => (r.peer === NANO || r.peer === NANO_POOL) && r.workload === 'w10k' && !r.crashed);
  if (w.length) {
    const bad = w.filter((r) => r.ok !== EXPECT_W10K.ok || r.failed !== EXPECT_W10K.failed);
    out.push(
      bad.length
        ? `**W-10K OK/FAILED counts are off**: ${bad.map((r) => `${r.peer} ${r.ok} / ${r.failed}`).join(', ')} (expected ${EXPECT_W10K.ok} / ${EXPECT_W10K.failed})`
        : `W-10K: ${EXPECT_W10K.ok} OK / ${EXPECT_W10K.failed} FAILED in every timed run, as expected.`,
    );
  }
  const tally = {};
  for (const r of nano.filter((x) => x.tally))
    for (const [k, v] of Object.entries(r.tally))
      (tally[r.workload] ??= {})[k] = ((tally[r.workload] ??= {})[k] ?? 0) + v;
  const expected = {
    w10k: ['completed:SUCCESS', 'failed:E_TOOL_ERROR'],
    chain22: ['completed:SUCCESS'],
    long: ['completed:SUCCESS'],
  };
  for (const [wl, t] of Object.entries(tally)) {
    const odd = Object.keys(t).filter((k) => !expected[wl].includes(k));
    const txt = Object.entries(t)
      .map(([k, v]) => `${k} ×${fmt(v)}`)
      .join(', ');
    out.push(
      odd.length
        ? `**${TITLE[wl]}: unexpected run statuses** ${txt}`
        : `${TITLE[wl]} run statuses (all rounds, warm-ups included): ${txt}.`,
    );
  }
  const l = summarise(run.results, 'long')[NANO];
  if (l) {
    const rows = Object.entries(l.byN)
      .filter(([, v]) => !v.error)
      .map(([n, v]) => [Number(n), v]);
    const errs = Object.entries(l.byN).filter(([, v]) => v.error);
    if (errs.length) out.push(`**W-LONG errors**: ${errs.map(([n, v]) => `N=${n}: ${v.error}`).join('; ')}`);
    const big = rows.filter(([n]) => n >= 1000);
    if (big.length >= 2) {
      // grows = the largest N costs more per step than the cheapest smaller N >= 1,000 by over 1.5x
      const [n1, v1] = big.at(-1);
      const [n0, v0] = big.slice(0, -1).reduce((a, b) => (b[1].usPerStep < a[1].usPerStep ? b : a));
      const k = v1.usPerStep / v0.usPerStep;
      out.push(
        `${k > 1.5 ? '**' : ''}W-LONG per-step cost: ${big.map(([n, v]) => `${us(v.usPerStep)} µs at N=${fmt(n)}`).join(', ')}; the largest N costs ${times(k)} the cheapest smaller N${k > 1.5 ? ': it GROWS with N**' : ': flat or falling (no growth with N beyond noise)'}.`,
      );
      const bps = big.filter(([n]) => n >= 4000).map(([n, v]) => (v.retainedMB * 1048576) / n);
      if (bps.length >= 2) {
        const spread = Math.max(...bps) / Math.min(...bps);
        out.push(
          `${spread > 1.5 ? '**' : ''}W-LONG retained heap per step for N ≥ 4,000: ${bps.map((b) => fmt(b)).join(' / ')} bytes${spread > 1.5 ? ' — not proportional to N**' : ' — proportional to N (the trace the result holds), no leak beyond it'}.`,
        );
      }
    }
  }
  if (run.builds.length > 1)
    out.push(
      `**The nano-vm build changed during the run** (${run.builds.join(' → ')}): rounds measured different code.`,
    );
  return out;
}

// ------------------------------------------------------------------ re-render a saved run
if (has('render')) {
  const file = arg('render');
  const run = JSON.parse(readFileSync(file, 'utf8'));
  process.stdout.write(render(run));
  process.exit(0);
}

// ------------------------------------------------------------------ plan
const quick = has('quick');
const rounds = Number(arg('rounds') ?? (quick ? 1 : 2));
const workloads = has('only') ? list(arg('only')) : WORKLOADS;
for (const w of workloads)
  if (!WORKLOADS.includes(w)) throw new Error(`unknown workload ${w}; known: ${WORKLOADS.join(', ')}`);
const ns = has('ns') ? list(arg('ns')).map(Number) : quick ? DEFAULT_NS.filter((n) => n <= 20000) : DEFAULT_NS;
const peerNs = has('peer-ns') ? list(arg('peer-ns')).map(Number) : DEFAULT_PEER_NS;
const floorNs = [...new Set([...peerNs, ...ns])].sort((a, b) => a - b);
const poolArgs = has('workers') ? [`--workers=${Number(arg('workers'))}`] : [];

const anchors = locateAnchors();
const wanted = has('peers')
  ? list(arg('peers')).filter((p) => p !== NANO)
  : quick
    ? LIGHT_PEERS
    : Object.keys(ANCHOR_PEERS);
for (const p of wanted)
  if (!ANCHOR_PEERS[p]) throw new Error(`unknown peer ${p}; known: ${NANO}, ${Object.keys(ANCHOR_PEERS).join(', ')}`);
const runnable = anchors.dir ? wanted.filter((p) => LIGHT_PEERS.includes(p) || anchors.frameworks) : [];
const notRun = wanted.filter((p) => !runnable.includes(p));
// The anchors' last recorded run: shown for the peers not re-run here, and always for the Python
// original (never re-run here); its own bare is the reference for those rows' "vs bare".
const last = anchors.source ? recordedAnchors(anchors.source) : null;
const rec = notRun.length ? last : null;
const recorded = {
  peers: rec ? notRun : [],
  show: [...(rec ? notRun : []), 'nano_vm-py'],
  date: last?.machine?.date?.slice(0, 10) ?? '',
  file: last ? relative(REPO, last.file) : '',
  results: last ? last.results.filter((r) => [...notRun, 'nano_vm-py', 'bare'].includes(r.peer)) : [],
};

const partial = [];
if (quick) partial.push('--quick');
if (rounds < 2) partial.push(`${rounds} round`);
if (workloads.length < WORKLOADS.length) partial.push(`only ${workloads.join(',')}`);
if (!anchors.dir) partial.push('no anchors');
if (notRun.length) partial.push(`not re-run: ${notRun.join(', ')}`);
if (has('peers')) partial.push(`--peers=${arg('peers')}`);
if (has('no-pool')) partial.push('--no-pool');
if (workloads.includes('long') && !ns.includes(100000)) partial.push('W-LONG without N=100,000');
const full = partial.length === 0;

const jobs = [];
for (let r = 1; r <= rounds; r++) {
  for (const w of workloads) {
    const ps = [
      NANO,
      ...(has('no-pool') || !NANO_POOL_WORKLOADS.includes(w) ? [] : [NANO_POOL]),
      ...runnable.filter((p) => ANCHOR_PEERS[p].includes(w)),
    ];
    const k = (r - 1) % ps.length; // rotate the order from round to round
    for (const p of [...ps.slice(k), ...ps.slice(0, k)]) {
      const extra =
        p === NANO_POOL
          ? poolArgs
          : w !== 'long'
            ? []
            : [`--ns=${(p === NANO ? ns : LIGHT_PEERS.includes(p) ? floorNs : peerNs).join(',')}`];
      jobs.push({ round: r, workload: w, peer: p, extra });
    }
  }
}

// ------------------------------------------------------------------ run
const machine = {
  date: new Date().toISOString(),
  cpu: os.cpus()[0]?.model ?? '?',
  cores: os.cpus().length,
  node: process.version,
  memGB: Math.round(os.totalmem() / 2 ** 30),
  loadavg: os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' '),
};
log(`# ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, load ${machine.loadavg}`);
log(
  anchors.dir
    ? `# anchors: ${anchors.dir}${anchors.frameworks ? '' : ' (frameworks not installed: run `node bench/setup-peers.mjs` to re-run xstate/langgraph)'}`
    : `# anchors not found at ${anchorsExpected()}: measuring nano-vm alone with bench/standalone.mjs (set BENCH_ANCHORS to compare with the peers)`,
);
if (notRun.length)
  log(`# not re-run (recorded figures shown instead${rec ? '' : ', none found'}): ${notRun.join(', ')}`);
log(
  `# ${jobs.length} child processes, ${rounds} round(s)${full ? '' : ` — not a full run (${partial.join('; ')}): results go to *.tmp.json`}`,
);

function anchorsExpected() {
  return process.env.BENCH_ANCHORS || join(REPO, '..', 'shared', 'bench-anchors');
}

// One build for the whole run: children load a private copy of packages/{kernel,runtime}/dist,
// so rebuilds by others during the run do not mix builds.
const git = gitState();
const snap = snapshotBuild();
log(
  `# nano-vm build ${snap.fingerprint} (commit ${git?.commit ?? '?'}${git?.dirtyFiles ? ` + ${git.dirtyFiles} changed files under packages/` : ''}), snapshot in ${relative(REPO, snap.dir)}`,
);
process.on('exit', () => rmSync(snap.dir, { recursive: true, force: true }));
process.on('SIGINT', () => process.exit(130));
const builds = [snap.fingerprint];
const t0 = performance.now();
const results = [];
for (const [i, j] of jobs.entries()) {
  const el = performance.now() - t0;
  log(`# [${i + 1}/${jobs.length}, ${dur(el)}] round ${j.round}/${rounds}: ${TITLE[j.workload]} ${j.peer}`);
  const args = [
    '--expose-gc',
    join(BENCH, 'child.mjs'),
    j.workload,
    j.peer,
    anchors.dir ? `--anchors=${anchors.dir}` : '--standalone',
    ...(j.peer === NANO || j.peer === NANO_POOL ? [`--runtime=${snap.runtime}`] : []),
    ...j.extra,
  ];
  const c = spawnSync(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 256 << 20,
    timeout: 30 * 60_000,
  });
  let res;
  try {
    if (c.status !== 0) throw new Error(`exit ${c.status ?? c.signal}`);
    res = JSON.parse(c.stdout.trim().split('\n').pop());
  } catch (e) {
    res = { workload: j.workload, peer: j.peer, crashed: e.message };
    log(`  [${j.peer}] CRASHED: ${e.message}`);
  }
  res.round = j.round;
  results.push(res);
  if (res.build && !builds.includes(res.build)) {
    builds.push(res.build);
    log(`# WARNING: the nano-vm build changed during the run (${builds.join(' -> ')})`);
  }
}
const durationMs = performance.now() - t0;

const run = {
  machine,
  git,
  builds,
  argv,
  rounds,
  workloads,
  ns,
  peerNs,
  full,
  partial,
  anchors: { dir: anchors.dir, frameworks: anchors.frameworks, expected: anchorsExpected() },
  durationMs,
  recorded,
  results,
};
const text = render(run);
process.stdout.write('\n' + text);
const dir = join(BENCH, 'results');
mkdirSync(dir, { recursive: true });
const base = join(dir, `${machine.date.slice(0, 19).replace(/:/g, '')}${full ? '' : '.tmp'}`);
writeFileSync(`${base}.json`, JSON.stringify(run, null, 1) + '\n');
writeFileSync(`${base}.md`, text);
log(`# ${dur(durationMs)}; wrote ${relative(REPO, base)}.json and .md${full ? '' : ' (not a full run: gitignored)'}`);

// Issue 5's other figures, on the same build: W-10K with every event stored in SQLite (next to the
// raw SQLite floor) and the governance time per LLM step. Each script writes its own results file.
if (full || has('extras')) {
  for (const [script, extra] of [
    ['durable.mjs', [`--rounds=${Math.min(rounds, 2)}`]],
    ['llmOverhead.mjs', []],
  ]) {
    log(`# ${script}`);
    const c = spawnSync(process.execPath, ['--expose-gc', join(BENCH, script), `--runtime=${snap.runtime}`, ...extra], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 60 * 60_000,
    });
    if (c.status !== 0) log(`# ${script} failed: exit ${c.status ?? c.signal}`);
  }
}
