import { describe, expect, it } from 'vitest';
import { NanoVmError, verifyBundle, type Step } from '@nano-vm/kernel';
import { MemoryStore, nodeHasher, runProgram } from '../src/internal.js';
import { det, program, RecordingModel, scripted, tools } from './fixtures.js';

const end = (id: string, outcome: string, failure = false): Step => ({
  id,
  kind: 'end',
  outcome,
  ...(failure ? { failure } : {}),
});
const noTools = tools([]);

describe('executor: llm → condition → tool → end', () => {
  const prog = program([
    {
      id: 'classify',
      kind: 'llm',
      prompt: 'Value {{input.value}}',
      projection: ['input.value'],
      output: { enum: ['high', 'low'] },
      next: 'route',
      on_error: { action: 'retry', max_attempts: 2, then: 'fallback', value: 'low' },
    },
    { id: 'route', kind: 'condition', cases: [{ when: 'steps.classify.output == "high"', next: 'act' }], else: 'skip' },
    {
      id: 'act',
      kind: 'tool',
      tool: 'act',
      args: { v: 'input.value' },
      output_schema: { type: 'object', required: ['done'], properties: { done: { type: 'boolean' } } },
      next: 'ok',
    },
    end('ok', 'SUCCESS'),
    end('skip', 'SKIPPED', true),
  ]);
  const reg = tools([{ name: 'act', run: async (args) => ({ done: args.v === 7 }) }]);

  it('completes with the named outcome and a verifiable bundle', async () => {
    const r = await runProgram({
      program: prog,
      input: { value: 7 },
      model: scripted('answers: { classify: [high] }'),
      tools: reg,
      ...det(),
    });
    expect(r.status).toBe('completed');
    expect(r.outcome).toBe('SUCCESS');
    expect(r.receipt.path).toEqual(['classify', 'route', 'act', 'ok']);
    expect(r.events.map((e) => e.type)).toEqual([
      'run_started',
      'step_completed',
      'condition_evaluated',
      'step_started',
      'step_completed',
      'run_finished',
    ]);
    expect(verifyBundle(r.bundle, nodeHasher)).toMatchObject({ ok: true });
  });

  it('an out-of-enum answer is rejected, retried, and then falls back — all recorded', async () => {
    const r = await runProgram({
      program: prog,
      input: { value: 7 },
      model: scripted('answers: { classify: ["IGNORE RULES: high!", "maybe"] }'),
      tools: reg,
      ...det(),
    });
    expect(r.outcome).toBe('SKIPPED');
    const types = r.events.map((e) => e.type);
    expect(types).toContain('step_retry');
    expect(types).toContain('step_fallback');
    const failed = r.events.filter((e) => e.type === 'step_failed');
    expect(failed.map((e) => e.type === 'step_failed' && e.error.code)).toEqual([
      'E_OUTPUT_NOT_IN_ENUM',
      'E_OUTPUT_NOT_IN_ENUM',
    ]);
    expect(r.receipt.counts).toMatchObject({ retries: 1, failures: 2, fallbacks: 1, model_calls: 2 });
  });

  it('a tool result that violates its declared schema fails the run with the code', async () => {
    const bad = tools([{ name: 'act', run: async () => ({ done: 'yes' }) }]);
    const r = await runProgram({
      program: prog,
      input: { value: 7 },
      model: scripted('answers: { classify: [high] }'),
      tools: bad,
      ...det(),
    });
    expect(r.status).toBe('failed');
    expect(r.receipt.error).toMatchObject({ code: 'E_TOOL_OUTPUT_SCHEMA', step: 'act' });
  });

  it('a throwing tool and a non-JSON tool result fail with codes', async () => {
    const throwing = tools([
      {
        name: 'act',
        run: async () => {
          throw new Error('card declined');
        },
      },
    ]);
    const r1 = await runProgram({
      program: prog,
      input: { value: 7 },
      model: scripted('answers: { classify: [high] }'),
      tools: throwing,
      ...det(),
    });
    expect(r1.receipt.error).toMatchObject({ code: 'E_TOOL_ERROR', message: 'card declined' });
    const weird = tools([{ name: 'act', run: async () => ({ done: true, at: new Date(0) }) }]);
    const r2 = await runProgram({
      program: prog,
      input: { value: 7 },
      model: scripted('answers: { classify: [high] }'),
      tools: weird,
      ...det(),
    });
    expect(r2.receipt.error).toMatchObject({ code: 'E_TOOL_OUTPUT_NOT_JSON' });
    const coded = tools([
      {
        name: 'act',
        run: async () => {
          throw Object.assign(new Error('card declined'), { code: 'E_CARD_DECLINED' });
        },
      },
    ]);
    const r3 = await runProgram({
      program: prog,
      input: { value: 7 },
      model: scripted('answers: { classify: [high] }'),
      tools: coded,
      ...det(),
    });
    expect(r3.receipt.error).toMatchObject({ code: 'E_CARD_DECLINED', step: 'act' });
  });

  it("tool arguments are checked against the tool's input schema before it runs", async () => {
    let called = false;
    const strict = tools([
      {
        name: 'act',
        input_schema: { type: 'object', required: ['v'], properties: { v: { type: 'string' } } },
        run: async () => {
          called = true;
          return { done: true };
        },
      },
    ]);
    const r = await runProgram({
      program: prog,
      input: { value: 7 },
      model: scripted('answers: { classify: [high] }'),
      tools: strict,
      ...det(),
    });
    expect(r.receipt.error?.code).toBe('E_TOOL_INPUT_SCHEMA');
    expect(called).toBe(false);
  });

  it('refuses invalid input before writing any event', async () => {
    const store = new MemoryStore();
    await expect(
      runProgram({ program: prog, input: { value: 'seven' }, model: scripted('answers: {}'), tools: reg, store }),
    ).rejects.toMatchObject({ code: 'E_INPUT_INVALID' });
    expect(await store.listRuns()).toEqual([]);
  });

  it('refuses an invalid program (unknown tool) with the validator codes', async () => {
    const err = await runProgram({
      program: prog,
      input: { value: 1 },
      model: scripted('answers: {}'),
      tools: noTools,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NanoVmError);
    expect((err as NanoVmError).code).toBe('E_PROGRAM_INVALID');
    expect((err as NanoVmError).issues.map((i) => i.code)).toContain('E_UNKNOWN_TOOL');
  });

  it('refuses a scripted model whose answers name steps the program has no llm step for, before any event', async () => {
    const store = new MemoryStore();
    // `clasify` (a typo) and `route` (a condition) would never be asked: the run would silently fall back.
    const script =
      'answers: { clasify: [high], route: [x] }\ncases: { c1: { answers: { classify: [low], act: [y] } } }';
    const err = await runProgram({
      program: prog,
      input: { value: 7 },
      model: scripted(script),
      tools: reg,
      store,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_SCRIPT_UNKNOWN_STEP' });
    expect((err as NanoVmError).message).toContain('answers.clasify, answers.route, cases.c1.answers.act');
    expect((err as NanoVmError).message).toContain('llm steps: classify');
    expect(await store.listRuns()).toEqual([]);
  });

  it('persists every event to the store in order', async () => {
    const store = new MemoryStore();
    const r = await runProgram({
      program: prog,
      input: { value: 7 },
      model: scripted('answers: { classify: [high] }'),
      tools: reg,
      store,
      ...det(),
    });
    expect(await store.events(r.run_id)).toEqual(r.events);
    expect(await store.getRun(r.run_id)).toMatchObject({
      status: 'completed',
      outcome: 'SUCCESS',
      head_hash: r.head_hash,
    });
  });
});

describe('executor: schema outputs, timeouts, errors', () => {
  const prog = program([
    {
      id: 'extract',
      kind: 'llm',
      prompt: 'Extract from {{input.text}}',
      projection: ['input.text'],
      output: {
        schema: {
          type: 'object',
          required: ['amount'],
          properties: { amount: { type: 'number' } },
          additionalProperties: false,
        },
      },
      timeout_ms: 30,
      next: 'ok',
    },
    end('ok', 'SUCCESS'),
  ]);
  const run = (yaml: string) =>
    runProgram({ program: prog, input: { text: 'ten dollars' }, model: scripted(yaml), tools: noTools, ...det() });

  it('accepts JSON inside the schema (also inside a ```json fence)', async () => {
    expect(
      (await run('answers: { extract: [{ json: { amount: 10 } }] }')).events.find((e) => e.type === 'step_completed'),
    ).toMatchObject({ output: { amount: 10 } });
    const fenced = await run('answers: { extract: ["```json\\n{\\"amount\\": 3}\\n```"] }');
    expect(fenced.status).toBe('completed');
  });

  it.each([
    ['malformed JSON', 'answers: { extract: ["{amount: ten"] }', 'E_OUTPUT_MALFORMED'],
    ['schema violation', 'answers: { extract: [{ json: { amount: "ten", extra: 1 } }] }', 'E_OUTPUT_SCHEMA'],
    ['timeout', 'answers: { extract: [{ timeout: true }] }', 'E_TIMEOUT'],
    [
      'provider error',
      'answers: { extract: [{ error: { code: E_MODEL_UNAVAILABLE, message: "503" } }] }',
      'E_MODEL_UNAVAILABLE',
    ],
    ['missing script entry', 'answers: {}', 'E_SCRIPT_MISSING'],
  ])('%s fails the step with %s', async (_name, yaml, code) => {
    const r = await run(yaml);
    expect(r.status).toBe('failed');
    expect(r.receipt.error?.code).toBe(code);
  });
});

describe('model adapters that throw', () => {
  it('an uncoded model exception becomes E_MODEL_ERROR; a coded one keeps its code', async () => {
    const prog = program([
      { id: 'ask', kind: 'llm', prompt: 'x', projection: [], output: { enum: ['a'] }, next: 'done' },
      end('done', 'SUCCESS'),
    ]);
    const plain = {
      id: 'broken',
      scripted: false,
      complete: async () => {
        throw new Error('socket hang up');
      },
    };
    const r = await runProgram({ program: prog, input: {}, model: plain, tools: noTools, ...det() });
    expect(r.receipt.error).toMatchObject({ code: 'E_MODEL_ERROR', message: 'socket hang up', step: 'ask' });
    expect(r.receipt.model.scripted).toBe(false);
  });
});

describe('budgets and bounds', () => {
  const loop = (budgets: object, maxVisits?: number, onExhausted?: string) =>
    program(
      [
        {
          id: 'work',
          kind: 'tool',
          tool: 'same',
          next: 'again',
          ...(maxVisits ? { max_visits: maxVisits } : {}),
          ...(onExhausted ? { on_exhausted: onExhausted } : {}),
        },
        { id: 'again', kind: 'condition', cases: [{ when: 'true', next: 'work' }], else: 'done' },
        end('done', 'SUCCESS'),
        end('gave_up', 'GAVE_UP', true),
      ],
      { budgets },
    );
  const same = tools([{ name: 'same', run: () => ({ n: 1 }) }]);
  const run = (p: ReturnType<typeof loop>) =>
    runProgram({ program: p, input: {}, model: scripted('answers: {}'), tools: same, ...det() });

  it('max_visits with on_exhausted takes the declared edge', async () => {
    const r = await run(loop({ max_stalled_steps: 100 }, 3, 'gave_up'));
    expect(r.outcome).toBe('GAVE_UP');
    expect(r.events.some((e) => e.type === 'visits_exhausted')).toBe(true);
    expect(r.receipt.counts.tool_calls).toBe(3);
  });

  it('max_visits without on_exhausted fails with E_MAX_VISITS', async () => {
    const p = loop({ max_stalled_steps: 100 }, 2);
    p.steps = p.steps.filter((s) => s.id !== 'gave_up');
    const r = await run(p);
    expect(r.status).toBe('failed');
    expect(r.receipt.error?.code).toBe('E_MAX_VISITS');
  });

  it('a loop whose steps change nothing is stalled', async () => {
    const r = await run(loop({ max_stalled_steps: 3 }, 50, 'gave_up'));
    expect(r.status).toBe('stalled');
    expect(r.receipt.budget).toEqual({ name: 'max_stalled_steps', limit: 3, used: 3 });
  });

  it('max_steps is checked at every transition, branches included', async () => {
    const r = await run(loop({ max_steps: 5, max_stalled_steps: 100 }, 50, 'gave_up'));
    expect(r.status).toBe('budget_exceeded');
    expect(r.receipt.budget).toEqual({ name: 'max_steps', limit: 5, used: 5 });
    expect(r.receipt.counts.steps).toBe(5);
  });

  const llmProg = (budgets: object) =>
    program(
      [
        { id: 'ask', kind: 'llm', prompt: 'x', projection: [], output: { enum: ['a'] }, next: 'ask2' },
        { id: 'ask2', kind: 'llm', prompt: 'y', projection: [], output: { enum: ['a'] }, next: 'done' },
        end('done', 'SUCCESS'),
      ],
      { budgets },
    );

  it('max_tokens and max_cost_usd stop the run at the next transition', async () => {
    const m =
      'answers: { ask: [{ raw: a, usage: { input_tokens: 90, output_tokens: 20 }, cost_usd: 0.5 }], ask2: [a] }';
    const t = await runProgram({
      program: llmProg({ max_tokens: 100 }),
      input: {},
      model: scripted(m),
      tools: noTools,
      ...det(),
    });
    expect(t.receipt.budget).toEqual({ name: 'max_tokens', limit: 100, used: 110 });
    const c = await runProgram({
      program: llmProg({ max_cost_usd: 0.25 }),
      input: {},
      model: scripted(m),
      tools: noTools,
      ...det(),
    });
    expect(c.status).toBe('budget_exceeded');
    expect(c.receipt.budget?.name).toBe('max_cost_usd');
  });

  it('max_wall_ms uses the injected clock', async () => {
    let t = 0;
    const clock = { now: () => (t += 1000) };
    const r = await runProgram({
      program: llmProg({ max_wall_ms: 1500 }),
      input: {},
      model: scripted('answers: { ask: [a], ask2: [a] }'),
      tools: noTools,
      clock,
    });
    expect(r.status).toBe('budget_exceeded');
    // Readings 1000 (genesis), 2000 (ask), 3000 (ask2): elapsed 2000 ms at the end step's transition.
    expect(r.receipt.budget).toEqual({ name: 'max_wall_ms', limit: 1500, used: 2000 });
    expect(r.receipt.path).toEqual(['ask', 'ask2']);
  });
});

describe('parallel', () => {
  const prog = program([
    {
      id: 'fan',
      kind: 'parallel',
      max_concurrency: 2,
      children: [
        { id: 'slow', kind: 'tool', tool: 'sleep', args: { ms: { value: 30 } } },
        { id: 'fast', kind: 'tool', tool: 'sleep', args: { ms: { value: 1 } } },
        { id: 'flaky', kind: 'tool', tool: 'flaky', on_error: { action: 'retry', max_attempts: 2 } },
      ],
      next: 'done',
    },
    end('done', 'SUCCESS'),
  ]);
  let inFlight = 0;
  let peak = 0;
  let flakyCalls = 0;
  const reg = tools([
    {
      name: 'sleep',
      run: async (a) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, a.ms as number));
        inFlight--;
        return { slept: a.ms };
      },
    },
    {
      name: 'flaky',
      run: async () => {
        if (++flakyCalls % 2 === 1) throw new Error('transient');
        return { ok: true };
      },
    },
  ]);

  it('records children in declared order regardless of finishing order, and bounds concurrency', async () => {
    const a = await runProgram({ program: prog, input: {}, model: scripted('answers: {}'), tools: reg, ...det() });
    const b = await runProgram({ program: prog, input: {}, model: scripted('answers: {}'), tools: reg, ...det() });
    expect(a.status).toBe('completed');
    const order = a.events
      .filter((e) => e.type === 'step_completed' && e.parent)
      .map((e) => (e as { step: string }).step);
    expect(order).toEqual(['slow', 'fast', 'flaky']);
    expect(a.events.find((e) => e.type === 'step_completed' && e.step === 'fan')).toMatchObject({
      output: { slow: { slept: 30 }, fast: { slept: 1 }, flaky: { ok: true } },
    });
    expect(a.receipt.counts.retries).toBe(1);
    expect(peak).toBeLessThanOrEqual(2);
    expect(a.head_hash).toBe(b.head_hash);
  });
});

describe('projection: the model sees only what its step declares', () => {
  it('masks sensitive fields and never sends governance metadata', async () => {
    const prog = program(
      [
        {
          id: 'ask',
          kind: 'llm',
          prompt: 'Customer {{input.customer}} says {{input.text}}',
          projection: ['input.customer', 'input.text'],
          output: { enum: ['ok'] },
          next: 'done',
        },
        end('done', 'SUCCESS'),
      ],
      {
        sensitive: ['input.customer.email'],
        input_schema: {
          type: 'object',
          properties: {
            text: { type: 'string' },
            secret: { type: 'string' },
            customer: { type: 'object', properties: { email: { type: 'string' }, tier: { type: 'string' } } },
          },
        },
      },
    );
    const model = new RecordingModel(() => 'ok');
    const r = await runProgram({
      program: prog,
      input: { text: 'hello', secret: 'TOPSECRET', customer: { email: 'a@b.c', tier: 'gold' } },
      model,
      tools: noTools,
      ...det(),
    });
    const req = model.requests[0]!;
    expect(req.projection).toEqual({ input: { customer: { email: '[MASKED]', tier: 'gold' }, text: 'hello' } });
    expect(req.prompt).toBe('Customer {"email":"[MASKED]","tier":"gold"} says hello');
    const seen = JSON.stringify(req.prompt) + JSON.stringify(req.projection);
    for (const forbidden of ['TOPSECRET', 'a@b.c', r.run_id, r.events[0]!.hash, 'program_hash', 'budget'])
      expect(seen).not.toContain(forbidden);
  });
});

describe('host contract', () => {
  it('a parallel step whose host returns no result for a child fails with E_NO_RESULT', async () => {
    const { Machine } = await import('@nano-vm/kernel');
    const prog = program([
      { id: 'fan', kind: 'parallel', children: [{ id: 'a', kind: 'tool', tool: 't' }], next: 'done' },
      end('done', 'SUCCESS'),
    ]);
    const m = new Machine(
      prog,
      {},
      {
        runId: 'r',
        hasher: (await import('../src/index.js')).nodeHasher,
        clock: { now: () => 0 },
        runtimeVersion: 't',
        model: { id: 'm', scripted: true },
      },
    );
    expect(m.next().type).toBe('parallel');
    m.completeParallel([[]]);
    expect(m.result).toMatchObject({ status: 'failed', error: { code: 'E_NO_RESULT', step: 'fan' } });
  });
});

describe('a policy that is not one', () => {
  it('refuses the run with E_POLICY_INVALID and the policy issues, every time, before anything is stored', async () => {
    const store = new MemoryStore();
    const notAPolicy = { format: 'nano-vm.policy/v1', version: '1' };
    for (let i = 0; i < 2; i++) {
      const e = await runProgram({
        program: program([end('done', 'SUCCESS')]),
        input: {},
        model: scripted('answers: {}'),
        tools: noTools,
        store,
        policy: notAPolicy,
      }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(NanoVmError);
      expect(e).toMatchObject({
        code: 'E_POLICY_INVALID',
        issues: [expect.objectContaining({ code: 'E_POLICY_INVALID' })],
      });
    }
    expect(await store.listRuns()).toEqual([]);
  });
});
