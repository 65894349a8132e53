import { readFileSync } from 'node:fs';
import { Validator, type Schema } from '@cfworker/json-schema';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadProgram } from '../src/load.js';
import { PROGRAM_SCHEMA } from '../src/programSchema.js';
import { checkProgramShape, SUPPORTED_KEYWORDS } from '../src/validateShape.js';

const schemaFile = new URL('../program.schema.json', import.meta.url);

/** Every schema node of PROGRAM_SCHEMA with its pointer. */
function schemaNodes(): Array<{ at: string; node: Record<string, unknown> }> {
  const out: Array<{ at: string; node: Record<string, unknown> }> = [];
  const stack: Array<{ at: string; node: unknown }> = [{ at: '', node: PROGRAM_SCHEMA }];
  while (stack.length > 0) {
    const { at, node } = stack.pop()!;
    if (typeof node !== 'object' || node === null) continue;
    const o = node as Record<string, unknown>;
    out.push({ at, node: o });
    for (const key of ['items', 'additionalProperties', 'if', 'then'])
      if (typeof o[key] === 'object') stack.push({ at: `${at}/${key}`, node: o[key] });
    for (const key of ['properties', '$defs']) {
      for (const [name, sub] of Object.entries((o[key] ?? {}) as Record<string, unknown>))
        stack.push({ at: `${at}/${key}/${name}`, node: sub });
    }
    ((o.oneOf ?? []) as unknown[]).forEach((sub, i) => stack.push({ at: `${at}/oneOf/${i}`, node: sub }));
  }
  return out;
}

describe('program.schema.json', () => {
  it('is exactly PROGRAM_SCHEMA (the file editors use cannot drift from the checker)', () => {
    expect(JSON.parse(readFileSync(schemaFile, 'utf8'))).toEqual(PROGRAM_SCHEMA);
  });

  it('uses only keywords the structural checker interprets', () => {
    const used = new Set(schemaNodes().flatMap(({ node }) => Object.keys(node)));
    expect([...used].filter((k) => !SUPPORTED_KEYWORDS.includes(k))).toEqual([]);
  });

  it('closes every object form and describes every property', () => {
    for (const { at, node } of schemaNodes()) {
      if (node.properties !== undefined && !at.endsWith('/if')) expect(node.additionalProperties, at).toBe(false);
      for (const [name, prop] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) {
        if (at.endsWith('/if')) continue;
        expect(typeof prop.description, `${at}/properties/${name}`).toBe('string');
      }
    }
  });

  it('is a schema @cfworker/json-schema accepts for the example programs', () => {
    const validator = new Validator(structuredClone(PROGRAM_SCHEMA) as Schema, '2020-12', false);
    for (const file of ['../../../examples/refund/program.yaml', '../../../examples/kyc/program.yaml']) {
      const { program, issues } = loadProgram(readFileSync(new URL(file, import.meta.url), 'utf8'));
      expect(issues).toEqual([]);
      expect(validator.validate(program).valid).toBe(true);
    }
  });
});

/** A valid program using every step kind and most optional fields. */
const RICH = {
  format: 'nano-vm.program/v1',
  id: 'rich',
  version: '1',
  description: 'd',
  input_schema: { type: 'object', properties: { a: { type: 'string' } } },
  sensitive: ['input.a'],
  budgets: { max_steps: 10, max_tokens: 100, max_cost_usd: 0.5, max_wall_ms: 1000, max_stalled_steps: 2 },
  start: 'ask',
  steps: [
    {
      id: 'ask',
      kind: 'llm',
      prompt: 'p {{input.a}}',
      projection: ['input.a'],
      output: { enum: ['x', 'y'] },
      next: 'call',
      timeout_ms: 5,
      on_error: { action: 'retry', max_attempts: 2, then: 'fallback', value: 'x' },
    },
    {
      id: 'call',
      kind: 'tool',
      tool: 't',
      args: { a: 'input.a', b: { value: [1, { c: null }] } },
      output_schema: { type: 'object' },
      next: 'fan',
      on_error: { action: 'fallback', value: {} },
    },
    {
      id: 'fan',
      kind: 'parallel',
      max_concurrency: 2,
      children: [
        {
          id: 'c1',
          kind: 'llm',
          prompt: 'q',
          projection: [],
          output: { schema: { type: 'string' } },
          on_error: { action: 'fail' },
        },
        { id: 'c2', kind: 'tool', tool: 't2' },
      ],
      next: 'route',
    },
    {
      id: 'route',
      kind: 'condition',
      cases: [{ when: 'true', next: 'ok' }],
      else: 'ask',
      max_visits: 3,
      on_exhausted: 'bad',
      description: 'loop',
    },
    { id: 'ok', kind: 'end', outcome: 'OK' },
    { id: 'bad', kind: 'end', outcome: 'BAD', failure: true },
  ],
};

type Path = Array<string | number>;

function pathsOf(value: unknown, prefix: Path = []): Path[] {
  const out: Path[] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...pathsOf(v, [...prefix, i])));
  else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...prefix, k]));
  return out;
}

function mutate(root: unknown, path: Path, op: 'delete' | 'replace' | 'add', payload: unknown, key: string): unknown {
  const copy = structuredClone(root) as Record<string | number, unknown>;
  if (path.length === 0) return op === 'replace' ? payload : copy;
  if (typeof copy !== 'object' || copy === null) return copy;
  let parent: Record<string | number, unknown> = copy;
  for (const seg of path.slice(0, -1)) {
    const next = parent[seg];
    if (typeof next !== 'object' || next === null) return copy; // an earlier mutation removed it
    parent = next as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  if (!(last in parent)) return copy;
  if (op === 'delete') {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else if (op === 'replace') {
    parent[last] = payload;
  } else {
    const target = parent[last];
    if (typeof target === 'object' && target !== null && !Array.isArray(target))
      Object.defineProperty(target, key, { value: payload, enumerable: true, writable: true, configurable: true });
    else if (Array.isArray(target)) target.push(payload);
  }
  return copy;
}

describe('structural checker', () => {
  it('agrees with @cfworker/json-schema on valid and mutated programs', () => {
    const validator = new Validator(structuredClone(PROGRAM_SCHEMA) as Schema, '2020-12', false);
    const paths = pathsOf(RICH);
    const payload = fc.oneof(
      fc.constantFrom(
        'llm',
        'tool',
        'condition',
        'parallel',
        'end',
        'retry',
        'fallback',
        'fail',
        'input.a',
        'steps.ask.output',
        'x',
        '',
        'bad id',
        0,
        -1,
        1.5,
        3,
        true,
        null,
        [],
        {},
        ['x'],
        { value: 1 },
        { enum: ['a'] },
        { schema: true },
      ),
      fc.jsonValue({ maxDepth: 2 }),
    );
    const key = fc.constantFrom(
      'next',
      'value',
      'then',
      'nxt',
      'max_visits',
      'on_exhausted',
      'enum',
      'schema',
      'kind',
      'zzz',
      'constructor',
      '__proto__',
      'toString',
    );
    const mutation = fc.tuple(
      fc.constantFrom(...paths),
      fc.constantFrom('delete', 'replace', 'add') as fc.Arbitrary<'delete' | 'replace' | 'add'>,
      payload,
      key,
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 0, maxLength: 3 }), (mutations) => {
        let value: unknown = RICH;
        for (const [path, op, p, k] of mutations) value = mutate(value, path, op, p, k);
        const ours = checkProgramShape(value);
        const theirs = validator.validate(value).valid;
        expect(ours.length === 0).toBe(theirs);
      }),
      { numRuns: 1500 },
    );
  });

  it('reports each defect once: one issue per mutated value', () => {
    expect(checkProgramShape(RICH)).toEqual([]);
    const wrongKind = mutate(RICH, ['steps', 1, 'kind'], 'replace', 'tol', '');
    expect(checkProgramShape(wrongKind).map((i) => i.message)).toEqual([
      "steps/1/kind must be one of llm, tool, condition, parallel, wait, end (got 'tol'; did you mean 'tool'?)",
    ]);
    const wrongChild = mutate(RICH, ['steps', 2, 'children', 1, 'kind'], 'replace', 'end', '');
    expect(checkProgramShape(wrongChild)).toEqual([
      {
        code: 'E_SCHEMA',
        severity: 'error',
        step: 'c2',
        path: '/steps/2/children/1/kind',
        message: "steps/2/children/1/kind must be one of llm, tool (got 'end')",
      },
    ]);
  });
});
