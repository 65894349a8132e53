/**
 * The dev agent's test fixtures: a small TypeScript repository with a failing test (copied from
 * packages/dev-agent/demo/repo into a temporary directory and committed with real git), and a
 * fingerprint of a repository's state — HEAD, the tracked tree, the index file's bytes, every
 * file of the working tree (ignored and untracked ones included), the refs and git's worktree
 * registry — so a test can say "byte-identical".
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DEMO = new URL('../../demo/', import.meta.url).pathname;
export const FIX_SCRIPT = join(DEMO, 'fix-discount.model.yaml');
export const ESCAPE_SCRIPT = join(DEMO, 'escape.model.yaml');
export const TASK = 'The discount tests fail: fix applyDiscount so that they pass.';
export const CHECKS = ['tsc --noEmit'];
export const TESTS = ['tsc && node --test test/price.test.mjs'];

export const gitIn = (cwd: string, ...args: string[]): string =>
  execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@t',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@t',
    },
  });

const made: string[] = [];

/** Removes every fixture repository and scratch directory this test file made (call in afterAll). */
export function removeFixtures(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A fresh fixture repository in a temporary directory (its real path), one commit on `main`. */
export function fixtureRepo(extra: (dir: string) => void = () => undefined): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'dev-agent-fixture-')));
  made.push(dir);
  cpSync(join(DEMO, 'repo'), dir, { recursive: true });
  extra(dir);
  gitIn(dir, 'init', '-q', '-b', 'main');
  gitIn(dir, 'add', '-A');
  gitIn(dir, 'commit', '-q', '-m', 'A price module with a failing discount test');
  return dir;
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

function walk(root: string, rel: string, out: string[]): void {
  for (const name of readdirSync(join(root, rel)).sort()) {
    if (rel === '' && name === '.git') continue;
    const p = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(root, p));
    if (st.isSymbolicLink()) out.push(`L ${p} ${readlinkSync(join(root, p))}`);
    else if (st.isDirectory()) walk(root, p, out);
    else out.push(`F ${p} ${st.mode.toString(8)} ${sha(readFileSync(join(root, p)))}`);
  }
}

export interface Fingerprint {
  head: string;
  headRef: string;
  tree: string;
  index: string;
  workingTree: string;
  /** Every ref but the agent's branches and notes (compared separately: a commit adds those). */
  refs: string;
  /** git's worktree registry (.git/worktrees): empty when no staging worktree is left behind. */
  worktrees: string[];
  lock: boolean;
}

export function fingerprint(root: string): Fingerprint {
  const files: string[] = [];
  walk(root, '', files);
  const wtDir = join(root, '.git', 'worktrees');
  return {
    head: gitIn(root, 'rev-parse', 'HEAD').trim(),
    headRef: readFileSync(join(root, '.git', 'HEAD'), 'utf8'),
    tree: gitIn(root, 'rev-parse', 'HEAD^{tree}').trim(),
    index: sha(readFileSync(join(root, '.git', 'index'))),
    workingTree: sha(files.join('\n')),
    refs: gitIn(root, 'for-each-ref', '--format=%(refname) %(objectname)')
      .split('\n')
      .filter((l) => l && !l.startsWith('refs/heads/nano-vm/') && !l.startsWith('refs/notes/'))
      .join('\n'),
    worktrees: existsSync(wtDir) ? readdirSync(wtDir) : [],
    lock: existsSync(join(root, '.git', 'nano-vm-dev-agent.lock')),
  };
}

/** The agent's temporary directories that exist now under `dir` (a test's own TMPDIR). */
export const stagingDirs = (dir: string): string[] =>
  readdirSync(dir).filter((n) => n.startsWith('nano-vm-dev-agent-'));

/** A directory for a test's TMPDIR, so the agent's temporary directories can be counted. */
export const scratchDir = (): string => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'dev-agent-tmp-')));
  made.push(dir);
  return dir;
};
