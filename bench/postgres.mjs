// nano-vm on PostgreSQL (issue 15): W-10K through `nano-vm worker` processes (1, 2 and 4 of them)
// sharing one PostgreSQL store, next to the anchors' durable PostgreSQL peers measured in the same
// sitting, interleaved per round — DBOS at 1 and 32 concurrent workflows and the raw floors (one
// PostgreSQL commit per step, pg-c1 / pg-c32) — and an I/O-bound W-10K where every tool sleeps
// 20 ms, where throughput should grow with the number of workers. For each nano-vm row it also
// measures what the throughput costs: transactions committed per run (pg_stat_database), runs per
// group commit, claim statements and notifications per run, WAL bytes per run, and the CPU time of
// the workers and of the PostgreSQL server per run.
//
//   npm run build && node bench/setup-peers.mjs && node bench/postgres.mjs [--rounds=2] [--n=2000]
//     [--workers=1,2,4] [--conc=200] [--per-worker] [--io-n=1500] [--io-conc=16,4] [--peers=dbos-c1,pg-c1,dbos-c32,pg-c32]
//     [--one-by-one=2,4]   (also: runs submitted one per transaction, from 8 submitters: a notification each)
//
// Needs PostgreSQL at 127.0.0.1:5432 with trust auth for user postgres (PGHOST/PGPORT/PGUSER
// override), and DROPs and CREATEs the database bench_nanovm. Writes bench/results/postgres-<ts>.json/.md.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BENCH, REPO, fmt, w10kProgram, gitState, locateAnchors, median, writeResults } from './common.mjs';

const log = (...a) => console.error(...a);
const arg = (name, d) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d;
const rounds = Number(arg('rounds', 2));
const N = Number(arg('n', 2000));
const WORKERS = arg('workers', '1,2,4').split(',').map(Number);
const CONC = Number(arg('conc', 200));
/** --per-worker: every worker drives CONC runs at once (each is a W-10K pool); otherwise CONC is split among them. */
const PER_WORKER = process.argv.includes('--per-worker');
const IO_N = Number(arg('io-n', 1500));
/**
 * Runs in flight per worker in the I/O-bound rows, one set of rows per value: 16 makes CPU the
 * ceiling on a small machine (each worker keeps its share of the cores busy), 4 keeps CPU below
 * it, so that what more workers add is seen.
 */
const IO_CONCS = arg('io-conc', '16,4').split(',').filter(Boolean).map(Number);
const PEER_NAMES = arg('peers', 'dbos-c1,pg-c1,dbos-c32,pg-c32').split(',').filter(Boolean);
const PGHOST = process.env.PGHOST ?? '127.0.0.1';
const PGPORT = process.env.PGPORT ?? '5432';
const PGUSER = process.env.PGUSER ?? 'postgres';
const DB = 'bench_nanovm';
const URL_DB = `postgres://${PGUSER}@${PGHOST}:${PGPORT}/${DB}`;

const anchors = locateAnchors();
if (!anchors.dir) throw new Error('no anchors: set BENCH_ANCHORS and run node bench/setup-peers.mjs');
const { default: pg } = await import(pathToFileURL(join(anchors.dir, 'node_modules/pg/lib/index.js')).href).catch(
  () => import('pg'),
);
const lib = await import(pathToFileURL(join(anchors.dir, 'lib.mjs')).href);
const { runChild } = await import(pathToFileURL(join(anchors.dir, 'workloads.mjs')).href);
const pgs = await import(pathToFileURL(join(REPO, 'packages/store-postgres/dist/index.js')).href);

const admin = async (database, use) => {
  const c = new pg.Client({ host: PGHOST, port: Number(PGPORT), user: PGUSER, database });
  await c.connect();
  try {
    return await use(c);
  } finally {
    await c.end();
  }
};
await admin('postgres', async (c) => {
  await c.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await c.query(`CREATE DATABASE ${DB}`);
});
const server = await admin(
  DB,
  async (c) =>
    (
      await c.query(`SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync,
      current_setting('synchronous_commit') AS synchronous_commit, current_setting('max_connections') AS max_connections`)
    ).rows[0],
);

const PROGRAM = w10kProgram();

/** CPU seconds of every PostgreSQL server process on this machine (utime + stime), from /proc. */
function postgresCpuSec() {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue;
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks / 100;
}

/** CPU seconds of one process (all its threads: V8's compiler threads too), from /proc. */
function processCpuSec(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

async function dbStats() {
  // Backends flush their statistics at most once a second: wait for them.
  await new Promise((r) => setTimeout(r, 1100));
  return admin(DB, async (c) => {
    const s = (
      await c.query(
        `SELECT xact_commit::float8 AS commits, tup_inserted::float8 AS inserted, tup_updated::float8 AS updated, tup_deleted::float8 AS deleted,
                pg_current_wal_lsn() AS lsn FROM pg_stat_database WHERE datname = $1`,
        [DB],
      )
    ).rows[0];
    return s;
  });
}
const walBytes = async (a, b) =>
  admin(DB, async (c) => Number((await c.query(`SELECT pg_wal_lsn_diff($1, $2)::float8 AS d`, [b, a])).rows[0].d));

let schemaNo = 0;
/** One measurement: K worker processes, n runs submitted at once, timed from submit to the last run finished. */
async function nanoVm({ k, n, conc, sleepMs = 0, oneByOne = false }) {
  const schema = `b${schemaNo++}`;
  const url = `${URL_DB}?schema=${schema}`;
  const store = await new pgs.PostgresStore(url, { migrate: true }).open();
  const workers = [];
  for (let i = 0; i < k; i++) {
    const p = spawn(
      process.execPath,
      [
        // e.g. BENCH_WORKER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles every worker process.
        ...(process.env.BENCH_WORKER_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? []),
        join(BENCH, 'pg-worker.mjs'),
        url,
        join(anchors.dir, 'lib.mjs'),
        `--concurrency=${Math.ceil(conc / k)}`,
        `--sleep-ms=${sleepMs}`,
        // e.g. BENCH_WORKER_ARGS='--writers=1' passes store options to every worker.
        ...(process.env.BENCH_WORKER_ARGS?.split(/\s+/).filter(Boolean) ?? []),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    const ready = new Promise((res) =>
      p.stdout.on('data', (d) => {
        out += d;
        if (out.includes('ready\n')) res();
      }),
    );
    const done = new Promise((res) => p.on('exit', () => res(out)));
    workers.push({ p, ready, done });
  }
  await Promise.all(workers.map((w) => w.ready));
  // The bench's own polling, counted so that it is not taken for the workers' commits.
  let polls = 0;
  const finished = async () =>
    ++polls &&
    (
      await store.query(
        `SELECT (SELECT count(*) FROM ${store.s}.queue)::int + (SELECT count(*) FROM ${store.s}.runs WHERE status = 'running')::int AS n`,
      )
    ).rows[0].n === 0;
  const batch = async (data) => {
    const t0 = performance.now();
    if (oneByOne) {
      // As an MCP server or an application enqueues: one transaction and one notification per run.
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < data.length) await pgs.submitRun(store, { program: PROGRAM, input: data[next++] });
        }),
      );
    } else
      await pgs.submitRuns(
        store,
        data.map((input) => ({ program: PROGRAM, input })),
      );
    // Polled every 10 ms at first, then at most 200 times a second-long batch: a finer poll
    // would cost the database as much CPU as the runs of a slow batch (it did: 2.5 polls a run).
    while (!(await finished())) await new Promise((r) => setTimeout(r, Math.max(10, (performance.now() - t0) / 200)));
    return performance.now() - t0;
  };
  // Warm-up (JIT, connections, the program cached by each worker), not timed.
  await batch(lib.w10kDataset(Math.min(400, n)));
  const s0 = await dbStats();
  const polls0 = polls;
  const cpu0 = postgresCpuSec();
  // The workers' CPU over the timed batch only: not their start, nor the warm-up's JIT compiling.
  const wcpu0 = workers.map((w) => processCpuSec(w.p.pid));
  const data = lib.w10kDataset(n);
  const warm = lib.w10kDataset(Math.min(400, n));
  const ms = await batch(data);
  const cpuPg = postgresCpuSec() - cpu0;
  const cpuWorkers = workers.reduce((a, w, i) => a + processCpuSec(w.p.pid) - wcpu0[i], 0);
  const s1 = await dbStats();
  const benchQueries = polls - polls0 + 1; // the polls, and dbStats' own transaction
  const counts = (
    await store.query(
      `SELECT count(*) FILTER (WHERE status = 'completed')::int AS ok, count(*) FILTER (WHERE status = 'failed')::int AS failed,
              (SELECT count(*) FROM ${store.s}.events)::int AS events FROM ${store.s}.runs`,
    )
  ).rows[0];
  for (const w of workers) w.p.kill('SIGTERM');
  const stats = (await Promise.all(workers.map((w) => w.done))).map((o) => JSON.parse(o.trim().split('\n').pop()));
  await store.close();
  const total = n + Math.min(400, n);
  const sum = (f) => stats.reduce((a, s) => a + f(s), 0);
  return {
    k,
    n,
    conc,
    sleepMs,
    ms,
    runsPerSec: (n / ms) * 1000,
    ok: counts.ok,
    failed: counts.failed,
    expectedOk: [...warm, ...data].filter((c) => c.value <= 0.9).length,
    eventsPerRun: counts.events / total,
    commitsPerRun: (s1.commits - s0.commits - benchQueries) / n,
    rowsPerRun: (s1.inserted + s1.updated + s1.deleted - s0.inserted - s0.updated - s0.deleted) / n,
    walBytesPerRun: (await walBytes(s0.lsn, s1.lsn)) / n,
    writesPerGroup:
      sum((s) => s.commits.writes) /
      Math.max(
        1,
        sum((s) => s.commits.groups),
      ),
    claimsPerRun: sum((s) => s.claims) / total,
    notifiedPerRun: sum((s) => s.notified) / total,
    workerCpuMsPerRun: (cpuWorkers * 1000) / n,
    /** Since each worker started, over the warm-up and the timed runs (JIT compiling included), as before. */
    workerCpuMsPerRunWithWarmup: sum((s) => s.cpuMs) / total,
    postgresCpuMsPerRun: (cpuPg * 1000) / n,
  };
}

const PEERS = PEER_NAMES;
const ONE_BY_ONE = arg('one-by-one', '');
const MODES = [
  ...(ONE_BY_ONE
    ? ONE_BY_ONE.split(',')
        .map(Number)
        .map((k) => ({
          name: `nano-vm pg ×${k}, submitted one at a time`,
          k,
          n: N,
          conc: PER_WORKER ? CONC * k : CONC,
          oneByOne: true,
        }))
    : []),
  // --n=0: the I/O-bound rows only.
  ...(N ? WORKERS.map((k) => ({ name: `nano-vm pg ×${k}`, k, n: N, conc: PER_WORKER ? CONC * k : CONC })) : []),
  ...(IO_N
    ? IO_CONCS.flatMap((c) =>
        WORKERS.map((k) => ({
          name: `nano-vm pg ×${k}, tools sleep 20 ms${IO_CONCS.length > 1 ? `, ${c} in flight each` : ''}`,
          k,
          n: IO_N,
          conc: c * k,
          sleepMs: 20,
        })),
      )
    : []),
];
const results = { nano: {}, peers: {} };
const t0 = Date.now();
for (let r = 0; r < rounds; r++) {
  const order = [...PEERS.map((p) => ({ peer: p })), ...MODES];
  for (let i = 0; i < r; i++) order.push(order.shift());
  for (const m of order) {
    if (m.peer) {
      log(`# round ${r + 1}/${rounds}: ${m.peer}`);
      const res = runChild('w10k', m.peer, []);
      (results.peers[m.peer] ??= []).push(res);
      log(
        `  ${m.peer}: ${res.crashed ? `CRASHED ${res.crashed}` : `${fmt(res.median, 1)} graphs/s (n=${res.n} conc=${res.conc})`}`,
      );
    } else {
      log(`# round ${r + 1}/${rounds}: ${m.name}`);
      const res = await nanoVm(m);
      (results.nano[m.name] ??= []).push(res);
      log(
        `  ${m.name}: ${fmt(res.runsPerSec)} runs/s (${res.ok} ok / ${res.failed} failed, expected ${res.expectedOk} ok); ` +
          `${res.commitsPerRun.toFixed(2)} commits/run, ${res.writesPerGroup.toFixed(1)} writes/group, ${res.claimsPerRun.toFixed(3)} claims/run, ` +
          `CPU/run worker ${res.workerCpuMsPerRun.toFixed(2)} ms, postgres ${res.postgresCpuMsPerRun.toFixed(2)} ms`,
      );
      if (res.ok !== res.expectedOk) throw new Error(`${m.name}: ${res.ok} runs OK, expected ${res.expectedOk}`);
    }
  }
}

// ---- the table
const med = (xs, f) => median(xs.map(f));
const peerMedian = (p) => {
  const ok = (results.peers[p] ?? []).filter((x) => !x.crashed);
  return ok.length
    ? { median: median(ok.map((x) => x.median)), rounds: ok.map((x) => x.median), n: ok[0].n, conc: ok[0].conc }
    : null;
};
const dbos32 = peerMedian('dbos-c32')?.median;
const dbos1 = peerMedian('dbos-c1')?.median;
const floor32 = peerMedian('pg-c32')?.median;
const lines = [];
lines.push(`# nano-vm on PostgreSQL: W-10K with workers, next to the durable PostgreSQL peers`);
lines.push('');
lines.push(
  `${new Date().toISOString()}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, PostgreSQL ${server.version} (fsync ${server.fsync}, synchronous_commit ${server.synchronous_commit}), load average at the end ${os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(
      ' / ',
    )}; ${rounds} rounds in ${Math.round((Date.now() - t0) / 1000)} s; git ${(({ commit, dirtyFiles } = gitState() ?? {}) => `${commit}${dirtyFiles ? ` + ${dirtyFiles} changed files` : ''}`)()}.`,
);
lines.push('');
lines.push(`\`node bench/postgres.mjs ${process.argv.slice(2).join(' ')}\``);
lines.push('');
lines.push('| row | workers × in flight each | n | runs/s | per-round | × DBOS c32 | × DBOS c1 | × pg floor c32 |');
lines.push('|---|---|---:|---:|---|---:|---:|---:|');
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(1)}×` : '–');
for (const p of PEERS) {
  const m = peerMedian(p);
  if (!m) {
    lines.push(`| \`${p}\` | – | – | crashed | | | | |`);
    continue;
  }
  lines.push(
    `| \`${p}\` (anchors) | 1 process × ${m.conc} | ${m.n} | ${fmt(m.median, 1)} | ${m.rounds.map((x) => fmt(x, 0)).join(' / ')} | ${ratio(m.median, dbos32)} | ${ratio(m.median, dbos1)} | ${ratio(m.median, floor32)} |`,
  );
}
for (const [name, xs] of Object.entries(results.nano)) {
  const v = med(xs, (x) => x.runsPerSec);
  lines.push(
    `| ${name} | ${xs[0].k} × ${Math.ceil(xs[0].conc / xs[0].k)} | ${xs[0].n} | ${fmt(v, 0)} | ${xs.map((x) => fmt(x.runsPerSec, 0)).join(' / ')} | ${ratio(v, dbos32)} | ${ratio(v, dbos1)} | ${ratio(v, floor32)} |`,
  );
}
lines.push('');
lines.push('What each nano-vm run costs (medians across rounds; per timed run, warm-up excluded where marked):');
lines.push('');
lines.push(
  '| row | commits/run | rows written/run | WAL bytes/run | writes per group commit | claim statements/run | notifications/run | worker CPU ms/run | worker CPU ms/run, start and warm-up included | PostgreSQL CPU ms/run |',
);
lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const [name, xs] of Object.entries(results.nano))
  lines.push(
    `| ${name} | ${med(xs, (x) => x.commitsPerRun).toFixed(2)} | ${med(xs, (x) => x.rowsPerRun).toFixed(1)} | ${fmt(
      med(xs, (x) => x.walBytesPerRun),
      0,
    )} | ${med(xs, (x) => x.writesPerGroup).toFixed(1)} | ${med(xs, (x) => x.claimsPerRun).toFixed(3)} | ${med(xs, (x) => x.notifiedPerRun).toFixed(3)} | ${med(xs, (x) => x.workerCpuMsPerRun).toFixed(2)} | ${med(xs, (x) => x.workerCpuMsPerRunWithWarmup).toFixed(2)} | ${med(xs, (x) => x.postgresCpuMsPerRun).toFixed(2)} |`,
  );
lines.push('');
const text = lines.join('\n') + '\n';
process.stdout.write(text);
writeResults('postgres-', text, { server, rounds, args: process.argv.slice(2), results });
