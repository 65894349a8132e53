/**
 * Everything a running server holds, built from its configuration: the run store and the server
 * state (one SQLite file, one PostgreSQL schema, or memory), the model, the tools (the operator's modules plus, when the
 * config lists other MCP servers, the gateway's tools) and the policy.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { firstErrorCode, loadPolicy, NanoVmError, type PolicySnapshot } from '@nano-vm/kernel';
import {
  MemoryStore,
  ModelError,
  modelFromSpec,
  SqliteStore,
  ToolRegistry,
  toolsFromModule,
  type ModelPort,
  type Store,
} from '@nano-vm/runtime';
import type { ServerConfig } from './config.js';
import { RateLimiter } from './principals.js';
import { NanoVmService, type RunQueue } from './service.js';
import { MemoryServerState, type ServerState } from './state.js';
import { SqliteServerState } from './sqliteState.js';

export interface Host {
  service: NanoVmService;
  config: ServerConfig;
  rateLimiter: RateLimiter;
  close(): Promise<void>;
}

/** A run whose program has no llm step needs no model; one that has gets this refusal. */
const NO_MODEL: ModelPort = {
  id: 'none',
  scripted: false,
  complete: () =>
    Promise.reject(
      new ModelError('E_MODEL_SPEC', 'the MCP server has no model configured (its config has no "model")'),
    ),
};

/**
 * Opens the store and the server state named by `spec`: `sqlite:<path>`, `memory:`, or
 * `postgres://…` (the store's schema must be migrated; the MCP tables are migrated here). On
 * PostgreSQL runs go to workers: `queue` enqueues them and hears of their status changes.
 */
export async function openStores(
  spec: string,
  opts: { waitMs?: number; migrate?: boolean } = {},
): Promise<{ store: Store; state: ServerState; queue?: RunQueue; close?: () => Promise<void> }> {
  if (spec === 'memory:') return { store: new MemoryStore(), state: new MemoryServerState() };
  if (/^postgres(ql)?:\/\//.test(spec)) return openPostgres(spec, opts);
  const m = /^sqlite:(.+)$/.exec(spec);
  if (!m)
    throw new NanoVmError(
      'E_STORE_SPEC',
      `store "${spec}" must be sqlite:<path>, memory: or postgres://[user@]host[:port]/database[?schema=name]`,
    );
  let store: Store;
  try {
    store = new SqliteStore(m[1]!, { groupCommit: true });
  } catch (e) {
    const code = e instanceof NanoVmError ? e.code : 'E_STORE_OPEN';
    throw new NanoVmError(code, `cannot open store ${m[1]}: ${(e as Error).message}`, { cause: e });
  }
  return { store, state: new SqliteServerState(m[1]!) };
}

async function openPostgres(
  spec: string,
  opts: { waitMs?: number; migrate?: boolean },
): Promise<{ store: Store; state: ServerState; queue: RunQueue; close: () => Promise<void> }> {
  // Loaded only for a postgres:// store: a server on SQLite never loads the driver.
  const [{ PostgresStore, submitRun }, { PostgresServerState, RunWatch }] = await Promise.all([
    import('@nano-vm/store-postgres'),
    import('./postgresState.js'),
  ]);
  const store = new PostgresStore(spec);
  let watch: import('./postgresState.js').RunWatch | undefined;
  try {
    await store.open();
    const state = await PostgresServerState.open(store, { migrate: opts.migrate !== false });
    watch = await RunWatch.open(store);
    const w = watch;
    const queue: RunQueue = {
      waitMs: opts.waitMs ?? 120_000,
      async submit(s) {
        await submitRun(store, {
          program: s.program,
          input: s.input,
          runId: s.runId,
          ...(s.policy ? { policy: s.policy } : {}),
        });
      },
      async submission(runId) {
        const r = await store.query<{ error: string | null }>(
          `SELECT error FROM ${store.s}.queue WHERE run_id = $1`,
          [runId],
          'reading a submission',
        );
        const row = r.rows[0];
        if (!row) return undefined;
        return row.error === null ? { state: 'queued' } : { state: 'refused', error: row.error };
      },
      on: (listener) => w.on(listener),
    };
    return { store, state, queue, close: () => w.close() };
  } catch (e) {
    await watch?.close();
    await store.close();
    throw e;
  }
}

async function loadToolsModule(file: string): Promise<ToolRegistry> {
  const abs = resolve(file);
  if (!existsSync(abs)) throw new NanoVmError('E_TOOLS_MODULE', `tools module ${file} does not exist`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (e) {
    throw new NanoVmError('E_TOOLS_MODULE', `tools module ${file} failed to load: ${(e as Error).message}`);
  }
  return toolsFromModule(mod, file);
}

function loadPolicyFile(file: string): PolicySnapshot {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new NanoVmError('E_FILE', `cannot read policy ${file}: ${(e as Error).message}`);
  }
  const loaded = loadPolicy(text, { file, format: file.endsWith('.json') ? 'json' : 'yaml' });
  if (!loaded.policy)
    throw new NanoVmError(
      firstErrorCode(loaded.issues, 'E_POLICY_INVALID'),
      `policy ${file} is invalid`,
      loaded.issues,
    );
  return loaded.policy;
}

export async function openHost(config: ServerConfig): Promise<Host> {
  const model = config.model ? modelFromSpec(config.model, { env: process.env }) : NO_MODEL;
  const tools = config.tools ? await loadToolsModule(config.tools) : new ToolRegistry();
  const policy = config.policy ? loadPolicyFile(config.policy) : undefined;
  let gateway: { close(): Promise<void> } | undefined;
  if (config.gateway.length) {
    // Loaded only when the config lists servers: a server without a gateway never loads the MCP client.
    const { openGateway } = await import('./gateway/index.js');
    const opened = await openGateway(config.gateway);
    gateway = opened;
    for (const t of opened.tools) tools.register(t);
  }
  let stores: Awaited<ReturnType<typeof openStores>>;
  try {
    stores = await openStores(config.store, { waitMs: config.limits.wait_ms });
  } catch (e) {
    await gateway?.close();
    throw e;
  }
  const { store, state, queue } = stores;
  const service = new NanoVmService({
    store,
    state,
    ...(queue ? { queue } : {}),
    model,
    tools,
    ...(policy ? { policy } : {}),
    limits: config.limits,
    inlinePrograms: config.inline_programs,
  });
  return {
    service,
    config,
    rateLimiter: new RateLimiter(config.limits.rate_per_minute),
    async close() {
      await service.settle();
      await gateway?.close();
      await stores.close?.();
      await state.close();
      await store.close();
    },
  };
}
