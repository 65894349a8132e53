/**
 * One MCP server session for one principal: tools/list and tools/call over the service, resources
 * (programs, runs, receipts, bundles by URI, with templates) and subscriptions to runs. Every call
 * is written to the audit log. Built on the SDK's low-level `Server`, so the tools' schemas are
 * plain JSON Schema (the same documents docs/mcp.md shows).
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type CallToolResult,
} from '@modelcontextprotocol/sdk/types.js';
import { canonicalJson, NanoVmError, serializeBundle, type Issue } from '@nano-vm/kernel';
import type { Principal, RateLimiter } from './principals.js';
import { checkArgs, type NanoVmService } from './service.js';
import { sha256 } from './state.js';
import { TOOLS } from './tools.js';
import { RUNTIME_VERSION as MCP_VERSION } from '@nano-vm/runtime';

export interface SessionOptions {
  service: NanoVmService;
  principal: Principal;
  /** Per-principal rate limit on tool calls (HTTP limits requests before they get here). */
  rateLimiter?: RateLimiter;
}

/** A domain error as a tool result: `isError`, with the code and message as JSON text. */
export function errorResult(e: unknown): CallToolResult {
  const err =
    e instanceof NanoVmError
      ? { code: e.code, message: e.message, ...(e.issues.length ? { issues: e.issues.slice(0, 50) as Issue[] } : {}) }
      : { code: 'E_INTERNAL', message: e instanceof Error ? e.message : String(e) };
  return { isError: true, content: [{ type: 'text', text: JSON.stringify({ error: err }) }] };
}

const PROGRESS_SETTLE_MS = 10;

const RUN_URI = /^nano-vm:\/\/runs\/([^/]+)(?:\/(receipt|bundle|trace))?$/;
const PROGRAM_URI = /^nano-vm:\/\/programs\/([^/]+)(?:\/(\d+))?$/;

export function createSessionServer(o: SessionOptions): Server {
  const { service, principal } = o;
  const server = new Server(
    { name: 'nano-vm', version: MCP_VERSION, title: 'nano-vm: governed programs with proof' },
    {
      capabilities: { tools: {}, resources: { subscribe: true } },
      instructions:
        'nano-vm runs governed programs (a declared state machine; the model only computes inside it) and returns proof: a hash-chained trace, a receipt, a bundle anyone can verify and replay. Run with run_program; approve waiting runs with resume_run; fetch proof with get_receipt / export_bundle; check with verify_bundle.',
    },
  );
  const audit = async (tool: string, args: unknown, result: string, runId: string | null): Promise<void> => {
    let argsHash: string;
    try {
      argsHash = sha256(canonicalJson((args ?? {}) as never));
    } catch {
      argsHash = sha256(JSON.stringify(args ?? null));
    }
    await service.deps.state.appendAudit({
      ts: new Date().toISOString(),
      principal: principal.name,
      tool,
      args_hash: argsHash,
      result,
      run_id: runId,
    });
  };

  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: TOOLS.map((t) => ({
      name: t.name,
      title: t.title,
      description: t.description,
      inputSchema: t.inputSchema as never,
      outputSchema: t.outputSchema as never,
      ...(t.annotations ? { annotations: t.annotations } : {}),
    })),
  }));

  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const tool = TOOLS.find((t) => t.name === req.params.name);
    if (!tool) throw new McpError(ErrorCode.InvalidParams, `unknown tool ${req.params.name}`);
    const args = (req.params.arguments ?? {}) as Record<string, unknown>;
    if (o.rateLimiter && !o.rateLimiter.take(principal.name)) {
      await audit(tool.name, args, 'rate_limited', null);
      throw new McpError(-32029, `rate limit: principal ${principal.name} made too many calls; retry later`);
    }
    const token = req.params._meta?.progressToken;
    // Notifications go out in order and before the result. The SDK's client dispatches a
    // notification a microtask later than a response read in the same chunk, and drops progress for
    // a request already answered: so the result waits a moment after the last notification.
    let sent: Promise<void> = Promise.resolve();
    let notified = false;
    const flush = async (): Promise<void> => {
      await sent;
      if (notified) await new Promise((res) => setTimeout(res, PROGRESS_SETTLE_MS));
    };
    const progress =
      token === undefined
        ? undefined
        : (n: number, message: string): void => {
            notified = true;
            sent = sent
              .then(() =>
                extra.sendNotification({
                  method: 'notifications/progress',
                  params: { progressToken: token, progress: n, message },
                }),
              )
              .catch(() => {});
          };
    let result: Record<string, unknown> | undefined;
    try {
      checkArgs(tool.inputSchema, args, tool.name);
      result = (await tool.call(service, principal, args, progress)) as Record<string, unknown>;
      await flush();
    } catch (e) {
      await flush();
      const r = errorResult(e);
      let runId: string | null = null;
      try {
        runId = tool.runOf?.(args, undefined) ?? null;
      } catch {
        runId = null;
      }
      await audit(tool.name, args, e instanceof NanoVmError ? e.code : 'E_INTERNAL', runId);
      return r;
    }
    await audit(tool.name, args, 'ok', tool.runOf?.(args, result) ?? null);
    return { structuredContent: result, content: [{ type: 'text', text: JSON.stringify(result) }] };
  });

  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: [
      {
        uriTemplate: 'nano-vm://runs/{run_id}',
        name: 'run',
        title: 'A run',
        mimeType: 'application/json',
        description: 'status, outcome, head hash; subscribe to hear of status changes',
      },
      {
        uriTemplate: 'nano-vm://runs/{run_id}/receipt',
        name: 'receipt',
        title: 'A run’s receipt',
        mimeType: 'application/json',
      },
      {
        uriTemplate: 'nano-vm://runs/{run_id}/bundle',
        name: 'bundle',
        title: 'A run’s bundle',
        mimeType: 'application/json',
      },
      {
        uriTemplate: 'nano-vm://runs/{run_id}/trace',
        name: 'trace',
        title: 'A run’s events',
        mimeType: 'application/json',
      },
      {
        uriTemplate: 'nano-vm://programs/{name}',
        name: 'program',
        title: 'A stored program (latest version)',
        mimeType: 'application/json',
      },
      {
        uriTemplate: 'nano-vm://programs/{name}/{version}',
        name: 'program-version',
        title: 'A stored program version',
        mimeType: 'application/json',
      },
    ],
  }));

  server.setRequestHandler(ListResourcesRequestSchema, async () => {
    const { programs } = await service.listPrograms(principal, {});
    const { runs } = await service.listRuns(principal, { limit: 100 });
    return {
      resources: [
        ...programs.map((p) => ({
          uri: `nano-vm://programs/${encodeURIComponent(p.name)}/${p.version}`,
          name: `${p.name} v${p.version}`,
          mimeType: 'application/json',
        })),
        ...runs.map((r) => ({
          uri: `nano-vm://runs/${r.run_id}`,
          name: `${r.program_id} ${r.run_id}`,
          mimeType: 'application/json',
        })),
      ],
    };
  });

  const readRun = async (id: string, part: string | undefined): Promise<string> => {
    if (part === 'receipt') return JSON.stringify((await service.getReceipt(principal, { run_id: id })).receipt);
    if (part === 'trace')
      return JSON.stringify((await service.getTrace(principal, { run_id: id, limit: 1_000_000 })).events);
    const run = await service.getRun(principal, { run_id: id });
    return part === 'bundle' ? serializeBundle(await service.bundleOf(id)) : JSON.stringify(run);
  };

  server.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    const uri = req.params.uri;
    const run = RUN_URI.exec(uri);
    const prog = PROGRAM_URI.exec(uri);
    const runId = run ? decodeURIComponent(run[1]!) : null;
    let text: string;
    try {
      if (run) text = await readRun(runId!, run[2]);
      else if (prog)
        text = JSON.stringify(
          await service.getProgram(principal, {
            name: decodeURIComponent(prog[1]!),
            ...(prog[2] !== undefined ? { version: Number(prog[2]) } : {}),
          }),
        );
      else throw new NanoVmError('E_MCP_ARGS', `no resource ${uri}: see resources/templates/list`);
    } catch (e) {
      const code = e instanceof NanoVmError ? e.code : 'E_INTERNAL';
      await audit('resources/read', { uri }, code, runId);
      if (e instanceof NanoVmError) throw new McpError(-32002, `${e.code}: ${e.message}`, { code: e.code });
      throw e;
    }
    await audit('resources/read', { uri }, 'ok', runId);
    return { contents: [{ uri, mimeType: 'application/json', text }] };
  });

  // Subscriptions: a run's URI (or any of its sub-resources) is notified when its status changes.
  const subscribed = new Set<string>();
  const onStatus = (runId: string): void => {
    for (const uri of subscribed) {
      const m = RUN_URI.exec(uri);
      if (m && decodeURIComponent(m[1]!) === runId) void server.sendResourceUpdated({ uri }).catch(() => {});
    }
  };
  service.on('status', onStatus);
  server.onclose = () => {
    service.off('status', onStatus);
  };
  server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    const m = RUN_URI.exec(req.params.uri);
    if (!m) throw new McpError(ErrorCode.InvalidParams, 'only runs (nano-vm://runs/{run_id}) can be subscribed to');
    try {
      await service.getRun(principal, { run_id: decodeURIComponent(m[1]!) });
    } catch (e) {
      if (e instanceof NanoVmError) throw new McpError(-32002, `${e.code}: ${e.message}`, { code: e.code });
      throw e;
    }
    subscribed.add(req.params.uri);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, (req) => {
    subscribed.delete(req.params.uri);
    return {};
  });
  return server;
}
