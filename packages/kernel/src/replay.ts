/**
 * Replay (DESIGN.md §5): re-run the runtime's own decisions — guards, output checks, retries,
 * budgets, transitions — against the model answers and tool results recorded in a bundle. No
 * model or tool is called, so a replay cannot diverge unless the program, the policy or the
 * runtime's semantics changed; when it does, the first diverging event is named.
 *
 * Counterfactual replay runs the recorded answers against another program or policy ("would this
 * case have been approved under v3?") and reports the new path and outcome, and the first step
 * that needs an answer nobody recorded.
 */
import { canonicalJson } from './canonicalJson.js';
import type { Bundle } from './bundle.js';
import type { RunFinishedEvent, RunStartedEvent, TraceEvent } from './events.js';
import { hashJson, type Hasher } from './hash.js';
import { NanoVmError } from './errors.js';
import type { EffectCommand, EffectResult } from './command.js';
import { CompiledProgram } from './compiledProgram.js';
import { Machine } from './machine.js';
import { applyRecordedWait, RecordedCursor } from './recordedCursor.js';
import type { Program } from './program.js';
import { computeReceipt, type Receipt } from './receipt.js';
import { policyOption } from './policyGate.js';
import { SealedDecisionError, type Redactor } from './redact.js';
import { reportSealedToolCalls, vaultView, type VaultEntry, type VaultReport } from './replayVault.js';
import { checkValueLimits, MAX_BUNDLE_BYTES, MAX_DOCUMENT_DEPTH } from './limits.js';

export interface ReplayOptions {
  hasher: Hasher;
  /** Counterfactual: run the recorded answers against this program instead of the bundle's. */
  program?: Program;
  /** Counterfactual: this policy snapshot instead of the bundle's. */
  policy?: unknown;
  /** Vault rows (salt and value) of the run's sensitive inputs; without them those inputs are sealed. */
  vault?: readonly VaultEntry[];
}

export interface Divergence {
  seq: number;
  /** JSON pointer of the first differing member inside the event ('' when one side is missing). */
  field: string;
  recorded: unknown;
  replayed: unknown;
}

export interface MissingAnswer {
  step: string;
  parent?: string;
  /** `condition`: a decision that reads sealed inputs and has no recorded decision to reuse. */
  kind: 'llm' | 'tool' | 'condition';
  /** 1-based: the n-th result this step needed (for a condition: its visit). */
  occurrence: number;
}

export interface ReplayResult {
  identical: boolean;
  counterfactual: boolean;
  first_divergence: Divergence | null;
  /** Set when the replayed run needed a result that the bundle does not hold; the replay stops there. */
  missing: MissingAnswer | null;
  /** 'suspended': the replayed run waits for an event the bundle does not hold (as the recorded run did, when identical). */
  status: RunFinishedEvent['status'] | 'suspended' | 'incomplete';
  outcome: string | null;
  path: string[];
  recorded_path: string[];
  recorded_outcome: string | null;
  head_hash: string;
  recorded_head_hash: string;
  events: TraceEvent[];
  receipt: Receipt;
  /** Sensitive inputs: which were sealed or tombstoned and which decisions read them (null: none). */
  vault: VaultReport | null;
}

/** Hands out the recorded timestamps, one per event, so replayed events carry the same ts. */
function replayClock(events: readonly TraceEvent[]): { now(): number } {
  const times = events.map((e) => Date.parse(e.ts));
  let i = 0;
  return { now: () => times[Math.min(i++, times.length - 1)] ?? 0 };
}

export function replayBundle(bundle: Bundle, opts: ReplayOptions): ReplayResult {
  checkValueLimits(bundle, 'the bundle', MAX_DOCUMENT_DEPTH, MAX_BUNDLE_BYTES);
  const view = vaultView(bundle.events, bundle.input, opts.hasher, opts.vault);
  // Erasure events after run_finished are administration, not decisions: they are not re-derived.
  const recorded = view.runEvents;
  const genesis = recorded[0] as RunStartedEvent;
  const program = opts.program ?? bundle.program;
  const policy = opts.policy !== undefined ? opts.policy : bundle.policy;
  const counterfactual = opts.program !== undefined || opts.policy !== undefined;
  const cp = new CompiledProgram(program);
  const cursor = new RecordedCursor(recorded, cp, view.redact);
  let missing: MissingAnswer | null = null;
  const missingFor = (cmd: EffectCommand): MissingAnswer => ({
    step: cmd.step,
    ...(cmd.parent !== undefined ? { parent: cmd.parent } : {}),
    kind: cmd.type,
    occurrence: cursor.occurrence(cmd),
  });

  const machine = new Machine(cp, view.input, {
    runId: genesis.run_id,
    hasher: opts.hasher,
    clock: replayClock(recorded),
    runtimeVersion: genesis.runtime_version,
    model: genesis.model,
    policyHash: hashJson(opts.hasher, policy ?? null),
    ...policyOption(policy, program, opts.hasher),
    // The genesis commits to the bundle's (redacted) input; the machine works on the unsealed one.
    ...(view.redact ? { redact: view.redact, inputHash: hashJson(opts.hasher, bundle.input) } : {}),
    ...(view.sealed ? { sealed: view.sealed } : {}),
  });

  let suspended = false;
  try {
    for (;;) {
      const cmd = machine.next();
      if (cmd.type === 'done') break;
      if (cmd.type === 'wait') {
        if (applyRecordedWait(machine, cursor.nextWait())) continue;
        suspended = true;
        break;
      }
      if (cmd.type === 'parallel') {
        const all: EffectResult[][] = [];
        for (const child of cmd.children) {
          const attempts = cursor.attempts(child);
          if (attempts === null) {
            missing = missingFor(child);
            break;
          }
          all.push(attempts);
        }
        if (missing) break;
        machine.completeParallel(all);
      } else {
        const r = cursor.take(cmd);
        if (!r) {
          missing = missingFor(cmd);
          break;
        }
        machine.complete(r);
      }
    }
  } catch (e) {
    if (!(e instanceof SealedDecisionError)) throw e;
    missing = { step: e.step, kind: 'condition', occurrence: e.visit };
  }

  const events = machine.events;
  const receipt = computeReceipt(events);
  const recordedReceipt = computeReceipt(recorded);
  const first_divergence = firstDivergence(recorded, events);
  if (view.report) reportSealedToolCalls(view.report, program, events);
  return {
    identical: first_divergence === null && missing === null,
    counterfactual,
    first_divergence,
    missing,
    status: machine.result?.status ?? (suspended ? 'suspended' : 'incomplete'),
    outcome: machine.result?.outcome ?? null,
    path: receipt.path,
    recorded_path: recordedReceipt.path,
    recorded_outcome: recordedReceipt.outcome,
    head_hash: receipt.head_hash,
    recorded_head_hash: recordedReceipt.head_hash,
    events,
    receipt,
    vault: view.report,
  };
}

function firstDivergence(recorded: readonly TraceEvent[], replayed: readonly TraceEvent[]): Divergence | null {
  const n = Math.max(recorded.length, replayed.length);
  for (let i = 0; i < n; i++) {
    const a = recorded[i];
    const b = replayed[i];
    if (a === undefined || b === undefined) return { seq: i, field: '', recorded: a ?? null, replayed: b ?? null };
    if (a.hash === b.hash) continue;
    const field = differingMember(a as unknown as Record<string, unknown>, b as unknown as Record<string, unknown>);
    return { seq: i, field, recorded: a, replayed: b };
  }
  return null;
}

/** The first member (sorted by name, hashes last) whose canonical value differs. */
function differingMember(a: Record<string, unknown>, b: Record<string, unknown>): string {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort(
    (x, y) => rank(x) - rank(y) || (x < y ? -1 : 1),
  );
  for (const k of names) {
    const ca = a[k] === undefined ? undefined : canonicalJson(a[k]);
    const cb = b[k] === undefined ? undefined : canonicalJson(b[k]);
    if (ca !== cb) return `/${k}`;
  }
  return '';
}

/** prev_hash and hash differ downstream of any change: report the member that changed first. */
const rank = (k: string) => (k === 'hash' ? 2 : k === 'prev_hash' ? 1 : 0);
