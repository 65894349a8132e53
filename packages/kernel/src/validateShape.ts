/**
 * Structural check of a parsed program against PROGRAM_SCHEMA.
 *
 * Why not hand the whole document to a JSON Schema library: for a tagged union (`kind`, `action`)
 * a generic validator reports every failed branch, so one typo becomes dozens of errors. This
 * walker interprets the same schema document (the keywords it uses are listed in
 * SUPPORTED_KEYWORDS; a test keeps the two in step and checks it against @cfworker/json-schema),
 * picks the union branch by its discriminator and says one actionable thing per defect.
 */
import { NanoVmError, type Issue } from './errors.js';
import { memoByObject, memoByString } from './memo.js';
import { PROGRAM_SCHEMA } from './programSchema.js';

type SchemaObject = { readonly [k: string]: unknown };
type SchemaNode = SchemaObject | boolean;

/** Keywords the walker interprets. Annotations (`description`, `title`, `$schema`) are ignored. */
export const SUPPORTED_KEYWORDS: readonly string[] = [
  '$ref',
  '$defs',
  '$schema',
  'title',
  'description',
  'type',
  'const',
  'enum',
  'oneOf',
  'if',
  'then',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'items',
  'minItems',
  'uniqueItems',
  'properties',
  'required',
  'additionalProperties',
  'dependentRequired',
];

/**
 * Schema-enforced rules that the validator also checks on programs built in code: the loader
 * reports them under the validator's code, so a defect has one code whichever way it arrives.
 */
const SPECIFIC_CODES: ReadonlyArray<{ path: RegExp; keywords: readonly string[]; code: string }> = [
  {
    path: /^\/steps\/\d+(\/children\/\d+)?\/output\/enum(\/\d+)?$/,
    keywords: ['minItems', 'uniqueItems'],
    code: 'E_BAD_ENUM',
  },
  { path: /^\/budgets\/[^/]+$/, keywords: ['minimum', 'exclusiveMinimum'], code: 'E_BUDGET' },
  {
    path: /\/(max_visits|max_concurrency|timeout_ms|on_error\/max_attempts)$/,
    keywords: ['minimum'],
    code: 'E_BUDGET',
  },
  { path: /^\/steps\/\d+\/children$/, keywords: ['minItems'], code: 'E_PARALLEL_EMPTY' },
];

/** Structural issues of `value` as a program (E_SCHEMA unless a more specific code applies). */
export function checkProgramShape(value: unknown): Issue[] {
  const found: Found[] = [];
  check(value, PROGRAM_SCHEMA, '', found);
  return found.map((f) => {
    const issue: Issue = { code: f.code, severity: 'error', message: f.message, path: f.path };
    const step = stepIdAt(value, f.path);
    if (step !== undefined) issue.step = step;
    return issue;
  });
}

/** The same walker over another schema document without `$ref`s (policy.schema.json). */
export function checkShape(value: unknown, schema: SchemaNode): Array<{ path: string; message: string }> {
  const found: Found[] = [];
  check(value, schema, '', found);
  return found.map(({ path, message }) => ({ path, message }));
}

interface Found {
  code: string;
  path: string;
  message: string;
}

function report(out: Found[], keyword: string, path: string, message: string): void {
  const specific = SPECIFIC_CODES.find((s) => s.keywords.includes(keyword) && s.path.test(path));
  out.push({ code: specific?.code ?? 'E_SCHEMA', path, message });
}

function check(v: unknown, schemaIn: SchemaNode, ptr: string, out: Found[]): void {
  const s = resolve(schemaIn);
  if (s === true) return;
  if (s === false) {
    report(out, 'false', ptr, `${where(ptr)} is not allowed here`);
    return;
  }
  if (Array.isArray(s.oneOf)) {
    checkOneOf(v, s, ptr, out);
    return;
  }
  if (s.type !== undefined && !typeMatches(v, s.type)) {
    report(out, 'type', ptr, `${where(ptr)} must be ${typeNames(s.type)}, got ${describe(v)}`);
    return;
  }
  if ('const' in s && v !== s.const) {
    report(out, 'const', ptr, `${where(ptr)} must be ${show(s.const)}, got ${describe(v)}`);
    return;
  }
  if (Array.isArray(s.enum) && !s.enum.includes(v)) {
    report(
      out,
      'enum',
      ptr,
      `${where(ptr)} must be one of ${s.enum.join(', ')} (got ${describe(v)}${hint(v, s.enum)})`,
    );
    return;
  }
  if (typeof v === 'string') checkString(v, s, ptr, out);
  else if (typeof v === 'number') checkNumber(v, s, ptr, out);
  else if (Array.isArray(v)) checkArray(v, s, ptr, out);
  else if (isObject(v)) checkObject(v, s, ptr, out);
}

function checkString(v: string, s: SchemaObject, ptr: string, out: Found[]): void {
  if (typeof s.minLength === 'number' && [...v].length < s.minLength) {
    report(
      out,
      'minLength',
      ptr,
      s.minLength === 1
        ? `${where(ptr)} must not be empty`
        : `${where(ptr)} must have at least ${s.minLength} characters`,
    );
  } else if (typeof s.maxLength === 'number' && [...v].length > s.maxLength) {
    report(out, 'maxLength', ptr, `${where(ptr)} must have at most ${s.maxLength} characters`);
  } else if (typeof s.pattern === 'string' && !patternOf(s.pattern).test(v)) {
    const what = typeof s.description === 'string' ? s.description : `a string matching ${s.pattern}`;
    report(out, 'pattern', ptr, `${where(ptr)}: ${show(v)} is not valid here; expected ${lowerFirst(what)}`);
  }
}

function checkNumber(v: number, s: SchemaObject, ptr: string, out: Found[]): void {
  if (typeof s.minimum === 'number' && v < s.minimum) {
    report(out, 'minimum', ptr, `${where(ptr)} must be at least ${s.minimum}, got ${v}`);
  } else if (typeof s.exclusiveMinimum === 'number' && v <= s.exclusiveMinimum) {
    report(out, 'exclusiveMinimum', ptr, `${where(ptr)} must be greater than ${s.exclusiveMinimum}, got ${v}`);
  } else if (typeof s.maximum === 'number' && v > s.maximum) {
    report(out, 'maximum', ptr, `${where(ptr)} must be at most ${s.maximum}, got ${v}`);
  }
}

function checkArray(v: unknown[], s: SchemaObject, ptr: string, out: Found[]): void {
  if (typeof s.minItems === 'number' && v.length < s.minItems) {
    report(
      out,
      'minItems',
      ptr,
      s.minItems === 1 ? `${where(ptr)} must not be empty` : `${where(ptr)} must have at least ${s.minItems} items`,
    );
  }
  if (s.uniqueItems === true) {
    const seen = new Map<string, number>();
    v.forEach((item, i) => {
      const key = JSON.stringify(item) ?? 'undefined';
      const first = seen.get(key);
      if (first === undefined) seen.set(key, i);
      else
        report(
          out,
          'uniqueItems',
          `${ptr}/${i}`,
          `${where(`${ptr}/${i}`)}: duplicate item ${describe(item)} (same as ${where(`${ptr}/${first}`)})`,
        );
    });
  }
  const items = s.items;
  if (items !== undefined && (typeof items === 'boolean' || isObject(items))) {
    for (let i = 0; i < v.length; i++) check(v[i], items, `${ptr}/${i}`, out);
  }
}

function checkObject(v: Record<string, unknown>, s: SchemaObject, ptr: string, out: Found[]): void {
  const props = isObject(s.properties) ? (s.properties as Record<string, SchemaNode>) : {};
  const allowed = Object.keys(props);
  // A misspelt property is reported once, as unknown with its suggestion, not also as missing.
  const misspelt = new Set<string>();
  if (s.additionalProperties === false) {
    for (const name of Object.keys(v)) {
      if (Object.hasOwn(props, name)) continue;
      const suggestion = closest(name, allowed);
      if (suggestion !== undefined) misspelt.add(suggestion);
    }
  }
  if (Array.isArray(s.required)) {
    for (const name of s.required as string[]) {
      if (!Object.hasOwn(v, name) && !misspelt.has(name))
        report(out, 'required', ptr, `${where(ptr)}: missing required property '${name}'`);
    }
  }
  if (isObject(s.dependentRequired)) {
    for (const [name, needs] of Object.entries(s.dependentRequired as Record<string, string[]>)) {
      if (!Object.hasOwn(v, name)) continue;
      for (const need of needs) {
        if (!Object.hasOwn(v, need))
          report(
            out,
            'dependentRequired',
            `${ptr}/${escapePointer(name)}`,
            `${where(ptr)}: '${name}' requires '${need}'`,
          );
      }
    }
  }
  for (const [name, child] of Object.entries(v)) {
    const childPtr = `${ptr}/${escapePointer(name)}`;
    if (Object.hasOwn(props, name)) {
      check(child, props[name]!, childPtr, out);
    } else if (s.additionalProperties === false) {
      const suggestion = closest(name, allowed);
      const help = suggestion !== undefined ? ` (did you mean '${suggestion}'?)` : `; allowed: ${allowed.join(', ')}`;
      report(out, 'additionalProperties', childPtr, `${where(ptr)}: unknown property '${name}'${help}`);
    } else if (s.additionalProperties !== undefined) {
      check(child, s.additionalProperties as SchemaNode, childPtr, out);
    }
  }
  if (s.if !== undefined && s.then !== undefined && holds(v, s.if as SchemaNode)) {
    const before = out.length;
    check(v, s.then as SchemaNode, ptr, out);
    const condition = conditionText(s.if as SchemaNode);
    if (condition !== '') for (let i = before; i < out.length; i++) out[i]!.message += ` (required when ${condition})`;
  }
}

function checkOneOf(v: unknown, s: SchemaObject, ptr: string, out: Found[]): void {
  const branches = s.oneOf as SchemaNode[];
  const tag = discriminatorOf(branches);
  if (tag !== undefined) {
    if (!isObject(v)) {
      report(out, 'type', ptr, `${where(ptr)} must be a mapping (object), got ${describe(v)}`);
      return;
    }
    const values = tag.values;
    if (!Object.hasOwn(v, tag.name)) {
      report(
        out,
        'required',
        ptr,
        `${where(ptr)}: missing required property '${tag.name}' (one of ${values.join(', ')})`,
      );
      return;
    }
    const got = v[tag.name];
    const index = values.indexOf(got as string);
    if (typeof got !== 'string' || index < 0) {
      const at = `${ptr}/${escapePointer(tag.name)}`;
      report(
        out,
        'enum',
        at,
        `${where(at)} must be one of ${values.join(', ')} (got ${describe(got)}${hint(got, values)})`,
      );
      return;
    }
    check(v, branches[index]!, ptr, out);
    return;
  }
  const results = branches.map((b) => {
    const found: Found[] = [];
    check(v, b, ptr, found);
    return { branch: resolve(b), found };
  });
  const passing = results.filter((r) => r.found.length === 0).length;
  if (passing === 1) return;
  if (passing > 1) {
    report(out, 'oneOf', ptr, `${where(ptr)} is ambiguous: it matches more than one form (${describeOneOf(s)})`);
    return;
  }
  // Explain the failure of the one form the value was evidently meant to be (by type, then by
  // which form's required properties it has); if that is unclear, describe the accepted forms.
  let candidates = results.filter(
    (r) => r.branch === true || r.branch === false || r.branch.type === undefined || typeMatches(v, r.branch.type),
  );
  if (candidates.length > 1 && isObject(v)) {
    const byRequired = candidates.filter(
      (r) =>
        isObject(r.branch) &&
        Array.isArray(r.branch.required) &&
        (r.branch.required as string[]).every((k) => Object.hasOwn(v, k)),
    );
    if (byRequired.length > 0) candidates = byRequired;
  }
  if (candidates.length === 1) {
    out.push(...candidates[0]!.found);
    return;
  }
  report(out, 'oneOf', ptr, `${where(ptr)} must be ${describeOneOf(s)}, got ${describe(v)}`);
}

/** Whether `v` satisfies `schema` (used for `if`). */
function holds(v: unknown, schema: SchemaNode): boolean {
  const found: Found[] = [];
  check(v, schema, '', found);
  return found.length === 0;
}

interface Discriminator {
  name: string;
  values: string[];
}

/** A oneOf is a tagged union when every branch is an object form with a `const` on one shared property. */
function discriminatorOf(branches: SchemaNode[]): Discriminator | undefined {
  return discriminators(branches) ?? undefined;
}

// The branches are the program schema's own arrays: found once per oneOf.
const discriminators = memoByObject((branches: SchemaNode[]): Discriminator | null => {
  let result: Discriminator | null = null;
  const forms = branches.map(resolve);
  const first = forms[0];
  if (isObject(first) && isObject(first.properties)) {
    for (const name of Object.keys(first.properties as object)) {
      const values: string[] = [];
      for (const form of forms) {
        const prop =
          isObject(form) && isObject(form.properties)
            ? resolve((form.properties as Record<string, SchemaNode>)[name] ?? true)
            : true;
        if (isObject(prop) && typeof prop.const === 'string') values.push(prop.const);
      }
      if (values.length === forms.length && new Set(values).size === values.length) {
        result = { name, values };
        break;
      }
    }
  }
  return result;
});

function resolve(node: SchemaNode): SchemaNode {
  let current = node;
  for (let hops = 0; isObject(current) && typeof current.$ref === 'string'; hops++) {
    const ref = current.$ref as string;
    const target = ref.startsWith('#/$defs/')
      ? (PROGRAM_SCHEMA.$defs as Record<string, SchemaNode>)[ref.slice(8)]
      : undefined;
    // program.schema.json ships with nano-vm: an unresolvable $ref is a bug in it, never in a program.
    if (target === undefined || hops > 16) throw new NanoVmError('E_INTERNAL', `program schema: cannot resolve ${ref}`);
    current = target;
  }
  return current;
}

function describeOneOf(s: SchemaObject): string {
  const forms = (s.oneOf as SchemaNode[]).map(resolve).map((b) => {
    if (!isObject(b)) return String(b);
    if (Array.isArray(b.required) && b.type === 'object')
      return `{ ${(b.required as string[]).map((k) => `${k}: ...`).join(', ')} }`;
    return b.type !== undefined ? typeNames(b.type) : 'a value';
  });
  return forms.join(' or ');
}

function conditionText(ifSchema: SchemaNode): string {
  if (!isObject(ifSchema) || !isObject(ifSchema.properties)) return '';
  return Object.entries(ifSchema.properties as Record<string, SchemaNode>)
    .map(([k, p]) => (isObject(p) && 'const' in p ? `${k} is ${show(p.const)}` : ''))
    .filter((t) => t !== '')
    .join(' and ');
}

// The program schema's patterns, compiled once. Without the g or y flag a RegExp keeps no state
// between tests, so sharing one is safe.
const patternOf = memoByString(256, (source) => new RegExp(source, 'u'));

function typeMatches(v: unknown, type: unknown): boolean {
  const types = Array.isArray(type) ? type : [type];
  return types.some((t) => {
    switch (t) {
      case 'object':
        return isObject(v);
      case 'array':
        return Array.isArray(v);
      case 'string':
        return typeof v === 'string';
      case 'number':
        return typeof v === 'number' && Number.isFinite(v);
      case 'integer':
        return typeof v === 'number' && Number.isInteger(v);
      case 'boolean':
        return typeof v === 'boolean';
      case 'null':
        return v === null;
      default:
        return false;
    }
  });
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping (object)',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  null: 'null',
};

function typeNames(type: unknown): string {
  const types = Array.isArray(type) ? type : [type];
  return types.map((t) => TYPE_NAMES[String(t)] ?? String(t)).join(' or ');
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (isObject(v)) return 'a mapping';
  if (typeof v === 'string') return show(v);
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  return typeof v;
}

function show(v: unknown): string {
  if (typeof v !== 'string') return JSON.stringify(v) ?? String(v);
  const short = v.length > 60 ? `${v.slice(0, 57)}...` : v;
  return `'${short}'`;
}

function hint(v: unknown, options: readonly unknown[]): string {
  if (typeof v !== 'string') return '';
  const suggestion = closest(
    v,
    options.filter((o): o is string => typeof o === 'string'),
  );
  return suggestion !== undefined ? `; did you mean '${suggestion}'?` : '';
}

/** The option within a small edit distance of `word`, if any (for "did you mean"). */
export function closest(word: string, options: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = (word.length <= 1 ? 0 : Math.max(1, Math.floor(word.length / 3))) + 1;
  for (const option of options) {
    const d = editDistance(word.toLowerCase(), option.toLowerCase());
    if (d < bestDistance && d < option.length) {
      best = option;
      bestDistance = d;
    }
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Infinity;
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    const prev = rows[i - 1]!;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      row[j] = d;
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}

function where(ptr: string): string {
  return ptr === '' ? 'program' : ptr.slice(1);
}

function lowerFirst(s: string): string {
  return s.length > 0 ? s[0]!.toLowerCase() + s.slice(1) : s;
}

/** A key as a JSON pointer segment (RFC 6901). */
export function escapePointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The id of the step a pointer is inside (`/steps/3/...` or `/steps/3/children/1/...`). */
function stepIdAt(program: unknown, path: string): string | undefined {
  const m = /^\/steps\/(\d+)(?:\/children\/(\d+))?/.exec(path);
  if (m === null || !isObject(program) || !Array.isArray(program.steps)) return undefined;
  let step: unknown = program.steps[Number(m[1])];
  if (m[2] !== undefined && isObject(step) && Array.isArray(step.children)) step = step.children[Number(m[2])];
  return isObject(step) && typeof step.id === 'string' ? step.id : undefined;
}
