/**
 * Operations on static guard types: constructors, unions, and the compatibility relations the
 * type checker uses. `dyn` is compatible with everything; a union is compatible when some member is.
 */
import type { GuardType } from './types.js';

export const DYN: GuardType = { kind: 'dyn' };
export const STRING: GuardType = { kind: 'string' };
export const NUMBER: GuardType = { kind: 'number' };
export const BOOL: GuardType = { kind: 'bool' };
export const NULL: GuardType = { kind: 'null' };

export function listOf(elem: GuardType): GuardType {
  return { kind: 'list', elem };
}

/** The members of a type: a union's alternatives (flattened), otherwise the type itself. */
export function membersOf(t: GuardType): GuardType[] {
  if (t.kind !== 'union') return [t];
  return t.of.flatMap(membersOf);
}

/** A stable structural key, used to deduplicate union members. */
function typeKey(t: GuardType): string {
  switch (t.kind) {
    case 'list':
      return `list<${typeKey(t.elem)}>`;
    case 'map': {
      const fields = Object.keys(t.fields)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${typeKey(t.fields[k]!)}`);
      return `map{${fields.join(',')}${t.open ? ',...' : ''}}`;
    }
    case 'union':
      return membersOf(t).map(typeKey).join('|');
    case 'string':
    case 'number':
    case 'bool':
    case 'null':
    case 'dyn':
      return t.kind;
  }
}

/** Union of types: flattened and deduplicated; `dyn` absorbs everything; no members means `dyn`. */
export function unionOf(types: readonly GuardType[]): GuardType {
  const seen = new Map<string, GuardType>();
  for (const m of types.flatMap(membersOf)) {
    if (m.kind === 'dyn') return DYN;
    const key = typeKey(m);
    if (!seen.has(key)) seen.set(key, m);
  }
  const of = [...seen.values()];
  if (of.length === 0) return DYN;
  if (of.length === 1) return of[0]!;
  return { kind: 'union', of };
}

/** Short human-readable form for error messages: `string`, `list<number>`, `map`, `string | null`. */
export function formatGuardType(t: GuardType): string {
  switch (t.kind) {
    case 'list':
      return `list<${formatGuardType(t.elem)}>`;
    case 'union':
      return membersOf(t).map(formatGuardType).join(' | ');
    case 'map':
    case 'string':
    case 'number':
    case 'bool':
    case 'null':
    case 'dyn':
      return t.kind;
  }
}

/** Whether some member of `t` is `dyn` or one of `kinds`. */
export function admits(t: GuardType, ...kinds: GuardType['kind'][]): boolean {
  return membersOf(t).some((m) => m.kind === 'dyn' || kinds.includes(m.kind));
}

/** Whether `==` between values of these types can ever be true (CEL rejects comparisons that cannot). */
export function comparable(a: GuardType, b: GuardType): boolean {
  const am = membersOf(a);
  const bm = membersOf(b);
  return am.some((x) => bm.some((y) => comparableMembers(x, y)));
}

function comparableMembers(x: GuardType, y: GuardType): boolean {
  if (x.kind === 'dyn' || y.kind === 'dyn') return true;
  if (x.kind === 'list' && y.kind === 'list') return comparable(x.elem, y.elem);
  return x.kind === y.kind;
}

const ORDERED: readonly GuardType['kind'][] = ['number', 'string', 'bool'];

/** Whether `<`, `<=`, `>`, `>=` between values of these types can succeed. */
export function orderable(a: GuardType, b: GuardType): boolean {
  const am = membersOf(a).filter((m) => m.kind === 'dyn' || ORDERED.includes(m.kind));
  const bm = membersOf(b).filter((m) => m.kind === 'dyn' || ORDERED.includes(m.kind));
  return am.some((x) => bm.some((y) => x.kind === 'dyn' || y.kind === 'dyn' || x.kind === y.kind));
}
