/**
 * `@nano-vm/kernel`: the public API of the pure core. Every name here is deliberate: the export
 * list of each entry point is pinned by test/publicApi.test.ts, so adding or removing one shows in
 * review. Focused entry points hold what users import separately and are also re-exported here:
 * `@nano-vm/kernel/verify` (offline and browser verification), `/guard` (the guard language),
 * `/replay` and `/analyze`. Everything else in src/ is internal (the kernel's tests reach it
 * through internal.ts, which package.json does not export).
 */

// Errors: one family, one table of codes (docs/errors.md).
export {
  ERROR_CODES,
  firstErrorCode,
  formatIssue,
  formatLocation,
  isErrorCode,
  NanoVmError,
  type ErrorCode,
  type ErrorLocation,
  type ExitClass,
  type Issue,
  type NanoVmErrorOptions,
  type Severity,
} from './errors.js';

// Programs: the model, loading from YAML/JSON with source positions, validation.
export {
  outputSchemaOf,
  startOf,
  PROGRAM_FORMAT,
  type Budgets,
  type ConditionCase,
  type ConditionStep,
  type EndStep,
  type JsonSchema,
  type JsonValue,
  type LlmOutput,
  type LlmStep,
  type OnError,
  type ParallelChild,
  type ParallelStep,
  type Program,
  type Step,
  type StepKind,
  type ToolStep,
  type WaitStep,
} from './program.js';
export { PROGRAM_SCHEMA } from './programSchema.js';
export {
  loadProgram,
  locateIssues,
  programFromValue,
  LOAD_CODES,
  type LoadOptions,
  type LoadResult,
  type SourceMap,
  type SourcePosition,
} from './load.js';
export { validateProgram, VALIDATION_CODES, type ToolDescription, type ValidateOptions } from './validate.js';
export { checkInputSchema, checkSchema, describeViolations, type SchemaViolation } from './schemaCheck.js';
export { DEFAULT_BUDGETS, CompiledProgram } from './compiledProgram.js';

// Policies.
export {
  legalHoldFor,
  policyRules,
  DEFAULT_DENY_RULE,
  POLICY_BLOCKED_CODE,
  POLICY_BLOCKED_OUTCOME,
  POLICY_FORMAT,
  POLICY_PINNED_RULE,
  POLICY_SCHEMA,
  type DenyRule,
  type GrantRule,
  type LegalHold,
  type PolicySnapshot,
  type PrecedenceRule,
  type RequiredStepRule,
  type ThresholdValue,
} from './policy.js';
export { loadPolicy, policyFromValue, type PolicyLoadResult } from './policyLoad.js';
export {
  CompiledPolicy,
  firstPolicyChange,
  policyOption,
  type PolicyDecision,
  type PolicyRejection,
} from './policyGate.js';
export { policyGuardGlobals, validatePolicy, POLICY_CODES, type ValidatePolicyOptions } from './validatePolicy.js';

// Running: the successor function, the machine that wraps it, and what a host performs.
export {
  retryOf,
  successor,
  type EventDraft,
  type Happening,
  type SealedUse,
  type SuccessorEnv,
  type Transition,
} from './successor.js';
export { initialState, type RunState, type StepRecord, type StoredOutput } from './runState.js';
export { Machine, type MachineOptions } from './machine.js';
export type {
  Clock,
  Command,
  DoneCommand,
  EffectCommand,
  EffectResult,
  ExternalEvent,
  LlmCommand,
  ParallelCommand,
  ToolCommand,
  WaitCommand,
} from './command.js';
export { checkModelAnswer, type Checked } from './outputCheck.js';
export type { ProjectedView } from './projection.js';
export { applyRecordedWait, RecordedCursor, type RecordedWait } from './recordedCursor.js';

// The trace: events, the hash chain, canonical JSON.
export {
  ADMIN_EVENT_TYPES,
  EVENT_TYPES,
  type ConditionEvaluatedEvent,
  type ErasureRefusedEvent,
  type ErrorInfo,
  type EventBody,
  type EventType,
  type GuardResult,
  type ModelFallback,
  type PolicyCheckedEvent,
  type RunFinishedEvent,
  type RunResumedEvent,
  type RunStartedEvent,
  type RunStatus,
  type RunSuspendedEvent,
  type StepCompletedEvent,
  type StepFailedEvent,
  type StepFallbackEvent,
  type StepRetryEvent,
  type StepStartedEvent,
  type TransitionRejectedEvent,
  type Usage,
  type ValuesErasedEvent,
  type VisitsExhaustedEvent,
  type WaitTimedOutEvent,
} from './events.js';
export { TraceChain } from './chain.js';
export { canonicalForm, CanonicalJsonError } from './canonicalJson.js';
export type { ErasureSummary, RejectedTransition, RunCommitments, RunHealth } from './receipt.js';

// Sensitive values: commitments, the vault, redaction (docs/privacy.md).
export {
  commitValue,
  replaceAtPaths,
  scrubEvent,
  sensitiveLeaves,
  subjectKey,
  COMMITMENT_PREFIX,
  Redactor,
  SealedDecisionError,
  type Sealed,
  type SealedDecisions,
  type SensitiveLeaf,
} from './redact.js';

// Reading untrusted JSON: strict text (no duplicate names, UTF-8 checked), limits on depth and size,
// members named by data (`__proto__` is data). docs/limits.md.
export { setMember, ownMember } from './dataMember.js';
export { parseJsonText, decodeUtf8, JsonTextError, type JsonTextProblem, type JsonTextLimits } from './jsonText.js';
export {
  checkValueLimits,
  LimitError,
  MAX_JSON_DEPTH,
  MAX_DOCUMENT_DEPTH,
  MAX_VALUE_CHARS,
  MAX_PROGRAM_BYTES,
  MAX_BUNDLE_BYTES,
} from './limits.js';

// Signing keys (verification is in ./verify).
export { parsePrivateKeyPem, privateKeyPem, publicKeyPem } from './signature.js';

export * from './api/verify.js';
export * from './api/guard.js';
export * from './api/replay.js';
export * from './api/analyze.js';
