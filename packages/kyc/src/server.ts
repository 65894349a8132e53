/**
 * The simulator's HTTP server (hono on @hono/node-server), bound to 127.0.0.1 by default.
 * packages/kyc/API.md is the contract. Bad requests get a 4xx with `{error: {code, message, path}}`
 * and change nothing; the web app is served from packages/kyc/web (/) and web-dist (/assets/).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, type ServerType } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { streamSSE } from 'hono/streaming';
import { JsonTextError, NanoVmError, parseJsonText, serializeBundle } from '@nano-vm/kernel';
import type { ModelPort } from '@nano-vm/runtime';
import { INJECTORS } from './injectors.js';
import { RequestError, REVIEWERS, Simulator, type SimEvent } from './simulator.js';

/** Largest request body (a user case is well under 4 KiB). */
export const MAX_BODY_BYTES = 64 * 1024;
export const DEFAULT_PORT = 4173;
export const MAX_ANALYTICS_RUNS = 500;
/** Events queued for one stream client before it is dropped as not reading. */
const MAX_SSE_BACKLOG = 10_000;

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

export interface ServerOptions {
  /** SQLite file for runs (created when missing). */
  store: string;
  port?: number;
  host?: string;
  model?: ModelPort;
  exampleDir?: string;
  /** Static roots; default packages/kyc/web and packages/kyc/web-dist. */
  webDir?: string;
  assetsDir?: string;
}

export interface RunningServer {
  url: string;
  port: number;
  host: string;
  simulator: Simulator;
  close(): Promise<void>;
}

type ErrorStatus = 400 | 404 | 405 | 409 | 413 | 415 | 421 | 422 | 500;

function errorBody(code: string, message: string, path?: string) {
  return { error: { code, message, ...(path !== undefined && { path }) } };
}

/** Reads a JSON object body strictly (duplicate names, depth, size are refused). */
async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\b/i.test(type))
    throw new RequestError('E_KYC_REQUEST', 'send the body as application/json', 400, '/');
  const text = await c.req.text();
  let v: unknown;
  try {
    v = parseJsonText(text, { maxChars: MAX_BODY_BYTES, maxDepth: 32 });
  } catch (e) {
    if (e instanceof JsonTextError)
      throw new RequestError('E_JSON', `the body is not valid JSON: ${e.message}`, 400, '/');
    throw e;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new RequestError('E_KYC_REQUEST', 'the body must be a JSON object', 400, '/');
  return v as Record<string, unknown>;
}

function onlyKeys(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(body))
    if (!allowed.includes(k))
      throw new RequestError('E_KYC_REQUEST', `unknown field '${k}'; expected ${allowed.join(', ')}`, 400, `/${k}`);
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};

/** A file under `root` for a request path, or null (path escapes, dotfiles, directories, missing). */
function staticFile(root: string, rel: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rel);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.split(/[\\/]/).some((s) => s.startsWith('.'))) return null;
  const base = resolve(root);
  const file = resolve(base, normalize(`.${sep}${decoded}`));
  if (file !== base && !file.startsWith(base + sep)) return null;
  if (!existsSync(file) || !statSync(file).isFile()) return null;
  return file;
}

export function createApp(sim: Simulator, o: { webDir: string; assetsDir: string; hosts?: readonly string[] }): Hono {
  const hosts = new Set(['127.0.0.1', 'localhost', '::1', ...(o.hosts ?? [])].map((h) => h.toLowerCase()));
  const app = new Hono();

  // DNS rebinding and cross-site requests: only this server's own loopback names, and same-origin writes.
  app.use('*', async (c, next) => {
    const host = (c.req.header('host') ?? '').toLowerCase();
    const hostname = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    if (!hosts.has(hostname))
      return c.json(
        errorBody('E_KYC_REQUEST', `refused Host '${host}': the simulator answers only to ${[...hosts].join(', ')}`),
        421,
      );
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const origin = c.req.header('origin');
      if (origin !== undefined && origin !== 'null') {
        let ok = false;
        try {
          ok = new URL(origin).host.toLowerCase() === host;
        } catch {
          ok = false;
        }
        if (!ok) return c.json(errorBody('E_KYC_REQUEST', `refused cross-origin request from ${origin}`), 403);
      }
    }
    await next();
  });

  app.onError((e, c) => {
    if (e instanceof RequestError) return c.json(errorBody(e.code, e.message, e.path), e.status);
    if (e instanceof NanoVmError) {
      const status: ErrorStatus =
        e.code === 'E_INPUT_INVALID' ? 422 : e.code === 'E_TOO_LARGE' ? 413 : e.code === 'E_TOO_DEEP' ? 400 : 500;
      return c.json(errorBody(e.code, e.message, e.issues[0]?.path), status);
    }
    console.error(e);
    return c.json(errorBody('E_INTERNAL', `internal error: ${(e as Error).message}`), 500);
  });

  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => c.json(errorBody('E_TOO_LARGE', `the body is larger than ${MAX_BODY_BYTES} bytes`, '/'), 413),
  });

  app.get('/api/meta', (c) => {
    const k = sim.kyc;
    return c.json({
      program: { id: k.program.id, version: k.program.version ?? null, hash: k.programHash, graph: k.graph },
      policy: { id: k.policy.id, version: k.policy.version ?? null, hash: k.policyHash, text: k.policyText },
      model: sim.modelInfo,
      fixtures: k.fixtures,
      cases: k.cases.map(({ id, title, summary, expect, input }) => ({ id, title, summary, expect, input })),
      injectors: INJECTORS,
      input_schema: k.program.input_schema ?? null,
      reviewers: REVIEWERS,
      limits: { max_body_bytes: MAX_BODY_BYTES, max_analytics_runs: MAX_ANALYTICS_RUNS },
    });
  });

  app.get('/api/runs', async (c) => c.json({ runs: await sim.list() }));

  app.post('/api/runs', limit, async (c) => {
    const body = await jsonBody(c);
    onlyKeys(body, ['case', 'input', 'injector', 'lanes']);
    if (body.lanes !== undefined && typeof body.lanes !== 'boolean')
      throw new RequestError('E_KYC_REQUEST', '"lanes" must be true or false', 400, '/lanes');
    const req = {
      case: body.case as string | undefined,
      input: body.input,
      injector: body.injector as string | undefined,
    };
    if (body.lanes === true) return c.json(await sim.lanes(req), 201);
    const id = await sim.start(req);
    const view = await sim.view(id);
    return c.json(view, 201);
  });

  app.get('/api/runs/:id', async (c) => c.json(await sim.view(c.req.param('id'))));

  app.get('/api/runs/:id/bundle', async (c) => {
    const id = c.req.param('id');
    const bundle = await sim.bundle(id);
    c.header('content-disposition', `attachment; filename="${id.replace(/[^A-Za-z0-9_.-]/g, '_')}.bundle.json"`);
    c.header('content-type', 'application/json');
    return c.body(serializeBundle(bundle));
  });

  app.get('/api/runs/:id/verify', async (c) => c.json(await sim.verify(c.req.param('id'))));

  app.post('/api/runs/:id/approve', limit, async (c) => {
    const body = await jsonBody(c);
    onlyKeys(body, ['reviewer', 'decision', 'note']);
    if (typeof body.reviewer !== 'string' || body.reviewer === '')
      throw new RequestError('E_KYC_REQUEST', '"reviewer" must be a reviewer id', 400, '/reviewer');
    if (!['approve', 'reject', 'escalate'].includes(body.decision as string))
      throw new RequestError('E_KYC_REQUEST', '"decision" must be approve, reject or escalate', 400, '/decision');
    const id = c.req.param('id');
    await sim.approve(id, body.reviewer, body.decision, body.note);
    return c.json(await sim.view(id));
  });

  app.get('/api/inbox', async (c) => c.json({ waiting: await sim.inbox() }));

  app.get('/api/analytics', async (c) => {
    const raw = c.req.query('runs') ?? '60';
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > MAX_ANALYTICS_RUNS)
      throw new RequestError('E_KYC_REQUEST', `runs must be an integer from 1 to ${MAX_ANALYTICS_RUNS}`, 400, '/runs');
    const seedRaw = c.req.query('seed') ?? '1';
    const seed = Number(seedRaw);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw new RequestError('E_KYC_REQUEST', 'seed must be a non-negative 32-bit integer', 400, '/seed');
    return c.json(await sim.analytics(n, seed));
  });

  app.get('/api/stream', (c) =>
    streamSSE(c, async (stream) => {
      const queue: SimEvent[] = [];
      let wake: (() => void) | null = null;
      // A client that stops reading is dropped rather than buffered without bound.
      const off = sim.subscribe((e) => {
        if (queue.length >= MAX_SSE_BACKLOG) {
          off();
          stream.abort();
        } else queue.push(e);
        wake?.();
      });
      stream.onAbort(() => {
        off();
        wake?.();
      });
      await stream.writeSSE({ event: 'hello', data: JSON.stringify({ program: sim.kyc.program.id }) });
      while (!stream.aborted) {
        const e = queue.shift();
        if (e) {
          await stream.writeSSE({ event: e.type, data: JSON.stringify(e.data) });
          continue;
        }
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 15_000).unref();
        });
        wake = null;
        if (!queue.length && !stream.aborted) await stream.writeSSE({ event: 'ping', data: '{}' });
      }
      off();
    }),
  );

  app.all('/api/*', (c) =>
    c.json(errorBody('E_KYC_NOT_FOUND', `no API route ${c.req.method} ${c.req.path} (see packages/kyc/API.md)`), 404),
  );

  const serve = (root: string, rel: string, c: Context, what: string) => {
    if (!existsSync(root))
      return c.json(
        errorBody(
          'E_KYC_NOT_FOUND',
          `${what} is not built: ${root} does not exist (run \`npm run build\`; the API is at /api/meta)`,
        ),
        404,
      );
    const file = staticFile(root, rel);
    if (!file) return c.json(errorBody('E_KYC_NOT_FOUND', `no file ${c.req.path}`), 404);
    c.header('content-type', CONTENT_TYPES[extname(file)] ?? 'application/octet-stream');
    c.header('x-content-type-options', 'nosniff');
    return c.body(readFileSync(file));
  };
  app.get('/assets/*', (c) => serve(o.assetsDir, c.req.path.slice('/assets/'.length), c, 'the web bundle (web-dist)'));
  app.get('/', (c) => serve(o.webDir, 'index.html', c, 'the web app (packages/kyc/web)'));
  app.get('/*', (c) => serve(o.webDir, c.req.path.slice(1), c, 'the web app (packages/kyc/web)'));
  app.all('*', (c) => c.json(errorBody('E_KYC_NOT_FOUND', `${c.req.method} ${c.req.path} is not served`), 404));
  return app;
}

/** Opens the store, starts listening and resolves once the port is bound. */
export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const sim = await Simulator.open({
    store: o.store,
    ...(o.model && { model: o.model }),
    ...(o.exampleDir && { exampleDir: o.exampleDir }),
  });
  const host = o.host ?? '127.0.0.1';
  let port = o.port ?? DEFAULT_PORT;
  const app = createApp(sim, {
    webDir: o.webDir ?? join(PACKAGE_DIR, 'web'),
    assetsDir: o.assetsDir ?? join(PACKAGE_DIR, 'web-dist'),
    hosts: [host],
  });
  let server: ServerType;
  try {
    server = await new Promise<ServerType>((res, rej) => {
      const s = serve({ fetch: app.fetch, port, hostname: host }, (info: AddressInfo) => {
        port = info.port;
        res(s);
      });
      s.once('error', rej);
    });
  } catch (e) {
    await sim.close();
    throw e;
  }
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    host,
    simulator: sim,
    close: async () => {
      await new Promise<void>((r) => {
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => r());
      });
      await sim.close();
    },
  };
}
