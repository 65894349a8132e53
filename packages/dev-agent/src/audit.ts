/**
 * `auditRange`: for each commit of a revision range, whether it carries a dev-agent bundle (a note
 * under refs/notes/nano-vm) and whether that bundle vouches for exactly this commit: the chain and
 * receipt verify (and the signature, against trusted keys, when asked), the run committed this
 * commit on this parent, the diff the run staged and checked is byte for byte the commit's diff,
 * and the commit message names the run and a trace head of that run.
 */
import { createHash } from 'node:crypto';
import {
  NanoVmError,
  parseJsonText,
  verifyBundle,
  verifySignedBundle,
  type Bundle,
  type StepCompletedEvent,
  type TrustedKey,
} from '@nano-vm/kernel';
import { nodeHasher } from '@nano-vm/runtime';
import { COMMITTED, DEV_AGENT_PROGRAM_ID } from './agentProgram.js';
import { NOTES_REF, SIGNATURE_NOTES_REF, repositoryRoot } from './devAgent.js';
import { DIFF_ARGS, git, gitRaw } from './git.js';

export interface AuditedCommit {
  commit: string;
  subject: string;
  /** Whether the commit carries a bundle note. */
  bundle: boolean;
  /** 'verified': the bundle vouches for this commit; 'failed': it does not (see problems); 'none': no bundle. */
  verdict: 'verified' | 'failed' | 'none';
  run_id: string | null;
  head_hash: string | null;
  signed_by: string | null;
  problems: string[];
}

export interface AuditReport {
  range: string;
  commits: AuditedCommit[];
  /** No bundle failed (commits without a bundle are listed, not failed). */
  ok: boolean;
}

export interface AuditOptions {
  /** Trusted public keys: each bundle must then carry a valid signature by one of them. */
  trusted?: readonly TrustedKey[];
}

export function auditRange(repo: string, range: string, opts: AuditOptions = {}): AuditReport {
  const { root } = repositoryRoot(repo);
  if (!range || range.startsWith('-') || /\s/.test(range))
    throw new NanoVmError(
      'E_USAGE',
      `"${range}" is not a revision range (e.g. main..nano-vm/dev-agent/<run>, or HEAD~3..HEAD)`,
    );
  const list = gitRaw(root, ['rev-list', '--reverse', range, '--']);
  if (list.status !== 0)
    throw new NanoVmError('E_USAGE', `"${range}" is not a revision range of ${root}: ${list.stderr.trim()}`);
  const commits = list.stdout
    .split('\n')
    .filter(Boolean)
    .map((sha) => auditCommit(root, sha, opts));
  return { range, commits, ok: commits.every((c) => c.verdict !== 'failed') };
}

function auditCommit(root: string, sha: string, opts: AuditOptions): AuditedCommit {
  const subject = git(root, ['log', '-1', '--format=%s', sha]).trim();
  const base: AuditedCommit = {
    commit: sha,
    subject,
    bundle: false,
    verdict: 'none',
    run_id: null,
    head_hash: null,
    signed_by: null,
    problems: [],
  };
  const note = gitRaw(root, ['notes', `--ref=${NOTES_REF}`, 'show', sha]);
  if (note.status !== 0) return base;
  const c: AuditedCommit = { ...base, bundle: true };
  const problem = (p: string): AuditedCommit => {
    c.problems.push(p);
    c.verdict = 'failed';
    return c;
  };
  let bundle: Bundle;
  try {
    bundle = parseJsonText(note.stdout) as Bundle;
  } catch (e) {
    return problem(`the note is not a JSON bundle: ${(e as Error).message}`);
  }
  if (opts.trusted?.length) {
    const sigNote = gitRaw(root, ['notes', `--ref=${SIGNATURE_NOTES_REF}`, 'show', sha]);
    let signature: unknown;
    try {
      signature = sigNote.status === 0 ? parseJsonText(sigNote.stdout) : undefined;
    } catch {
      signature = sigNote.stdout;
    }
    const r = verifySignedBundle(bundle, signature, opts.trusted, nodeHasher);
    if (!r.ok) return problem(`${r.code}: ${r.reason}`);
    c.signed_by = r.key_id;
  } else {
    const r = verifyBundle(bundle, nodeHasher);
    if (!r.ok) return problem(`${r.code}: ${r.reason}${r.first_bad_seq !== null ? ` (event ${r.first_bad_seq})` : ''}`);
  }
  c.head_hash = bundle.receipt.head_hash;
  c.run_id = bundle.receipt.run_id;
  if (bundle.program.id !== DEV_AGENT_PROGRAM_ID)
    problem(`the bundle is of program '${bundle.program.id}', not the dev agent`);
  if (bundle.receipt.outcome !== COMMITTED)
    problem(`the run ended ${bundle.receipt.outcome ?? bundle.receipt.status}, not COMMITTED`);
  const done = (step: string) =>
    bundle.events.filter((e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === step);
  const commitOut = done('commit').at(-1)?.output as
    { commit?: string; parent?: string; trace_head?: string } | undefined;
  if (commitOut?.commit !== sha) problem(`the run committed ${commitOut?.commit ?? 'nothing'}, not this commit`);
  const parent = git(root, ['rev-parse', `${sha}^`]).trim();
  if (commitOut?.parent !== parent)
    problem(`the run worked on ${commitOut?.parent ?? '?'}, but the commit's parent is ${parent}`);
  const stage = done('stage').at(-1)?.output as { diff?: string; diff_sha256?: string; applied?: boolean } | undefined;
  const diff = git(root, [...DIFF_ARGS, parent, sha]);
  if (!stage?.applied || stage.diff !== diff)
    problem(
      `the diff the run staged and checked (sha256 ${stage?.diff_sha256 ?? '-'}) is not the commit's diff (sha256 ${createHash('sha256').update(diff).digest('hex')})`,
    );
  const message = git(root, ['log', '-1', '--format=%B', sha]);
  // The last of each: trailers end the message.
  const runTrailer = [...message.matchAll(/^Nano-VM-Run: (.+)$/gm)].at(-1)?.[1];
  const headTrailer = [...message.matchAll(/^Nano-VM-Trace-Head: (.+)$/gm)].at(-1)?.[1];
  if (runTrailer !== c.run_id)
    problem(`the commit message names run ${runTrailer ?? 'none'}, the bundle is run ${c.run_id}`);
  if (!headTrailer || !bundle.events.some((e) => e.hash === headTrailer) || headTrailer !== commitOut?.trace_head)
    problem(`the commit message's trace head ${headTrailer ?? 'none'} is not the run's trace at the commit`);
  if (c.problems.length === 0) c.verdict = 'verified';
  return c;
}
