import { describe, expect, test } from 'vitest';
import {
  DEFAULT_GUARD_MAX_COST,
  GUARD_ERROR_CODES,
  MAX_EXPLAIN_ENTRIES,
  compileGuard,
  evaluateGuard,
  formatGuardType,
  guardTypeFromJsonSchema,
  type CompiledGuard,
  type GuardEvalResult,
  type GuardType,
  type GuardTypeEnv,
} from '../src/guard/index.js';

function compiled(source: string, env?: GuardTypeEnv): CompiledGuard {
  const c = compileGuard(source, env);
  if (!c.ok) throw new Error(`${source}: ${c.error.code} at ${c.error.column}: ${c.error.message}`);
  return c.guard;
}

function run(source: string, vars: Record<string, unknown> = {}, maxCost?: number): GuardEvalResult {
  return evaluateGuard(compiled(source), vars, maxCost === undefined ? undefined : { maxCost });
}

function value(source: string, vars: Record<string, unknown> = {}): unknown {
  const r = run(source, vars);
  if (!r.ok) throw new Error(`${source}: ${r.error.code} at ${r.error.column}: ${r.error.message}`);
  return r.value;
}

/** Code and column of a compile error (or 'compiled'). */
function compileError(source: string, env?: GuardTypeEnv): 'compiled' | [string, number] {
  const c = compileGuard(source, env);
  return c.ok ? 'compiled' : [c.error.code, c.error.column];
}

/** Code and column of an evaluation error (or the value). */
function evalError(source: string, vars: Record<string, unknown> = {}): unknown {
  const r = run(source, vars);
  return r.ok ? { value: r.value } : [r.error.code, r.error.column];
}

const schema = (s: unknown): GuardType => guardTypeFromJsonSchema(s);

const ORDER = {
  type: 'object',
  additionalProperties: false,
  required: ['amount', 'country'],
  properties: {
    amount: { type: 'number' },
    country: { type: 'string' },
    vip: { type: 'boolean' },
    note: { type: ['string', 'null'] },
    tags: { type: 'array', items: { type: 'string' } },
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: { sku: { type: 'string' }, qty: { type: 'integer' } },
        additionalProperties: false,
      },
    },
    meta: { type: 'object' },
    anything: {},
  },
};
const ENV: GuardTypeEnv = { input: schema(ORDER) };

describe('supported constructs evaluate as documented', () => {
  const vars = {
    input: {
      amount: 400.5,
      country: 'DE',
      vip: false,
      note: null,
      tags: ['new', 'eu'],
      items: [
        { sku: 'A-1', qty: 2 },
        { sku: 'B-7', qty: 12 },
      ],
      meta: { 'odd key': 1, nested: { deep: true } },
    },
  };
  test.each([
    ['"a"', 'a'],
    ["'single'", 'single'],
    ['r"raw\\n"', 'raw\\n'],
    ['"esc\\n\\u00e9"', 'esc\né'],
    ['"""triple"quoted"""', 'triple"quoted'],
    ['42', 42],
    ['-7', -7],
    ['0x1F', 31],
    ['2.5e2', 250],
    ['true', true],
    ['null', null],
    ['[1, "a", [true], null]', [1, 'a', [true], null]],
    ['[]', []],
    ['input.country', 'DE'],
    ['input.meta.nested.deep', true],
    ['input["country"]', 'DE'],
    ['input.meta["odd key"]', 1],
    ['input.items[1].sku', 'B-7'],
    ['input.items[1.0].qty', 12],
    ['input.amount == 400.5', true],
    ['input.amount != 400.5', false],
    ['input.amount < 500', true],
    ['input.amount <= 400.5', true],
    ['input.amount > 400', true],
    ['input.amount >= 401', false],
    ['1 == 1.0', true],
    ['"abc" < "abd"', true],
    ['"Z" < "a"', true],
    ['"\\uffff" < "😀"', true],
    ['false < true', true],
    ['true >= true', true],
    ['null == null', true],
    ['input.note == null', true],
    ['input.country == 1', false],
    ['input.tags == ["new", "eu"]', true],
    ['input.tags == ["eu", "new"]', false],
    ['input.meta == {"odd key": 1}'.replace('{"odd key": 1}', 'input.meta'), true],
    ['input.vip || input.amount < 500', true],
    ['input.vip && input.amount < 500', false],
    ['!input.vip', true],
    ['!!input.vip', false],
    ['input.vip ? 1 : 2', 2],
    ['input.amount > 100 ? "big" : "small"', 'big'],
    ['"eu" in input.tags', true],
    ['"us" in input.tags', false],
    ['2 in [1.0, 2.0]', true],
    ['["a"] in [["a"], ["b"]]', true],
    ['"nested" in input.meta', true],
    ['"constructor" in input.meta', false],
    ['1 in input.meta', false],
    ['size(input.tags)', 2],
    ['input.tags.size()', 2],
    ['size(input.meta)', 2],
    ['size("héllo😀")', 6],
    ['size("")', 0],
    ['has(input.vip)', true],
    ['has(input.missing)', false],
    ['has(input.meta.nested)', true],
    ['has(input.meta.toString)', false],
    ['input.country.startsWith("D")', true],
    ['input.country.endsWith("E")', true],
    ['input.country.contains("")', true],
    ['input.country.contains("x")', false],
    ['input.items.exists(i, i.qty > 10)', true],
    ['input.items.all(i, i.qty > 10)', false],
    ['input.items.all(i, i.sku.contains("-"))', true],
    ['[].exists(x, x)', false],
    ['[].all(x, x)', true],
    ['input.items.exists(i, input.tags.exists(t, i.sku.startsWith("A") && t == "eu"))', true],
    ['input.missing.x && false', false],
    ['false && input.missing.x', false],
    ['input.missing.x || true', true],
    ['(1 < 2) == true', true],
    ['input.amount == 400.5 // a comment\n && input.country == "DE"', true],
  ] as const)('%s', (source, expected) => {
    expect(value(source, vars)).toEqual(expected);
  });

  test('equality and ordering of doubles follow IEEE (NaN unequal, -0 == 0)', () => {
    expect(value('x == x', { x: Number.NaN })).toBe(false);
    expect(value('x != x', { x: Number.NaN })).toBe(true);
    expect(value('x < 1 || x >= 1', { x: Number.NaN })).toBe(false);
    expect(value('x == 0', { x: -0 })).toBe(true);
  });

  test('a map key whose value is undefined is absent', () => {
    expect(value('has(m.a)', { m: { a: undefined } })).toBe(false);
    expect(value('size(m)', { m: { a: undefined, b: 1 } })).toBe(1);
    expect(value('m == n', { m: { a: undefined, b: 1 }, n: { b: 1 } })).toBe(true);
  });

  test('prototype properties are not keys', () => {
    expect(evalError('m.constructor', { m: {} })).toEqual(['E_GUARD_RUNTIME', 3]);
    expect(evalError('m["__proto__"]', { m: {} })).toEqual(['E_GUARD_RUNTIME', 2]);
    expect(value('m["__proto__"]', { m: JSON.parse('{"__proto__": 5}') as unknown })).toBe(5);
    expect(evalError('toString', {})).toEqual(['E_GUARD_RUNTIME', 1]);
  });

  test('Object.create(null) maps are maps', () => {
    const m = Object.assign(Object.create(null) as object, { a: 1 });
    expect(value('m.a == 1', { m })).toBe(true);
  });
});

describe('compile errors carry a stable code and the column of the offending token', () => {
  test.each([
    // syntax
    ['input.amount >', 'E_GUARD_SYNTAX', 15],
    ['(a', 'E_GUARD_SYNTAX', 3],
    ['a &&& b', 'E_GUARD_SYNTAX', 5],
    ['"unterminated', 'E_GUARD_SYNTAX', 1],
    ['a.exists(1, true)', 'E_GUARD_SYNTAX', 10],
    ['a = 1', 'E_GUARD_SYNTAX', 3],
    ['', 'E_GUARD_SYNTAX', 1],
    ['function', 'E_GUARD_SYNTAX', 1],
    // arithmetic
    ['a + 1 > 2', 'E_GUARD_UNSUPPORTED', 3],
    ['a - 1', 'E_GUARD_UNSUPPORTED', 3],
    ['(a) * 2', 'E_GUARD_UNSUPPORTED', 5],
    ['a / 2', 'E_GUARD_UNSUPPORTED', 3],
    ['a % 2 == 0', 'E_GUARD_UNSUPPORTED', 3],
    ['x == "a" + "b"', 'E_GUARD_UNSUPPORTED', 10],
    ['-a < 0', 'E_GUARD_UNSUPPORTED', 1],
    ['--a == 1', 'E_GUARD_UNSUPPORTED', 1],
    ['-"a"', 'E_GUARD_UNSUPPORTED', 1],
    // functions, methods, macros
    ['a.matches("^x")', 'E_GUARD_UNSUPPORTED', 3],
    ['matches(a, "^x")', 'E_GUARD_UNSUPPORTED', 1],
    ['int(a) == 1', 'E_GUARD_UNSUPPORTED', 1],
    ['string(1) == "1"', 'E_GUARD_UNSUPPORTED', 1],
    ['timestamp("2024-01-01T00:00:00Z") < now', 'E_GUARD_UNSUPPORTED', 1],
    ['type(a) == string', 'E_GUARD_UNSUPPORTED', 1],
    ['dyn(a) == 1', 'E_GUARD_UNSUPPORTED', 1],
    ['a.lowerAscii() == "x"', 'E_GUARD_UNSUPPORTED', 3],
    ['xs.map(x, x)', 'E_GUARD_UNSUPPORTED', 4],
    ['xs.filter(x, x) == []', 'E_GUARD_UNSUPPORTED', 4],
    ['xs.exists_one(x, x)', 'E_GUARD_UNSUPPORTED', 4],
    ['xs . map(x, x, x)', 'E_GUARD_UNSUPPORTED', 6],
    ['cel.bind(x, 1, x == 1)', 'E_GUARD_UNSUPPORTED', 5],
    ['size(a, b)', 'E_GUARD_UNSUPPORTED', 1],
    ['a.size(1)', 'E_GUARD_UNSUPPORTED', 3],
    ['a.startsWith()', 'E_GUARD_UNSUPPORTED', 3],
    ['a.contains("x", "y")', 'E_GUARD_UNSUPPORTED', 3],
    ['xs.exists(x)', 'E_GUARD_UNSUPPORTED', 4],
    ['xs.all(x, y, z)', 'E_GUARD_UNSUPPORTED', 4],
    ['has(a)', 'E_GUARD_UNSUPPORTED', 5],
    ['has(a["b"])', 'E_GUARD_UNSUPPORTED', 5],
    ['has(a.b, c.d)', 'E_GUARD_UNSUPPORTED', 5],
    // literals and syntax outside the subset
    ['{"a": 1} == m', 'E_GUARD_UNSUPPORTED', 1],
    ['b"bytes" == x', 'E_GUARD_UNSUPPORTED', 1],
    ['1u == x', 'E_GUARD_UNSUPPORTED', 1],
    ['x == 9007199254740992', 'E_GUARD_UNSUPPORTED', 6],
    ['x == -9007199254740992', 'E_GUARD_UNSUPPORTED', 7],
    ['a.?b', 'E_GUARD_UNSUPPORTED', 2],
    ['a[?"b"]', 'E_GUARD_UNSUPPORTED', 2],
    // shadowing
    ['xs.exists(x, ys.all(x, x))', 'E_GUARD_UNSUPPORTED', 21],
    // chained comparisons
    ['a == b < c', 'E_GUARD_UNSUPPORTED', 8],
    ['a < b == c', 'E_GUARD_UNSUPPORTED', 3],
    ['a in b == c', 'E_GUARD_UNSUPPORTED', 3],
    ['(a == b < c)', 'E_GUARD_UNSUPPORTED', 9],
    ['(a == (b) < c)', 'E_GUARD_UNSUPPORTED', 11],
    ['a == b == c', 'E_GUARD_UNSUPPORTED', 3],
  ] as const)('%s -> %s at %i', (source, code, column) => {
    expect(compileError(source)).toEqual([code, column]);
  });

  test('parenthesized comparisons inside comparisons are accepted', () => {
    for (const s of [
      'a == (b < c)',
      '(a == b) < c',
      '((a < b)) == c',
      'a == ( // why\n b < c)',
      '(a in b) == c',
      '(a == b) == c',
    ]) {
      expect(compileError(s)).toBe('compiled');
    }
  });

  test('integer literals up to 2^53 - 1 are exact', () => {
    expect(value('9007199254740991 == x', { x: 9007199254740991 })).toBe(true);
    expect(value('-9007199254740991 == x', { x: -9007199254740991 })).toBe(true);
  });

  test('a guard that is not a string is a syntax error, not an exception', () => {
    expect(compileGuard(42 as unknown as string)).toMatchObject({
      ok: false,
      error: { code: 'E_GUARD_SYNTAX', column: 1 },
    });
  });

  test('E_GUARD_LIMIT: too many nodes or too deep', () => {
    expect(compileError(Array.from({ length: 600 }, () => 'a').join(' && '))[0]).toBe('E_GUARD_LIMIT');
    expect(compileError(Array.from({ length: 70 }, () => 'a').join(' && '))).toEqual(['E_GUARD_LIMIT', 1]);
    expect(compileError(`${'('.repeat(80)}a${')'.repeat(80)}`)[0]).toBe('E_GUARD_LIMIT');
    expect(compileError(`a${'.b'.repeat(80)}`)[0]).toBe('E_GUARD_LIMIT');
    expect(compileError(Array.from({ length: 60 }, () => 'a').join(' && '))).toBe('compiled');
  });

  test('E_GUARD_UNKNOWN_IDENT only with an environment; bound variables are known', () => {
    expect(compileError('inptu.amount > 5', ENV)).toEqual(['E_GUARD_UNKNOWN_IDENT', 1]);
    expect(compileError('input.amount > 5 && steps.x', ENV)).toEqual(['E_GUARD_UNKNOWN_IDENT', 21]);
    expect(compileError('input.items.exists(i, i.qty > 1) && i.qty > 1', ENV)).toEqual(['E_GUARD_UNKNOWN_IDENT', 37]);
    expect(compileError('input.items.exists(i, i.qty > 1)', ENV)).toBe('compiled');
    expect(compileError('inptu.amount > 5')).toBe('compiled');
    const msg = compileGuard('x', { input: { kind: 'dyn' }, steps: { kind: 'dyn' } });
    expect(msg.ok || msg.error.message).toBe("unknown identifier 'x' (known: 'input', 'steps')");
  });

  test('shadowing a declared identifier is rejected', () => {
    expect(compileError('input.items.exists(input, true)', ENV)).toEqual(['E_GUARD_UNSUPPORTED', 20]);
    expect(compileError('xs.exists(x, true) && ys.exists(x, true)')).toBe('compiled');
  });
});

describe('type checking against declared schemas', () => {
  test.each([
    ['input.amout > 5', 7, "input has no field 'amout'"],
    ['has(input.amout)', 11, "input has no field 'amout'"],
    ['input["amout"] > 5', 7, "input has no field 'amout'"],
    ['input.items[0].price > 5', 16, "input.items[0] has no field 'price'"],
    ['input.amount.cents > 5', 14, "cannot select field 'cents': input.amount is number, not a map"],
    ['input.amount == "500"', 14, "cannot compare number with string using '=='"],
    ['input.country < 5', 15, "cannot compare string with number using '<'"],
    ['input.tags < input.tags', 12, "cannot compare list<string> with list<string> using '<'"],
    ['input.country == null', 15, "cannot compare string with null using '=='"],
    ['input.tags == [1, 2]', 12, "cannot compare list<string> with list<number> using '=='"],
    ['1 in input.tags', 3, "cannot look for number in list<string> with 'in'"],
    ['"x" in input.amount', 5, "cannot look for string in number with 'in'"],
    ['1 in input.meta', 3, "cannot look for number in map with 'in'"],
    ['size(input.amount) > 0', 6, 'size() needs a string, list or map, but input.amount is number'],
    ['input.vip.size() > 0', 1, 'size() needs a string, list or map, but input.vip is bool'],
    ['input.amount && true', 1, "'&&' needs a bool, but input.amount is number"],
    ['true || input.country', 9, "'||' needs a bool, but input.country is string"],
    ['!input.tags', 2, "'!' needs a bool, but input.tags is list<string>"],
    ['input.amount ? 1 : 2', 1, 'the condition of `? :` needs a bool, but input.amount is number'],
    ['input.amount.startsWith("4")', 1, 'startsWith() needs a string, but input.amount is number'],
    ['input.country.endsWith(1)', 24, 'endsWith() needs a string, but 1 is number'],
    ['input.country.exists(c, true)', 15, 'exists() needs a list, but input.country is string'],
    ['input.items.all(i, i.qty)', 20, 'the predicate of all() needs a bool, but i.qty is number'],
    ['input.items.exists(i, i.qty == "2")', 29, "cannot compare number with string using '=='"],
    ['input.tags["x"] == "a"', 11, 'cannot index input.tags (list<string>) with string'],
    ['input.meta[1]', 11, 'cannot index input.meta (map) with number'],
    [
      '(input.vip ? input.amount : input.country) && true',
      2,
      "'&&' needs a bool, but input.vip ? input.amount : input.country is number | string",
    ],
  ] as const)('%s', (source, column, message) => {
    const c = compileGuard(source, ENV);
    expect(c.ok ? 'compiled' : c.error).toEqual({ code: 'E_GUARD_TYPE', column, message });
  });

  test.each([
    'input.amount <= 500 && input.country in ["DE", "FR"]',
    'input.note == null || input.note.startsWith("x")',
    'input.note == "x"',
    'input.meta.whatever.deeper == 1',
    'input.anything.x < 3 && input.anything == "s"',
    'input.items.exists(i, i.qty > 10 && i.sku.startsWith("A"))',
    'size(input.items) > 0 && size(input.country) < 4 && size(input.meta) == 0',
    'input.items[0].qty == 1.5 && input["amount"] > 1',
    'input.vip ? input.amount : input.country',
    'has(input.vip) && input.vip',
    '"k" in input.meta && input.tags == [] && input.tags == ["a"]',
    '[input.amount, input.country] == [1, "a"]',
  ])('accepts %s', (source) => {
    expect(compileError(source, ENV)).toBe('compiled');
  });

  test('literals are type-checked without an environment', () => {
    expect(compileError('"a" == 1')).toEqual(['E_GUARD_TYPE', 5]);
    expect(compileError('1 < "a"')).toEqual(['E_GUARD_TYPE', 3]);
    expect(compileError('size(1)')).toEqual(['E_GUARD_TYPE', 6]);
    expect(compileError('1 && x')).toEqual(['E_GUARD_TYPE', 1]);
    expect(compileError('x == 1 && y < "a"')).toBe('compiled');
  });

  test('a union is accepted when some member works', () => {
    const env = {
      v: schema({
        anyOf: [
          { type: 'object', properties: { a: { type: 'number' } }, additionalProperties: false },
          { type: 'null' },
        ],
      }),
    };
    expect(compileError('v.a > 1', env)).toBe('compiled');
    expect(compileError('v == null', env)).toBe('compiled');
    expect(compileError('v.b > 1', env)).toEqual(['E_GUARD_TYPE', 3]);
    expect(compileError('v < 1', env)).toEqual(['E_GUARD_TYPE', 3]);
  });
});

describe('evaluation errors', () => {
  test.each([
    ['x.y', { x: {} }, 3, "no such key 'y' in x (test with has(x.y))"],
    ['x["a b"]', { x: {} }, 2, "no such key 'a b' in x"],
    ['x.y', { x: [1] }, 3, "cannot select 'y': x is list, not a map"],
    ['x[3]', { x: [1] }, 2, 'index 3 is out of range for x (size 1)'],
    ['x[-1]', { x: [1] }, 2, 'index -1 is out of range for x (size 1)'],
    ['x[0.5]', { x: [1] }, 3, 'a list index must be an integer, but 0.5 is 0.5'],
    ['x["0"]', { x: [1] }, 3, 'a list index must be an integer, but "0" is string'],
    ['x[0]', { x: { '0': 1 } }, 3, 'a map key must be a string, but 0 is number'],
    ['x[0]', { x: 'abc' }, 2, 'cannot index x: it is string, not a list or map'],
    ['x < 1', { x: '1' }, 3, "cannot compare string with number using '<'"],
    ['x < y', { x: null, y: null }, 3, "cannot compare null with null using '<'"],
    ['x < y', { x: [1], y: [2] }, 3, "cannot compare list with list using '<'"],
    ['1 in x', { x: 'abc' }, 3, "'in' needs a list or map on the right, but x is string"],
    ['x && true', { x: 1 }, 1, "'&&' needs a bool, but x is number"],
    ['true && x', { x: 'no' }, 9, "'&&' needs a bool, but x is string"],
    ['x || false', { x: null }, 1, "'||' needs a bool, but x is null"],
    ['!x', { x: 0 }, 2, "'!' needs a bool, but x is number"],
    ['x ? 1 : 2', { x: 'true' }, 1, 'the condition of `? :` needs a bool, but x is string'],
    ['size(x)', { x: 3 }, 6, 'size() needs a string, list or map, but x is number'],
    ['has(x.y)', { x: 'abc' }, 1, 'has() needs a map, but x is string'],
    ['x.startsWith("a")', { x: 1 }, 3, 'startsWith() needs strings, but x is number'],
    ['"a".contains(x)', { x: 1 }, 5, 'contains() needs strings, but x is number'],
    ['x.exists(e, e)', { x: { a: true } }, 3, 'exists() needs a list, but x is map'],
    ['x.all(e, e)', { x: [true, 1] }, 10, 'the predicate of all() needs a bool, but e is number'],
    ['missing', {}, 1, "no variable 'missing' was given to the guard"],
    ['x', { x: undefined }, 1, "no variable 'x' was given to the guard"],
    ['x', { x: new Date(0) }, 1, 'x is an unsupported object, not a JSON value'],
    ['x.f', { x: { f: () => 1 } }, 3, 'x.f is an unsupported function, not a JSON value'],
    ['x == 1', { x: 1n }, 1, 'x is an unsupported bigint, not a JSON value'],
    ['x.exists(e, e == 1)', { x: [new Map()] }, 13, 'e is an unsupported object, not a JSON value'],
    ['x == y', { x: [new Map()], y: [new Map()] }, 3, "cannot compare values that are not JSON with '=='"],
  ] as const)('%s', (source, vars, column, message) => {
    const r = run(source, vars as Record<string, unknown>);
    expect(r.ok ? r.value : r.error).toEqual({ code: 'E_GUARD_RUNTIME', column, message });
  });

  test('errors are absorbed by a deciding operand, in either order', () => {
    expect(value('x.y && false', { x: {} })).toBe(false);
    expect(value('false && x.y', { x: {} })).toBe(false);
    expect(value('x.y || true', { x: {} })).toBe(true);
    expect(value('x || true', { x: 1 })).toBe(true);
    expect(evalError('x.y && x.z', { x: {} })).toEqual(['E_GUARD_RUNTIME', 3]);
    expect(evalError('x.y || false', { x: {} })).toEqual(['E_GUARD_RUNTIME', 3]);
    expect(value('l.exists(e, e.ok)', { l: [{}, 5, { ok: true }] })).toBe(true);
    expect(value('l.all(e, e.ok)', { l: [{}, 5, { ok: false }] })).toBe(false);
    expect(evalError('l.exists(e, e.ok)', { l: [{}, { ok: false }] })).toEqual(['E_GUARD_RUNTIME', 15]);
  });

  test('a hostile getter is reported, not thrown', () => {
    const x = {};
    Object.defineProperty(x, 'y', {
      enumerable: true,
      get: () => {
        throw new Error('boom');
      },
    });
    expect(run('x.y', { x })).toMatchObject({
      ok: false,
      error: { code: 'E_GUARD_RUNTIME', message: 'evaluation failed: boom' },
    });
  });

  test('deeply nested values fail cleanly', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const r = evaluateGuard(compiled('x == y'), { x: deep, y: deep }, { maxCost: Number.MAX_SAFE_INTEGER });
    expect(r.ok).toBe(false);
  });
});

describe('cost metering', () => {
  test('each evaluated node costs 1; nodeCount is the cost without short-circuits', () => {
    const g = compiled('a.b < 5 && c');
    expect(g.nodeCount).toBe(6);
    expect(evaluateGuard(g, { a: { b: 1 }, c: true })).toMatchObject({ ok: true, cost: 6 });
    expect(evaluateGuard(g, { a: { b: 9 }, c: true })).toMatchObject({ ok: true, cost: 5 });
  });

  test('each element visited by exists/all/in and each element compared by == costs 1', () => {
    // exists: 3 (exists, xs) + per element 1 + 3 (e, ==, literal)
    expect(run('xs.exists(e, e == 9)', { xs: [1, 2, 3] })).toMatchObject({ ok: true, cost: 2 + 3 * 4 });
    expect(run('9 in xs', { xs: [1, 2, 3] })).toMatchObject({ ok: true, cost: 3 + 3 });
    expect(run('xs == ys', { xs: [1, 2, 3], ys: [1, 2, 3] })).toMatchObject({ ok: true, cost: 3 + 3 });
    expect(run('m == n', { m: { a: [1, 2] }, n: { a: [1, 2] } })).toMatchObject({ ok: true, cost: 3 + 1 + 2 });
  });

  test('exceeding maxCost is E_GUARD_COST with cost = maxCost, and is not absorbed', () => {
    const big = Array.from({ length: 10_000 }, (_, i) => i);
    const r = run('xs.exists(e, e < 0) || true', { xs: big });
    expect(r).toMatchObject({ ok: false, error: { code: 'E_GUARD_COST' }, cost: DEFAULT_GUARD_MAX_COST });
    expect(run('xs.exists(e, e < 0)', { xs: big }, 1_000_000)).toMatchObject({ ok: true, value: false });
    expect(run('true', {}, 0)).toMatchObject({ ok: false, error: { code: 'E_GUARD_COST', column: 1 }, cost: 0 });
    expect(run('true', {}, 1)).toMatchObject({ ok: true, cost: 1 });
    expect(run('true', {}, Number.NaN)).toMatchObject({ ok: true, cost: 1 });
    expect(run('true', {}, -5)).toMatchObject({ ok: false, error: { code: 'E_GUARD_COST' } });
  });

  test('a cyclic value cannot hang equality', () => {
    const a: unknown[] = [];
    a.push(a);
    const b: unknown[] = [];
    b.push(b);
    expect(run('a == b', { a, b }, 1000)).toMatchObject({ ok: false, error: { code: 'E_GUARD_COST' } });
  });
});

describe('explanations', () => {
  test('a short-circuited && records only the deciding operand', () => {
    const r = run('a.b > 5 && c', { a: { b: 1 }, c: true });
    expect(r).toMatchObject({
      ok: true,
      explain: [
        { expr: 'a.b', value: 1 },
        { expr: 'a.b > 5', value: false },
        { expr: 'a.b > 5 && c', value: false },
      ],
    });
  });

  test('a true && records both operands', () => {
    const r = run('a && b.c == "x"', { a: true, b: { c: 'x' } });
    expect(r.ok && r.explain).toEqual([
      { expr: 'a', value: true },
      { expr: 'b.c', value: 'x' },
      { expr: 'b.c == "x"', value: true },
      { expr: 'a && b.c == "x"', value: true },
    ]);
  });

  test('an absorbed error is not part of the explanation', () => {
    const r = run('x.missing || y', { x: {}, y: true });
    expect(r.ok && r.explain).toEqual([
      { expr: 'y', value: true },
      { expr: 'x.missing || y', value: true },
    ]);
  });

  test('a literal guard explains itself; values are JSON and bounded', () => {
    expect(run('true')).toMatchObject({ explain: [{ expr: 'true', value: true }] });
    const big = Array.from({ length: 500 }, (_, i) => i);
    expect(run('xs', { xs: big })).toMatchObject({ explain: [{ expr: 'xs', value: '<list of 500 elements>' }] });
    expect(run('m', { m: Object.fromEntries(big.map((i) => [`k${i}`, i])) })).toMatchObject({
      explain: [{ expr: 'm', value: '<map with 500 keys>' }],
    });
    const long = 'x'.repeat(1000);
    const r = run('s', { s: long });
    expect(r.ok && (r.explain[0]!.value as string).length).toBe(257);
    expect(run('x == x', { x: Number.POSITIVE_INFINITY })).toMatchObject({
      explain: [{ expr: 'x', value: 'Infinity' }, {}],
    });
  });

  test('at most MAX_EXPLAIN_ENTRIES entries, the whole guard last', () => {
    const source = Array.from({ length: 50 }, (_, i) => `v${i} == ${i}`).join(' && ');
    const vars = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`v${i}`, i]));
    const r = run(source, vars);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.explain).toHaveLength(MAX_EXPLAIN_ENTRIES);
    expect(r.explain.at(-1)).toEqual({ expr: source, value: true });
    expect(JSON.parse(JSON.stringify(r.explain))).toEqual(r.explain);
  });

  test('quantifiers explain through the deciding element', () => {
    const r = run('xs.all(x, x.ok)', { xs: [{ ok: true }, { ok: false }] });
    expect(r.ok && r.explain).toEqual([
      { expr: 'x.ok', value: false },
      { expr: 'xs.all(x, x.ok)', value: false },
    ]);
  });
});

describe('canonical form', () => {
  test.each([
    ['a  &&  b', 'a && b'],
    ['(a && b) && c', 'a && b && c'],
    ['a && (b && c)', 'a && (b && c)'],
    ['(a || b) && c', '(a || b) && c'],
    ['a || b && c', 'a || b && c'],
    ['!(a) ', '!a'],
    ['!(a == b)', '!(a == b)'],
    ['x.size() == 0x2', 'size(x) == 2'],
    ["'it\\'s' == \"it's\"", '"it\'s" == "it\'s"'],
    ['r"\\d" == "\\\\d"', '"\\\\d" == "\\\\d"'],
    ['"tab\\tnl\\n\\x01" == x', '"tab\\tnl\\n\\x01" == x'],
    ['1.0 == 1', '1 == 1'],
    ['-0.5 < x', '-0.5 < x'],
    ['2.5e3 == x', '2500 == x'],
    ['a // comment\n  ? b : c', 'a ? b : c'],
    ['(a ? b : c) ? d : (e ? f : g)', '(a ? b : c) ? d : e ? f : g'],
    // CEL's middle branch is a ConditionalOr: a conditional there keeps its parentheses.
    ['a ? (b ? c : d) : e', 'a ? (b ? c : d) : e'],
    ['(a.b)["c"][0]', 'a.b["c"][0]'],
    ['has( a . b )', 'has(a.b)'],
    ['xs.exists( x ,x.y)', 'xs.exists(x, x.y)'],
    ['((a < b)) == c', '(a < b) == c'],
    ['[ 1 , 2 , ]', '[1, 2]'],
  ] as const)('%s -> %s', (source, canonical) => {
    const g = compiled(source);
    expect(g.canonical).toBe(canonical);
    expect(compiled(g.canonical).canonical).toBe(canonical);
  });
});

describe('guards not made by compileGuard', () => {
  test('a plain { source } object is compiled on the fly', () => {
    const g = { source: 'x > 1', canonical: 'ignored', nodeCount: 0 };
    expect(evaluateGuard(g, { x: 2 })).toMatchObject({ ok: true, value: true });
    expect(evaluateGuard({ ...g, source: 'x +' }, {})).toMatchObject({ ok: false, error: { code: 'E_GUARD_SYNTAX' } });
  });

  test('garbage is an error, not an exception', () => {
    expect(evaluateGuard(null as unknown as CompiledGuard, {})).toMatchObject({
      ok: false,
      error: { code: 'E_GUARD_RUNTIME' },
    });
    expect(evaluateGuard(compiled('x'), null as unknown as Record<string, unknown>)).toMatchObject({ ok: false });
  });
});

describe('guardTypeFromJsonSchema', () => {
  const fmt = (s: unknown): string => formatGuardType(schema(s));
  test.each([
    [true, 'dyn'],
    [{}, 'dyn'],
    [undefined, 'dyn'],
    [{ $ref: '#/x' }, 'dyn'],
    [{ type: 'string' }, 'string'],
    [{ type: 'integer' }, 'number'],
    [{ type: 'number' }, 'number'],
    [{ type: 'boolean' }, 'bool'],
    [{ type: 'null' }, 'null'],
    [{ type: 'whatever' }, 'dyn'],
    [{ type: ['string', 'null'] }, 'string | null'],
    [{ type: ['string', 'string'] }, 'string'],
    [{ type: 'array', items: { type: 'number' } }, 'list<number>'],
    [{ type: 'array' }, 'list<dyn>'],
    [{ items: { type: 'string' } }, 'list<string>'],
    [{ type: 'array', prefixItems: [{ type: 'string' }, { type: 'number' }], items: false }, 'list<string | number>'],
    [{ type: 'array', items: [{ type: 'string' }], additionalItems: false }, 'list<string>'],
    [{ enum: ['a', 'b'] }, 'string'],
    [{ enum: ['a', 1, null] }, 'string | number | null'],
    [{ const: 3 }, 'number'],
    [{ anyOf: [{ type: 'string' }, { type: 'number' }] }, 'string | number'],
    [{ oneOf: [{ type: 'string' }, {}] }, 'dyn'],
    [{ allOf: [{ type: 'string' }] }, 'string'],
    [{ allOf: [{ type: 'string' }, { minLength: 1 }] }, 'dyn'],
    [{ type: 'string', nullable: true }, 'string | null'],
    [{ type: 'object' }, 'map'],
  ] as const)('%j -> %s', (s, t) => {
    expect(fmt(s)).toBe(t);
  });

  test('objects: properties, open/closed', () => {
    expect(schema({ type: 'object', properties: { a: { type: 'string' } } })).toEqual({
      kind: 'map',
      fields: { a: { kind: 'string' } },
      open: true,
    });
    expect(schema({ properties: { a: {} }, additionalProperties: false })).toEqual({
      kind: 'map',
      fields: { a: { kind: 'dyn' } },
      open: false,
    });
    expect(schema({ type: 'object', additionalProperties: false, patternProperties: { '^x': {} } })).toMatchObject({
      open: true,
    });
    expect(schema({ const: { a: [1] } })).toEqual({
      kind: 'map',
      fields: { a: { kind: 'list', elem: { kind: 'number' } } },
      open: false,
    });
    const proto = schema(
      JSON.parse('{"type": "object", "properties": {"__proto__": {"type": "string"}}, "additionalProperties": false}'),
    );
    expect(Object.hasOwn((proto as { fields: object }).fields, '__proto__')).toBe(true);
  });

  test('a cyclic schema object terminates', () => {
    const s: { type: string; properties: Record<string, unknown> } = { type: 'object', properties: {} };
    s.properties['self'] = s;
    expect(schema(s).kind).toBe('map');
  });
});

test('GUARD_ERROR_CODES lists each emitted code once', () => {
  const codes = GUARD_ERROR_CODES.map((c) => c.code);
  expect(new Set(codes).size).toBe(codes.length);
  expect(codes).toEqual([
    'E_GUARD_SYNTAX',
    'E_GUARD_UNSUPPORTED',
    'E_GUARD_LIMIT',
    'E_GUARD_UNKNOWN_IDENT',
    'E_GUARD_TYPE',
    'E_GUARD_RUNTIME',
    'E_GUARD_COST',
  ]);
});
