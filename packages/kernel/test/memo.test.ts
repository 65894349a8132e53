import { describe, expect, it } from 'vitest';
import { memoByObject, memoByString } from '../src/memo.js';

/** A function that counts how often it ran, per key. */
function counted<K, V>(f: (k: K) => V): { f: (k: K) => V; runs: Map<K, number> } {
  const runs = new Map<K, number>();
  return {
    runs,
    f: (k) => {
      runs.set(k, (runs.get(k) ?? 0) + 1);
      return f(k);
    },
  };
}

describe('memoByObject', () => {
  it('computes once per key object and returns the same result', () => {
    const c = counted((o: { n: number }) => ({ twice: o.n * 2 }));
    const memo = memoByObject(c.f);
    const a = { n: 1 };
    const b = { n: 1 };
    const first = memo(a);
    expect(memo(a)).toBe(first);
    expect(first).toEqual({ twice: 2 });
    expect(memo(b)).not.toBe(first);
    expect(c.runs.get(a)).toBe(1);
    expect(c.runs.get(b)).toBe(1);
  });

  it('remembers null and undefined results too', () => {
    const cn = counted((_: object) => null);
    const cu = counted((_: object): undefined => undefined);
    const key = {};
    const n = memoByObject(cn.f);
    const u = memoByObject(cu.f);
    for (let i = 0; i < 3; i++) {
      expect(n(key)).toBeNull();
      expect(u(key)).toBeUndefined();
    }
    expect(cn.runs.get(key)).toBe(1);
    expect(cu.runs.get(key)).toBe(1);
  });
});

describe('memoByString', () => {
  it('computes once per key while the keys fit', () => {
    const c = counted((s: string) => s.toUpperCase());
    const memo = memoByString(8, c.f);
    for (let round = 0; round < 5; round++) for (const k of ['a', 'b', 'c']) expect(memo(k)).toBe(k.toUpperCase());
    expect([...c.runs.values()]).toEqual([1, 1, 1]);
  });

  it('holds at most `bound` keys: a key is computed again once `bound` other keys came after it, kept through `bound / 2`', () => {
    for (const bound of [2, 8, 64, 4096]) {
      // Whatever the maps held before: `filled` earlier keys shift where the generations turn.
      for (const filled of [0, 1, bound / 2 - 1, bound / 2, bound - 1, bound, 3 * bound]) {
        const after = (others: number): number => {
          const c = counted((s: string) => s);
          const memo = memoByString(bound, c.f);
          for (let i = 0; i < filled; i++) memo(`filler${i}`);
          memo('k');
          for (let i = 0; i < others; i++) memo(`other${i}`);
          memo('k');
          return c.runs.get('k')!;
        };
        expect(after(bound / 2), `bound ${bound}, ${filled} before`).toBe(1);
        expect(after(bound), `bound ${bound}, ${filled} before`).toBe(2);
      }
    }
  });

  it('cycling through bound / 2 + 1 keys computes each once', () => {
    for (const bound of [2, 8, 64, 4096]) {
      const c = counted((s: string) => s);
      const memo = memoByString(bound, c.f);
      const keys = Array.from({ length: bound / 2 + 1 }, (_, i) => `k${i}`);
      for (let round = 0; round < 4; round++) for (const k of keys) memo(k);
      expect(Math.max(...c.runs.values()), `bound ${bound}`).toBe(1);
    }
  });

  it('a stream of distinct keys evicts old ones but never a key in use', () => {
    const c = counted((s: string) => `"${s}"`);
    const memo = memoByString(16, c.f);
    for (let i = 0; i < 10_000; i++) {
      expect(memo('hot')).toBe('"hot"');
      expect(memo(`cold${i}`)).toBe(`"cold${i}"`);
    }
    expect(c.runs.get('hot')).toBe(1);
    memo('cold0');
    expect(c.runs.get('cold0')).toBe(2);
  });

  it('a bound below 2 counts as 2', () => {
    const c = counted((s: string) => s);
    const memo = memoByString(0, c.f);
    for (let round = 0; round < 3; round++) for (const k of ['x', 'y']) memo(k);
    expect([...c.runs.values()]).toEqual([1, 1]);
  });
});
