/**
 * The analyzer (docs/analyzer.md): known values on hand-built traces, the receipt's health on a
 * real machine run, and properties of the cross-run metrics.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AnalyzeError,
  BUNDLE_FORMAT,
  DEFAULT_THRESHOLDS,
  Machine,
  STOP,
  analyzeRuns,
  computeReceipt,
  pureHasher,
  verifyBundle,
  type Program,
  type TraceEvent,
} from '../src/internal.js';

let runNo = 0;

/**
 * A hand-built trace that walks `path`: every step but the last is a condition that chose the
 * next one; the last is the end step (completed), or the run stops there with `status`.
 */
function trace(
  path: string[],
  opts: { status?: 'completed' | 'failed'; program?: string; extra?: Partial<TraceEvent>[] } = {},
): TraceEvent[] {
  const status = opts.status ?? 'completed';
  const bodies: Record<string, unknown>[] = [
    {
      type: 'run_started',
      run_id: `run-${++runNo}`,
      program_id: opts.program ?? 'p',
      program_hash: `${opts.program ?? 'p'}-hash`,
      policy_hash: 'x',
      input_hash: 'y',
      runtime_version: 't',
      model: { id: 'm', scripted: true },
    },
  ];
  const walked = status === 'completed' ? path.slice(0, -1) : path;
  walked.forEach((step, i) =>
    bodies.push({ type: 'condition_evaluated', step, visit: 1, guards: [], chosen: -1, next: path[i + 1] ?? '' }),
  );
  for (const e of opts.extra ?? []) bodies.push(e as Record<string, unknown>);
  bodies.push(
    status === 'completed'
      ? { type: 'run_finished', status, outcome: 'OK', step: path[path.length - 1] }
      : { type: 'run_finished', status, error: { code: 'E_TOOL_ERROR', message: 'boom' } },
  );
  return bodies.map(
    (b, seq) =>
      ({ seq, ts: '2026-01-01T00:00:00.000Z', prev_hash: '', hash: `h${seq}`, ...b }) as unknown as TraceEvent,
  );
}

const linear = (n: number) => Array.from({ length: n }, (_, i) => `s${i}`);

describe('transition entropy H(next | current)', () => {
  it('is 0 for a single linear trace of any length — the 2.5-bit alert of the Python original does not fire', () => {
    const a = analyzeRuns([trace(linear(8))]);
    expect(a.transitions.total).toBe(7);
    expect(a.transitions.entropy_bits).toBe(0);
    expect(a.transitions.max_out_degree).toBe(1);
    expect(a.alerts).toEqual([]);
  });

  it('two equally likely branches after one step: exactly 1 bit at that state, weighted by its share of transitions', () => {
    const a = analyzeRuns([trace(['a', 'b', 'c']), trace(['a', 'b', 'd'])]);
    expect(a.transitions.states).toEqual([
      { step: 'a', transitions: 2, entropy_bits: 0, next: [{ step: 'b', count: 2 }] },
      {
        step: 'b',
        transitions: 2,
        entropy_bits: 1,
        next: [
          { step: 'c', count: 1 },
          { step: 'd', count: 1 },
        ],
      },
    ]);
    // p(b) = 2/4 of all transitions, so H(next | current) = 0.5 · 1 + 0.5 · 0.
    expect(a.transitions.entropy_bits).toBe(0.5);
    expect(a.transitions.max_out_degree).toBe(2);
  });

  it('weights an unequal branch by its observed frequencies', () => {
    const a = analyzeRuns([
      trace(['a', 'b', 'c']),
      trace(['a', 'b', 'c']),
      trace(['a', 'b', 'c']),
      trace(['a', 'b', 'd']),
    ]);
    const hb = -(0.75 * Math.log2(0.75) + 0.25 * Math.log2(0.25));
    expect(a.transitions.states[1]!.entropy_bits).toBeCloseTo(hb, 12);
    expect(a.transitions.entropy_bits).toBeCloseTo(0.5 * hb, 12);
  });

  it('counts every transition of a loop, so a single run that revisits a step can branch', () => {
    const a = analyzeRuns([trace(['a', 'b', 'a', 'c'])]);
    expect(a.transitions.states.find((s) => s.step === 'a')).toMatchObject({ transitions: 2, entropy_bits: 1 });
    expect(a.transitions.entropy_bits).toBeCloseTo(2 / 3, 12);
  });

  it('a run that stops mid-way adds a transition to (stop)', () => {
    const a = analyzeRuns([trace(['a', 'b', 'c']), trace(['a', 'b'], { status: 'failed' })]);
    expect(a.runs[1]!.path).toEqual(['a', 'b', STOP]);
    expect(a.transitions.states.find((s) => s.step === 'b')!.next).toEqual([
      { step: STOP, count: 1 },
      { step: 'c', count: 1 },
    ]);
  });

  it('fires A_TRANSITION_ENTROPY above its threshold', () => {
    const runs = [trace(['a', 'b']), trace(['a', 'c']), trace(['a', 'd']), trace(['a', 'e'])];
    const a = analyzeRuns(runs);
    expect(a.transitions.entropy_bits).toBe(2);
    expect(a.alerts.find((x) => x.code === 'A_TRANSITION_ENTROPY')).toMatchObject({
      metric: 'transition_entropy_bits',
      value: 2,
      threshold: 1,
      run_id: null,
    });
    expect(
      analyzeRuns(runs, { thresholds: { transition_entropy_bits: 2 } }).alerts.find(
        (x) => x.code === 'A_TRANSITION_ENTROPY',
      ),
    ).toBeUndefined();
  });
});

describe('path variance and divergence', () => {
  it('is the share of runs off the modal path; each other run names where it left it', () => {
    const a = analyzeRuns([
      trace(['a', 'b', 'c']),
      trace(['a', 'x', 'c']),
      trace(['a', 'b', 'c']),
      trace(['a', 'b'], { status: 'failed' }),
    ]);
    expect(a.paths).toEqual({ distinct: 3, modal: ['a', 'b', 'c'], modal_runs: 2, path_variance: 0.5 });
    expect(a.runs.map((r) => r.first_divergence)).toEqual([
      null,
      { index: 1, step: 'x', expected: ['b'], against: 'modal' },
      null,
      { index: 2, step: STOP, expected: ['c'], against: 'modal' },
    ]);
    expect(a.alerts.some((x) => x.code === 'A_PATH_VARIANCE')).toBe(false);
    expect(
      analyzeRuns([trace(['a', 'b']), trace(['a', 'c']), trace(['a', 'd'])]).alerts.find(
        (x) => x.code === 'A_PATH_VARIANCE',
      ),
    ).toMatchObject({ value: 2 / 3, threshold: 0.5 });
  });

  it('breaks a tie for the modal path by the paths’ text, not by run order', () => {
    const x = trace(['a', 'c']);
    const y = trace(['a', 'b']);
    expect(analyzeRuns([x, y]).paths.modal).toEqual(['a', 'b']);
    expect(analyzeRuns([y, x]).paths.modal).toEqual(['a', 'b']);
  });

  it('against a baseline: novel transitions, runs off the baseline and the first divergence', () => {
    const baseline = [trace(['a', 'b', 'c']), trace(['a', 'b', 'e'])];
    const a = analyzeRuns([trace(['a', 'b', 'c']), trace(['a', 'b', 'd'])], { baseline });
    expect(a.baseline).toEqual({
      runs: 2,
      transitions: 4,
      novel_transitions: 1,
      novel_transition_rate: 0.25,
      runs_off_baseline: 1,
      novel: [{ from: 'b', to: 'd', count: 1 }],
    });
    expect(a.runs[1]!.first_divergence).toEqual({ index: 2, step: 'd', expected: ['c', 'e'], against: 'baseline' });
    expect(a.alerts).toEqual([
      {
        code: 'A_NOVEL_TRANSITIONS',
        metric: 'novel_transition_rate',
        value: 0.25,
        threshold: 0,
        run_id: null,
        message:
          'all runs: novel-transition rate 0.25 > 0: 1 of 4 transitions were never taken by the 2 baseline runs: b → d',
      },
    ]);
    const same = analyzeRuns([trace(['a', 'b', 'e'])], { baseline });
    expect(same.baseline).toMatchObject({ novel_transitions: 0, runs_off_baseline: 0 });
    expect(same.alerts).toEqual([]);
  });
});

describe('per-run health', () => {
  const program: Program = {
    format: 'nano-vm.program/v1',
    id: 'doc',
    input_schema: { type: 'object', properties: { n: { type: 'number' } } },
    steps: [
      {
        id: 'ask',
        kind: 'llm',
        prompt: 'n is {{input.n}}',
        projection: ['input.n'],
        output: { enum: ['big', 'small'] },
        on_error: { action: 'retry', max_attempts: 3 },
        next: 'route',
      },
      { id: 'route', kind: 'condition', cases: [{ when: 'steps.ask.output == "big"', next: 'act' }], else: 'done' },
      {
        id: 'act',
        kind: 'tool',
        tool: 'act',
        args: { n: 'input.n' },
        on_error: { action: 'retry', max_attempts: 3 },
        next: 'done',
      },
      { id: 'done', kind: 'end', outcome: 'SUCCESS' },
    ],
  };
  /** A run driven through the kernel machine: `answers` for the model, `tool` results in order. */
  function run(
    answers: string[],
    tool: ({ ok: true; value: unknown } | { ok: false; error: { code: string; message: string } })[],
  ) {
    let t = Date.UTC(2026, 0, 1);
    const m = new Machine(
      program,
      { n: 20 },
      {
        runId: 'run-health',
        hasher: pureHasher,
        clock: { now: () => t++ },
        runtimeVersion: 'test',
        model: { id: 'scripted:doc', scripted: true },
      },
    );
    let a = 0;
    let k = 0;
    for (;;) {
      const c = m.next();
      if (c.type === 'done') break;
      if (c.type === 'llm') m.complete({ ok: true, raw: answers[a++]! });
      else if (c.type === 'tool') m.complete(tool[k++] as never);
    }
    return m.events;
  }

  it('the receipt carries it, computed from the events', () => {
    const events = run(
      ['maybe', 'huge', 'big'],
      [
        { ok: false, error: { code: 'E_TIMEOUT', message: 'slow' } },
        { ok: true, value: { done: true } },
      ],
    );
    const r = computeReceipt(events);
    expect(r.path).toEqual(['ask', 'route', 'act', 'done']);
    expect(r.counts).toMatchObject({ steps: 3, retries: 3, tool_calls: 2, failures: 3 });
    expect(r.health).toEqual({
      visits: 3,
      retry_density: 1, // 3 retries over 3 step visits
      repeated_tool_calls: 1, // the retried tool call has the same tool and arguments
      tool_churn: 0.5,
      rejected_outputs: 2, // two answers outside the enum; the timeout is not an invariant violation
      failed_checks: 0,
      invariant_violations: 2,
      invariant_violation_rate: 2 / 3,
    });
    const a = analyzeRuns([events]);
    expect(a.alerts.map((x) => [x.code, x.value])).toEqual([
      ['A_RETRY_DENSITY', 1],
      ['A_TOOL_CHURN', 0.5],
      ['A_INVARIANT_VIOLATIONS', 2 / 3],
    ]);
    expect(a.alerts.every((x) => x.run_id === 'run-health')).toBe(true);
  });

  it('a failed typed check of a tool result and a blocked action are invariant violations', () => {
    const events = run(
      ['big'],
      [
        { ok: true, value: { n: Number.NaN } },
        { ok: true, value: { done: true } },
      ],
    );
    expect(events.find((e) => e.type === 'step_failed')).toMatchObject({ error: { code: 'E_TOOL_OUTPUT_NOT_JSON' } });
    expect(computeReceipt(events).health).toMatchObject({
      failed_checks: 1,
      rejected_outputs: 0,
      invariant_violations: 1,
      visits: 3,
    });
    const blocked = trace(['a', 'b'], {
      extra: [{ type: 'transition_rejected', step: 'a', requested: 'tool:wire', rule: 'grant', reason: 'not granted' }],
    });
    expect(computeReceipt(blocked).health).toMatchObject({ invariant_violations: 1, invariant_violation_rate: 1 });
    expect(analyzeRuns([blocked]).alerts.map((x) => x.code)).toEqual(['A_INVARIANT_VIOLATIONS', 'A_BLOCKED_ACTIONS']);
  });

  it('a guard that fails to evaluate is a failed check', () => {
    const events = trace(['a'], { status: 'failed' });
    expect(computeReceipt(events).health).toMatchObject({ visits: 1, failed_checks: 1, invariant_violation_rate: 1 });
  });

  it('verify recomputes it: a bundle whose health was edited is rejected', () => {
    const events = run(['big'], [{ ok: true, value: { done: true } }]);
    const bundle = JSON.parse(
      JSON.stringify({
        format: BUNDLE_FORMAT,
        program,
        policy: null,
        input: { n: 20 },
        events,
        receipt: computeReceipt(events),
      }),
    );
    expect(verifyBundle(bundle, pureHasher)).toMatchObject({ ok: true });
    bundle.receipt.health.retry_density = 0;
    bundle.receipt.health.tool_churn = 0.01;
    expect(verifyBundle(bundle, pureHasher)).toMatchObject({
      ok: false,
      code: 'E_RECEIPT_MISMATCH',
      reason: expect.stringContaining('/health/tool_churn'),
    });
  });
});

describe('analyzeRuns', () => {
  it('refuses no runs and runs of different programs', () => {
    expect(() => analyzeRuns([])).toThrow(expect.objectContaining({ code: 'E_NO_RUNS' }));
    const e = (() => {
      try {
        analyzeRuns([trace(['a']), trace(['a'], { program: 'q' })]);
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(AnalyzeError);
    expect(e).toMatchObject({ code: 'E_MIXED_PROGRAMS' });
  });

  it('reports the thresholds in force: defaults overridden member by member', () => {
    expect(analyzeRuns([trace(['a'])]).thresholds).toEqual(DEFAULT_THRESHOLDS);
    expect(analyzeRuns([trace(['a'])], { thresholds: { path_variance: 0.9 } }).thresholds).toEqual({
      ...DEFAULT_THRESHOLDS,
      path_variance: 0.9,
    });
  });
});

// ---- properties --------------------------------------------------------------------------------

const pathArb = fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { minLength: 1, maxLength: 12 });
const runsArb = fc.array(fc.tuple(pathArb, fc.boolean()), { minLength: 1, maxLength: 8 });
const build = (runs: [string[], boolean][]) =>
  runs.map(([p, done]) => trace(p, { status: done ? 'completed' : 'failed' }));

describe('properties', () => {
  it('H(next | current) = 0 for every deterministic linear program, however long and however many runs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 5 }), (n, k) => {
        const a = analyzeRuns(Array.from({ length: k }, () => trace(linear(n))));
        expect(a.transitions.entropy_bits).toBe(0);
        expect(a.transitions.total).toBe(k * (n - 1));
        expect(a.paths.path_variance).toBe(0);
        expect(a.runs.every((r) => r.first_divergence === null)).toBe(true);
        expect(a.alerts).toEqual([]);
      }),
    );
  });

  it('0 ≤ H(next | current) ≤ log2(max out-degree), and each state’s entropy is within its own bound', () => {
    fc.assert(
      fc.property(runsArb, (runs) => {
        const t = analyzeRuns(build(runs)).transitions;
        expect(t.entropy_bits).toBeGreaterThanOrEqual(0);
        expect(t.entropy_bits).toBeLessThanOrEqual(Math.log2(Math.max(1, t.max_out_degree)) + 1e-12);
        for (const s of t.states) {
          expect(s.entropy_bits).toBeGreaterThanOrEqual(0);
          expect(s.entropy_bits).toBeLessThanOrEqual(Math.log2(s.next.length) + 1e-12);
        }
      }),
    );
  });

  it('path variance is in [0, 1], and 0 when all runs take the same path', () => {
    fc.assert(
      fc.property(runsArb, pathArb, fc.integer({ min: 1, max: 6 }), (runs, p, k) => {
        const v = analyzeRuns(build(runs)).paths.path_variance;
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
        expect(analyzeRuns(Array.from({ length: k }, () => trace(p))).paths.path_variance).toBe(0);
      }),
    );
  });

  it('cross-run metrics do not depend on the order of the runs', () => {
    fc.assert(
      fc.property(runsArb, (runs) => {
        const a = analyzeRuns(build(runs));
        const b = analyzeRuns(build([...runs].reverse()));
        expect(b.transitions).toEqual(a.transitions);
        expect(b.paths).toEqual(a.paths);
        expect(b.alerts.filter((x) => x.run_id === null)).toEqual(a.alerts.filter((x) => x.run_id === null));
      }),
    );
  });

  it('a run never diverges from a baseline that contains it, and the novel-transition rate is in [0, 1]', () => {
    fc.assert(
      fc.property(runsArb, runsArb, (runs, base) => {
        const analyzed = build(runs);
        const a = analyzeRuns(analyzed, { baseline: [...build(base), ...analyzed] });
        expect(a.baseline!.novel_transitions).toBe(0);
        expect(a.runs.every((r) => r.first_divergence === null)).toBe(true);
        const b = analyzeRuns(analyzed, { baseline: build(base) });
        expect(b.baseline!.novel_transition_rate).toBeGreaterThanOrEqual(0);
        expect(b.baseline!.novel_transition_rate).toBeLessThanOrEqual(1);
      }),
    );
  });
});
