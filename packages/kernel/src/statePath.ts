import { memoByString } from './memo.js';

// Paths come from programs: a few distinct ones, read on every step. Split each once.
const MAX_CACHED_PATHS = 4096;

/**
 * State paths: dot-separated names into the run state, e.g. `input.customer.country` or
 * `steps.classify.output`. A segment of digits indexes an array.
 */
export const splitPath: (path: string) => readonly string[] = memoByString(
  MAX_CACHED_PATHS,
  (path): readonly string[] => path.split('.'),
);

const own = Object.prototype.hasOwnProperty;

/** The value at `path`, or undefined when any segment is missing. Never reads inherited keys. */
export function readPath(root: unknown, path: string): unknown {
  let cur: unknown = root;
  for (const seg of splitPath(path)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(seg)) return undefined;
      cur = cur[Number(seg)];
    } else {
      if (!own.call(cur, seg)) return undefined;
      cur = (cur as Record<string, unknown>)[seg];
    }
  }
  return cur;
}

/** True when `path` equals `prefix` or lies below it (`input.a.b` is under `input.a`). */
export function isUnder(path: string, prefix: string): boolean {
  return path === prefix || (path.length > prefix.length && path.startsWith(prefix) && path[prefix.length] === '.');
}
