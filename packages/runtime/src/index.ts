/**
 * `@nano-vm/runtime`: the public API of the host — run programs with real models, tools and stores,
 * recover and resume runs, erase subjects, plan programs. Every name is deliberate: the export list
 * is pinned by test/publicApi.test.ts. The runtime's tests reach internals through internal.ts.
 */
export { RUNTIME_VERSION } from './version.js';
export { nodeHasher } from './nodeHasher.js';
export { FixedClock, SeededIds, randomIds, randomSalt, systemClock, type IdSource } from './clock.js';

// Running.
export {
  checkInput,
  preflight,
  runProgram,
  runResult,
  DEFAULT_EFFECT_TIMEOUT_MS,
  type RunOptions,
  type RunResult,
} from './executor.js';
export { RunPool, packSummaries, type RunPoolOptions, type RunSummary } from './runPool.js';
export {
  overdueWaits,
  recoverRun,
  resumeRun,
  type RecoverOptions,
  type RecoverResult,
  type ResumeOptions,
  type ResumeResult,
} from './recover.js';
export {
  leaseOwnerGone,
  newLeaseOwner,
  RunLease,
  RunLeasedError,
  DEFAULT_LEASE_MS,
  type LeaseOptions,
} from './lease.js';
export { compilePolicy, issuesUnderPolicy, policyPreflight, type PolicyPreflight } from './policyRun.js';

// Tools.
export { toolsFromModule, ToolError, ToolRegistry, type ToolContext, type ToolDefinition } from './toolRegistry.js';

// Models: the port, the scripted model, real providers.
export { ModelError, type ModelAnswer, type ModelPort, type ModelRequest } from './model/port.js';
export { parseModelScript, ScriptError, ScriptedModel, type ModelScript } from './model/scripted.js';
export { modelFromSpec, MODEL_PROVIDERS, type ModelSpecOptions } from './model/modelSpec.js';
export { OpenAiChatModel, OPENAI_DEFAULT_BASE_URL, type OpenAiChatOptions } from './model/openaiChat.js';
export {
  AnthropicMessagesModel,
  ANTHROPIC_DEFAULT_BASE_URL,
  ANTHROPIC_DEFAULT_MAX_TOKENS,
  ANTHROPIC_VERSION,
  type AnthropicMessagesOptions,
} from './model/anthropicMessages.js';
export { FallbackChainModel, FALLS_THROUGH } from './model/fallbackChain.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy, type Sleep } from './model/retryPolicy.js';
export {
  costFromTable,
  loadPriceTable,
  parsePriceTable,
  type ModelPrice,
  type PriceTable,
} from './model/priceTable.js';
export type { HttpDeps } from './model/providerHttp.js';

// Stores: the interface, both backends, the shared idempotency bookkeeping a new backend applies.
export {
  StoreError,
  type Invocation,
  type Lease,
  type NewRun,
  type RunRecord,
  type RunWrite,
  type Store,
  type VaultRow,
  type VaultValue,
} from './store/store.js';
export { MemoryStore } from './store/memoryStore.js';
export { SqliteStore, type SqliteStoreOptions } from './store/sqliteStore.js';
export { invocationUpserts, reinvocationUpsert, type InvocationUpsert } from './store/invocations.js';

// Sensitive values and erasure.
export {
  eraseSubject,
  holdFor,
  openRunInput,
  sealInput,
  subjectOf,
  vaultEntries,
  type EraseOptions,
  type EraseReport,
  type SealedInput,
} from './vault.js';

// Signing bundles.
export {
  generateSigningKey,
  serializeSignature,
  signBundle,
  signingKeyFromPem,
  type SigningKey,
  type SigningKeyPair,
} from './signing.js';

// Telemetry.
export { loadOtelApi, otelEventHook, stepSpans, type EventObserver, type OtelApi, type OtelOptions } from './otel.js';

// The planner.
export {
  checkDraft,
  checkProgramTool,
  describeTools,
  planProgram,
  programText,
  plannerProgram,
  CHECK_TOOL,
  DEFAULT_PLAN_ATTEMPTS,
  MAX_PLAN_ATTEMPTS,
  PLANNER_PROGRAM_ID,
  type DraftCheck,
  type DraftIssue,
  type PlannerTool,
  type PlanOptions,
  type PlanResult,
} from './planner/index.js';
