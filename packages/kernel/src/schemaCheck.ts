/**
 * JSON Schema checks at the edges (run input, model answers, tool results) with an interpreting
 * validator: schemas from programs are data and never become code.
 */
import { Validator, type OutputUnit, type Schema } from '@cfworker/json-schema';
import { clipMessage } from './excerpt.js';
import { memoByObject } from './memo.js';
import type { JsonSchema } from './program.js';

const validatorFor = memoByObject((schema: object) => new Validator(schema as Schema, '2020-12', false));
/** Per schema: its quick acceptor, or null when it uses keywords the acceptor does not know. */
const quickAcceptor = memoByObject((schema: Exclude<JsonSchema, boolean>) => acceptor(schema));

export interface SchemaViolation {
  /** JSON pointer into the checked value. */
  at: string;
  message: string;
}

/**
 * Violations of `schema` by `value`; empty when valid. The messages are the validator's own: tool
 * results and model answers that fail are recorded in events with them, so they must not change.
 */
export function checkSchema(schema: JsonSchema | undefined, value: unknown): SchemaViolation[] {
  return violations(schema, value, false);
}

/**
 * Violations of the run input: as checkSchema, but each message names the path and says in words
 * what is wrong (`/code: "abc" does not match the pattern ^[A-Z]{2}$`, `unexpected property 'x'`).
 * A refused input is never recorded, so these messages are free to change.
 */
export function checkInputSchema(schema: JsonSchema | undefined, value: unknown): SchemaViolation[] {
  return violations(schema, value, true);
}

function violations(schema: JsonSchema | undefined, value: unknown, worded: boolean): SchemaViolation[] {
  if (schema === undefined || schema === true) return [];
  if (schema === false) return [{ at: '', message: 'no value is allowed here (schema is false)' }];
  const q = quickAcceptor(schema);
  if (q !== null && accepts(q, value)) return [];
  const res = validatorFor(schema).validate(value);
  if (res.valid) return [];
  // The validator reports wrapper errors ("properties", "allOf") before the leaf that failed;
  // the leaves are what a person can act on.
  const leaves = res.errors.filter(
    (e) =>
      !['properties', 'items', 'allOf', 'anyOf', 'oneOf', '$ref', 'additionalProperties'].includes(e.keyword) ||
      res.errors.length === 1,
  );
  const chosen = (leaves.length ? leaves : res.errors).slice(0, 5);
  return chosen.map((e) => {
    const at = e.instanceLocation.replace(/^#/, '');
    return { at, message: worded ? `${at || '/'}: ${inWords(e, schema, value)}` : e.error };
  });
}

/** What a validator error means, in words a person can act on. */
function inWords(e: OutputUnit, schema: object, root: unknown): string {
  const pointer = e.instanceLocation.replace(/^#/, '');
  const value = at(root, pointer);
  const keywordValue = at(schema, e.keywordLocation.replace(/^#/, ''), true);
  const quoted = (v: unknown): string => clipMessage(JSON.stringify(v) ?? String(v), 60);
  const named = /property "(.*)"/.exec(e.error)?.[1];
  switch (e.keyword) {
    case 'false': {
      const name = unescapePointer(pointer.slice(pointer.lastIndexOf('/') + 1));
      return pointer === ''
        ? 'no value is allowed here'
        : `unexpected property '${clipMessage(name, 60)}' (the schema allows no other properties here)`;
    }
    case 'required':
      return named !== undefined ? `missing required property '${clipMessage(named, 60)}'` : e.error;
    case 'pattern':
      return typeof keywordValue === 'string'
        ? `${quoted(value)} does not match the pattern ${clipMessage(keywordValue, 80)}`
        : `${quoted(value)} does not match the schema's pattern`;
    case 'type': {
      const expected = /Expected (.*)\.$/.exec(e.error)?.[1]?.replace(/"/g, '') ?? String(keywordValue);
      return `expected ${expected}, got ${jsonType(value)} ${quoted(value)}`;
    }
    case 'enum':
      return Array.isArray(keywordValue)
        ? `${quoted(value)} is not one of ${clipMessage(keywordValue.map((v) => JSON.stringify(v)).join(', '), 120)}`
        : e.error;
    case 'const':
      return `must be ${quoted(keywordValue)}, got ${quoted(value)}`;
    default:
      return e.error.replace(/\.$/, '');
  }
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function unescapePointer(token: string): string {
  let t = token;
  try {
    t = decodeURIComponent(token);
  } catch {
    // Not percent-encoded after all: take it as written.
  }
  return t.replace(/~1/g, '/').replace(/~0/g, '~');
}

/**
 * The value at a JSON pointer (as the validator writes them), or undefined. With `followRefs` (a
 * keyword location in a schema), a `$ref` step follows a local reference (`#/...`) from the root, up to 32 of them; any other
 * reference gives undefined.
 */
function at(root: unknown, pointer: string, followRefs = false, hops = 0): unknown {
  if (pointer === '') return root;
  let v: unknown = root;
  for (const token of pointer.slice(1).split('/')) {
    if (v === null || typeof v !== 'object') return undefined;
    const key = unescapePointer(token);
    const ref = (v as { $ref?: unknown }).$ref;
    if (followRefs && key === '$ref' && typeof ref === 'string') {
      if (!ref.startsWith('#') || hops >= 32) return undefined;
      v = at(root, ref.slice(1), true, hops + 1);
      continue;
    }
    if (!Object.prototype.hasOwnProperty.call(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

export function describeViolations(vs: SchemaViolation[]): string {
  return vs.map((v) => `${v.at || '/'}: ${v.message}`).join('; ');
}

/**
 * A quick acceptor for the plain schemas programs mostly declare (types, properties, required,
 * closed objects, numeric bounds, enums of scalars, item schemas). The full validator builds a
 * JSON pointer and an error list per member even when the value is valid, which made the run
 * input check a visible share of a short run. The acceptor only ever answers "valid" or "not
 * sure": anything else, every invalid value included, goes to the full validator, so violations
 * and their messages are exactly the validator's. Schemas are interpreted as data, never compiled
 * to code.
 */
interface Acceptor {
  /** Allowed types as TYPE bits; 0: any. */
  types: number;
  props: Map<string, Acceptor> | null;
  required: readonly string[];
  /** additionalProperties: undefined = allowed, false = none allowed, else their acceptor. */
  extra: Acceptor | false | undefined;
  min: number | undefined;
  max: number | undefined;
  xmin: number | undefined;
  xmax: number | undefined;
  /** enum / const values (scalars only). */
  oneOf: readonly unknown[] | null;
  items: Acceptor | null;
  minItems: number | undefined;
  maxItems: number | undefined;
}

const TYPE: Record<string, number> = {
  null: 1,
  boolean: 2,
  integer: 4,
  number: 8 | 4,
  string: 16,
  array: 32,
  object: 64,
};
/** Keywords that describe and never constrain. */
const ANNOTATIONS: ReadonlySet<string> = new Set([
  'title',
  'description',
  '$comment',
  'default',
  'examples',
  '$schema',
]);
const isScalar = (v: unknown): boolean =>
  v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
const num = (v: unknown): number | undefined | null =>
  v === undefined ? undefined : typeof v === 'number' && Number.isFinite(v) ? v : null;

function acceptor(schema: JsonSchema): Acceptor | null {
  if (schema === true) return acceptor({});
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return null;
  const a: Acceptor = {
    types: 0,
    props: null,
    required: [],
    extra: undefined,
    min: undefined,
    max: undefined,
    xmin: undefined,
    xmax: undefined,
    oneOf: null,
    items: null,
    minItems: undefined,
    maxItems: undefined,
  };
  for (const [k, v] of Object.entries(schema)) {
    switch (k) {
      case 'type': {
        for (const t of Array.isArray(v) ? v : [v]) {
          const bit = typeof t === 'string' ? TYPE[t] : undefined;
          if (bit === undefined || !Object.hasOwn(TYPE, t as string)) return null;
          a.types |= bit;
        }
        if (a.types === 0) return null;
        break;
      }
      case 'properties': {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
        a.props = new Map();
        for (const [name, sub] of Object.entries(v)) {
          const s = acceptor(sub as JsonSchema);
          if (s === null) return null;
          a.props.set(name, s);
        }
        break;
      }
      case 'required':
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) return null;
        a.required = v as string[];
        break;
      case 'additionalProperties': {
        if (v === false) a.extra = false;
        else {
          const s = acceptor(v as JsonSchema);
          if (s === null) return null;
          a.extra = s;
        }
        break;
      }
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
      case 'minItems':
      case 'maxItems': {
        const n = num(v);
        if (n === null) return null;
        const field = (
          {
            minimum: 'min',
            maximum: 'max',
            exclusiveMinimum: 'xmin',
            exclusiveMaximum: 'xmax',
            minItems: 'minItems',
            maxItems: 'maxItems',
          } as const
        )[k];
        a[field] = n;
        break;
      }
      case 'enum':
        if (!Array.isArray(v) || !v.every(isScalar)) return null;
        a.oneOf = v;
        break;
      case 'const':
        if (!isScalar(v) || a.oneOf !== null) return null;
        a.oneOf = [v];
        break;
      case 'items': {
        const s = Array.isArray(v) ? null : acceptor(v as JsonSchema);
        if (s === null) return null;
        a.items = s;
        break;
      }
      default:
        if (!ANNOTATIONS.has(k)) return null;
    }
  }
  if (a.oneOf !== null && Object.hasOwn(schema, 'enum') && Object.hasOwn(schema, 'const')) return null;
  return a;
}

/** True only when `v` certainly satisfies the schema `a` was built from. */
function accepts(a: Acceptor, v: unknown): boolean {
  let bit: number;
  switch (typeof v) {
    case 'string':
      bit = 16;
      break;
    case 'boolean':
      bit = 2;
      break;
    case 'number':
      if (!Number.isFinite(v)) return false;
      bit = Number.isInteger(v) ? 4 : 8;
      break;
    case 'object':
      bit = v === null ? 1 : Array.isArray(v) ? 32 : 64;
      break;
    case 'bigint':
    case 'function':
    case 'symbol':
    case 'undefined':
      return false;
  }
  if (a.types !== 0 && (a.types & bit) === 0) return false;
  if (a.oneOf !== null && !a.oneOf.includes(v)) return false;
  if (bit === 4 || bit === 8) {
    const n = v as number;
    if (
      (a.min !== undefined && n < a.min) ||
      (a.max !== undefined && n > a.max) ||
      (a.xmin !== undefined && n <= a.xmin) ||
      (a.xmax !== undefined && n >= a.xmax)
    )
      return false;
  } else if (bit === 64) {
    const o = v as Record<string, unknown>;
    if (Object.getPrototypeOf(o) !== Object.prototype && Object.getPrototypeOf(o) !== null) return false;
    for (const r of a.required) if (!Object.hasOwn(o, r)) return false;
    for (const k in o) {
      if (!Object.hasOwn(o, k)) return false;
      const sub = a.props?.get(k) ?? a.extra;
      if (sub === false) return false;
      if (o[k] === undefined) return false;
      if (sub !== undefined && !accepts(sub, o[k])) return false;
    }
  } else if (bit === 32) {
    const arr = v as unknown[];
    if ((a.minItems !== undefined && arr.length < a.minItems) || (a.maxItems !== undefined && arr.length > a.maxItems))
      return false;
    for (let i = 0; i < arr.length; i++) {
      if (arr[i] === undefined) return false;
      if (a.items !== null && !accepts(a.items, arr[i])) return false;
    }
  }
  return true;
}
