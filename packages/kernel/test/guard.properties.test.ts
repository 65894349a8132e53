/**
 * Properties over arbitrary text: compileGuard and evaluateGuard are total on any input, errors
 * point inside the source, and the canonical form is a fixed point.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { GUARD_ERROR_CODES, compileGuard, evaluateGuard } from '../src/guard/index.js';

const TOKENS = [
  'a',
  'b',
  'xs',
  'm',
  'e',
  'has',
  'size',
  'exists',
  'all',
  'map',
  'matches',
  'int',
  'startsWith',
  'contains',
  'true',
  'false',
  'null',
  'in',
  '1',
  '2.5',
  '-',
  '0x1',
  '"s"',
  "'t'",
  'r"\\d"',
  'b"x"',
  '1u',
  '.',
  '.?',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  ',',
  ':',
  '?',
  '!',
  '==',
  '!=',
  '<',
  '<=',
  '>',
  '>=',
  '&&',
  '||',
  '+',
  '*',
  '/',
  '%',
  '// c\n',
  ' ',
  '\n',
];

/** Mostly-plausible CEL made of real tokens, so that a good share compiles. */
const soup = (maxLength: number): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength }).map((t) => t.join(' '));
const tokenSoup = soup(25);
const source = fc.oneof(tokenSoup, fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }));
const vars = fc.dictionary(
  fc.constantFrom('a', 'b', 'xs', 'm', 'e'),
  fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.anything({ maxDepth: 2, withBigInt: true, withDate: true, withMap: true }),
  ),
);
const CODES = new Set(GUARD_ERROR_CODES.map((c) => c.code));

describe('totality on arbitrary text', () => {
  test('compileGuard never throws; errors have a known code and a column inside the source', () => {
    let compiled = 0;
    fc.assert(
      fc.property(source, (src) => {
        const c = compileGuard(src);
        if (c.ok) {
          compiled++;
          return;
        }
        expect(CODES).toContain(c.error.code);
        expect(c.error.column).toBeGreaterThanOrEqual(1);
        expect(c.error.column).toBeLessThanOrEqual(src.length + 1);
        expect(c.error.message.length).toBeGreaterThan(0);
      }),
      { numRuns: 3000 },
    );
    expect(compiled).toBeGreaterThan(30);
  });

  test('compiled guards evaluate without throwing, within budget, and canonical text is a fixed point', () => {
    fc.assert(
      fc.property(soup(6), vars, fc.integer({ min: 0, max: 100 }), (src, v, maxCost) => {
        const c = compileGuard(src);
        fc.pre(c.ok);
        if (!c.ok) return;
        const again = compileGuard(c.guard.canonical);
        expect(again.ok && again.guard.canonical).toBe(c.guard.canonical);
        const r = evaluateGuard(c.guard, v, { maxCost });
        expect(r.cost).toBeLessThanOrEqual(maxCost);
        if (!r.ok) expect(['E_GUARD_RUNTIME', 'E_GUARD_COST']).toContain(r.error.code);
        else expect(JSON.parse(JSON.stringify(r.explain))).toEqual(r.explain);
      }),
      { numRuns: 300 },
    );
  });
});
