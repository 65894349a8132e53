/**
 * A remote MCP tool as a runtime ToolDefinition: the runtime grants, times out, checks and records
 * it exactly as a local tool (it cannot tell them apart); this module only turns the MCP call and
 * its result into what a local tool's `run` returns or throws.
 */
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, ErrorCode, McpError, type Tool } from '@modelcontextprotocol/sdk/types.js';
import {
  canonicalForm,
  checkSchema,
  checkValueLimits,
  describeViolations,
  NanoVmError,
  type JsonSchema,
  type JsonValue,
} from '@nano-vm/kernel';
import { ToolError, type ToolContext, type ToolDefinition } from '@nano-vm/runtime';
import type { ServerConnection } from './connection.js';

/** The `_meta` member that carries a call's idempotency key (same for every attempt of a step visit). */
export const IDEMPOTENCY_META_KEY = 'nano-vm/idempotency_key';
/** The `_meta` members that say which step and attempt made the call (for the remote's logs). */
export const STEP_META_KEY = 'nano-vm/step';
export const ATTEMPT_META_KEY = 'nano-vm/attempt';

/** A call's upper bound when the server sets no timeout_ms: the step's own timeout governs. */
const NO_SERVER_TIMEOUT_MS = 2_147_483_647;
const MAX_DESCRIPTION_CHARS = 2000;

/** The definition a program reaches as `<server>.<tool>`. Schemas are checked usable here (E_GATEWAY_CONFIG). */
export function remoteToolDefinition(conn: ServerConnection, tool: Tool): ToolDefinition {
  const name = `${conn.config.name}.${tool.name}`;
  const input_schema = usableSchema(tool.inputSchema, `${name}: inputSchema`);
  const output_schema =
    tool.outputSchema === undefined ? undefined : usableSchema(tool.outputSchema, `${name}: outputSchema`);
  const description = tool.description ?? tool.title;
  return {
    name,
    ...(description !== undefined ? { description: description.slice(0, MAX_DESCRIPTION_CHARS) } : {}),
    input_schema,
    ...(output_schema !== undefined ? { output_schema } : {}),
    run: (args, ctx) => callRemote(conn, tool.name, name, output_schema, args, ctx),
  };
}

async function callRemote(
  conn: ServerConnection,
  remoteName: string,
  name: string,
  outputSchema: JsonSchema | undefined,
  args: Record<string, JsonValue>,
  ctx: ToolContext,
): Promise<JsonValue> {
  if (conn.closedBecause !== undefined)
    throw new ToolError(
      'E_GATEWAY_UNAVAILABLE',
      `remote tool '${name}': MCP server '${conn.config.name}' (${conn.describe()}) is not available: ${conn.closedBecause}${conn.stderrNote()}`,
    );
  let result;
  try {
    result = await conn.client.request(
      {
        method: 'tools/call',
        params: {
          name: remoteName,
          arguments: args,
          _meta: {
            [IDEMPOTENCY_META_KEY]: ctx.idempotencyKey,
            [STEP_META_KEY]: ctx.step,
            [ATTEMPT_META_KEY]: ctx.attempt,
          },
        },
      },
      CallToolResultSchema,
      { signal: ctx.signal, timeout: conn.config.timeout_ms ?? NO_SERVER_TIMEOUT_MS },
    );
  } catch (e) {
    // The step's deadline came first: the runtime has already recorded E_TIMEOUT and drops this.
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw callError(conn, name, e);
  }
  return resultValue(result, name, outputSchema);
}

function callError(conn: ServerConnection, name: string, e: unknown): ToolError {
  const message = e instanceof Error ? e.message : String(e);
  const server = `MCP server '${conn.config.name}' (${conn.describe()})`;
  if (e instanceof McpError && e.code === ErrorCode.RequestTimeout)
    return new ToolError(
      'E_TIMEOUT',
      `remote tool '${name}' timed out after the server's timeout_ms (${conn.config.timeout_ms} ms)`,
    );
  if (e instanceof McpError && e.code !== ErrorCode.ConnectionClosed)
    // A JSON-RPC error answer: the server is there and refused or failed the call.
    return new ToolError(
      'E_TOOL_ERROR',
      `remote tool '${name}': ${server} answered with error ${e.code}: ${clip(message)}`,
    );
  if (
    e instanceof Error &&
    (e.name === 'MessageTooLarge' || (e.cause instanceof Error && e.cause.name === 'MessageTooLarge'))
  )
    return new ToolError(
      'E_TOO_LARGE',
      `remote tool '${name}': ${server}: ${e.cause instanceof Error ? e.cause.message : message} (docs/limits.md)`,
    );
  if (e instanceof Error && e.name === 'ZodError')
    return new ToolError(
      'E_GATEWAY_RESULT',
      `remote tool '${name}': ${server} sent a result that is not an MCP tool result: ${clip(message)}`,
    );
  const why = e instanceof StreamableHTTPError ? `HTTP ${e.code ?? '?'}: ${message}` : message;
  return new ToolError(
    'E_GATEWAY_UNAVAILABLE',
    `remote tool '${name}': ${server} is not available (${clip(why)})${conn.closedBecause !== undefined ? `: ${conn.closedBecause}` : ''}${conn.stderrNote()}`,
  );
}

/** What the step's output becomes: `structuredContent`, else the text of the content blocks. */
function resultValue(
  result: {
    isError?: boolean | undefined;
    content: unknown[];
    structuredContent?: Record<string, unknown> | undefined;
  },
  name: string,
  outputSchema: JsonSchema | undefined,
): JsonValue {
  if (result.isError === true)
    throw new ToolError(
      'E_TOOL_ERROR',
      `remote tool '${name}' reported an error: ${clip(textOf(result.content, name)) || '(no message)'}`,
    );
  if (result.structuredContent !== undefined) {
    const value = plainJson(result.structuredContent, `remote tool '${name}' structuredContent`);
    if (outputSchema !== undefined) {
      const vs = checkSchema(outputSchema, value);
      if (vs.length)
        throw new ToolError(
          'E_TOOL_OUTPUT_SCHEMA',
          `remote tool '${name}' output violates the outputSchema it declares: ${describeViolations(vs)}`,
        );
    }
    return value;
  }
  if (outputSchema !== undefined)
    throw new ToolError(
      'E_TOOL_OUTPUT_SCHEMA',
      `remote tool '${name}' declares an outputSchema but returned no structuredContent`,
    );
  return textOf(result.content, name);
}

/** The text blocks joined by newlines; any other block cannot enter the state (E_GATEWAY_RESULT). */
function textOf(content: unknown[], name: string): string {
  const parts: string[] = [];
  for (const block of content) {
    const b = block as { type?: unknown; text?: unknown };
    if (b.type !== 'text' || typeof b.text !== 'string')
      throw new ToolError(
        'E_GATEWAY_RESULT',
        `remote tool '${name}' returned a ${JSON.stringify(String(b.type))} content block and no structuredContent: only text or structured results can enter a run`,
      );
    parts.push(b.text);
  }
  const text = parts.join('\n');
  checkValueLimits(text, `remote tool '${name}' output`);
  return text;
}

/**
 * Remote data -> a plain JSON value, or E_GATEWAY_RESULT / a limit error. Within the limits first
 * (before anything walks it), then copied through the canonical form: members named `__proto__`
 * or `constructor` stay data, and nothing that is not JSON survives.
 */
function plainJson(value: unknown, what: string): JsonValue {
  checkValueLimits(value, what);
  try {
    return canonicalForm(value as JsonValue).value;
  } catch (e) {
    throw new ToolError('E_GATEWAY_RESULT', `${what} is not plain JSON: ${(e as Error).message}`);
  }
}

/** A remote schema the kernel's checker can use, as plain JSON (E_GATEWAY_CONFIG otherwise). */
function usableSchema(schema: unknown, what: string): JsonSchema {
  let copy: JsonValue;
  try {
    checkValueLimits(schema, what);
    copy = canonicalForm(schema as JsonValue).value;
    checkSchema(copy as JsonSchema, {});
  } catch (e) {
    throw new NanoVmError('E_GATEWAY_CONFIG', `${what} is not a usable JSON Schema: ${(e as Error).message}`);
  }
  return copy as JsonSchema;
}

function clip(s: string): string {
  return s.length > 500 ? `${s.slice(0, 497)}...` : s;
}
