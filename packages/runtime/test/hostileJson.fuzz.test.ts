/**
 * Issue 11 "Done means": random hostile JSON — member names `__proto__`, `constructor`,
 * `prototype`, duplicate names, deep nesting, huge strings — fed through load, run (memory store,
 * scripted model and tools), verify and replay. Every refusal carries a documented code (never
 * E_INTERNAL), every run that starts ends verifiable and replays identically, and Object.prototype
 * is never touched.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  loadPolicy,
  loadProgram,
  NanoVmError,
  parseJsonText,
  replayBundle,
  serializeBundle,
  verifyBundle,
  type Program,
} from '@nano-vm/kernel';
import { FixedClock, MemoryStore, SeededIds, ToolRegistry, nodeHasher, runProgram } from '../src/internal.js';

const EMAIL = 'someone@example.com';
// The sensitive value as a member name too (redaction catches keys, in any letter case).
const NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'a', 'email', EMAIL];

type Node = { leaf: string } | { array: Node[] } | { object: [string, Node][] };

const leaf = fc.oneof(
  fc.string({ maxLength: 6 }).map((s) => JSON.stringify(s)),
  fc.integer().map(String),
  fc.constantFrom('true', 'false', 'null', '"[MASKED]"', '1e308', '-0', '0.5'),
  // Copies of the sensitive value: whole, upper-cased inside text (sealed as commitments in the
  // input, redacted in events, so no event holds it and a replay is identical).
  fc.constantFrom(JSON.stringify(EMAIL), JSON.stringify(`mail ${EMAIL.toUpperCase()} now`)),
);
const { node } = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf.map((l) => ({ leaf: l })),
    fc.array(tie('node'), { maxLength: 3 }).map((array) => ({ array })),
    fc.array(fc.tuple(fc.constantFrom(...NAMES), tie('node')), { maxLength: 4 }).map((object) => ({ object })),
  ),
}));

/** JSON text of a node: duplicate member names are written as they come. */
function render(n: Node): string {
  if ('leaf' in n) return n.leaf;
  if ('array' in n) return `[${n.array.map(render).join(',')}]`;
  return `{${n.object.map(([k, v]) => `${JSON.stringify(k)}:${render(v)}`).join(',')}}`;
}

/** A hostile text: a random tree, wrapped `depth` levels deep, sometimes beside a huge string. */
const hostileText = fc
  .record({
    tree: node,
    depth: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 120, max: 400 })),
    wrapper: fc.constantFrom('[', '{"__proto__":', '{"constructor":'),
    huge: fc.constantFrom(0, 0, 0, 300_000),
  })
  .map(({ tree, depth, wrapper, huge }) => {
    let text = render(tree);
    if (huge > 0) text = `[${text},${JSON.stringify('x'.repeat(huge))}]`;
    const close = wrapper === '[' ? ']' : '}';
    return `${wrapper.repeat(depth)}${text}${close.repeat(depth)}`;
  });

const PROGRAM: Program = {
  format: 'nano-vm.program/v1',
  id: 'hostile',
  input_schema: { type: 'object', properties: { data: {}, email: { type: 'string' } } },
  sensitive: ['input.email'],
  steps: [
    {
      id: 'ask',
      kind: 'llm',
      prompt: 'look at {{input.data}} for {{input.email}}',
      projection: ['input.data', 'input.email'],
      output: { schema: {} },
      on_error: { action: 'fallback', value: {} },
      next: 't',
    },
    {
      id: 't',
      kind: 'tool',
      tool: 'echo',
      args: { d: 'input.data', e: 'input.email', x: 'steps.ask.output' },
      output_schema: {},
      on_error: { action: 'fallback', value: {} },
      next: 'c',
    },
    {
      id: 'c',
      kind: 'condition',
      cases: [{ when: 'has(steps.t.output.__proto__) || has(steps.ask.output.constructor)', next: 'yes' }],
      else: 'no',
    },
    { id: 'yes', kind: 'end', outcome: 'YES' },
    { id: 'no', kind: 'end', outcome: 'NO', failure: true },
  ],
};

const prototypeNames = () => Object.getOwnPropertyNames(Object.prototype).sort();
const before = prototypeNames();

/** A refusal must be a NanoVmError with a documented code other than E_INTERNAL. */
function expectCoded(e: unknown): void {
  expect(e).toBeInstanceOf(NanoVmError);
  expect((e as NanoVmError).code).not.toBe('E_INTERNAL');
}

/** The hostile text as a value: strictly read, else (as an API caller might pass it) as JSON.parse reads it. */
function valueOf(text: string): { strict: boolean; value: unknown } {
  try {
    return { strict: true, value: parseJsonText(text) };
  } catch (e) {
    expectCoded(e);
    expect((e as NanoVmError).code).toMatch(/^E_(JSON|TOO_DEEP)$/);
    return { strict: false, value: JSON.parse(text) as unknown };
  }
}

afterAll(() => {
  expect(prototypeNames()).toEqual(before);
});

describe('hostile JSON through load, run, verify and replay', () => {
  it('finds no E_INTERNAL, no crash and no pollution of Object.prototype', async () => {
    await fc.assert(
      fc.asyncProperty(hostileText, hostileText, hostileText, async (inputText, answerText, toolText) => {
        // load: as a program and as a policy (JSON format), and as a bundle to verify.
        for (const load of [loadProgram, loadPolicy]) {
          const r = load(inputText, { format: 'json' });
          for (const i of r.issues) expect(i.code).not.toBe('E_INTERNAL');
        }
        const asBundle = valueOf(inputText).value;
        expect(verifyBundle(asBundle, nodeHasher).ok).toBe(false);

        // run: the hostile value as input data, as the model's answer and as the tool's output.
        const input = { data: valueOf(inputText).value, email: EMAIL };
        const toolValue = valueOf(toolText).value;
        const tools = new ToolRegistry([{ name: 'echo', run: async () => toolValue }]);
        let result;
        try {
          result = await runProgram({
            program: PROGRAM,
            input,
            model: {
              id: 'fuzz',
              scripted: true,
              complete: async () => ({ raw: answerText, model: 'fuzz', usage: { input_tokens: 1, output_tokens: 1 } }),
            },
            tools,
            store: new MemoryStore(),
            clock: new FixedClock(),
            ids: new SeededIds(nodeHasher),
          });
        } catch (e) {
          // Only the input may be refused, and only for a limit.
          expectCoded(e);
          expect((e as NanoVmError).code).toMatch(/^E_TOO_(DEEP|LARGE)$/);
          expect(prototypeNames()).toEqual(before);
          return;
        }
        expect(['completed', 'failed']).toContain(result.status);
        for (const e of result.events) if ('error' in e && e.error) expect(e.error.code).not.toBe('E_INTERNAL');
        expect(JSON.stringify(result.events)).not.toContain(EMAIL);

        // verify and replay the bundle as a file would carry it, read strictly.
        const bundle = parseJsonText(serializeBundle(result.bundle), { maxDepth: 160 });
        const v = verifyBundle(bundle, nodeHasher);
        expect(v.ok, JSON.stringify(v)).toBe(true);
        const replay = replayBundle(bundle as typeof result.bundle, { hasher: nodeHasher });
        expect(replay.identical, JSON.stringify(replay.first_divergence)).toBe(true);
        expect(prototypeNames()).toEqual(before);
        expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
      }),
      { numRuns: 150 },
    );
  }, 120_000);

  it('a bundle object nested 100,000 deep is refused by verify and replay with a code, not a stack overflow', async () => {
    const r = await runProgram({
      program: PROGRAM,
      input: { data: 1, email: EMAIL },
      model: { id: 'm', scripted: true, complete: async () => ({ raw: '{}', model: 'm' }) },
      tools: new ToolRegistry([{ name: 'echo', run: async () => ({}) }]),
      clock: new FixedClock(),
      ids: new SeededIds(nodeHasher),
    });
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const bundle = { ...r.bundle, input: deep };
    expect(verifyBundle(bundle, nodeHasher)).toMatchObject({ ok: false, code: 'E_BUNDLE_FORMAT' });
    expect(() => replayBundle(bundle, { hasher: nodeHasher })).toThrow(expect.objectContaining({ code: 'E_TOO_DEEP' }));
  });
});
