/**
 * The governed subset check: translates a cel-js syntax tree into a GuardNode tree, rejecting
 * every construct outside the subset with E_GUARD_UNSUPPORTED (or E_GUARD_UNKNOWN_IDENT /
 * E_GUARD_LIMIT) and the column of the offending token. Nothing is dropped or approximated: a
 * construct either translates exactly or compilation fails.
 */
import type { ASTNode } from '@marcbachmann/cel-js';
import { GuardFailure, guardError, type GuardErrorCode } from './errorCodes.js';
import type { CompareOp, GuardNode, StringTest } from './guardNode.js';
import type { SourceScan } from './sourceScan.js';

/** Maximum nesting of the guard tree (cel-js enforces the same bound on its own nesting). */
export const MAX_GUARD_DEPTH = 64;

const COMPARE_OPS: ReadonlySet<string> = new Set<CompareOp>(['==', '!=', '<', '<=', '>', '>=']);
const ARITHMETIC_OPS: ReadonlySet<string> = new Set(['+', '-', '*', '/', '%']);
const STRING_TESTS: ReadonlySet<string> = new Set<StringTest>(['startsWith', 'endsWith', 'contains']);
const OTHER_MACROS: ReadonlySet<string> = new Set([
  'exists_one',
  'existsOne',
  'map',
  'filter',
  'transformList',
  'transformMap',
  'bind',
]);

interface Scope {
  /** Declared top-level identifiers; undefined when compiling without a type environment. */
  readonly declared: ReadonlySet<string> | undefined;
  /** Variables bound by enclosing exists/all, innermost last. */
  readonly bound: readonly string[];
}

/**
 * `literals` holds the values the pre-scan (./celLexer.ts) decoded, by offset: cel-js saw only
 * placeholders there.
 */
export function toGuardNode(
  ast: ASTNode,
  scan: SourceScan,
  declared: ReadonlySet<string> | undefined,
  literals: ReadonlyMap<number, string | number> = new Map(),
): GuardNode {
  return new SubsetTranslator(scan, literals).translate(ast, { declared, bound: [] }, 1);
}

class SubsetTranslator {
  constructor(
    private readonly scan: SourceScan,
    private readonly literals: ReadonlyMap<number, string | number>,
  ) {}

  /** A literal node's value: the pre-scan's decoding where cel-js saw a placeholder. */
  private valueOf(node: ASTNode & { op: 'value' }): unknown {
    return this.literals.has(node.start) ? this.literals.get(node.start) : node.args;
  }

  /** The number a chain of unary minus signs over a number literal denotes (CEL: `--19` is 19). */
  private negated(ast: ASTNode): number | undefined {
    let sign = 1;
    let node = ast;
    while (node.op === '-_') {
      sign = -sign;
      node = node.args;
    }
    if (node.op !== 'value') return undefined;
    const v = this.valueOf(node);
    if (typeof v !== 'number' && typeof v !== 'bigint') return undefined;
    const n = this.numberLiteral(v, node.start);
    return sign < 0 ? -n : n;
  }

  private fail(code: GuardErrorCode, message: string, offset: number): never {
    throw new GuardFailure(guardError(code, message, offset + 1));
  }

  private unsupported(message: string, offset: number): never {
    this.fail('E_GUARD_UNSUPPORTED', `${message} is not in the guard subset`, offset);
  }

  /** Offset of the operator or `.`/`[`/`?` that follows a sub-expression. */
  private after(node: ASTNode): number {
    return this.scan.tokenAfter(node.end);
  }

  translate(ast: ASTNode, scope: Scope, depth: number): GuardNode {
    if (depth > MAX_GUARD_DEPTH) {
      this.fail('E_GUARD_LIMIT', `guard nests deeper than ${MAX_GUARD_DEPTH} levels`, ast.start);
    }
    const sub = (n: ASTNode, s: Scope = scope): GuardNode => this.translate(n, s, depth + 1);
    const start = ast.start + 1;
    switch (ast.op) {
      case 'value':
        return { kind: 'literal', value: this.literal(this.valueOf(ast), ast.start), start, at: start };
      case 'id': {
        const name = ast.args;
        if (scope.declared && !scope.declared.has(name) && !scope.bound.includes(name)) {
          const known = [...scope.declared, ...scope.bound].map((n) => `'${n}'`).join(', ');
          this.fail('E_GUARD_UNKNOWN_IDENT', `unknown identifier '${name}' (known: ${known || 'none'})`, ast.start);
        }
        return { kind: 'ident', name, start, at: start };
      }
      case '.':
        return { kind: 'field', object: sub(ast.args[0]), name: ast.args[1], start, at: ast.pos + 1 };
      case '[]': {
        const [object, key] = ast.args;
        return { kind: 'index', object: sub(object), key: sub(key), start, at: this.after(object) + 1 };
      }
      case '.?':
      case '[?]':
        return this.unsupported('optional selection (`.?` / `[?]`)', this.after(ast.args[0]));
      case 'list':
        return { kind: 'list', items: ast.args.map((i) => sub(i)), start, at: start };
      case 'map':
        return this.unsupported('a map literal', ast.start);
      case '?:': {
        const [test, then, otherwise] = ast.args;
        return {
          kind: 'cond',
          test: sub(test),
          then: sub(then),
          otherwise: sub(otherwise),
          start,
          at: this.after(test) + 1,
        };
      }
      case '&&':
      case '||': {
        const [left, right] = ast.args;
        const kind = ast.op === '&&' ? 'and' : 'or';
        return { kind, left: sub(left), right: sub(right), start, at: this.after(left) + 1 };
      }
      case '!_':
        return { kind: 'not', operand: sub(ast.args), start, at: start };
      case '-_': {
        const value = this.negated(ast);
        if (value !== undefined) return { kind: 'literal', value, start, at: start };
        return this.unsupported('arithmetic (unary `-` other than on a number literal)', ast.start);
      }
      case 'call':
        return this.call(ast, sub);
      case 'rcall':
        return this.methodCall(ast, scope, sub);
      case '==':
      case '!=':
      case '<':
      case '<=':
      case '>':
      case '>=':
      case 'in':
      case '+':
      case '-':
      case '*':
      case '/':
      case '%':
        return this.binary(ast, sub);
      default: {
        // cel-js's types may lag its parser: an operator they do not name is reported as unsupported.
        const _exhaustive: never = ast;
        return this.binary(_exhaustive, sub);
      }
    }
  }

  private literal(value: unknown, offset: number): null | boolean | number | string {
    if (typeof value === 'number' || typeof value === 'bigint') return this.numberLiteral(value, offset);
    if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
    if (value instanceof Uint8Array) return this.unsupported('a bytes literal', offset);
    return this.unsupported('an unsigned integer literal (`u` suffix)', offset);
  }

  /** CEL ints and doubles both become JSON numbers; ints must survive that exactly. */
  private numberLiteral(value: number | bigint, offset: number): number {
    if (typeof value === 'number') return value;
    const n = Number(value);
    if (!Number.isSafeInteger(n)) {
      this.unsupported('an integer literal beyond ±(2^53 - 1) (not exactly representable as a JSON number)', offset);
    }
    return n;
  }

  private binary(ast: ASTNode, sub: (n: ASTNode) => GuardNode): GuardNode {
    const op: string = ast.op;
    if (!Array.isArray(ast.args) || ast.args.length !== 2) return this.unsupported(`the operator '${op}'`, ast.start);
    const [left, right] = ast.args as [ASTNode, ASTNode];
    const opOffset = this.after(left);
    if (ARITHMETIC_OPS.has(op)) return this.unsupported(`arithmetic ('${op}')`, opOffset);
    if (op !== 'in' && !COMPARE_OPS.has(op)) return this.unsupported(`the operator '${op}'`, opOffset);
    // `a == b < c` groups differently in cel-js and in the CEL spec grammar; make the author say.
    const opEnd = opOffset + op.length;
    for (const [operand, lowerBound] of [
      [left, 0],
      [right, opEnd],
    ] as const) {
      if (isComparison(operand) && !this.scan.isParenthesized(operand.start, operand.end, lowerBound)) {
        this.fail(
          'E_GUARD_UNSUPPORTED',
          `a comparison used as an operand of '${op}' must be parenthesized`,
          this.after((operand.args as [ASTNode, ASTNode])[0]),
        );
      }
    }
    const at = opOffset + 1;
    const start = ast.start + 1;
    if (op === 'in') return { kind: 'in', left: sub(left), right: sub(right), start, at };
    return { kind: 'compare', op: op as CompareOp, left: sub(left), right: sub(right), start, at };
  }

  private call(ast: ASTNode & { op: 'call' }, sub: (n: ASTNode) => GuardNode): GuardNode {
    const [name, args] = ast.args;
    const start = ast.start + 1;
    if (name === 'size') {
      if (args.length !== 1) this.unsupported(`size() with ${args.length} arguments`, ast.start);
      return { kind: 'size', operand: sub(args[0]!), start, at: start };
    }
    if (name === 'has') {
      const arg = args[0];
      if (args.length !== 1 || arg === undefined || arg.op !== '.') {
        return this.fail(
          'E_GUARD_UNSUPPORTED',
          'has() takes one field selection, e.g. has(input.customer.email)',
          (arg ?? ast).start,
        );
      }
      return { kind: 'has', object: sub(arg.args[0]), name: arg.args[1], start, at: arg.pos + 1 };
    }
    return this.unsupported(`the function '${name}()'`, ast.start);
  }

  private methodCall(
    ast: ASTNode & { op: 'rcall' },
    scope: Scope,
    sub: (n: ASTNode, s?: Scope) => GuardNode,
  ): GuardNode {
    const [name, receiver, args] = ast.args;
    const dot = this.after(receiver);
    const nameOffset = this.scan.skipTrivia(dot + 1);
    const start = ast.start + 1;
    const at = nameOffset + 1;
    if (name === 'size' && args.length === 0) return { kind: 'size', operand: sub(receiver), start, at };
    if (STRING_TESTS.has(name) && args.length === 1) {
      return { kind: 'stringTest', test: name as StringTest, target: sub(receiver), arg: sub(args[0]!), start, at };
    }
    if ((name === 'exists' || name === 'all') && args.length === 2) {
      const [variable, predicate] = args as [ASTNode, ASTNode];
      if (variable.op !== 'id')
        return this.fail('E_GUARD_SYNTAX', `${name}() needs a variable name first`, variable.start);
      const v = variable.args;
      if (scope.bound.includes(v) || scope.declared?.has(v)) {
        this.fail(
          'E_GUARD_UNSUPPORTED',
          `variable '${v}' shadows an existing variable; choose another name`,
          variable.start,
        );
      }
      const inner: Scope = { declared: scope.declared, bound: [...scope.bound, v] };
      return {
        kind: 'quantifier',
        quantifier: name,
        list: sub(receiver),
        variable: v,
        predicate: sub(predicate, inner),
        start,
        at,
      };
    }
    if (name === 'matches') return this.unsupported('regex matching (`matches`)', nameOffset);
    if (OTHER_MACROS.has(name)) return this.unsupported(`the macro '${name}()'`, nameOffset);
    if (name === 'size' || name === 'exists' || name === 'all' || STRING_TESTS.has(name)) {
      return this.unsupported(`${name}() with ${args.length} argument${args.length === 1 ? '' : 's'}`, nameOffset);
    }
    return this.unsupported(`the method '${name}()'`, nameOffset);
  }
}

function isComparison(ast: ASTNode): boolean {
  return ast.op === 'in' || COMPARE_OPS.has(ast.op);
}
