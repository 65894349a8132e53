/**
 * checkSchema answers "valid" for common schemas without the full validator (a quick acceptor);
 * its verdict must be the validator's for every schema and value.
 */
import { Validator, type Schema } from '@cfworker/json-schema';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkInputSchema, checkSchema } from '../src/schemaCheck.js';

const scalar = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -3, max: 3 }),
  fc.double({ min: -3, max: 3, noNaN: true }),
  fc.constantFrom('a', 'b', ''),
);
const typeName = fc.constantFrom('null', 'boolean', 'integer', 'number', 'string', 'array', 'object');
const bound = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.double({ min: -3, max: 3, noNaN: true }));
const names = fc.constantFrom('a', 'b', 'c', '__proto__');

// Schemas of a few keywords each, so that values satisfy them often enough to exercise acceptance.
const schema: fc.Arbitrary<unknown> = fc.letrec((tie) => {
  const keyword: Record<string, fc.Arbitrary<unknown>> = {
    type: fc.oneof(typeName, fc.array(typeName, { minLength: 1, maxLength: 3 })),
    properties: fc.dictionary(names, tie('node'), { maxKeys: 3 }),
    required: fc.array(names, { maxLength: 2 }),
    additionalProperties: fc.oneof(fc.boolean(), tie('node')),
    minimum: bound,
    maximum: bound,
    exclusiveMinimum: bound,
    exclusiveMaximum: bound,
    enum: fc.array(scalar, { minLength: 1, maxLength: 3 }),
    const: scalar,
    items: tie('node'),
    minItems: fc.nat(2),
    maxItems: fc.nat(3),
    title: fc.string(),
    pattern: fc.constant('^a'),
  };
  return {
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.boolean(),
      fc
        .uniqueArray(fc.constantFrom(...Object.keys(keyword)), { maxLength: 3 })
        .chain((ks) => fc.record(Object.fromEntries(ks.map((k) => [k, keyword[k]!])))),
    ),
  };
}).node;

const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    scalar,
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(names, tie('v'), { maxKeys: 3 }),
  ),
})).v;

describe('checkSchema', () => {
  it('accepts exactly what the full validator accepts', () => {
    fc.assert(
      fc.property(schema, fc.array(value, { minLength: 1, maxLength: 8 }), (s, vs) => {
        for (const v of vs) {
          const full = typeof s === 'boolean' ? s : new Validator(s as Schema, '2020-12', false).validate(v).valid;
          expect(checkSchema(s as never, v).length === 0).toBe(full);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('accepts a typical program input without the full validator, and reports violations as the validator does', () => {
    const s = {
      type: 'object',
      additionalProperties: false,
      required: ['value'],
      properties: { value: { type: 'number', minimum: 0, maximum: 1 } },
    };
    expect(checkSchema(s, { value: 0.5 })).toEqual([]);
    expect(checkSchema(s, { value: 2 })).toEqual([{ at: '/value', message: '2 is greater than 1.' }]);
    expect(checkSchema(s, { value: 0.5, x: 1 }).length).toBe(1);
    expect(checkSchema(s, {}).length).toBe(1);
  });
});

describe('checkInputSchema: worded messages that name the path', () => {
  const schema = {
    type: 'object',
    additionalProperties: false,
    required: ['code'],
    properties: {
      code: { type: 'string', pattern: '^[A-Z]{2}$' },
      kind: { enum: ['a', 'b'] },
      v: { const: 3 },
      o: { $ref: '#/$defs/o' },
      'a/b': { type: 'number' },
    },
    $defs: { o: { type: 'object', properties: { p: { type: 'string', pattern: '^x' } } } },
  };
  it.each([
    [{}, ["/: missing required property 'code'"]],
    [
      { code: 'AB', __proto__x: 1 },
      ["/__proto__x: unexpected property '__proto__x' (the schema allows no other properties here)"],
    ],
    [{ code: 'abc' }, ['/code: "abc" does not match the pattern ^[A-Z]{2}$']],
    [{ code: 'AB', kind: 'c' }, ['/kind: "c" is not one of "a", "b"']],
    [{ code: 'AB', v: 4 }, ['/v: must be 3, got 4']],
    [{ code: 'AB', 'a/b': 'x' }, ['/a~1b: expected number, got string "x"']],
    [{ code: 'AB', o: { p: 'y' } }, ['/o/p: "y" does not match the pattern ^x']],
    [{ code: 'AB', o: { $ref: '#/code', p: 1 } }, ['/o/p: expected string, got integer 1']],
  ])('%j', (value, messages) => {
    expect(checkInputSchema(schema, value).map((v) => v.message)).toEqual(messages);
  });

  it('leaves checkSchema (recorded in events) as it was', () => {
    expect(checkSchema(schema, { code: 'AB', x: 1 }).map((v) => v.message)).toEqual(['False boolean schema.']);
  });
});
