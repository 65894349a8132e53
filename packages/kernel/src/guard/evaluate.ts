/**
 * The evaluator: total, pure, cost-metered and explaining. Semantics follow CEL on JSON values:
 * errors are values that `&&`, `||`, exists() and all() may absorb; running out of budget is not
 * an error value but a hard stop that nothing absorbs.
 */
import { canonicalText } from './canonical.js';
import { guardError } from './errorCodes.js';
import { because, fact, flattenWhy, type Why } from './explain.js';
import type { GuardNode } from './guardNode.js';
import type { GuardError, GuardEvalResult } from './types.js';
import {
  codePointLength,
  compareValues,
  describeKind,
  kindOf,
  mapGet,
  mapKeys,
  valuesEqual,
  type GuardMap,
} from './values.js';

type Result = { ok: true; value: unknown; why: Why } | { ok: false; error: GuardError };

interface Binding {
  readonly name: string;
  readonly value: unknown;
  readonly outer: Binding | undefined;
}

/** Thrown to unwind when the budget is spent; caught in evaluateGuardNode only. */
class CostExceeded {
  constructor(readonly column: number) {}
}

function ok(value: unknown, why: Why): Result {
  return { ok: true, value, why };
}

function fail(message: string, column: number): Result {
  return { ok: false, error: guardError('E_GUARD_RUNTIME', message, column) };
}

export function evaluateGuardNode(root: GuardNode, vars: unknown, maxCost: number): GuardEvalResult {
  const evaluation = new Evaluation(typeof vars === 'object' && vars !== null ? vars : {}, maxCost);
  try {
    const r = evaluation.run(root, undefined);
    if (!r.ok) return { ok: false, error: r.error, cost: evaluation.cost };
    const explain = flattenWhy(because(r.why, fact(root, r.value)));
    return { ok: true, value: r.value, cost: evaluation.cost, explain };
  } catch (e) {
    if (e instanceof CostExceeded) {
      const error = guardError('E_GUARD_COST', `evaluation exceeded its cost budget of ${maxCost}`, e.column);
      return { ok: false, error, cost: maxCost };
    }
    // Only hostile inputs get here (throwing getters, values nested too deeply to compare).
    const reason = e instanceof Error ? e.message : 'unexpected exception';
    return {
      ok: false,
      error: guardError('E_GUARD_RUNTIME', `evaluation failed: ${reason}`, root.start),
      cost: evaluation.cost,
    };
  }
}

class Evaluation {
  cost = 0;

  constructor(
    private readonly vars: object,
    private readonly maxCost: number,
  ) {}

  private charge(node: GuardNode): void {
    if (++this.cost > this.maxCost) throw new CostExceeded(node.at);
  }

  /** A value read from the variables must be JSON to take part in evaluation. */
  private read(node: GuardNode, value: unknown): Result {
    if (kindOf(value) === 'unsupported') {
      return fail(`${canonicalText(node)} is ${describeKind(value)}, not a JSON value`, node.at);
    }
    return ok(value, fact(node, value));
  }

  run(node: GuardNode, scope: Binding | undefined): Result {
    this.charge(node);
    switch (node.kind) {
      case 'literal':
        return ok(node.value, null);
      case 'list': {
        const values: unknown[] = [];
        const whys: Why[] = [];
        for (const item of node.items) {
          const r = this.run(item, scope);
          if (!r.ok) return r;
          values.push(r.value);
          whys.push(r.why);
        }
        return ok(values, because(...whys));
      }
      case 'ident':
        return this.ident(node, scope);
      case 'field': {
        const o = this.run(node.object, scope);
        if (!o.ok) return o;
        return this.select(node, node.object, o.value, node.name, node.at);
      }
      case 'index':
        return this.index(node, scope);
      case 'compare':
        return this.compare(node, scope);
      case 'in':
        return this.membership(node, scope);
      case 'and':
      case 'or':
        return this.logical(node, scope);
      case 'not': {
        const o = this.run(node.operand, scope);
        if (!o.ok) return o;
        if (typeof o.value !== 'boolean') return this.notBool(node.operand, o.value, "'!'");
        return ok(!o.value, because(o.why, fact(node, !o.value)));
      }
      case 'cond': {
        const t = this.run(node.test, scope);
        if (!t.ok) return t;
        if (typeof t.value !== 'boolean') return this.notBool(node.test, t.value, 'the condition of `? :`');
        const b = this.run(t.value ? node.then : node.otherwise, scope);
        if (!b.ok) return b;
        return ok(b.value, because(t.why, b.why, fact(node, b.value)));
      }
      case 'size': {
        const o = this.run(node.operand, scope);
        if (!o.ok) return o;
        const v = o.value;
        const kind = kindOf(v);
        const n =
          kind === 'string'
            ? codePointLength(v as string)
            : kind === 'list'
              ? (v as unknown[]).length
              : kind === 'map'
                ? mapKeys(v as GuardMap).length
                : undefined;
        if (n === undefined) {
          return fail(
            `size() needs a string, list or map, but ${canonicalText(node.operand)} is ${describeKind(v)}`,
            node.operand.start,
          );
        }
        return ok(n, fact(node, n));
      }
      case 'has': {
        const o = this.run(node.object, scope);
        if (!o.ok) return o;
        if (kindOf(o.value) !== 'map') {
          return fail(`has() needs a map, but ${canonicalText(node.object)} is ${describeKind(o.value)}`, node.start);
        }
        const present = mapGet(o.value as GuardMap, node.name) !== undefined;
        return ok(present, fact(node, present));
      }
      case 'stringTest': {
        const t = this.run(node.target, scope);
        if (!t.ok) return t;
        const a = this.run(node.arg, scope);
        if (!a.ok) return a;
        if (typeof t.value !== 'string' || typeof a.value !== 'string') {
          const bad = typeof t.value !== 'string' ? [node.target, t.value] : [node.arg, a.value];
          return fail(
            `${node.test}() needs strings, but ${canonicalText(bad[0] as GuardNode)} is ${describeKind(bad[1])}`,
            node.at,
          );
        }
        const value =
          node.test === 'startsWith'
            ? t.value.startsWith(a.value)
            : node.test === 'endsWith'
              ? t.value.endsWith(a.value)
              : t.value.includes(a.value);
        return ok(value, because(t.why, a.why, fact(node, value)));
      }
      case 'quantifier':
        return this.quantifier(node, scope);
    }
  }

  private notBool(operand: GuardNode, value: unknown, what: string): Result {
    return fail(`${what} needs a bool, but ${canonicalText(operand)} is ${describeKind(value)}`, operand.start);
  }

  private ident(node: GuardNode & { kind: 'ident' }, scope: Binding | undefined): Result {
    for (let b = scope; b; b = b.outer) if (b.name === node.name) return this.read(node, b.value);
    const vars = this.vars as Record<string, unknown>;
    const value = Object.hasOwn(vars, node.name) ? vars[node.name] : undefined;
    if (value === undefined) return fail(`no variable '${node.name}' was given to the guard`, node.at);
    return this.read(node, value);
  }

  private select(node: GuardNode, object: GuardNode, value: unknown, key: string, column: number): Result {
    if (kindOf(value) !== 'map') {
      return fail(`cannot select '${key}': ${canonicalText(object)} is ${describeKind(value)}, not a map`, column);
    }
    const v = mapGet(value as GuardMap, key);
    if (v === undefined) {
      const hint = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? ` (test with has(${canonicalText(object)}.${key}))` : '';
      return fail(`no such key '${key}' in ${canonicalText(object)}${hint}`, column);
    }
    return this.read(node, v);
  }

  private index(node: GuardNode & { kind: 'index' }, scope: Binding | undefined): Result {
    const o = this.run(node.object, scope);
    if (!o.ok) return o;
    const k = this.run(node.key, scope);
    if (!k.ok) return k;
    const key = k.value;
    if (kindOf(o.value) === 'map') {
      if (typeof key !== 'string')
        return fail(
          `a map key must be a string, but ${canonicalText(node.key)} is ${describeKind(key)}`,
          node.key.start,
        );
      return this.select(node, node.object, o.value, key, node.at);
    }
    if (!Array.isArray(o.value)) {
      return fail(
        `cannot index ${canonicalText(node.object)}: it is ${describeKind(o.value)}, not a list or map`,
        node.at,
      );
    }
    if (typeof key !== 'number' || !Number.isInteger(key)) {
      return fail(
        `a list index must be an integer, but ${canonicalText(node.key)} is ${typeof key === 'number' ? key : describeKind(key)}`,
        node.key.start,
      );
    }
    if (key < 0 || key >= o.value.length) {
      return fail(`index ${key} is out of range for ${canonicalText(node.object)} (size ${o.value.length})`, node.at);
    }
    return this.read(node, o.value[key]);
  }

  private compare(node: GuardNode & { kind: 'compare' }, scope: Binding | undefined): Result {
    const l = this.run(node.left, scope);
    if (!l.ok) return l;
    const r = this.run(node.right, scope);
    if (!r.ok) return r;
    let value: boolean;
    if (node.op === '==' || node.op === '!=') {
      const equal = valuesEqual(l.value, r.value, () => this.charge(node));
      if (equal === undefined) return fail(`cannot compare values that are not JSON with '${node.op}'`, node.at);
      value = node.op === '==' ? equal : !equal;
    } else {
      const c = compareValues(l.value, r.value);
      if (c === undefined) {
        return fail(
          `cannot compare ${describeKind(l.value)} with ${describeKind(r.value)} using '${node.op}'`,
          node.at,
        );
      }
      value = node.op === '<' ? c < 0 : node.op === '<=' ? c <= 0 : node.op === '>' ? c > 0 : c >= 0;
    }
    return ok(value, because(l.why, r.why, fact(node, value)));
  }

  private membership(node: GuardNode & { kind: 'in' }, scope: Binding | undefined): Result {
    const l = this.run(node.left, scope);
    if (!l.ok) return l;
    const r = this.run(node.right, scope);
    if (!r.ok) return r;
    let value = false;
    const kind = kindOf(r.value);
    if (kind === 'list') {
      for (const element of r.value as unknown[]) {
        this.charge(node);
        const equal = valuesEqual(l.value, element, () => this.charge(node));
        if (equal === undefined) return fail(`cannot compare values that are not JSON with 'in'`, node.at);
        if (equal) {
          value = true;
          break;
        }
      }
    } else if (kind === 'map') {
      value = typeof l.value === 'string' && mapGet(r.value as GuardMap, l.value) !== undefined;
    } else {
      return fail(
        `'in' needs a list or map on the right, but ${canonicalText(node.right)} is ${describeKind(r.value)}`,
        node.at,
      );
    }
    return ok(value, because(l.why, r.why, fact(node, value)));
  }

  /** CEL's commutative `&&`/`||`: a deciding operand wins over an error in the other. */
  private logical(node: GuardNode & { kind: 'and' | 'or' }, scope: Binding | undefined): Result {
    const decisive = node.kind === 'or';
    const l = this.run(node.left, scope);
    if (l.ok && l.value === decisive) return ok(decisive, because(l.why, fact(node, decisive)));
    const r = this.run(node.right, scope);
    if (r.ok && r.value === decisive) return ok(decisive, because(r.why, fact(node, decisive)));
    const op = decisive ? "'||'" : "'&&'";
    for (const [operand, res] of [
      [node.left, l],
      [node.right, r],
    ] as const) {
      if (!res.ok) return res;
      if (typeof res.value !== 'boolean') return this.notBool(operand, res.value, op);
    }
    return ok(!decisive, because(l.ok ? l.why : null, r.ok ? r.why : null, fact(node, !decisive)));
  }

  /** exists/all: a deciding element wins over errors from other elements (CEL semantics). */
  private quantifier(node: GuardNode & { kind: 'quantifier' }, scope: Binding | undefined): Result {
    const list = this.run(node.list, scope);
    if (!list.ok) return list;
    if (!Array.isArray(list.value)) {
      return fail(
        `${node.quantifier}() needs a list, but ${canonicalText(node.list)} is ${describeKind(list.value)}`,
        node.at,
      );
    }
    const decisive = node.quantifier === 'exists';
    let firstError: Result | undefined;
    for (const element of list.value as unknown[]) {
      this.charge(node);
      const p = this.run(node.predicate, { name: node.variable, value: element, outer: scope });
      if (p.ok && p.value === decisive) return ok(decisive, because(p.why, fact(node, decisive)));
      if (!p.ok) firstError ??= p;
      else if (typeof p.value !== 'boolean')
        firstError ??= this.notBool(node.predicate, p.value, `the predicate of ${node.quantifier}()`);
    }
    if (firstError) return firstError;
    return ok(!decisive, because(list.why, fact(node, !decisive)));
  }
}
