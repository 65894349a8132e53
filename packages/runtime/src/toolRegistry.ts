/**
 * Tools are operator-supplied TypeScript/JavaScript functions with declared input and output
 * schemas. A tool receives an AbortSignal (its step's timeout) and an idempotency key that is the
 * same for every attempt of the same step visit, so a retried or recovered call can be deduplicated.
 */
import { NanoVmError, type JsonSchema, type JsonValue } from '@nano-vm/kernel';

export interface ToolContext {
  signal: AbortSignal;
  idempotencyKey: string;
  step: string;
  attempt: number;
}

export interface ToolDefinition {
  name: string;
  description?: string;
  input_schema?: JsonSchema;
  output_schema?: JsonSchema;
  run(args: Record<string, JsonValue>, ctx: ToolContext): unknown;
}

/** A tool definition or tools module nano-vm cannot use. (A tool reports its own failures with `err.code`.) */
export class ToolError extends NanoVmError {}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export class ToolRegistry {
  private readonly tools = new Map<string, ToolDefinition>();

  constructor(defs: Iterable<ToolDefinition> = []) {
    for (const d of defs) this.register(d);
  }

  register(def: ToolDefinition): this {
    if (typeof def?.name !== 'string' || !NAME.test(def.name))
      throw new ToolError('E_TOOL_DEFINITION', `tool name ${JSON.stringify(def?.name)} is not a valid identifier`);
    if (typeof def.run !== 'function')
      throw new ToolError('E_TOOL_DEFINITION', `tool '${def.name}' has no run function`);
    if (this.tools.has(def.name)) throw new ToolError('E_TOOL_DEFINITION', `tool '${def.name}' is registered twice`);
    this.tools.set(def.name, def);
    return this;
  }

  get(name: string): ToolDefinition | undefined {
    return this.tools.get(name);
  }

  /** The shape the validator needs: name -> declared schemas. */
  describe(): Record<string, { input_schema?: unknown; output_schema?: unknown }> {
    const out: Record<string, { input_schema?: unknown; output_schema?: unknown }> = {};
    for (const [n, d] of this.tools) out[n] = { input_schema: d.input_schema, output_schema: d.output_schema };
    return out;
  }

  names(): string[] {
    return [...this.tools.keys()].sort();
  }
}

/**
 * Accepts the shapes a tools module may export: `export const tools = [...]`, a default export of
 * an array, or a default export of `{ name: definition }`.
 */
export function toolsFromModule(mod: Record<string, unknown>, where: string): ToolRegistry {
  const candidate = mod.tools ?? mod.default;
  let defs: unknown[];
  if (Array.isArray(candidate)) defs = candidate;
  else if (candidate && typeof candidate === 'object')
    defs = Object.entries(candidate).map(([name, d]) => ({ name, ...(d as object) }));
  else
    throw new ToolError(
      'E_TOOLS_MODULE',
      `${where} must export \`tools\` (an array of tool definitions) or a default export of them`,
    );
  return new ToolRegistry(defs as ToolDefinition[]);
}
