/**
 * Running `git` for the dev agent: argument vectors (never a shell), a fixed locale, no optional
 * locks (a read such as `git status` must not rewrite the repository's index), no pager, no
 * prompts, and the user's hooks and signing configuration kept out of the agent's own commits.
 */
import { spawnSync } from 'node:child_process';
import { NanoVmError } from '@nano-vm/kernel';

export interface GitResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Settings every git call of the agent carries, whatever the user's configuration says. */
const FIXED_CONFIG = [
  '-c',
  'core.hooksPath=/dev/null',
  '-c',
  'commit.gpgsign=false',
  '-c',
  'core.quotePath=false',
  '-c',
  'diff.noprefix=false',
  '-c',
  'color.ui=false',
];

function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GIT_OPTIONAL_LOCKS: '0',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    LC_ALL: 'C',
    ...extra,
  };
}

/** Runs git; returns its status and output (no throw). */
export function gitRaw(
  cwd: string,
  args: readonly string[],
  opts: { input?: string; env?: Record<string, string> } = {},
): GitResult {
  const r = spawnSync('git', [...FIXED_CONFIG, ...args], {
    cwd,
    env: gitEnv(opts.env),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new NanoVmError(
        'E_DEV_CHECK_TOOL_MISSING',
        'git is not installed (or not on PATH); the dev agent needs it',
      );
    throw r.error;
  }
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs git and returns its stdout; a non-zero exit throws (a bug or an environment problem, not bad input). */
export function git(
  cwd: string,
  args: readonly string[],
  opts: { input?: string; env?: Record<string, string> } = {},
): string {
  const r = gitRaw(cwd, args, opts);
  if (r.status !== 0)
    throw new NanoVmError('E_DEV_GIT', `git ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** The diff the agent records and audit recomputes: byte-exact, whatever the user's diff settings. */
export const DIFF_ARGS = [
  'diff',
  '--binary',
  '--full-index',
  '--no-renames',
  '--no-color',
  '--no-ext-diff',
  '--no-textconv',
  '--src-prefix=a/',
  '--dst-prefix=b/',
] as const;
