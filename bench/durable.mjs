// Durable W-10K (issue 5): the W-10K workload with every event persisted to SQLite before the next
// effect starts, under synchronous=NORMAL and FULL, with and without group commit, next to the
// in-memory run and to the floor the disk allows (a raw better-sqlite3 insert/commit loop of
// event-sized rows on the same file system). All modes run in one process, interleaved per round,
// with the anchors' W-10K driver (or bench/standalone.mjs's when the anchors are absent).
//
//   npm run build && node --expose-gc bench/durable.mjs [--rounds=3] [--dir=<scratch dir>]
//
// Prints a markdown table of medians across rounds and writes bench/results/durable-<ts>.json/.md.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { RUNTIME, fmt, gitState, loadDrivers, locateAnchors, median, writeResults } from './common.mjs';
import { makeNanoVm } from './nano-vm.mjs';

const log = (...a) => console.error(...a);
const arg = (name, d) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d;
const rounds = Number(arg('rounds', 3));
const scratch = mkdtempSync(join(arg('dir', os.tmpdir()), 'nano-vm-durable-'));
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');

const anchors = locateAnchors();
const drivers = await loadDrivers(anchors.dir);
const rt = await import(pathToFileURL(arg('runtime', RUNTIME)).href);
let fileNo = 0;
const dbFile = () => join(scratch, `run-${fileNo++}.db`);

/** nano-vm on W-10K with a fresh store per timed run (`store` null: the MemoryStore). */
const MODES = {
  memory: null,
  'sqlite NORMAL': { synchronous: 'NORMAL' },
  'sqlite NORMAL + group commit': { synchronous: 'NORMAL', groupCommit: true },
  'sqlite FULL': { synchronous: 'FULL' },
  'sqlite FULL + group commit': { synchronous: 'FULL', groupCommit: true },
};

/** The disk's floor: event-sized rows inserted and committed in a loop for ~1.5 s. */
function rawFloor(synchronous, rowsPerCommit) {
  const path = dbFile();
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec(
    'CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID',
  );
  const insert = db.prepare('INSERT INTO events VALUES (?, ?, ?)');
  const body = 'x'.repeat(400);
  const commit = db.transaction((base) => {
    for (let i = 0; i < rowsPerCommit; i++) insert.run('r', base + i, body);
  });
  let rows = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 1500) {
    commit(rows);
    rows += rowsPerCommit;
  }
  const s = (performance.now() - t0) / 1000;
  db.close();
  rmSync(path, { force: true });
  return { rowsPerSec: rows / s, commitsPerSec: rows / rowsPerCommit / s };
}

const results = { w10k: {}, floor: {} };
const floors = {
  'NORMAL, 1 row/commit': ['NORMAL', 1],
  'FULL, 1 row/commit': ['FULL', 1],
  'FULL, 100 rows/commit': ['FULL', 100],
};
for (let r = 0; r < rounds; r++) {
  const order = Object.keys(MODES);
  for (let k = 0; k < r % order.length; k++) order.push(order.shift());
  for (const mode of order) {
    const opts = MODES[mode];
    const peer = makeNanoVm(drivers.lib, rt, opts ? { makeStore: () => new rt.SqliteStore(dbFile(), opts) } : {});
    log(`# round ${r + 1}/${rounds}: ${mode}`);
    const res = await drivers.WORKLOADS.w10k(peer);
    (results.w10k[mode] ??= []).push(res.median);
    for (const f of [...Array(fileNo).keys()])
      for (const ext of ['', '-wal', '-shm']) rmSync(join(scratch, `run-${f}.db${ext}`), { force: true });
  }
  for (const [name, [sync, per]] of Object.entries(floors)) {
    const f = rawFloor(sync, per);
    (results.floor[name] ??= []).push(f);
    log(
      `# round ${r + 1}/${rounds}: raw SQLite ${name}: ${fmt(f.rowsPerSec)} rows/s, ${fmt(f.commitsPerSec)} commits/s`,
    );
  }
}
rmSync(scratch, { recursive: true, force: true });

// Each W-10K run writes 12 rows: its run row, 8 events (7 for a failed run), 2 idempotency keys and
// its final status. Without group commit that is 6 transactions: the run, 4 appends (everything
// decided before each of its 3 effects, then the last step's result with run_finished) and the status.
const ROWS_PER_RUN = 12;
const COMMITS_PER_RUN = 6;
const md = [];
md.push(`# Durable W-10K — ${new Date().toISOString()}`, '');
md.push(
  `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${rounds} rounds, modes interleaved; driver: ${drivers.standalone ? 'bench/standalone.mjs' : "the anchors' workloads.mjs"}; commit ${gitState()?.commit ?? '?'}.`,
  '',
);
md.push(
  '| nano-vm W-10K, every event stored before the next effect | graphs/s (median of rounds) | per round |',
  '|---|---:|---|',
);
for (const [mode, xs] of Object.entries(results.w10k))
  md.push(`| ${mode} | ${fmt(median(xs))} | ${xs.map((x) => fmt(x)).join(' / ')} |`);
md.push(
  '',
  `| raw SQLite floor (400-byte rows, WAL) | rows/s | commits/s | W-10K graphs/s it allows (${COMMITS_PER_RUN} commits or ${ROWS_PER_RUN} rows per run) |`,
  '|---|---:|---:|---:|',
);
for (const [name, xs] of Object.entries(results.floor)) {
  const rows = median(xs.map((x) => x.rowsPerSec));
  const commits = median(xs.map((x) => x.commitsPerSec));
  const allows = name.includes('100 rows') ? rows / ROWS_PER_RUN : commits / COMMITS_PER_RUN;
  md.push(`| ${name} | ${fmt(rows)} | ${fmt(commits)} | ${fmt(allows)} |`);
}
const text = md.join('\n') + '\n';
process.stdout.write(text);
writeResults('durable-', text, { rounds, results });
