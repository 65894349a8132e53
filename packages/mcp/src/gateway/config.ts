/**
 * The gateway's server list: which other MCP servers a program's tool steps may reach, how to
 * start or reach each, and which of its tools are offered. Checked whole before anything starts:
 * a bad entry is E_GATEWAY_CONFIG naming the entry, never a half-opened gateway.
 */
import { JsonTextError, MAX_PROGRAM_BYTES, NanoVmError, parseJsonText } from '@nano-vm/kernel';
import { parse as parseYaml } from 'yaml';

/** One MCP server behind the gateway: a stdio `command` or an HTTP `url` (Streamable HTTP). */
export interface GatewayServerConfig {
  /** The prefix of its tools in programs: a step names `<name>.<tool>`. */
  name: string;
  command?: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  url?: string;
  headers?: Record<string, string>;
  /** The allow-list: only these remote tools are offered (all of them when absent). */
  tools?: string[];
  /** Upper bound, in ms, on connecting and on each call (the step's own timeout still applies). */
  timeout_ms?: number;
}

/** A server name: an identifier without dots, so `<server>.<tool>` splits one way only. */
export const SERVER_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
/** A remote tool name a program can write after `<server>.` (the registry's tool-name rule). */
export const REMOTE_TOOL_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

const KEYS = new Set(['name', 'command', 'args', 'env', 'cwd', 'url', 'headers', 'tools', 'timeout_ms']);
/** The longest time a server may be given (a day): a bigger number is a typo, not a plan. */
const MAX_TIMEOUT_MS = 86_400_000;

/**
 * A gateway file's value (a list of servers, or `{ servers: [...] }`) -> checked server configs.
 * `where` names the file in messages.
 */
export function parseGatewayServers(value: unknown, where = 'gateway config'): GatewayServerConfig[] {
  const list = Array.isArray(value)
    ? value
    : isObject(value) && Object.hasOwn(value, 'servers') && Object.keys(value).length === 1
      ? value.servers
      : undefined;
  if (!Array.isArray(list))
    throw bad(`${where}: expected a list of servers (or { servers: [...] }), each { name, command | url, ... }`);
  const seen = new Set<string>();
  return list.map((entry, i) => {
    const at = `${where}: servers[${i}]`;
    const s = checkServer(entry, at);
    if (seen.has(s.name)) throw bad(`${at}: server name '${s.name}' is given twice`);
    seen.add(s.name);
    return s;
  });
}

/**
 * A gateway file's text (JSON when `file` ends in .json, else YAML) -> checked server configs.
 * Strict: a member given twice, a YAML alias bomb or an oversized file is E_GATEWAY_CONFIG.
 */
export function parseGatewayFile(text: string, file: string): GatewayServerConfig[] {
  if (text.length > MAX_PROGRAM_BYTES) throw bad(`${file}: the file is longer than ${MAX_PROGRAM_BYTES} characters`);
  let value: unknown;
  try {
    value = file.toLowerCase().endsWith('.json')
      ? parseJsonText(text)
      : parseYaml(text, { uniqueKeys: true, maxAliasCount: 50, prettyErrors: true });
  } catch (e) {
    const detail = e instanceof JsonTextError ? `${e.detail} at byte ${e.offset}` : (e as Error).message;
    throw bad(`${file}: not a readable ${file.toLowerCase().endsWith('.json') ? 'JSON' : 'YAML'} document: ${detail}`);
  }
  return parseGatewayServers(value, file);
}

function checkServer(entry: unknown, at: string): GatewayServerConfig {
  if (!isObject(entry)) throw bad(`${at}: expected an object { name, command | url, ... }`);
  for (const k of Object.keys(entry)) if (!KEYS.has(k)) throw bad(`${at}: unknown property '${k}'`);
  const { name } = entry;
  if (typeof name !== 'string' || !SERVER_NAME.test(name))
    throw bad(
      `${at}: name must be an identifier (letters, digits, '_' or '-', no dots, at most 64 characters), not ${JSON.stringify(name)}`,
    );
  const here = `${at} ('${name}')`;
  const hasCommand = entry.command !== undefined;
  const hasUrl = entry.url !== undefined;
  if (hasCommand === hasUrl) throw bad(`${here}: give exactly one of command (stdio) and url (Streamable HTTP)`);
  const out: GatewayServerConfig = { name };
  if (hasCommand) {
    out.command = nonEmptyString(entry.command, `${here}: command`);
    if (entry.args !== undefined) out.args = stringList(entry.args, `${here}: args`);
    if (entry.env !== undefined) out.env = stringMap(entry.env, `${here}: env`);
    if (entry.cwd !== undefined) out.cwd = nonEmptyString(entry.cwd, `${here}: cwd`);
    if (entry.headers !== undefined) throw bad(`${here}: headers apply to a url server only`);
  } else {
    const url = nonEmptyString(entry.url, `${here}: url`);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw bad(`${here}: url ${JSON.stringify(url)} is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw bad(`${here}: url must be http: or https:, not ${parsed.protocol}`);
    out.url = url;
    if (entry.headers !== undefined) out.headers = stringMap(entry.headers, `${here}: headers`);
    for (const k of ['args', 'env', 'cwd'] as const)
      if (entry[k] !== undefined) throw bad(`${here}: ${k} applies to a command server only`);
  }
  if (entry.tools !== undefined) {
    const tools = stringList(entry.tools, `${here}: tools`);
    for (const t of tools)
      if (!REMOTE_TOOL_NAME.test(t))
        throw bad(`${here}: tools: ${JSON.stringify(t)} is not a tool name a program can write`);
    if (new Set(tools).size !== tools.length) throw bad(`${here}: tools: a tool is listed twice`);
    out.tools = tools;
  }
  if (entry.timeout_ms !== undefined) {
    const t = entry.timeout_ms;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > MAX_TIMEOUT_MS)
      throw bad(`${here}: timeout_ms must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}`);
    out.timeout_ms = t;
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nonEmptyString(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw bad(`${what} must be a non-empty string`);
  return v;
}

function stringList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(`${what} must be a list of strings`);
  return [...(v as string[])];
}

function stringMap(v: unknown, what: string): Record<string, string> {
  if (!isObject(v)) throw bad(`${what} must be a mapping of strings`);
  // A null-prototype copy: a member named __proto__ stays a name.
  const out = Object.create(null) as Record<string, string>;
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string') throw bad(`${what}: ${k} must be a string`);
    out[k] = x;
  }
  return out;
}

/** `${env:NAME}`: a value taken from nano-vm's environment, so a token need not be written in a file. */
const ENV_REF = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * The config with `${env:NAME}` in `env` and `headers` values replaced, once (a value that comes
 * from the environment is not read again): E_GATEWAY_CONFIG for a variable that is not set.
 */
export function withEnvValues(config: GatewayServerConfig, env: NodeJS.ProcessEnv = process.env): GatewayServerConfig {
  const expand = (m: Record<string, string> | undefined, what: string) => {
    if (m === undefined) return undefined;
    const out = Object.create(null) as Record<string, string>;
    for (const [k, x] of Object.entries(m))
      out[k] = x.replace(ENV_REF, (_m, name: string) => {
        const value = env[name];
        if (value === undefined)
          throw bad(`server '${config.name}': ${what}: ${k} names the environment variable ${name}, which is not set`);
        return value;
      });
    return out;
  };
  const envValues = expand(config.env, 'env');
  const headers = expand(config.headers, 'headers');
  return { ...config, ...(envValues ? { env: envValues } : {}), ...(headers ? { headers } : {}) };
}

function bad(message: string): NanoVmError {
  return new NanoVmError('E_GATEWAY_CONFIG', message);
}
