/**
 * Declared JSON Schema -> guard type. Only the keywords that determine the shape of a value are
 * read; anything the mapping does not understand becomes `dyn`, which the checker accepts
 * everywhere (so an unusual schema weakens checking, never rejects a valid guard).
 */
import { BOOL, DYN, NULL, NUMBER, STRING, listOf, unionOf } from './guardType.js';
import type { GuardType } from './types.js';

/** Schemas nested deeper than this are treated as `dyn` (also stops cyclic schema objects). */
const MAX_SCHEMA_DEPTH = 32;

type SchemaObject = Record<string, unknown>;

function isSchemaObject(s: unknown): s is SchemaObject {
  return typeof s === 'object' && s !== null && !Array.isArray(s);
}

export function guardTypeFromJsonSchema(schema: unknown): GuardType {
  return fromSchema(schema, 0);
}

function fromSchema(s: unknown, depth: number): GuardType {
  if (depth > MAX_SCHEMA_DEPTH || !isSchemaObject(s)) return DYN;
  const t = shapeOf(s, depth);
  return s['nullable'] === true ? unionOf([t, NULL]) : t;
}

function shapeOf(s: SchemaObject, depth: number): GuardType {
  if (Object.hasOwn(s, 'const')) return typeOfValue(s['const'], depth);
  if (Array.isArray(s['enum'])) return unionOf(s['enum'].map((v) => typeOfValue(v, depth)));
  const type = s['type'];
  if (typeof type === 'string') return fromTypeName(type, s, depth);
  if (Array.isArray(type)) return unionOf(type.map((name) => fromTypeName(name, s, depth)));
  for (const key of ['anyOf', 'oneOf'] as const) {
    const alternatives = s[key];
    if (Array.isArray(alternatives)) return unionOf(alternatives.map((a) => fromSchema(a, depth + 1)));
  }
  const allOf = s['allOf'];
  if (Array.isArray(allOf) && allOf.length === 1) return fromSchema(allOf[0], depth + 1);
  if (isSchemaObject(s['properties']) || s['additionalProperties'] === false) return objectType(s, depth);
  if (s['items'] !== undefined || Array.isArray(s['prefixItems'])) return arrayType(s, depth);
  return DYN;
}

function fromTypeName(name: unknown, s: SchemaObject, depth: number): GuardType {
  switch (name) {
    case 'string':
      return STRING;
    case 'number':
    case 'integer':
      return NUMBER;
    case 'boolean':
      return BOOL;
    case 'null':
      return NULL;
    case 'object':
      return objectType(s, depth);
    case 'array':
      return arrayType(s, depth);
    default:
      return DYN;
  }
}

function objectType(s: SchemaObject, depth: number): GuardType {
  const properties = isSchemaObject(s['properties']) ? s['properties'] : {};
  // fromEntries defines own properties, so a field named `__proto__` stays a field.
  const fields = Object.fromEntries(
    Object.keys(properties).map((k) => [k, fromSchema(properties[k], depth + 1)] as const),
  );
  const open = s['additionalProperties'] !== false || isSchemaObject(s['patternProperties']);
  return { kind: 'map', fields, open };
}

function arrayType(s: SchemaObject, depth: number): GuardType {
  const items = s['items'];
  const prefix = Array.isArray(s['prefixItems']) ? s['prefixItems'] : Array.isArray(items) ? items : [];
  const rest = Array.isArray(items) ? s['additionalItems'] : items;
  const elems = prefix.map((p) => fromSchema(p, depth + 1));
  if (rest !== false) elems.push(fromSchema(rest, depth + 1));
  return listOf(elems.length === 0 ? DYN : unionOf(elems));
}

/** Type of a JSON value given by `const`/`enum`: objects are closed maps of their fields. */
function typeOfValue(v: unknown, depth: number): GuardType {
  if (depth > MAX_SCHEMA_DEPTH) return DYN;
  switch (typeof v) {
    case 'string':
      return STRING;
    case 'number':
      return NUMBER;
    case 'boolean':
      return BOOL;
    case 'object': {
      if (v === null) return NULL;
      if (Array.isArray(v)) return listOf(unionOf(v.map((e) => typeOfValue(e, depth + 1))));
      const o = v as Record<string, unknown>;
      const fields = Object.fromEntries(Object.keys(o).map((k) => [k, typeOfValue(o[k], depth + 1)] as const));
      return { kind: 'map', fields, open: false };
    }
    case 'bigint':
    case 'function':
    case 'symbol':
    case 'undefined':
      return DYN;
  }
}
