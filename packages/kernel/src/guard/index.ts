/**
 * The guard language (docs/guards.md): a governed CEL subset that is total, pure, cost-metered,
 * type-checked against declared schemas and explainable. Parsing is cel-js's; the subset check,
 * type checker, cost-metered explaining evaluator and canonical form are ours.
 */
import { guardTree } from './compile.js';
import { guardError } from './errorCodes.js';
import { evaluateGuardNode } from './evaluate.js';
import { DEFAULT_GUARD_MAX_COST, type CompiledGuard, type GuardEvalResult } from './types.js';

export * from './types.js';
export { compileGuard, MAX_GUARD_NODES } from './compile.js';
export { MAX_GUARD_DEPTH } from './subset.js';
export { GUARD_ERROR_CODES, type GuardErrorCode } from './errorCodes.js';
export { guardTypeFromJsonSchema } from './schemaType.js';
export { formatGuardType } from './guardType.js';
export { MAX_EXPLAIN_ENTRIES } from './explain.js';

export interface EvaluateGuardOptions {
  /** Budget in cost units (one per evaluated node, one per list element visited). */
  maxCost?: number;
}

/**
 * Evaluates a compiled guard against JSON variables. Total: always returns, never throws. The value
 * is whatever the guard computes; a caller using the guard as a condition must check it is a bool.
 */
export function evaluateGuard(
  guard: CompiledGuard,
  vars: Record<string, unknown>,
  opts?: EvaluateGuardOptions,
): GuardEvalResult {
  const maxCost = budget(opts?.maxCost);
  try {
    const tree = guardTree(guard);
    if (!tree.ok) return { ok: false, error: tree.result.error, cost: 0 };
    return evaluateGuardNode(tree.root, vars, maxCost);
  } catch {
    return { ok: false, error: guardError('E_GUARD_RUNTIME', 'not a compiled guard', 1), cost: 0 };
  }
}

/** Unset or NaN means the default; anything else is clamped to a whole number >= 0. */
function budget(maxCost: number | undefined): number {
  if (typeof maxCost !== 'number' || Number.isNaN(maxCost)) return DEFAULT_GUARD_MAX_COST;
  return Math.floor(Math.min(Math.max(maxCost, 0), Number.MAX_SAFE_INTEGER));
}
