/**
 * End to end: `nano-vm analyze` on the examples, run into a real SQLite file by the real, built CLI.
 * `npm test` builds first (pretest).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Analysis, Receipt } from '@nano-vm/kernel';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
let dir: string;
let store: string;

/** What `--json` prints when a command fails. */
interface ErrorOutput {
  error: { code: string; message: string };
}

/** `json<T>()`: stdout parsed as the shape the command prints with `--json` (`Analysis` for analyze). */
function nanoVm(...args: string[]): { code: number; out: string; err: string; json: <T = unknown>() => T } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NANO_VM_STORE: 'memory:' },
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: <T>() => JSON.parse(r.stdout) as T };
}

/** run_id by case, from `nano-vm run --json`. */
const ids: Record<string, Record<string, string>> = {};
const receipts: Record<string, Receipt> = {};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-analyze-'));
  store = `sqlite:${join(dir, 'runs.db')}`;
  for (const ex of ['refund', 'kyc']) {
    const r = nanoVm('run', `examples/${ex}`, '--store', store, '--out', join(dir, ex), '--json');
    expect(r.code).toBe(0);
    ids[ex] = {};
    for (const line of r.out.trim().split('\n')) {
      const x = JSON.parse(line);
      ids[ex]![x.case] = x.run_id;
      receipts[`${ex}.${x.case}`] = x.receipt;
    }
  }
});

const bundle = (ex: string, c: string) => join(dir, ex, `program.${c}.bundle.json`);
const H_REFUND = (3 / 7) * Math.log2(3);

describe('nano-vm analyze', () => {
  it('by program file: every stored run of that program, the metrics of docs/analyzer.md and exit 1 on alerts', () => {
    const r = nanoVm('analyze', 'examples/refund/program.yaml', '--store', store, '--json');
    expect(r.code).toBe(1);
    const a = r.json<Analysis>();
    expect(Object.keys(a)).toEqual([
      'format',
      'program',
      'thresholds',
      'runs',
      'transitions',
      'paths',
      'baseline',
      'alerts',
    ]);
    expect(a.format).toBe('nano-vm.analysis/v1');
    expect(a.program.id).toBe('refund');
    expect(a.runs.map((x) => x.run_id).sort()).toEqual(Object.values(ids.refund!).sort());
    expect(a.transitions.total).toBe(7);
    expect(a.transitions.entropy_bits).toBeCloseTo(H_REFUND, 12);
    expect(a.transitions.max_out_degree).toBe(3);
    expect(a.paths).toEqual({
      distinct: 3,
      modal: ['classify', 'decide', 'issue_refund', 'refunded'],
      modal_runs: 1,
      path_variance: 2 / 3,
    });
    const injection = a.runs.find((x) => x.run_id === ids.refund!.injection);
    expect(injection).toMatchObject({
      outcome: 'NEEDS_HUMAN_REVIEW',
      retries: 1,
      health: { visits: 2, retry_density: 0.5, rejected_outputs: 1, invariant_violation_rate: 0.5 },
      first_divergence: { index: 2, step: 'manual_review', expected: ['issue_refund'], against: 'modal' },
    });
    expect(a.alerts.map((x) => [x.code, x.run_id])).toEqual([
      ['A_PATH_VARIANCE', null],
      ['A_RETRY_DENSITY', ids.refund!.injection],
      ['A_INVARIANT_VIOLATIONS', ids.refund!.injection],
    ]);
    for (const x of a.alerts)
      expect(Object.keys(x)).toEqual(['code', 'metric', 'value', 'threshold', 'run_id', 'message']);
    // The worked example in docs/analyzer.md quotes these figures.
    const doc = readFileSync(join(ROOT, 'docs/analyzer.md'), 'utf8');
    expect(doc).toContain(`≈ ${a.transitions.entropy_bits.toFixed(4)}`);
    expect(doc).toContain(`≈ ${a.paths.path_variance.toFixed(4)} > 0.5`);
  });

  it('prints a table of runs, the cross-run metrics and the alerts for people', () => {
    const r = nanoVm('analyze', 'examples/kyc', '--store', store);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/analysis of program kyc-onboarding \([0-9a-f]{12}…\): 6 runs/);
    expect(r.out).toContain(`${ids.kyc!.clean}  completed  APPROVED`);
    expect(r.out).toMatch(/H\(next \| current\) = 0\.\d+ bits/);
    expect(r.out).toContain('A_INVARIANT_VIOLATIONS');
    const a = nanoVm('analyze', 'examples/kyc', '--store', store, '--json').json<Analysis>();
    expect(a.runs).toHaveLength(6);
    expect(a.transitions.max_out_degree).toBe(2);
    expect(a.transitions.entropy_bits).toBeGreaterThan(0);
    expect(a.transitions.entropy_bits).toBeLessThanOrEqual(1);
    expect(a.runs.find((x) => x.run_id === ids.kyc!.missing_documents)!.first_divergence).toMatchObject({
      index: 1,
      step: 'insufficient_data',
    });
  });

  it('by run ids: exit 0 when no alert fires', () => {
    const r = nanoVm('analyze', ids.refund!.approve!, ids.refund!.deny!, '--store', store, '--json');
    expect(r.code).toBe(0);
    const a = r.json<Analysis>();
    expect(a.runs.map((x) => x.run_id)).toEqual([ids.refund!.approve, ids.refund!.deny]);
    // classify → decide ×2, decide → issue_refund | rejected, issue_refund → refunded: 2/5 · 1 bit.
    expect(a.transitions.entropy_bits).toBe(0.4);
    expect(a.paths.path_variance).toBe(0.5);
    expect(a.alerts).toEqual([]);
    expect(nanoVm('analyze', ids.refund!.approve!, '--store', store).out).toContain('alerts        none');
  });

  it('by bundle, against a baseline of bundles: novel transitions and where the run diverged', () => {
    expect(nanoVm('analyze', bundle('refund', 'approve'), '--json').code).toBe(0);
    const r = nanoVm(
      'analyze',
      bundle('refund', 'injection'),
      '--baseline',
      `${bundle('refund', 'approve')},${bundle('refund', 'deny')}`,
      '--json',
    );
    expect(r.code).toBe(1);
    const a = r.json<Analysis>();
    expect(a.baseline).toEqual({
      runs: 2,
      transitions: 5,
      novel_transitions: 1,
      novel_transition_rate: 0.5,
      runs_off_baseline: 1,
      novel: [{ from: 'decide', to: 'manual_review', count: 1 }],
    });
    expect(a.runs[0]!.first_divergence).toEqual({
      index: 2,
      step: 'manual_review',
      expected: ['issue_refund', 'rejected'],
      against: 'baseline',
    });
    expect(a.alerts.map((x) => x.code)).toEqual(['A_NOVEL_TRANSITIONS', 'A_RETRY_DENSITY', 'A_INVARIANT_VIOLATIONS']);
    // A baseline given as run ids from the store, repeated option form.
    const s = nanoVm(
      'analyze',
      bundle('refund', 'deny'),
      '--baseline',
      ids.refund!.approve!,
      '--baseline',
      ids.refund!.deny!,
      '--store',
      store,
      '--json',
    );
    expect(s.code).toBe(0);
    expect(s.json<Analysis>().baseline).toMatchObject({ runs: 2, novel_transitions: 0, runs_off_baseline: 0 });
  });

  it('thresholds are configurable; the ones in force are reported', () => {
    const r = nanoVm(
      'analyze',
      'examples/refund/program.yaml',
      '--store',
      store,
      '--json',
      '--threshold',
      'path_variance=0.7',
      '--threshold',
      'retry_density=0.5',
      '--threshold',
      'invariant_violation_rate=1',
    );
    expect(r.code).toBe(0);
    expect(r.json<Analysis>().thresholds).toMatchObject({
      path_variance: 0.7,
      retry_density: 0.5,
      invariant_violation_rate: 1,
      transition_entropy_bits: 1,
    });
    const tight = nanoVm(
      'analyze',
      'examples/refund/program.yaml',
      '--store',
      store,
      '--json',
      '--threshold',
      'transition_entropy_bits=0.5',
    );
    expect(tight.json<Analysis>().alerts[0]).toMatchObject({
      code: 'A_TRANSITION_ENTROPY',
      metric: 'transition_entropy_bits',
      threshold: 0.5,
      run_id: null,
    });
  });

  it('each run’s receipt carries its health', () => {
    expect(receipts['refund.injection']!.health).toEqual({
      visits: 2,
      retry_density: 0.5,
      repeated_tool_calls: 0,
      tool_churn: 0,
      rejected_outputs: 1,
      failed_checks: 0,
      invariant_violations: 1,
      invariant_violation_rate: 0.5,
    });
    expect(receipts['kyc.injection']!.health).toMatchObject({
      visits: 7,
      rejected_outputs: 2,
      invariant_violations: 2,
    });
    expect(nanoVm('verify', bundle('kyc', 'injection'), '--json').json()).toMatchObject({ valid: true });
  });

  it('refuses a bundle that does not verify (exit 1, its verify code)', () => {
    const b = JSON.parse(readFileSync(bundle('refund', 'approve'), 'utf8'));
    b.receipt.health.retry_density = 0.9;
    const f = join(dir, 'tampered.json');
    writeFileSync(f, JSON.stringify(b));
    const r = nanoVm('analyze', f, '--json');
    expect(r.code).toBe(1);
    expect(r.json<ErrorOutput>().error).toMatchObject({
      code: 'E_RECEIPT_MISMATCH',
      message: expect.stringContaining('/health/retry_density'),
    });
  });

  it('exit 2 for bad arguments, unknown runs, a program with no runs and runs of two programs', () => {
    const codeOf = (...args: string[]) => {
      const r = nanoVm(...args, '--json');
      return [r.code, r.json<ErrorOutput>().error.code];
    };
    expect(codeOf('analyze')).toEqual([2, 'E_USAGE']);
    expect(codeOf('analyze', 'examples/refund', '--threshold', 'entropy=1')).toEqual([2, 'E_USAGE']);
    expect(codeOf('analyze', 'examples/refund', '--threshold', 'path_variance=-1')).toEqual([2, 'E_USAGE']);
    expect(codeOf('analyze', 'examples/refund', '--bogus')).toEqual([2, 'E_USAGE']);
    expect(codeOf('analyze', 'run-does-not-exist', '--store', store)).toEqual([2, 'E_STORE_NO_RUN']);
    expect(codeOf('analyze', 'examples/approval/program.yaml', '--store', store)).toEqual([2, 'E_NO_RUNS']);
    // A store file that does not exist is not created (issue 11).
    expect(codeOf('analyze', 'examples/refund/program.yaml', '--store', `sqlite:${join(dir, 'empty.db')}`)).toEqual([
      2,
      'E_STORE_MISSING',
    ]);
    expect(codeOf('analyze', 'examples/refund', 'examples/kyc', '--store', store)).toEqual([2, 'E_MIXED_PROGRAMS']);
  });
});
