/**
 * `runDevAgent`: check the repository and the tools before anything runs, take the repository's
 * dev-agent lock, run the agent's program (agentProgram.ts) with its tools (agentTools.ts), then
 * attach the bundle to the commit as a git note — or leave the repository as it was. The staging
 * worktree, the temporary directory and the lock are removed however the run ends; if the process
 * is killed, the next run removes them (cleanUpInterrupted) and reports it.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  NanoVmError,
  serializeBundle,
  type Clock,
  type PolicySnapshot,
  type StepCompletedEvent,
  type TraceEvent,
} from '@nano-vm/kernel';
import {
  runProgram,
  serializeSignature,
  signBundle,
  nodeHasher,
  ToolRegistry,
  type IdSource,
  type ModelPort,
  type RunResult,
  type SigningKey,
  type Store,
} from '@nano-vm/runtime';
import {
  agentTools,
  DEFAULT_IDENTITY,
  DEFAULT_LIMITS,
  type AgentLimits,
  type AgentSession,
  type Identity,
} from './agentTools.js';
import { COMMITTED, DEFAULT_MAX_ATTEMPTS, devAgentPolicy, devAgentProgram } from './agentProgram.js';
import { cleanEnvironment, killRunningChecks, requireCommandTools, resolveProgram } from './checkRunner.js';
import { git, gitRaw } from './git.js';
import { cleanUpInterrupted, Workspace } from './workspace.js';

export const NOTES_REF = 'refs/notes/nano-vm';
export const SIGNATURE_NOTES_REF = 'refs/notes/nano-vm-signatures';
export const DEFAULT_CHECKS: readonly string[] = ['tsc --noEmit'];
export const DEFAULT_TESTS: readonly string[] = ['npm test'];

export interface DevAgentOptions {
  repo: string;
  task: string;
  model: ModelPort;
  /** Type-check commands (default `tsc --noEmit`). */
  checks?: readonly string[];
  /** Test commands (default `npm test`). */
  tests?: readonly string[];
  maxAttempts?: number;
  /** An operator's policy; its rules are added to the agent's own. */
  policy?: PolicySnapshot;
  store?: Store;
  clock?: Clock;
  ids?: IdSource;
  /** Signs the bundle; the signature is attached as a note under refs/notes/nano-vm-signatures. */
  signer?: SigningKey;
  limits?: Partial<AgentLimits>;
  identity?: Identity;
  /** One line per thing the agent does, as it happens. */
  onProgress?: (line: string) => void;
  /**
   * Crash tests only: the staging step writes this file once it has written the patch into the
   * worktree, then waits (docs/dev-agent.md "Crash safety"), so a test can kill the process there.
   */
  pauseWhileStaging?: string;
}

export interface AttemptSummary {
  attempt: number;
  /** What failed: null when every check passed. */
  failed: 'stage' | 'typecheck' | 'test' | null;
  files: string[];
  /** Wall time of each phase of the attempt, ms. */
  ms: { stage?: number; typecheck?: number; test?: number };
}

export interface DevAgentResult {
  run: RunResult;
  attempts: AttemptSummary[];
  commit?: { branch: string; sha: string };
  /** Whether the bundle is attached as a note to the commit. */
  noted: boolean;
  /** What was left by interrupted runs and removed before this one started. */
  cleaned: string[];
  /** The blocked actions of the run (policy rule and reason). */
  blocked: { rule: string; requested: string; reason: string }[];
  durationMs: number;
}

/** The repository's top level, or E_DEV_NOT_A_REPO. */
export function repositoryRoot(repo: string): { root: string; head: string } {
  if (!existsSync(repo) || !statSync(repo).isDirectory())
    throw new NanoVmError('E_DEV_NOT_A_REPO', `${repo} is not a directory`);
  const top = gitRaw(repo, ['rev-parse', '--show-toplevel']);
  if (top.status !== 0 || !top.stdout.trim())
    throw new NanoVmError(
      'E_DEV_NOT_A_REPO',
      `${repo} is not inside a git working tree (${top.stderr.trim() || 'no top level'})`,
    );
  const root = top.stdout.trim();
  const head = gitRaw(root, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}']);
  if (head.status !== 0) throw new NanoVmError('E_DEV_NOT_A_REPO', `${root} has no commit yet: commit something first`);
  return { root, head: head.stdout.trim() };
}

/** E_DEV_DIRTY_TREE when the working tree or the index differs from HEAD (ignored files aside). */
export function requireClean(root: string): void {
  const status = git(root, ['status', '--porcelain=v1', '--untracked-files=all', '--ignore-submodules=none']);
  if (status.trim()) {
    const lines = status.trimEnd().split('\n');
    throw new NanoVmError(
      'E_DEV_DIRTY_TREE',
      `${root} has uncommitted changes; commit or stash them first (the agent only changes a clean repository, so a rollback leaves exactly what was there):\n${lines.slice(0, 10).join('\n')}${lines.length > 10 ? `\n… and ${lines.length - 10} more` : ''}`,
    );
  }
}

/** nano-vm's own TypeScript compiler, for repositories that do not install one (`tsc` in the checks). */
export function bundledTsc(): string | null {
  try {
    return createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    return null;
  }
}

export async function runDevAgent(opts: DevAgentOptions): Promise<DevAgentResult> {
  const started = performance.now();
  const say = opts.onProgress ?? (() => undefined);
  const task = opts.task.trim();
  if (!task) throw new NanoVmError('E_USAGE', 'the task is empty');
  const checks = opts.checks?.length ? [...opts.checks] : [...DEFAULT_CHECKS];
  const tests = opts.tests?.length ? [...opts.tests] : [...DEFAULT_TESTS];
  const program = devAgentProgram(opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
  const policy = devAgentPolicy(opts.policy);

  // Everything that can refuse the run, before anything is written.
  const { root, head } = repositoryRoot(opts.repo);
  const cleaned = cleanUpInterrupted(root);
  for (const line of cleaned) say(`cleaned up: ${line}`);
  requireClean(root);
  const repoBin = join(root, 'node_modules', '.bin');
  const tsc = existsSync(join(repoBin, 'tsc')) ? null : bundledTsc();
  const probeEnv = cleanEnvironment({ pathPrefix: [repoBin], home: root });
  requireCommandTools([...checks, ...tests], probeEnv, root, tsc ? ['tsc'] : []);
  const files = git(root, ['ls-files', '-z']).split('\0').filter(Boolean).slice(0, 5000);

  const workspace = Workspace.open(root, head);
  // Ctrl-C or a TERM: the checks run in their own process groups, so end them, then remove the
  // workspace and die of the same signal. (SIGKILL cannot be caught: the next run cleans up.)
  const onSignal = (signal: NodeJS.Signals): void => {
    killRunningChecks();
    workspace.close();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.kill(process.pid, signal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (tsc) {
      // `tsc` in a check runs nano-vm's own TypeScript when the repository has none installed.
      writeFileSync(join(workspace.bin, 'tsc'), `#!/bin/sh\nexec "${process.execPath}" "${tsc}" "$@"\n`, {
        mode: 0o755,
      });
    }
    const env = cleanEnvironment({ pathPrefix: [repoBin, workspace.bin], home: workspace.home });
    if (resolveProgram('sh', env.PATH!, root) === null)
      throw new NanoVmError('E_DEV_CHECK_TOOL_MISSING', 'no sh on PATH: the checks run through /bin/sh');
    const session: AgentSession = {
      root,
      base: head,
      workspace,
      checks,
      tests,
      env,
      limits: { ...DEFAULT_LIMITS, ...opts.limits },
      identity: opts.identity ?? DEFAULT_IDENTITY,
      runId: '',
      lastHash: '',
      attempt: 0,
      linkedModules: existsSync(join(root, 'node_modules')),
      ...(opts.pauseWhileStaging ? { pauseWhileStaging: opts.pauseWhileStaging } : {}),
      branchName: (id) => `nano-vm/dev-agent/${id.replace(/[^A-Za-z0-9._-]/g, '-')}`,
    };
    const timers = new Map<string, number>();
    const durations: { step: string; attempt: number; ms: number }[] = [];
    const onEvent = (e: TraceEvent, runId: string): void => {
      session.runId = runId;
      session.lastHash = e.hash;
      if (e.type === 'step_started') {
        timers.set(e.step, performance.now());
      } else if (e.type === 'step_completed' || e.type === 'step_failed') {
        const t = timers.get(e.step);
        if (t !== undefined) durations.push({ step: e.step, attempt: session.attempt, ms: performance.now() - t });
      }
      const line = progressLine(e);
      if (line !== null) say(line);
    };
    const run = await runProgram({
      program,
      input: { task, base: head, files, checks, tests },
      model: opts.model,
      tools: new ToolRegistry(agentTools(session)),
      policy,
      onEvent,
      ...(opts.store ? { store: opts.store } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.ids ? { ids: opts.ids } : {}),
    });
    const commitOut = completed(run.events, 'commit').at(-1)?.output as { branch: string; commit: string } | undefined;
    let noted = false;
    if (run.outcome === COMMITTED && commitOut) {
      attachNotes(root, commitOut.commit, run, opts.signer, session.identity, workspace);
      noted = true;
      say(`committed ${commitOut.commit} on branch ${commitOut.branch}; bundle attached as a note (${NOTES_REF})`);
    }
    const blocked = run.events.flatMap((e) =>
      e.type === 'transition_rejected' ? [{ rule: e.rule, requested: e.requested, reason: e.reason }] : [],
    );
    return {
      run,
      attempts: attemptSummaries(run.events, durations),
      ...(commitOut ? { commit: { branch: commitOut.branch, sha: commitOut.commit } } : {}),
      noted,
      cleaned,
      blocked,
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    workspace.close();
  }
}

function attachNotes(
  root: string,
  sha: string,
  run: RunResult,
  signer: SigningKey | undefined,
  identity: Identity,
  workspace: Workspace,
): void {
  const who = {
    GIT_AUTHOR_NAME: identity.name,
    GIT_AUTHOR_EMAIL: identity.email,
    GIT_COMMITTER_NAME: identity.name,
    GIT_COMMITTER_EMAIL: identity.email,
  };
  const bundleFile = workspace.writeTemp('bundle.json', serializeBundle(run.bundle));
  git(root, ['notes', `--ref=${NOTES_REF}`, 'add', '-f', '-F', bundleFile, sha], { env: who });
  if (signer) {
    const sigFile = workspace.writeTemp('bundle.sig', serializeSignature(signBundle(run.bundle, signer, nodeHasher)));
    git(root, ['notes', `--ref=${SIGNATURE_NOTES_REF}`, 'add', '-f', '-F', sigFile, sha], { env: who });
  }
}

function completed(events: readonly TraceEvent[], step: string): StepCompletedEvent[] {
  return events.filter((e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === step);
}

/** Per attempt: what failed and how long each phase took. */
export function attemptSummaries(
  events: readonly TraceEvent[],
  durations: readonly { step: string; attempt: number; ms: number }[] = [],
): AttemptSummary[] {
  const out: AttemptSummary[] = [];
  for (const e of completed(events, 'stage')) {
    const o = e.output as { attempt: number; applied: boolean; files: string[] };
    out.push({ attempt: o.attempt, failed: o.applied ? null : 'stage', files: o.files, ms: {} });
  }
  for (const phase of ['typecheck', 'test'] as const)
    for (const e of completed(events, phase)) {
      const o = e.output as { attempt: number; ok: boolean };
      const a = out.find((x) => x.attempt === o.attempt);
      if (a && !o.ok && a.failed === null) a.failed = phase;
    }
  for (const d of durations) {
    const a = out.find((x) => x.attempt === d.attempt);
    if (a && (d.step === 'stage' || d.step === 'typecheck' || d.step === 'test')) a.ms[d.step] = Math.round(d.ms);
  }
  return out;
}

/** A line for the things a person watching wants to see; null for the rest (policy checks, guards). */
function progressLine(e: TraceEvent): string | null {
  if (e.type === 'step_completed') {
    const o = e.output as Record<string, unknown>;
    switch (e.step) {
      case 'plan':
        return `plan: ${String(o.summary).slice(0, 200)}`;
      case 'read':
        return `read ${(o.files as unknown[]).length} file(s)${(o.refused as unknown[]).length ? `, refused ${(o.refused as unknown[]).length}` : ''}`;
      case 'propose':
        return `proposal ${e.visit ?? ''}: ${o.diff !== undefined ? 'a unified diff' : `${(o.edits as unknown[]).length} edit(s)`}`;
      case 'vet': {
        const bad = (o.paths as { path: string; verdict: string }[]).filter((p) => p.verdict !== 'ok');
        return bad.length
          ? `paths outside the allow-list: ${bad.map((p) => `${p.path} (${p.verdict})`).join(', ')}`
          : null;
      }
      case 'stage':
        return o.applied
          ? `attempt ${o.attempt}: staged ${(o.files as string[]).length} file(s) in the worktree`
          : `attempt ${o.attempt}: the patch could not be staged: ${String(o.error)}`;
      case 'typecheck':
      case 'test': {
        const results = o.results as { duration_ms: number }[];
        const ms = results.reduce((t, r) => t + r.duration_ms, 0);
        return `attempt ${o.attempt}: ${e.step} ${o.ok ? 'passed' : 'FAILED'} (${ms} ms)`;
      }
      case 'feedback':
        return `attempt ${o.attempt}: ${o.failed} output fed back to the model`;
      case 'commit':
        return `committed ${o.commit} on ${o.branch}`;
      case 'rollback':
        return 'rolled back: the staging worktree is discarded';
      default:
        return null;
    }
  }
  if (e.type === 'step_failed') return `${e.step} failed: ${e.error.code} ${e.error.message}`;
  if (e.type === 'transition_rejected') return `BLOCKED ${e.requested} in step ${e.step}: rule ${e.rule}: ${e.reason}`;
  if (e.type === 'run_finished') return `run finished: ${e.status}${e.outcome ? ` ${e.outcome}` : ''}`;
  return null;
}
