/**
 * Canonical text of a guard: one spelling per syntax tree, independent of whitespace, comments,
 * redundant parentheses, number spelling (`1.0`, `1`, `0x1`) and quote style. It re-parses to the
 * same tree, so it is what gets hashed and what explanations display. `x.size()` is written
 * `size(x)` (same meaning). Comparisons nested in comparisons are always parenthesized, because
 * CEL implementations disagree on the relative precedence of `==` and `<`.
 */
import { memoByObject } from '../memo.js';
import type { GuardNode } from './guardNode.js';

// Per node: explanations show the text of sub-expressions on every evaluation.
export const canonicalText: (node: GuardNode) => string = memoByObject(render);

/** Binding strength; a child weaker than its slot requires is parenthesized. */
function precedence(node: GuardNode): number {
  switch (node.kind) {
    case 'cond':
      return 0;
    case 'or':
      return 1;
    case 'and':
      return 2;
    case 'compare':
    case 'in':
      return 3;
    case 'not':
      return 5;
    case 'literal':
      return typeof node.value === 'number' && (node.value < 0 || Object.is(node.value, -0)) ? 5 : 6;
    case 'list':
    case 'ident':
    case 'field':
    case 'index':
    case 'size':
    case 'has':
    case 'stringTest':
    case 'quantifier':
      return 6;
  }
}

function slot(node: GuardNode, min: number): string {
  const text = canonicalText(node);
  return precedence(node) < min ? `(${text})` : text;
}

function render(node: GuardNode): string {
  switch (node.kind) {
    case 'literal':
      return literalText(node.value);
    case 'list':
      return `[${node.items.map((i) => slot(i, 0)).join(', ')}]`;
    case 'ident':
      return node.name;
    case 'field':
      return `${slot(node.object, 6)}.${node.name}`;
    case 'index':
      return `${slot(node.object, 6)}[${slot(node.key, 0)}]`;
    case 'compare':
      return `${slot(node.left, 4)} ${node.op} ${slot(node.right, 4)}`;
    case 'in':
      return `${slot(node.left, 4)} in ${slot(node.right, 4)}`;
    case 'and':
      return `${slot(node.left, 2)} && ${slot(node.right, 3)}`;
    case 'or':
      return `${slot(node.left, 1)} || ${slot(node.right, 2)}`;
    case 'not':
      return `!${slot(node.operand, 5)}`;
    case 'cond':
      // CEL's grammar: ConditionalOr "?" ConditionalOr ":" Expr — the middle branch binds like `||`.
      return `${slot(node.test, 1)} ? ${slot(node.then, 1)} : ${slot(node.otherwise, 0)}`;
    case 'size':
      return `size(${slot(node.operand, 0)})`;
    case 'has':
      return `has(${slot(node.object, 6)}.${node.name})`;
    case 'stringTest':
      return `${slot(node.target, 6)}.${node.test}(${slot(node.arg, 0)})`;
    case 'quantifier':
      return `${slot(node.list, 6)}.${node.quantifier}(${node.variable}, ${slot(node.predicate, 0)})`;
  }
}

function literalText(value: null | boolean | number | string): string {
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number' && Object.is(value, -0)) return '-0';
  return String(value);
}

/** Double-quoted CEL string; only quote, backslash and control characters are escaped. */
function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + '"';
}
