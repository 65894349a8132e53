/** Every error code the guard language emits. docs/guards.md lists the same codes; a test checks it. */
import type { GuardError } from './types.js';

export const GUARD_ERROR_CODES = [
  { code: 'E_GUARD_SYNTAX', meaning: 'The guard is not valid CEL syntax.' },
  {
    code: 'E_GUARD_UNSUPPORTED',
    meaning:
      'Valid CEL outside the governed subset (arithmetic, regex, other functions or macros, map literals, optional syntax, shadowing, unparenthesized chained comparisons).',
  },
  {
    code: 'E_GUARD_LIMIT',
    meaning:
      'The guard has more than 1000 syntax nodes, nests deeper than 64 levels, has more than 64 unary operators in a row, or is longer than 65536 characters.',
  },
  {
    code: 'E_GUARD_UNKNOWN_IDENT',
    meaning: 'An identifier is neither declared in the type environment nor bound by exists/all.',
  },
  {
    code: 'E_GUARD_TYPE',
    meaning:
      'The guard is ill-typed against the declared types (e.g. a field the schema does not declare, string compared with number).',
  },
  {
    code: 'E_GUARD_RUNTIME',
    meaning:
      'Evaluation failed on the given values (no such key, mismatched operand types, index out of range, unsupported value).',
  },
  { code: 'E_GUARD_COST', meaning: 'Evaluation exceeded its cost budget (maxCost).' },
] as const;

export type GuardErrorCode = (typeof GUARD_ERROR_CODES)[number]['code'];

export function guardError(code: GuardErrorCode, message: string, column: number): GuardError {
  return { code, message, column };
}

/** Carries a GuardError out of a recursive compile-time pass; never escapes this folder. */
export class GuardFailure {
  constructor(readonly error: GuardError) {}
}
