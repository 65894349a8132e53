/**
 * compileGuard: parse (cel-js) -> governed subset (./subset.ts) -> type check (./typecheck.ts).
 * A compiled guard remembers its GuardNode tree privately; evaluateGuard recompiles guards that did
 * not come from here (e.g. one rebuilt from JSON), so any object with a `source` can be evaluated.
 */
import { Environment, ParseError } from '@marcbachmann/cel-js';
import { canonicalText } from './canonical.js';
import { GuardFailure, guardError } from './errorCodes.js';
import { countNodes, type GuardNode } from './guardNode.js';
import { prescanGuard } from './celLexer.js';
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
  const pre = prescanGuard(source);
  if (!pre.ok) return { ok: false, error: pre.error };
  const text = pre.scan.text;
  let ast;
  try {
    ast = cel.parse(text).ast;
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
    const root = toGuardNode(ast, new SourceScan(text), declared, pre.scan.literals);
    inferGuardType(root, env);
    return { ok: true, guard: new Compiled(source, root) };
  } catch (e) {
    if (e instanceof GuardFailure) return { ok: false, error: e.error };
    throw e;
  }
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
