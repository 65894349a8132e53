// Where things are: the repo, the anchors (the peers' benchmarks) and their installed copy.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const BENCH = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(BENCH, '..');
/** Setup copy of the anchors with their node_modules installed (bench/setup-peers.mjs; gitignored). */
export const COPY = join(BENCH, '.anchors');
export const RUNTIME = join(REPO, 'packages/runtime/dist/index.js');
/** Per-run copies of the build (bench/run.mjs; gitignored, removed at the end of the run). */
export const SNAPSHOTS = join(BENCH, '.snapshot');

/** The anchors' source folder: $BENCH_ANCHORS, else <repo>/../shared/bench-anchors. */
export function anchorsSource() {
  return resolve(process.env.BENCH_ANCHORS || join(REPO, '..', 'shared', 'bench-anchors'));
}

const isAnchors = (dir) => ['lib.mjs', 'workloads.mjs', 'peers/index.mjs'].every((f) => existsSync(join(dir, f)));

/**
 * Which anchors this machine has:
 *   dir        the folder the drivers and peers load from (the installed copy when it is usable), or null
 *   frameworks true when xstate/langgraph are installed there (the copy's node_modules)
 *   source     the anchors' source folder (for recorded results), or null
 */
export function locateAnchors() {
  const src = anchorsSource();
  const source = isAnchors(src) ? src : null;
  const copyOk =
    isAnchors(COPY) &&
    existsSync(join(COPY, 'node_modules', 'xstate')) &&
    existsSync(join(COPY, 'node_modules', '@langchain', 'langgraph'));
  if (copyOk) return { dir: COPY, frameworks: true, source: source ?? COPY };
  if (source)
    return {
      dir: source,
      frameworks:
        existsSync(join(source, 'node_modules', 'xstate')) &&
        existsSync(join(source, 'node_modules', '@langchain', 'langgraph')),
      source,
    };
  if (isAnchors(COPY)) return { dir: COPY, frameworks: false, source: COPY };
  return { dir: null, frameworks: false, source: null };
}

/** The most recent recorded anchors run (results/<date>.json in the anchors), or null. */
export function recordedAnchors(source) {
  if (!source) return null;
  const dir = join(source, 'results');
  if (!existsSync(dir)) return null;
  const files = readdirSync(dir)
    .filter((f) => /^\d{4}-\d\d-\d\dT\d+\.json$/.test(f))
    .sort();
  if (!files.length) return null;
  const file = join(dir, files.at(-1));
  return { file, ...JSON.parse(readFileSync(file, 'utf8')) };
}

/** The peer registry and drivers: the anchors' (from `dir`), or this folder's standalone fallback. */
export async function loadDrivers(dir) {
  // libUrl/libExport: where worker threads (the nano-vm-pool peer) import the same mocks from
  if (!dir) {
    const s = await import('./standalone.mjs');
    return {
      lib: s.lib,
      libUrl: new URL('./standalone.mjs', import.meta.url).href,
      libExport: 'lib',
      WORKLOADS: s.WORKLOADS,
      PEERS: {},
      standalone: true,
    };
  }
  const url = (f) => pathToFileURL(join(dir, f)).href;
  const [lib, wl, peers] = await Promise.all([
    import(url('lib.mjs')),
    import(url('workloads.mjs')),
    import(url('peers/index.mjs')),
  ]);
  return {
    lib,
    libUrl: url('lib.mjs'),
    libExport: null,
    WORKLOADS: wl.WORKLOADS,
    PEERS: peers.PEERS,
    standalone: false,
  };
}

/** The nano-vm peer, on the given drivers' mock model and tools; `runtime`: the runtime entry point to load. */
export async function loadNanoVm(lib, runtime = RUNTIME) {
  if (!existsSync(runtime)) throw new Error(`${runtime} is missing: build first (npm run build)`);
  const [rt, { makeNanoVm }] = await Promise.all([import(pathToFileURL(runtime).href), import('./nano-vm.mjs')]);
  return makeNanoVm(lib, rt);
}

export const NANO = 'nano-vm';
/** nano-vm through RunPool on worker threads (bench/nano-vm-pool.mjs): the workloads it runs. */
export const NANO_POOL = 'nano-vm-pool';
export const NANO_POOL_WORKLOADS = ['w10k', 'chain22'];

/** The nano-vm-pool peer, started for one workload (its workers build that workload's program at setup). */
export async function loadNanoVmPool(drivers, workload, runtime = RUNTIME, workers = undefined) {
  if (!existsSync(runtime)) throw new Error(`${runtime} is missing: build first (npm run build)`);
  const { startNanoVmPool } = await import('./nano-vm-pool.mjs');
  return startNanoVmPool({ runtime, libUrl: drivers.libUrl, libExport: drivers.libExport, workload, workers });
}
/** The anchors' peers, with the workloads each one runs (mirrors the anchors' peers/index.mjs). */
export const ANCHOR_PEERS = {
  bare: ['w10k', 'chain22', 'long'],
  'bare-hash': ['w10k', 'chain22', 'long'],
  xstate: ['w10k', 'chain22', 'long'],
  langgraph: ['w10k', 'chain22', 'long'],
  'langgraph-mem': ['w10k', 'chain22', 'long'],
  'langgraph-loop': ['long'],
  'langgraph-mem-loop': ['long'],
};
/** Peers that need no framework installed: they run straight from the anchors' folder. */
export const LIGHT_PEERS = ['bare', 'bare-hash'];

const PKGS = ['kernel', 'runtime'];

/** Every dist/*.js of the kernel and runtime under `root` (a packages/ folder or a snapshot's node_modules/@nano-vm). */
function distFiles(root) {
  const out = [];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) out.push(p);
    }
  };
  for (const pkg of PKGS) walk(join(root, pkg, 'dist'));
  return out;
}

/**
 * A fingerprint of the built kernel + runtime (their dist/*.js), to tell builds apart. `runtime` is
 * the runtime entry point a process loads (default: the repo's live build).
 */
export function distFingerprint(runtime = RUNTIME) {
  const root = resolve(dirname(runtime), '..', '..'); // <root>/runtime/dist/index.js
  const h = createHash('sha256');
  for (const f of distFiles(root)) h.update(relative(root, f)).update(readFileSync(f));
  return h.digest('hex').slice(0, 12);
}

/**
 * Copies the current kernel + runtime build to bench/.snapshot/<fingerprint>/node_modules/@nano-vm/,
 * so that a long run measures one build even while others rebuild packages/*\/dist. Third-party
 * dependencies still resolve from the repo's node_modules (the snapshot lives inside the repo).
 * Returns the snapshot's runtime entry point and fingerprint.
 */
export function snapshotBuild() {
  for (let attempt = 1; ; attempt++) {
    const fp = distFingerprint();
    const root = join(SNAPSHOTS, `${fp}-${process.pid}`, 'node_modules', '@nano-vm');
    for (const pkg of PKGS) {
      const from = join(REPO, 'packages', pkg);
      cpSync(join(from, 'package.json'), join(root, pkg, 'package.json'));
      cpSync(join(from, 'dist'), join(root, pkg, 'dist'), {
        recursive: true,
        filter: (f) => !f.endsWith('.map') && !f.endsWith('.d.ts'),
      });
    }
    const runtime = join(root, 'runtime', 'dist', 'index.js');
    // a build written while we copied: copy again
    if (distFingerprint(runtime) === fp && distFingerprint() === fp)
      return { runtime, fingerprint: fp, dir: join(SNAPSHOTS, `${fp}-${process.pid}`) };
    rmSync(join(SNAPSHOTS, `${fp}-${process.pid}`), { recursive: true, force: true });
    if (attempt === 5)
      throw new Error('packages/*/dist keeps changing: could not take a consistent snapshot of the build');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000);
  }
}

/** The repo's commit and whether the working tree has changes under packages/ (null without git). */
export function gitState() {
  const git = (...args) => spawnSync('git', args, { cwd: REPO, encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD');
  if (head.status !== 0) return null;
  const dirty = git('status', '--porcelain', '--', 'packages').stdout.trim().split('\n').filter(Boolean).length;
  return { commit: head.stdout.trim(), dirtyFiles: dirty };
}

/** The median of a list of numbers (the mean of the middle two for an even count). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A number with thousands separators and `d` decimals. */
export const fmt = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

/** Writes bench/results/<prefix><timestamp>.md (the tables) and .json (the raw figures). */
export function writeResults(prefix, text, json) {
  mkdirSync(join(BENCH, 'results'), { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').slice(0, 15);
  writeFileSync(join(BENCH, 'results', `${prefix}${stamp}.md`), text);
  writeFileSync(join(BENCH, 'results', `${prefix}${stamp}.json`), JSON.stringify(json, null, 2));
}

/**
 * The W-10K program (llm analyze -> tool mock_processor -> condition value > 0.9 -> fail_tool | mock_finalize -> end),
 * as nano-vm runs it in memory (bench/nano-vm.mjs) and on PostgreSQL (bench/postgres.mjs). A new object
 * on every call: the pre-flight validation is cached per program object, and each timed W-10K graph
 * builds its program, as the peers build their graphs.
 */
export const w10kProgram = () => ({
  format: 'nano-vm.program/v1',
  id: 'w10k',
  input_schema: {
    type: 'object',
    additionalProperties: false,
    required: ['value'],
    properties: { value: { type: 'number', minimum: 0, maximum: 1 } },
  },
  steps: [
    {
      id: 'analyze',
      kind: 'llm',
      prompt: 'Analyze field {{input.value}}',
      projection: ['input.value'],
      output: { enum: ['normal', 'high'] },
      next: 'process',
    },
    { id: 'process', kind: 'tool', tool: 'mock_processor', args: { data: 'steps.analyze.output' }, next: 'route' },
    { id: 'route', kind: 'condition', cases: [{ when: 'input.value > 0.9', next: 'fail' }], else: 'finalize' },
    { id: 'fail', kind: 'tool', tool: 'fail_tool', next: 'done' },
    { id: 'finalize', kind: 'tool', tool: 'mock_finalize', next: 'done' },
    { id: 'done', kind: 'end', outcome: 'SUCCESS' },
  ],
});
