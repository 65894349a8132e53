/**
 * `nano-vm mcp --stdio`: one session over stdin/stdout, as the config's stdio principal (the
 * process that spawned the server is trusted to be that principal: it holds its stdin). Nothing
 * but protocol messages goes to stdout.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { Host } from './host.js';
import { createSessionServer } from './server.js';

/** Serves until stdin ends (the client closed the connection). */
export async function serveStdio(host: Host): Promise<void> {
  const server = createSessionServer({
    service: host.service,
    principal: host.config.stdio_principal,
    rateLimiter: host.rateLimiter,
  });
  const transport = new StdioServerTransport();
  // A line that is not JSON-RPC is reported and skipped; the session goes on.
  transport.onerror = (e) => process.stderr.write(`nano-vm mcp: ${e.message}\n`);
  const closed = new Promise<void>((res) => {
    process.stdin.once('end', res);
    process.stdin.once('close', res);
  });
  await server.connect(transport);
  await closed;
  await server.close();
}
