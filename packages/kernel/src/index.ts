export * from './errors.js';
export * from './program.js';
export * from './canonicalJson.js';
export { eventText } from './eventText.js';
export * from './hash.js';
export * from './events.js';
export * from './chain.js';
export * from './statePath.js';
export * from './projection.js';
export * from './schemaCheck.js';
export * from './machine.js';
export * from './command.js';
export * from './compiledProgram.js';
export * from './outputCheck.js';
export * from './successor.js';
export * from './runState.js';
export * from './recordedCursor.js';
export * from './receipt.js';
export * from './bundle.js';
export * from './verifyBundle.js';
export * from './guard/index.js';
export * from './load.js';
export * from './validate.js';
export * from './programSchema.js';
export * from './replay.js';
export * from './redact.js';
export * from './replayVault.js';
export * from './analyze.js';
export * from './policy.js';
export * from './policyLoad.js';
export * from './policyGate.js';
export * from './validatePolicy.js';
export { edgeTable, type Edge, type EdgeTable, type EdgeVia } from './edges.js';
export {
  programPaths,
  PATHS_FORMAT,
  DEFAULT_MAX_PATHS,
  ENTRIES_PER_PATH,
  type OutcomeReach,
  type PathEnd,
  type PathFinding,
  type PathGuard,
  type PathPolicyCheck,
  type PathsOptions,
  type PathsReport,
  type ProgramPath,
} from './paths.js';
export { programGraph, GRAPH_FORMATS, type GraphFormat } from './graph.js';
export { pathsText, type PathsTextSource } from './pathsText.js';
export {
  keyIdOf,
  parsePrivateKeyPem,
  parsePublicKeyPem,
  privateKeyPem,
  publicKeyPem,
  readSignature,
  signingStatement,
  statementBytes,
  verifySignedBundle,
  SIGNATURE_ALGORITHM,
  SIGNATURE_FORMAT,
  STATEMENT_FORMAT,
  type SignatureCode,
  type SignatureDocument,
  type SignedStatement,
  type SignedVerifyResult,
  type TrustedKey,
} from './signature.js';
