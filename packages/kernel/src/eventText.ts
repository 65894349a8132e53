/**
 * The RFC 8785 text of an event (without `hash`) for the chain, written member by member for the
 * event types a run writes most. V8's JSON.stringify walks an event's members about four times
 * slower than concatenating its known members in their known canonical order, and the event text is
 * the largest per-step cost of a run. Nested values (outputs, arguments, guard explanations) still go
 * through canonicalJson, and every string member through `quote`, so the text is exactly what the
 * generic encoder writes: verifyBundle recomputes every hash with the generic encoder, and the tests
 * compare the two on generated events of every type.
 *
 * Only events built by eventBodies.ts reach this (they have no members beyond their type's); any
 * other type falls back to the generic encoder. Hashes (lowercase hex from the Hasher) and `ts`
 * (the machine's own ISO-8601 formatting) never need escaping and are written as they are.
 */
import { canonicalJson, quote } from './canonicalJson.js';
import { NanoVmError } from './errors.js';
import { memoByString } from './memo.js';
import type {
  ConditionEvaluatedEvent,
  GuardResult,
  RunFinishedEvent,
  RunStartedEvent,
  StepCompletedEvent,
  StepFailedEvent,
  StepRetryEvent,
  StepStartedEvent,
  TraceEvent,
} from './events.js';

// Step ids, kinds, tool names, outcomes and the like come from the program and repeat in every
// run: keep their quoted form (a map lookup instead of an escape test and a new string per member).
// Values unique to a run (run id, idempotency key, model answers) are quoted each time.
const MAX_NAMES = 4096;
const name = memoByString(MAX_NAMES, quote);

const num = (n: number): string => (Number.isFinite(n) ? (n === 0 ? '0' : String(n)) : canonicalJson(n));
/** `,"key":value` for an optional member, '' when absent. */
const optStr = (key: string, v: string | undefined): string => (v === undefined ? '' : `,"${key}":${quote(v)}`);
/** optStr for a program-derived name. */
const optName = (key: string, v: string | undefined): string => (v === undefined ? '' : `,"${key}":${name(v)}`);
const optVal = (key: string, v: unknown): string => (v === undefined ? '' : `,"${key}":${canonicalJson(v)}`);
const optNum = (key: string, v: number | undefined): string => (v === undefined ? '' : `,"${key}":${num(v)}`);
/** `"key":value,` for an optional member written before a required one. */
const preVal = (key: string, v: unknown): string => (v === undefined ? '' : `"${key}":${canonicalJson(v)},`);
const tail = (e: TraceEvent): string =>
  `,"seq":${num(e.seq)},"step":${name((e as { step: string }).step)},"ts":"${e.ts}","type":"${e.type}"`;

/** `outputText`: the canonical text of the event's `output` when the caller already has it. */
export function eventText(e: TraceEvent, outputText?: string): string {
  switch (e.type) {
    case 'step_completed':
      return stepCompleted(e, outputText);
    case 'step_started':
      return stepStarted(e);
    case 'condition_evaluated':
      return conditionEvaluated(e);
    case 'run_started':
      return runStarted(e);
    case 'run_finished':
      return runFinished(e);
    case 'step_failed':
      return stepFailed(e);
    case 'step_retry':
      return stepRetry(e);
    // Rare events: the generic encoder.
    case 'run_suspended':
    case 'run_resumed':
    case 'wait_timed_out':
    case 'step_fallback':
    case 'visits_exhausted':
    case 'transition_rejected':
    case 'policy_checked':
    case 'values_erased':
    case 'erasure_refused': {
      const { hash: _omit, ...rest } = e;
      return canonicalJson(rest);
    }
    default: {
      const _exhaustive: never = e;
      throw new NanoVmError('E_INTERNAL', `eventText: unknown event type ${(_exhaustive as TraceEvent).type}`);
    }
  }
}

function stepCompleted(e: StepCompletedEvent, outputText: string | undefined): string {
  return (
    `{"attempt":${num(e.attempt)},"changed":${e.changed ? 'true' : 'false'}${optNum('cost_usd', e.cost_usd)}${optVal('fallbacks', e.fallbacks)},"kind":${name(e.kind)}` +
    `${optName('model', e.model)}${optName('next', e.next)},"output":${outputText ?? canonicalJson(e.output)}${optStr('parent', e.parent)}` +
    `,"prev_hash":"${e.prev_hash}"${e.projection_hash === undefined ? '' : `,"projection_hash":"${e.projection_hash}"`}${optStr('raw', e.raw)}` +
    `${tail(e)}${optVal('usage', e.usage)}${optNum('visit', e.visit)}}`
  );
}

function stepStarted(e: StepStartedEvent): string {
  return (
    `{${preVal('args', e.args)}"attempt":${num(e.attempt)}${optStr('idempotency_key', e.idempotency_key)},"kind":${name(e.kind)}` +
    `${optName('parent', e.parent)},"prev_hash":"${e.prev_hash}","seq":${num(e.seq)},"step":${name(e.step)}${optName('tool', e.tool)}` +
    `,"ts":"${e.ts}","type":"step_started","visit":${num(e.visit)}}`
  );
}

function stepFailed(e: StepFailedEvent): string {
  return (
    `{"attempt":${num(e.attempt)}${optNum('cost_usd', e.cost_usd)},"error":${canonicalJson(e.error)}${optVal('fallbacks', e.fallbacks)},"kind":${name(e.kind)}` +
    `${optName('model', e.model)}${optName('parent', e.parent)},"prev_hash":"${e.prev_hash}"${e.projection_hash === undefined ? '' : `,"projection_hash":"${e.projection_hash}"`}` +
    `${optStr('raw', e.raw)}${optVal('rejected_output', e.rejected_output)}${tail(e)}${optVal('usage', e.usage)}${optNum('visit', e.visit)}}`
  );
}

function stepRetry(e: StepRetryEvent): string {
  return `{"attempt":${num(e.attempt)},"max_attempts":${num(e.max_attempts)}${optName('parent', e.parent)},"prev_hash":"${e.prev_hash}"${tail(e)}}`;
}

function conditionEvaluated(e: ConditionEvaluatedEvent): string {
  return `{"chosen":${num(e.chosen)},"guards":${guardsText(e.guards)},"next":${name(e.next)},"prev_hash":"${e.prev_hash}"${tail(e)},"visit":${num(e.visit)}}`;
}

function runStarted(e: RunStartedEvent): string {
  return (
    `{"input_hash":"${e.input_hash}","model":${canonicalJson(e.model)},"policy_hash":"${e.policy_hash}","prev_hash":"${e.prev_hash}"` +
    `,"program_hash":"${e.program_hash}","program_id":${name(e.program_id)},"run_id":${quote(e.run_id)},"runtime_version":${name(e.runtime_version)}` +
    `,"seq":${num(e.seq)},"ts":"${e.ts}","type":"run_started"}`
  );
}

function runFinished(e: RunFinishedEvent): string {
  return (
    `{${preVal('budget', e.budget)}${preVal('error', e.error)}${e.outcome === undefined ? '' : `"outcome":${name(e.outcome)},`}"prev_hash":"${e.prev_hash}"` +
    `,"seq":${num(e.seq)},"status":${name(e.status)}${optName('step', e.step)},"ts":"${e.ts}","type":"run_finished"}`
  );
}

const GUARD_MEMBERS = ['case', 'cost', 'error', 'explain', 'expr', 'value'];
const EXPLAIN_MEMBERS = ['expr', 'value'];

/** True when `o` is a plain object whose enumerable members are exactly `names`, in that order. */
function hasMembers(o: object, names: readonly string[]): boolean {
  if (Object.getPrototypeOf(o) !== Object.prototype) return false;
  let i = 0;
  for (const k in o) if (k !== names[i++]) return false;
  return i === names.length;
}

const valueText = (v: unknown): string =>
  typeof v === 'number'
    ? num(v)
    : typeof v === 'string'
      ? quote(v)
      : typeof v === 'boolean'
        ? v
          ? 'true'
          : 'false'
        : v === null
          ? 'null'
          : canonicalJson(v);

/**
 * A condition's guards member by member: walking them with JSON.stringify was a third of the cost
 * of a condition_evaluated event. Guards and explanations the machine built (ev.guardResult,
 * flattenWhy) have exactly the members written here; anything else (guards replayed from a stored
 * trace) takes the generic encoder.
 */
function guardsText(gs: readonly GuardResult[]): string {
  if (!Array.isArray(gs)) return canonicalJson(gs);
  let out = '[';
  for (let i = 0; i < gs.length; i++) {
    const g = gs[i]!;
    // (the generic encoder omits undefined members; these writers would not)
    if (
      g === null ||
      typeof g !== 'object' ||
      !hasMembers(g, GUARD_MEMBERS) ||
      typeof g.expr !== 'string' ||
      !Array.isArray(g.explain) ||
      g.case === undefined ||
      g.cost === undefined ||
      g.value === undefined
    )
      return canonicalJson(gs);
    out += `${i ? ',' : ''}{"case":${num(g.case)},"cost":${num(g.cost)}${optVal('error', g.error)},"explain":[`;
    for (let j = 0; j < g.explain.length; j++) {
      const x = g.explain[j]!;
      if (
        x === null ||
        typeof x !== 'object' ||
        !hasMembers(x, EXPLAIN_MEMBERS) ||
        typeof x.expr !== 'string' ||
        x.value === undefined
      )
        return canonicalJson(gs);
      out += `${j ? ',' : ''}{"expr":${name(x.expr)},"value":${valueText(x.value)}}`;
    }
    out += `],"expr":${name(g.expr)},"value":${valueText(g.value)}}`;
  }
  return out + ']';
}
