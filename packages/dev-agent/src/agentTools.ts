/**
 * The tools of the dev-agent program (program/dev-agent.program.yaml), bound to one run's
 * repository and workspace. Each returns JSON that the program's output schemas check and the
 * trace records; a problem with the patch itself (it does not apply, it changes nothing) is a
 * result the model is told about, not an error of the run.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { JsonValue } from '@nano-vm/kernel';
import type { ToolDefinition } from '@nano-vm/runtime';
import { runCheck, type CheckResult } from './checkRunner.js';
import { DIFF_ARGS, git, gitRaw } from './git.js';
import { touchedPaths, type Patch } from './patch.js';
import { symlinkOnPath, vetPath, vetPathText, type VettedPath } from './pathVetting.js';
import type { Workspace } from './workspace.js';

export interface AgentLimits {
  /** Bytes of one file `read_files` returns (the rest is cut, and `truncated` says so). */
  readFileBytes: number;
  /** Bytes `read_files` returns in all. */
  readTotalBytes: number;
  /** Per check or test command. */
  checkTimeoutMs: number;
  /** Captured output per command (start and end kept). */
  outputBytes: number;
  /** The largest staged diff the agent records and commits. */
  diffBytes: number;
}

export const DEFAULT_LIMITS: AgentLimits = {
  readFileBytes: 64 * 1024,
  readTotalBytes: 256 * 1024,
  checkTimeoutMs: 300_000,
  outputBytes: 64 * 1024,
  diffBytes: 1024 * 1024,
};

export interface Identity {
  name: string;
  email: string;
}

export const DEFAULT_IDENTITY: Identity = { name: 'nano-vm dev-agent', email: 'dev-agent@nano-vm.invalid' };

/** What the host shares with the tools while the run is driven. */
export interface AgentSession {
  root: string;
  base: string;
  workspace: Workspace;
  checks: readonly string[];
  tests: readonly string[];
  env: Record<string, string>;
  limits: AgentLimits;
  identity: Identity;
  /** Set by the host from the run's events as they are stored. */
  runId: string;
  lastHash: string;
  /** The staging attempt in progress (1-based). */
  attempt: number;
  /** Whether node_modules in the worktree is our link to the repository's (kept out of commits). */
  linkedModules: boolean;
  /** Crash tests only (DevAgentOptions.pauseWhileStaging). */
  pauseWhileStaging?: string;
  /** The branch name for a commit of this run. */
  branchName: (runId: string) => string;
}

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

function asPatch(v: JsonValue | undefined): Patch {
  return v as unknown as Patch;
}

export function agentTools(s: AgentSession): ToolDefinition[] {
  return [
    {
      name: 'read_files',
      description: 'Read tracked files of the base commit, within the path allow-list and size limits.',
      run: (args) => readFiles(s, (args.paths as string[] | undefined) ?? []),
    },
    {
      name: 'check_paths',
      description: 'The allow-list verdict on every path a patch touches.',
      run: (args) => {
        const paths = vetPatch(s.root, asPatch(args.patch));
        return { ok: paths.every((p) => p.verdict === 'ok'), paths };
      },
    },
    {
      name: 'stage_patch',
      description: 'Apply the patch in the staging worktree and record the staged diff.',
      run: async (args) => {
        const out = stagePatch(s, asPatch(args.patch), (args.paths as unknown as VettedPath[]) ?? []);
        if (s.pauseWhileStaging) {
          writeFileSync(s.pauseWhileStaging, s.workspace.worktree);
          await new Promise((r) => setTimeout(r, 60_000));
        }
        return out;
      },
    },
    {
      name: 'run_checks',
      description: 'Run the configured check or test commands in the staging worktree.',
      run: (args, ctx) => runChecks(s, args, ctx.signal),
    },
    {
      name: 'feedback',
      description: "What failed in the current attempt, and the checker's output.",
      run: (args) => feedback(args),
    },
    {
      name: 'commit_change',
      description: 'Commit the staged change on a new branch of the repository.',
      run: (args) => commitChange(s, String(args.message), String(args.task)),
    },
    {
      name: 'discard_staging',
      description: 'Discard the staging worktree.',
      run: () => {
        s.workspace.close();
        return { discarded: true };
      },
    },
  ];
}

/** The verdicts on every path the patch touches (a diff creating a link or submodule is refused). */
export function vetPatch(root: string, patch: Patch): VettedPath[] {
  return touchedPaths(patch).map((t) => {
    const v = vetPath(root, t.path);
    if (v.verdict !== 'ok') return v;
    if (t.special === 'symlink') return { path: t.path, verdict: 'symlink', detail: 'the diff makes a symbolic link' };
    if (t.special === 'gitlink') return { path: t.path, verdict: 'invalid', detail: 'the diff makes a submodule' };
    return v;
  });
}

function readFiles(s: AgentSession, paths: readonly string[]) {
  const files: { path: string; content: string; truncated: boolean }[] = [];
  const refused: { path: string; reason: string }[] = [];
  let total = 0;
  for (const path of paths) {
    const v = vetPathText(path);
    if (v.verdict !== 'ok') {
      refused.push({ path, reason: `${v.verdict}: ${v.detail}` });
      continue;
    }
    // From the base commit's tree, never the file system: only tracked content, and no link is followed.
    const type = gitRaw(s.root, ['cat-file', '-t', `${s.base}:${path}`]);
    if (type.status !== 0 || type.stdout.trim() !== 'blob') {
      refused.push({ path, reason: 'not a tracked file' });
      continue;
    }
    const mode = git(s.root, ['ls-tree', s.base, '--', path]).split(' ')[0];
    if (mode === '120000') {
      refused.push({ path, reason: 'a symbolic link' });
      continue;
    }
    const bytes = Buffer.from(git(s.root, ['cat-file', 'blob', `${s.base}:${path}`]), 'utf8');
    if (bytes.includes(0)) {
      refused.push({ path, reason: 'a binary file' });
      continue;
    }
    const room = Math.max(0, Math.min(s.limits.readFileBytes, s.limits.readTotalBytes - total));
    if (room === 0) {
      refused.push({ path, reason: `the read limit (${s.limits.readTotalBytes} bytes in all) is reached` });
      continue;
    }
    const cut = bytes.length > room;
    const content = (cut ? bytes.subarray(0, room) : bytes).toString('utf8');
    total += Math.min(bytes.length, room);
    files.push({ path, content, truncated: cut });
  }
  return { files, refused };
}

function stagePatch(s: AgentSession, patch: Patch, vetted: readonly VettedPath[]) {
  const attempt = ++s.attempt;
  const fail = (error: string) => ({ attempt, applied: false, error, diff: '', diff_sha256: sha256(''), files: [] });
  // The policy blocks any path that is not `ok` before this step; this is the host's own backstop.
  const allowed = new Set(vetted.filter((p) => p.verdict === 'ok').map((p) => p.path));
  if (vetted.some((p) => p.verdict !== 'ok')) return fail('the patch touches paths outside the allow-list');
  s.workspace.reset();
  const wt = s.workspace.worktree;
  if (patch.edits) {
    const seen = new Set<string>();
    for (const e of patch.edits) {
      if (seen.has(e.path)) return fail(`${e.path}: edited twice in one patch`);
      seen.add(e.path);
      // Links in the staged tree (ours to node_modules included) must never be written through.
      const link = symlinkOnPath(wt, e.path);
      if (link !== null) return fail(`${e.path}: '${link}' is a symbolic link in the staged tree`);
      const file = join(wt, e.path);
      if (e.action === 'write') {
        if (typeof e.content !== 'string') return fail(`${e.path}: a write needs the file's whole new content`);
        if (existsSync(file) && lstatSync(file).isDirectory()) return fail(`${e.path}: is a directory`);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, e.content);
      } else {
        if (!existsSync(file)) return fail(`${e.path}: cannot delete, no such file`);
        if (lstatSync(file).isDirectory()) return fail(`${e.path}: is a directory; delete its files`);
        rmSync(file);
      }
    }
  } else if (patch.diff !== undefined) {
    const file = s.workspace.writeTemp(
      `attempt-${attempt}.diff`,
      patch.diff.endsWith('\n') ? patch.diff : `${patch.diff}\n`,
    );
    const r = gitRaw(wt, ['apply', '--binary', '-p1', '--whitespace=nowarn', file]);
    if (r.status !== 0) return fail(`the diff does not apply: ${r.stderr.trim()}`);
  }
  const exclude = s.linkedModules ? [':(exclude,top)node_modules'] : [];
  git(wt, ['add', '-A', '--', '.', ...exclude]);
  const changed = git(wt, ['diff', '--cached', '--name-only', '-z', '--no-renames', s.base])
    .split('\0')
    .filter(Boolean);
  const unvetted = changed.filter((p) => !allowed.has(p));
  if (unvetted.length) return fail(`the patch changed paths it does not name: ${unvetted.join(', ')}`);
  // A written file git ignores would be checked but never committed: what passed would not be what lands.
  const unstaged = [...allowed].filter((p) => !changed.includes(p));
  const ignored = unstaged.length
    ? gitRaw(wt, ['check-ignore', '--no-index', '--stdin', '-z'], { input: unstaged.join('\0') + '\0' })
        .stdout.split('\0')
        .filter(Boolean)
    : [];
  if (ignored.length)
    return fail(`the patch writes files git ignores (they would be checked but not committed): ${ignored.join(', ')}`);
  if (changed.length === 0) return fail('the patch changes nothing');
  const diff = git(wt, [...DIFF_ARGS, '--cached', s.base]);
  if (Buffer.byteLength(diff) > s.limits.diffBytes)
    return fail(`the staged diff is ${Buffer.byteLength(diff)} bytes; the limit is ${s.limits.diffBytes}`);
  return { attempt, applied: true, diff, diff_sha256: sha256(diff), files: changed };
}

async function runChecks(s: AgentSession, args: Record<string, JsonValue>, signal: AbortSignal) {
  const phase = String(args.phase);
  const commands = (args.commands as string[] | undefined) ?? [];
  const configured = phase === 'typecheck' ? s.checks : s.tests;
  // Only the operator's commands ever run: the run input carries them, and they must be these.
  if (commands.length !== configured.length || commands.some((c, i) => c !== configured[i]))
    throw new Error(`the ${phase} commands of the run are not the configured ones`);
  const results: CheckResult[] = [];
  for (const command of commands) {
    const r = await runCheck(command, {
      cwd: s.workspace.worktree,
      env: s.env,
      timeoutMs: s.limits.checkTimeoutMs,
      outputLimit: s.limits.outputBytes,
      signal,
    });
    results.push(r);
    if (r.exit_code !== 0) break;
  }
  const ok = results.length === commands.length && results.every((r) => r.exit_code === 0 && !r.timed_out);
  return { phase, attempt: Number(args.attempt), ok, results };
}

type CheckOutput = { phase: string; attempt: number; ok: boolean; results: CheckResult[] } | null | undefined;

/** A pure function of its arguments (the recorded outputs), so anyone can re-derive what the model was told. */
export function feedback(args: Record<string, JsonValue>) {
  const stage = args.stage as unknown as { attempt: number; applied: boolean; error?: string };
  const attempt = stage.attempt;
  if (!stage.applied) return { attempt, failed: 'stage', output: stage.error ?? 'the patch could not be staged' };
  for (const phase of ['typecheck', 'test'] as const) {
    const c = args[phase] as unknown as CheckOutput;
    if (c && c.attempt === attempt && !c.ok) {
      const bad = c.results.find((r) => r.exit_code !== 0 || r.timed_out) ?? c.results.at(-1);
      const how = bad
        ? bad.timed_out
          ? `timed out after ${bad.duration_ms} ms`
          : `exited with ${bad.exit_code ?? bad.signal}`
        : 'did not run';
      return { attempt, failed: phase, output: `${bad?.command ?? phase} ${how}:\n${bad?.output ?? ''}` };
    }
  }
  throw new Error(`feedback for attempt ${attempt}, which failed no check`);
}

function commitChange(s: AgentSession, message: string, task: string) {
  const wt = s.workspace.worktree;
  // The trailers are the agent's to write: a message cannot pose as another run.
  const lines = message
    .trim()
    .split('\n')
    .filter((l) => !/^\s*nano-vm-/i.test(l));
  const subject = lines[0]!.trim().slice(0, 100) || 'Change by nano-vm dev-agent';
  const body = lines.slice(1).join('\n').trim();
  const text = [
    subject,
    '',
    ...(body ? [body, ''] : []),
    `Task: ${task.replace(/\s+/g, ' ').trim().slice(0, 500)}`,
    `Nano-VM-Run: ${s.runId}`,
    `Nano-VM-Trace-Head: ${s.lastHash}`,
    '',
  ].join('\n');
  const msgFile = s.workspace.writeTemp('commit-message.txt', text);
  const who = {
    GIT_AUTHOR_NAME: s.identity.name,
    GIT_AUTHOR_EMAIL: s.identity.email,
    GIT_COMMITTER_NAME: s.identity.name,
    GIT_COMMITTER_EMAIL: s.identity.email,
  };
  git(wt, ['commit', '-q', '--no-verify', '--cleanup=verbatim', '-F', msgFile], { env: who });
  const commit = git(wt, ['rev-parse', 'HEAD']).trim();
  const branch = s.branchName(s.runId);
  // A new ref in the repository: its working tree, index and HEAD stay as they were.
  git(s.root, ['branch', '--no-track', branch, commit]);
  return { branch, commit, parent: s.base, trace_head: s.lastHash };
}
