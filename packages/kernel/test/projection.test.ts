/**
 * Evaluator blindness: no value outside a step's declared projection, and no sensitive value,
 * ever reaches the model — neither in the projected view nor in the rendered prompt.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Machine,
  MASK,
  canonicalJson,
  isUnder,
  project,
  pureHasher,
  renderPrompt,
  type Program,
} from '../src/internal.js';

type Tree = { [k: string]: Tree | string };

/** A random nested input whose leaves are unique tokens, with every path listed. */
const treeArb = fc
  .array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.constantFrom('x', 'y', 'z'), fc.boolean()), {
    minLength: 1,
    maxLength: 12,
  })
  .map((entries) => {
    const tree: Tree = {};
    let n = 0;
    for (const [k1, k2, nested] of entries) {
      if (nested) {
        const sub = (typeof tree[k1] === 'object' ? tree[k1] : (tree[k1] = {})) as Tree;
        sub[k2] = `TOKEN${n++}Q`;
      } else if (tree[k1] === undefined) tree[k1] = `TOKEN${n++}Q`;
    }
    return tree;
  });

function paths(t: Tree, prefix: string): string[] {
  return Object.entries(t).flatMap(([k, v]) =>
    typeof v === 'string' ? [`${prefix}.${k}`] : [`${prefix}.${k}`, ...paths(v, `${prefix}.${k}`)],
  );
}
function leaves(t: Tree, prefix: string): [string, string][] {
  return Object.entries(t).flatMap(([k, v]) =>
    typeof v === 'string' ? [[`${prefix}.${k}`, v] as [string, string]] : leaves(v, `${prefix}.${k}`),
  );
}

const scenario = treeArb.chain((input) => {
  const all = paths(input, 'input');
  return fc.record({
    input: fc.constant(input),
    projection: fc.subarray(all),
    sensitive: fc.subarray(all),
    placeholders: fc.subarray(all),
  });
});

describe('projection', () => {
  it('property: only projected, non-sensitive values appear in the view and the prompt', () => {
    fc.assert(
      fc.property(scenario, ({ input, projection, sensitive, placeholders }) => {
        const state = {
          input,
          steps: {},
          run_id: 'RUNIDSECRET',
          budgets: { max_steps: 7 },
          policy_hash: 'POLICYSECRET',
        };
        const view = project(state, projection, sensitive);
        const prompt = renderPrompt(`Task. ${placeholders.map((p) => `{{${p}}}`).join(' | ')} RUNIDSECRET-free`, view);
        const seen = canonicalJson(view) + '\n' + prompt;
        for (const [path, token] of leaves(input, 'input')) {
          const visible = projection.some((p) => isUnder(path, p)) && !sensitive.some((s) => isUnder(path, s));
          if (!visible) expect(seen, `${path} leaked`).not.toContain(token);
        }
        expect(canonicalJson(view)).not.toMatch(/RUNIDSECRET|POLICYSECRET|max_steps/);
      }),
      { numRuns: 400 },
    );
  });

  it('masks a sensitive field inside a projected parent, and a projected sensitive leaf', () => {
    const state = { input: { customer: { email: 'e@x', tier: 'gold' }, ssn: '123' } };
    expect(project(state, ['input.customer', 'input.ssn'], ['input.customer.email', 'input.ssn'])).toEqual({
      input: { customer: { email: MASK, tier: 'gold' }, ssn: MASK },
    });
  });

  it('absent paths are omitted and render as null', () => {
    const view = project({ input: {} }, ['input.missing'], []);
    expect(view).toEqual({});
    expect(renderPrompt('v={{input.missing}}', view)).toBe('v=null');
  });

  it('through the machine: the llm command carries exactly the projected view', () => {
    const program: Program = {
      format: 'nano-vm.program/v1',
      id: 'p',
      input_schema: { type: 'object' },
      sensitive: ['input.card'],
      budgets: { max_steps: 5 },
      steps: [
        {
          id: 'ask',
          kind: 'llm',
          prompt: 'Reason: {{input.reason}} Card: {{input.card}}',
          projection: ['input.reason', 'input.card'],
          output: { enum: ['ok'] },
          next: 'done',
        },
        { id: 'done', kind: 'end', outcome: 'SUCCESS' },
      ],
    };
    const m = new Machine(
      program,
      { reason: 'broken', card: '4111111111111111', internal: 'INTERNAL' },
      {
        runId: 'run-SECRET',
        hasher: pureHasher,
        clock: { now: () => 0 },
        runtimeVersion: 't',
        model: { id: 'm', scripted: true },
      },
    );
    const cmd = m.next();
    expect(cmd.type).toBe('llm');
    if (cmd.type !== 'llm') return;
    expect(cmd.projection).toEqual({ input: { reason: 'broken', card: MASK } });
    expect(cmd.prompt).toBe(`Reason: broken Card: ${MASK}`);
    const everything = JSON.stringify(cmd);
    for (const s of ['4111111111111111', 'INTERNAL', 'run-SECRET', m.events[0]!.hash, 'max_steps'])
      expect(everything).not.toContain(s);
  });
});

describe('renderPrompt', () => {
  it('renders exactly what a global replace of the placeholders would', () => {
    const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}/g;
    const piece = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom(
        '{{input.a}}',
        '{{ input.b.x }}',
        '{{input.missing}}',
        '{{input.n}}',
        '{{',
        '}}',
        '{{input.a}',
        '$&',
        '$1',
      ),
    );
    const view = { input: { a: 'A$1', b: { x: 'X' }, n: [1, { z: 'é' }] } };
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
        const template = pieces.join('');
        const expected = template.replace(PLACEHOLDER, (_m, path: string) => {
          const v = path
            .split('.')
            .reduce<unknown>(
              (o, k) =>
                o !== null && typeof o === 'object' && Object.hasOwn(o, k)
                  ? (o as Record<string, unknown>)[k]
                  : undefined,
              view,
            );
          return v === undefined ? 'null' : typeof v === 'string' ? v : canonicalJson(v);
        });
        expect(renderPrompt(template, view as never)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });
});
