/**
 * RFC 8785 JSON Canonicalization Scheme (JCS). Object keys are sorted by UTF-16 code units (the
 * default JS string order), numbers use the ECMAScript shortest round-trip form (what
 * JSON.stringify prints), strings use JSON.stringify's escaping. Values that JSON cannot carry
 * (undefined inside arrays, NaN, Infinity, functions, bigint, symbols) are rejected rather than
 * silently coerced, because a hash over a coerced value would commit to something else.
 */
import { NanoVmError } from './errors.js';
import { memoByString } from './memo.js';

/** A value that JSON cannot carry; `path` (also `location.path`) points at it. */
export class CanonicalJsonError extends NanoVmError {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super('E_NOT_JSON', `${message} at ${path || '/'}`, { location: { path } });
  }
}

export function canonicalJson(value: unknown): string {
  // Fast path: when every object's own member order already is RFC 8785 order and every value is
  // plain JSON, the native JSON.stringify writes exactly the canonical text (same number and
  // string forms) in one allocation. Object.keys order is the order JSON.stringify writes, so
  // checking it also catches integer-like names, which JavaScript always lists first.
  return isCanonicalOrdered(value, 0) ? JSON.stringify(value) : encodeLocated(value);
}

/**
 * The canonical text of `value` and the value with every object's members in RFC 8785 order (so
 * that later encodings of it take the fast path): `value` itself when it already is in order,
 * else a copy parsed from the text. One walk decides both.
 */
export function canonicalForm<T>(value: T): { text: string; value: T } {
  if (isCanonicalOrdered(value, 0)) return { text: JSON.stringify(value), value };
  const text = encodeLocated(value);
  return { text, value: JSON.parse(text) as T };
}

/** The slow path: the member-by-member encoder, whose errors name where the value stops being JSON. */
function encodeLocated(value: unknown): string {
  try {
    return encode(value);
  } catch (e) {
    if (e instanceof CanonicalJsonError)
      throw new CanonicalJsonError(e.message.replace(/ at \/$/, ''), locate(value) ?? '');
    throw e;
  }
}

const MAX_FAST_DEPTH = 64;

/** True when JSON.stringify(v) is the RFC 8785 form of v (see canonicalJson). */
function isCanonicalOrdered(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v);
    case 'object': {
      if (v === null) return true;
      if (depth > MAX_FAST_DEPTH) return false;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) if (!isCanonicalOrdered(v[i], depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return false;
      const obj = v as Record<string, unknown>;
      let prev: string | undefined;
      for (const k in obj) {
        if (prev !== undefined && !(prev < k)) return false;
        const x = obj[k];
        // An undefined member is skipped by both encoders; anything else must qualify itself.
        if (x !== undefined && !isCanonicalOrdered(x, depth + 1)) return false;
        prev = k;
      }
      return true;
    }
    case 'bigint':
    case 'function':
    case 'symbol':
    case 'undefined':
      return false;
  }
}

// Strings that need no escaping are quoted directly; JSON.stringify handles the rest (control
// characters, quotes, backslashes and surrogates, lone ones included, exactly as RFC 8785 says).
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;
/** The RFC 8785 text of a string. */
export const quote = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

// Member names repeat (every event has seq, ts, type, ...): keep their quoted form.
const quoteKey = memoByString(4096, (k) => quote(k) + ':');

/**
 * Sort member names in place by UTF-16 code units. Objects here are small (events, outputs), and
 * insertion sort on them allocates nothing, where Array.prototype.sort copies into a workspace:
 * that copy was a sixth of all allocation on the run path. Large objects use the built-in sort.
 */
export function sortKeys(keys: string[]): void {
  const n = keys.length;
  if (n > 24) {
    keys.sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}

// The hot path carries no location: building a JSON pointer per member would cost more than the
// encoding itself. On failure `locate` walks the value again to name the offending member.
function encode(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return quote(v);
    case 'number':
      if (!Number.isFinite(v)) throw new CanonicalJsonError(`number ${v} is not valid JSON`, '');
      // String(n) is the ECMAScript shortest round-trip form; only -0 differs from JSON.
      return v === 0 ? '0' : String(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) {
          if (i) out += ',';
          out += encode(v[i]);
        }
        return out + ']';
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null)
        throw new CanonicalJsonError(`${proto?.constructor?.name ?? 'exotic'} object is not plain JSON`, '');
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj);
      if (keys.length > 1) sortKeys(keys);
      let out = '{';
      let first = true;
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        const x = obj[k];
        if (x === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += quoteKey(k) + encode(x);
      }
      return out + '}';
    }
    case 'bigint':
    case 'function':
    case 'symbol':
    case 'undefined':
      throw new CanonicalJsonError(`${typeof v} is not valid JSON`, '');
  }
}

const escapePointer = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');

/** JSON pointer of the first member that cannot be encoded (only called on failure). */
function locate(v: unknown, path = ''): string | null {
  try {
    encode(v);
    return null;
  } catch {
    if (
      v !== null &&
      typeof v === 'object' &&
      (Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)
    ) {
      for (const [k, x] of Object.entries(v)) {
        if (x === undefined && !Array.isArray(v)) continue;
        const inner = locate(x, `${path}/${escapePointer(k)}`);
        if (inner !== null) return inner;
      }
    }
    return path;
  }
}

/** True when `v` survives canonicalization (a plain JSON value). */
export function isJsonValue(v: unknown): boolean {
  try {
    canonicalJson(v);
    return true;
  } catch {
    return false;
  }
}
