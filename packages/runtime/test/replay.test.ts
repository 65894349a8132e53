import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadPolicy, loadProgram, replayBundle, type Bundle, type Program } from '@nano-vm/kernel';
import {
  FixedClock,
  SeededIds,
  ScriptedModel,
  nodeHasher,
  parseModelScript,
  runProgram,
  toolsFromModule,
} from '../src/internal.js';

const EXAMPLES = new URL('../../../examples/', import.meta.url).pathname;

async function exampleRuns(name: string): Promise<{ caseName: string; bundle: Bundle }[]> {
  const dir = join(EXAMPLES, name);
  const program = loadProgram(readFileSync(join(dir, 'program.yaml'), 'utf8')).program!;
  const tools = toolsFromModule(await import(pathToFileURL(join(dir, 'tools.mjs')).href), 'tools.mjs');
  const script = parseModelScript(readFileSync(join(dir, 'model.yaml'), 'utf8'));
  // An example with a policy runs under it, as `nano-vm run <dir>` does.
  const policy = existsSync(join(dir, 'policy.yaml'))
    ? loadPolicy(readFileSync(join(dir, 'policy.yaml'), 'utf8')).policy
    : undefined;
  const out = [];
  for (const f of readdirSync(join(dir, 'inputs')).sort()) {
    const caseName = f.replace(/\.json$/, '');
    const input = JSON.parse(readFileSync(join(dir, 'inputs', f), 'utf8'));
    const r = await runProgram({
      program,
      input,
      model: new ScriptedModel(script, caseName),
      tools,
      clock: new FixedClock(),
      ids: new SeededIds(nodeHasher),
      ...(policy ? { policy } : {}),
    });
    out.push({ caseName, bundle: JSON.parse(JSON.stringify(r.bundle)) as Bundle });
  }
  return out;
}

describe('replay', () => {
  it.each(['refund', 'kyc'])(
    'replay of every %s example run is identical, without calling a model or tool',
    async (name) => {
      for (const { caseName, bundle } of await exampleRuns(name)) {
        const r = replayBundle(bundle, { hasher: nodeHasher });
        expect(r.identical, `${name}/${caseName}: ${JSON.stringify(r.first_divergence)}`).toBe(true);
        expect(r.head_hash).toBe(bundle.receipt.head_hash);
        expect(r.receipt).toEqual(bundle.receipt);
      }
    },
  );

  it('names the first diverging event when a recorded answer was altered', async () => {
    const [approve] = (await exampleRuns('refund')).filter((x) => x.caseName === 'approve');
    const b = approve!.bundle;
    const i = b.events.findIndex((e) => e.type === 'step_completed' && e.step === 'classify');
    (b.events[i] as { raw?: string }).raw = 'deny';
    const r = replayBundle(b, { hasher: nodeHasher });
    expect(r.identical).toBe(false);
    expect(r.first_divergence).toMatchObject({ seq: i, field: '/output' });
    expect(r.outcome).toBe('REJECTED');
  });

  it('counterfactual: a stricter threshold changes path and outcome', async () => {
    const [approve] = (await exampleRuns('refund')).filter((x) => x.caseName === 'approve');
    const stricter = JSON.parse(JSON.stringify(approve!.bundle.program)) as Program;
    const decide = stricter.steps.find((s) => s.id === 'decide');
    if (decide?.kind !== 'condition') throw new Error('fixture changed');
    decide.cases[0]!.when = 'steps.classify.output == "approve" && input.amount <= 100';
    const r = replayBundle(approve!.bundle, { hasher: nodeHasher, program: stricter });
    expect(r).toMatchObject({
      counterfactual: true,
      identical: false,
      missing: null,
      status: 'completed',
      outcome: 'NEEDS_HUMAN_REVIEW',
      recorded_outcome: 'SUCCESS',
    });
    expect(r.path).toEqual(['classify', 'decide', 'manual_review']);
    expect(r.recorded_path).toEqual(['classify', 'decide', 'issue_refund', 'refunded']);
    expect(r.first_divergence?.seq).toBe(0); // the genesis commits to a different program
  });

  it('counterfactual: reports the step that needs a result nobody recorded', async () => {
    const [injection] = (await exampleRuns('refund')).filter((x) => x.caseName === 'injection');
    const lax = JSON.parse(JSON.stringify(injection!.bundle.program)) as Program;
    const decide = lax.steps.find((s) => s.id === 'decide');
    if (decide?.kind !== 'condition') throw new Error('fixture changed');
    decide.cases[0]!.when = 'steps.classify.output == "approve"';
    const r = replayBundle(injection!.bundle, { hasher: nodeHasher, program: lax });
    expect(r.status).toBe('incomplete');
    expect(r.missing).toEqual({ step: 'issue_refund', kind: 'tool', occurrence: 1 });
    expect(r.path).toEqual(['classify', 'decide', 'issue_refund']);
  });

  it('a tool result that failed its output check is recorded, and a looser schema accepts it on replay', async () => {
    const { program, tools, scripted } = await import('./fixtures.js');
    const prog = program([
      {
        id: 'fetch',
        kind: 'tool',
        tool: 'fetch',
        output_schema: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
        next: 'done',
      },
      { id: 'done', kind: 'end', outcome: 'SUCCESS' },
    ]);
    const reg = tools([{ name: 'fetch', run: async () => ({ id: 42 }) }]);
    const run = await runProgram({
      program: prog,
      input: {},
      model: scripted('answers: {}'),
      tools: reg,
      clock: new FixedClock(),
      ids: new SeededIds(nodeHasher),
    });
    expect(run.receipt.error?.code).toBe('E_TOOL_OUTPUT_SCHEMA');
    expect(run.events.find((e) => e.type === 'step_failed')).toMatchObject({ rejected_output: { id: 42 } });
    expect(replayBundle(run.bundle, { hasher: nodeHasher }).identical).toBe(true);
    const looser = {
      ...prog,
      steps: [
        { ...prog.steps[0]!, output_schema: { type: 'object', required: ['id'] } } as (typeof prog.steps)[0],
        prog.steps[1]!,
      ],
    };
    expect(replayBundle(run.bundle, { hasher: nodeHasher, program: looser })).toMatchObject({
      status: 'completed',
      outcome: 'SUCCESS',
    });
  });
});
