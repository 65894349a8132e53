/**
 * Runtime values of the guard language: JSON values. Lists are arrays, maps are plain objects
 * (own properties whose value is not `undefined`), numbers are doubles. Anything else that reaches
 * the evaluator through the variables is "unsupported" and turns into E_GUARD_RUNTIME when used.
 */

export type ValueKind = 'null' | 'bool' | 'number' | 'string' | 'list' | 'map' | 'unsupported';

export type GuardMap = Record<string, unknown>;

export function kindOf(v: unknown): ValueKind {
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) return 'list';
      const proto: unknown = Object.getPrototypeOf(v);
      return proto === Object.prototype || proto === null ? 'map' : 'unsupported';
    }
    case 'bigint':
    case 'function':
    case 'symbol':
    case 'undefined':
      return 'unsupported';
  }
}

/** Name of a value's type for messages. */
export function describeKind(v: unknown): string {
  const kind = kindOf(v);
  if (kind !== 'unsupported') return kind;
  return v === undefined ? 'undefined' : typeof v === 'object' ? `an unsupported object` : `an unsupported ${typeof v}`;
}

/** Present key's value, or undefined. Own properties only: `constructor` is not a key of `{}`. */
export function mapGet(m: GuardMap, key: string): unknown {
  return Object.hasOwn(m, key) ? m[key] : undefined;
}

export function mapKeys(m: GuardMap): string[] {
  return Object.keys(m).filter((k) => m[k] !== undefined);
}

/**
 * CEL equality on JSON values (heterogeneous: values of different types are unequal, not an
 * error). `step` is charged once per element or entry compared. Returns undefined when an
 * unsupported value is met.
 */
export function valuesEqual(a: unknown, b: unknown, step: () => void): boolean | undefined {
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka === 'unsupported' || kb === 'unsupported') return undefined;
  if (ka !== kb) return false;
  if (ka === 'list') {
    const la = a as unknown[];
    const lb = b as unknown[];
    if (la.length !== lb.length) return false;
    for (let i = 0; i < la.length; i++) {
      step();
      const e = valuesEqual(la[i], lb[i], step);
      if (e !== true) return e;
    }
    return true;
  }
  if (ka === 'map') {
    const ma = a as GuardMap;
    const mb = b as GuardMap;
    const keys = mapKeys(ma);
    if (keys.length !== mapKeys(mb).length) return false;
    for (const k of keys) {
      step();
      const vb = mapGet(mb, k);
      if (vb === undefined) return false;
      const e = valuesEqual(ma[k], vb, step);
      if (e !== true) return e;
    }
    return true;
  }
  return a === b;
}

/**
 * Ordering for `<` and friends: numbers, strings (by Unicode code point, as CEL specifies) and
 * bools (false < true). Undefined when the operands cannot be ordered; NaN compares as unordered
 * but is a number, so `<` is simply false for it.
 */
export function compareValues(a: unknown, b: unknown): number | undefined {
  const ka = kindOf(a);
  if (ka !== kindOf(b)) return undefined;
  switch (ka) {
    case 'number':
      return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : a === b ? 0 : Number.NaN;
    case 'bool':
      return Number(a) - Number(b);
    case 'string':
      return compareCodePoints(a as string, b as string);
    case 'null':
    case 'list':
    case 'map':
    case 'unsupported':
      return undefined;
  }
}

const isSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdfff;

/** JS `<` compares UTF-16 units, which misorders U+E000..U+FFFF against astral characters. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    // A surrogate starts a code point >= U+10000, above every non-surrogate unit.
    if (isSurrogate(ca) !== isSurrogate(cb)) return isSurrogate(ca) ? 1 : -1;
    return ca < cb ? -1 : 1;
  }
  return a.length - b.length;
}

/** Number of Unicode code points (CEL's size() of a string). */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}
