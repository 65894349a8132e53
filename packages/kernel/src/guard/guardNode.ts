/**
 * The guard's own syntax tree: the governed subset and nothing else. cel-js's AST is translated into
 * this by ./subset.ts; the type checker, evaluator and canonical printer only ever see these nodes,
 * so a construct outside the subset cannot reach evaluation.
 */

export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=';
export type StringTest = 'startsWith' | 'endsWith' | 'contains';
export type Quantifier = 'exists' | 'all';

interface Located {
  /** 1-based column of the node's first character. */
  readonly start: number;
  /** 1-based column errors about this node point at (an operator, a field name, a method name). */
  readonly at: number;
}

export type GuardNode = Located &
  (
    | { readonly kind: 'literal'; readonly value: null | boolean | number | string }
    | { readonly kind: 'list'; readonly items: readonly GuardNode[] }
    | { readonly kind: 'ident'; readonly name: string }
    | { readonly kind: 'field'; readonly object: GuardNode; readonly name: string }
    | { readonly kind: 'index'; readonly object: GuardNode; readonly key: GuardNode }
    | { readonly kind: 'compare'; readonly op: CompareOp; readonly left: GuardNode; readonly right: GuardNode }
    | { readonly kind: 'in'; readonly left: GuardNode; readonly right: GuardNode }
    | { readonly kind: 'and' | 'or'; readonly left: GuardNode; readonly right: GuardNode }
    | { readonly kind: 'not'; readonly operand: GuardNode }
    | { readonly kind: 'cond'; readonly test: GuardNode; readonly then: GuardNode; readonly otherwise: GuardNode }
    | { readonly kind: 'size'; readonly operand: GuardNode }
    | { readonly kind: 'has'; readonly object: GuardNode; readonly name: string }
    | { readonly kind: 'stringTest'; readonly test: StringTest; readonly target: GuardNode; readonly arg: GuardNode }
    | {
        readonly kind: 'quantifier';
        readonly quantifier: Quantifier;
        readonly list: GuardNode;
        readonly variable: string;
        readonly predicate: GuardNode;
      }
  );

export function countNodes(node: GuardNode): number {
  return 1 + childrenOf(node).reduce((n, c) => n + countNodes(c), 0);
}

export function childrenOf(node: GuardNode): readonly GuardNode[] {
  switch (node.kind) {
    case 'literal':
    case 'ident':
      return [];
    case 'list':
      return node.items;
    case 'field':
    case 'has':
      return [node.object];
    case 'index':
      return [node.object, node.key];
    case 'compare':
    case 'in':
    case 'and':
    case 'or':
      return [node.left, node.right];
    case 'not':
    case 'size':
      return [node.operand];
    case 'cond':
      return [node.test, node.then, node.otherwise];
    case 'stringTest':
      return [node.target, node.arg];
    case 'quantifier':
      return [node.list, node.predicate];
  }
}
