import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { edgeTable } from '../src/edges.js';
import type { Program, Step } from '../src/program.js';
import { validateProgram } from '../src/validate.js';

const INPUT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: { n: { type: 'number' }, flag: { type: 'boolean' }, note: { type: 'string' } },
};

function programOf(steps: Step[], start?: string): Program {
  return {
    format: 'nano-vm.program/v1',
    id: 'generated',
    input_schema: INPUT_SCHEMA,
    ...(start !== undefined ? { start } : {}),
    steps,
  };
}

const ENDS: Step[] = [
  { id: 'ok', kind: 'end', outcome: 'OK' },
  { id: 'failed', kind: 'end', outcome: 'FAILED', failure: true },
];

/** A step of every non-end kind, cycling, each reading declared fields of earlier steps. */
function chainStep(i: number, next: string): Step {
  const id = `s${i}`;
  const prev = `s${i - 1}`;
  switch (i % 4) {
    case 0:
      return {
        id,
        kind: 'llm',
        prompt: 'n={{input.n}}',
        projection: ['input.n', ...(i > 0 ? [`steps.${prev}.output`] : [])],
        output: { enum: ['a', 'b'] },
        next,
      };
    case 1:
      return {
        id,
        kind: 'tool',
        tool: 'lookup',
        args: { n: 'input.n', answer: `steps.${prev}.output`, mode: { value: 'fast' } },
        output_schema: { type: 'object', additionalProperties: false, properties: { score: { type: 'number' } } },
        next,
      };
    case 2:
      return {
        id,
        kind: 'condition',
        cases: [{ when: `steps.${prev}.output.score > 0.5 && input.flag`, next: 'failed' }],
        else: next,
      };
    default:
      return {
        id,
        kind: 'parallel',
        children: [{ id: `${id}_c`, kind: 'tool', tool: 'lookup', args: { n: 'input.n' } }],
        next,
      };
  }
}

function linear(n: number): Step[] {
  const steps: Step[] = [];
  for (let i = 0; i < n; i++) steps.push(chainStep(i, i + 1 < n ? `s${i + 1}` : 'ok'));
  return [...steps, ...ENDS];
}

describe('large programs (iterative graph algorithms, no recursion)', () => {
  it('validates a 100,000-step linear program with no issues', () => {
    const p = programOf(linear(100_000));
    expect(validateProgram(p, { tools: { lookup: {} } })).toEqual([]);
  });

  it('validates a 100,000-step program with many branches with no issues', () => {
    // Condition steps fan out to up to four later steps; every step is still on the spine.
    let seed = 42;
    const rand = (k: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % k;
    };
    const n = 100_000;
    const steps: Step[] = [];
    for (let i = 0; i < n; i++) {
      const next = i + 1 < n ? `s${i + 1}` : 'ok';
      if (i % 2 === 1) {
        steps.push({ id: `s${i}`, kind: 'tool', tool: 'lookup', next });
        continue;
      }
      const cases = Array.from({ length: 1 + rand(4) }, () => {
        const j = i + 1 + rand(500);
        return { when: 'input.flag', next: j < n ? `s${j}` : 'failed' };
      });
      steps.push({ id: `s${i}`, kind: 'condition', cases, else: next });
    }
    expect(validateProgram(programOf([...steps, ...ENDS]))).toEqual([]);
  });

  it('finds one unbounded cycle through 100,000 steps, and accepts it once bounded', () => {
    const steps = linear(100_000);
    const last = steps[99_999] as Extract<Step, { kind: 'parallel' }>;
    last.next = 's0';
    const issues = validateProgram(programOf(steps));
    expect(issues.map((i) => [i.code, i.path])).toEqual([
      ['E_UNBOUNDED_CYCLE', '/steps/0'],
      ['E_UNREACHABLE', '/steps/100000'],
    ]);
    expect(issues[0]!.message).toContain('and 99992 more');
    steps[0]!.max_visits = 5;
    steps[0]!.on_exhausted = 'ok';
    expect(validateProgram(programOf(steps))).toEqual([]);
  });

  it('reports E_NO_TERMINAL for every step of a 50,000-step trap', () => {
    const n = 50_000;
    const steps: Step[] = Array.from({ length: n }, (_, i) => ({
      id: `s${i}`,
      kind: 'tool',
      tool: 'lookup',
      next: `s${(i + 1) % n}`,
    }));
    steps[0]!.max_visits = 2;
    const gate: Step = { id: 'gate', kind: 'condition', cases: [{ when: 'input.flag', next: 's0' }], else: 'failed' };
    const issues = validateProgram(programOf([gate, ...steps, ...ENDS], 'gate'));
    expect(issues.map((i) => i.code).filter((c) => c !== 'E_NO_TERMINAL')).toEqual(['E_UNREACHABLE']);
    expect(issues.filter((i) => i.code === 'E_NO_TERMINAL')).toHaveLength(n);
  });
});

/** Random DAG programs: a spine s0 -> s1 -> ... -> gate keeps every step reachable; extra edges go forward only. */
const dagProgram = fc
  .record({
    kinds: fc.array(fc.constantFrom('llm', 'tool', 'condition', 'parallel'), { minLength: 1, maxLength: 25 }),
    picks: fc.array(fc.nat(), { minLength: 64, maxLength: 64 }),
    bounded: fc.array(fc.boolean(), { minLength: 25, maxLength: 25 }),
    order: fc.array(fc.nat(), { minLength: 30, maxLength: 30 }),
  })
  .map(({ kinds, picks, bounded, order }) => {
    let k = 0;
    const pick = (n: number): number => picks[k++ % picks.length]! % n;
    const n = kinds.length;
    const ids = kinds.map((_, i) => `s${i}`);
    const later = (i: number): string => {
      const j = i + 1 + pick(n - i);
      return j < n ? ids[j]! : pick(2) === 0 ? 'ok' : 'gate';
    };
    const outputs: string[] = [];
    const steps: Step[] = kinds.map((kind, i) => {
      const next = i + 1 < n ? ids[i + 1]! : 'gate';
      const id = ids[i]!;
      const earlier = outputs.length > 0 ? outputs[pick(outputs.length)] : undefined;
      const common = bounded[i] ? { max_visits: 1 + pick(3) } : {};
      let step: Step;
      if (kind === 'llm') {
        step = {
          id,
          kind,
          prompt: '{{input.note}}',
          projection: ['input.note', ...(earlier ? [earlier] : [])],
          output: pick(2)
            ? { enum: ['a', 'b'] }
            : { schema: { type: 'object', properties: { v: { type: 'number' } } } },
          next,
          ...common,
        };
      } else if (kind === 'tool') {
        step = {
          id,
          kind,
          tool: 'lookup',
          args: { n: 'input.n', ...(earlier ? { prev: earlier } : {}) },
          next,
          ...common,
        };
      } else if (kind === 'condition') {
        const cases = Array.from({ length: 1 + pick(3) }, () => ({
          when: pick(2) ? 'input.flag' : 'input.n > 3 || size(input.note) == 0',
          next: later(i),
        }));
        step = { id, kind, cases, else: next, ...common };
      } else {
        step = {
          id,
          kind,
          children: [
            { id: `${id}_a`, kind: 'tool', tool: 'lookup' },
            { id: `${id}_b`, kind: 'llm', prompt: 'p', projection: [], output: { enum: ['x'] } },
          ],
          next,
          ...common,
        };
      }
      if (kind !== 'condition') outputs.push(`steps.${id}.output`);
      return step;
    });
    const gate: Step = { id: 'gate', kind: 'condition', cases: [{ when: 'input.flag', next: 'ok' }], else: 'failed' };
    // Shuffle declaration order: the graph, and so the result, must not depend on it.
    const all = [...steps, gate, ...ENDS].map((s, i) => ({ s, key: order[i % order.length]! * 100 + i }));
    all.sort((a, b) => a.key - b.key);
    return programOf(
      all.map((x) => x.s),
      's0',
    );
  });

describe('properties', () => {
  it('random DAG programs validate with no issues', () => {
    fc.assert(
      fc.property(dagProgram, (p) => {
        expect(validateProgram(p, { tools: { lookup: {} } })).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('removing a step that edges point to gives E_MISSING_TARGET at each of those edges', () => {
    fc.assert(
      fc.property(dagProgram, fc.nat(), (p, choice) => {
        const targets = new Set(edgeTable(p).edges.map((e) => e.to));
        const targeted = p.steps.filter((s) => s.id !== 's0' && targets.has(s.id));
        const victim = targeted[choice % targeted.length]!.id;
        const rest = { ...p, steps: p.steps.filter((s) => s.id !== victim) };
        const expected = edgeTable(rest)
          .edges.filter((e) => e.to === victim)
          .map((e) => e.path);
        expect(expected.length).toBeGreaterThan(0);
        const missing = validateProgram(rest).filter((i) => i.code === 'E_MISSING_TARGET');
        expect(missing.map((i) => i.path).sort()).toEqual(expected.sort());
      }),
      { numRuns: 300 },
    );
  });

  it('retargeting one edge to an unknown id gives E_MISSING_TARGET at that edge', () => {
    fc.assert(
      fc.property(dagProgram, fc.nat(), (p, choice) => {
        const edges = edgeTable(p).edges;
        const ref = edges[choice % edges.length]!;
        const broken = structuredClone(p);
        const [, , index, ...field] = ref.path.split('/');
        let holder = broken.steps[Number(index)] as unknown as Record<string, unknown>;
        for (const seg of field.slice(0, -1)) holder = holder[seg] as Record<string, unknown>;
        holder[field[field.length - 1]!] = 'nowhere';
        const missing = validateProgram(broken).filter((i) => i.code === 'E_MISSING_TARGET');
        expect(missing.map((i) => i.path)).toEqual([ref.path]);
      }),
      { numRuns: 300 },
    );
  });

  it('a back edge creates E_UNBOUNDED_CYCLE exactly when it closes a cycle with no max_visits', () => {
    fc.assert(
      fc.property(dagProgram, (p) => {
        const looped = structuredClone(p);
        const gate = looped.steps.find((s) => s.id === 'gate') as Extract<Step, { kind: 'condition' }>;
        gate.cases.push({ when: 'input.n > 100', next: 's0' });
        // Oracle: the only cycles run s0 ~> gate -> s0; one is unbounded iff s0 reaches gate
        // through steps without max_visits.
        const byId = new Map(looped.steps.map((s) => [s.id, s]));
        const free = (id: string) => byId.get(id)?.max_visits === undefined;
        const seen = new Set<string>();
        const queue = free('s0') ? ['s0'] : [];
        while (queue.length > 0) {
          const id = queue.shift()!;
          if (seen.has(id)) continue;
          seen.add(id);
          for (const { to: t } of edgeTable(looped).from(id)) if (byId.has(t) && free(t) && t !== 's0') queue.push(t);
        }
        const cycles = validateProgram(looped).filter((i) => i.code === 'E_UNBOUNDED_CYCLE');
        expect(cycles).toHaveLength(seen.has('gate') ? 1 : 0);
      }),
      { numRuns: 300 },
    );
  });
});

describe('cycles of on_exhausted edges alone', () => {
  /** A bounded loop a -> b -> c -> a, each step with max_visits; `exhausted` sets each step's on_exhausted. */
  const loop = (exhausted: Record<string, string>): Program =>
    programOf([
      ...['a', 'b', 'c'].map((id, i): Step => ({
        id,
        kind: 'condition',
        cases: [{ when: 'input.flag', next: ['b', 'c', 'a'][i]! }],
        else: 'ok',
        max_visits: 2,
        ...(exhausted[id] !== undefined ? { on_exhausted: exhausted[id] } : {}),
      })),
      ...ENDS,
    ]);
  const cycles = (p: Program) =>
    validateProgram(p)
      .filter((i) => i.code === 'E_UNBOUNDED_CYCLE')
      .map((i) => [i.step, i.path]);

  it('are unbounded: taking on_exhausted enters no step, so no visit count or budget ever stops them', () => {
    expect(cycles(loop({ a: 'failed', b: 'a', c: 'b' }))).toEqual([]);
    expect(cycles(loop({ b: 'b' }))).toEqual([['b', '/steps/1/on_exhausted']]);
    expect(cycles(loop({ a: 'c', b: 'failed', c: 'a' }))).toEqual([['a', '/steps/0/on_exhausted']]);
    const all = validateProgram(loop({ a: 'b', b: 'c', c: 'a' }));
    expect(all.filter((i) => i.code === 'E_UNBOUNDED_CYCLE').map((i) => i.message)).toEqual([
      "steps 'a', 'b', 'c' lead to each other by on_exhausted alone: once all are exhausted, a run would go round them forever without entering a step; let one on_exhausted lead out of the cycle",
    ]);
  });

  it('are reported once each, exactly when following on_exhausted from a step comes back to it', () => {
    const ids = ['a', 'b', 'c'];
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...ids, 'ok', 'failed', null), { minLength: 3, maxLength: 3 }),
        (targets) => {
          const exhausted: Record<string, string> = {};
          ids.forEach((id, i) => {
            if (targets[i] !== null) exhausted[id] = targets[i]!;
          });
          // Oracle: walk on_exhausted from each step; a step is on such a cycle when the walk returns to it.
          const onCycle = ids.filter((id) => {
            let at: string | undefined = exhausted[id];
            for (let k = 0; k < ids.length && at !== undefined; k++) {
              if (at === id) return true;
              at = exhausted[at];
            }
            return false;
          });
          const firstOfEach = onCycle.filter((id) => {
            const orbit = new Set<string>();
            for (let at = exhausted[id]!; !orbit.has(at); at = exhausted[at]!) orbit.add(at);
            return [...orbit].every((m) => m >= id);
          });
          expect(cycles(loop(exhausted))).toEqual(
            firstOfEach.map((id) => [id, `/steps/${ids.indexOf(id)}/on_exhausted`]),
          );
        },
      ),
      { numRuns: 200 },
    );
  });
});
