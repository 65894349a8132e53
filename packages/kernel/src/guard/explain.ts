/**
 * The explanation of a guard result: which sub-expressions decided it, with their values. During
 * evaluation each result carries a cheap tree of (node, value) facts; only the final result's tree
 * is flattened, deduplicated, bounded and made JSON-compatible.
 */
import { canonicalText } from './canonical.js';
import type { GuardNode } from './guardNode.js';
import type { ExplainEntry } from './types.js';
import { kindOf, mapKeys, type GuardMap } from './values.js';

export const MAX_EXPLAIN_ENTRIES = 64;
/** Lists and maps with more nodes than this are summarized in explanations. */
const MAX_EXPLAIN_VALUE_NODES = 50;
/** Longer strings are cut (with a trailing `…`) in explanations. */
const MAX_EXPLAIN_STRING = 256;

export interface Fact {
  readonly node: GuardNode;
  readonly value: unknown;
}
export type Why = null | Fact | { readonly first: Why; readonly second: Why };

export function fact(node: GuardNode, value: unknown): Fact {
  return { node, value };
}

export function because(...parts: Why[]): Why {
  let why: Why = null;
  for (const p of parts) if (p !== null) why = why === null ? p : { first: why, second: p };
  return why;
}

/** Facts in evaluation order, the decided node last, at most MAX_EXPLAIN_ENTRIES. */
export function flattenWhy(why: Why): ExplainEntry[] {
  const facts: Fact[] = [];
  const stack: Why[] = [why];
  while (stack.length > 0) {
    const w = stack.pop()!;
    if (w === null) continue;
    if ('node' in w) facts.push(w);
    else stack.push(w.second, w.first);
  }
  const entries: ExplainEntry[] = [];
  // Keep the last fact (the result itself) even when the rest is cut off.
  const lastAt = facts.length - 1;
  for (let i = 0; i < facts.length; i++) {
    if (entries.length === MAX_EXPLAIN_ENTRIES - 1 && i !== lastAt) continue;
    const f = facts[i]!;
    const entry = { expr: canonicalText(f.node), value: explainValue(f.value) };
    if (!hasEntry(entries, entry)) entries.push(entry);
  }
  return entries;
}

/**
 * Whether an equal entry (same expression, same JSON value) is already listed. A linear scan of at
 * most MAX_EXPLAIN_ENTRIES: cheaper than a set of stringified keys for the few facts a guard has.
 */
function hasEntry(entries: readonly ExplainEntry[], e: ExplainEntry): boolean {
  const scalar = typeof e.value !== 'object' || e.value === null;
  let text: string | undefined;
  for (const x of entries) {
    if (x.expr !== e.expr) continue;
    // Explained scalars are JSON scalars (-0 and non-finite numbers are already rewritten), for
    // which equal JSON text means ===.
    if (scalar || typeof x.value !== 'object' || x.value === null) {
      if (x.value === e.value) return true;
    } else if (JSON.stringify(x.value) === (text ??= JSON.stringify(e.value))) return true;
  }
  return false;
}

/** JSON-compatible, bounded copy of a value for the explanation. */
export function explainValue(v: unknown): unknown {
  switch (typeof v) {
    // Scalars need no copy and no node budget.
    case 'string':
      return truncate(v);
    case 'boolean':
      return v;
    case 'number':
      return v === 0 ? 0 : Number.isFinite(v) ? v : String(v);
    case 'object':
    case 'bigint':
    case 'function':
    case 'symbol':
    case 'undefined': {
      if (v === null) return v;
      const budget = { nodes: MAX_EXPLAIN_VALUE_NODES };
      const copy = boundedCopy(v, budget);
      return copy === TOO_BIG ? summary(v) : copy;
    }
  }
}

const TOO_BIG = Symbol('too big');

function boundedCopy(v: unknown, budget: { nodes: number }): unknown {
  if (--budget.nodes < 0) return TOO_BIG;
  switch (kindOf(v)) {
    case 'number':
      // JSON has neither -0 nor non-finite numbers.
      return v === 0 ? 0 : Number.isFinite(v) ? v : String(v);
    case 'string':
      return truncate(v as string);
    case 'null':
    case 'bool':
      return v;
    case 'list': {
      const out: unknown[] = [];
      for (const e of v as unknown[]) {
        const c = boundedCopy(e, budget);
        if (c === TOO_BIG) return TOO_BIG;
        out.push(c);
      }
      return out;
    }
    case 'map': {
      const m = v as GuardMap;
      const entries: [string, unknown][] = [];
      for (const k of mapKeys(m)) {
        const c = boundedCopy(m[k], budget);
        if (c === TOO_BIG) return TOO_BIG;
        entries.push([k, c]);
      }
      return Object.fromEntries(entries);
    }
    case 'unsupported':
      return `<${v === undefined ? 'undefined' : typeof v}>`;
  }
}

function truncate(s: string): string {
  if (s.length <= MAX_EXPLAIN_STRING) return s;
  const cut = s.charCodeAt(MAX_EXPLAIN_STRING - 1) >= 0xd800 && s.charCodeAt(MAX_EXPLAIN_STRING - 1) <= 0xdbff;
  return `${s.slice(0, cut ? MAX_EXPLAIN_STRING - 1 : MAX_EXPLAIN_STRING)}…`;
}

function summary(v: unknown): string {
  if (Array.isArray(v)) return `<list of ${v.length} elements>`;
  return `<map with ${mapKeys(v as GuardMap).length} keys>`;
}
