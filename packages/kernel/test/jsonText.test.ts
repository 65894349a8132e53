import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  checkModelAnswer,
  checkValueLimits,
  decodeUtf8,
  JsonTextError,
  MAX_JSON_DEPTH,
  parseJsonText,
  project,
} from '../src/internal.js';

const refusal = (text: string, limits = {}) => {
  try {
    parseJsonText(text, limits);
  } catch (e) {
    if (e instanceof JsonTextError) return { code: e.code, problem: e.problem, offset: e.offset };
    throw e;
  }
  return null;
};

describe('parseJsonText (the strict JSON reader)', () => {
  it('reads what JSON.parse reads, to the same value (random JSON)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
        const text = JSON.stringify(v);
        expect(canonicalJson(parseJsonText(text))).toBe(canonicalJson(JSON.parse(text)));
      }),
    );
  });

  it('refuses what JSON.parse refuses (random text)', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'{}[]",:01-.eE tfalsnu\\x'.split('')) }), (text) => {
        let native = true;
        try {
          JSON.parse(text);
        } catch {
          native = false;
        }
        const strict = refusal(text);
        if (!native) expect(strict).not.toBeNull();
      }),
    );
  });

  it('refuses a member named twice, with the byte offset of the second name', () => {
    expect(refusal('{"a":1,"a":2}')).toEqual({ code: 'E_JSON', problem: 'duplicate', offset: 7 });
    expect(refusal('{"é":{"outcome":"A","outcome":"B"}}')).toEqual({
      code: 'E_JSON',
      problem: 'duplicate',
      offset: 21,
    });
    // Two names that differ only in escaping are the same name.
    expect(refusal('{"a":1,"\\u0061":2}')?.problem).toBe('duplicate');
  });

  it('refuses nesting deeper than the limit, iteratively (a million brackets)', () => {
    expect(refusal('['.repeat(1_000_000))).toEqual({ code: 'E_TOO_DEEP', problem: 'depth', offset: MAX_JSON_DEPTH });
    expect(refusal(`${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`)).toBeNull();
    expect(refusal('[[[]]]', { maxDepth: 2 })?.code).toBe('E_TOO_DEEP');
  });

  it('refuses text over a size limit, and numbers JSON cannot carry', () => {
    expect(refusal('"abcdef"', { maxChars: 4 })?.code).toBe('E_TOO_LARGE');
    expect(refusal('1e999')?.problem).toBe('syntax');
  });

  it('keeps __proto__, constructor and prototype as ordinary members', () => {
    const v = parseJsonText('{"__proto__":{"polluted":1},"constructor":{"prototype":2}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(['__proto__', 'constructor']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(canonicalJson(v)).toBe('{"__proto__":{"polluted":1},"constructor":{"prototype":2}}');
  });
});

describe('decodeUtf8', () => {
  it('refuses malformed UTF-8 with the offset of the first bad byte', () => {
    expect(decodeUtf8(new Uint8Array([0x61, 0xc3, 0xa9, 0x62, 0xff]))).toEqual({ badOffset: 4 });
    expect(decodeUtf8(new Uint8Array([0x61, 0xe2, 0x82]))).toEqual({ badOffset: 1 });
    expect(decodeUtf8(new Uint8Array([0xed, 0xa0, 0x80]))).toEqual({ badOffset: 0 }); // a surrogate
    expect(decodeUtf8(new TextEncoder().encode('héllo €'))).toEqual({ text: 'héllo €' });
  });
});

describe('limits on values', () => {
  it('checkValueLimits refuses a value deeper than 128 levels without recursion', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(() => checkValueLimits(deep, 'x')).toThrow(expect.objectContaining({ code: 'E_TOO_DEEP' }));
    expect(() => checkValueLimits('x'.repeat(100), 'x', 128, 50)).toThrow(
      expect.objectContaining({ code: 'E_TOO_LARGE' }),
    );
    expect(() => checkValueLimits({ a: [1, { b: 'c' }] }, 'x')).not.toThrow();
  });

  it('a model answer with a duplicate member is malformed, one nested too deep is E_TOO_DEEP', () => {
    const out = { schema: { type: 'object' } } as const;
    const dup = checkModelAnswer(out, '{"decision":"reject","decision":"approve"}');
    expect(dup).toMatchObject({ ok: false, error: { code: 'E_OUTPUT_MALFORMED' } });
    // Named, without a byte offset: the recorded answer (sensitive values as commitments) has other
    // offsets, and a replay checks the recorded answer again (hostileJson.fuzz.test.ts).
    expect(!dup.ok && dup.error.message).toBe('answer is not valid JSON (duplicate member name "decision")');
    const deep = checkModelAnswer(out, `${'{"a":'.repeat(500)}1${'}'.repeat(500)}`);
    expect(deep).toMatchObject({ ok: false, error: { code: 'E_TOO_DEEP' } });
  });
});

describe('projection never walks into Object.prototype', () => {
  it('a path through __proto__ reads the member, and the view keeps it as data', () => {
    const state = { input: JSON.parse('{"__proto__":{"polluted":"x"}}') as unknown };
    const view = project(state, ['input.__proto__.polluted']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(canonicalJson(view)).toBe('{"input":{"__proto__":{"polluted":"x"}}}');
  });
});
