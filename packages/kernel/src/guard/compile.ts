/**
 * compileGuard: parse (cel-js) -> governed subset (./subset.ts) -> type check (./typecheck.ts).
 * A compiled guard remembers its GuardNode tree privately; evaluateGuard recompiles guards that did
 * not come from here (e.g. one rebuilt from JSON), so any object with a `source` can be evaluated.
 */
import { Environment, ParseError } from '@marcbachmann/cel-js';
import { canonicalText } from './canonical.js';
import { GuardFailure, guardError } from './errorCodes.js';
import { countNodes, type GuardNode } from './guardNode.js';
import { SourceScan } from './sourceScan.js';
import { MAX_GUARD_DEPTH, toGuardNode } from './subset.js';
import { inferGuardType } from './typecheck.js';
import type { CompiledGuard, GuardCompileResult, GuardTypeEnv } from './types.js';

/** Largest guard, in cel-js syntax nodes. */
export const MAX_GUARD_NODES = 1000;

// Optional syntax is parsed (not rejected by the parser) so that it gets a precise
// E_GUARD_UNSUPPORTED instead of a generic syntax error.
const cel = new Environment({
  enableOptionalTypes: true,
  limits: { maxAstNodes: MAX_GUARD_NODES, maxDepth: MAX_GUARD_DEPTH },
});

/**
 * A compiled guard. `canonical` and `nodeCount` are computed on first read: validating a program
 * compiles every guard but needs neither, and a 100k-step program has tens of thousands of guards.
 * `root` is not part of CompiledGuard: only this module reads it (guardTree).
 */
class Compiled implements CompiledGuard {
  private text: string | undefined;
  private nodes: number | undefined;
  constructor(
    readonly source: string,
    readonly root: GuardNode,
  ) {}
  get canonical(): string {
    return (this.text ??= canonicalText(this.root));
  }
  get nodeCount(): number {
    return (this.nodes ??= countNodes(this.root));
  }
  toJSON(): { source: string; canonical: string; nodeCount: number } {
    return { source: this.source, canonical: this.canonical, nodeCount: this.nodeCount };
  }
}

export function compileGuard(source: string, env?: GuardTypeEnv): GuardCompileResult {
  if (typeof source !== 'string') {
    return { ok: false, error: guardError('E_GUARD_SYNTAX', 'a guard must be a string', 1) };
  }
  const prefixRun = longPrefixRun(source);
  if (prefixRun >= 0)
    return {
      ok: false,
      error: guardError('E_GUARD_LIMIT', `guard nests deeper than ${MAX_GUARD_DEPTH} levels`, prefixRun + 1),
    };
  let ast;
  try {
    ast = cel.parse(source).ast;
  } catch (e) {
    if (!(e instanceof ParseError)) {
      // Not expected from cel-js; still an error value, so compiling stays total.
      return {
        ok: false,
        error: guardError('E_GUARD_SYNTAX', `cannot parse: ${e instanceof Error ? e.message : 'unknown failure'}`, 1),
      };
    }
    const code = e.code === 'limit_exceeded' ? 'E_GUARD_LIMIT' : 'E_GUARD_SYNTAX';
    return { ok: false, error: guardError(code, e.summary, (e.range?.start ?? 0) + 1) };
  }
  try {
    const declared = env ? new Set(Object.keys(env)) : undefined;
    const root = toGuardNode(ast, new SourceScan(source), declared);
    inferGuardType(root, env);
    return { ok: true, guard: new Compiled(source, root) };
  } catch (e) {
    if (e instanceof GuardFailure) return { ok: false, error: e.error };
    throw e;
  }
}

/**
 * Where more than MAX_GUARD_DEPTH prefix operators (`!`, `-`) follow one another outside string
 * literals, or -1. The parser descends once per prefix operator, before its depth limit applies:
 * 10,000 of them overflowed its stack (issue 11). Each one nests, so the guard is over the limit.
 */
function longPrefixRun(source: string): number {
  let run = 0;
  let start = 0;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i];
    if (ch === '"' || ch === "'") {
      for (i++; i < source.length && source[i] !== ch; i++) if (source[i] === '\\') i++;
      run = 0;
    } else if (ch === '!' || ch === '-') {
      if (run === 0) start = i;
      if (++run > MAX_GUARD_DEPTH) return start;
    } else if (ch !== ' ' && ch !== '\t' && ch !== '\n' && ch !== '\r') run = 0;
  }
  return -1;
}

/** The GuardNode tree of a compiled guard, recompiling (without types) when it came from elsewhere. */
export function guardTree(
  guard: CompiledGuard,
): { ok: true; root: GuardNode } | { ok: false; result: GuardCompileResult & { ok: false } } {
  if (guard instanceof Compiled) return { ok: true, root: guard.root };
  const compiled = compileGuard(guard.source);
  if (!compiled.ok) return { ok: false, result: compiled };
  return { ok: true, root: (compiled.guard as Compiled).root };
}
