/**
 * The planner (docs/planner.md): a meta-program whose draft → check → accept loop feeds each
 * draft's issues back to the model, bounded by max_visits. These tests drive it in process with a
 * model that records what it was shown.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  checkSchema,
  loadProgram,
  PROGRAM_SCHEMA,
  replayBundle,
  validateProgram,
  verifyBundle,
  type PolicySnapshot,
  type Program,
  type StepCompletedEvent,
} from '@nano-vm/kernel';
import { parse } from 'yaml';
import {
  checkDraft,
  checkProgramTool,
  DRAFTED,
  inlinedProgramSchema,
  MemoryStore,
  NO_VALID_DRAFT,
  nodeHasher,
  parseModelScript,
  planProgram,
  plannerProgram,
  programText,
  ScriptedModel,
} from '../src/internal.js';
import { det, RecordingModel, tools } from './fixtures.js';

const lookup = {
  name: 'lookup_order',
  description: 'Look up an order.',
  input_schema: {
    type: 'object',
    additionalProperties: false,
    required: ['order_id'],
    properties: { order_id: { type: 'string' } },
  },
  output_schema: { type: 'object', required: ['total'], properties: { total: { type: 'number' } } },
  run: () => {
    throw new Error('the planner never calls the tools it plans with');
  },
};
const registry = tools([lookup]);

const input_schema = {
  type: 'object',
  additionalProperties: false,
  required: ['order_id'],
  properties: { order_id: { type: 'string' } },
};
const valid = {
  format: 'nano-vm.program/v1',
  id: 'orders',
  input_schema,
  steps: [
    {
      id: 'lookup',
      kind: 'tool',
      tool: 'lookup_order',
      args: { order_id: 'input.order_id' },
      output_schema: lookup.output_schema,
      next: 'route',
    },
    {
      id: 'route',
      kind: 'condition',
      cases: [{ when: 'steps.lookup.output.total <= 100', next: 'small' }],
      else: 'large',
    },
    { id: 'small', kind: 'end', outcome: 'SMALL' },
    { id: 'large', kind: 'end', outcome: 'LARGE', failure: true },
  ],
};
/** Structurally a program, but an edge to a missing step and an unknown tool. */
const invalid = {
  ...valid,
  steps: [{ ...valid.steps[0], tool: 'lookup_orders' }, { ...valid.steps[1], else: 'larger' }, valid.steps[2]],
};
/** The planner's projected `steps`, as far as these tests read them: the draft and the check's issues. */
interface PlannerStepsView {
  draft: { output: unknown };
  check: { output: { issues: { code: string; severity: string }[] } };
}
const errorCodes = (issues: { code: string; severity: string }[]) =>
  issues
    .filter((i) => i.severity === 'error')
    .map((i) => i.code)
    .sort();

const answering = (...drafts: unknown[]) =>
  new RecordingModel((r) => JSON.stringify(drafts[Math.min(r.call, drafts.length) - 1]));

describe('the planner meta-program', () => {
  it('is a valid program with its check tool, for every attempt bound', () => {
    for (const n of [1, 3, 20])
      expect(
        validateProgram(plannerProgram(n), { tools: { check_program: checkProgramTool } }).filter(
          (i) => i.severity === 'error',
        ),
      ).toEqual([]);
    expect(() => plannerProgram(0)).toThrow(RangeError);
    expect(plannerProgram(4).steps[0]).toMatchObject({ id: 'draft', max_visits: 4, on_exhausted: 'no_valid_draft' });
  });

  it('asks for drafts in the program schema with its $refs inlined: the same programs pass and fail', () => {
    const inlined = inlinedProgramSchema();
    expect(JSON.stringify(inlined)).not.toContain('$ref');
    const examples = ['refund', 'kyc', 'approval'].map(
      (d) =>
        loadProgram(readFileSync(new URL(`../../../examples/${d}/program.yaml`, import.meta.url), 'utf8')).program!,
    );
    for (const p of [...examples, valid, invalid]) expect(checkSchema(inlined, p)).toEqual([]);
    for (const bad of [
      { ...valid, steps: [] },
      { ...valid, format: 'v2' },
      { ...valid, steps: [{ id: 'x', kind: 'end' }] },
      { ...valid, nxt: 1 },
    ]) {
      expect(checkSchema(PROGRAM_SCHEMA, bad)).not.toEqual([]);
      expect(checkSchema(inlined, bad)).not.toEqual([]);
    }
  });
});

describe('checkDraft', () => {
  it('reports loader, validator and tool issues as data', () => {
    expect(checkDraft(valid, [lookup])).toEqual({ ok: true, issues: [] });
    const r = checkDraft(invalid, [lookup]);
    expect(r.ok).toBe(false);
    expect(errorCodes(r.issues)).toEqual(['E_MISSING_TARGET', 'E_UNKNOWN_TOOL']);
    expect(r.issues.find((i) => i.code === 'E_UNKNOWN_TOOL')?.message).toContain("did you mean 'lookup_order'");
    expect(checkDraft({ id: 'x' }, []).issues.map((i) => i.code)).toEqual(['E_FORMAT']);
  });

  it('pre-flights the draft against a policy', () => {
    const policy = { format: 'nano-vm.policy/v1', id: 'p', required_steps: [{ id: 'must_look_up', step: 'lookup' }] };
    const skipped = { ...valid, steps: [{ id: 'small', kind: 'end', outcome: 'SMALL' }] };
    const r = checkDraft(skipped, [lookup], policy);
    expect(r.ok).toBe(false);
    expect(r.issues.map((i) => i.code)).toContain('E_POLICY_REQUIRED_STEP');
    expect(checkDraft(valid, [lookup], policy).ok).toBe(true);
  });
});

describe('planProgram', () => {
  it('feeds the first draft and its issues back into the second draft, then accepts it', async () => {
    const model = answering(invalid, valid);
    const r = await planProgram({ intent: 'Look up an order and sort it by size.', tools: registry, model, ...det() });
    expect(r.run.status).toBe('completed');
    expect(r.run.outcome).toBe(DRAFTED);
    expect(r.drafts).toBe(2);
    expect(r.program).toEqual(valid);
    expect(r.run.receipt.path).toEqual(['draft', 'check', 'accept', 'draft', 'check', 'accept', 'drafted']);

    // What the model saw: first the intent and the tools only; then also its own draft and the check's issues.
    const [first, second] = model.requests;
    expect(first!.projection).toEqual({
      input: {
        intent: 'Look up an order and sort it by size.',
        tools: [
          {
            name: 'lookup_order',
            description: 'Look up an order.',
            input_schema: lookup.input_schema,
            output_schema: lookup.output_schema,
          },
        ],
      },
    });
    expect((second!.projection.steps as unknown as PlannerStepsView).draft.output).toEqual(invalid);
    expect(errorCodes((second!.projection.steps as unknown as PlannerStepsView).check.output.issues)).toEqual([
      'E_MISSING_TARGET',
      'E_UNKNOWN_TOOL',
    ]);
    const drafts = r.run.events.filter(
      (e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === 'draft',
    );
    expect(drafts[0]!.projection_hash).not.toBe(drafts[1]!.projection_hash);

    expect(verifyBundle(r.run.bundle, nodeHasher)).toMatchObject({ ok: true });
    expect(replayBundle(r.run.bundle, { hasher: nodeHasher })).toMatchObject({ identical: true });
  });

  it('ends NO_VALID_DRAFT after the attempts, with the last issues', async () => {
    const store = new MemoryStore();
    const r = await planProgram({
      intent: 'x',
      tools: registry,
      model: answering(invalid),
      attempts: 2,
      store,
      ...det(),
    });
    expect(r.run.outcome).toBe(NO_VALID_DRAFT);
    expect(r.program).toBeUndefined();
    expect(r.drafts).toBe(2);
    expect(r.lastCheck?.ok).toBe(false);
    expect(r.run.receipt.path.at(-1)).toBe('no_valid_draft');
    expect(await store.getRun(r.run.run_id)).toBeTruthy();
  });

  it('rejects a draft that breaks the policy and accepts the corrected one', async () => {
    const policy = {
      format: 'nano-vm.policy/v1',
      id: 'p',
      required_steps: [{ id: 'must_look_up', step: 'lookup' }],
    } as unknown as PolicySnapshot;
    const skipped = { ...valid, steps: [{ id: 'small', kind: 'end', outcome: 'SMALL' }] };
    const model = answering(skipped, valid);
    const r = await planProgram({ intent: 'x', tools: registry, policy, model, ...det() });
    expect(r.run.outcome).toBe(DRAFTED);
    expect((model.requests[0]!.projection.input as { policy?: unknown }).policy).toEqual(policy);
    expect(
      (model.requests[1]!.projection.steps as unknown as PlannerStepsView).check.output.issues.map(
        (i: { code: string }) => i.code,
      ),
    ).toContain('E_POLICY_REQUIRED_STEP');
  });

  it('writes a draft as YAML that loads back to the same program', () => {
    const text = programText(valid as Program, { format: 'yaml', header: ['drafted'] });
    expect(text.startsWith('# drafted\nformat: nano-vm.program/v1\nid: orders\n')).toBe(true);
    expect(loadProgram(text).program).toEqual(valid);
    expect(JSON.parse(programText(valid as Program, { format: 'json' }))).toEqual(valid);
  });
});

describe('docs/planner.md', () => {
  const doc = readFileSync(new URL('../../../docs/planner.md', import.meta.url), 'utf8');

  it("shows the meta-program's steps as the code defines them (prompt and schemas abbreviated)", () => {
    const block = /```yaml planner\n([\s\S]*?)```/.exec(doc)![1]!;
    const abbreviate = (steps: { id: string; prompt?: unknown; output?: unknown; output_schema?: unknown }[]) =>
      steps.map(({ prompt: _p, output: _o, output_schema: _s, ...rest }) => rest);
    expect(abbreviate(parse(block))).toEqual(abbreviate(structuredClone(plannerProgram(3).steps)));
  });

  it('its scripted example drafts twice and is accepted', async () => {
    const script = /```yaml\n(model: planner-demo\n[\s\S]*?)```/.exec(doc)![1]!;
    const r = await planProgram({
      intent: 'Look up an order',
      tools: registry,
      model: new ScriptedModel(parseModelScript(script)),
      ...det(),
    });
    expect([r.run.outcome, r.drafts]).toEqual([DRAFTED, 2]);
    expect(r.lastCheck?.issues.map((i) => i.code)).toEqual(['W_NO_FAILURE_TERMINAL']);
  });
});
