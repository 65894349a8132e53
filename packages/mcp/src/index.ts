/**
 * `@nano-vm/mcp`: the MCP server (docs/mcp.md). `nano-vm mcp` is its command; embedders build a
 * host from a config and serve it over stdio or Streamable HTTP.
 */

// The governed gateway: tools of other MCP servers as runtime tools (docs/gateway.md).
export {
  ATTEMPT_META_KEY,
  DEFAULT_CONNECT_TIMEOUT_MS,
  IDEMPOTENCY_META_KEY,
  openGateway,
  parseGatewayFile,
  parseGatewayServers,
  STEP_META_KEY,
  type Gateway,
  type GatewayServerConfig,
} from './gateway/index.js';

// Importing llm-nano-vm v0.8 programs (docs/import.md).
export { importV08, type ImportResult, type ImportWarning } from './import/importV08.js';
export {
  loadServerConfig,
  parseServerConfig,
  sha256Hex,
  DEFAULT_HOST,
  DEFAULT_LIMITS,
  DEFAULT_PORT,
  DEFAULT_STDIO_PRINCIPAL,
  type PrincipalEntry,
  type ServerConfig,
  type ServerLimits,
} from './config.js';
export { hasScope, principalForToken, RateLimiter, SCOPE_PATTERN, type Principal, type Scope } from './principals.js';
export {
  AUDIT_GENESIS,
  MemoryServerState,
  verifyAuditLog,
  type AuditEntry,
  type IdempotencyRecord,
  type NewAuditEntry,
  type Page,
  type ProgramRef,
  type RunMeta,
  type ServerState,
  type StoredProgram,
} from './state.js';
export { SqliteServerState } from './sqliteState.js';
export {
  MCP_MIGRATIONS,
  MCP_SCHEMA_VERSION,
  PostgresServerState,
  runsChannel,
  type McpMigration,
} from './postgresState.js';
export {
  NanoVmService,
  type ProgramSource,
  type RunQueue,
  type RunReport,
  type RunView,
  type ServiceDeps,
} from './service.js';
export { TOOLS, type ToolSpec } from './tools.js';
export { createSessionServer, errorResult, type SessionOptions } from './server.js';
export { openHost, openStores, type Host } from './host.js';
export { serveStdio } from './stdio.js';
export { startHttp, type HttpOptions, type RunningHttp } from './http.js';
