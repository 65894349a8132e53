/**
 * Effects: performs model and tool calls for the executor with timeouts and cancellation, and
 * turns every failure into a coded EffectResult.
 */
import { checkSchema, describeViolations, type EffectCommand, type EffectResult, type JsonValue, type Machine, type ParallelCommand } from '@nano-vm/kernel';
import { deadline } from './deadlines.js';
import { ModelError, type ModelPort, type ModelRequest } from './model/port.js';
import { ToolError, type ToolContext, type ToolRegistry } from './toolRegistry.js';

/** Performs model and tool calls; turns every failure into a coded EffectResult, never a throw. */
export class Effects {
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
