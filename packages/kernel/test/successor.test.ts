/**
 * The successor function is pure over an immutable run state: deciding again from any earlier
 * state, with the same happening, gives exactly the same events, state and command — so no call
 * changed a state it was handed — and a run driven through it ends in a terminal state or a wait.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  CompiledProgram,
  initialState,
  pureHasher,
  retryOf,
  successor,
  type EffectResult,
  type Happening,
  type Program,
  type RunState,
  type Step,
  type SuccessorEnv,
} from '../src/internal.js';
import { Slots } from '../src/slots.js';

const programArb = fc.integer({ min: 1, max: 7 }).chain((n) =>
  fc
    .tuple(
      fc.array(fc.constantFrom('llm', 'tool', 'condition', 'wait', 'parallel'), { minLength: n, maxLength: n }),
      fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: n, maxLength: n }),
      fc.array(fc.constantFrom('fail', 'retry', 'fallback'), { minLength: n, maxLength: n }),
    )
    .map(([kinds, picks, onErr]): Program => {
      const target = (i: number, pick: number) => {
        const all = [...kinds.keys()].filter((j) => j > i).map((j) => `s${j}`);
        all.push('ok', 'no');
        return all[pick % all.length]!;
      };
      const on_error = (i: number) =>
        onErr[i] === 'retry'
          ? { action: 'retry' as const, max_attempts: 2, then: 'fallback' as const, value: 'b' }
          : onErr[i] === 'fallback'
            ? { action: 'fallback' as const, value: 'b' }
            : undefined;
      const steps: Step[] = kinds.map((kind, i): Step => {
        const [p1, p2] = picks[i]!;
        const id = `s${i}`;
        const oe = on_error(i);
        switch (kind) {
          case 'llm':
            return {
              id,
              kind,
              prompt: 'x {{input.v}}',
              projection: ['input.v'],
              output: { enum: ['a', 'b'] },
              next: target(i, p1),
              ...(oe && { on_error: oe }),
            };
          case 'tool':
            return { id, kind, tool: 't', args: { v: 'input.v' }, next: target(i, p1), ...(oe && { on_error: oe }) };
          case 'condition':
            return { id, kind, cases: [{ when: 'input.v > 0.5', next: target(i, p1) }], else: target(i, p2) };
          case 'wait':
            return {
              id,
              kind,
              event: { type: 'object' },
              timeout_ms: 10,
              on_timeout: target(i, p2),
              next: target(i, p1),
            };
          case 'parallel':
            return {
              id,
              kind,
              children: [
                { id: `${id}a`, kind: 'tool', tool: 't', ...(oe && { on_error: oe }) },
                {
                  id: `${id}b`,
                  kind: 'llm',
                  prompt: 'y',
                  projection: [],
                  output: { enum: ['a', 'b'] },
                  ...(oe && { on_error: oe }),
                },
              ],
              next: target(i, p1),
            };
          default:
            throw new Error(`generator has no ${kind as string}`);
        }
      });
      steps.push({ id: 'ok', kind: 'end', outcome: 'OK' }, { id: 'no', kind: 'end', outcome: 'NO', failure: true });
      return { format: 'nano-vm.program/v1', id: 'p', input_schema: { type: 'object' }, steps };
    }),
);

/** Effect results: good answers, answers outside the type, failures. */
const resultArb = fc.constantFrom<EffectResult>(
  { ok: true, raw: 'a', value: 1 },
  { ok: true, raw: 'zzz', value: 2 },
  { ok: false, error: { code: 'E_TOOL_ERROR', message: 'down' } },
);

function envFor(program: Program): SuccessorEnv {
  let t = 1_000;
  return {
    cp: new CompiledProgram(program),
    runId: 'r',
    hasher: pureHasher,
    clock: { now: () => (t += 3) },
    timestamp: (ms) => new Date(ms).toISOString(),
  };
}

/** The happenings of one run, chosen from the random results; stops at done or after 60 decisions. */
function drive(env: SuccessorEnv, results: EffectResult[], resumeOrExpire: boolean[]) {
  let state = initialState(env.cp, { v: 0.7 }, 1_000, undefined);
  const taken: Array<{ state: RunState; what: Happening; out: string }> = [];
  let what: Happening = { type: 'begin' };
  let r = 0;
  for (let i = 0; i < 60; i++) {
    const t = successor(env, state, what);
    taken.push({ state, what, out: snapshot(t) });
    state = t.state;
    const cmd = t.command!;
    if (cmd.type === 'done') return { taken, state };
    const next = (): EffectResult => results[r++ % results.length]!;
    if (cmd.type === 'llm' || cmd.type === 'tool') what = { type: 'effect', result: next() };
    else if (cmd.type === 'parallel')
      what = {
        type: 'parallel',
        attempts: cmd.children.map((c) => {
          const rs: EffectResult[] = [];
          for (let x: typeof c | null = c; x !== null;) {
            const res = next();
            rs.push(res);
            x = retryOf(env.cp, x, res);
          }
          return rs;
        }),
      };
    else
      what = resumeOrExpire[i % resumeOrExpire.length]
        ? { type: 'resume', event: { payload: { ok: i } } }
        : { type: 'expire' };
  }
  return { taken, state };
}

/** Everything a transition decided, as text (the state's records read out slot by slot). */
function snapshot(t: ReturnType<typeof successor>): string {
  const { records, ...rest } = t.state;
  const slots: unknown[] = [];
  for (let i = 0; i < records.size; i++) slots.push(records.get(i) ?? null);
  return canonicalJson({
    events: t.events.map((e) => ({ body: e.body, ts: e.ts })),
    command: t.command as unknown,
    state: { ...rest, slots },
  } as never);
}

describe('successor', () => {
  it('deciding again from any earlier state gives the same transition (states are never changed)', () => {
    fc.assert(
      fc.property(
        programArb,
        fc.array(resultArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 1 }),
        (program, results, rx) => {
          const env = envFor(program);
          const { taken } = drive(env, results, rx);
          // Same clock readings as the first time: each decision reads the clock as often as it emits.
          for (const { state, what, out } of taken) {
            const again = successor({ ...env, clock: replayClock(out) }, state, what);
            expect(snapshot(again)).toBe(out);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('a run ends in a terminal event or waits, and every step it enters is a step of the program', () => {
    fc.assert(
      fc.property(programArb, fc.array(resultArb, { minLength: 1, maxLength: 6 }), (program, results) => {
        const env = envFor(program);
        const { taken, state } = drive(env, results, [true]);
        expect(state.finished ?? state.pending).not.toBeNull();
        for (const { out } of taken) {
          const { events } = JSON.parse(out) as { events: Array<{ body: { step?: string } }> };
          for (const e of events) if (e.body.step !== undefined) expect(env.cp.slot.has(e.body.step)).toBe(true);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('refuses a result without a pending effect with a coded error, and leaves the state as it was', () => {
    const program: Program = {
      format: 'nano-vm.program/v1',
      id: 'p',
      input_schema: { type: 'object' },
      steps: [{ id: 'done', kind: 'end', outcome: 'OK' }],
    };
    const env = envFor(program);
    const s0 = initialState(env.cp, {}, 1_000, undefined);
    const t = successor(env, s0, { type: 'begin' });
    expect(t.command).toMatchObject({ type: 'done', event: { status: 'completed', outcome: 'OK' } });
    expect(() => successor(env, s0, { type: 'effect', result: { ok: true, raw: 'a' } })).toThrow(
      expect.objectContaining({ code: 'E_INTERNAL' }),
    );
    expect(s0.pending).toBeNull();
    expect(s0.seq).toBe(1);
  });
});

describe('Slots (persistent vector)', () => {
  it('set returns a new vector and leaves every older one as it was, whatever order versions are used in', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3000 }),
        // Each write starts from any version made so far (a branch when it is not the newest).
        fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer()), { maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 100 }),
        (size, writes, readOrder) => {
          const versions: Array<Slots<number>> = [Slots.empty<number>(size)];
          const models: Array<Map<number, number>> = [new Map()];
          for (const [from, at, v] of writes) {
            const k = from % versions.length;
            const i = at % size;
            versions.push(versions[k]!.set(i, v));
            models.push(new Map(models[k]!).set(i, v));
          }
          const check = (k: number) => {
            for (const [i, v] of models[k]!) expect(versions[k]!.get(i)).toBe(v);
            expect(versions[k]!.get(size - 1)).toBe(models[k]!.get(size - 1));
          };
          for (const r of readOrder) check(r % versions.length);
          versions.forEach((_, k) => check(k));
        },
      ),
    );
  });

  it('reads a version a long chain of writes back without deep recursion', () => {
    const first = Slots.empty<number>(4).set(0, -1);
    let v = first;
    for (let k = 0; k < 200_000; k++) v = v.set(k % 4, k);
    expect(first.get(0)).toBe(-1);
    expect(v.get(3)).toBe(199_999);
    expect(first.get(1)).toBeUndefined();
  });

  it('refuses an index outside the vector', () => {
    expect(() => Slots.empty<number>(4).set(4, 1)).toThrow(RangeError);
    expect(() => Slots.empty<number>(4).set(-1, 1)).toThrow(RangeError);
  });
});

/** Hands back the timestamps a transition recorded, one per event, as the first decision read them. */
function replayClock(out: string): { now(): number } {
  const { events } = JSON.parse(out) as { events: Array<{ ts: string }> };
  const times = events.map((e) => Date.parse(e.ts));
  let i = 0;
  return { now: () => times[Math.min(i++, times.length - 1)] ?? 0 };
}
