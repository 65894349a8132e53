/**
 * paths.ts: every path from the start to each way a run ends, the guards along it, loops listed
 * once, the ends a program leaves undeclared, what a policy says about each path, and the cap.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { edgeTable } from '../src/edges.js';
import { programPaths, type PathEnd } from '../src/paths.js';
import { pathsText } from '../src/pathsText.js';
import type { PolicySnapshot } from '../src/policy.js';
import type { Program, Step } from '../src/program.js';

const program = (steps: Step[], extra: Partial<Program> = {}): Program => ({
  format: 'nano-vm.program/v1',
  id: 'p',
  input_schema: { type: 'object', properties: { n: { type: 'number' }, fast: { type: 'boolean' } } },
  steps,
  ...extra,
});

const llm = (id: string, next: string, more: Partial<Step> = {}): Step =>
  ({ id, kind: 'llm', prompt: 'p', projection: [], output: { enum: ['a', 'b'] }, next, ...more }) as Step;
const tool = (id: string, next: string, more: Partial<Step> = {}): Step =>
  ({ id, kind: 'tool', tool: id, next, ...more }) as Step;
const end = (id: string, outcome: string, failure = false): Step => ({
  id,
  kind: 'end',
  outcome,
  ...(failure ? { failure: true } : {}),
});
const FALLBACK = { on_error: { action: 'fallback', value: 'a' } } as Partial<Step>;

const refund = program([
  llm('classify', 'decide', FALLBACK),
  {
    id: 'decide',
    kind: 'condition',
    cases: [
      { when: 'steps.classify.output == "a" && input.n <= 500', next: 'issue' },
      { when: 'steps.classify.output == "b"', next: 'rejected' },
    ],
    else: 'review',
  },
  tool('issue', 'refunded', { on_error: { action: 'retry', max_attempts: 3 } } as Partial<Step>),
  end('refunded', 'SUCCESS'),
  end('rejected', 'REJECTED', true),
  end('review', 'NEEDS_REVIEW'),
]);

const summary = (p: Program, policy?: PolicySnapshot) =>
  programPaths(p, policy ? { policy } : {}).paths.map((x) => [x.steps.join(' '), endName(x.end)]);
const endName = (e: PathEnd): string => (e.kind === 'outcome' ? e.outcome : `${e.kind}@${e.step}`);

describe('programPaths', () => {
  it('lists one path per way to end, grouped by end step, with the guards that decide each branch', () => {
    const r = programPaths(refund);
    expect(r.complete).toBe(true);
    expect(r.start).toBe('classify');
    expect(r.paths.map((p) => [p.n, p.steps.join(' '), endName(p.end)])).toEqual([
      [1, 'classify decide issue refunded', 'SUCCESS'],
      [2, 'classify decide rejected', 'REJECTED'],
      [3, 'classify decide review', 'NEEDS_REVIEW'],
      [4, 'classify decide issue', 'step_failed@issue'],
    ]);
    expect(r.paths[0]!.guards).toEqual([
      { step: 'decide', holds: 'steps.classify.output == "a" && input.n <= 500', fails: [] },
    ]);
    expect(r.paths[1]!.guards).toEqual([
      {
        step: 'decide',
        holds: 'steps.classify.output == "b"',
        fails: ['steps.classify.output == "a" && input.n <= 500'],
      },
    ]);
    expect(r.paths[2]!.guards).toEqual([
      {
        step: 'decide',
        holds: null,
        fails: ['steps.classify.output == "a" && input.n <= 500', 'steps.classify.output == "b"'],
      },
    ]);
    expect(r.paths[3]!.end).toEqual({ kind: 'step_failed', step: 'issue', attempts: 3 });
    expect(r.paths[0]!.edges.map((e) => e.via)).toEqual(['next', 'case', 'next']);
    expect(r.outcomes.map((o) => [o.outcome, o.failure, o.paths, o.reachable])).toEqual([
      ['SUCCESS', false, [1], true],
      ['REJECTED', true, [2], true],
      ['NEEDS_REVIEW', false, [3], true],
    ]);
    expect(r.findings).toEqual([]);
    expect(r.paths.every((p) => p.policy === undefined && p.on_loop.length === 0)).toBe(true);
  });

  it('lists a loop once, names the steps on it, and takes on_exhausted only from a step on a loop', () => {
    const steps: Step[] = [
      llm('draft', 'check', { ...FALLBACK, max_visits: 3, on_exhausted: 'give_up' }),
      tool('check', 'accept', { on_error: { action: 'fallback', value: { ok: false } } } as Partial<Step>),
      { id: 'accept', kind: 'condition', cases: [{ when: 'steps.check.output.ok', next: 'done' }], else: 'draft' },
      end('done', 'DRAFTED'),
      end('give_up', 'NO_VALID_DRAFT', true),
    ];
    const r = programPaths(program(steps));
    expect(r.paths.map((p) => [p.steps.join(' '), endName(p.end), p.on_loop.join(' ')])).toEqual([
      ['draft check accept done', 'DRAFTED', 'draft check accept'],
      ['draft give_up', 'NO_VALID_DRAFT', 'draft'],
    ]);
    expect(r.paths[1]!.edges[0]!.via).toBe('on_exhausted');

    // Without on_exhausted the run fails when the loop runs out.
    const failing = steps.map((s) => (s.id === 'draft' ? llm('draft', 'check', { ...FALLBACK, max_visits: 3 }) : s));
    expect(summary(program(failing))).toEqual([
      ['draft check accept done', 'DRAFTED'],
      ['draft', 'max_visits@draft'],
    ]);
    expect(programPaths(program(failing)).outcomes.find((o) => o.outcome === 'NO_VALID_DRAFT')?.reachable).toBe(false);
  });

  it('an on_exhausted edge or max_visits of a step on no loop can never be taken: its outcome is unreachable', () => {
    const p = program([
      llm('once', 'done', { ...FALLBACK, max_visits: 1, on_exhausted: 'never' }),
      llm('twice', 'done', { ...FALLBACK, max_visits: 1 }),
      end('done', 'OK'),
      end('never', 'NEVER', true),
    ]);
    const r = programPaths(p);
    expect(summary(p)).toEqual([['once done', 'OK']]);
    expect(r.outcomes.find((o) => o.outcome === 'NEVER')).toMatchObject({ reachable: false, paths: [] });
    expect(r.findings).toEqual([
      {
        kind: 'unreachable_outcome',
        outcome: 'NEVER',
        steps: ['never'],
        message: "no run can end with outcome NEVER (end step 'never')",
      },
    ]);
  });

  it('lists wait timeouts, with and without on_timeout, and parallel children without a fallback', () => {
    const p = program([
      { id: 'ask', kind: 'wait', event: true, role: 'approver', timeout_ms: 60_000, on_timeout: 'late', next: 'hold' },
      { id: 'hold', kind: 'wait', event: true, timeout_ms: 1000, next: 'both' },
      {
        id: 'both',
        kind: 'parallel',
        children: [
          { id: 'a', kind: 'tool', tool: 'a', on_error: { action: 'retry', max_attempts: 2 } },
          { id: 'b', kind: 'tool', tool: 'b', on_error: { action: 'fallback', value: 1 } },
        ],
        next: 'ok',
      },
      end('ok', 'OK'),
      end('late', 'LATE', true),
    ]);
    const r = programPaths(p);
    expect(summary(p)).toEqual([
      ['ask hold both ok', 'OK'],
      ['ask late', 'LATE'],
      ['ask hold', 'wait_timeout@hold'],
      ['ask hold both', 'step_failed@both'],
    ]);
    expect(r.paths[1]!.edges[0]).toMatchObject({ from: 'ask', to: 'late', via: 'on_timeout' });
    expect(r.paths[2]!.end).toEqual({ kind: 'wait_timeout', step: 'hold', timeout_ms: 1000 });
    expect(r.paths[3]!.end).toEqual({ kind: 'step_failed', step: 'both', attempts: 2, children: ['a'] });
    const text = pathsText(p, r);
    expect(text).toContain('ask           no event within 1 min (on_timeout)');
    expect(text).toContain('ask           the event arrives from role approver');
    expect(text).toContain('Run fails at both (child a fails on all 2 attempts, no fallback): 1 path');
    expect(text).toContain('Run fails at hold (no event within 1 s, no on_timeout: E_WAIT_TIMEOUT): 1 path');
  });
});

describe('programPaths under a policy', () => {
  const reachable = program([
    { id: 'route', kind: 'condition', cases: [{ when: 'input.fast', next: 'pay' }], else: 'screen' },
    tool('screen', 'pay', FALLBACK),
    tool('pay', 'paid', FALLBACK),
    end('paid', 'PAID'),
  ]);
  const policy = (rest: Partial<PolicySnapshot>): PolicySnapshot => ({
    format: 'nano-vm.policy/v1',
    id: 'rules',
    ...rest,
  });

  it('reports a path to a success end that skips a required step, and not a path to a failure end', () => {
    const withFailure = program([
      { id: 'route', kind: 'condition', cases: [{ when: 'input.fast', next: 'pay' }], else: 'check' },
      { id: 'check', kind: 'condition', cases: [{ when: 'input.n > 1', next: 'declined' }], else: 'screen' },
      ...reachable.steps.slice(1),
      end('declined', 'DECLINED', true),
    ]);
    const r = programPaths(withFailure, {
      policy: policy({ required_steps: [{ id: 'must_screen', step: 'screen' }] }),
    });
    expect(r.paths.map((p) => [p.steps.join(' '), p.policy!.skipped])).toEqual([
      ['route pay paid', ['must_screen']],
      ['route check screen pay paid', []],
      ['route check declined', []],
    ]);
    expect(r.paths[2]!.policy!.required).toEqual([{ rule: 'must_screen', step: 'screen', passed: false }]);
    expect(r.findings).toEqual([
      {
        kind: 'skips_required_step',
        path: 1,
        rule: 'must_screen',
        step: 'screen',
        message: "path 1 reaches success outcome PAID without passing required step 'screen' (rule 'must_screen')",
      },
    ]);
    expect(pathsText(withFailure, r)).toContain('policy        SKIPS required step screen (rule must_screen)');
  });

  it('a path that breaks a precedence rule is blocked where the machine would block it', () => {
    const r = programPaths(reachable, {
      policy: policy({ precedence: [{ id: 'screen_first', before: 'screen', after: 'pay' }] }),
    });
    expect(r.paths.map((p) => [p.steps.join(' '), p.policy!.blocked?.rule ?? null, p.policy!.blocked?.step])).toEqual([
      ['route pay paid', 'screen_first', 'pay'],
      ['route screen pay paid', null, undefined],
    ]);
    expect(r.outcomes[0]).toMatchObject({ outcome: 'PAID', paths: [2], reachable: true });
    expect(r.findings.map((f) => f.kind)).toEqual(['blocked_by_policy']);
  });

  it('an outcome every path to which the policy blocks is unreachable under it', () => {
    const r = programPaths(reachable, {
      policy: policy({
        tools: { pay: { capabilities: ['payments.write'] } },
        grants: [{ id: 'screen_may_screen', step: 'screen', tools: ['screen'] }],
      }),
    });
    expect(r.paths.map((p) => p.policy!.blocked?.step)).toEqual(['pay', 'pay']);
    expect(r.paths[0]!.policy!.blocked).toEqual({
      step: 'pay',
      rule: 'policy.default_deny',
      reason: "step 'pay' does not hold capability 'payments.write', which tool 'pay' needs (no step holds it)",
    });
    expect(r.outcomes[0]).toMatchObject({ outcome: 'PAID', paths: [], reachable: false });
    expect(r.findings.map((f) => f.kind)).toEqual(['unreachable_outcome', 'blocked_by_policy', 'blocked_by_policy']);
  });

  it('a deny rule without `when` blocks; one with `when` may block, depending on the run', () => {
    const r = programPaths(reachable, {
      policy: policy({
        deny: [
          { id: 'no_fast_pay', tool: 'pay', when: 'input.fast' },
          { id: 'no_screen', step: 'screen' },
        ],
      }),
    });
    expect(r.paths.map((p) => [p.steps.join(' '), p.policy!.blocked?.rule ?? null, p.policy!.may_block])).toEqual([
      ['route pay paid', null, [{ step: 'pay', rule: 'no_fast_pay', when: 'input.fast' }]],
      ['route screen pay paid', 'no_screen', []],
    ]);
  });
});

describe('the cap', () => {
  /** k conditions in a row, each with two edges to the next: 2^(k-1) paths to `done`, searched before c0's else to `late`. */
  const diamonds = (k: number): Program =>
    program([
      ...Array.from({ length: k }, (_, i): Step => ({
        id: `c${i}`,
        kind: 'condition',
        cases: [{ when: 'input.fast', next: i + 1 < k ? `c${i + 1}` : 'done' }],
        else: i === 0 ? 'late' : i + 1 < k ? `c${i + 1}` : 'done',
      })),
      llm('orphan', 'never', { ...FALLBACK, max_visits: 1, on_exhausted: 'never' }),
      end('done', 'DONE'),
      end('late', 'LATE'),
      end('never', 'NEVER', true),
    ]);

  it('stops at the cap, says so, and claims unreachable only what the step graph cannot reach', () => {
    const r = programPaths(diamonds(12), { maxPaths: 5 });
    expect(r.complete).toBe(false);
    expect(r.paths).toHaveLength(5);
    expect(r.findings[0]).toMatchObject({ kind: 'truncated', max_paths: 5 });
    expect(r.outcomes.map((o) => [o.outcome, o.reachable])).toEqual([
      ['DONE', true],
      ['LATE', null],
      ['NEVER', false],
    ]);
    expect(pathsText(diamonds(12), r)).toContain('THE LISTING STOPPED at 5 paths');
    expect(programPaths(diamonds(3)).paths).toHaveLength(5);
    expect(programPaths(diamonds(3), { maxPaths: 5 }).complete).toBe(true);
    expect(programPaths(diamonds(3), { maxPaths: 4 }).complete).toBe(false);
  });

  it('stops a search that finds no path for too long (dead ends around loops)', () => {
    // Every condition goes to every other; only c0's else leaves the clique, so the search walks
    // every simple path through the clique (thousands of step entries) before its first path.
    const ids = Array.from({ length: 8 }, (_, i) => `c${i}`);
    const clique = program([
      ...ids.map((id, i): Step => ({
        id,
        kind: 'condition',
        cases: ids.filter((x) => x !== id).map((next) => ({ when: 'input.fast', next })),
        else: i === 0 ? 'done' : 'c0',
      })),
      end('done', 'DONE'),
    ]);
    const capped = programPaths(clique, { maxPaths: 1 });
    expect(capped.complete).toBe(false);
    expect(capped.paths).toEqual([]);
    expect(capped.outcomes[0]).toMatchObject({ outcome: 'DONE', reachable: null });
    expect(programPaths(clique, { maxPaths: 100 }).complete).toBe(true);
  });

  it('follows a 100 000-step path without recursion', () => {
    const n = 100_000;
    const long = program([
      ...Array.from({ length: n }, (_, i) => llm(`s${i}`, i + 1 < n ? `s${i + 1}` : 'done', FALLBACK)),
      end('done', 'DONE'),
    ]);
    const r = programPaths(long);
    expect(r.paths).toHaveLength(1);
    expect(r.paths[0]!.steps).toHaveLength(n + 1);
  });
});

// ---- Properties over generated acyclic programs ----

/** Acyclic programs (edges only lead forward) of every kind, with and without fallbacks. */
const dag = fc
  .record({ n: fc.integer({ min: 1, max: 9 }), picks: fc.array(fc.nat(), { minLength: 60, maxLength: 60 }) })
  .map(({ n, picks }) => {
    let at = 0;
    const pick = (k: number): number => picks[at++ % picks.length]! % k;
    const ends = ['ok', 'bad'];
    const forward = (i: number): string => {
      const later = [...Array.from({ length: n - i - 1 }, (_, j) => `s${i + 1 + j}`), ...ends];
      return later[pick(later.length)]!;
    };
    const steps = Array.from({ length: n }, (_, i): Step => {
      const id = `s${i}`;
      switch (pick(4)) {
        case 0:
          return llm(id, forward(i), pick(2) ? FALLBACK : {});
        case 1:
          return tool(id, forward(i), pick(2) ? FALLBACK : {});
        case 2:
          return {
            id,
            kind: 'condition',
            cases: Array.from({ length: 1 + pick(3) }, () => ({ when: 'input.fast', next: forward(i) })),
            else: forward(i),
          };
        default: {
          const timeout = [{}, { timeout_ms: 5 }, { timeout_ms: 5, on_timeout: forward(i) }][pick(3)]!;
          return { id, kind: 'wait', event: true, next: forward(i), ...timeout };
        }
      }
    });
    return program([...steps, end('ok', 'OK'), end('bad', 'BAD', true)]);
  });

describe('properties', () => {
  it('in an acyclic program the paths are exactly the walks from the start to an end (counted independently)', () => {
    fc.assert(
      fc.property(dag, (p) => {
        const r = programPaths(p, { maxPaths: 100_000 });
        const table = edgeTable(p);
        // Oracle: number of walks from each step to each end, by dynamic programming over the DAG.
        const byId = new Map(p.steps.map((s) => [s.id, s]));
        const walks = new Map<string, Map<string, number>>();
        const count = (id: string): Map<string, number> => {
          let m = walks.get(id);
          if (m) return m;
          m = new Map();
          const s = byId.get(id)!;
          const ownEnds: string[] = [];
          if (s.kind === 'end') ownEnds.push(s.outcome);
          if ((s.kind === 'llm' || s.kind === 'tool') && s.on_error === undefined) ownEnds.push(`step_failed@${id}`);
          if (s.kind === 'wait' && s.timeout_ms !== undefined && s.on_timeout === undefined)
            ownEnds.push(`wait_timeout@${id}`);
          for (const e of ownEnds) m.set(e, (m.get(e) ?? 0) + 1);
          for (const edge of table.from(id)) for (const [e, c] of count(edge.to)) m.set(e, (m.get(e) ?? 0) + c);
          walks.set(id, m);
          return m;
        };
        const expected = [...count(table.start!)].sort();
        const got = new Map<string, number>();
        for (const path of r.paths) got.set(endName(path.end), (got.get(endName(path.end)) ?? 0) + 1);
        expect([...got].sort()).toEqual(expected);

        for (const path of r.paths) {
          expect(path.steps[0]).toBe(table.start);
          expect(new Set(path.steps).size).toBe(path.steps.length);
          expect(path.edges).toHaveLength(path.steps.length - 1);
          path.edges.forEach((e, i) => {
            expect(table.from(path.steps[i]!)).toContain(e);
            expect(e.to).toBe(path.steps[i + 1]);
          });
          expect(path.end.step).toBe(path.steps[path.steps.length - 1]);
        }
        expect(r.paths.map((x) => x.n)).toEqual(r.paths.map((_, i) => i + 1));
        expect(r.complete).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
