import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CanonicalJsonError, canonicalJson } from '../src/canonicalJson.js';

describe('canonicalJson (RFC 8785)', () => {
  // Vectors from RFC 8785 §3.2.2 / Appendix B (number serialization) and §3.2.3 (sorting).
  it('serializes numbers in the ECMAScript shortest form', () => {
    const cases: [number, string][] = [
      [0, '0'],
      [-0, '0'],
      [1, '1'],
      [-1, '-1'],
      [1e21, '1e+21'],
      [1e-7, '1e-7'],
      [0.000001, '0.000001'],
      [123456789012345680000, '123456789012345680000'],
      [4.5, '4.5'],
      [2e-3, '0.002'],
      [0.000001234, '0.000001234'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [5e-324, '5e-324'],
      [9007199254740992, '9007199254740992'],
      [295147905179352830000, '295147905179352830000'],
      [-1.2345e-8, '-1.2345e-8'],
    ];
    for (const [n, s] of cases) expect(canonicalJson(n)).toBe(s);
  });

  it('sorts keys by UTF-16 code units (RFC 8785 §3.2.3 example)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    const keys = Object.keys(JSON.parse(canonicalJson(input)) as object);
    // Object.keys puts integer-like keys first; compare the serialized order instead.
    const order = [...canonicalJson(input).matchAll(/"([^"]*)":"([^"]*)"/g)].map((m) => m[2]);
    expect(order).toEqual([
      'Carriage Return',
      'One',
      'Control',
      'Latin Small Letter O With Diaeresis',
      'Euro Sign',
      'Emoji: Grinning Face',
      'Hebrew Letter Dalet With Dagesh',
    ]);
    expect(keys).toHaveLength(7);
  });

  it('matches the RFC 8785 §3.2.2 sample', () => {
    const input = {
      numbers: [333333333.33333329, 1e30, 4.5, 2e-3, 0.000000000000000000000000001],
      string: '\u20ac$\u000f\nA\'B"\\\\"/',
      literals: [null, true, false],
    };
    expect(canonicalJson(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('omits undefined members and rejects values JSON cannot carry', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(() => canonicalJson(Number.NaN)).toThrow(expect.objectContaining({ code: 'E_NOT_JSON', path: '' }));
    expect(() => canonicalJson({ x: [Infinity] })).toThrow(/\/x\/0/);
    expect(() => canonicalJson({ d: new Date(0) })).toThrow(/Date/);
    expect(() => canonicalJson([undefined])).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(10n)).toThrow(CanonicalJsonError);
  });

  it('round-trips: parse(canonical(v)) is v, and canonical is idempotent', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const c = canonicalJson(v);
        expect(canonicalJson(JSON.parse(c))).toBe(c);
        expect(JSON.parse(c)).toEqual(JSON.parse(JSON.stringify(v)));
      }),
      { numRuns: 300 },
    );
  });

  it('is independent of key insertion order', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (o) => {
        const reversed = Object.fromEntries(Object.entries(o).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(o));
      }),
      { numRuns: 200 },
    );
  });
});

/** A deliberately naive reference: JSON.stringify for every primitive, sorted keys. */
function reference(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${reference(o[k])}`)
    .join(',')}}`;
}

describe('canonicalJson fast paths', () => {
  it('agrees with a naive reference on arbitrary Unicode (lone surrogates, controls, quotes)', () => {
    const str = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      fc.constantFrom('\ud800', 'a\udc00b', '"\\', '\u0000\u001f\u007f', '\u2028\u2029'),
    );
    const json = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        str,
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('v')),
        fc.dictionary(str, tie('v')),
      ),
    })).v;
    fc.assert(
      fc.property(json, (v) => {
        expect(canonicalJson(v)).toBe(reference(v));
      }),
      { numRuns: 500 },
    );
  });
});

describe('canonicalJson native fast path', () => {
  const key = fc.constantFrom(
    'a',
    'b',
    'B',
    '',
    '0',
    '1',
    '2',
    '10',
    '01',
    '-1',
    '-x',
    ' ',
    '~',
    'é',
    '\u20ac',
    '\ud83d\ude00',
    'constructor',
    'toString',
  );
  const leaf = fc.oneof(
    fc.string(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.constant(-0),
  );
  const tree = fc.letrec((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      leaf,
      fc.array(tie('v'), { maxLength: 4 }),
      fc.array(fc.tuple(key, tie('v')), { maxLength: 6 }).map((entries) => Object.fromEntries(entries)),
    ),
  })).v;
  /** The same value with every object's members inserted in sorted order (JS may still list integer-like names first). */
  const sorted = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sorted)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
          )
        : v;

  it('agrees with the naive reference whether or not members are already in order', () => {
    fc.assert(
      fc.property(tree, (v) => {
        expect(canonicalJson(v)).toBe(reference(v));
        expect(canonicalJson(sorted(v))).toBe(reference(v));
      }),
      { numRuns: 1000 },
    );
  });

  it('never takes the fast path for values JSON.stringify would write differently', () => {
    expect(canonicalJson({ '10': 1, '2': 2 })).toBe('{"10":1,"2":2}'); // JS lists 2 before 10
    expect(canonicalJson({ '-x': 1, '1': 2 })).toBe('{"-x":1,"1":2}');
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(CanonicalJsonError); // stringify would write null
    expect(() => canonicalJson({ a: [1, undefined] })).toThrow(CanonicalJsonError);
    expect(() => canonicalJson({ a: new Date(0) })).toThrow(CanonicalJsonError); // stringify would call toJSON
    expect(() => canonicalJson({ a: () => 1 })).toThrow(CanonicalJsonError);
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
    const noProto = Object.create(null) as Record<string, unknown>;
    noProto.a = 1;
    expect(canonicalJson(noProto)).toBe('{"a":1}');
  });
});
