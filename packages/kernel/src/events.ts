/**
 * Trace events: one discriminated union on `type`. docs/trace-format.md is the normative spec.
 * Every event carries `seq` (0-based, contiguous), `type`, `ts` (from the injected clock),
 * `prev_hash` and `hash`, where
 *   hash = SHA-256( prev_hash ‖ JCS(event without `hash`) )      (hex, UTF-8 bytes)
 * and the genesis event's prev_hash is 64 zeros.
 */
import type { JsonValue } from './program.js';

export const TRACE_FORMAT = 'nano-vm.trace/v1';
export const BUNDLE_FORMAT = 'nano-vm.bundle/v1';
export const RECEIPT_FORMAT = 'nano-vm.receipt/v1';

export type RunStatus = 'completed' | 'failed' | 'budget_exceeded' | 'stalled' | 'suspended';

export interface ErrorInfo {
  code: string;
  message: string;
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
}

interface Base {
  seq: number;
  ts: string;
  prev_hash: string;
  hash: string;
}

/** Genesis: commits to the program, policy, input and runtime version. */
export interface RunStartedEvent extends Base {
  type: 'run_started';
  run_id: string;
  program_id: string;
  program_hash: string;
  policy_hash: string;
  input_hash: string;
  runtime_version: string;
  /** The model port's id (e.g. `scripted:examples/refund/model.yaml`) and whether it is scripted. */
  model: { id: string; scripted: boolean };
}

/**
 * Written before a tool or parallel step's effect begins (write-ahead: a tool call that started
 * and has no recorded result is re-invoked with the same idempotency key on recovery). Model
 * calls have no side effects to deduplicate, so an llm step records request and answer in one
 * event (step_completed or step_failed, carrying projection_hash).
 */
export interface StepStartedEvent extends Base {
  type: 'step_started';
  step: string;
  kind: 'tool' | 'parallel';
  /** Child steps of a parallel step name their parent. */
  parent?: string;
  /** 1-based visit number of this step within the run, and attempt within the visit. */
  visit: number;
  attempt: number;
  /** tool: name, resolved arguments and the idempotency key the tool received. */
  tool?: string;
  args?: Record<string, JsonValue>;
  idempotency_key?: string;
}

export interface StepCompletedEvent extends Base {
  type: 'step_completed';
  step: string;
  kind: 'llm' | 'tool' | 'parallel';
  parent?: string;
  attempt: number;
  /** llm: 1-based visit of the step, and the hash of the projected view the model was shown (the prompt is reproducible from the program's template and that view). */
  visit?: number;
  projection_hash?: string;
  /** The typed, checked output that entered the state. */
  output: JsonValue;
  /** llm: the raw answer text, the model that gave it, usage and cost. */
  raw?: string;
  model?: string;
  usage?: Usage;
  cost_usd?: number;
  /** llm: the models of a fallback chain that failed before `model` answered, in order. */
  fallbacks?: ModelFallback[];
  /** Whether the output changed the state (drives stall detection). */
  changed: boolean;
  /** The transition taken (absent for parallel children). */
  next?: string;
}

export interface StepFailedEvent extends Base {
  type: 'step_failed';
  step: string;
  kind: 'llm' | 'tool';
  parent?: string;
  attempt: number;
  /** llm: as in step_completed. */
  visit?: number;
  projection_hash?: string;
  error: ErrorInfo;
  /** llm: the raw answer that failed the output check, when there was one. */
  raw?: string;
  /** tool: the (JSON) result that failed the output check. */
  rejected_output?: JsonValue;
  model?: string;
  usage?: Usage;
  cost_usd?: number;
  /** llm: as in step_completed. */
  fallbacks?: ModelFallback[];
}

/** A model of a fallback chain that failed before another one answered: which, and how. */
export interface ModelFallback {
  model: string;
  code: string;
  message: string;
}

export interface StepRetryEvent extends Base {
  type: 'step_retry';
  step: string;
  parent?: string;
  /** The attempt about to start (2 = first retry). */
  attempt: number;
  max_attempts: number;
}

export interface StepFallbackEvent extends Base {
  type: 'step_fallback';
  step: string;
  parent?: string;
  /** The declared fallback value that entered the state. */
  output: JsonValue;
  changed: boolean;
  next?: string;
}

export interface GuardResult {
  /** Index into `cases`; -1 never appears here (else is not a guard). */
  case: number;
  expr: string;
  value: JsonValue;
  cost: number;
  explain: { expr: string; value: JsonValue }[];
  error?: ErrorInfo;
}

export interface ConditionEvaluatedEvent extends Base {
  type: 'condition_evaluated';
  step: string;
  visit: number;
  /** The guards evaluated, in order, up to and including the one that held. */
  guards: GuardResult[];
  /** Index of the case taken, or -1 for `else`. */
  chosen: number;
  next: string;
}

export interface VisitsExhaustedEvent extends Base {
  type: 'visits_exhausted';
  step: string;
  max_visits: number;
  /** The declared on_exhausted edge, absent when the run fails instead. */
  next?: string;
}

/** A blocked action: something asked for a transition or capability it is not granted. */
export interface TransitionRejectedEvent extends Base {
  type: 'transition_rejected';
  step: string;
  requested: string;
  rule: string;
  reason: string;
  capability?: string;
  granting_step?: string;
  /** A parallel child's parent step. */
  parent?: string;
  /** Hash of the policy that decided (policy rejections; always the genesis policy_hash). */
  policy_hash?: string;
  /** rule `policy.pinned`: the hash of the different policy the host offered after genesis. */
  offered_policy_hash?: string;
}

/**
 * A policy allowed a step to be entered (written only when the run has a policy, before the
 * step's own events): the rules that allowed it, and the policy's hash, so every step carries it.
 */
export interface PolicyCheckedEvent extends Base {
  type: 'policy_checked';
  step: string;
  visit: number;
  /** Ids of the rules that allowed the entry (precedence satisfied, grants used); may be empty. */
  rules: string[];
  policy_hash: string;
}

export interface RunFinishedEvent extends Base {
  type: 'run_finished';
  status: Exclude<RunStatus, 'suspended'>;
  /** The named outcome of the end step reached (completed runs only). */
  outcome?: string;
  /** The end step reached, for completed runs. */
  step?: string;
  error?: ErrorInfo & { step?: string };
  /** Which budget ran out, for budget_exceeded and stalled. */
  budget?: { name: string; limit: number; used: number };
}

/** A wait step suspended the run; it continues when `run_resumed` (or `wait_timed_out`) follows. */
export interface RunSuspendedEvent extends Base {
  type: 'run_suspended';
  step: string;
  visit: number;
  /** The role that may send the event. */
  role?: string;
  /** When the wait times out (ISO 8601, from this event's ts plus the step's timeout_ms). */
  deadline?: string;
}

/** An external event resumed a suspended run; its payload is the wait step's output. */
export interface RunResumedEvent extends Base {
  type: 'run_resumed';
  step: string;
  visit: number;
  /** The event payload, as checked against the step's `event` schema. */
  event: JsonValue;
  /** The role that sent it, when the step declares one. */
  role?: string;
  /** The sender's id for the event (e.g. a webhook delivery id), when given. */
  event_id?: string;
  /** The authenticated principal that sent it (the MCP server's), when the host knows one. */
  principal?: string;
  changed: boolean;
  next: string;
}

/** A wait step's timeout passed before any event arrived. */
export interface WaitTimedOutEvent extends Base {
  type: 'wait_timed_out';
  step: string;
  visit: number;
  /** The step's on_timeout; absent when the run fails instead. */
  next?: string;
}

/**
 * Administrative events (docs/privacy.md): appended after run_finished by `nano-vm erase`, never
 * by the machine. A data subject's vault values of this run were erased; the commitments stay.
 */
export interface ValuesErasedEvent extends Base {
  type: 'values_erased';
  /** SHA-256 of the subject id (`sha256:<hex>`), never the id itself. */
  subject: string;
  /** The input paths whose values and salts were deleted, and their commitments, in path order. */
  paths: string[];
  commitments: string[];
}

/** Erasure of a subject's values was refused because a legal hold applies to the run. */
export interface ErasureRefusedEvent extends Base {
  type: 'erasure_refused';
  subject: string;
  /** The hold's id and reason, from the policy that applies. */
  hold: string;
  reason: string;
  /** The paths whose erasure was requested and kept. */
  paths: string[];
}

/** Event types only `nano-vm erase` appends, and only after run_finished. */
export const ADMIN_EVENT_TYPES: readonly EventType[] = ['values_erased', 'erasure_refused'];

export type TraceEvent =
  | RunStartedEvent
  | RunSuspendedEvent
  | RunResumedEvent
  | WaitTimedOutEvent
  | StepStartedEvent
  | StepCompletedEvent
  | StepFailedEvent
  | StepRetryEvent
  | StepFallbackEvent
  | ConditionEvaluatedEvent
  | VisitsExhaustedEvent
  | TransitionRejectedEvent
  | PolicyCheckedEvent
  | RunFinishedEvent
  | ValuesErasedEvent
  | ErasureRefusedEvent;

export type EventType = TraceEvent['type'];

/** An event before the chain fills in seq, ts, prev_hash and hash. */
export type EventBody = TraceEvent extends infer E ? (E extends TraceEvent ? Omit<E, keyof Base> : never) : never;

export const EVENT_TYPES: readonly EventType[] = [
  'run_started',
  'run_suspended',
  'run_resumed',
  'wait_timed_out',
  'step_started',
  'step_completed',
  'step_failed',
  'step_retry',
  'step_fallback',
  'condition_evaluated',
  'visits_exhausted',
  'transition_rejected',
  'policy_checked',
  'run_finished',
  'values_erased',
  'erasure_refused',
];
