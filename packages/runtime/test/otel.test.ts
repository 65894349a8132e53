/**
 * OpenTelemetry through RunOptions.onEvent: one span per step attempt under one span per run, on
 * the refund example, recorded with the SDK's in-memory exporter. Without @opentelemetry/api the
 * hook is absent and runs are unchanged.
 */
import { readFileSync } from 'node:fs';
import * as api from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { loadProgram, type Program } from '@nano-vm/kernel';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  FixedClock,
  MemoryStore,
  ScriptedModel,
  SeededIds,
  ToolRegistry,
  loadOtelApi,
  nodeHasher,
  otelEventHook,
  parseModelScript,
  resumeRun,
  runProgram,
  stepSpans,
  toolsFromModule,
  type RunOptions,
} from '../src/internal.js';

const root = new URL('../../../examples/refund/', import.meta.url);
let program: Program;
let tools: ToolRegistry;
const script = parseModelScript(readFileSync(new URL('model.yaml', root), 'utf8'), 'model.yaml');
const input = (name: string) => JSON.parse(readFileSync(new URL(`inputs/${name}.json`, root), 'utf8'));

beforeAll(async () => {
  program = loadProgram(readFileSync(new URL('program.yaml', root), 'utf8')).program!;
  tools = toolsFromModule((await import(new URL('tools.mjs', root).href)) as Record<string, unknown>, 'tools.mjs');
});

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
afterEach(() => {
  exporter.reset();
  api.trace.disable();
});

function run(caseName: string, extra: Partial<RunOptions> = {}) {
  return runProgram({
    program,
    input: input(caseName),
    model: new ScriptedModel(script, caseName),
    tools,
    clock: new FixedClock(),
    ids: new SeededIds(nodeHasher),
    ...extra,
  });
}

const steps = (spans: ReadableSpan[]) => spans.filter((s) => s.name.startsWith('nano-vm.step '));
const ms = (s: ReadableSpan, which: 'startTime' | 'endTime') => s[which][0] * 1000 + s[which][1] / 1e6;

describe('OpenTelemetry spans', () => {
  it('a refund run gives one span per step, children of one run span, with the run and step ids', async () => {
    const r = await run('approve', { onEvent: stepSpans(api, { tracer: provider.getTracer('test') }) });
    const spans = exporter.getFinishedSpans();
    const runSpan = spans.find((s) => s.name === 'nano-vm.run refund')!;
    expect(runSpan.attributes).toMatchObject({
      'nano_vm.run_id': r.run_id,
      'nano_vm.program_id': 'refund',
      'nano_vm.status': 'completed',
      'nano_vm.outcome': 'SUCCESS',
      'nano_vm.end_step_id': 'refunded',
      'nano_vm.model_scripted': true,
    });
    const stepSpans_ = steps(spans);
    expect(stepSpans_.map((s) => s.name)).toEqual([
      'nano-vm.step classify',
      'nano-vm.step decide',
      'nano-vm.step issue_refund',
    ]);
    expect(stepSpans_).toHaveLength(r.receipt.counts.steps);
    for (const s of stepSpans_) {
      expect(s.attributes['nano_vm.run_id']).toBe(r.run_id);
      expect(s.name).toBe(`nano-vm.step ${s.attributes['nano_vm.step_id']}`);
      expect(s.parentSpanContext?.spanId).toBe(runSpan.spanContext().spanId);
      expect(s.spanContext().traceId).toBe(runSpan.spanContext().traceId);
      expect(s.status.code).toBe(api.SpanStatusCode.UNSET);
    }
    const [classify, decide, refund] = stepSpans_ as [ReadableSpan, ReadableSpan, ReadableSpan];
    const answered = r.events.find((e) => e.type === 'step_completed' && e.step === 'classify')!;
    expect(classify.attributes).toMatchObject({
      'nano_vm.step_kind': 'llm',
      'nano_vm.attempt': 1,
      'nano_vm.status': 'completed',
      'nano_vm.next': 'decide',
      'nano_vm.input_tokens': r.receipt.model.input_tokens,
      'nano_vm.output_tokens': r.receipt.model.output_tokens,
    });
    expect(decide.attributes).toMatchObject({
      'nano_vm.step_kind': 'condition',
      'nano_vm.chosen_case': 0,
      'nano_vm.next': 'issue_refund',
    });
    expect(refund.attributes).toMatchObject({
      'nano_vm.step_kind': 'tool',
      'nano_vm.tool': 'issue_refund',
      'nano_vm.attempt': 1,
      'nano_vm.status': 'completed',
      'nano_vm.next': 'refunded',
    });
    // Span times are the events' timestamps.
    expect(ms(classify, 'endTime')).toBe(Date.parse(answered.ts));
    expect(ms(runSpan, 'startTime')).toBe(Date.parse(r.events[0]!.ts));
    expect(ms(runSpan, 'endTime')).toBe(Date.parse(r.events[r.events.length - 1]!.ts));
    const started = r.events.find((e) => e.type === 'step_started')!;
    expect(ms(refund, 'startTime')).toBe(Date.parse(started.ts));
  });

  it('a rejected answer is its own span with error status, and the retry is an event on the run span', async () => {
    const r = await run('injection', { onEvent: stepSpans(api, { tracer: provider.getTracer('test') }) });
    const spans = exporter.getFinishedSpans();
    const classify = steps(spans).filter((s) => s.attributes['nano_vm.step_id'] === 'classify');
    expect(
      classify.map((s) => [s.attributes['nano_vm.attempt'], s.attributes['nano_vm.status'], s.status.code]),
    ).toEqual([
      [1, 'failed', api.SpanStatusCode.ERROR],
      [2, 'completed', api.SpanStatusCode.UNSET],
    ]);
    expect(classify[0]!.attributes['nano_vm.error_code']).toBe('E_OUTPUT_NOT_IN_ENUM');
    expect(classify[0]!.status.message).toMatch(/^E_OUTPUT_NOT_IN_ENUM: /);
    const runSpan = spans.find((s) => s.name.startsWith('nano-vm.run'))!;
    expect(runSpan.events.map((e) => [e.name, e.attributes?.['nano_vm.step_id']])).toEqual([
      ['nano_vm.step_retry', 'classify'],
    ]);
    expect(runSpan.attributes['nano_vm.outcome']).toBe('NEEDS_HUMAN_REVIEW');
    expect(steps(spans)).toHaveLength(r.receipt.counts.steps + r.receipt.counts.retries);
  });

  it('a failed run: every failed tool attempt and the run span carry error status', async () => {
    const failing = new ToolRegistry([
      {
        name: 'issue_refund',
        run: async () => {
          throw Object.assign(new Error('payment provider down'), { code: 'E_PSP_DOWN' });
        },
      },
    ]);
    const r = await run('approve', { tools: failing, onEvent: stepSpans(api, { tracer: provider.getTracer('test') }) });
    expect(r.status).toBe('failed');
    const spans = exporter.getFinishedSpans();
    const refund = steps(spans).filter((s) => s.attributes['nano_vm.step_id'] === 'issue_refund');
    expect(
      refund.map((s) => [s.attributes['nano_vm.attempt'], s.attributes['nano_vm.error_code'], s.status.code]),
    ).toEqual([1, 2, 3].map((a) => [a, 'E_PSP_DOWN', api.SpanStatusCode.ERROR]));
    const runSpan = spans.find((s) => s.name.startsWith('nano-vm.run'))!;
    expect(runSpan.status).toMatchObject({
      code: api.SpanStatusCode.ERROR,
      message: expect.stringContaining('E_PSP_DOWN'),
    });
    expect(runSpan.attributes).toMatchObject({ 'nano_vm.status': 'failed', 'nano_vm.error_code': 'E_PSP_DOWN' });
  });

  it('otelEventHook uses the globally registered SDK, and keeps concurrent runs apart', async () => {
    api.trace.setGlobalTracerProvider(provider);
    const onEvent = await otelEventHook();
    expect(onEvent).toBeTypeOf('function');
    const [a, b] = await Promise.all([run('approve', { onEvent }), run('deny', { onEvent })]);
    const spans = exporter.getFinishedSpans();
    for (const r of [a, b]) {
      const mine = spans.filter((s) => s.attributes['nano_vm.run_id'] === r.run_id);
      const runSpan = mine.find((s) => s.name.startsWith('nano-vm.run'))!;
      expect(steps(mine).map((s) => s.attributes['nano_vm.step_id'])).toEqual(r.receipt.path.slice(0, -1));
      for (const s of steps(mine)) expect(s.parentSpanContext?.spanId).toBe(runSpan.spanContext().spanId);
      expect(runSpan.instrumentationScope.name).toBe('nano-vm');
    }
  });

  it('a run that suspends at a wait ends its run span as suspended; the resume continues under a continuation span', async () => {
    const waitProgram = loadProgram(
      [
        'format: nano-vm.program/v1',
        'id: approval',
        'input_schema: { type: object }',
        'steps:',
        '  - { id: approval, kind: wait, role: ops, event: { type: object }, next: pay }',
        '  - { id: pay, kind: tool, tool: pay, next: done }',
        '  - { id: done, kind: end, outcome: PAID }',
      ].join('\n'),
    ).program!;
    const payTools = new ToolRegistry([{ name: 'pay', run: async () => ({ ok: true }) }]);
    const store = new MemoryStore();
    const onEvent = stepSpans(api, { tracer: provider.getTracer('test') });
    const model = new ScriptedModel(parseModelScript('answers: {}', 'none'));
    const first = await runProgram({
      program: waitProgram,
      input: {},
      model,
      tools: payTools,
      store,
      clock: new FixedClock(),
      ids: new SeededIds(nodeHasher),
      onEvent,
    });
    expect(first.status).toBe('suspended');
    const suspendedRun = exporter.getFinishedSpans().find((x) => x.name === 'nano-vm.run approval')!;
    expect(suspendedRun.attributes).toMatchObject({
      'nano_vm.status': 'suspended',
      'nano_vm.waiting_step_id': 'approval',
      'nano_vm.waiting_role': 'ops',
    });
    const done = await resumeRun({
      store,
      runId: first.run_id,
      event: { payload: {}, role: 'ops', event_id: 'hook-7' },
      model,
      tools: payTools,
      onEvent,
    });
    expect(done.outcome).toBe('PAID');
    const spans = exporter.getFinishedSpans();
    const cont = spans.find((x) => x.name === 'nano-vm.run (continued)')!;
    expect(cont.attributes).toMatchObject({
      'nano_vm.run_id': first.run_id,
      'nano_vm.continued': true,
      'nano_vm.status': 'completed',
      'nano_vm.outcome': 'PAID',
    });
    const after = steps(spans).filter((x) => x.parentSpanContext?.spanId === cont.spanContext().spanId);
    expect(after.map((x) => [x.attributes['nano_vm.step_id'], x.attributes['nano_vm.status']])).toEqual([
      ['approval', 'resumed'],
      ['pay', 'completed'],
    ]);
    expect(after[0]!.attributes).toMatchObject({
      'nano_vm.step_kind': 'wait',
      'nano_vm.role': 'ops',
      'nano_vm.event_id': 'hook-7',
      'nano_vm.next': 'pay',
    });
  });

  it('without @opentelemetry/api there is no hook, and runs are unchanged', async () => {
    const missing = () =>
      Promise.reject(
        Object.assign(new Error("Cannot find package '@opentelemetry/api'"), { code: 'ERR_MODULE_NOT_FOUND' }),
      );
    expect(await loadOtelApi(missing)).toBeNull();
    const onEvent = await otelEventHook({}, missing);
    expect(onEvent).toBeUndefined();
    const plain = await run('injection', onEvent ? { onEvent } : {});
    const traced = await run('injection', { onEvent: stepSpans(api, { tracer: provider.getTracer('test') }) });
    expect(traced.head_hash).toBe(plain.head_hash);
    expect(traced.receipt).toEqual(plain.receipt);
    // A broken installation is reported, not silently ignored.
    await expect(loadOtelApi(() => Promise.reject(new SyntaxError('bad build')))).rejects.toThrow('bad build');
    expect((await loadOtelApi())?.trace).toBe(api.trace);
  });
});
