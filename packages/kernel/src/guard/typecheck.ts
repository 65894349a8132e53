/**
 * Bottom-up type inference over a GuardNode tree. Rejects (E_GUARD_TYPE) what can never succeed
 * for any value of the declared types; `dyn` is compatible with everything and a union is accepted
 * when some member works, so the checker never rejects a guard that could evaluate without error.
 */
import { canonicalText } from './canonical.js';
import { GuardFailure, guardError } from './errorCodes.js';
import type { GuardNode } from './guardNode.js';
import {
  BOOL,
  DYN,
  NULL,
  NUMBER,
  STRING,
  admits,
  comparable,
  formatGuardType,
  listOf,
  membersOf,
  orderable,
  unionOf,
} from './guardType.js';
import type { GuardType, GuardTypeEnv } from './types.js';

/** Infers the type of `node`; throws GuardFailure(E_GUARD_TYPE) on the first ill-typed node. */
export function inferGuardType(node: GuardNode, env: GuardTypeEnv | undefined): GuardType {
  return infer(node, env, new Map());
}

function typeError(message: string, column: number): never {
  throw new GuardFailure(guardError('E_GUARD_TYPE', message, column));
}

function requireBool(operand: GuardNode, t: GuardType, what: string): void {
  if (!admits(t, 'bool'))
    typeError(`${what} needs a bool, but ${canonicalText(operand)} is ${formatGuardType(t)}`, operand.start);
}

function requireString(operand: GuardNode, t: GuardType, what: string): void {
  if (!admits(t, 'string'))
    typeError(`${what} needs a string, but ${canonicalText(operand)} is ${formatGuardType(t)}`, operand.start);
}

function infer(node: GuardNode, env: GuardTypeEnv | undefined, bound: ReadonlyMap<string, GuardType>): GuardType {
  const sub = (n: GuardNode, b: ReadonlyMap<string, GuardType> = bound): GuardType => infer(n, env, b);
  switch (node.kind) {
    case 'literal':
      return literalType(node.value);
    case 'list':
      return listOf(node.items.length === 0 ? DYN : unionOf(node.items.map((i) => sub(i))));
    case 'ident': {
      const t = bound.get(node.name);
      if (t) return t;
      return env && Object.hasOwn(env, node.name) ? env[node.name]! : DYN;
    }
    case 'field':
      return fieldType(node.object, sub(node.object), node.name, node.at);
    case 'index': {
      const objectType = sub(node.object);
      const keyType = sub(node.key);
      return indexType(node, objectType, keyType);
    }
    case 'compare': {
      const l = sub(node.left);
      const r = sub(node.right);
      const ok = node.op === '==' || node.op === '!=' ? comparable(l, r) : orderable(l, r);
      if (!ok) typeError(`cannot compare ${formatGuardType(l)} with ${formatGuardType(r)} using '${node.op}'`, node.at);
      return BOOL;
    }
    case 'in': {
      const l = sub(node.left);
      const r = sub(node.right);
      const ok = membersOf(r).some(
        (m) =>
          m.kind === 'dyn' || (m.kind === 'list' && comparable(l, m.elem)) || (m.kind === 'map' && admits(l, 'string')),
      );
      if (!ok) typeError(`cannot look for ${formatGuardType(l)} in ${formatGuardType(r)} with 'in'`, node.at);
      return BOOL;
    }
    case 'and':
    case 'or': {
      const op = node.kind === 'and' ? "'&&'" : "'||'";
      requireBool(node.left, sub(node.left), op);
      requireBool(node.right, sub(node.right), op);
      return BOOL;
    }
    case 'not':
      requireBool(node.operand, sub(node.operand), "'!'");
      return BOOL;
    case 'cond':
      requireBool(node.test, sub(node.test), 'the condition of `? :`');
      return unionOf([sub(node.then), sub(node.otherwise)]);
    case 'size': {
      const t = sub(node.operand);
      if (!admits(t, 'string', 'list', 'map')) {
        typeError(
          `size() needs a string, list or map, but ${canonicalText(node.operand)} is ${formatGuardType(t)}`,
          node.operand.start,
        );
      }
      return NUMBER;
    }
    case 'has':
      fieldType(node.object, sub(node.object), node.name, node.at);
      return BOOL;
    case 'stringTest': {
      const what = `${node.test}()`;
      requireString(node.target, sub(node.target), what);
      requireString(node.arg, sub(node.arg), what);
      return BOOL;
    }
    case 'quantifier': {
      const listType = sub(node.list);
      const elems = membersOf(listType).flatMap((m) => (m.kind === 'dyn' ? [DYN] : m.kind === 'list' ? [m.elem] : []));
      if (elems.length === 0) {
        typeError(
          `${node.quantifier}() needs a list, but ${canonicalText(node.list)} is ${formatGuardType(listType)}`,
          node.at,
        );
      }
      const inner = new Map(bound).set(node.variable, unionOf(elems));
      requireBool(node.predicate, sub(node.predicate, inner), `the predicate of ${node.quantifier}()`);
      return BOOL;
    }
  }
}

function literalType(value: null | boolean | number | string): GuardType {
  if (value === null) return NULL;
  if (typeof value === 'boolean') return BOOL;
  return typeof value === 'number' ? NUMBER : STRING;
}

/** Type of `object.name`; fails when no member of the object's type has that field. */
function fieldType(object: GuardNode, t: GuardType, name: string, column: number): GuardType {
  const results: GuardType[] = [];
  for (const m of membersOf(t)) {
    if (m.kind === 'dyn') results.push(DYN);
    else if (m.kind === 'map' && Object.hasOwn(m.fields, name)) results.push(m.fields[name]!);
    else if (m.kind === 'map' && m.open) results.push(DYN);
  }
  if (results.length > 0) return unionOf(results);
  const maps = membersOf(t).filter((m) => m.kind === 'map');
  if (maps.length > 0) typeError(`${canonicalText(object)} has no field '${name}'`, column);
  return typeError(
    `cannot select field '${name}': ${canonicalText(object)} is ${formatGuardType(t)}, not a map`,
    column,
  );
}

function indexType(node: GuardNode & { kind: 'index' }, objectType: GuardType, keyType: GuardType): GuardType {
  const key = node.key;
  if (key.kind === 'literal' && typeof key.value === 'string' && !admits(objectType, 'list')) {
    return fieldType(node.object, objectType, key.value, key.start);
  }
  const results: GuardType[] = [];
  for (const m of membersOf(objectType)) {
    if (m.kind === 'dyn') results.push(DYN);
    else if (m.kind === 'list' && admits(keyType, 'number')) results.push(m.elem);
    else if (m.kind === 'map' && admits(keyType, 'string'))
      results.push(...Object.values(m.fields), ...(m.open ? [DYN] : []));
  }
  if (results.length > 0) return unionOf(results);
  return typeError(
    `cannot index ${canonicalText(node.object)} (${formatGuardType(objectType)}) with ${formatGuardType(keyType)}`,
    node.at,
  );
}
