/**
 * The successor function: the one place that decides what follows every step. Given the run state
 * and what just happened (the run began, an effect returned, parallel children finished, an
 * external event arrived, a wait expired, the host's policy changed), it returns the next state,
 * the events that record each decision, and the command the host performs next. It performs
 * nothing: no I/O, and time only from the injected clock (read exactly once per event, so a
 * replay that hands back the recorded times re-derives every decision). Run, recovery, resume,
 * replay and counterfactual replay all move a run with it.
 */
import { canonicalForm, canonicalJson, isJsonValue, sortKeys } from './canonicalJson.js';
import type {
  Clock,
  Command,
  DoneCommand,
  EffectCommand,
  EffectResult,
  ExternalEvent,
  LlmCommand,
  ParallelCommand,
  ToolCommand,
  WaitCommand,
} from './command.js';
import type { CompiledProgram, Exits, StepReads } from './compiledProgram.js';
import { stepReads } from './compiledProgram.js';
import { NanoVmError } from './errors.js';
import * as ev from './eventBodies.js';
import type { ErrorInfo, GuardResult, RunFinishedEvent, TraceEvent } from './events.js';
import { evaluateGuard } from './guard/index.js';
import { hashJson, type Hasher } from './hash.js';
import { memoByObject } from './memo.js';
import { checkEffectResult } from './outputCheck.js';
import type {
  ConditionStep,
  JsonValue,
  LlmStep,
  OnError,
  ParallelChild,
  ParallelStep,
  Step,
  ToolStep,
  WaitStep,
} from './program.js';
import { POLICY_BLOCKED_CODE, POLICY_BLOCKED_OUTCOME, POLICY_PINNED_RULE } from './policy.js';
import type { CompiledPolicy, PolicyRejection } from './policyGate.js';
import { project, renderPrompt, type ProjectedView } from './projection.js';
import { guardReadPaths, scrubEvent, SealedDecisionError, type Redactor, type SealedDecisions } from './redact.js';
import { recordOf, stateView, stepRecord, type RunState, type StepRecord } from './runState.js';
import { checkSchema, describeViolations } from './schemaCheck.js';
import type { Slots } from './slots.js';
import { isUnder, readPath } from './statePath.js';
import { setMember } from './dataMember.js';
import { checkValueLimits } from './limits.js';

/** What the successor works with besides the state: all of it fixed for the whole run. */
export interface SuccessorEnv {
  readonly cp: CompiledProgram;
  readonly runId: string;
  readonly hasher: Hasher;
  /** Read exactly once per event. */
  readonly clock: Clock;
  /** The policy the run is under: enforced before every step entry. */
  readonly policy?: CompiledPolicy | undefined;
  /** Sensitive values are written as their commitments (docs/privacy.md); the state keeps the values. */
  readonly redact?: Redactor | undefined;
  /** Replay without the vault: conditions reading these input paths take their recorded decision. */
  readonly sealed?: SealedDecisions | undefined;
  /** Turns a clock reading into an event's `ts`. */
  readonly timestamp: (ms: number) => string;
}

/** What just happened to the run. */
export type Happening =
  /** Decide from the state as it is (after genesis). */
  | { type: 'begin' }
  /** The pending llm/tool command's result. */
  | { type: 'effect'; result: EffectResult }
  /** Every attempt of every child of the pending parallel command, in declared child order. */
  | { type: 'parallel'; attempts: readonly (readonly EffectResult[])[] }
  /** The external event the pending wait is for (refused with a NanoVmError when it does not fit). */
  | { type: 'resume'; event: ExternalEvent }
  /** The pending wait's deadline passed. */
  | { type: 'expire' }
  /** The host runs under a policy whose hash differs from the one pinned at genesis. */
  | { type: 'policy_changed'; pinned: string; offered: string };

/** An event as the successor decided it: the host chains it (seq, prev_hash, hash). */
export interface EventDraft {
  readonly body: TraceEvent;
  readonly ts: string;
  /** Canonical text of the body's `output`, when the successor already has it. */
  readonly outputText?: string | undefined;
}

/** A condition decided from its record because its guards read sealed inputs (replay reports these). */
export interface SealedUse {
  seq: number;
  step: string;
  paths: string[];
}

export interface Transition {
  state: RunState;
  events: EventDraft[];
  sealedUses: readonly SealedUse[];
  /** The command the host performs next (the state's pending command); null when the run is stuck. */
  command: Command | null;
  /** A replayed condition needs a sealed decision the trace does not hold: the run cannot go on. */
  stuck?: SealedDecisionError;
  /** For a resume: whether the event was taken, or came after the deadline. */
  resumed?: 'resumed' | 'timed_out';
}

export function successor(env: SuccessorEnv, state: RunState, what: Happening): Transition {
  const d = new Deciding(env, state);
  let resumed: Transition['resumed'];
  try {
    switch (what.type) {
      case 'begin':
        if (state.pending !== null) return d.done(state.pending);
        break;
      case 'effect':
        d.completeEffect(what.result);
        break;
      case 'parallel':
        d.completeParallel(what.attempts);
        break;
      case 'resume':
        resumed = d.resume(what.event);
        break;
      case 'expire': {
        const { cmd, step } = d.pendingWait();
        d.timeOut(step, cmd, env.clock.now());
        break;
      }
      case 'policy_changed':
        if (state.finished !== null) return d.done(state.pending!);
        d.haltOnPolicyChange(what.pinned, what.offered);
        break;
      default: {
        const unknown: never = what;
        throw new NanoVmError('E_INTERNAL', `unknown happening ${JSON.stringify(unknown)}`);
      }
    }
    const command = d.s.pending ?? d.advance();
    const t = d.done(command);
    if (resumed !== undefined) t.resumed = resumed;
    return t;
  } catch (e) {
    if (!(e instanceof SealedDecisionError)) throw e;
    const t = d.done(null);
    t.stuck = e;
    return t;
  }
}

/**
 * Whether a failed attempt of an effect is tried again, and with which command: the one rule for
 * retries, used for a step, for parallel children run live, and for children's recorded attempts.
 */
export function retryOf(cp: CompiledProgram, cmd: EffectCommand, result: EffectResult): EffectCommand | null {
  const step = effectStep(cp, cmd.step);
  if (checkEffectResult(step, result).ok) return null;
  const oe = step.on_error;
  if (oe?.action !== 'retry' || cmd.attempt >= oe.max_attempts) return null;
  return cmd.type === 'llm'
    ? { ...cmd, attempt: cmd.attempt + 1, call: cmd.call + 1 }
    : { ...cmd, attempt: cmd.attempt + 1 };
}

function effectStep(cp: CompiledProgram, id: string): LlmStep | ToolStep | ParallelChild {
  const s = cp.steps.get(id) ?? cp.children.get(id);
  if (s && (s.kind === 'llm' || s.kind === 'tool')) return s;
  throw new NanoVmError('E_INTERNAL', `no llm/tool step '${id}'`);
}

/** The run state while one successor call builds it. */
type Draft = { -readonly [K in keyof RunState]: RunState[K] };

const NO_SEALED_USES: readonly SealedUse[] = Object.freeze([]);

/** One successor call's working copy of the state; the state handed in is never changed. */
class Deciding {
  private readonly cp: CompiledProgram;
  /**
   * The next state, built in place during this one call (a copy of the state handed in, made once)
   * and handed out by done(); nothing else ever holds it while it changes.
   */
  readonly s: Draft;
  readonly events: EventDraft[] = [];
  sealedUses: readonly SealedUse[] = NO_SEALED_USES;

  constructor(
    private readonly env: SuccessorEnv,
    private readonly from: RunState,
  ) {
    this.cp = env.cp;
    this.s = {
      input: from.input,
      policyView: from.policyView,
      records: from.records,
      at: from.at,
      attempt: from.attempt,
      stepsTaken: from.stepsTaken,
      tokens: from.tokens,
      cost: from.cost,
      stalled: from.stalled,
      startedAt: from.startedAt,
      suspendedAt: from.suspendedAt,
      lastMs: from.lastMs,
      seq: from.seq,
      stored: from.stored,
      pending: from.pending,
      finished: from.finished,
    };
  }

  done(command: Command | null): Transition {
    const state = this.s;
    state.seq = this.from.seq + this.events.length;
    state.pending = command;
    return { state, events: this.events, sealedUses: this.sealedUses, command };
  }

  // ------------------------------------------------------------------ state reads and writes

  private exits(id: string): Exits {
    return this.cp.exits.get(id)!;
  }

  private record(id: string): StepRecord {
    return recordOf(this.cp, this.s.records, id);
  }

  private put(id: string, r: StepRecord): void {
    this.s.records = this.s.records.set(this.cp.slot.get(id)!, r);
  }

  private view(reads: StepReads): ReturnType<typeof stateView> {
    return stateView(this.cp, this.s.records, this.from.input, this.from.policyView, reads);
  }

  /** Stores a step's output; true when it differs from what the step stored before. */
  private store(stepId: string, output: JsonValue, known?: string): boolean {
    const text = known ?? canonicalJson(output);
    const r = this.record(stepId);
    const prev = r.output;
    this.put(stepId, stepRecord(r.visits, r.calls, { value: output, text, order: prev?.order ?? this.s.stored++ }));
    return prev === undefined || prev.text !== text;
  }

  private nextCall(stepId: string): number {
    const r = this.record(stepId);
    this.put(stepId, stepRecord(r.visits, r.calls + 1, r.output));
    return r.calls + 1;
  }

  // ------------------------------------------------------------------ events

  /** Records an event (scrubbed of sensitive values when the run has any); returns its draft. */
  private emit(body: TraceEvent, outputText?: string, atMs?: number): EventDraft {
    if (this.env.redact) {
      const scrubbed = scrubEvent(this.env.redact, body, (id) => this.argSources(id));
      if (scrubbed !== body) [body, outputText] = [scrubbed, undefined];
    }
    const ms = atMs ?? this.env.clock.now();
    this.s.lastMs = ms;
    const draft: EventDraft = { body, ts: this.env.timestamp(ms), outputText };
    this.events.push(draft);
    return draft;
  }

  /** The seq the last emitted event will have once chained. */
  private lastSeq(): number {
    return this.from.seq + this.events.length - 1;
  }

  private argSources(stepId: string): ToolStep['args'] {
    const s = this.cp.steps.get(stepId) ?? this.cp.children.get(stepId);
    return s?.kind === 'tool' ? s.args : undefined;
  }

  private finish(body: Omit<RunFinishedEvent, 'seq' | 'ts' | 'prev_hash' | 'hash' | 'type'>): DoneCommand {
    // The event as recorded (a scrubbed copy when it quoted a sensitive value): the host chains
    // this very object, so the state and the done command hold the chained event.
    const finished = this.emit(ev.runFinished(body)).body as RunFinishedEvent;
    this.s.finished = finished;
    const cmd: DoneCommand = { type: 'done', event: finished };
    this.s.pending = cmd;
    return cmd;
  }

  // ------------------------------------------------------------------ entering steps

  /** The budget that has run out, if any. Checked before every step entry and every retry. */
  private exceeded(): DoneCommand | null {
    const b = this.cp.budgets;
    if (this.s.stepsTaken >= b.max_steps)
      return this.finish({
        status: 'budget_exceeded',
        budget: { limit: b.max_steps, name: 'max_steps', used: this.s.stepsTaken },
      });
    if (this.s.tokens > b.max_tokens)
      return this.finish({
        status: 'budget_exceeded',
        budget: { limit: b.max_tokens, name: 'max_tokens', used: this.s.tokens },
      });
    if (this.s.cost > b.max_cost_usd)
      return this.finish({
        status: 'budget_exceeded',
        budget: { limit: b.max_cost_usd, name: 'max_cost_usd', used: this.s.cost },
      });
    // Elapsed time as of the last recorded event: the clock is read exactly once per event, so
    // every decision is a function of the trace and a replay reproduces it.
    const wall = this.s.lastMs - this.s.startedAt;
    if (wall > b.max_wall_ms)
      return this.finish({
        status: 'budget_exceeded',
        budget: { limit: b.max_wall_ms, name: 'max_wall_ms', used: wall },
      });
    if (this.s.stalled >= b.max_stalled_steps)
      return this.finish({
        status: 'stalled',
        budget: { limit: b.max_stalled_steps, name: 'max_stalled_steps', used: this.s.stalled },
      });
    return null;
  }

  /** From the step the run is at, take every decision up to the next command for the host. */
  advance(): Command {
    for (;;) {
      const over = this.exceeded();
      if (over) return over;
      const step = this.cp.steps.get(this.s.at);
      if (!step)
        return this.finish({
          status: 'failed',
          error: { code: 'E_MISSING_TARGET', message: `no step '${this.s.at}'` },
        });
      const r = this.record(step.id);
      let visit = r.visits;
      if (this.s.attempt === 1) {
        visit++;
        if (step.max_visits !== undefined && visit > step.max_visits) {
          const onExhausted = this.exits(step.id).on_exhausted;
          this.emit(ev.visitsExhausted({ step: step.id, max_visits: step.max_visits, next: onExhausted }));
          if (onExhausted === undefined)
            return this.finish({
              status: 'failed',
              error: {
                code: 'E_MAX_VISITS',
                message: `step '${step.id}' was entered more than max_visits=${step.max_visits} times`,
                step: step.id,
              },
            });
          this.s.at = onExhausted;
          continue;
        }
        this.put(step.id, stepRecord(visit, r.calls, r.output));
        if (step.kind !== 'end') this.s.stepsTaken++;
        if (this.env.policy !== undefined && !this.admit(step, visit, this.env.policy)) return this.s.pending!;
      }
      switch (step.kind) {
        case 'end':
          return this.finish({ status: 'completed', outcome: step.outcome, step: step.id });
        case 'condition':
          if (this.evaluateCondition(step, visit)) continue;
          return this.s.pending!;
        case 'llm':
        case 'tool':
          return (this.s.pending = this.effect(step, visit, this.s.attempt));
        case 'parallel':
          return (this.s.pending = this.startParallel(step, visit));
        case 'wait':
          return (this.s.pending = this.suspend(step, visit));
        default: {
          const unknown: never = step;
          throw new NanoVmError('E_INTERNAL', `unknown step kind in ${JSON.stringify(unknown)}`);
        }
      }
    }
  }

  /** The policy gate before a step is entered (policyGate.ts); false when it stopped the run. */
  private admit(step: Step, visit: number, policy: CompiledPolicy): boolean {
    const d = policy.decideEntry(
      step,
      (id) => this.record(id).visits,
      this.view(policyReads(policy)),
      (s) => this.resolveArgs(s),
    );
    if (d.ok) {
      this.emit(ev.policyChecked({ step: step.id, visit, rules: d.rules, policy_hash: policy.hash }));
      return true;
    }
    this.blockOnPolicy({ ...d.rejection, policy_hash: policy.hash });
    return false;
  }

  /** A rejected action executes nothing: the run ends as POLICY_BLOCKED, naming the rule. */
  private blockOnPolicy(r: PolicyRejection & { policy_hash: string; offered_policy_hash?: string }): void {
    this.emit(ev.transitionRejected(r));
    this.finish({
      status: 'failed',
      outcome: POLICY_BLOCKED_OUTCOME,
      error: { code: POLICY_BLOCKED_CODE, message: `rule '${r.rule}': ${r.reason}`, step: r.parent ?? r.step },
    });
  }

  /** Nothing more runs under a policy other than the pinned one: the run halts as POLICY_BLOCKED. */
  haltOnPolicyChange(pinned: string, offered: string): void {
    this.s.pending = null;
    this.blockOnPolicy({
      step: this.s.at,
      requested: `policy:${offered}`,
      rule: POLICY_PINNED_RULE,
      reason: `the policy changed after genesis (pinned ${pinned.slice(0, 12)}…, offered ${offered.slice(0, 12)}…); a run keeps the policy it started under`,
      policy_hash: pinned,
      offered_policy_hash: offered,
    });
  }

  // ------------------------------------------------------------------ conditions

  /** Returns true when a transition was taken, false when the run finished. */
  private evaluateCondition(step: ConditionStep, visit: number): boolean {
    if (this.env.sealed) {
      const taken = this.sealedDecision(step, visit, this.env.sealed);
      if (taken !== null) return taken;
    }
    const guards = this.cp.guards.get(step.id)!;
    const state = this.view(this.cp.guardReads.get(step.id)!);
    const results: GuardResult[] = [];
    let chosen = -1;
    for (let i = 0; i < guards.length; i++) {
      const r = evaluateGuard(guards[i]!, state);
      if (!r.ok) {
        results.push(
          ev.guardResult({
            case: i,
            cost: r.cost,
            error: { code: r.error.code, message: r.error.message },
            explain: [],
            expr: guards[i]!.source,
            value: null,
          }),
        );
        this.emit(ev.conditionEvaluated({ step: step.id, visit, guards: results, chosen: -1, next: '' }));
        this.finish({
          status: 'failed',
          error: { code: r.error.code, message: `guard ${i} of '${step.id}': ${r.error.message}`, step: step.id },
        });
        return false;
      }
      results.push(
        ev.guardResult({
          case: i,
          cost: r.cost,
          explain: r.explain as GuardResult['explain'],
          expr: guards[i]!.source,
          value: r.value as JsonValue,
        }),
      );
      if (typeof r.value !== 'boolean') {
        this.emit(ev.conditionEvaluated({ step: step.id, visit, guards: results, chosen: -1, next: '' }));
        this.finish({
          status: 'failed',
          error: {
            code: 'E_GUARD_NOT_BOOL',
            message: `guard ${i} of '${step.id}' gave ${canonicalJson(r.value)}, not a bool`,
            step: step.id,
          },
        });
        return false;
      }
      if (r.value) {
        chosen = i;
        break;
      }
    }
    const exits = this.exits(step.id);
    const next = chosen === -1 ? exits.else! : exits.cases[chosen]!;
    this.emit(ev.conditionEvaluated({ step: step.id, visit, guards: results, chosen, next }));
    this.s.at = next;
    return true;
  }

  /**
   * A condition whose guards read sealed input paths, replayed from its recorded decision (the
   * values are not there to re-evaluate). null when its guards read no sealed path. A record that
   * does not fit this program's guards and edges is a decision nobody can re-derive.
   */
  private sealedDecision(step: ConditionStep, visit: number, sealed: SealedDecisions): boolean | null {
    const reads = this.cp.guards.get(step.id)!.flatMap(guardReadPaths);
    const hit = sealed.paths.filter((p) => reads.some((r) => isUnder(p, r) || isUnder(r, p)));
    if (hit.length === 0) return null;
    const rec = sealed.recorded(step.id, visit);
    const fits =
      rec !== undefined &&
      rec.guards.length <= step.cases.length &&
      rec.guards.every((g, i) => g.case === i && g.expr === step.cases[i]!.when) &&
      (rec.next === ''
        ? rec.guards.length > 0
        : rec.next === (rec.chosen === -1 ? this.exits(step.id).else : this.exits(step.id).cases[rec.chosen]));
    if (!fits)
      throw new SealedDecisionError(
        step.id,
        visit,
        `condition '${step.id}' (visit ${visit}) reads ${hit.join(', ')}, whose values are sealed in the vault or erased, and the trace records no decision of it to reuse`,
      );
    this.emit(ev.conditionEvaluated({ step: step.id, visit, guards: rec.guards, chosen: rec.chosen, next: rec.next }));
    this.sealedUses = [...this.sealedUses, { seq: this.lastSeq(), step: step.id, paths: hit }];
    if (rec.next !== '') {
      this.s.at = rec.next;
      return true;
    }
    const i = rec.guards.length - 1;
    const g = rec.guards[i]!;
    this.finish({
      status: 'failed',
      error: g.error
        ? { code: g.error.code, message: `guard ${i} of '${step.id}': ${g.error.message}`, step: step.id }
        : {
            code: 'E_GUARD_NOT_BOOL',
            message: `guard ${i} of '${step.id}' gave ${canonicalJson(g.value)}, not a bool`,
            step: step.id,
          },
    });
    return false;
  }

  // ------------------------------------------------------------------ effects

  private effect(
    step: LlmStep | ToolStep | ParallelChild,
    visit: number,
    attempt: number,
    parent?: string,
  ): EffectCommand {
    // Commands are literals with every member (absent ones undefined): one shape per command type.
    if (step.kind === 'llm') {
      const state = this.view(this.cp.effectReads.get(step.id)!.reads);
      const masked = project(state, step.projection, this.cp.sensitive);
      // A sensitive value that reached the state another way (a tool echoing it) is shown as its commitment.
      const projection = this.env.redact ? (this.env.redact.value(masked) as ProjectedView) : masked;
      const prompt = renderPrompt(step.prompt, projection);
      const cmd: LlmCommand = {
        type: 'llm',
        step: step.id,
        parent,
        visit,
        attempt,
        projection_hash: hashJson(this.env.hasher, projection),
        call: this.nextCall(step.id),
        prompt,
        projection,
        output: step.output,
        timeout_ms: step.timeout_ms,
      };
      return cmd;
    }
    const args = this.resolveArgs(step);
    // Joined into one flat string: a template literal leaves a tree of cons strings, kept by the
    // stored event and promoted by every minor GC.
    const idempotency_key = (
      parent !== undefined ? [this.env.runId, parent, step.id, visit] : [this.env.runId, step.id, visit]
    ).join('/');
    const cmd: ToolCommand = {
      type: 'tool',
      step: step.id,
      parent,
      attempt,
      tool: step.tool,
      args,
      idempotency_key,
      timeout_ms: step.timeout_ms,
    };
    this.emit(
      ev.stepStarted({ step: step.id, kind: 'tool', parent, visit, attempt, tool: step.tool, args, idempotency_key }),
    );
    return cmd;
  }

  private resolveArgs(step: ToolStep | Extract<ParallelChild, { kind: 'tool' }>): Record<string, JsonValue> {
    const out: Record<string, JsonValue> = {};
    if (!step.args) return out;
    const args = step.args;
    const { argNames: names, reads } = this.cp.effectReads.get(step.id)!;
    // The state view is made only for arguments read from the state (literals need none).
    let state: ReturnType<typeof stateView> | undefined;
    for (const name of names) {
      const src = args[name]!;
      if (typeof src === 'string') {
        const v = readPath((state ??= this.view(reads)), src);
        if (v !== undefined) setMember(out, name, v as JsonValue);
      } else setMember(out, name, src.value);
    }
    return out;
  }

  private startParallel(step: ParallelStep, visit: number): ParallelCommand {
    this.emit(ev.stepStarted({ step: step.id, kind: 'parallel', visit, attempt: 1 }));
    const children = step.children.map((c) => this.effect(c, visit, 1, step.id));
    return {
      type: 'parallel',
      step: step.id,
      max_concurrency: step.max_concurrency ?? children.length,
      children,
    };
  }

  private account(r: EffectResult): void {
    if (r.usage) this.s.tokens += r.usage.input_tokens + r.usage.output_tokens;
    if (r.cost_usd) this.s.cost += r.cost_usd;
  }

  completeEffect(result: EffectResult): void {
    const cmd = this.s.pending;
    if (!cmd || (cmd.type !== 'llm' && cmd.type !== 'tool'))
      throw new NanoVmError('E_INTERNAL', 'an effect result arrived without a pending llm/tool command');
    const step = this.cp.steps.get(cmd.step) as LlmStep | ToolStep;
    this.s.pending = null;
    this.account(result);
    const checked = checkEffectResult(step, result);
    const facts = callFacts(cmd, result);
    if (checked.ok) {
      const next = this.exits(step.id).next!;
      const canonical = checked.canonical;
      const changed = this.store(step.id, checked.output, canonical);
      this.emit(
        ev.stepCompleted(
          { step: step.id, kind: step.kind, attempt: cmd.attempt, output: checked.output, changed, next },
          facts,
        ),
        canonical,
      );
      this.moveTo(next, changed);
      return;
    }
    this.emit(
      ev.stepFailed(
        {
          step: step.id,
          kind: step.kind,
          attempt: cmd.attempt,
          error: checked.error,
          rejected_output: rejectedOutput(step, result),
        },
        facts,
      ),
    );
    this.afterFailure(step, cmd.attempt, checked.error);
  }

  /** Events are recorded in declared child order, so the hash does not depend on scheduling. */
  completeParallel(attemptsPerChild: readonly (readonly EffectResult[])[]): void {
    const cmd = this.s.pending;
    if (!cmd || cmd.type !== 'parallel')
      throw new NanoVmError('E_INTERNAL', 'children results arrived without a pending parallel command');
    const step = this.cp.steps.get(cmd.step) as ParallelStep;
    this.s.pending = null;
    const outputs: { [k: string]: JsonValue } = {};
    let failure: ErrorInfo | null = null;
    step.children.forEach((child, i) => {
      const attempts = attemptsPerChild[i] ?? [];
      // Retries of children were numbered by the host as call + attempt - 1; keep the count in step.
      if (child.kind === 'llm' && attempts.length > 1) {
        const r = this.record(child.id);
        this.put(child.id, stepRecord(r.visits, r.calls + attempts.length - 1, r.output));
      }
      let done = false;
      const first = cmd.children[i]!;
      attempts.forEach((res, a) => {
        if (done) return;
        const attempt = a + 1;
        if (attempt > 1)
          this.emit(
            ev.stepRetry({ step: child.id, parent: step.id, attempt, max_attempts: maxAttempts(child.on_error) }),
          );
        const facts = callFacts(first, res);
        this.account(res);
        const checked = checkEffectResult(child, res);
        if (checked.ok) {
          setMember(outputs, child.id, checked.output);
          this.emit(
            ev.stepCompleted(
              { step: child.id, kind: child.kind, parent: step.id, attempt, output: checked.output, changed: true },
              facts,
            ),
            checked.canonical,
          );
          done = true;
          return;
        }
        this.emit(
          ev.stepFailed(
            {
              step: child.id,
              kind: child.kind,
              parent: step.id,
              attempt,
              error: checked.error,
              rejected_output: rejectedOutput(child, res),
            },
            facts,
          ),
        );
        if (attempt === attempts.length) {
          const fb = fallbackOf(child.on_error);
          if (fb !== undefined) {
            setMember(outputs, child.id, fb);
            this.emit(ev.stepFallback({ step: child.id, parent: step.id, output: fb, changed: true }));
            done = true;
          } else if (!failure)
            failure = { code: checked.error.code, message: `child '${child.id}': ${checked.error.message}` };
        }
      });
      if (!done && !failure) failure = { code: 'E_NO_RESULT', message: `child '${child.id}' produced no result` };
    });
    if (failure) {
      this.finish({ status: 'failed', error: { ...(failure as ErrorInfo), step: step.id } });
      return;
    }
    const text = canonicalJson(outputs);
    const changed = this.store(step.id, outputs, text);
    const next = this.exits(step.id).next!;
    this.emit(ev.stepCompleted({ step: step.id, kind: 'parallel', attempt: 1, output: outputs, changed, next }), text);
    this.moveTo(next, changed);
  }

  private afterFailure(step: LlmStep | ToolStep, attempt: number, error: ErrorInfo): void {
    const oe = step.on_error;
    if (oe?.action === 'retry' && attempt < oe.max_attempts) {
      this.emit(ev.stepRetry({ step: step.id, attempt: attempt + 1, max_attempts: oe.max_attempts }));
      this.s.attempt = attempt + 1;
      return;
    }
    const fb = fallbackOf(oe);
    if (fb !== undefined) {
      const changed = this.store(step.id, fb);
      const next = this.exits(step.id).next!;
      this.emit(ev.stepFallback({ step: step.id, output: fb, changed, next }));
      this.moveTo(next, changed);
      return;
    }
    this.finish({ status: 'failed', error: { ...error, step: step.id } });
  }

  private moveTo(next: string, changed: boolean): void {
    this.s.stalled = changed ? 0 : this.s.stalled + 1;
    this.s.attempt = 1;
    this.s.at = next;
  }

  // ------------------------------------------------------------------ waits

  private suspend(step: WaitStep, visit: number): WaitCommand {
    // One clock reading: the event's ts, and the deadline is measured from it.
    const ms = this.env.clock.now();
    const cmd: WaitCommand = { type: 'wait', step: step.id, visit };
    if (step.role !== undefined) cmd.role = step.role;
    if (step.timeout_ms !== undefined) cmd.deadline_ms = ms + step.timeout_ms;
    this.emit(
      ev.runSuspended({
        step: step.id,
        visit,
        role: step.role,
        deadline: cmd.deadline_ms === undefined ? undefined : new Date(cmd.deadline_ms).toISOString(),
      }),
      undefined,
      ms,
    );
    this.s.suspendedAt = ms;
    return cmd;
  }

  pendingWait(): { cmd: WaitCommand; step: WaitStep } {
    const cmd = this.s.pending;
    if (!cmd || cmd.type !== 'wait')
      throw new NanoVmError('E_RESUME_NOT_SUSPENDED', 'the run is not suspended at a wait step');
    return { cmd, step: this.cp.steps.get(cmd.step) as WaitStep };
  }

  /**
   * A wrong role or a payload outside the step's event schema is refused with a NanoVmError and
   * changes nothing. Past the deadline the wait times out instead: the event is not taken.
   */
  resume(event: ExternalEvent): 'resumed' | 'timed_out' {
    const { cmd, step } = this.pendingWait();
    if (step.role !== undefined && event.role !== step.role) {
      throw new NanoVmError(
        'E_RESUME_ROLE',
        `step '${step.id}' waits for an event from role '${step.role}'${event.role === undefined ? '; no role was given' : `, not '${event.role}'`}`,
      );
    }
    let form: { text: string; value: JsonValue };
    try {
      checkValueLimits(event.payload, 'the event');
      form = canonicalForm(event.payload as JsonValue);
    } catch (e) {
      throw new NanoVmError(
        'E_RESUME_EVENT_INVALID',
        `the event for step '${step.id}' is not JSON within the limits: ${(e as Error).message}`,
      );
    }
    const vs = checkSchema(step.event, event.payload);
    if (vs.length) {
      throw new NanoVmError(
        'E_RESUME_EVENT_INVALID',
        `the event for step '${step.id}' does not match its declared schema: ${describeViolations(vs)}`,
        vs.map((v) => ({
          code: 'E_RESUME_EVENT_INVALID',
          severity: 'error',
          step: step.id,
          path: v.at,
          message: v.message,
        })),
      );
    }
    const ms = this.env.clock.now();
    if (cmd.deadline_ms !== undefined && ms > cmd.deadline_ms) {
      this.timeOut(step, cmd, ms);
      return 'timed_out';
    }
    this.s.pending = null;
    // Time spent suspended is not run time: max_wall_ms bounds the run's own work.
    this.s.startedAt += ms - this.s.suspendedAt;
    const payload = form.value;
    const changed = this.store(step.id, payload, form.text);
    const next = this.exits(step.id).next!;
    this.emit(
      ev.runResumed({
        step: step.id,
        visit: cmd.visit,
        event: payload,
        role: event.role,
        event_id: event.event_id,
        principal: event.principal,
        changed,
        next,
      }),
      undefined,
      ms,
    );
    this.moveTo(next, changed);
    return 'resumed';
  }

  timeOut(step: WaitStep, cmd: WaitCommand, ms: number): void {
    this.s.pending = null;
    this.s.startedAt += ms - this.s.suspendedAt;
    const onTimeout = this.exits(step.id).on_timeout;
    this.emit(ev.waitTimedOut({ step: step.id, visit: cmd.visit, next: onTimeout }), undefined, ms);
    if (onTimeout === undefined) {
      this.finish({
        status: 'failed',
        error: {
          code: 'E_WAIT_TIMEOUT',
          message: `step '${step.id}' waited longer than timeout_ms=${step.timeout_ms}`,
          step: step.id,
        },
      });
      return;
    }
    this.s.attempt = 1;
    this.s.at = onTimeout;
  }
}

/** What a policy's deny guards read of `steps`, once per compiled policy. */
const policyReads = memoByObject((policy: CompiledPolicy): StepReads =>
  stepReads(policy.denies.flatMap((d) => (d.guard ? guardReadPaths(d.guard) : []))),
);

function maxAttempts(oe: OnError | undefined): number {
  return oe?.action === 'retry' ? oe.max_attempts : 1;
}

function fallbackOf(oe: OnError | undefined): JsonValue | undefined {
  if (!oe) return undefined;
  if (oe.action === 'fallback') return oe.value;
  if (oe.action === 'retry' && oe.then === 'fallback') return oe.value;
  return undefined;
}

/**
 * A tool result that the output check rejected is recorded (when it is JSON), so a replay can
 * re-run the check, under the same program or another one, instead of trusting the old verdict.
 */
function rejectedOutput(step: LlmStep | ToolStep | ParallelChild, r: EffectResult): JsonValue | undefined {
  if (step.kind !== 'tool' || !r.ok) return undefined;
  const value = r.value === undefined ? null : r.value;
  // Beyond the limits it is not recorded: events must stay within what a bundle may carry.
  try {
    checkValueLimits(value, 'the output');
  } catch {
    return undefined;
  }
  return isJsonValue(value) ? (value as JsonValue) : undefined;
}

/** What the call reported besides its result: the request's projection hash and the model's facts. */
function callFacts(cmd: EffectCommand, r: EffectResult): ev.CallFacts {
  const llm = cmd.type === 'llm';
  return {
    raw: r.raw,
    model: r.model,
    usage: r.usage,
    cost_usd: r.cost_usd,
    fallbacks: r.ok ? r.fallbacks : undefined,
    visit: llm ? cmd.visit : undefined,
    projection_hash: llm ? cmd.projection_hash : undefined,
  };
}
