// `npm run lint`: the format check, eslint and the type-check of the tests. Each is single-threaded,
// so eslint (the longest) runs beside the other two instead of after them. Each one's output is
// printed whole when it ends, and the lint fails when any of them fails.
import { spawn } from 'node:child_process';
import { delimiter, join } from 'node:path';

const root = join(import.meta.dirname, '..');
const env = { ...process.env, PATH: `${join(root, 'node_modules', '.bin')}${delimiter}${process.env.PATH}` };

/** Runs one command with its output kept; resolves with its exit status and the output. */
function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks = [];
    child.stdout.on('data', (d) => chunks.push(d));
    child.stderr.on('data', (d) => chunks.push(d));
    child.on('error', (e) => resolve({ code: 1, out: `${e.message}\n` }));
    child.on('close', (code, signal) => resolve({ code: code ?? 1, out: Buffer.concat(chunks).toString(), signal }));
  });
}

async function sequence(steps) {
  const results = [];
  for (const [cmd, ...args] of steps) {
    const r = await run(cmd, args);
    results.push({ label: [cmd, ...args].join(' '), ...r });
    if (r.code !== 0) break;
  }
  return results;
}

const groups = await Promise.all([
  sequence([['eslint', '.']]),
  sequence([
    ['prettier', '--check', '.'],
    ['tsc', '-p', 'tsconfig.tests.json'],
  ]),
]);
let failed = false;
for (const r of groups.flat()) {
  process.stdout.write(`> ${r.label}\n${r.out}`);
  if (r.code !== 0) {
    failed = true;
    process.stderr.write(`${r.label} failed (${r.signal ?? `exit ${r.code}`})\n`);
  }
}
process.exitCode = failed ? 1 : 0;
