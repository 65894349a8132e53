/**
 * Receipt = f(events). Never written by a model or by hand: `verify` recomputes it from the
 * trace and rejects a bundle whose receipt differs.
 */
import { canonicalJson } from './canonicalJson.js';
import { NanoVmError } from './errors.js';
import type { ErrorInfo, RunStartedEvent, RunStatus, StepStartedEvent, TraceEvent } from './events.js';
import { RECEIPT_FORMAT } from './events.js';

export interface RejectedTransition {
  seq: number;
  step: string;
  requested: string;
  rule: string;
}

/**
 * Per-run health (docs/analyzer.md): counts and ratios only, no thresholds, so a receipt never
 * changes when an operator tunes the analyzer's alerts. Ratios are one IEEE-754 double division
 * (0 when the denominator is 0), so every verifier recomputes them bit for bit.
 */
export interface RunHealth {
  /** Step visits: the receipt's counts.steps plus the visits of parallel children. */
  visits: number;
  /** counts.retries / visits. */
  retry_density: number;
  /** Tool calls with the same tool and canonical arguments as an earlier call of the run. */
  repeated_tool_calls: number;
  /** repeated_tool_calls / counts.tool_calls. */
  tool_churn: number;
  /** Model answers the typed output check rejected (E_OUTPUT_NOT_IN_ENUM, E_OUTPUT_MALFORMED, E_OUTPUT_SCHEMA). */
  rejected_outputs: number;
  /** Tool arguments or results that failed their typed check, and guards that did not evaluate to a bool. */
  failed_checks: number;
  /** rejected_outputs + failed_checks + counts.blocked_actions. */
  invariant_violations: number;
  /** invariant_violations / visits. */
  invariant_violation_rate: number;
}

const REJECTED_OUTPUT: ReadonlySet<string> = new Set(['E_OUTPUT_NOT_IN_ENUM', 'E_OUTPUT_MALFORMED', 'E_OUTPUT_SCHEMA']);
const FAILED_TOOL_CHECK: ReadonlySet<string> = new Set([
  'E_TOOL_INPUT_SCHEMA',
  'E_TOOL_OUTPUT_SCHEMA',
  'E_TOOL_OUTPUT_NOT_JSON',
]);
const ratio = (n: number, d: number): number => (d === 0 ? 0 : n / d);

/** What the genesis event commits to; the receipt repeats it. */
export type RunCommitments = Pick<
  RunStartedEvent,
  'run_id' | 'program_id' | 'program_hash' | 'policy_hash' | 'input_hash' | 'runtime_version'
>;

export interface Receipt extends RunCommitments {
  format: typeof RECEIPT_FORMAT;
  /** `suspended` while the trace ends at a wait step; `running` when it has no run_finished event yet otherwise. */
  status: RunStatus | 'running';
  outcome: string | null;
  error: (ErrorInfo & { step?: string }) | null;
  budget: { name: string; limit: number; used: number } | null;
  /** Top-level steps entered, in order (conditions and the end step included). */
  path: string[];
  counts: {
    steps: number;
    model_calls: number;
    tool_calls: number;
    retries: number;
    failures: number;
    fallbacks: number;
    blocked_actions: number;
  };
  rejected_transitions: RejectedTransition[];
  model: { id: string; scripted: boolean; input_tokens: number; output_tokens: number; cost_usd: number };
  started_at: string;
  finished_at: string | null;
  event_count: number;
  head_hash: string;
  health: RunHealth;
  /** Present only when the trace has erasure events after run_finished (docs/privacy.md). */
  erasure?: ErasureSummary;
}

/** The administrative events after run_finished: what was erased, and what a legal hold kept. */
export interface ErasureSummary {
  /** Input paths whose values were erased, in path order (each once). */
  erased_paths: string[];
  /** Refusals: the seq of each erasure_refused event and the hold that refused it. */
  refused: { seq: number; hold: string }[];
}

/** A trace that does not start with its genesis event has no receipt. */
export class ReceiptError extends NanoVmError {
  constructor(message: string) {
    super('E_NO_GENESIS', message, { location: { seq: 0 } });
  }
}

export function computeReceipt(events: readonly TraceEvent[]): Receipt {
  const g = events[0];
  if (!g || g.type !== 'run_started') throw new ReceiptError('a trace must start with a run_started event');
  const r: Receipt = {
    format: RECEIPT_FORMAT,
    run_id: g.run_id,
    program_id: g.program_id,
    program_hash: g.program_hash,
    policy_hash: g.policy_hash,
    input_hash: g.input_hash,
    runtime_version: g.runtime_version,
    status: 'running',
    outcome: null,
    error: null,
    budget: null,
    path: [],
    counts: { steps: 0, model_calls: 0, tool_calls: 0, retries: 0, failures: 0, fallbacks: 0, blocked_actions: 0 },
    rejected_transitions: [],
    model: { id: g.model.id, scripted: g.model.scripted, input_tokens: 0, output_tokens: 0, cost_usd: 0 },
    started_at: g.ts,
    finished_at: null,
    event_count: events.length,
    head_hash: events[events.length - 1]!.hash,
    health: {
      visits: 0,
      retry_density: 0,
      repeated_tool_calls: 0,
      tool_churn: 0,
      rejected_outputs: 0,
      failed_checks: 0,
      invariant_violations: 0,
      invariant_violation_rate: 0,
    },
  };
  const h = r.health;
  let childVisits = 0;
  /** A step's first attempt marks a visit: of a top-level step (on the path) or of a parallel child. */
  const visit = (e: { step: string; parent?: string }): void => {
    if (e.parent === undefined) {
      r.path.push(e.step);
      r.counts.steps++;
    } else childVisits++;
  };
  const toolStarts: StepStartedEvent[] = [];
  for (let i = 1; i < events.length; i++) {
    const e = events[i]!;
    switch (e.type) {
      case 'step_started':
        if (e.kind === 'tool') {
          r.counts.tool_calls++;
          toolStarts.push(e);
        }
        if (e.attempt === 1) visit(e);
        break;
      case 'step_completed':
      case 'step_failed':
        // An llm step has no step_started: its first attempt's result marks the visit.
        if (e.kind === 'llm') {
          r.counts.model_calls++;
          if (e.attempt === 1) visit(e);
        }
        if (e.usage) {
          r.model.input_tokens += e.usage.input_tokens;
          r.model.output_tokens += e.usage.output_tokens;
        }
        if (e.cost_usd) r.model.cost_usd += e.cost_usd;
        if (e.type === 'step_failed') {
          r.counts.failures++;
          if (REJECTED_OUTPUT.has(e.error.code)) h.rejected_outputs++;
          else if (FAILED_TOOL_CHECK.has(e.error.code)) h.failed_checks++;
        }
        break;
      case 'step_retry':
        r.counts.retries++;
        break;
      case 'step_fallback':
        r.counts.fallbacks++;
        break;
      case 'condition_evaluated':
        r.path.push(e.step);
        r.counts.steps++;
        // An empty next: a guard failed to evaluate, or gave a non-bool (the run stopped there).
        if (e.next === '') h.failed_checks++;
        break;
      case 'run_suspended':
        r.path.push(e.step);
        r.counts.steps++;
        r.status = 'suspended';
        break;
      case 'run_resumed':
      case 'wait_timed_out':
        r.status = 'running';
        break;
      case 'transition_rejected':
        r.counts.blocked_actions++;
        r.rejected_transitions.push({ seq: e.seq, step: e.step, requested: e.requested, rule: e.rule });
        break;
      case 'run_finished':
        r.status = e.status;
        r.outcome = e.outcome ?? null;
        r.error = e.error ?? null;
        r.budget = e.budget ?? null;
        r.finished_at = e.ts;
        if (e.step !== undefined) r.path.push(e.step);
        break;
      case 'values_erased':
        (r.erasure ??= { erased_paths: [], refused: [] }).erased_paths = [
          ...new Set([...r.erasure.erased_paths, ...e.paths]),
        ].sort();
        break;
      case 'erasure_refused':
        (r.erasure ??= { erased_paths: [], refused: [] }).refused.push({ seq: e.seq, hold: e.hold });
        break;
      // Nothing here that a receipt counts (the genesis is read before the loop).
      case 'run_started':
      case 'visits_exhausted':
      case 'policy_checked':
        break;
      default: {
        // Receipts are also computed for bundles not (yet) verified, whose events may be of any
        // type: an unknown one is skipped, as verification reports it.
        const _exhaustive: never = e;
        break;
      }
    }
  }
  h.repeated_tool_calls = repeatedToolCalls(toolStarts);
  h.visits = r.counts.steps + childVisits;
  h.retry_density = ratio(r.counts.retries, h.visits);
  h.tool_churn = ratio(h.repeated_tool_calls, r.counts.tool_calls);
  h.invariant_violations = h.rejected_outputs + h.failed_checks + r.counts.blocked_actions;
  h.invariant_violation_rate = ratio(h.invariant_violations, h.visits);
  return r;
}

/**
 * Tool calls with the same tool and the same canonical arguments as an earlier call. Arguments
 * are encoded only for tools called more than once, so a run that calls each tool once (most
 * runs) encodes none; the count is the same as comparing every call with every earlier one.
 */
function repeatedToolCalls(starts: readonly StepStartedEvent[]): number {
  if (starts.length < 2 || (starts.length <= 8 && !sameToolTwice(starts))) return 0;
  const byTool = new Map<string, StepStartedEvent[]>();
  for (const e of starts) {
    const k = e.tool ?? '';
    const group = byTool.get(k);
    if (group) group.push(e);
    else byTool.set(k, [e]);
  }
  let repeated = 0;
  for (const group of byTool.values()) {
    if (group.length < 2) continue;
    const seen = new Set<string>();
    for (const e of group) {
      const args = canonicalJson(e.args ?? null);
      if (seen.has(args)) repeated++;
      else seen.add(args);
    }
  }
  return repeated;
}

/** Whether two calls name the same tool (a scan that allocates nothing, for short runs). */
function sameToolTwice(starts: readonly StepStartedEvent[]): boolean {
  for (let i = 1; i < starts.length; i++) {
    const tool = starts[i]!.tool ?? '';
    for (let j = 0; j < i; j++) if ((starts[j]!.tool ?? '') === tool) return true;
  }
  return false;
}
