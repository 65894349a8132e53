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
import { CompiledProgram, Machine, type EffectCommand, type EffectResult, type ExternalEvent } from './machine.js';
import type { Program } from './program.js';
import { computeReceipt, type Receipt } from './receipt.js';
import { policyOption } from './policyGate.js';
import { SealedDecisionError, type Redactor } from './redact.js';
import { reportSealedToolCalls, vaultView, type VaultEntry, type VaultReport } from './replayVault.js';

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

export const resultKey = (step: string, parent?: string) => (parent === undefined ? step : `${parent}/${step}`);

/** The results the host observed, per step, in the order they were recorded. */
export function recordedResults(events: readonly TraceEvent[], reveal?: Redactor): Map<string, EffectResult[]> {
  const out = new Map<string, EffectResult[]>();
  const push = (k: string, recorded: EffectResult) => {
    // Results were recorded with sensitive values as commitments; a host with the vault reveals them.
    const r = reveal ? reveal.revealResult(recorded) : recorded;
    let q = out.get(k);
    if (!q) out.set(k, (q = []));
    q.push(r);
  };
  for (const e of events) {
    if (e.type !== 'step_completed' && e.type !== 'step_failed') continue;
    if (e.kind === 'parallel') continue;
    const meta: { model?: string; usage?: EffectResult['usage']; cost_usd?: number } = {};
    if (e.model !== undefined) meta.model = e.model;
    if (e.usage !== undefined) meta.usage = e.usage;
    if (e.cost_usd !== undefined) meta.cost_usd = e.cost_usd;
    // Fallbacks belong to an answer (ok: true); a failed call's message names its failures.
    const answerMeta = e.fallbacks !== undefined ? { ...meta, fallbacks: e.fallbacks } : meta;
    const k = resultKey(e.step, e.parent);
    if (e.type === 'step_completed') {
      push(k, e.kind === 'llm' ? { ok: true, raw: e.raw ?? '', ...answerMeta } : { ok: true, value: e.output });
    } else if (e.kind === 'llm' && e.raw !== undefined) push(k, { ok: true, raw: e.raw, ...answerMeta });
    else if (e.kind === 'tool' && e.rejected_output !== undefined) push(k, { ok: true, value: e.rejected_output });
    else push(k, { ok: false, error: e.error, ...meta });
  }
  return out;
}

/** What ended each recorded wait, in order: the delivered event, or its timeout. */
export type RecordedWait = { timed_out: false; event: ExternalEvent } | { timed_out: true };

export function recordedWaits(events: readonly TraceEvent[]): RecordedWait[] {
  const out: RecordedWait[] = [];
  for (const e of events) {
    if (e.type === 'wait_timed_out') out.push({ timed_out: true });
    else if (e.type === 'run_resumed') {
      const event: ExternalEvent = { payload: e.event };
      if (e.role !== undefined) event.role = e.role;
      if (e.event_id !== undefined) event.event_id = e.event_id;
      out.push({ timed_out: false, event });
    }
  }
  return out;
}

/**
 * Feed a pending wait its recorded ending. Returns false when none was recorded (the run was
 * suspended there) or when the recorded event no longer fits (a counterfactual program that
 * declares another role or schema): the machine stays suspended.
 */
export function applyRecordedWait(machine: Machine, w: RecordedWait | undefined): boolean {
  if (w === undefined) return false;
  if (w.timed_out) {
    machine.expire();
    return true;
  }
  try {
    machine.resume(w.event);
    return true;
  } catch (e) {
    if (e instanceof NanoVmError) return false;
    throw e;
  }
}

/** Hands out the recorded timestamps, one per event, so replayed events carry the same ts. */
function replayClock(events: readonly TraceEvent[]): { now(): number } {
  const times = events.map((e) => Date.parse(e.ts));
  let i = 0;
  return { now: () => times[Math.min(i++, times.length - 1)] ?? 0 };
}

export function replayBundle(bundle: Bundle, opts: ReplayOptions): ReplayResult {
  const view = vaultView(bundle.events, bundle.input, opts.hasher, opts.vault);
  // Erasure events after run_finished are administration, not decisions: they are not re-derived.
  const recorded = view.runEvents;
  const genesis = recorded[0] as RunStartedEvent;
  const program = opts.program ?? bundle.program;
  const policy = opts.policy !== undefined ? opts.policy : bundle.policy;
  const counterfactual = opts.program !== undefined || opts.policy !== undefined;
  const results = recordedResults(recorded, view.redact);
  const taken = new Map<string, number>();
  let missing: MissingAnswer | null = null;

  const take = (cmd: EffectCommand): EffectResult | null => {
    const k = resultKey(cmd.step, cmd.parent);
    const n = taken.get(k) ?? 0;
    const r = results.get(k)?.[n];
    if (r === undefined) {
      missing = {
        step: cmd.step,
        ...(cmd.parent !== undefined ? { parent: cmd.parent } : {}),
        kind: cmd.type,
        occurrence: n + 1,
      };
      return null;
    }
    taken.set(k, n + 1);
    return r;
  };

  const machine = new Machine(new CompiledProgram(program), view.input, {
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

  const next = (): ReturnType<Machine['next']> | null => {
    try {
      return machine.next();
    } catch (e) {
      if (!(e instanceof SealedDecisionError)) throw e;
      missing = { step: e.step, kind: 'condition', occurrence: e.visit };
      return null;
    }
  };
  const waits = recordedWaits(recorded);
  let suspended = false;
  drive: for (;;) {
    const cmd = next();
    if (cmd === null || cmd.type === 'done') break;
    if (cmd.type === 'wait') {
      if (applyRecordedWait(machine, waits.shift())) continue;
      suspended = true;
      break;
    }
    if (cmd.type === 'parallel') {
      const all: EffectResult[][] = [];
      for (const child of cmd.children) {
        const attempts: EffectResult[] = [];
        for (let attempt = 1; ; attempt++) {
          const r = take(child);
          if (!r) break drive;
          attempts.push(r);
          if (machine.checkResult(child.step, r).ok || !machine.shouldRetry(child.step, attempt)) break;
        }
        all.push(attempts);
      }
      machine.completeParallel(all);
    } else {
      const r = take(cmd);
      if (!r) break;
      machine.complete(r);
    }
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
