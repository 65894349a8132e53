/**
 * RFC 8785 JSON Canonicalization Scheme (JCS). Object keys are sorted by UTF-16 code units (the
 * default JS string order), numbers use the ECMAScript shortest round-trip form (what
 * JSON.stringify prints), strings use JSON.stringify's escaping. Values that JSON cannot carry
 * (undefined inside arrays, NaN, Infinity, functions, bigint, symbols) are rejected rather than
 * silently coerced, because a hash over a coerced value would commit to something else.
 */
export class CanonicalJsonError extends Error {
  readonly code = 'E_NOT_JSON';
  constructor(message: string, readonly path: string) {
    super(`${message} at ${path || '/'}`);
    this.name = 'CanonicalJsonError';
  }
}

export function canonicalJson(value: unknown): string {
  return encode(value, '');
}

function encode(v: unknown, path: string): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new CanonicalJsonError(`number ${v} is not valid JSON`, path);
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) {
          if (i) out += ',';
          out += encode(v[i], `${path}/${i}`);
        }
        return out + ']';
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new CanonicalJsonError(`${proto?.constructor?.name ?? 'exotic'} object is not plain JSON`, path);
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const x = obj[k];
        if (x === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += JSON.stringify(k) + ':' + encode(x, `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`);
      }
      return out + '}';
    }
    default:
      throw new CanonicalJsonError(`${typeof v} is not valid JSON`, path);
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
