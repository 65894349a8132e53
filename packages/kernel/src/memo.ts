/**
 * Memoization: the only state the kernel keeps across runs. A memo remembers the result of a pure
 * function of an immutable key, so sharing it between runs, programs and callers is unobservable
 * except in time. Everything else a run needs lives in that run's own values.
 *
 * The key must not change after its first use (a schema object, a guard tree, a path string); the
 * function must be pure. Results are shared, so callers must not mutate them either.
 */

/**
 * `compute` memoized per key object, held weakly: an entry lives as long as its key does, so no
 * bound is needed. For things that come from a program (schemas, guard trees, schema branches).
 */
export function memoByObject<K extends object, V>(compute: (key: K) => V): (key: K) => V {
  const values = new WeakMap<K, V>();
  return (key) => {
    let v = values.get(key);
    if (v === undefined && !values.has(key)) {
      v = compute(key);
      values.set(key, v);
    }
    return v as V;
  };
}

/**
 * `compute` memoized per string, holding at most `bound` keys, so a stream of distinct keys
 * (member names of model outputs, say) cannot grow the heap. Two generations approximate LRU at
 * no cost on a hit: a new key goes into the young map; when that holds `bound / 2` keys it becomes
 * the old map and the previous old map is dropped; a key found in the old map moves to the young
 * one. So a key asked for again after at most `bound / 2` other keys is still there, and a
 * key is gone once `bound` other keys were added after it. A hit in the young map is one lookup.
 * `bound` below 2 counts as 2. `V` excludes `undefined`, which marks a miss.
 */
export function memoByString<V extends NonNullable<unknown> | null>(
  bound: number,
  compute: (key: string) => V,
): (key: string) => V {
  const generation = Math.max(1, Math.floor(bound / 2));
  // When the young map turns, it becomes the old one and a new young map starts (measured: as fast
  // per hit as two never-reassigned maps with a copy, and a third cheaper per miss).
  let young = new Map<string, V>();
  let old = new Map<string, V>();
  return (key) => {
    let v = young.get(key);
    if (v !== undefined) return v;
    v = old.get(key);
    if (v === undefined) v = compute(key);
    if (young.size >= generation) {
      old = young;
      young = new Map<string, V>();
    }
    young.set(key, v);
    return v;
  };
}
