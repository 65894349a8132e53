/**
 * Sanity check of the JSON Schemas a program declares (input_schema, llm output.schema, tool
 * output_schema). Not a full meta-schema validation: it catches what would otherwise surface
 * mid-run as a confusing failure — wrong keyword types, patterns that do not compile, `$ref`s
 * that do not resolve (the kernel loads no remote schemas).
 */
import { dereference, type Schema } from '@cfworker/json-schema';
import { escapePointer } from './validateShape.js';

export interface SchemaProblem {
  /** JSON pointer inside the checked schema. */
  path: string;
  message: string;
}

const TYPES: ReadonlySet<string> = new Set(['array', 'boolean', 'integer', 'null', 'number', 'object', 'string']);
const SUBSCHEMA = [
  'additionalItems',
  'unevaluatedItems',
  'contains',
  'additionalProperties',
  'unevaluatedProperties',
  'propertyNames',
  'not',
  'if',
  'then',
  'else',
];
const SUBSCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
const SUBSCHEMA_MAPS = ['$defs', 'definitions', 'properties', 'patternProperties', 'dependentSchemas'];
const COUNTS = [
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'minContains',
  'maxContains',
];
const NUMBERS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];

export function schemaProblems(schema: unknown): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  let hasRef = false;
  const stack: Array<{ s: unknown; path: string }> = [{ s: schema, path: '' }];
  while (stack.length > 0) {
    const { s, path } = stack.pop()!;
    if (typeof s === 'boolean') continue;
    if (typeof s !== 'object' || s === null || Array.isArray(s)) {
      problems.push({
        path,
        message: `a schema must be an object or a boolean, got ${Array.isArray(s) ? 'a list' : JSON.stringify(s)}`,
      });
      continue;
    }
    const o = s as Record<string, unknown>;
    const bad = (key: string, what: string): void => {
      problems.push({ path: `${path}/${escapePointer(key)}`, message: `'${key}' must be ${what}` });
    };
    if ('type' in o) {
      const types = Array.isArray(o.type) ? o.type : [o.type];
      if (
        types.length === 0 ||
        !types.every((t) => typeof t === 'string' && TYPES.has(t)) ||
        new Set(types).size !== types.length
      ) {
        bad('type', `one of ${[...TYPES].join(', ')} (or a list of distinct ones)`);
      }
    }
    if ('required' in o && !(Array.isArray(o.required) && o.required.every((r) => typeof r === 'string')))
      bad('required', 'a list of property names');
    if ('enum' in o && !Array.isArray(o.enum)) bad('enum', 'a list');
    if ('$ref' in o) {
      hasRef = true;
      if (typeof o.$ref !== 'string') bad('$ref', 'a string');
    }
    if ('pattern' in o && !compiles(o.pattern)) bad('pattern', 'a valid regular expression');
    if ('multipleOf' in o && !(typeof o.multipleOf === 'number' && o.multipleOf > 0))
      bad('multipleOf', 'a number greater than 0');
    for (const key of COUNTS)
      if (key in o && !(Number.isInteger(o[key]) && (o[key] as number) >= 0)) bad(key, 'a non-negative integer');
    for (const key of NUMBERS) if (key in o && typeof o[key] !== 'number') bad(key, 'a number');
    for (const key of SUBSCHEMA) if (key in o) stack.push({ s: o[key], path: `${path}/${key}` });
    if ('items' in o) {
      if (Array.isArray(o.items)) o.items.forEach((item, i) => stack.push({ s: item, path: `${path}/items/${i}` }));
      else stack.push({ s: o.items, path: `${path}/items` });
    }
    for (const key of SUBSCHEMA_LISTS) {
      if (!(key in o)) continue;
      const list = o[key];
      if (!Array.isArray(list) || list.length === 0) bad(key, 'a non-empty list of schemas');
      else list.forEach((item, i) => stack.push({ s: item, path: `${path}/${key}/${i}` }));
    }
    for (const key of SUBSCHEMA_MAPS) {
      if (!(key in o)) continue;
      const map = o[key];
      if (typeof map !== 'object' || map === null || Array.isArray(map)) {
        bad(key, 'a mapping of names to schemas');
        continue;
      }
      for (const [name, sub] of Object.entries(map)) {
        if (key === 'patternProperties' && !compiles(name))
          problems.push({
            path: `${path}/${key}/${escapePointer(name)}`,
            message: `'${name}' is not a valid regular expression`,
          });
        stack.push({ s: sub, path: `${path}/${key}/${escapePointer(name)}` });
      }
    }
  }
  if (problems.length > 0 || !hasRef) return problems;
  return unresolvedRefs(schema);
}

/** `$ref`s that do not resolve inside the schema itself (checked with the validator's own resolver). */
function unresolvedRefs(schema: unknown): SchemaProblem[] {
  if (typeof schema !== 'object' || schema === null) return [];
  // dereference annotates the objects it walks; work on a copy so the program stays as written.
  const copy = JSON.parse(JSON.stringify(schema)) as Schema;
  let lookup: Record<string, Schema | boolean>;
  try {
    lookup = dereference(copy);
  } catch (e) {
    return [{ path: '', message: e instanceof Error ? e.message : String(e) }];
  }
  const problems: SchemaProblem[] = [];
  for (const s of new Set(Object.values(lookup))) {
    if (typeof s !== 'object' || typeof s.$ref !== 'string') continue;
    if (lookup[s.__absolute_ref__ ?? s.$ref] !== undefined) continue;
    const uri = s.__absolute_uri__ ?? '';
    const hash = uri.indexOf('#');
    const path = hash >= 0 ? decodeURIComponent(uri.slice(hash + 1)) : '';
    problems.push({
      path: `${path}/$ref`,
      message: `$ref '${s.$ref}' does not resolve; only references inside this schema are supported`,
    });
  }
  return problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function compiles(pattern: unknown): boolean {
  if (typeof pattern !== 'string') return false;
  try {
    new RegExp(pattern, 'u');
    return true;
  } catch {
    return false;
  }
}
