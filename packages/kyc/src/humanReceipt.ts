/**
 * The human-readable receipt: what a compliance officer reads, computed from the trace alone (the
 * same events `verify` checks), never from the simulator's own bookkeeping.
 */
import { computeReceipt, type JsonValue, type TraceEvent } from '@nano-vm/kernel';

export interface HumanReceipt {
  decision: string;
  status: string;
  /** Risk factors with the rule id and points the scoring step recorded. */
  factors: { rule: string; points: number; detail: string }[];
  risk: { score: number; band: string; policy: string } | null;
  /** Guards that held (condition step and expression), policy rules that allowed steps, and rules that refused something. */
  rules_fired: { seq: number; kind: 'guard' | 'policy' | 'rejected'; step: string; rule: string }[];
  list_versions: { screening?: { version: string; hash: string }; media?: { version: string; hash: string } };
  screening: { match: string; score: number; matched_id: string; pep: boolean } | null;
  review: { answer: string; fallback: boolean; rejected_answers: string[] } | null;
  reviewers: { step: string; reviewer: string; decision: string; seq: number }[];
  policy_hash: string;
  program_hash: string;
  head_hash: string;
  model: { id: string; scripted: boolean; calls: number };
  event_count: number;
}

const isObj = (v: unknown): v is Record<string, JsonValue> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The output the trace recorded for `step` (its last completion or fallback). */
function outputOf(events: readonly TraceEvent[], step: string): JsonValue | undefined {
  let out: JsonValue | undefined;
  for (const e of events)
    if ((e.type === 'step_completed' || e.type === 'step_fallback') && e.step === step && e.parent === undefined)
      out = e.output;
  return out;
}

export function humanReceipt(events: readonly TraceEvent[]): HumanReceipt {
  const r = computeReceipt(events as TraceEvent[]);
  const risk = outputOf(events, 'score_risk');
  const screen = outputOf(events, 'screen_sanctions');
  const media = outputOf(events, 'adverse_media');
  const rules: HumanReceipt['rules_fired'] = [];
  const reviewers: HumanReceipt['reviewers'] = [];
  const rejectedAnswers: string[] = [];
  let fallback = false;
  for (const e of events) {
    if (e.type === 'condition_evaluated' && e.chosen >= 0) {
      const g = e.guards[e.chosen];
      if (g) rules.push({ seq: e.seq, kind: 'guard', step: e.step, rule: g.expr });
    } else if (e.type === 'policy_checked') {
      for (const rule of e.rules) rules.push({ seq: e.seq, kind: 'policy', step: e.step, rule });
    } else if (e.type === 'transition_rejected') {
      rules.push({ seq: e.seq, kind: 'rejected', step: e.step, rule: e.rule });
    } else if (e.type === 'run_resumed' && isObj(e.event)) {
      reviewers.push({
        step: e.step,
        reviewer: String(e.event.reviewer),
        decision: String(e.event.decision),
        seq: e.seq,
      });
    } else if (e.type === 'step_failed' && e.step === 'review' && e.raw !== undefined) {
      rejectedAnswers.push(e.raw);
    } else if (e.type === 'step_fallback' && e.step === 'review') fallback = true;
  }
  const review = outputOf(events, 'review');
  return {
    decision: r.outcome ?? (r.status === 'suspended' ? 'PENDING_APPROVAL' : r.status.toUpperCase()),
    status: r.status,
    factors: isObj(risk) && Array.isArray(risk.factors) ? (risk.factors as HumanReceipt['factors']) : [],
    risk: isObj(risk) ? { score: Number(risk.score), band: String(risk.band), policy: String(risk.policy) } : null,
    rules_fired: rules,
    list_versions: {
      ...(isObj(screen) && { screening: { version: String(screen.list_version), hash: String(screen.list_hash) } }),
      ...(isObj(media) && { media: { version: String(media.corpus_version), hash: String(media.corpus_hash) } }),
    },
    screening: isObj(screen)
      ? {
          match: String(screen.match),
          score: Number(screen.score),
          matched_id: String(screen.matched_id),
          pep: screen.pep === true,
        }
      : null,
    review:
      review === undefined && !rejectedAnswers.length
        ? null
        : { answer: String(review ?? ''), fallback, rejected_answers: rejectedAnswers },
    reviewers,
    policy_hash: r.policy_hash,
    program_hash: r.program_hash,
    head_hash: r.head_hash,
    model: { id: r.model.id, scripted: r.model.scripted, calls: r.counts.model_calls },
    event_count: r.event_count,
  };
}

/** Counters shown on the page, every one computed from events. */
export function countersOf(events: readonly TraceEvent[]): Record<string, number> {
  // A refused run has no events: every counter is zero, and the receipt needs a genesis.
  const r = events.length ? computeReceipt(events as TraceEvent[]) : null;
  const count = (t: TraceEvent['type']) => events.filter((e) => e.type === t).length;
  return {
    events: events.length,
    steps: r?.counts.steps ?? 0,
    model_calls: r?.counts.model_calls ?? 0,
    tool_calls: r?.counts.tool_calls ?? 0,
    retries: r?.counts.retries ?? 0,
    failures: r?.counts.failures ?? 0,
    fallbacks: r?.counts.fallbacks ?? 0,
    blocked_actions: r?.counts.blocked_actions ?? 0,
    rejected_outputs: r?.health.rejected_outputs ?? 0,
    approvals: count('run_resumed'),
    policy_checks: count('policy_checked'),
    erasures: count('values_erased'),
    erasures_refused: count('erasure_refused'),
    input_tokens: r?.model.input_tokens ?? 0,
    output_tokens: r?.model.output_tokens ?? 0,
    approve_customer_calls: events.filter((e) => e.type === 'step_started' && e.tool === 'approve_customer').length,
  };
}
