/**
 * The governed gateway: tools of other MCP servers as the runtime's ToolDefinitions. A program's
 * tool step names one as `<server>.<tool>`; the runtime then grants it (policy grants name the
 * same string), checks its arguments and output, times it out and records it exactly as a local
 * tool, and this module makes the call as an MCP client (docs/gateway.md).
 */
import { NanoVmError } from '@nano-vm/kernel';
import type { ToolDefinition } from '@nano-vm/runtime';
import { REMOTE_TOOL_NAME, type GatewayServerConfig, parseGatewayServers, withEnvValues } from './config.js';
import { ServerConnection } from './connection.js';
import { remoteToolDefinition } from './remoteTool.js';

export { parseGatewayFile, parseGatewayServers, type GatewayServerConfig } from './config.js';
export { DEFAULT_CONNECT_TIMEOUT_MS } from './connection.js';
export { ATTEMPT_META_KEY, IDEMPOTENCY_META_KEY, STEP_META_KEY } from './remoteTool.js';

export interface Gateway {
  /** Every offered remote tool, named `<server>.<tool>`, in server then tool order. */
  tools: ToolDefinition[];
  /** Ends every connection (stdio servers are stopped, HTTP sessions ended). Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Starts or reaches every server (concurrently), reads its tools and applies its allow-list.
 * Either every server is open and every allow-listed tool found, or nothing stays open and the
 * first problem is thrown: E_GATEWAY_CONFIG (the list, an allow-list, a remote tool's schema),
 * E_GATEWAY_CONNECT (a server that cannot be started, reached or listed).
 */
export async function openGateway(
  servers: readonly GatewayServerConfig[],
  opts: { signal?: AbortSignal } = {},
): Promise<Gateway> {
  const checked = parseGatewayServers(servers).map((s) => withEnvValues(s));
  const opened: ServerConnection[] = [];
  const close = async () => {
    await Promise.all(opened.splice(0).map((c) => c.close()));
  };
  try {
    const results = await Promise.allSettled(
      checked.map(async (config) => {
        const conn = await ServerConnection.open(config, opts.signal);
        opened.push(conn);
        return offeredTools(conn, await conn.listTools(opts.signal));
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const tools = results.flatMap((r) => (r as PromiseFulfilledResult<ToolDefinition[]>).value);
    return { tools, close };
  } catch (e) {
    await close();
    throw e;
  }
}

function offeredTools(
  conn: ServerConnection,
  listed: Awaited<ReturnType<ServerConnection['listTools']>>,
): ToolDefinition[] {
  const { name, tools: allow } = conn.config;
  const byName = new Map(listed.map((t) => [t.name, t]));
  if (allow === undefined)
    // Without an allow-list every tool a program can name is offered; the policy's grants still decide who may call it.
    return listed.filter((t) => REMOTE_TOOL_NAME.test(t.name)).map((t) => remoteToolDefinition(conn, t));
  return allow.map((t) => {
    const tool = byName.get(t);
    if (!tool)
      throw new NanoVmError(
        'E_GATEWAY_CONFIG',
        `MCP server '${name}' (${conn.describe()}) offers no tool '${t}' (its allow-list names it); it offers: ${[...byName.keys()].sort().join(', ') || 'none'}`,
      );
    return remoteToolDefinition(conn, tool);
  });
}
