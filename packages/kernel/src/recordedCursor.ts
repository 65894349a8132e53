/**
 * One cursor over a run's recorded results, used by every host that re-derives a run from its
 * trace: replay (and counterfactual replay), recovery after a crash, and resume. It hands out each
 * step's recorded results in the order a host made the calls, each recorded wait's ending, and
 * tells which tool calls had started without a stored result (recovery invokes those again).
 */
import type { EffectCommand, EffectResult, ExternalEvent, ToolCommand } from './command.js';
import type { CompiledProgram } from './compiledProgram.js';
import type { TraceEvent } from './events.js';
import { NanoVmError } from './errors.js';
import type { Machine } from './machine.js';
import type { Redactor } from './redact.js';
import { retryOf } from './successor.js';

/** What ended a recorded wait: the delivered event, or its timeout. */
export type RecordedWait = { timed_out: false; event: ExternalEvent } | { timed_out: true };

const keyOf = (step: string, parent?: string) => (parent === undefined ? step : `${parent}/${step}`);

export class RecordedCursor {
  private readonly results = new Map<string, EffectResult[]>();
  private readonly taken = new Map<string, number>();
  private readonly waits: RecordedWait[] = [];
  /** `key#attempt` of every tool call whose step_started is recorded. */
  private readonly startedCalls = new Set<string>();

  /** `reveal`: results were recorded with sensitive values as commitments; a host with the vault reveals them. */
  constructor(
    events: readonly TraceEvent[],
    private readonly cp: CompiledProgram,
    reveal?: Redactor,
  ) {
    for (const e of events) {
      switch (e.type) {
        case 'step_started':
          if (e.idempotency_key !== undefined) this.startedCalls.add(`${e.idempotency_key}#${e.attempt}`);
          break;
        case 'step_completed':
        case 'step_failed': {
          if (e.kind === 'parallel') break;
          const r = resultOf(e);
          const k = keyOf(e.step, e.parent);
          let q = this.results.get(k);
          if (!q) this.results.set(k, (q = []));
          q.push(reveal ? reveal.revealResult(r) : r);
          break;
        }
        case 'wait_timed_out':
          this.waits.push({ timed_out: true });
          break;
        case 'run_resumed': {
          const event: ExternalEvent = { payload: e.event };
          if (e.role !== undefined) event.role = e.role;
          if (e.event_id !== undefined) event.event_id = e.event_id;
          if (e.principal !== undefined) event.principal = e.principal;
          this.waits.push({ timed_out: false, event });
          break;
        }
        // Decisions the machine re-derives, and administration: no recorded result.
        case 'run_started':
        case 'run_suspended':
        case 'step_retry':
        case 'step_fallback':
        case 'condition_evaluated':
        case 'visits_exhausted':
        case 'transition_rejected':
        case 'policy_checked':
        case 'run_finished':
        case 'values_erased':
        case 'erasure_refused':
          break;
        default: {
          // A replayed bundle may be unverified (replayBundle does not verify): an unknown event holds no result.
          const _exhaustive: never = e;
          break;
        }
      }
    }
  }

  /** The next recorded result for this command's step, or undefined when the record has no more. */
  take(cmd: EffectCommand): EffectResult | undefined {
    const k = keyOf(cmd.step, cmd.parent);
    const n = this.taken.get(k) ?? 0;
    const r = this.results.get(k)?.[n];
    if (r !== undefined) this.taken.set(k, n + 1);
    return r;
  }

  /** 1-based: which result of this command's step the next `take` hands out. */
  occurrence(cmd: EffectCommand): number {
    return (this.taken.get(keyOf(cmd.step, cmd.parent)) ?? 0) + 1;
  }

  /**
   * One parallel child's recorded attempts, taken as a host would have made them (the successor's
   * retry rule says when to stop); null when the record ends before the child's last attempt.
   */
  attempts(child: EffectCommand): EffectResult[] | null {
    const rs: EffectResult[] = [];
    for (let cmd: EffectCommand | null = child; cmd !== null;) {
      const r = this.take(cmd);
      if (r === undefined) return null;
      rs.push(r);
      cmd = retryOf(this.cp, cmd, r);
    }
    return rs;
  }

  /** Whether this tool call had started before without a stored result: a re-invocation. */
  started(cmd: ToolCommand): boolean {
    return this.startedCalls.has(`${cmd.idempotency_key}#${cmd.attempt}`);
  }

  /** The next recorded wait ending, or undefined when the run was suspended there. */
  nextWait(): RecordedWait | undefined {
    return this.waits.shift();
  }

  get waitsLeft(): number {
    return this.waits.length;
  }
}

/** The result the host observed, as the step's completed or failed event records it. */
function resultOf(e: Extract<TraceEvent, { type: 'step_completed' | 'step_failed' }>): EffectResult {
  const meta: { model?: string; usage?: EffectResult['usage']; cost_usd?: number } = {};
  if (e.model !== undefined) meta.model = e.model;
  if (e.usage !== undefined) meta.usage = e.usage;
  if (e.cost_usd !== undefined) meta.cost_usd = e.cost_usd;
  // Fallbacks belong to an answer (ok: true); a failed call's message names its failures.
  const answerMeta = e.fallbacks !== undefined ? { ...meta, fallbacks: e.fallbacks } : meta;
  if (e.type === 'step_completed')
    return e.kind === 'llm' ? { ok: true, raw: e.raw ?? '', ...answerMeta } : { ok: true, value: e.output };
  if (e.kind === 'llm' && e.raw !== undefined) return { ok: true, raw: e.raw, ...answerMeta };
  if (e.kind === 'tool' && e.rejected_output !== undefined) return { ok: true, value: e.rejected_output };
  return { ok: false, error: e.error, ...meta };
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
    // Only a refusal of the event itself leaves the run suspended; anything later propagates.
    if (e instanceof NanoVmError && (e.code === 'E_RESUME_ROLE' || e.code === 'E_RESUME_EVENT_INVALID')) return false;
    throw e;
  }
}
