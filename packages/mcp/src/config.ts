/**
 * The MCP server's configuration file (JSON, docs/mcp.md): where runs are kept, which model and
 * tools programs run with, under which policy, who may call (principals by hashed bearer token),
 * limits, and the other MCP servers whose tools the gateway offers. The operator writes it; a
 * client never supplies any of it.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { NanoVmError, parseJsonText } from '@nano-vm/kernel';
import { parseGatewayServers, type GatewayServerConfig } from './gateway/config.js';
import { SCOPE_PATTERN, type Principal } from './principals.js';

/** Another MCP server whose tools programs may call (src/gateway/, docs/gateway.md). */
export type { GatewayServerConfig };

export interface ServerLimits {
  /** Largest HTTP request body accepted (413 beyond it). */
  max_request_bytes: number;
  /** Tool calls and HTTP requests per principal per minute (429 beyond it; a token bucket). */
  rate_per_minute: number;
  /** Largest page of list_runs / get_trace / list_programs. */
  max_page: number;
  /** How long run_program with wait true waits for a worker (a PostgreSQL store), in ms, before E_MCP_WAIT_LIMIT. */
  wait_ms: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  max_request_bytes: 4 * 1024 * 1024,
  rate_per_minute: 600,
  max_page: 500,
  wait_ms: 120_000,
};
export const DEFAULT_PORT = 8765;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_STDIO_PRINCIPAL: Principal = { name: 'local', scopes: ['read', 'run'] };

/** A configured principal: the token itself is never stored, only its SHA-256. */
export interface PrincipalEntry extends Principal {
  token_sha256: string;
}

export interface ServerConfig {
  /** `sqlite:<path>` or `memory:`. */
  store: string;
  /** A model spec (`scripted:<file>`, `openai:<model>`, …; docs/models.md), or none. */
  model?: string;
  /** An ES module exporting `tools`. */
  tools?: string;
  /** A policy file every run is held to. */
  policy?: string;
  /**
   * Whether run_program takes inline program text (true), or only programs an admin stored with
   * put_program (false): then a `run` principal can run only what the catalogue holds.
   */
  inline_programs: boolean;
  principals: PrincipalEntry[];
  stdio_principal: Principal;
  limits: ServerLimits;
  http: { host: string; port: number; allowed_hosts: string[]; allowed_origins: string[] };
  gateway: GatewayServerConfig[];
}

export const DEFAULT_STORE = 'sqlite:./.nano-vm/nano-vm.db';

const TOP = new Set([
  'store',
  'model',
  'tools',
  'policy',
  'inline_programs',
  'principals',
  'stdio_principal',
  'limits',
  'http',
  'gateway',
]);

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function bad(where: string, message: string): NanoVmError {
  return new NanoVmError('E_MCP_CONFIG', `${where}: ${message} (docs/mcp.md "Configuration")`);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(v: unknown, where: string): string {
  if (typeof v !== 'string' || v === '') throw bad(where, 'must be a non-empty string');
  return v;
}

function strings(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw bad(where, 'must be a list of strings');
  return v as string[];
}

function positive(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw bad(where, 'must be a positive integer');
  return v;
}

function scopesOf(v: unknown, where: string): string[] {
  const list = strings(v, where);
  for (const s of list) if (!SCOPE_PATTERN.test(s)) throw bad(where, `unknown scope ${JSON.stringify(s)}`);
  return list;
}

/**
 * Reads and checks a config file; relative paths in it are relative to its directory. Tokens given
 * by `token_env` are read from `env` now and kept only as their hash.
 */
export function loadServerConfig(file: string, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new NanoVmError('E_MCP_CONFIG', `cannot read the server config ${file}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = parseJsonText(text);
  } catch (e) {
    throw bad(file, `not valid JSON: ${(e as Error).message}`);
  }
  return parseServerConfig(value, file, env);
}

export function parseServerConfig(value: unknown, file: string, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  if (!isObj(value)) throw bad(file, 'must be a JSON object');
  for (const k of Object.keys(value)) if (!TOP.has(k)) throw bad(`${file} ${k}`, 'unknown member');
  const base = dirname(resolve(file));
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const cfg: ServerConfig = {
    store: DEFAULT_STORE,
    inline_programs: true,
    principals: [],
    stdio_principal: DEFAULT_STDIO_PRINCIPAL,
    limits: { ...DEFAULT_LIMITS },
    http: { host: DEFAULT_HOST, port: DEFAULT_PORT, allowed_hosts: [], allowed_origins: [] },
    gateway: [],
  };
  if (value.store !== undefined) {
    const s = str(value.store, `${file} store`);
    cfg.store = s.startsWith('sqlite:') ? `sqlite:${path(s.slice('sqlite:'.length))}` : s;
  }
  if (value.model !== undefined) {
    const m = str(value.model, `${file} model`);
    cfg.model = m.startsWith('scripted:') ? `scripted:${path(m.slice('scripted:'.length))}` : m;
  }
  if (value.inline_programs !== undefined) {
    if (typeof value.inline_programs !== 'boolean') throw bad(`${file} inline_programs`, 'must be true or false');
    cfg.inline_programs = value.inline_programs;
  }
  if (value.tools !== undefined) cfg.tools = path(str(value.tools, `${file} tools`));
  if (value.policy !== undefined) cfg.policy = path(str(value.policy, `${file} policy`));
  if (value.principals !== undefined) {
    if (!Array.isArray(value.principals)) throw bad(`${file} principals`, 'must be a list');
    const names = new Set<string>();
    cfg.principals = value.principals.map((p, i) => {
      const at = `${file} principals[${i}]`;
      if (!isObj(p)) throw bad(at, 'must be an object');
      for (const k of Object.keys(p))
        if (!['name', 'token_sha256', 'token_env', 'scopes'].includes(k)) throw bad(`${at}.${k}`, 'unknown member');
      const name = str(p.name, `${at}.name`);
      if (names.has(name)) throw bad(`${at}.name`, `principal ${name} is listed twice`);
      names.add(name);
      let hash: string;
      if (p.token_sha256 !== undefined) {
        hash = str(p.token_sha256, `${at}.token_sha256`).toLowerCase();
        if (!/^[0-9a-f]{64}$/.test(hash))
          throw bad(`${at}.token_sha256`, 'must be 64 hex digits (sha256 of the token)');
      } else if (p.token_env !== undefined) {
        const v = env[str(p.token_env, `${at}.token_env`)];
        if (!v) throw bad(`${at}.token_env`, `environment variable ${String(p.token_env)} is not set`);
        hash = sha256Hex(v);
      } else throw bad(at, 'needs token_sha256 or token_env');
      return { name, token_sha256: hash, scopes: scopesOf(p.scopes ?? [], `${at}.scopes`) };
    });
    const hashes = new Set(cfg.principals.map((p) => p.token_sha256));
    if (hashes.size !== cfg.principals.length) throw bad(`${file} principals`, 'two principals share one token');
  }
  if (value.stdio_principal !== undefined) {
    const p = value.stdio_principal;
    if (!isObj(p)) throw bad(`${file} stdio_principal`, 'must be an object {name, scopes}');
    cfg.stdio_principal = {
      name: str(p.name, `${file} stdio_principal.name`),
      scopes: scopesOf(p.scopes ?? [], `${file} stdio_principal.scopes`),
    };
  }
  if (value.limits !== undefined) {
    if (!isObj(value.limits)) throw bad(`${file} limits`, 'must be an object');
    for (const [k, v] of Object.entries(value.limits)) {
      if (!(k in DEFAULT_LIMITS)) throw bad(`${file} limits.${k}`, 'unknown member');
      cfg.limits[k as keyof ServerLimits] = positive(v, `${file} limits.${k}`);
    }
  }
  if (value.http !== undefined) {
    const h = value.http;
    if (!isObj(h)) throw bad(`${file} http`, 'must be an object');
    for (const k of Object.keys(h))
      if (!['host', 'port', 'allowed_hosts', 'allowed_origins'].includes(k))
        throw bad(`${file} http.${k}`, 'unknown member');
    if (h.host !== undefined) cfg.http.host = str(h.host, `${file} http.host`);
    if (h.port !== undefined) cfg.http.port = positive(h.port, `${file} http.port`);
    if (h.allowed_hosts !== undefined) cfg.http.allowed_hosts = strings(h.allowed_hosts, `${file} http.allowed_hosts`);
    if (h.allowed_origins !== undefined)
      cfg.http.allowed_origins = strings(h.allowed_origins, `${file} http.allowed_origins`);
  }
  if (value.gateway !== undefined) cfg.gateway = gatewayList(value.gateway, `${file} gateway`, path);
  return cfg;
}

/** The `gateway` list, checked by the gateway's own parser (one definition of a server entry); `cwd` is relative to the config file. */
function gatewayList(v: unknown, where: string, path: (p: string) => string): GatewayServerConfig[] {
  if (!Array.isArray(v)) throw bad(where, 'must be a list');
  try {
    return parseGatewayServers(v, where).map((s) => (s.cwd === undefined ? s : { ...s, cwd: path(s.cwd) }));
  } catch (e) {
    if (e instanceof NanoVmError && e.code === 'E_GATEWAY_CONFIG') throw new NanoVmError('E_MCP_CONFIG', e.message);
    throw e;
  }
}
