/** @nano-vm/mcp — see the package description; the public API is pinned by test/publicApi.test.ts once it exists. */
export const PACKAGE_NAME = '@nano-vm/mcp';

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
