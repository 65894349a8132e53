/**
 * The executor: drives the kernel machine, performs effects (model and tool calls) with timeouts
 * and cancellation, and persists every event before the effect that follows it starts.
 */
import {
  BUNDLE_FORMAT,
  CompiledProgram,
  Machine,
  NanoVmError,
  canonicalJson,
  checkSchema,
  inCanonicalOrder,
  computeReceipt,
  describeViolations,
  hashJson,
  validateProgram,
  type Bundle,
  type Clock,
  type EffectCommand,
  type EffectResult,
  type Hasher,
  type Issue,
  type JsonValue,
  type ParallelCommand,
  type Program,
  type Receipt,
  type RunFinishedEvent,
  type TraceEvent,
} from '@nano-vm/kernel';
import { randomIds, systemClock, type IdSource } from './clock.js';
import { deadline } from './deadlines.js';
import { ModelError, type ModelPort, type ModelRequest } from './model/port.js';
import { nodeHasher } from './nodeHasher.js';
import { MemoryStore } from './store/memoryStore.js';
import type { Store } from './store/store.js';
import { ToolError, type ToolContext, type ToolRegistry } from './toolRegistry.js';
import { RUNTIME_VERSION } from './version.js';

/** Effects without a declared timeout_ms get this one, so a hung call cannot hang a run forever. */
export const DEFAULT_EFFECT_TIMEOUT_MS = 120_000;

export interface RunOptions {
  program: Program | CompiledProgram;
  input: unknown;
  model: ModelPort;
  tools: ToolRegistry;
  store?: Store;
  clock?: Clock;
  ids?: IdSource;
  hasher?: Hasher;
  policy?: unknown;
  defaultTimeoutMs?: number;
}

export interface RunResult {
  run_id: string;
  status: RunFinishedEvent['status'];
  outcome: string | null;
  head_hash: string;
  events: TraceEvent[];
  receipt: Receipt;
  bundle: Bundle;
}

const validated = new WeakMap<Program, WeakMap<ToolRegistry, Issue[]>>();

/** Pre-flight validation, cached per (program object, tool registry). */
export function preflight(program: Program, tools: ToolRegistry): Issue[] {
  let byTools = validated.get(program);
  if (!byTools) validated.set(program, (byTools = new WeakMap()));
  let issues = byTools.get(tools);
  if (!issues) {
    issues = validateProgram(program, { tools: tools.describe() });
    byTools.set(tools, issues);
  }
  return issues;
}

const refusals = new WeakMap<Issue[], Issue[]>();

/** The errors among the pre-flight issues (computed once per issue list). */
function preflightErrors(program: Program, tools: ToolRegistry): Issue[] {
  const issues = preflight(program, tools);
  let errors = refusals.get(issues);
  if (!errors) refusals.set(issues, (errors = issues.filter((i) => i.severity === 'error')));
  return errors;
}

const compiledCache = new WeakMap<Program, CompiledProgram>();

function compiledOf(p: Program | CompiledProgram): CompiledProgram {
  if (p instanceof CompiledProgram) return p;
  let c = compiledCache.get(p);
  if (!c) compiledCache.set(p, (c = new CompiledProgram(p)));
  return c;
}

/** Run a program to a terminal state. Throws NanoVmError (E_PROGRAM_INVALID / E_INPUT_INVALID) before any event when refused. */
export async function runProgram(opts: RunOptions): Promise<RunResult> {
  const cp = compiledOf(opts.program);
  const program = cp.program;
  const errors = preflightErrors(program, opts.tools);
  if (errors.length) throw new NanoVmError('E_PROGRAM_INVALID', `program '${program.id}' is invalid (${errors.length} error${errors.length > 1 ? 's' : ''}): ${errors[0]!.code} ${errors[0]!.message}`, errors);
  const hasher = opts.hasher ?? nodeHasher;
  const inputText = checkInput(program, opts.input);
  const inputHash = hasher.sha256Hex(inputText);
  // The machine works on the input in canonical member order (see canonicalJson's fast path).
  const input = inCanonicalOrder(opts.input, inputText);
  const clock = opts.clock ?? systemClock;
  const store = opts.store ?? new MemoryStore();
  const policy = opts.policy ?? null;
  const runId = (opts.ids ?? randomIds).runId({ programHash: cp.hash(hasher), inputHash });
  const created = store.createRun({ run_id: runId, program_id: program.id, program, policy, input: opts.input, status: 'running', outcome: null });
  if (created) await created;

  const machine = new Machine(cp, input, {
    runId,
    hasher,
    clock,
    runtimeVersion: RUNTIME_VERSION,
    model: { id: opts.model.id, scripted: opts.model.scripted },
    policyHash: hashJson(hasher, policy),
    inputHash,
  });
  const fx = new Effects(opts.model, opts.tools, opts.defaultTimeoutMs ?? DEFAULT_EFFECT_TIMEOUT_MS);
  let persisted = 0;
  /** Persist new events; returns a promise only when the store is asynchronous. */
  const flush = (): Promise<void> | undefined => {
    const evs = machine.events;
    while (persisted < evs.length) {
      const r = store.append(runId, evs[persisted]!);
      persisted++;
      if (r) return r.then(flush);
    }
    return undefined;
  };

  for (;;) {
    const cmd = machine.next();
    const written = flush();
    if (written) await written;
    if (cmd.type === 'done') break;
    if (cmd.type === 'parallel') machine.completeParallel(await fx.parallel(cmd, machine));
    else machine.complete(await fx.perform(cmd));
  }
  const finished = machine.result!;
  const fin = store.finish(runId, finished.status, finished.outcome ?? null);
  if (fin) await fin;

  const events = machine.events;
  const receipt = computeReceipt(events);
  return {
    run_id: runId,
    status: finished.status,
    outcome: finished.outcome ?? null,
    head_hash: receipt.head_hash,
    events,
    receipt,
    bundle: { format: BUNDLE_FORMAT, program, policy, input: opts.input, events, receipt },
  };
}

/** Checks the run input against the program's input_schema; returns its canonical JSON. */
export function checkInput(program: Program, input: unknown): string {
  let canonical: string;
  try {
    canonical = canonicalJson(input);
  } catch (e) {
    throw new NanoVmError('E_INPUT_INVALID', `run input is not JSON: ${(e as Error).message}`, [{ code: 'E_INPUT_INVALID', severity: 'error', message: (e as Error).message }]);
  }
  const vs = checkSchema(program.input_schema, input);
  if (vs.length)
    throw new NanoVmError(
      'E_INPUT_INVALID',
      `run input does not match the program's input_schema: ${describeViolations(vs)}`,
      vs.map((v) => ({ code: 'E_INPUT_INVALID', severity: 'error', path: v.at, message: v.message })),
    );
  return canonical;
}

/** Performs model and tool calls; turns every failure into a coded EffectResult, never a throw. */
class Effects {
  constructor(
    private readonly model: ModelPort,
    private readonly tools: ToolRegistry,
    private readonly defaultTimeoutMs: number,
  ) {}

  perform(cmd: EffectCommand): Promise<EffectResult> {
    const ms = cmd.timeout_ms ?? this.defaultTimeoutMs;
    const cancel = new LazyAbort();
    return new Promise<EffectResult>((resolve) => {
      let settled = false;
      const stop = deadline(ms, () => {
        if (settled) return;
        settled = true;
        const message = `${cmd.type} step '${cmd.step}' timed out after ${ms} ms`;
        cancel.abort(new ModelError('E_TIMEOUT', message));
        resolve({ ok: false, error: { code: 'E_TIMEOUT', message } });
      });
      (cmd.type === 'llm' ? this.callModel(cmd, cancel) : this.callTool(cmd, cancel)).then((r) => {
        if (settled) return;
        settled = true;
        stop();
        resolve(r);
      });
    });
  }

  private async callModel(cmd: Extract<EffectCommand, { type: 'llm' }>, cancel: LazyAbort): Promise<EffectResult> {
    try {
      const a = await this.model.complete(new Request(cmd, cancel));
      const r: EffectResult = { ok: true, raw: a.raw, model: a.model };
      if (a.usage) r.usage = a.usage;
      if (a.cost_usd !== undefined) r.cost_usd = a.cost_usd;
      return r;
    } catch (e) {
      return { ok: false, error: errorInfo(e, 'E_MODEL_ERROR'), model: this.model.id };
    }
  }

  private async callTool(cmd: Extract<EffectCommand, { type: 'tool' }>, cancel: LazyAbort): Promise<EffectResult> {
    const def = this.tools.get(cmd.tool);
    if (!def) return { ok: false, error: { code: 'E_UNKNOWN_TOOL', message: `tool '${cmd.tool}' is not registered` } };
    if (def.input_schema !== undefined) {
      const vs = checkSchema(def.input_schema, cmd.args);
      if (vs.length) return { ok: false, error: { code: 'E_TOOL_INPUT_SCHEMA', message: `arguments for tool '${cmd.tool}' violate its input schema: ${describeViolations(vs)}` } };
    }
    try {
      const value = await def.run(cmd.args, new ToolCtx(cmd, cancel));
      return { ok: true, value: value as JsonValue };
    } catch (e) {
      return { ok: false, error: errorInfo(e, 'E_TOOL_ERROR') };
    }
  }

  /** Children run concurrently (bounded); each child's attempts are returned in declared order. */
  async parallel(cmd: ParallelCommand, machine: Machine): Promise<EffectResult[][]> {
    const results: EffectResult[][] = cmd.children.map(() => []);
    let nextChild = 0;
    const worker = async () => {
      while (nextChild < cmd.children.length) {
        const i = nextChild++;
        const first = cmd.children[i]!;
        for (let attempt = 1; ; attempt++) {
          const c: EffectCommand = first.type === 'llm' ? { ...first, attempt, call: first.call + attempt - 1 } : { ...first, attempt };
          const res = await this.perform(c);
          results[i]!.push(res);
          if (machine.checkResult(c.step, res).ok || !machine.shouldRetry(c.step, attempt)) break;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(cmd.max_concurrency, cmd.children.length)) }, worker));
    return results;
  }
}

/**
 * An AbortController created only when an effect actually reads its signal: most tools and
 * mock models never do, and a controller per effect is a measurable share of a fast step.
 */
class LazyAbort {
  private controller: AbortController | undefined;
  private reason: unknown;
  private aborted = false;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/** An effect's view of its cancellation: `signal` materializes on first read. */
abstract class WithSignal {
  constructor(private readonly cancel: LazyAbort) {}
  get signal(): AbortSignal {
    return this.cancel.signal;
  }
}

/** What a model adapter receives. */
class Request extends WithSignal implements ModelRequest {
  readonly step: string;
  readonly call: number;
  readonly attempt: number;
  readonly prompt: string;
  readonly projection: ModelRequest['projection'];
  readonly output: ModelRequest['output'];
  constructor(cmd: Extract<EffectCommand, { type: 'llm' }>, cancel: LazyAbort) {
    super(cancel);
    this.step = cmd.step;
    this.call = cmd.call;
    this.attempt = cmd.attempt;
    this.prompt = cmd.prompt;
    this.projection = cmd.projection;
    this.output = cmd.output;
  }
}

/** What a tool receives besides its arguments. */
class ToolCtx extends WithSignal implements ToolContext {
  readonly idempotencyKey: string;
  readonly step: string;
  readonly attempt: number;
  constructor(cmd: Extract<EffectCommand, { type: 'tool' }>, cancel: LazyAbort) {
    super(cancel);
    this.idempotencyKey = cmd.idempotency_key;
    this.step = cmd.step;
    this.attempt = cmd.attempt;
  }
}

function errorInfo(e: unknown, fallbackCode: string): { code: string; message: string } {
  if (e instanceof ModelError || e instanceof ToolError) return { code: e.code, message: e.message };
  if (e instanceof Error) {
    // Tools may throw their own coded errors (err.code = E_SOMETHING); keep such codes.
    const own = (e as Error & { code?: unknown }).code;
    return { code: typeof own === 'string' && /^E_[A-Z0-9_]+$/.test(own) ? own : fallbackCode, message: e.message };
  }
  return { code: fallbackCode, message: String(e) };
}
