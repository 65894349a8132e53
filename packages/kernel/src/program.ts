/**
 * The program model (DSL v1). A program is data: a set of steps with explicit edges, an input
 * schema, budgets and declared projections. `program.schema.json` is the machine-readable form of
 * these types; docs/dsl.md is the reference.
 *
 * Run state seen by guards, projections and tool args:
 *   { input: <run input>, steps: { <step id>: { output: <that step's last output> } } }
 * A path such as `input.customer.country` or `steps.classify.output` names a value in that state.
 */
import { setMember } from './dataMember.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
export type JsonSchema = { [k: string]: unknown } | boolean;

export const PROGRAM_FORMAT = 'nano-vm.program/v1';

export interface Budgets {
  max_steps?: number;
  max_tokens?: number;
  max_cost_usd?: number;
  max_wall_ms?: number;
  /** Consecutive effect steps whose output leaves the state unchanged. */
  max_stalled_steps?: number;
}

/** What happens when a step's effect fails (error, timeout, invalid output). */
export type OnError =
  | { action: 'fail' }
  | { action: 'retry'; max_attempts: number; then?: 'fail' | 'fallback'; value?: JsonValue }
  | { action: 'fallback'; value: JsonValue };

/** An llm step answers either from an enum of strings or inside a JSON Schema. */
export type LlmOutput = { enum: string[] } | { schema: JsonSchema };

interface StepBase {
  id: string;
  description?: string;
  /** Upper bound on how often the run may enter this step; required somewhere on every cycle. */
  max_visits?: number;
  /** Where to go when max_visits is exhausted; without it the run fails with E_MAX_VISITS. */
  on_exhausted?: string;
}

export interface LlmStep extends StepBase {
  kind: 'llm';
  /** Template; `{{path}}` placeholders may only name paths in `projection`. */
  prompt: string;
  /** State paths the model may see. Nothing else reaches the prompt. */
  projection: string[];
  output: LlmOutput;
  next: string;
  timeout_ms?: number;
  on_error?: OnError;
}

export interface ToolStep extends StepBase {
  kind: 'tool';
  tool: string;
  /** Argument name -> state path (string) or `{ value: <literal> }`. */
  args?: Record<string, string | { value: JsonValue }>;
  output_schema?: JsonSchema;
  next: string;
  timeout_ms?: number;
  on_error?: OnError;
}

export interface ConditionCase {
  when: string;
  next: string;
}

export interface ConditionStep extends StepBase {
  kind: 'condition';
  /** Evaluated in order; the first true guard decides. */
  cases: ConditionCase[];
  /** Taken when no case holds. */
  else: string;
}

/** A child of a parallel step: an llm or tool step without its own `next`. */
export type ParallelChild =
  Omit<LlmStep, 'next' | 'max_visits' | 'on_exhausted'> | Omit<ToolStep, 'next' | 'max_visits' | 'on_exhausted'>;

export interface ParallelStep extends StepBase {
  kind: 'parallel';
  children: ParallelChild[];
  max_concurrency?: number;
  next: string;
}

export interface EndStep extends StepBase {
  kind: 'end';
  /** Named outcome, e.g. SUCCESS, REJECTED, POLICY_BLOCKED, INSUFFICIENT_DATA. */
  outcome: string;
  /** Marks a failure outcome (a business failure, still a completed run). */
  failure?: boolean;
}

/**
 * Suspends the run until an external event arrives (a human approval, a webhook). The event's
 * payload must satisfy `event`; it becomes the step's output (`steps.<id>.output`), so guards read
 * it like any other typed output.
 */
export interface WaitStep extends StepBase {
  kind: 'wait';
  /** JSON Schema of the event payload. */
  event: JsonSchema;
  /** The role that may send the event; a resume by any other role is refused. */
  role?: string;
  /** How long the run may wait, measured from its suspension. */
  timeout_ms?: number;
  /** Where the run goes when the wait times out; without it a timed-out wait fails the run (E_WAIT_TIMEOUT). */
  on_timeout?: string;
  next: string;
}

export type Step = LlmStep | ToolStep | ConditionStep | ParallelStep | WaitStep | EndStep;
export type StepKind = Step['kind'];

export interface Program {
  format: typeof PROGRAM_FORMAT;
  id: string;
  version?: string;
  description?: string;
  input_schema: JsonSchema;
  /** Input paths whose values are masked in every prompt (e.g. `input.customer.email`). */
  sensitive?: string[];
  /** Input path naming the data subject of a run (e.g. `input.customer.email`); erasure finds its vault values by it. */
  subject?: string;
  budgets?: Budgets;
  /** First step; defaults to the first step in `steps`. */
  start?: string;
  steps: Step[];
}

export function startOf(program: Program): string | undefined {
  return program.start ?? program.steps[0]?.id;
}

/** Output type declared by a step, as a JSON Schema (used by guards and the output check). */
export function outputSchemaOf(step: Step | ParallelChild): JsonSchema | undefined {
  if (step.kind === 'llm')
    return 'enum' in step.output ? { type: 'string', enum: step.output.enum } : step.output.schema;
  if (step.kind === 'tool') return step.output_schema ?? true;
  if (step.kind === 'wait') return step.event;
  if (step.kind === 'parallel') {
    const properties: Record<string, JsonSchema> = {};
    for (const c of step.children) setMember(properties, c.id, outputSchemaOf(c) ?? true);
    return { type: 'object', properties, required: step.children.map((c) => c.id) };
  }
  return undefined;
}
