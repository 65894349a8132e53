/**
 * `@nano-vm/dev-agent`: governed, transactional code changes for git repositories
 * (docs/dev-agent.md). The export list is pinned by test/publicApi.test.ts.
 */
export {
  runDevAgent,
  repositoryRoot,
  requireClean,
  bundledTsc,
  attemptSummaries,
  DEFAULT_CHECKS,
  DEFAULT_TESTS,
  NOTES_REF,
  SIGNATURE_NOTES_REF,
  type AttemptSummary,
  type DevAgentOptions,
  type DevAgentResult,
} from './devAgent.js';
export { auditRange, type AuditedCommit, type AuditOptions, type AuditReport } from './audit.js';
export {
  devAgentProgram,
  devAgentPolicy,
  DEV_AGENT_PROGRAM_ID,
  DEFAULT_MAX_ATTEMPTS,
  MAX_ATTEMPTS_LIMIT,
  COMMITTED,
  NO_PASSING_PATCH,
} from './agentProgram.js';
export { DEFAULT_LIMITS, DEFAULT_IDENTITY, type AgentLimits, type Identity } from './agentTools.js';
export { vetPathText, vetPath, type PathVerdict, type VettedPath } from './pathVetting.js';
export { touchedPaths, type FileEdit, type Patch, type TouchedPath } from './patch.js';
export { cleanEnvironment, commandPrograms, runCheck, type CheckResult } from './checkRunner.js';
export { cleanUpInterrupted, LOCK_FILE } from './workspace.js';
