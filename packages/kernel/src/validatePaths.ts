/**
 * Declared-field checks of the validator: projections, tool argument paths, prompt placeholders
 * and sensitive paths must name fields the program declares.
 *
 * A path is declared when each segment is a property the schema at that level declares. A level
 * whose schema says nothing about its shape (`true`, `{}`, an unresolvable `$ref`, a tool without
 * output_schema) or explicitly allows more properties (`additionalProperties: true` or a schema)
 * accepts any name below it. Combinators count a property declared by any branch.
 */
import type { Issue } from './errors.js';
import { outputSchemaOf } from './program.js';
import type { JsonSchema, LlmStep, ParallelChild, Program, Step, ToolStep } from './program.js';
import { placeholders } from './projection.js';
import { isUnder, splitPath } from './statePath.js';
import type { StepIndex } from './validateGraph.js';
import { closest, escapePointer } from './validateShape.js';

type SchemaObject = Record<string, unknown>;
export type PathVerdict = { ok: true } | { ok: false; reason: string };

/** Schemas visited per path level before giving up and treating the level as open. */
const MAX_BRANCHES = 64;

const SHAPE_KEYWORDS = [
  'type',
  'properties',
  'patternProperties',
  'additionalProperties',
  'items',
  'prefixItems',
  'enum',
  'const',
];

/** Whether `path` (e.g. `input.customer.email`, `steps.kyc.output.score`) names a declared field. */
export function checkStatePath(path: string, program: Program, index: StepIndex): PathVerdict {
  const segs = splitPath(path);
  if (segs[0] === 'input') return checkSchemaPath(program.input_schema, segs.slice(1), 'input');
  if (segs[0] !== 'steps' || segs.length < 3 || segs[2] !== 'output') {
    return { ok: false, reason: `'${path}' is not a state path; paths start with input or steps.<id>.output` };
  }
  const id = segs[1]!;
  const at = index.byId.get(id);
  if (at === undefined) {
    const parent = index.parentOf.get(id);
    if (parent !== undefined)
      return {
        ok: false,
        reason: `'${id}' is a child of parallel step '${parent}'; read it as steps.${parent}.output.${id}`,
      };
    const guess = closest(id, [...index.byId.keys()]);
    return { ok: false, reason: `there is no step '${id}'${guess !== undefined ? ` (did you mean '${guess}'?)` : ''}` };
  }
  const step = program.steps[at]!;
  const schema = outputSchemaOf(step);
  if (schema === undefined)
    return {
      ok: false,
      reason: `step '${id}' is ${step.kind === 'end' ? 'an' : 'a'} ${step.kind} step and has no output`,
    };
  return checkSchemaPath(schema, segs.slice(3), `steps.${id}.output`);
}

/** Walks `segs` down `root`; see the module comment for what counts as declared. */
export function checkSchemaPath(root: JsonSchema, segs: readonly string[], prefix: string): PathVerdict {
  let level: unknown[] = [root];
  let where = prefix;
  for (const seg of segs) {
    const next: unknown[] = [];
    const names: string[] = [];
    const kinds = new Set<string>();
    for (const s of flatten(level, root)) {
      if (s === 'open') return { ok: true };
      const child = childSchema(s, seg, names, kinds);
      if (child === 'open') return { ok: true };
      if (child !== undefined) next.push(child);
    }
    if (next.length === 0) {
      if (names.length === 0 && kinds.size > 0)
        return { ok: false, reason: `${where} is ${[...kinds].join(' or ')}; it has no field '${seg}'` };
      const guess = closest(seg, names);
      const hint =
        guess !== undefined
          ? ` (did you mean '${guess}'?)`
          : names.length > 0
            ? ` (declared: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''})`
            : '';
      return { ok: false, reason: `'${seg}' is not declared in the schema of ${where}${hint}` };
    }
    level = next;
    where = `${where}.${seg}`;
  }
  return { ok: true };
}

/**
 * Concrete schemas of one level: `$ref`s resolved (local ones), combinator branches expanded.
 * Yields 'open' for a schema that constrains nothing we can read.
 */
function flatten(level: readonly unknown[], root: JsonSchema): Array<SchemaObject | false | 'open'> {
  const out: Array<SchemaObject | false | 'open'> = [];
  const stack = [...level];
  let visited = 0;
  while (stack.length > 0) {
    if (++visited > MAX_BRANCHES) return ['open'];
    const s = stack.pop();
    if (s === false) {
      out.push(false);
      continue;
    }
    if (typeof s !== 'object' || s === null || Array.isArray(s)) {
      out.push('open');
      continue;
    }
    const o = s as SchemaObject;
    let combined = false;
    if (typeof o.$ref === 'string') {
      const target = resolveLocalRef(root, o.$ref);
      if (target === undefined) return ['open'];
      stack.push(target);
      combined = true;
    }
    for (const key of ['allOf', 'anyOf', 'oneOf']) {
      const branches = o[key];
      if (Array.isArray(branches)) {
        stack.push(...branches);
        combined = true;
      }
    }
    if (SHAPE_KEYWORDS.some((k) => Object.hasOwn(o, k))) out.push(o);
    else if (!combined) out.push('open');
  }
  return out;
}

/**
 * The schema of field `seg` under `s`, 'open' when any name is accepted, undefined when `s`
 * declares no such field (then `names` and `kinds` collect what it does declare, for the message).
 */
function childSchema(s: SchemaObject | false, seg: string, names: string[], kinds: Set<string>): unknown {
  if (s === false) return undefined;
  const types = Array.isArray(s.type) ? (s.type as unknown[]) : s.type !== undefined ? [s.type] : [];
  const props = isObject(s.properties) ? s.properties : undefined;
  const isObjectLike =
    types.includes('object') ||
    props !== undefined ||
    s.additionalProperties !== undefined ||
    s.patternProperties !== undefined;
  const isArrayLike = types.includes('array') || s.items !== undefined || s.prefixItems !== undefined;
  if ('const' in s || Array.isArray(s.enum)) {
    const values = 'const' in s ? [s.const] : (s.enum as unknown[]);
    if (values.some((v) => typeof v === 'object' && v !== null)) return 'open';
    if (!isObjectLike && !isArrayLike && types.length === 0) {
      kinds.add('a fixed value');
      return undefined;
    }
  }
  if (isObjectLike) {
    if (props !== undefined && Object.hasOwn(props, seg)) return props[seg];
    if (isObject(s.patternProperties)) {
      for (const [pattern, schema] of Object.entries(s.patternProperties)) {
        if (safeTest(pattern, seg)) return schema;
      }
    }
    if (s.additionalProperties === true || (props === undefined && s.additionalProperties === undefined)) return 'open';
    if (isObject(s.additionalProperties)) return s.additionalProperties;
    if (props !== undefined) names.push(...Object.keys(props));
  }
  if (isArrayLike) {
    if (!/^\d+$/.test(seg)) {
      kinds.add('a list');
      return undefined;
    }
    const prefix = Array.isArray(s.prefixItems) ? s.prefixItems : Array.isArray(s.items) ? s.items : [];
    const n = Number(seg);
    if (n < prefix.length) return prefix[n];
    const rest = Array.isArray(s.items) ? s.additionalItems : s.items;
    return rest === undefined ? 'open' : rest === false ? undefined : rest;
  }
  if (!isObjectLike) {
    if (types.length === 0) return 'open';
    for (const t of types)
      kinds.add(t === 'integer' || t === 'number' ? 'a number' : t === 'null' ? 'null' : `a ${String(t)}`);
  }
  return undefined;
}

function resolveLocalRef(root: JsonSchema, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined;
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let cur: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    if (!isObject(cur) || !Object.hasOwn(cur, key)) return undefined;
    cur = cur[key];
  }
  return cur;
}

function safeTest(pattern: string, value: string): boolean {
  try {
    return new RegExp(pattern, 'u').test(value);
  } catch {
    return false;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An llm or tool step (top-level or parallel child) with the pointer it lives at. */
export interface EffectAt {
  step: LlmStep | ToolStep | ParallelChild;
  path: string;
}

/** Every llm/tool step, parallel children included, in document order. */
export function effectSteps(steps: readonly Step[]): EffectAt[] {
  const out: EffectAt[] = [];
  steps.forEach((step, i) => {
    if (step.kind === 'llm' || step.kind === 'tool') out.push({ step, path: `/steps/${i}` });
    else if (step.kind === 'parallel')
      step.children.forEach((child, j) => out.push({ step: child, path: `/steps/${i}/children/${j}` }));
  });
  return out;
}

/** E_PROJECTION_UNDECLARED, E_PROMPT_UNPROJECTED, E_SENSITIVE_UNDECLARED. */
export function checkPaths(program: Program, index: StepIndex, effects: readonly EffectAt[], out: Issue[]): void {
  // The same path (e.g. input.customer) is typically read by many steps.
  const verdicts = new Map<string, PathVerdict>();
  const verdictOf = (p: string): PathVerdict => {
    let verdict = verdicts.get(p);
    if (verdict === undefined) {
      verdict = checkStatePath(p, program, index);
      verdicts.set(p, verdict);
    }
    return verdict;
  };
  for (const { step, path } of effects) {
    if (step.kind === 'llm') {
      step.projection.forEach((p, k) => {
        const verdict = verdictOf(p);
        if (!verdict.ok)
          out.push({
            code: 'E_PROJECTION_UNDECLARED',
            severity: 'error',
            step: step.id,
            path: `${path}/projection/${k}`,
            message: `step '${step.id}': projection '${p}' names no declared field: ${verdict.reason}`,
          });
      });
      const reported = new Set<string>();
      for (const placeholder of placeholders(step.prompt)) {
        if (reported.has(placeholder) || step.projection.some((p) => isUnder(placeholder, p))) continue;
        reported.add(placeholder);
        out.push({
          code: 'E_PROMPT_UNPROJECTED',
          severity: 'error',
          step: step.id,
          path: `${path}/prompt`,
          message: `step '${step.id}': the prompt uses {{${placeholder}}}, which its projection does not cover; add '${placeholder}' (or a parent path) to projection`,
        });
      }
    } else if (step.args !== undefined) {
      for (const [name, arg] of Object.entries(step.args)) {
        if (typeof arg !== 'string') continue;
        const verdict = verdictOf(arg);
        if (!verdict.ok)
          out.push({
            code: 'E_PROJECTION_UNDECLARED',
            severity: 'error',
            step: step.id,
            path: `${path}/args/${escapePointer(name)}`,
            message: `step '${step.id}': argument '${name}' reads '${arg}', which names no declared field: ${verdict.reason}`,
          });
      }
    }
  }
  (program.sensitive ?? []).forEach((p, k) => {
    const segs = splitPath(p);
    const verdict: PathVerdict =
      segs[0] === 'input'
        ? checkSchemaPath(program.input_schema, segs.slice(1), 'input')
        : { ok: false, reason: 'sensitive paths name input fields (input.<field>...)' };
    if (!verdict.ok)
      out.push({
        code: 'E_SENSITIVE_UNDECLARED',
        severity: 'error',
        path: `/sensitive/${k}`,
        message: `sensitive path '${p}' is not declared in input_schema: ${verdict.reason}`,
      });
  });
  if (program.subject !== undefined) {
    const segs = splitPath(program.subject);
    const verdict: PathVerdict =
      segs[0] === 'input'
        ? checkSchemaPath(program.input_schema, segs.slice(1), 'input')
        : { ok: false, reason: 'the subject path names an input field (input.<field>...)' };
    if (!verdict.ok)
      out.push({
        code: 'E_SUBJECT_UNDECLARED',
        severity: 'error',
        path: '/subject',
        message: `subject path '${program.subject}' is not declared in input_schema: ${verdict.reason}`,
      });
  }
}
