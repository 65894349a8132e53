/**
 * `@nano-vm/kernel/guard`: the guard language (a CEL subset, docs/guards.md) on its own — compile
 * a guard against declared types, evaluate it with an explanation, and the limits that bound it.
 */
export {
  compileGuard,
  evaluateGuard,
  formatGuardType,
  guardTypeFromJsonSchema,
  DEFAULT_GUARD_MAX_COST,
  GUARD_ERROR_CODES,
  MAX_EXPLAIN_ENTRIES,
  MAX_GUARD_DEPTH,
  MAX_GUARD_NODES,
  type CompiledGuard,
  type EvaluateGuardOptions,
  type ExplainEntry,
  type GuardCompileResult,
  type GuardError,
  type GuardErrorCode,
  type GuardEvalResult,
  type GuardType,
  type GuardTypeEnv,
} from '../guard/index.js';
