/**
 * The machine: the one place that decides what comes next. It is deterministic and does no I/O:
 * the host asks `next()` for the command to perform (call a model, call a tool, run children in
 * parallel, or stop), performs it, and hands the raw result to `complete()`. Every decision is
 * appended to the hash chain before the host may act on it (write-ahead), so the same code serves
 * run, resume and replay.
 */
import { canonicalForm, canonicalJson, isJsonValue, sortKeys } from './canonicalJson.js';
import { NanoVmError } from './errors.js';
import { TraceChain } from './chain.js';
import * as ev from './eventBodies.js';
import type {
  ErrorInfo,
  EventBody,
  GuardResult,
  ModelFallback,
  RunFinishedEvent,
  RunStartedEvent,
  TraceEvent,
  Usage,
} from './events.js';
import { evaluateGuard, compileGuard } from './guard/index.js';
import type { CompiledGuard } from './guard/types.js';
import { hashJson, type Hasher } from './hash.js';
import type {
  Budgets,
  ConditionStep,
  EndStep,
  JsonSchema,
  JsonValue,
  LlmOutput,
  LlmStep,
  OnError,
  ParallelChild,
  ParallelStep,
  Program,
  Step,
  ToolStep,
  WaitStep,
} from './program.js';
import { outputSchemaOf, startOf } from './program.js';
import { POLICY_BLOCKED_CODE, POLICY_BLOCKED_OUTCOME, POLICY_PINNED_RULE } from './policy.js';
import type { CompiledPolicy, PolicyRejection } from './policyGate.js';
import { project, renderPrompt, type ProjectedView } from './projection.js';
import { checkSchema, describeViolations } from './schemaCheck.js';
import { isUnder, readPath } from './statePath.js';
import { guardReadPaths, scrubEvent, SealedDecisionError, type Redactor, type SealedDecisions } from './redact.js';

export const DEFAULT_BUDGETS: Required<Budgets> = {
  max_steps: 10_000,
  max_tokens: Number.POSITIVE_INFINITY,
  max_cost_usd: Number.POSITIVE_INFINITY,
  max_wall_ms: Number.POSITIVE_INFINITY,
  max_stalled_steps: 25,
};

/** Read exactly once per appended event (that reading becomes the event's `ts`). */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export interface LlmCommand {
  type: 'llm';
  step: string;
  parent?: string;
  visit: number;
  attempt: number;
  /** Hash of `projection`, recorded with the answer. */
  projection_hash: string;
  /** 1-based count of model calls made for this step id in this run, this one included. */
  call: number;
  prompt: string;
  projection: ProjectedView;
  output: LlmOutput;
  timeout_ms?: number;
}

export interface ToolCommand {
  type: 'tool';
  step: string;
  parent?: string;
  attempt: number;
  tool: string;
  args: Record<string, JsonValue>;
  idempotency_key: string;
  timeout_ms?: number;
}

export type EffectCommand = LlmCommand | ToolCommand;

export interface ParallelCommand {
  type: 'parallel';
  step: string;
  max_concurrency: number;
  children: EffectCommand[];
}

/** The run waits for an external event: the host suspends it until resume() or expire(). */
export interface WaitCommand {
  type: 'wait';
  step: string;
  visit: number;
  role?: string;
  /** Epoch ms after which the wait has timed out (absent: it never does). */
  deadline_ms?: number;
}

/** An external event for a suspended run (what `nano-vm resume` delivers). */
export interface ExternalEvent {
  payload: unknown;
  role?: string;
  event_id?: string;
}

export interface DoneCommand {
  type: 'done';
  event: RunFinishedEvent;
}

export type Command = EffectCommand | ParallelCommand | WaitCommand | DoneCommand;

/** What the host observed when it performed an effect. */
export type EffectResult =
  | {
      ok: true;
      raw?: string;
      value?: unknown;
      model?: string;
      usage?: Usage;
      cost_usd?: number;
      fallbacks?: ModelFallback[];
    }
  | { ok: false; error: ErrorInfo; raw?: string; model?: string; usage?: Usage; cost_usd?: number };

export interface MachineOptions {
  runId: string;
  hasher: Hasher;
  clock: Clock;
  runtimeVersion: string;
  model: { id: string; scripted: boolean };
  policyHash?: string;
  /** The policy the run is under (its hash must be policyHash): enforced before every step entry. */
  policy?: CompiledPolicy;
  /** Hash of the input when the host already computed it. */
  inputHash?: string;
  /** Called synchronously for every appended event (persist it before acting on the next command). */
  onEvent?: (e: TraceEvent) => void;
  /** Sensitive values to write as their commitments (docs/privacy.md); the state keeps the values. */
  redact?: Redactor;
  /** Replay without the vault: conditions reading these input paths take their recorded decision. */
  sealed?: SealedDecisions;
}

/**
 * Formatting a Date per event showed in profiles, so the text of the last reading and the
 * `YYYY-MM-DDTHH:MM:SS.` prefix of its second are kept, shared by all runs: concurrent runs
 * read the same millisecond and store one string instead of one each.
 */
let tsMs = Number.NaN;
let tsText = '';
let tsSecond = Number.NaN;
let tsPrefix = '';

function isoTimestamp(ms: number): string {
  if (ms !== tsMs) {
    const second = ms - (((ms % 1000) + 1000) % 1000);
    if (second !== tsSecond) {
      tsSecond = second;
      tsPrefix = new Date(second).toISOString().slice(0, 20);
    }
    const milli = ms - second;
    tsText = `${tsPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
    tsMs = ms;
  }
  return tsText;
}

/** `canonical` is the output's canonical JSON when the check already computed it. */
/** `canonical`: the output's RFC 8785 text, which the check computes anyway (the event reuses it). */
type Checked = { ok: true; output: JsonValue; canonical: string } | { ok: false; error: ErrorInfo };

/** Program-derived lookup tables, built once per program and shared by every run of it. */
export class CompiledProgram {
  readonly steps = new Map<string, Step>();
  /** Children of parallel steps, by id (ids are unique program-wide). */
  readonly children = new Map<string, ParallelChild>();
  readonly guards = new Map<string, CompiledGuard[]>();
  readonly budgets: Required<Budgets>;
  readonly start: string;
  readonly sensitive: string[];
  private readonly programHashes = new WeakMap<Hasher, string>();

  constructor(readonly program: Program) {
    for (const s of program.steps) {
      this.steps.set(s.id, s);
      if (s.kind === 'parallel') for (const c of s.children) this.children.set(c.id, c);
    }
    for (const s of program.steps) {
      if (s.kind !== 'condition') continue;
      this.guards.set(
        s.id,
        s.cases.map((c) => {
          const r = compileGuard(c.when);
          if (!r.ok)
            throw new Error(
              `guard of step ${s.id} does not compile (${r.error.code}); validate the program before running it`,
            );
          return r.guard;
        }),
      );
    }
    this.budgets = { ...DEFAULT_BUDGETS, ...program.budgets };
    this.start = startOf(program) ?? '';
    this.sensitive = program.sensitive ?? [];
  }

  /** Hash of the program document, computed once per hasher. */
  hash(hasher: Hasher): string {
    let h = this.programHashes.get(hasher);
    if (h === undefined) {
      h = hashJson(hasher, this.program);
      this.programHashes.set(hasher, h);
    }
    return h;
  }
}

export class Machine {
  readonly chain: TraceChain;
  private readonly cp: CompiledProgram;
  private readonly state: { input: unknown; steps: Record<string, { output: JsonValue }> };
  /** Canonical text of each step's stored output (the output itself is in `state.steps`), to tell whether a step changed anything. */
  private readonly outputTexts = new Map<string, string>();
  private readonly visits = new Map<string, number>();
  private readonly calls = new Map<string, number>();
  private current: string;
  private attempt = 1;
  private stepsTaken = 0;
  private tokens = 0;
  private cost = 0;
  private stalled = 0;
  private startedAt = 0;
  private pending: Command | null = null;
  private finished: RunFinishedEvent | null = null;

  constructor(
    program: Program | CompiledProgram,
    input: unknown,
    private readonly opts: MachineOptions,
  ) {
    this.cp = program instanceof CompiledProgram ? program : new CompiledProgram(program);
    this.chain = new TraceChain(opts.hasher);
    this.state = { input, steps: {}, ...(opts.policy && { policy: opts.policy.view }) };
    this.current = this.cp.start;
    this.emit(
      ev.runStarted({
        run_id: opts.runId,
        program_id: this.cp.program.id,
        program_hash: this.cp.hash(opts.hasher),
        policy_hash: opts.policyHash ?? hashJson(opts.hasher, null),
        input_hash: opts.inputHash ?? hashJson(opts.hasher, input),
        runtime_version: opts.runtimeVersion,
        model: opts.model,
      }),
    );
    this.startedAt = this.lastMs;
  }

  get events(): TraceEvent[] {
    return this.chain.events;
  }

  get result(): RunFinishedEvent | null {
    return this.finished;
  }

  /** The redactor events are written with (hosts reveal recorded results with it). */
  get redactor(): Redactor | undefined {
    return this.opts.redact;
  }

  /** The clock reading of the last event (the wall budget is measured on it). */
  private lastMs = Number.NaN;

  /** ISO timestamp of the clock's current reading. */
  private ts(): string {
    return this.tsAt(this.opts.clock.now());
  }

  private tsAt(ms: number): string {
    this.lastMs = ms;
    return isoTimestamp(ms);
  }

  private emit(body: TraceEvent, outputText?: string, atMs?: number): TraceEvent {
    if (this.opts.redact) {
      const scrubbed = scrubEvent(this.opts.redact, body, (id) => this.argSources(id));
      if (scrubbed !== body) [body, outputText] = [scrubbed, undefined];
    }
    const e = this.chain.append(body, atMs === undefined ? this.ts() : this.tsAt(atMs), outputText);
    this.opts.onEvent?.(e);
    return e;
  }

  private finish(body: Omit<RunFinishedEvent, 'seq' | 'ts' | 'prev_hash' | 'hash' | 'type'>): DoneCommand {
    this.finished = this.emit(ev.runFinished(body)) as RunFinishedEvent;
    this.pending = { type: 'done', event: this.finished };
    return this.pending;
  }

  /** The budget that has run out, if any. Checked before every step entry and every retry. */
  private exceeded(): DoneCommand | null {
    const b = this.cp.budgets;
    if (this.stepsTaken >= b.max_steps)
      return this.finish({
        status: 'budget_exceeded',
        budget: { limit: b.max_steps, name: 'max_steps', used: this.stepsTaken },
      });
    if (this.tokens > b.max_tokens)
      return this.finish({
        status: 'budget_exceeded',
        budget: { limit: b.max_tokens, name: 'max_tokens', used: this.tokens },
      });
    if (this.cost > b.max_cost_usd)
      return this.finish({
        status: 'budget_exceeded',
        budget: { limit: b.max_cost_usd, name: 'max_cost_usd', used: this.cost },
      });
    // Elapsed time as of the last recorded event: the clock is read exactly once per event, so
    // every decision is a function of the trace and a replay reproduces it.
    const wall = this.lastMs - this.startedAt;
    if (wall > b.max_wall_ms)
      return this.finish({
        status: 'budget_exceeded',
        budget: { limit: b.max_wall_ms, name: 'max_wall_ms', used: wall },
      });
    if (this.stalled >= b.max_stalled_steps)
      return this.finish({
        status: 'stalled',
        budget: { limit: b.max_stalled_steps, name: 'max_stalled_steps', used: this.stalled },
      });
    return null;
  }

  /** Decide the next command. Idempotent until `complete()` is called. */
  next(): Command {
    if (this.pending) return this.pending;
    for (;;) {
      const over = this.exceeded();
      if (over) return over;
      const step = this.cp.steps.get(this.current);
      if (!step)
        return this.finish({
          status: 'failed',
          error: { code: 'E_MISSING_TARGET', message: `no step '${this.current}'` },
        });
      let visit = this.visits.get(step.id) ?? 0;
      if (this.attempt === 1) {
        visit++;
        if (step.max_visits !== undefined && visit > step.max_visits) {
          this.emit(ev.visitsExhausted({ step: step.id, max_visits: step.max_visits, next: step.on_exhausted }));
          if (step.on_exhausted === undefined)
            return this.finish({
              status: 'failed',
              error: {
                code: 'E_MAX_VISITS',
                message: `step '${step.id}' was entered more than max_visits=${step.max_visits} times`,
                step: step.id,
              },
            });
          this.current = step.on_exhausted;
          continue;
        }
        this.visits.set(step.id, visit);
        if (step.kind !== 'end') this.stepsTaken++;
        if (this.opts.policy !== undefined && !this.admit(step, visit, this.opts.policy)) return this.pending!;
      }
      switch (step.kind) {
        case 'end':
          return this.finishAtEnd(step);
        case 'condition':
          if (this.evaluateCondition(step, visit)) continue;
          return this.pending!;
        case 'llm':
        case 'tool':
          this.pending = this.startEffect(step, visit, this.attempt);
          return this.pending;
        case 'parallel':
          this.pending = this.startParallel(step, visit);
          return this.pending;
        case 'wait':
          this.pending = this.suspend(step, visit);
          return this.pending;
      }
    }
  }

  private suspend(step: WaitStep, visit: number): WaitCommand {
    // One clock reading: the event's ts, and the deadline is measured from it.
    const ms = this.opts.clock.now();
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
    this.suspendedAt = ms;
    return cmd;
  }

  private suspendedAt = 0;

  private pendingWait(): { cmd: WaitCommand; step: WaitStep } {
    const cmd = this.pending;
    if (!cmd || cmd.type !== 'wait')
      throw new NanoVmError('E_RESUME_NOT_SUSPENDED', 'the run is not suspended at a wait step');
    return { cmd, step: this.cp.steps.get(cmd.step) as WaitStep };
  }

  /**
   * Deliver the external event a suspended run waits for. A wrong role or a payload outside the
   * step's event schema is refused with a NanoVmError and changes nothing. Past the deadline the
   * wait times out instead (returns 'timed_out'): the event is not taken.
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
      form = canonicalForm(event.payload as JsonValue);
    } catch (e) {
      throw new NanoVmError(
        'E_RESUME_EVENT_INVALID',
        `the event for step '${step.id}' is not JSON: ${(e as Error).message}`,
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
    const ms = this.opts.clock.now();
    if (cmd.deadline_ms !== undefined && ms > cmd.deadline_ms) {
      this.timeOut(step, cmd, ms);
      return 'timed_out';
    }
    this.pending = null;
    // Time spent suspended is not run time: max_wall_ms bounds the run's own work.
    this.startedAt += ms - this.suspendedAt;
    const payload = form.value;
    const changed = this.store(step.id, payload, form.text);
    this.emit(
      ev.runResumed({
        step: step.id,
        visit: cmd.visit,
        event: payload,
        role: event.role,
        event_id: event.event_id,
        changed,
        next: step.next,
      }),
      undefined,
      ms,
    );
    this.advance(step.next, changed);
    return 'resumed';
  }

  /** The wait's timeout has passed (the host checks the deadline): take on_timeout, or fail. */
  expire(): void {
    const { cmd, step } = this.pendingWait();
    this.timeOut(step, cmd, this.opts.clock.now());
  }

  private timeOut(step: WaitStep, cmd: WaitCommand, ms: number): void {
    this.pending = null;
    this.startedAt += ms - this.suspendedAt;
    this.emit(ev.waitTimedOut({ step: step.id, visit: cmd.visit, next: step.on_timeout }), undefined, ms);
    if (step.on_timeout === undefined) {
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
    this.attempt = 1;
    this.current = step.on_timeout;
  }

  private argSources(stepId: string): ToolStep['args'] {
    const s = this.cp.steps.get(stepId) ?? this.cp.children.get(stepId);
    return s?.kind === 'tool' ? s.args : undefined;
  }

  /**
   * A condition whose guards read sealed input paths, replayed from its recorded decision (the
   * values are not there to re-evaluate). null when its guards read no sealed path. A record that
   * does not fit this program's guards and edges is a decision nobody can re-derive: E_REPLAY_SEALED.
   */
  private sealedDecision(step: ConditionStep, visit: number, sealed: SealedDecisions): boolean | null {
    const reads = step.cases.flatMap((_c, i) => guardReadPaths(this.cp.guards.get(step.id)![i]!));
    const hit = sealed.paths.filter((p) => reads.some((r) => isUnder(p, r) || isUnder(r, p)));
    if (hit.length === 0) return null;
    const rec = sealed.recorded(step.id, visit);
    const fits =
      rec !== undefined &&
      rec.guards.length <= step.cases.length &&
      rec.guards.every((g, i) => g.case === i && g.expr === step.cases[i]!.when) &&
      (rec.next === ''
        ? rec.guards.length > 0
        : rec.next === (rec.chosen === -1 ? step.else : step.cases[rec.chosen]?.next));
    if (!fits)
      throw new SealedDecisionError(
        step.id,
        visit,
        `condition '${step.id}' (visit ${visit}) reads ${hit.join(', ')}, whose values are sealed in the vault or erased, and the trace records no decision of it to reuse`,
      );
    const e = this.emit(
      ev.conditionEvaluated({ step: step.id, visit, guards: rec.guards, chosen: rec.chosen, next: rec.next }),
    );
    sealed.used(e.seq, step.id, hit);
    if (rec.next !== '') {
      this.current = rec.next;
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

  /** The policy gate before a step is entered (policyGate.ts); false when it stopped the run. */
  private admit(step: Step, visit: number, policy: CompiledPolicy): boolean {
    const d = policy.decideEntry(step, this.visits, this.state, (s) => resolveArgs(s, this.state));
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

  /**
   * The host offers a policy whose hash differs from the one pinned at genesis (a recovered or
   * resumed run whose policy file changed): nothing more runs; the run halts as POLICY_BLOCKED.
   */
  haltOnPolicyChange(offeredPolicyHash: string): void {
    if (this.finished) return;
    const pinned = (this.events[0] as RunStartedEvent).policy_hash;
    this.pending = null;
    this.blockOnPolicy({
      step: this.current,
      requested: `policy:${offeredPolicyHash}`,
      rule: POLICY_PINNED_RULE,
      reason: `the policy changed after genesis (pinned ${pinned.slice(0, 12)}…, offered ${offeredPolicyHash.slice(0, 12)}…); a run keeps the policy it started under`,
      policy_hash: pinned,
      offered_policy_hash: offeredPolicyHash,
    });
  }

  private finishAtEnd(step: EndStep): DoneCommand {
    return this.finish({ status: 'completed', outcome: step.outcome, step: step.id });
  }

  /** Returns true when a transition was taken, false when the run finished. */
  private evaluateCondition(step: ConditionStep, visit: number): boolean {
    if (this.opts.sealed) {
      const taken = this.sealedDecision(step, visit, this.opts.sealed);
      if (taken !== null) return taken;
    }
    const guards = this.cp.guards.get(step.id)!;
    const results: GuardResult[] = [];
    let chosen = -1;
    for (let i = 0; i < guards.length; i++) {
      const r = evaluateGuard(guards[i]!, this.state);
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
    const next = chosen === -1 ? step.else : step.cases[chosen]!.next;
    this.emit(ev.conditionEvaluated({ step: step.id, visit, guards: results, chosen, next }));
    this.current = next;
    return true;
  }

  private nextCall(stepId: string): number {
    const n = (this.calls.get(stepId) ?? 0) + 1;
    this.calls.set(stepId, n);
    return n;
  }

  private buildEffect(
    step: LlmStep | ToolStep | ParallelChild,
    visit: number,
    attempt: number,
    parent?: string,
  ): EffectCommand {
    const p = parent !== undefined ? { parent } : {};
    if (step.kind === 'llm') {
      const masked = project(this.state, step.projection, this.cp.sensitive);
      // A sensitive value that reached the state another way (a tool echoing it) is shown as its commitment.
      const projection = this.opts.redact ? (this.opts.redact.value(masked) as ProjectedView) : masked;
      const prompt = renderPrompt(step.prompt, projection);
      const cmd: LlmCommand = {
        type: 'llm',
        step: step.id,
        ...p,
        visit,
        attempt,
        projection_hash: hashJson(this.opts.hasher, projection),
        call: this.nextCall(step.id),
        prompt,
        projection,
        output: step.output,
      };
      if (step.timeout_ms !== undefined) cmd.timeout_ms = step.timeout_ms;
      return cmd;
    }
    const args = resolveArgs(step, this.state);
    // Joined into one flat string: a template literal leaves a tree of cons strings, kept by the
    // stored event and promoted by every minor GC.
    const idempotency_key = (
      parent !== undefined ? [this.opts.runId, parent, step.id, visit] : [this.opts.runId, step.id, visit]
    ).join('/');
    const cmd: ToolCommand = { type: 'tool', step: step.id, ...p, attempt, tool: step.tool, args, idempotency_key };
    if (step.timeout_ms !== undefined) cmd.timeout_ms = step.timeout_ms;
    this.emit(
      ev.stepStarted({ step: step.id, kind: 'tool', parent, visit, attempt, tool: step.tool, args, idempotency_key }),
    );
    return cmd;
  }

  private startEffect(step: LlmStep | ToolStep, visit: number, attempt: number): EffectCommand {
    return this.buildEffect(step, visit, attempt);
  }

  private startParallel(step: ParallelStep, visit: number): ParallelCommand {
    this.emit(ev.stepStarted({ step: step.id, kind: 'parallel', visit, attempt: 1 }));
    const children = step.children.map((c) => this.buildEffect(c, visit, 1, step.id));
    return { type: 'parallel', step: step.id, max_concurrency: step.max_concurrency ?? children.length, children };
  }

  /** Check a raw effect result against the step's declared output type (pure). */
  checkResult(stepId: string, result: EffectResult): Checked {
    const step = this.findEffectStep(stepId);
    return checkEffectResult(step, result);
  }

  /** Whether a failed child attempt should be retried (used by hosts running parallel children). */
  shouldRetry(stepId: string, attempt: number): boolean {
    const oe = this.findEffectStep(stepId).on_error;
    return oe?.action === 'retry' && attempt < oe.max_attempts;
  }

  private findEffectStep(stepId: string): LlmStep | ToolStep | ParallelChild {
    const s = this.cp.steps.get(stepId) ?? this.cp.children.get(stepId);
    if (s && (s.kind === 'llm' || s.kind === 'tool')) return s;
    throw new Error(`no llm/tool step '${stepId}'`);
  }

  /** Hand the machine the result of the pending llm/tool command. */
  complete(result: EffectResult): void {
    const cmd = this.pending;
    if (!cmd || (cmd.type !== 'llm' && cmd.type !== 'tool'))
      throw new Error('complete() called without a pending llm/tool command');
    const step = this.cp.steps.get(cmd.step) as LlmStep | ToolStep;
    this.pending = null;
    this.account(result);
    const checked = checkEffectResult(step, result);
    const facts = callFacts(cmd, result);
    if (checked.ok) {
      const canonical = checked.canonical;
      const changed = this.store(step.id, checked.output, canonical);
      this.emit(
        ev.stepCompleted(
          { step: step.id, kind: step.kind, attempt: cmd.attempt, output: checked.output, changed, next: step.next },
          facts,
        ),
        canonical,
      );
      this.advance(step.next, changed);
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

  /**
   * Hand the machine every attempt of every child of the pending parallel command, in declared
   * child order. Events are recorded in that order, so the hash does not depend on scheduling.
   */
  completeParallel(attemptsPerChild: EffectResult[][]): void {
    const cmd = this.pending;
    if (!cmd || cmd.type !== 'parallel')
      throw new Error('completeParallel() called without a pending parallel command');
    const step = this.cp.steps.get(cmd.step) as ParallelStep;
    this.pending = null;
    const outputs: { [k: string]: JsonValue } = {};
    let failure: ErrorInfo | null = null;
    step.children.forEach((child, i) => {
      const attempts = attemptsPerChild[i] ?? [];
      // Retries of children were numbered by the host as call + attempt - 1; keep the count in step.
      if (child.kind === 'llm' && attempts.length > 1)
        this.calls.set(child.id, (this.calls.get(child.id) ?? 0) + attempts.length - 1);
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
          outputs[child.id] = checked.output;
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
            outputs[child.id] = fb;
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
    this.emit(
      ev.stepCompleted({ step: step.id, kind: 'parallel', attempt: 1, output: outputs, changed, next: step.next }),
      text,
    );
    this.advance(step.next, changed);
  }

  private account(r: EffectResult): void {
    if (r.usage) this.tokens += r.usage.input_tokens + r.usage.output_tokens;
    if (r.cost_usd) this.cost += r.cost_usd;
  }

  private afterFailure(step: LlmStep | ToolStep, attempt: number, error: ErrorInfo): void {
    const oe = step.on_error;
    if (oe?.action === 'retry' && attempt < oe.max_attempts) {
      this.emit(ev.stepRetry({ step: step.id, attempt: attempt + 1, max_attempts: oe.max_attempts }));
      this.attempt = attempt + 1;
      return;
    }
    const fb = fallbackOf(oe);
    if (fb !== undefined) {
      const changed = this.store(step.id, fb);
      this.emit(ev.stepFallback({ step: step.id, output: fb, changed, next: step.next }));
      this.advance(step.next, changed);
      return;
    }
    this.finish({ status: 'failed', error: { ...error, step: step.id } });
  }

  private store(stepId: string, output: JsonValue, known?: string): boolean {
    const canonical = known ?? canonicalJson(output);
    const prev = this.outputTexts.get(stepId);
    this.outputTexts.set(stepId, canonical);
    this.state.steps[stepId] = { output };
    return prev === undefined || prev !== canonical;
  }

  private advance(next: string, changed: boolean): void {
    this.stalled = changed ? 0 : this.stalled + 1;
    this.attempt = 1;
    this.current = next;
  }
}

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

/** Argument names of a step in canonical member order (which keeps the event encodable natively), sorted once per step. */
const argNames = new WeakMap<object, string[]>();

function resolveArgs(
  step: ToolStep | Extract<ParallelChild, { kind: 'tool' }>,
  state: unknown,
): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  if (!step.args) return out;
  let names = argNames.get(step.args);
  if (names === undefined) {
    names = Object.keys(step.args);
    sortKeys(names);
    argNames.set(step.args, names);
  }
  for (const name of names) {
    const src = step.args[name]!;
    if (typeof src === 'string') {
      const v = readPath(state, src);
      if (v !== undefined) out[name] = v as JsonValue;
    } else out[name] = src.value;
  }
  return out;
}

/** The typed output check: the only gate between an effect's raw result and the state. */
export function checkEffectResult(step: LlmStep | ToolStep | ParallelChild, result: EffectResult): Checked {
  if (!result.ok) return { ok: false, error: result.error };
  if (step.kind === 'llm') return checkModelAnswer(step.output, result.raw ?? '');
  let value: unknown = result.value;
  if (value === undefined) value = null;
  // Tool results enter the state in canonical member order (a copy when they were not), so the
  // tool cannot change them afterwards and every later encoding is native.
  let form: { text: string; value: JsonValue };
  try {
    form = canonicalForm(value as JsonValue);
  } catch (e) {
    return {
      ok: false,
      error: {
        code: 'E_TOOL_OUTPUT_NOT_JSON',
        message: `tool '${step.tool}' returned a value that is not JSON: ${(e as Error).message}`,
      },
    };
  }
  const vs = checkSchema(step.output_schema, value);
  if (vs.length)
    return {
      ok: false,
      error: {
        code: 'E_TOOL_OUTPUT_SCHEMA',
        message: `tool '${step.tool}' output violates its declared schema: ${describeViolations(vs)}`,
      },
    };
  return { ok: true, output: form.value, canonical: form.text };
}

/** A model answer must be one of the declared enum values, or JSON inside the declared schema. */
export function checkModelAnswer(output: LlmOutput, raw: string): Checked {
  if ('enum' in output) {
    const answer = raw.trim();
    if (output.enum.includes(answer)) return { ok: true, output: answer, canonical: JSON.stringify(answer) };
    return {
      ok: false,
      error: {
        code: 'E_OUTPUT_NOT_IN_ENUM',
        message: `answer ${JSON.stringify(clip(answer))} is not one of ${output.enum.join(', ')}`,
      },
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stripFence(raw));
  } catch (e) {
    return {
      ok: false,
      error: { code: 'E_OUTPUT_MALFORMED', message: `answer is not valid JSON (${(e as Error).message})` },
    };
  }
  const vs = checkSchema(output.schema as JsonSchema, parsed);
  if (vs.length)
    return {
      ok: false,
      error: { code: 'E_OUTPUT_SCHEMA', message: `answer violates the declared schema: ${describeViolations(vs)}` },
    };
  const form = canonicalForm(parsed as JsonValue);
  return { ok: true, output: form.value, canonical: form.text };
}

/** Models often wrap JSON in a ```json fence; accept exactly that wrapper and nothing looser. */
function stripFence(raw: string): string {
  const m = /^\s*```(?:json)?\s*\n([\s\S]*?)\n\s*```\s*$/.exec(raw);
  return m ? m[1]! : raw;
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
