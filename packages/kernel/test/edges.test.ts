/**
 * The edge table (edges.ts): what it lists for each step kind; that it is exactly what the document
 * declares (read field by field, independently); and that it agrees with the machine — every
 * transition a run records is an edge of the table (with the same kind and case), and every edge of
 * the table is one some run takes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { edgeTable, type Edge, type EdgeVia } from '../src/edges.js';
import { hashJson, pureHasher } from '../src/hash.js';
import { Machine } from '../src/machine.js';
import type { EffectResult } from '../src/command.js';
import type { Program, Step } from '../src/program.js';
import type { TraceEvent } from '../src/events.js';

const everyKind: Program = {
  format: 'nano-vm.program/v1',
  id: 'kinds',
  input_schema: true,
  start: 'ask',
  steps: [
    {
      id: 'ask',
      kind: 'llm',
      prompt: 'p',
      projection: [],
      output: { enum: ['a'] },
      next: 'call',
      max_visits: 2,
      on_exhausted: 'done',
    },
    { id: 'call', kind: 'tool', tool: 't', next: 'route' },
    {
      id: 'route',
      kind: 'condition',
      cases: [
        { when: 'input.n > 1', next: 'both' },
        { when: 'input.n > 0', next: 'hold' },
      ],
      else: 'ask',
    },
    { id: 'both', kind: 'parallel', children: [{ id: 'x', kind: 'tool', tool: 't' }], next: 'done' },
    { id: 'hold', kind: 'wait', event: true, timeout_ms: 1000, on_timeout: 'done', next: 'done' },
    { id: 'done', kind: 'end', outcome: 'OK' },
  ],
};

describe('edgeTable', () => {
  it('lists every edge with its kind, case, guard and the pointer of its field, in field order', () => {
    const t = edgeTable(everyKind);
    expect(t.start).toBe('ask');
    expect(t.edges).toEqual([
      { from: 'ask', to: 'call', via: 'next', path: '/steps/0/next' },
      { from: 'ask', to: 'done', via: 'on_exhausted', path: '/steps/0/on_exhausted' },
      { from: 'call', to: 'route', via: 'next', path: '/steps/1/next' },
      { from: 'route', to: 'both', via: 'case', case: 0, guard: 'input.n > 1', path: '/steps/2/cases/0/next' },
      { from: 'route', to: 'hold', via: 'case', case: 1, guard: 'input.n > 0', path: '/steps/2/cases/1/next' },
      { from: 'route', to: 'ask', via: 'else', path: '/steps/2/else' },
      { from: 'both', to: 'done', via: 'next', path: '/steps/3/next' },
      { from: 'hold', to: 'done', via: 'next', path: '/steps/4/next' },
      { from: 'hold', to: 'done', via: 'on_timeout', path: '/steps/4/on_timeout' },
    ]);
    expect(t.from('route').map((e) => e.to)).toEqual(['both', 'hold', 'ask']);
    expect(t.at(5)).toEqual([]);
  });

  it('has no edges for an unknown id or index, and uses the first declaration of a duplicated id', () => {
    const dup: Program = {
      ...everyKind,
      steps: [...everyKind.steps, { id: 'call', kind: 'tool', tool: 't', next: 'ask' }],
    };
    const t = edgeTable(dup);
    expect(t.from('nowhere')).toEqual([]);
    expect(t.at(99)).toEqual([]);
    expect(t.from('call').map((e) => e.to)).toEqual(['route']);
    expect(t.at(6).map((e) => e.path)).toEqual(['/steps/6/next']);
  });

  it('starts at the first step without `start`, and has no start without steps', () => {
    const { start: _, ...rest } = everyKind;
    expect(edgeTable(rest).start).toBe('ask');
    expect(edgeTable({ ...rest, steps: [] }).start).toBeUndefined();
  });

  it('is built once per program object', () => {
    expect(edgeTable(everyKind)).toBe(edgeTable(everyKind));
    expect(edgeTable(structuredClone(everyKind))).not.toBe(edgeTable(everyKind));
  });
});

// ---- Generated programs, driven through the real machine ----

const END_IDS = ['ok', 'bad'];

/**
 * Small programs with every step kind and arbitrary edges (back edges and self loops included).
 * Case k of a condition holds exactly when input.route == k, so every case can be taken.
 */
const anyProgram = fc
  .record({
    n: fc.integer({ min: 1, max: 6 }),
    picks: fc.array(fc.nat(), { minLength: 80, maxLength: 80 }),
  })
  .map(({ n, picks }) => {
    let at = 0;
    const pick = (k: number): number => picks[at++ % picks.length]! % k;
    const ids = Array.from({ length: n }, (_, i) => `s${i}`);
    const target = (): string => [...ids, ...END_IDS][pick(n + END_IDS.length)]!;
    // on_exhausted only leads forward: a cycle of on_exhausted edges alone would loop without
    // entering a step (the validator refuses it as E_UNBOUNDED_CYCLE).
    const forward = (i: number): string => [...ids.slice(i + 1), ...END_IDS][pick(n - i - 1 + END_IDS.length)]!;
    const steps: Step[] = ids.map((id, i) => {
      const kind = (['llm', 'tool', 'condition', 'parallel', 'wait'] as const)[pick(5)]!;
      const bound = pick(3) === 0 ? {} : { max_visits: 1 + pick(2), ...(pick(2) ? { on_exhausted: forward(i) } : {}) };
      switch (kind) {
        case 'llm':
          return { id, kind, prompt: 'p', projection: [], output: { enum: ['a', 'b'] }, next: target(), ...bound };
        case 'tool':
          return { id, kind, tool: 't', next: target(), ...bound };
        case 'condition':
          return {
            id,
            kind,
            cases: Array.from({ length: 1 + pick(3) }, (_, k) => ({ when: `input.route == ${k}`, next: target() })),
            else: target(),
            ...bound,
          };
        case 'parallel':
          return { id, kind, children: [{ id: `${id}_c`, kind: 'tool', tool: 't' }], next: target(), ...bound };
        case 'wait':
          return {
            id,
            kind,
            event: true,
            next: target(),
            timeout_ms: 1000,
            ...(pick(2) ? { on_timeout: target() } : {}),
            ...bound,
          };
        default: {
          const _exhaustive: never = kind;
          throw new Error(String(_exhaustive));
        }
      }
    });
    const program: Program = {
      format: 'nano-vm.program/v1',
      id: 'generated',
      input_schema: true,
      budgets: { max_steps: 40 },
      steps: [
        ...steps,
        { id: 'ok', kind: 'end', outcome: 'OK' },
        { id: 'bad', kind: 'end', outcome: 'BAD', failure: true },
      ],
    };
    return program;
  });

type Taken = { from: string; to: string; via: EdgeVia; case?: number };

/** The transitions a trace records, with the kind of edge each one took. */
function transitions(events: readonly TraceEvent[]): Taken[] {
  const out: Taken[] = [];
  for (const e of events) {
    if (e.type === 'condition_evaluated' && e.next !== '')
      out.push(
        e.chosen >= 0
          ? { from: e.step, to: e.next, via: 'case', case: e.chosen }
          : { from: e.step, to: e.next, via: 'else' },
      );
    else if (
      (e.type === 'step_completed' || e.type === 'step_fallback') &&
      e.parent === undefined &&
      e.next !== undefined
    )
      out.push({ from: e.step, to: e.next, via: 'next' });
    else if (e.type === 'run_resumed') out.push({ from: e.step, to: e.next, via: 'next' });
    else if (e.type === 'visits_exhausted' && e.next !== undefined)
      out.push({ from: e.step, to: e.next, via: 'on_exhausted' });
    else if (e.type === 'wait_timed_out' && e.next !== undefined)
      out.push({ from: e.step, to: e.next, via: 'on_timeout' });
  }
  return out;
}

const key = (e: Taken | Edge): string => `${e.from}>${e.to}:${e.via}${e.case !== undefined ? `#${e.case}` : ''}`;

function machineFor(program: Program, input: unknown): Machine {
  let t = Date.UTC(2026, 0, 1);
  return new Machine(program, input, {
    runId: 'r',
    hasher: pureHasher,
    clock: { now: () => t++ },
    runtimeVersion: 'test',
    model: { id: 'scripted', scripted: true },
    policyHash: hashJson(pureHasher, null),
  });
}

/** Drive a run to its end, each choice (answer, tool result, resume or timeout) taken from `choices`. */
function drive(program: Program, route: number, choices: readonly number[]): TraceEvent[] {
  const m = machineFor(program, { route });
  let at = 0;
  const choose = (k: number): number => choices[at++ % choices.length]! % k;
  const result = (kind: 'llm' | 'tool'): EffectResult =>
    choose(4) === 0
      ? { ok: false, error: { code: 'E_TOOL_ERROR', message: 'no' } }
      : kind === 'llm'
        ? { ok: true, raw: choose(2) ? 'a' : 'b' }
        : { ok: true, value: { v: choose(3) } };
  for (let i = 0; i < 200; i++) {
    const c = m.next();
    if (c.type === 'done') break;
    if (c.type === 'llm' || c.type === 'tool') m.complete(result(c.type));
    else if (c.type === 'parallel') m.completeParallel(c.children.map((child) => [result(child.type)]));
    else if (choose(2) === 0) m.resume({ payload: { v: choose(3) } });
    else m.expire();
  }
  return m.events;
}

/** The edges a program declares, read field by field from the document (not through edges.ts). */
function declared(p: Program): string[] {
  const out: string[] = [];
  for (const s of p.steps) {
    const fields = s as unknown as Record<string, unknown>;
    for (const via of ['next', 'else', 'on_timeout', 'on_exhausted'] as const) {
      const to = fields[via];
      if (typeof to === 'string') out.push(key({ from: s.id, to, via }));
    }
    const cases = fields.cases as Array<{ next: string }> | undefined;
    cases?.forEach((c, k) => out.push(key({ from: s.id, to: c.next, via: 'case', case: k })));
  }
  return out.sort();
}

describe('the edge table is the program', () => {
  it('lists exactly the edges the document declares, each once', () => {
    fc.assert(
      fc.property(anyProgram, (p) => {
        expect(edgeTable(p).edges.map(key).sort()).toEqual(declared(p));
      }),
      { numRuns: 300 },
    );
  });
});

describe('the edge table and the machine agree', () => {
  it('every transition a run takes is an edge of the table, of the same kind', () => {
    fc.assert(
      fc.property(
        anyProgram,
        fc.integer({ min: -1, max: 2 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 30 }),
        (p, route, choices) => {
          const edges = new Set(edgeTable(p).edges.map(key));
          for (const taken of transitions(drive(p, route, choices))) expect(edges).toContain(key(taken));
        },
      ),
      { numRuns: 400 },
    );
  });

  it('every edge of the table is taken by some run', () => {
    fc.assert(
      fc.property(anyProgram, (p) => {
        for (const edge of edgeTable(p).edges) expect(transitions(takeEdge(p, edge)).map(key)).toContain(key(edge));
      }),
      { numRuns: 200 },
    );
  });
});

/**
 * A run that takes `edge`: it starts at the edge's step and answers so that this edge follows.
 * An on_exhausted edge needs its step entered once more than max_visits, so the step's other edges
 * are turned back to itself (the edge under test is untouched).
 */
function takeEdge(p: Program, edge: Edge): TraceEvent[] {
  const index = Number(edge.path.split('/')[2]);
  let steps = p.steps;
  if (edge.via === 'on_exhausted') {
    const self = edge.from;
    const s = structuredClone(p.steps[index]!);
    s.max_visits = 1;
    if (s.kind === 'condition') {
      s.cases = s.cases.map((c) => ({ ...c, next: self }));
      s.else = self;
    } else if (s.kind !== 'end') {
      s.next = self;
      if (s.kind === 'wait' && s.on_timeout !== undefined) s.on_timeout = self;
    }
    steps = p.steps.map((x, i) => (i === index ? s : x));
  }
  const m = machineFor({ ...p, start: edge.from, steps }, { route: edge.via === 'case' ? edge.case : -1 });
  for (let i = 0; i < 4; i++) {
    const c = m.next();
    if (c.type === 'done') break;
    if (c.type === 'llm') m.complete({ ok: true, raw: 'a' });
    else if (c.type === 'tool') m.complete({ ok: true, value: {} });
    else if (c.type === 'parallel') m.completeParallel(c.children.map(() => [{ ok: true, value: {} }]));
    else if (edge.via === 'on_timeout') m.expire();
    else m.resume({ payload: {} });
  }
  return m.events;
}
