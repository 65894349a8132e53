/**
 * Constructors for every event the machine writes. Each builds one object literal with all of its
 * members — the chain's placeholders (seq, ts, prev_hash, hash) included — in RFC 8785 member
 * order, and leaves absent optional members `undefined` (every encoder skips those). So the chain
 * fills the placeholders in place and the canonical text is one native JSON.stringify (see
 * canonicalJson.ts). Member order is a performance property only: a wrong order here costs speed,
 * never correctness, because canonicalJson checks the order before it takes the fast path.
 */
import type {
  ConditionEvaluatedEvent,
  ErrorInfo,
  GuardResult,
  ModelFallback,
  RunFinishedEvent,
  RunResumedEvent,
  RunStartedEvent,
  RunSuspendedEvent,
  StepCompletedEvent,
  StepFailedEvent,
  StepFallbackEvent,
  StepRetryEvent,
  StepStartedEvent,
  Usage,
  VisitsExhaustedEvent,
  PolicyCheckedEvent,
  TransitionRejectedEvent,
  WaitTimedOutEvent,
} from './events.js';
import type { JsonValue } from './program.js';

/** `hash` is set by the chain after the text is hashed; until then it must not be encoded. */
const NO_HASH = undefined as unknown as string;

export function runStarted(f: Omit<RunStartedEvent, 'type' | 'seq' | 'ts' | 'prev_hash' | 'hash'>): RunStartedEvent {
  return {
    hash: NO_HASH,
    input_hash: f.input_hash,
    model: { id: f.model.id, scripted: f.model.scripted },
    policy_hash: f.policy_hash,
    prev_hash: '',
    program_hash: f.program_hash,
    program_id: f.program_id,
    run_id: f.run_id,
    runtime_version: f.runtime_version,
    seq: 0,
    ts: '',
    type: 'run_started',
  };
}

export function stepStarted(f: {
  step: string;
  kind: 'tool' | 'parallel';
  parent?: string | undefined;
  visit: number;
  attempt: number;
  tool?: string;
  args?: Record<string, JsonValue>;
  idempotency_key?: string;
}): StepStartedEvent {
  return {
    args: f.args,
    attempt: f.attempt,
    hash: NO_HASH,
    idempotency_key: f.idempotency_key,
    kind: f.kind,
    parent: f.parent,
    prev_hash: '',
    seq: 0,
    step: f.step,
    tool: f.tool,
    ts: '',
    type: 'step_started',
    visit: f.visit,
  } as StepStartedEvent;
}

/** What a model or tool call reported besides its result. */
export interface CallFacts {
  raw?: string | undefined;
  model?: string | undefined;
  usage?: Usage | undefined;
  cost_usd?: number | undefined;
  fallbacks?: ModelFallback[] | undefined;
  visit?: number | undefined;
  projection_hash?: string | undefined;
}

const NO_FACTS: CallFacts = {};

export function stepCompleted(
  f: {
    step: string;
    kind: 'llm' | 'tool' | 'parallel';
    parent?: string | undefined;
    attempt: number;
    output: JsonValue;
    changed: boolean;
    next?: string | undefined;
  },
  c: CallFacts = NO_FACTS,
): StepCompletedEvent {
  return {
    attempt: f.attempt,
    changed: f.changed,
    cost_usd: c.cost_usd,
    fallbacks: c.fallbacks,
    hash: NO_HASH,
    kind: f.kind,
    model: c.model,
    next: f.next,
    output: f.output,
    parent: f.parent,
    prev_hash: '',
    projection_hash: c.projection_hash,
    raw: c.raw,
    seq: 0,
    step: f.step,
    ts: '',
    type: 'step_completed',
    usage: c.usage,
    visit: c.visit,
  } as StepCompletedEvent;
}

export function stepFailed(
  f: {
    step: string;
    kind: 'llm' | 'tool';
    parent?: string | undefined;
    attempt: number;
    error: ErrorInfo;
    rejected_output?: JsonValue | undefined;
  },
  c: CallFacts,
): StepFailedEvent {
  return {
    attempt: f.attempt,
    cost_usd: c.cost_usd,
    error: { code: f.error.code, message: f.error.message },
    fallbacks: c.fallbacks,
    hash: NO_HASH,
    kind: f.kind,
    model: c.model,
    parent: f.parent,
    prev_hash: '',
    projection_hash: c.projection_hash,
    raw: c.raw,
    rejected_output: f.rejected_output,
    seq: 0,
    step: f.step,
    ts: '',
    type: 'step_failed',
    usage: c.usage,
    visit: c.visit,
  } as StepFailedEvent;
}

export function stepRetry(f: {
  step: string;
  parent?: string | undefined;
  attempt: number;
  max_attempts: number;
}): StepRetryEvent {
  return {
    attempt: f.attempt,
    hash: NO_HASH,
    max_attempts: f.max_attempts,
    parent: f.parent,
    prev_hash: '',
    seq: 0,
    step: f.step,
    ts: '',
    type: 'step_retry',
  } as StepRetryEvent;
}

export function stepFallback(f: {
  step: string;
  parent?: string | undefined;
  output: JsonValue;
  changed: boolean;
  next?: string | undefined;
}): StepFallbackEvent {
  return {
    changed: f.changed,
    hash: NO_HASH,
    next: f.next,
    output: f.output,
    parent: f.parent,
    prev_hash: '',
    seq: 0,
    step: f.step,
    ts: '',
    type: 'step_fallback',
  } as StepFallbackEvent;
}

export function guardResult(f: {
  case: number;
  cost: number;
  error?: ErrorInfo;
  explain: GuardResult['explain'];
  expr: string;
  value: JsonValue;
}): GuardResult {
  return {
    case: f.case,
    cost: f.cost,
    error: f.error,
    explain: f.explain,
    expr: f.expr,
    value: f.value,
  } as GuardResult;
}

export function conditionEvaluated(f: {
  step: string;
  visit: number;
  guards: GuardResult[];
  chosen: number;
  next: string;
}): ConditionEvaluatedEvent {
  return {
    chosen: f.chosen,
    guards: f.guards,
    hash: NO_HASH,
    next: f.next,
    prev_hash: '',
    seq: 0,
    step: f.step,
    ts: '',
    type: 'condition_evaluated',
    visit: f.visit,
  };
}

export function visitsExhausted(f: {
  step: string;
  max_visits: number;
  next?: string | undefined;
}): VisitsExhaustedEvent {
  return {
    hash: NO_HASH,
    max_visits: f.max_visits,
    next: f.next,
    prev_hash: '',
    seq: 0,
    step: f.step,
    ts: '',
    type: 'visits_exhausted',
  } as VisitsExhaustedEvent;
}

export function runSuspended(f: {
  step: string;
  visit: number;
  role?: string | undefined;
  deadline?: string | undefined;
}): RunSuspendedEvent {
  return {
    deadline: f.deadline,
    hash: NO_HASH,
    prev_hash: '',
    role: f.role,
    seq: 0,
    step: f.step,
    ts: '',
    type: 'run_suspended',
    visit: f.visit,
  } as RunSuspendedEvent;
}

export function runResumed(f: {
  step: string;
  visit: number;
  event: JsonValue;
  role?: string | undefined;
  event_id?: string | undefined;
  principal?: string | undefined;
  changed: boolean;
  next: string;
}): RunResumedEvent {
  return {
    changed: f.changed,
    event: f.event,
    event_id: f.event_id,
    hash: NO_HASH,
    next: f.next,
    prev_hash: '',
    principal: f.principal,
    role: f.role,
    seq: 0,
    step: f.step,
    ts: '',
    type: 'run_resumed',
    visit: f.visit,
  } as RunResumedEvent;
}

export function waitTimedOut(f: { step: string; visit: number; next?: string | undefined }): WaitTimedOutEvent {
  return {
    hash: NO_HASH,
    next: f.next,
    prev_hash: '',
    seq: 0,
    step: f.step,
    ts: '',
    type: 'wait_timed_out',
    visit: f.visit,
  } as WaitTimedOutEvent;
}

export function runFinished(f: Omit<RunFinishedEvent, 'type' | 'seq' | 'ts' | 'prev_hash' | 'hash'>): RunFinishedEvent {
  return {
    budget: f.budget && { limit: f.budget.limit, name: f.budget.name, used: f.budget.used },
    error:
      f.error &&
      (f.error.step !== undefined
        ? { code: f.error.code, message: f.error.message, step: f.error.step }
        : { code: f.error.code, message: f.error.message }),
    hash: NO_HASH,
    outcome: f.outcome,
    prev_hash: '',
    seq: 0,
    status: f.status,
    step: f.step,
    ts: '',
    type: 'run_finished',
  } as RunFinishedEvent;
}

export function policyChecked(f: {
  step: string;
  visit: number;
  rules: string[];
  policy_hash: string;
}): PolicyCheckedEvent {
  return {
    hash: NO_HASH,
    policy_hash: f.policy_hash,
    prev_hash: '',
    rules: f.rules,
    seq: 0,
    step: f.step,
    ts: '',
    type: 'policy_checked',
    visit: f.visit,
  };
}

export function transitionRejected(
  f: Omit<TransitionRejectedEvent, 'type' | 'seq' | 'ts' | 'prev_hash' | 'hash'>,
): TransitionRejectedEvent {
  return {
    capability: f.capability,
    granting_step: f.granting_step,
    hash: NO_HASH,
    offered_policy_hash: f.offered_policy_hash,
    parent: f.parent,
    policy_hash: f.policy_hash,
    prev_hash: '',
    reason: f.reason,
    requested: f.requested,
    rule: f.rule,
    seq: 0,
    step: f.step,
    ts: '',
    type: 'transition_rejected',
  } as TransitionRejectedEvent;
}
