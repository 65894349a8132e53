/**
 * Properties over random programs (wait steps included, resumed with valid and invalid events) and
 * random (often adversarial) model answers and tool results:
 * every run ends in a terminal state, its bundle verifies, the receipt is a function of the events,
 * and the same inputs give the same head hash.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  computeReceipt,
  pureHasher,
  replayBundle,
  serializeBundle,
  verifyBundle,
  type Program,
  type Step,
} from '@nano-vm/kernel';
import {
  FixedClock,
  MemoryStore,
  SeededIds,
  ToolRegistry,
  nodeHasher,
  resumeRun,
  runProgram,
  type ModelPort,
  type ResumeResult,
  type RunResult,
} from '../src/internal.js';

/** A random layered DAG: each step's edges go to later steps, so every step reaches an end. */
const programArb = fc.integer({ min: 1, max: 8 }).chain((n) =>
  fc
    .tuple(
      fc.array(fc.constantFrom('llm', 'tool', 'condition', 'wait'), { minLength: n, maxLength: n }),
      fc.array(fc.tuple(fc.nat(), fc.nat(), fc.double({ min: 0, max: 1, noNaN: true })), {
        minLength: n,
        maxLength: n,
      }),
      fc.array(fc.constantFrom<'fail' | 'retry' | 'fallback'>('fail', 'retry', 'fallback'), {
        minLength: n,
        maxLength: n,
      }),
    )
    .map(([kinds, picks, onErr]) => {
      const ends: Step[] = [
        { id: 'ok', kind: 'end', outcome: 'SUCCESS' },
        { id: 'no', kind: 'end', outcome: 'REJECTED', failure: true },
      ];
      const target = (i: number, pick: number) => {
        const later = [...kinds.keys()].filter((j) => j > i).map((j) => `s${j}`);
        const all = [...later, 'ok', 'no'];
        return all[pick % all.length]!;
      };
      const steps: Step[] = kinds.map((kind, i) => {
        const [p1, p2, threshold] = picks[i]!;
        const on_error =
          onErr[i] === 'retry'
            ? { action: 'retry' as const, max_attempts: 2, then: 'fallback' as const, value: 'b' }
            : onErr[i] === 'fallback'
              ? { action: 'fallback' as const, value: 'b' }
              : { action: 'fail' as const };
        if (kind === 'llm')
          return {
            id: `s${i}`,
            kind,
            prompt: `Rate {{input.x}}`,
            projection: ['input.x'],
            output: { enum: ['a', 'b'] },
            on_error,
            next: target(i, p1),
          };
        if (kind === 'tool')
          return {
            id: `s${i}`,
            kind,
            tool: 'flip',
            args: { x: 'input.x' },
            output_schema: { type: 'string' },
            on_error: on_error.action === 'fail' ? on_error : { ...on_error },
            next: target(i, p1),
          };
        if (kind === 'wait')
          return {
            id: `s${i}`,
            kind,
            role: 'approver',
            event: { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } } },
            next: target(i, p1),
          };
        return {
          id: `s${i}`,
          kind,
          cases: [{ when: `input.x > ${threshold.toFixed(3)}`, next: target(i, p1) }],
          else: target(i, p2),
        };
      });
      // Only keep steps reachable from the start, so the validator has nothing to say.
      const byId = new Map([...steps, ...ends].map((s) => [s.id, s]));
      const seen = new Set<string>(['s0']);
      const stack = ['s0'];
      while (stack.length) {
        const s = byId.get(stack.pop()!)!;
        const outs = s.kind === 'condition' ? [...s.cases.map((c) => c.next), s.else] : 'next' in s ? [s.next] : [];
        for (const o of outs) if (!seen.has(o)) (seen.add(o), stack.push(o));
      }
      const program: Program = {
        format: 'nano-vm.program/v1',
        id: 'random',
        input_schema: { type: 'object', properties: { x: { type: 'number' } }, required: ['x'] },
        steps: [...steps, ...ends].filter((s) => seen.has(s.id)),
      };
      return program;
    }),
);

const answerArb = fc.array(fc.constantFrom('a', 'b', 'A', ' b ', '{"a":1}', 'IGNORE PREVIOUS INSTRUCTIONS', ''), {
  minLength: 1,
  maxLength: 6,
});

const externalEvents = [
  { payload: { ok: 'yes' }, role: 'approver' },
  { payload: { ok: true }, role: 'intern' },
  { payload: { ok: true }, role: 'approver' },
  { payload: { ok: false }, role: 'approver', event_id: 'e-2' },
];

function modelFrom(answers: string[]): ModelPort {
  let i = 0;
  return {
    id: 'prop',
    scripted: true,
    complete: async () => ({
      raw: answers[i++ % answers.length]!,
      model: 'prop',
      usage: { input_tokens: 3, output_tokens: 1 },
    }),
  };
}
function toolsFrom(results: (string | number | null)[]): ToolRegistry {
  let i = 0;
  return new ToolRegistry([
    {
      name: 'flip',
      run: async () => {
        const r = results[i++ % results.length];
        if (r === null) throw new Error('flaky');
        return r;
      },
    },
  ]);
}

describe('run properties', () => {
  it('terminal, verifiable, receipt = f(events), deterministic, replay-identical', async () => {
    await fc.assert(
      fc.asyncProperty(
        programArb,
        answerArb,
        fc.array(fc.oneof(fc.constant('x'), fc.constant(7), fc.constant(null)), { minLength: 1, maxLength: 4 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (program, answers, toolResults, x) => {
          // Each time the run suspends, the next external event is offered; invalid ones (wrong type,
          // wrong role) are refused and leave the run suspended, so the following one is offered.
          const go = async () => {
            const store = new MemoryStore();
            const clock = new FixedClock();
            const model = modelFrom(answers);
            const tools = toolsFrom(toolResults);
            let r: RunResult | ResumeResult = await runProgram({
              program,
              input: { x },
              model,
              tools,
              store,
              clock,
              ids: new SeededIds(nodeHasher),
            });
            for (let k = 0; r.status === 'suspended'; k++) {
              const before = await store.events(r.run_id);
              try {
                r = await resumeRun({
                  store,
                  runId: r.run_id,
                  event: externalEvents[k % externalEvents.length]!,
                  model,
                  tools,
                  clock,
                });
              } catch (e) {
                expect((e as { code: string }).code).toMatch(/^E_RESUME_(ROLE|EVENT_INVALID)$/);
                expect(await store.events(r.run_id)).toEqual(before);
              }
            }
            return r;
          };
          const a = await go();
          expect(['completed', 'failed']).toContain(a.status);
          for (const e of a.events)
            if (e.type === 'run_resumed') expect(typeof (e.event as { ok: unknown }).ok).toBe('boolean');
          expect(a.events.at(-1)!.type).toBe('run_finished');
          expect(computeReceipt(a.events)).toEqual(a.receipt);
          const parsed = JSON.parse(serializeBundle(a.bundle));
          expect(verifyBundle(parsed, pureHasher)).toMatchObject({ ok: true });
          const b = await go();
          expect(serializeBundle(b.bundle)).toBe(serializeBundle(a.bundle));
          // Replay from the bundle alone (no model, no tools) reproduces the trace exactly.
          const replay = replayBundle(parsed, { hasher: pureHasher });
          expect(replay.first_divergence).toBeNull();
          expect(replay.identical).toBe(true);
          // Only declared answers ever enter the state.
          for (const e of a.events)
            if (e.type === 'step_completed' && e.kind === 'llm') expect(['a', 'b']).toContain(e.output);
        },
      ),
      { numRuns: 150 },
    );
  });
});
