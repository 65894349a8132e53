#!/usr/bin/env node
/**
 * The dev-agent demo (docs/dev-agent.md), end to end: copies the fixture repository
 * (packages/dev-agent/demo/repo: a price module whose discount test fails) into a temporary
 * directory and commits it with real git; runs `nano-vm dev-agent` with the scripted model of
 * packages/dev-agent/demo/fix-discount.model.yaml (a patch that fails the type-check, one that
 * fails a test, one that passes); runs `nano-vm dev-agent audit` on the new branch; then runs the
 * escape script, whose patch writes to ../outside and .git/config, and shows it blocked.
 * Real git, real tsc (nano-vm's own TypeScript: the fixture installs nothing), node --test.
 *
 *   npm run demo:dev-agent          (builds first)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const DEMO = join(ROOT, 'packages/dev-agent/demo');

const repo = realpathSync(mkdtempSync(join(tmpdir(), 'dev-agent-demo-')));
cpSync(join(DEMO, 'repo'), repo, { recursive: true });
const git = (...args) =>
  execFileSync('git', args, {
    cwd: repo,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'demo',
      GIT_AUTHOR_EMAIL: 'demo@example.com',
      GIT_COMMITTER_NAME: 'demo',
      GIT_COMMITTER_EMAIL: 'demo@example.com',
    },
  });
git('init', '-q', '-b', 'main');
git('add', '-A');
git('commit', '-q', '-m', 'A price module with a failing discount test');

const step = (title, args) => {
  console.log(`\n$ nano-vm ${args.map((a) => (/[\s"$&|]/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n# ${title}`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { stdio: 'inherit' });
  console.log(`# exit ${r.status} after ${Math.round(performance.now() - t0)} ms`);
  return r.status;
};

console.log(`fixture repository: ${repo}`);
const task = 'The discount tests fail: fix applyDiscount so that they pass.';
const checks = ['--check', 'tsc --noEmit', '--test', 'tsc && node --test test/price.test.mjs'];
const ran = step(
  'three patches: the first fails the type-check, the second a test, the third passes and is committed',
  [
    'dev-agent',
    '--repo',
    repo,
    '--task',
    task,
    '--model',
    `scripted:${join(DEMO, 'fix-discount.model.yaml')}`,
    ...checks,
  ],
);
const branch = git('branch', '--list', 'nano-vm/dev-agent/*', '--format=%(refname:short)').trim();
const audited = step('the commit carries its bundle as a git note; audit verifies it against the commit', [
  'dev-agent',
  'audit',
  `main..${branch}`,
  '--repo',
  repo,
]);
const blocked = step('a patch writing to ../outside and .git/config is a blocked action; nothing is written', [
  'dev-agent',
  '--repo',
  repo,
  '--task',
  task,
  '--model',
  `scripted:${join(DEMO, 'escape.model.yaml')}`,
  ...checks,
]);
console.log(`\ngit status of ${repo} (empty: the working tree is as it was):`);
console.log(git('status', '--porcelain') || '(clean)');
console.log(git('log', '--oneline', '--branches', '--decorate'));
process.exit(ran === 0 && audited === 0 && blocked === 1 ? 0 : 1);
