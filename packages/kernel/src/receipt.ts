/**
 * Receipt = f(events). Never written by a model or by hand: `verify` recomputes it from the
 * trace and rejects a bundle whose receipt differs.
 */
import type { ErrorInfo, RunStartedEvent, RunStatus, TraceEvent } from './events.js';
import { RECEIPT_FORMAT } from './events.js';

export interface RejectedTransition {
  seq: number;
  step: string;
  requested: string;
  rule: string;
}

/** What the genesis event commits to; the receipt repeats it. */
export type RunCommitments = Pick<RunStartedEvent, 'run_id' | 'program_id' | 'program_hash' | 'policy_hash' | 'input_hash' | 'runtime_version'>;

export interface Receipt extends RunCommitments {
  format: typeof RECEIPT_FORMAT;
  /** `running` when the trace has no run_finished event yet. */
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
}

export class ReceiptError extends Error {
  readonly code = 'E_NO_GENESIS';
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
  };
  for (let i = 1; i < events.length; i++) {
    const e = events[i]!;
    switch (e.type) {
      case 'step_started':
        if (e.kind === 'tool') r.counts.tool_calls++;
        if (e.parent === undefined && e.attempt === 1) {
          r.path.push(e.step);
          r.counts.steps++;
        }
        break;
      case 'step_completed':
      case 'step_failed':
        // An llm step has no step_started: its first attempt's result marks the visit.
        if (e.kind === 'llm') {
          r.counts.model_calls++;
          if (e.parent === undefined && e.attempt === 1) {
            r.path.push(e.step);
            r.counts.steps++;
          }
        }
        if (e.usage) {
          r.model.input_tokens += e.usage.input_tokens;
          r.model.output_tokens += e.usage.output_tokens;
        }
        if (e.cost_usd) r.model.cost_usd += e.cost_usd;
        if (e.type === 'step_failed') r.counts.failures++;
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
      default:
        break;
    }
  }
  return r;
}
