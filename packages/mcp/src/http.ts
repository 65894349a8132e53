/**
 * `nano-vm mcp --http`: Streamable HTTP on one endpoint, `/mcp`. Before a request reaches the
 * SDK's transport it passes, in order: the Host and Origin checks (DNS rebinding), the bearer
 * token (401 with WWW-Authenticate), the principal's rate limit (429), the size limit (413), the
 * JSON parse (a JSON-RPC parse error, and the server stays up), the scope the called tool needs
 * (403) and the session's owner (a session belongs to the principal that opened it).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { Host } from './host.js';
import { principalForToken, RateLimiter, type Principal } from './principals.js';
import { createSessionServer } from './server.js';

export interface HttpOptions {
  host: string;
  port: number;
  /** Host header values accepted besides the loopback names of the bound port. */
  allowedHosts?: readonly string[];
  /** Origin header values accepted besides http://localhost:<port> and http://127.0.0.1:<port>. */
  allowedOrigins?: readonly string[];
}

export interface RunningHttp {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The scope a tools/call needs before it is let in (the service checks the finer ones, e.g. approve:<role>). */
const TOOL_SCOPE: Record<string, string> = {
  put_program: 'admin',
  run_program: 'run',
  delete_program: 'admin',
  erase_subject: 'erase',
  resume_run: 'approve:',
};

function scopeFor(msg: unknown): string {
  if (typeof msg !== 'object' || msg === null) return 'read';
  const m = msg as { method?: unknown; params?: { name?: unknown } };
  if (m.method === 'tools/call' && typeof m.params?.name === 'string') return TOOL_SCOPE[m.params.name] ?? 'read';
  return 'read';
}

const allows = (p: Principal, scope: string): boolean =>
  scope === 'approve:' ? p.scopes.some((s) => s.startsWith('approve:') || s === 'run') : p.scopes.includes(scope);

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const rpcError = (code: number, message: string) => ({ jsonrpc: '2.0', error: { code, message }, id: null });

/** Open sessions a principal may hold; opening one more closes its oldest. */
export const MAX_SESSIONS_PER_PRINCIPAL = 64;

export async function startHttp(host: Host, o: HttpOptions): Promise<RunningHttp> {
  const { service, config, rateLimiter } = host;
  const anonymous = new RateLimiter(60);
  const sessions = new Map<string, { transport: StreamableHTTPServerTransport; principal: string }>();
  let port = o.port;
  const hostsAllowed = (): Set<string> =>
    new Set([
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `[::1]:${port}`,
      `${o.host}:${port}`,
      ...(o.allowedHosts ?? []),
    ]);
  const originsAllowed = (): Set<string> =>
    new Set([
      `http://localhost:${port}`,
      `http://127.0.0.1:${port}`,
      `http://[::1]:${port}`,
      ...(o.allowedOrigins ?? []),
    ]);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // DNS rebinding: a page on another origin that resolved its name to 127.0.0.1 still sends its own Host/Origin.
    if (!hostsAllowed().has(req.headers.host ?? '')) return send(res, 403, rpcError(-32000, 'Host not allowed'));
    const origin = req.headers.origin;
    if (origin !== undefined && !originsAllowed().has(origin))
      return send(res, 403, rpcError(-32000, 'Origin not allowed'));
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/mcp') return send(res, 404, rpcError(-32000, 'not found: the MCP endpoint is /mcp'));

    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    const principal = m ? principalForToken(m[1]!, config.principals) : undefined;
    if (!principal) {
      // Refusals are rate-limited by address too, so nobody can fill the audit log without a token.
      if (!anonymous.take(`${req.socket.remoteAddress ?? '?'}`))
        return send(res, 429, rpcError(-32029, 'too many unauthenticated requests'), { 'retry-after': '60' });
      await service.deps.state.appendAudit({
        ts: new Date().toISOString(),
        principal: '(unauthenticated)',
        tool: 'http',
        args_hash: '',
        result: m ? 'invalid_token' : 'no_token',
        run_id: null,
      });
      return send(res, 401, rpcError(-32001, m ? 'invalid bearer token' : 'a bearer token is required'), {
        'www-authenticate': m
          ? 'Bearer realm="nano-vm", error="invalid_token", error_description="unknown token"'
          : 'Bearer realm="nano-vm"',
      });
    }
    if (!rateLimiter.take(principal.name))
      return send(res, 429, rpcError(-32029, `rate limit: principal ${principal.name} made too many requests`), {
        'retry-after': String(Math.max(1, rateLimiter.retryAfter(principal.name))),
      });

    let body: unknown;
    if (req.method === 'POST') {
      const max = config.limits.max_request_bytes;
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > max) {
        req.resume();
        return send(res, 413, rpcError(-32600, `request larger than ${max} bytes`), { connection: 'close' });
      }
      const chunks: Buffer[] = [];
      let size = 0;
      try {
        for await (const c of req) {
          size += (c as Buffer).length;
          if (size > max) {
            req.destroy();
            return send(res, 413, rpcError(-32600, `request larger than ${max} bytes`), { connection: 'close' });
          }
          chunks.push(c as Buffer);
        }
      } catch {
        return;
      }
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        return send(res, 400, rpcError(-32700, `parse error: ${(e as Error).message}`));
      }
      const messages = Array.isArray(body) ? body : [body];
      const missing = messages.map(scopeFor).find((s) => !allows(principal, s));
      if (missing !== undefined)
        return send(
          res,
          403,
          rpcError(
            -32003,
            `principal ${principal.name} lacks the scope ${missing === 'approve:' ? 'approve:<role>' : missing}`,
          ),
          {
            'www-authenticate': `Bearer realm="nano-vm", error="insufficient_scope", scope="${missing === 'approve:' ? 'approve:*' : missing}"`,
          },
        );
    }

    const sid = req.headers['mcp-session-id'];
    if (typeof sid === 'string') {
      const s = sessions.get(sid);
      if (!s) return send(res, 404, rpcError(-32001, 'unknown or expired session'));
      if (s.principal !== principal.name)
        return send(res, 403, rpcError(-32003, 'this session belongs to another principal'));
      await s.transport.handleRequest(req, res, body);
      return;
    }
    if (req.method !== 'POST' || !isInitializeRequest(body))
      return send(res, 400, rpcError(-32600, 'no session: send an initialize request first (without mcp-session-id)'));
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, principal: principal.name });
        // A principal's oldest sessions are closed beyond the cap (clients that never DELETE theirs).
        const own = [...sessions.values()].filter((x) => x.principal === principal.name);
        for (const old of own.slice(0, Math.max(0, own.length - MAX_SESSIONS_PER_PRINCIPAL)))
          void old.transport.close().catch(() => {});
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    const server = createSessionServer({ service, principal });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  const http: HttpServer = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      process.stderr.write(`nano-vm mcp: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      send(res, 500, rpcError(-32603, 'internal error'));
    });
  });
  http.requestTimeout = 0; // long runs stream their result; the client decides when to give up
  await new Promise<void>((res, rej) => {
    http.once('error', rej);
    http.listen(o.port, o.host, () => res());
  });
  port = (http.address() as AddressInfo).port;
  const shownHost = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${shownHost}:${port}/mcp`,
    port,
    async close() {
      for (const s of sessions.values()) await s.transport.close().catch(() => {});
      await new Promise<void>((res) => http.close(() => res()));
      http.closeAllConnections();
    },
  };
}
