/**
 * Everything a running server holds, built from its configuration: the run store and the server
 * state (one SQLite file, or memory), the model, the tools (the operator's modules plus, when the
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
import { NanoVmService } from './service.js';
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

/** Opens the store and the server state named by `spec` (`sqlite:<path>` or `memory:`). */
export function openStores(spec: string): { store: Store; state: ServerState } {
  if (spec === 'memory:') return { store: new MemoryStore(), state: new MemoryServerState() };
  const m = /^sqlite:(.+)$/.exec(spec);
  if (!m) throw new NanoVmError('E_STORE_SPEC', `store "${spec}" must be sqlite:<path> or memory:`);
  let store: Store;
  try {
    store = new SqliteStore(m[1]!, { groupCommit: true });
  } catch (e) {
    const code = e instanceof NanoVmError ? e.code : 'E_STORE_OPEN';
    throw new NanoVmError(code, `cannot open store ${m[1]}: ${(e as Error).message}`, { cause: e });
  }
  return { store, state: new SqliteServerState(m[1]!) };
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
  let stores: { store: Store; state: ServerState };
  try {
    stores = openStores(config.store);
  } catch (e) {
    await gateway?.close();
    throw e;
  }
  const { store, state } = stores;
  const service = new NanoVmService({
    store,
    state,
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
      await state.close();
      await store.close();
    },
  };
}
