/**
 * JSON Schema checks at the edges (run input, model answers, tool results) with an interpreting
 * validator: schemas from programs are data and never become code.
 */
import { Validator, type Schema } from '@cfworker/json-schema';
import type { JsonSchema } from './program.js';

const cache = new WeakMap<object, Validator>();

export interface SchemaViolation {
  /** JSON pointer into the checked value. */
  at: string;
  message: string;
}

function validatorFor(schema: object): Validator {
  let v = cache.get(schema);
  if (!v) {
    v = new Validator(schema as Schema, '2020-12', false);
    cache.set(schema, v);
  }
  return v;
}

/** Violations of `schema` by `value`; empty when valid. */
export function checkSchema(schema: JsonSchema | undefined, value: unknown): SchemaViolation[] {
  if (schema === undefined || schema === true) return [];
  if (schema === false) return [{ at: '', message: 'no value is allowed here (schema is false)' }];
  const res = validatorFor(schema).validate(value);
  if (res.valid) return [];
  // The validator reports wrapper errors ("properties", "allOf") before the leaf that failed;
  // the leaves are what a person can act on.
  const leaves = res.errors.filter((e) => !['properties', 'items', 'allOf', 'anyOf', 'oneOf', '$ref', 'additionalProperties'].includes(e.keyword) || res.errors.length === 1);
  const chosen = (leaves.length ? leaves : res.errors).slice(0, 5);
  return chosen.map((e) => ({ at: e.instanceLocation.replace(/^#/, ''), message: e.error }));
}

export function describeViolations(vs: SchemaViolation[]): string {
  return vs.map((v) => `${v.at || '/'}: ${v.message}`).join('; ');
}
