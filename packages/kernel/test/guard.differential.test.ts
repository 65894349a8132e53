/**
 * Differential test: random guards inside the subset, random JSON variables; our evaluator and
 * cel-js's must agree on the value, or both fail. Generation stays clear of the documented
 * differences (docs/guards.md, "Differences from cel-js"): int and double literals are never mixed
 * where cel-js types them statically, list literals and conditional branches are homogeneous,
 * has() only selects from values that are always maps, strings avoid characters beyond U+FFFF in
 * orderings, map lookups use string keys, quantifiers never range over maps.
 */
import { evaluate as celEvaluate } from '@marcbachmann/cel-js';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { compileGuard, evaluateGuard, guardTypeFromJsonSchema, type GuardTypeEnv } from '../src/guard/index.js';

/** Static type of a generated expression as cel-js sees it (variables are `dyn`). */
type Tag = 'int' | 'double' | 'dyn' | 'string' | 'bool';

interface Expr {
  readonly text: string;
  readonly tag: Tag;
  /** Well-typed against ENV below (false when it deliberately mixes types through `dyn` variables). */
  readonly typed: boolean;
}

type Family = 'num' | 'str' | 'bool';

/** Variables bound by enclosing quantifiers: `it` (items), `v` (nums), `w` (strs). */
type Scope = readonly ('it' | 'v' | 'w')[];

const e = (text: string, tag: Tag, typed = true): Expr => ({ text, tag, typed });
const p = (x: Expr): string => `(${x.text})`;

const INT_LITS = [-2, -1, 0, 1, 2, 3, 10, 1000].map((n) => e(String(n), 'int'));
const DOUBLE_LITS = [-2.5, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.25, 100.5].map((n) =>
  e(Number.isInteger(n) ? `${n}.0` : String(n), 'double'),
);
const ALPHABET = ['a', 'b', 'c', 'A', 'é', '中', ' ', '"', '\\'];
const STR_LITS = ['', 'a', 'b', 'ab', 'abc', 'A', 'é', '中文', 'a"b', 'x\\y'].map((s) =>
  e(JSON.stringify(s), 'string'),
);

function numLeaves(scope: Scope): Expr[] {
  return [
    ...INT_LITS,
    ...DOUBLE_LITS,
    e('n', 'dyn'),
    e('m', 'dyn'),
    e('obj.a', 'dyn'),
    e('obj.nested.x', 'dyn'),
    e('obj["a"]', 'dyn'),
    e('nums[0]', 'dyn'),
    e('nums[2]', 'dyn'),
    e('items[0].price', 'dyn'),
    ...(scope.includes('it') ? [e('it.price', 'dyn'), e('it.price', 'dyn')] : []),
    ...(scope.includes('v') ? [e('v', 'dyn'), e('v', 'dyn'), e('v', 'dyn')] : []),
  ];
}

function strLeaves(scope: Scope): Expr[] {
  return [
    ...STR_LITS,
    e('s', 'dyn'),
    e('t', 'dyn'),
    e('obj.s', 'dyn'),
    e('strs[0]', 'dyn'),
    e('obj.opt', 'dyn'),
    ...(scope.includes('it') ? [e('it.tag', 'dyn'), e('it.tag', 'dyn')] : []),
    ...(scope.includes('w') ? [e('w', 'dyn'), e('w', 'dyn'), e('w', 'dyn')] : []),
  ];
}

function boolLeaves(scope: Scope): Expr[] {
  return [
    e('true', 'bool'),
    e('false', 'bool'),
    e('b', 'dyn'),
    e('c', 'dyn'),
    e('obj.b', 'dyn'),
    e('has(obj.opt)', 'bool'),
    e('has(obj.zz)', 'bool'),
    ...(scope.includes('it')
      ? [e('it.ok', 'dyn'), e('has(it.tag)', 'bool'), e('it.price > 1', 'bool'), e('it.tag == "a"', 'bool')]
      : []),
    ...(scope.includes('v') ? [e('v > 0', 'bool'), e('v == 1.5', 'bool'), e('v <= 2', 'bool')] : []),
    ...(scope.includes('w') ? [e('w.startsWith("a")', 'bool'), e('w == "b"', 'bool'), e('w < "b"', 'bool')] : []),
  ];
}

/** cel-js accepts `==` between the same static type or anything and dyn. */
const eqCompatible = (a: Expr, b: Expr): boolean => a.tag === b.tag || a.tag === 'dyn' || b.tag === 'dyn';

const CMP = ['==', '!=', '<', '<=', '>', '>='] as const;

class Generator {
  private readonly cache = new Map<string, fc.Arbitrary<Expr>>();

  of(family: Family, depth: number, scope: Scope): fc.Arbitrary<Expr> {
    const key = `${family}|${depth}|${scope.join(',')}`;
    let arb = this.cache.get(key);
    if (!arb) {
      arb = this.build(family, depth, scope);
      this.cache.set(key, arb);
    }
    return arb;
  }

  private build(family: Family, depth: number, scope: Scope): fc.Arbitrary<Expr> {
    const leaves = family === 'num' ? numLeaves(scope) : family === 'str' ? strLeaves(scope) : boolLeaves(scope);
    const leaf = fc.constantFrom(...leaves);
    if (depth === 0) return leaf;
    const sub = (f: Family): fc.Arbitrary<Expr> => this.of(f, depth - 1, scope);
    const cond = (f: Family): fc.Arbitrary<Expr> =>
      fc
        .tuple(sub('bool'), sub(f), sub(f))
        .filter(([, a, b]) => a.tag === b.tag)
        .map(([c, a, b]) => e(`${p(c)} ? ${p(a)} : ${p(b)}`, a.tag, c.typed && a.typed && b.typed));
    if (family === 'num') {
      const sized = fc.oneof(
        sub('str'),
        fc.constantFrom(
          e('nums', 'dyn'),
          e('strs', 'dyn'),
          e('obj', 'dyn'),
          e('items', 'dyn'),
          e('[1, 2, 3]', 'dyn'),
          e('["a"]', 'dyn'),
        ),
      );
      return fc.oneof(
        { arbitrary: leaf, weight: 4 },
        { arbitrary: sized.map((x) => e(`size(${x.text})`, 'int', x.typed)), weight: 1 },
        { arbitrary: sized.map((x) => e(`${p(x)}.size()`, 'int', x.typed)), weight: 1 },
        { arbitrary: cond('num'), weight: 1 },
      );
    }
    if (family === 'str') return fc.oneof({ arbitrary: leaf, weight: 4 }, { arbitrary: cond('str'), weight: 1 });
    return fc.oneof(
      { arbitrary: leaf, weight: 3 },
      { arbitrary: sub('bool').map((x) => e(`!${p(x)}`, 'bool', x.typed)), weight: 1 },
      ...(['&&', '||'] as const).map((op) => ({
        arbitrary: fc
          .tuple(sub('bool'), sub('bool'))
          .map(([a, b]) => e(`${p(a)} ${op} ${p(b)}`, 'bool', a.typed && b.typed)),
        weight: 3,
      })),
      { arbitrary: cond('bool'), weight: 1 },
      // numbers: ordering across int/double is fine in cel-js, equality is not
      {
        arbitrary: fc
          .tuple(sub('num'), fc.constantFrom(...CMP), sub('num'))
          .filter(([a, op, b]) => (op !== '==' && op !== '!=') || eqCompatible(a, b))
          .map(([a, op, b]) => e(`${p(a)} ${op} ${p(b)}`, 'bool', a.typed && b.typed)),
        weight: 4,
      },
      {
        arbitrary: fc
          .tuple(sub('str'), fc.constantFrom(...CMP), sub('str'))
          .map(([a, op, b]) => e(`${p(a)} ${op} ${p(b)}`, 'bool', a.typed && b.typed)),
        weight: 3,
      },
      {
        arbitrary: fc
          .tuple(sub('bool'), fc.constantFrom(...CMP), sub('bool'))
          .filter(([a, , b]) => eqCompatible(a, b))
          .map(([a, op, b]) => e(`${p(a)} ${op} ${p(b)}`, 'bool', a.typed && b.typed)),
        weight: 1,
      },
      // deliberately mixed through dyn: equality is false, ordering an error, in both
      {
        arbitrary: fc
          .tuple(
            fc.constantFrom(
              e('n', 'dyn'),
              e('s', 'dyn'),
              e('b', 'dyn'),
              e('z', 'dyn'),
              e('any', 'dyn'),
              e('nums', 'dyn'),
              e('obj', 'dyn'),
            ),
            fc.constantFrom(...CMP),
            fc.constantFrom(e('n', 'dyn'), e('s', 'dyn'), e('any', 'dyn'), e('strs', 'dyn'), e('obj', 'dyn')),
          )
          .map(([a, op, b]) => e(`${a.text} ${op} ${b.text}`, 'bool', false)),
        weight: 1,
      },
      {
        arbitrary: fc
          .tuple(sub('num'), fc.constantFrom('nums', 'any', '[1.5, 2.0, -1.0]', '[1, 2, 3]'))
          .filter(([a, l]) => {
            const elemTag: Tag = l.startsWith('[1.') ? 'double' : l.startsWith('[1,') ? 'int' : 'dyn';
            return a.tag === elemTag || a.tag === 'dyn' || elemTag === 'dyn';
          })
          .map(([a, l]) => e(`${p(a)} in ${l}`, 'bool', a.typed)),
        weight: 2,
      },
      {
        arbitrary: fc
          .tuple(sub('str'), fc.constantFrom('strs', 'obj', '["a", "b", ""]', 'obj.nested'))
          .map(([a, l]) => e(`${p(a)} in ${l}`, 'bool', a.typed)),
        weight: 2,
      },
      {
        arbitrary: fc
          .tuple(sub('str'), fc.constantFrom('startsWith', 'endsWith', 'contains'), sub('str'))
          .map(([a, f, b]) => e(`${p(a)}.${f}(${b.text})`, 'bool', a.typed && b.typed)),
        weight: 2,
      },
      { arbitrary: this.quantifier(depth, scope), weight: 3 },
    );
  }

  private quantifier(depth: number, scope: Scope): fc.Arbitrary<Expr> {
    const options: fc.Arbitrary<Expr>[] = [];
    for (const [list, v] of [
      ['items', 'it'],
      ['nums', 'v'],
      ['strs', 'w'],
    ] as const) {
      if (scope.includes(v)) continue;
      const inner = [...scope, v];
      options.push(
        fc
          .tuple(fc.constantFrom('exists', 'all'), this.of('bool', depth - 1, inner))
          .map(([q, pred]) => e(`${list}.${q}(${v}, ${pred.text})`, 'bool', pred.typed)),
      );
    }
    return options.length > 0 ? fc.oneof(...options) : this.of('bool', depth - 1, scope);
  }
}

const MISSING = Symbol('missing');
const num = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0.5, -1.5, 2.5, 100.5, 1000),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
);
const str = fc.string({ unit: fc.constantFrom(...ALPHABET), maxLength: 4 });
const leaf = fc.oneof(num, str, fc.boolean(), fc.constant(null));
/** Mostly the nominal type; sometimes another JSON value, sometimes absent. */
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | unknown> =>
  fc.oneof(
    { arbitrary: arb, weight: 8 },
    { arbitrary: leaf, weight: 1 },
    { arbitrary: fc.constant(MISSING), weight: 1 },
  );

/** List elements: mostly the nominal type, sometimes another JSON leaf. */
const mostly = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | unknown> =>
  fc.oneof({ arbitrary: arb, weight: 6 }, { arbitrary: leaf, weight: 1 });

function dropMissing(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropMissing);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== MISSING)
        .map(([k, x]) => [k, dropMissing(x)]),
    );
  }
  return v;
}

const varsArb = fc
  .record({
    n: maybe(num),
    m: maybe(num),
    s: maybe(str),
    t: maybe(str),
    b: maybe(fc.boolean()),
    c: maybe(fc.boolean()),
    z: fc.constant(null),
    nums: maybe(fc.array(mostly(num), { maxLength: 5 })),
    strs: maybe(fc.array(mostly(str), { maxLength: 5 })),
    // obj, obj.nested and items' elements are always maps: has() selects from them.
    obj: fc.record({
      a: maybe(num),
      s: maybe(str),
      b: maybe(fc.boolean()),
      opt: maybe(str),
      nested: fc.record({ x: maybe(num) }),
    }),
    items: maybe(
      fc.array(fc.record({ price: maybe(num), tag: maybe(str), ok: maybe(fc.boolean()) }), { maxLength: 4 }),
    ),
    // A map with numeric-looking keys meets known difference 5 (cel-js turns `1 in m` into a
    // lookup of "1"), which this property does not test.
    any: fc
      .jsonValue({ maxDepth: 2 })
      .filter(
        (v) =>
          !(v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).some((k) => /^-?[0-9]/.test(k))),
      ),
  })
  .map((v) => dropMissing(v) as Record<string, unknown>);

/** The nominal types of the variables, for checking that well-typed guards type-check. */
const ENV: GuardTypeEnv = Object.fromEntries(
  Object.entries({
    n: { type: 'number' },
    m: { type: 'number' },
    s: { type: 'string' },
    t: { type: 'string' },
    b: { type: 'boolean' },
    c: { type: 'boolean' },
    z: { type: 'null' },
    nums: { type: 'array', items: { type: 'number' } },
    strs: { type: 'array', items: { type: 'string' } },
    obj: {
      type: 'object',
      additionalProperties: false,
      properties: {
        a: { type: 'number' },
        s: { type: 'string' },
        b: { type: 'boolean' },
        opt: { type: 'string' },
        zz: { type: 'string' },
        nested: { type: 'object', properties: { x: { type: 'number' } }, additionalProperties: false },
      },
    },
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: { price: { type: 'number' }, tag: { type: 'string' }, ok: { type: 'boolean' } },
      },
    },
    any: {},
  }).map(([k, s]) => [k, guardTypeFromJsonSchema(s)]),
);

/** cel-js integers are BigInts; -0 and 0 are the same JSON number. */
function normalize(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'number') return v === 0 ? 0 : v;
  if (Array.isArray(v)) return v.map(normalize);
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}

type Outcome = { value: unknown } | 'error';

function celOutcome(source: string, vars: Record<string, unknown>): Outcome {
  try {
    return { value: normalize(celEvaluate(source, vars)) };
  } catch {
    return 'error';
  }
}

function ourOutcome(source: string, vars: Record<string, unknown>): Outcome {
  const c = compileGuard(source);
  if (!c.ok)
    throw new Error(
      `generated guard does not compile: ${source}\n${c.error.code} at ${c.error.column}: ${c.error.message}`,
    );
  const r = evaluateGuard(c.guard, vars);
  return r.ok ? { value: normalize(r.value) } : 'error';
}

const gen = new Generator();
const guardArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 4 }).chain((d) => gen.of('bool', d, [])), weight: 8 },
  { arbitrary: gen.of('num', 2, []), weight: 1 },
  { arbitrary: gen.of('str', 2, []), weight: 1 },
);

describe('differential: evaluateGuard agrees with cel-js inside the subset', () => {
  test('same value, or an error from both', () => {
    let values = 0;
    let errors = 0;
    fc.assert(
      fc.property(guardArb, varsArb, (guard, vars) => {
        const ours = ourOutcome(guard.text, vars);
        const theirs = celOutcome(guard.text, vars);
        expect(ours, guard.text).toEqual(theirs);
        if (ours === 'error') errors++;
        else values++;
      }),
      { numRuns: 1500 },
    );
    // The comparison is only meaningful if most guards produce values.
    expect(values).toBeGreaterThan(errors);
  });

  test('well-typed generated guards type-check against the declared schemas', () => {
    fc.assert(
      fc.property(guardArb, (guard) => {
        fc.pre(guard.typed);
        const c = compileGuard(guard.text, ENV);
        expect(c.ok ? 'ok' : `${c.error.code} at ${c.error.column}: ${c.error.message}`, guard.text).toBe('ok');
      }),
      { numRuns: 500 },
    );
  });

  test('the canonical text evaluates like the source', () => {
    fc.assert(
      fc.property(guardArb, varsArb, (guard, vars) => {
        const c = compileGuard(guard.text);
        if (!c.ok) throw new Error(c.error.message);
        const again = compileGuard(c.guard.canonical);
        if (!again.ok) throw new Error(`${c.guard.canonical}: ${again.error.message}`);
        expect(again.guard.canonical).toBe(c.guard.canonical);
        expect(again.guard.nodeCount).toBe(c.guard.nodeCount);
        expect(ourOutcome(c.guard.canonical, vars)).toEqual(ourOutcome(guard.text, vars));
      }),
      { numRuns: 300 },
    );
  });
});

/** Anything JavaScript can hold, including values that are not JSON. */
const hostile = fc.anything({
  maxDepth: 3,
  withBigInt: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withTypedArray: true,
  withNullPrototype: true,
  withBoxedValues: true,
  withSparseArray: true,
  withObjectString: true,
});
const hostileVars = fc.record(
  {
    n: hostile,
    m: hostile,
    s: hostile,
    t: hostile,
    b: hostile,
    c: hostile,
    z: hostile,
    nums: hostile,
    strs: hostile,
    any: hostile,
    items: hostile,
    obj: fc.oneof(hostile, fc.record({ a: hostile, s: hostile, b: hostile, opt: hostile, nested: hostile })),
  },
  { requiredKeys: [] },
);

describe('totality', () => {
  test('evaluation terminates, never throws, and stays within maxCost for arbitrary variables', () => {
    fc.assert(
      fc.property(
        guardArb,
        fc.oneof(varsArb, hostileVars),
        fc.integer({ min: 0, max: 300 }),
        (guard, vars, maxCost) => {
          const c = compileGuard(guard.text);
          if (!c.ok) throw new Error(c.error.message);
          const r = evaluateGuard(c.guard, vars, { maxCost });
          expect(r.cost).toBeLessThanOrEqual(maxCost);
          if (r.ok) {
            expect(JSON.parse(JSON.stringify(r.explain))).toEqual(r.explain);
            expect(r.explain.length).toBeGreaterThan(0);
            expect(r.explain.length).toBeLessThanOrEqual(64);
          } else {
            expect(['E_GUARD_RUNTIME', 'E_GUARD_COST']).toContain(r.error.code);
            expect(r.error.column).toBeGreaterThanOrEqual(1);
            expect(r.error.column).toBeLessThanOrEqual(guard.text.length);
            if (r.error.code === 'E_GUARD_COST') expect(r.cost).toBe(maxCost);
          }
          // A larger budget never changes a result that fit in the smaller one.
          if (r.ok || r.error.code !== 'E_GUARD_COST') {
            const unbounded = evaluateGuard(c.guard, vars, { maxCost: 1_000_000 });
            expect(unbounded).toEqual(r);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
