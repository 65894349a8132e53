/**
 * `--gateway <file>`: tools of other MCP servers (docs/gateway.md) registered beside the tools
 * module's, so a program's tool step may name `<server>.<tool>`. The servers are started (or
 * reached) after the program file is read and stopped when the command ends, whatever happens.
 */
import { NanoVmError } from '@nano-vm/kernel';
import type { ToolRegistry } from '@nano-vm/runtime';
import { loadTools, readText } from './inputs.js';

/** What a command must do before it ends (stop the gateway's servers). */
export type Cleanup = (() => Promise<void>)[];

/** The tools module's tools and, with a gateway file, the remote tools; the gateway's close goes in `cleanup`. */
export async function loadRunTools(
  toolsFile: string | undefined,
  gatewayFile: string | undefined,
  cleanup: Cleanup,
): Promise<ToolRegistry> {
  const tools = await loadTools(toolsFile);
  if (gatewayFile === undefined) return tools;
  const text = readText(gatewayFile, 'gateway file');
  // Loaded only when asked for: the SDK is a large import for a command that does not need it.
  const { openGateway, parseGatewayFile } = await import('@nano-vm/mcp');
  const gateway = await openGateway(parseGatewayFile(text, gatewayFile));
  cleanup.push(() => gateway.close());
  try {
    for (const t of gateway.tools) tools.register(t);
  } catch (e) {
    if (e instanceof NanoVmError)
      throw e.withMessage(`${e.message} (a remote tool of ${gatewayFile} has the name of a tools module's tool)`);
    throw e;
  }
  return tools;
}

/** Runs `body`, then everything it left in its cleanup list, last first. */
export async function withCleanup<T>(body: (cleanup: Cleanup) => Promise<T>): Promise<T> {
  const cleanup: Cleanup = [];
  try {
    return await body(cleanup);
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  }
}
