/**
 * Effects: performs model and tool calls for the executor with timeouts and cancellation, and
 * turns every failure into a coded EffectResult.
 */
import {
  checkSchema,
  retryOf,
  type CompiledProgram,
  describeViolations,
  type EffectCommand,
  type EffectResult,
  type JsonValue,
  type ParallelCommand,
} from '@nano-vm/kernel';
import { watchDeadline, type Deadline } from './deadlines.js';
import { ModelError, type ModelPort, type ModelRequest } from './model/port.js';
import { ToolError, type ToolContext, type ToolRegistry } from './toolRegistry.js';

/** Performs model and tool calls; turns every failure into a coded EffectResult, never a throw. */
export class Effects {
  constructor(
    private readonly model: ModelPort,
    private readonly tools: ToolRegistry,
    private readonly defaultTimeoutMs: number,
  ) {}

  /**
   * One call under its timeout. The in-flight record is at once the adapter's request (or the
   * tool's context), the registered deadline and the cancellation: one object per effect, where a
   * promise chain with closures per effect was a visible share of a fast run's allocation.
   */
  perform(cmd: EffectCommand): Promise<EffectResult> {
    const ms = cmd.timeout_ms ?? this.defaultTimeoutMs;
    const call = cmd.type === 'llm' ? new ModelCall(cmd, ms) : new ToolCall(cmd, ms);
    const settled = new Promise<EffectResult>((resolve) => call.onSettle(resolve));
    watchDeadline(call, ms);
    if (call instanceof ModelCall) void this.callModel(call);
    else void this.callTool(call);
    return settled;
  }

  private async callModel(call: ModelCall): Promise<void> {
    let r: EffectResult;
    try {
      const a = await this.model.complete(call);
      r = { ok: true, raw: a.raw, model: a.model };
      if (a.usage) r.usage = a.usage;
      if (a.cost_usd !== undefined) r.cost_usd = a.cost_usd;
      if (a.fallbacks?.length)
        r.fallbacks = a.fallbacks.map((f) => ({ model: f.model, code: f.code, message: f.message }));
    } catch (e) {
      r = { ok: false, error: errorInfo(e, 'E_MODEL_ERROR'), model: this.model.id };
    }
    call.settle(r);
  }

  private async callTool(call: ToolCall): Promise<void> {
    const def = this.tools.get(call.tool);
    if (!def)
      return call.settle({
        ok: false,
        error: { code: 'E_UNKNOWN_TOOL', message: `tool '${call.tool}' is not registered` },
      });
    if (def.input_schema !== undefined) {
      const vs = checkSchema(def.input_schema, call.args);
      if (vs.length)
        return call.settle({
          ok: false,
          error: {
            code: 'E_TOOL_INPUT_SCHEMA',
            message: `arguments for tool '${call.tool}' violate its input schema: ${describeViolations(vs)}`,
          },
        });
    }
    let r: EffectResult;
    try {
      r = { ok: true, value: (await def.run(call.args, call)) as JsonValue };
    } catch (e) {
      r = { ok: false, error: errorInfo(e, 'E_TOOL_ERROR') };
    }
    call.settle(r);
  }

  /** Children run concurrently (bounded); each child's attempts are returned in declared order. */
  async parallel(cmd: ParallelCommand, cp: CompiledProgram): Promise<EffectResult[][]> {
    const results: EffectResult[][] = cmd.children.map(() => []);
    let nextChild = 0;
    const worker = async () => {
      while (nextChild < cmd.children.length) {
        const i = nextChild++;
        // The successor's retry rule says whether a failed attempt is tried again, and how.
        for (let c: EffectCommand | null = cmd.children[i]!; c !== null;) {
          const res = await this.perform(c);
          results[i]!.push(res);
          c = retryOf(cp, c, res);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(cmd.max_concurrency, cmd.children.length)) }, worker));
    return results;
  }
}

/**
 * An effect in flight: its deadline (registered with deadlines.ts), its cancellation and the
 * settling of its result, whichever of the call and the timeout comes first. The AbortController
 * is created only when the adapter or tool reads `signal`: most tools and mock models never do,
 * and a controller per effect is a measurable share of a fast step.
 */
abstract class InFlight implements Deadline {
  readonly at: number;
  done = false;
  #resolve: ((r: EffectResult) => void) | undefined;
  #controller: AbortController | undefined;
  #reason: unknown;
  #aborted = false;

  constructor(private readonly ms: number) {
    this.at = performance.now() + ms;
  }

  abstract readonly step: string;
  /** 'llm' or 'tool', for the timeout message. */
  protected abstract readonly kind: string;

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  onSettle(resolve: (r: EffectResult) => void): void {
    this.#resolve = resolve;
  }

  /** The call's result, unless the deadline came first. */
  settle(r: EffectResult): void {
    if (this.done) return;
    this.done = true;
    const resolve = this.#resolve!;
    // The deadline list may hold this record a while longer: let it keep nothing of the result.
    this.#resolve = undefined;
    resolve(r);
  }

  /** The deadline passed first: cancel the call and settle as E_TIMEOUT; a later result is dropped. */
  fire(): void {
    if (this.done) return;
    const message = `${this.kind} step '${this.step}' timed out after ${this.ms} ms`;
    this.#aborted = true;
    this.#reason = new ModelError('E_TIMEOUT', message);
    this.#controller?.abort(this.#reason);
    this.settle({ ok: false, error: { code: 'E_TIMEOUT', message } });
  }
}

/** What a model adapter receives. */
class ModelCall extends InFlight implements ModelRequest {
  protected readonly kind = 'llm';
  readonly step: string;
  readonly call: number;
  readonly attempt: number;
  readonly prompt: string;
  readonly projection: ModelRequest['projection'];
  readonly output: ModelRequest['output'];
  constructor(cmd: Extract<EffectCommand, { type: 'llm' }>, ms: number) {
    super(ms);
    this.step = cmd.step;
    this.call = cmd.call;
    this.attempt = cmd.attempt;
    this.prompt = cmd.prompt;
    this.projection = cmd.projection;
    this.output = cmd.output;
  }
}

/** What a tool receives besides its arguments. */
class ToolCall extends InFlight implements ToolContext {
  protected readonly kind = 'tool';
  readonly idempotencyKey: string;
  readonly step: string;
  readonly attempt: number;
  readonly tool: string;
  readonly args: Record<string, JsonValue>;
  constructor(cmd: Extract<EffectCommand, { type: 'tool' }>, ms: number) {
    super(ms);
    this.idempotencyKey = cmd.idempotency_key;
    this.step = cmd.step;
    this.attempt = cmd.attempt;
    this.tool = cmd.tool;
    this.args = cmd.args;
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
