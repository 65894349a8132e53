/**
 * Public contract of the guard language (docs/guards.md). Implemented in ./index.ts.
 *
 *   compileGuard(source, env?)  -> GuardCompileResult   parse + governed-subset check + type check
 *   evaluateGuard(guard, vars, { maxCost? }) -> GuardEvalResult   total, pure, cost-metered, explained
 *   guardTypeFromJsonSchema(schema) -> GuardType          declared JSON Schema -> guard type
 */

/** Static types the checker knows. `dyn` is "unknown/any" (e.g. a schema of `true`). */
export type GuardType =
  | { kind: 'string' }
  | { kind: 'number' }
  | { kind: 'bool' }
  | { kind: 'null' }
  | { kind: 'dyn' }
  | { kind: 'list'; elem: GuardType }
  /** `open` = additional properties allowed (their type is `dyn`). */
  | { kind: 'map'; fields: Record<string, GuardType>; open: boolean }
  | { kind: 'union'; of: GuardType[] };

/** Top-level identifiers available to a guard (for programs: `input` and `steps`). */
export type GuardTypeEnv = Record<string, GuardType>;

export interface GuardError {
  /** Stable code, e.g. E_GUARD_SYNTAX, E_GUARD_UNSUPPORTED, E_GUARD_UNKNOWN_IDENT, E_GUARD_TYPE, E_GUARD_COST, E_GUARD_RUNTIME. */
  code: string;
  message: string;
  /** 1-based column in the guard source. */
  column: number;
}

export interface CompiledGuard {
  readonly source: string;
  /** Canonical text of the AST (whitespace/paren independent) for hashing and display. */
  readonly canonical: string;
  /** Upper bound on evaluation cost for bounded inputs is not static (lists); this is the per-node cost. */
  readonly nodeCount: number;
}

export interface ExplainEntry {
  /** Canonical text of the sub-expression (source slices can split parentheses). */
  expr: string;
  /** Its value (JSON-compatible). */
  value: unknown;
}

export type GuardCompileResult = { ok: true; guard: CompiledGuard } | { ok: false; error: GuardError };

export type GuardEvalResult =
  { ok: true; value: unknown; cost: number; explain: ExplainEntry[] } | { ok: false; error: GuardError; cost: number };

export const DEFAULT_GUARD_MAX_COST = 10_000;
