// Installs the framework peers (xstate, langgraph, langgraph-mem, ...): copies the anchors into
// bench/.anchors/ (gitignored; the source folder stays untouched and may be read-only) and runs
// `npm ci` there, which installs the exact versions pinned by the anchors' package-lock.json.
//
//   node bench/setup-peers.mjs            (does nothing when the copy is already up to date)
//   node bench/setup-peers.mjs --force    (copy and install again)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { anchorsSource, COPY } from './common.mjs';

const log = (...a) => console.error(...a);
const src = anchorsSource();
if (!existsSync(join(src, 'package-lock.json')) || !existsSync(join(src, 'workloads.mjs'))) {
  log(`# no anchors at ${src} (set BENCH_ANCHORS): nothing to set up; npm run bench will measure nano-vm alone`);
  process.exit(1);
}

const SKIP = new Set(['node_modules', '.git']);
/** Every file under `dir` (relative paths), except node_modules and .git. */
function files(dir, rel = '') {
  const out = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    if (SKIP.has(e.name)) continue;
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...files(dir, r));
    else if (e.isFile()) out.push(r);
  }
  return out;
}

const srcFiles = files(src);
const same = (f) => existsSync(join(COPY, f)) && readFileSync(join(COPY, f)).equals(readFileSync(join(src, f)));
const installed = ['xstate', '@langchain/langgraph', '@langchain/core'].every((m) =>
  existsSync(join(COPY, 'node_modules', m, 'package.json')),
);
if (!process.argv.includes('--force') && installed && srcFiles.every(same)) {
  log(`# ${COPY} is up to date with ${src} and installed (--force to redo)`);
  process.exit(0);
}

// Copy with ordinary writable modes (the source files are read-only), replacing any older copy.
if (existsSync(COPY)) {
  for (const f of files(COPY)) if (!srcFiles.includes(f)) rmSync(join(COPY, f), { force: true });
}
for (const f of srcFiles) {
  const to = join(COPY, f);
  mkdirSync(join(to, '..'), { recursive: true });
  if (existsSync(to)) chmodSync(to, 0o644);
  writeFileSync(to, readFileSync(join(src, f)));
  chmodSync(to, 0o644 | (statSync(join(src, f)).mode & 0o111));
}
log(`# copied ${srcFiles.length} files from ${src} to ${COPY}`);

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const t0 = performance.now();
log(`# npm ci in ${COPY} ...`);
const r = spawnSync(npm, ['ci', '--no-audit', '--no-fund', '--ignore-scripts'], {
  cwd: COPY,
  stdio: ['ignore', 'inherit', 'inherit'],
});
if (r.status !== 0) {
  log(
    `# npm ci failed (exit ${r.status ?? r.signal}); npm run bench will run bare/bare-hash and show recorded figures for the others`,
  );
  process.exit(1);
}
// A smoke check that the frameworks load from the copy.
const check = spawnSync(
  process.execPath,
  ['--input-type=module', '-e', "await import('xstate'); await import('@langchain/langgraph'); console.log('ok')"],
  { cwd: COPY, encoding: 'utf8' },
);
if (check.stdout.trim() !== 'ok') {
  log(`# the frameworks do not load from ${COPY}:\n${check.stderr}`);
  process.exit(1);
}
log(
  `# installed in ${((performance.now() - t0) / 1000).toFixed(1)} s; xstate and @langchain/langgraph load from ${COPY}`,
);
