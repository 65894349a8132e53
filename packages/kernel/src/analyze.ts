/**
 * The analyzer (docs/analyzer.md): per-run health from each run's receipt, and cross-run metrics
 * over the runs of one program — transition entropy H(next | current), path variance, novelty
 * against a baseline, and where each run first left the reference path. A pure function of the
 * events it is given: the same runs in the same order give the same analysis, member for member.
 */
import { NanoVmError } from './errors.js';
import type { RunStatus, TraceEvent } from './events.js';
import { computeReceipt, type Receipt, type RunHealth } from './receipt.js';

export const ANALYSIS_FORMAT = 'nano-vm.analysis/v1';

/** Appended to the path of a run that finished without reaching an end step (failed, budget, stall). */
export const STOP = '(stop)';

/** An alert fires when a metric's value is strictly greater than its threshold. */
export interface AnalyzerThresholds {
  /** Per run: retries per step visit. */
  retry_density: number;
  /** Per run: share of tool calls that repeat an earlier call (same tool, same arguments). */
  tool_churn: number;
  /** Per run: invariant violations per step visit. */
  invariant_violation_rate: number;
  /** Per run: blocked actions (transition_rejected events). */
  blocked_actions: number;
  /** Across runs: conditional entropy H(next | current) in bits. */
  transition_entropy_bits: number;
  /** Across runs: share of runs whose path is not the modal path. */
  path_variance: number;
  /** Against the baseline: share of transitions never taken by a baseline run. */
  novel_transition_rate: number;
}

export const DEFAULT_THRESHOLDS: Readonly<AnalyzerThresholds> = Object.freeze({
  retry_density: 0.25,
  tool_churn: 0.25,
  invariant_violation_rate: 0.1,
  blocked_actions: 0,
  transition_entropy_bits: 1,
  path_variance: 0.5,
  novel_transition_rate: 0,
});

export const THRESHOLD_NAMES = Object.keys(DEFAULT_THRESHOLDS) as (keyof AnalyzerThresholds)[];

export type AlertCode =
  | 'A_RETRY_DENSITY'
  | 'A_TOOL_CHURN'
  | 'A_INVARIANT_VIOLATIONS'
  | 'A_BLOCKED_ACTIONS'
  | 'A_TRANSITION_ENTROPY'
  | 'A_PATH_VARIANCE'
  | 'A_NOVEL_TRANSITIONS';

export interface Alert {
  code: AlertCode;
  metric: keyof AnalyzerThresholds;
  value: number;
  threshold: number;
  /** The run the alert is about; null for cross-run metrics. */
  run_id: string | null;
  message: string;
}

export interface PathDivergence {
  /** 0-based index into the run's path where it first differs from every reference path. */
  index: number;
  /** What the run did there; null when its path ended (a run still running). */
  step: string | null;
  /** What the reference paths sharing the longest prefix did there (sorted, distinct; empty when they ended). */
  expected: string[];
  against: 'modal' | 'baseline';
}

export interface RunAnalysis {
  run_id: string;
  status: RunStatus | 'running';
  outcome: string | null;
  /** The receipt's path, plus STOP when the run finished without reaching an end step. */
  path: string[];
  retries: number;
  tool_calls: number;
  blocked_actions: number;
  health: RunHealth;
  /** null when the path equals the modal path (or, with a baseline, some baseline run's path). */
  first_divergence: PathDivergence | null;
}

export interface StateEntropy {
  step: string;
  /** Transitions recorded out of this step, over all runs. */
  transitions: number;
  /** H(next | current = step) in bits. */
  entropy_bits: number;
  next: { step: string; count: number }[];
}

export interface TransitionCount {
  from: string;
  to: string;
  count: number;
}

export interface Analysis {
  format: typeof ANALYSIS_FORMAT;
  program: { id: string; hash: string };
  thresholds: AnalyzerThresholds;
  runs: RunAnalysis[];
  transitions: {
    total: number;
    /** H(next | current) = Σ_c p(c) · H(next | current = c), with p(c) = n_c / total. */
    entropy_bits: number;
    /** Most distinct successors of any step; entropy_bits ≤ log2(max_out_degree). */
    max_out_degree: number;
    states: StateEntropy[];
  };
  paths: {
    distinct: number;
    modal: string[];
    modal_runs: number;
    /** (runs − modal_runs) / runs. */
    path_variance: number;
  };
  baseline: {
    runs: number;
    transitions: number;
    /** Transitions of the analyzed runs whose (from, to) pair no baseline run took. */
    novel_transitions: number;
    novel_transition_rate: number;
    /** Analyzed runs whose path equals no baseline run's path. */
    runs_off_baseline: number;
    novel: TransitionCount[];
  } | null;
  alerts: Alert[];
}

export interface AnalyzeOptions {
  /** Known-good runs to compare against (any program; usually an earlier version or an approved set). */
  baseline?: readonly (readonly TraceEvent[])[];
  thresholds?: Partial<AnalyzerThresholds>;
}

export class AnalyzeError extends NanoVmError<'E_NO_RUNS' | 'E_MIXED_PROGRAMS'> {}

/** Code-unit order, never locale order: the analysis must not depend on where it runs. */
const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const ratio = (n: number, d: number): number => (d === 0 ? 0 : n / d);
const fmt = (v: number): string => String(Number(v.toFixed(4)));
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** The receipt's path, plus STOP when the run finished somewhere other than an end step. */
export function analyzedPath(r: Pick<Receipt, 'path' | 'status'>): string[] {
  return r.status === 'completed' || r.status === 'running' ? r.path : [...r.path, STOP];
}

/** Consecutive pairs of each path, counted: Map<from, Map<to, count>>. */
function countTransitions(paths: readonly string[][]): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const p of paths)
    for (let i = 0; i + 1 < p.length; i++) {
      let next = out.get(p[i]!);
      if (!next) out.set(p[i]!, (next = new Map()));
      next.set(p[i + 1]!, (next.get(p[i + 1]!) ?? 0) + 1);
    }
  return out;
}

/** H(next | current) over every recorded transition of every path, in bits, with its per-state breakdown. */
export function transitionEntropy(paths: readonly string[][]): Analysis['transitions'] {
  const counts = countTransitions(paths);
  let total = 0;
  for (const next of counts.values()) for (const n of next.values()) total += n;
  const states: StateEntropy[] = [];
  let entropy = 0;
  let maxOut = 0;
  for (const step of [...counts.keys()].sort(byText)) {
    const next = counts.get(step)!;
    let n = 0;
    for (const c of next.values()) n += c;
    let h = 0;
    const succ = [...next.keys()].sort(byText);
    for (const s of succ) {
      const p = next.get(s)! / n;
      h -= p * Math.log2(p);
    }
    entropy += (n / total) * h;
    maxOut = Math.max(maxOut, succ.length);
    states.push({ step, transitions: n, entropy_bits: h, next: succ.map((s) => ({ step: s, count: next.get(s)! })) });
  }
  return { total, entropy_bits: entropy, max_out_degree: maxOut, states };
}

/** The most frequent path (ties: the smallest by its JSON text) and the share of runs not on it. */
export function pathVariance(paths: readonly string[][]): Analysis['paths'] {
  const freq = new Map<string, number>();
  for (const p of paths) {
    const k = JSON.stringify(p);
    freq.set(k, (freq.get(k) ?? 0) + 1);
  }
  let modal = '';
  let modalRuns = 0;
  for (const k of [...freq.keys()].sort(byText)) {
    if (freq.get(k)! > modalRuns) {
      modal = k;
      modalRuns = freq.get(k)!;
    }
  }
  return {
    distinct: freq.size,
    modal: modalRuns ? (JSON.parse(modal) as string[]) : [],
    modal_runs: modalRuns,
    path_variance: ratio(paths.length - modalRuns, paths.length),
  };
}

/** Where `path` first leaves every reference path; null when it equals one of them. */
export function firstDivergence(
  path: readonly string[],
  refs: readonly (readonly string[])[],
  against: PathDivergence['against'],
): PathDivergence | null {
  let best = -1;
  let expected = new Set<string>();
  for (const ref of refs) {
    let k = 0;
    while (k < path.length && k < ref.length && path[k] === ref[k]) k++;
    if (k === path.length && k === ref.length) return null;
    if (k > best) {
      best = k;
      expected = new Set();
    }
    if (k === best && k < ref.length) expected.add(ref[k]!);
  }
  if (best < 0) return null;
  return { index: best, step: path[best] ?? null, expected: [...expected].sort(byText), against };
}

export function analyzeRuns(runs: readonly (readonly TraceEvent[])[], opts: AnalyzeOptions = {}): Analysis {
  if (runs.length === 0) throw new AnalyzeError('E_NO_RUNS', 'no runs to analyze');
  const thresholds: AnalyzerThresholds = { ...DEFAULT_THRESHOLDS, ...opts.thresholds };
  const receipts = runs.map((events) => computeReceipt(events));
  const first = receipts[0]!;
  const other = receipts.find((r) => r.program_hash !== first.program_hash);
  if (other)
    throw new AnalyzeError(
      'E_MIXED_PROGRAMS',
      `runs ${first.run_id} and ${other.run_id} belong to different programs (${first.program_id} ${first.program_hash.slice(0, 12)}…, ${other.program_id} ${other.program_hash.slice(0, 12)}…); analyze one program at a time and compare versions with a baseline`,
    );
  const paths = receipts.map(analyzedPath);
  const transitions = transitionEntropy(paths);
  const pathStats = pathVariance(paths);

  let baseline: Analysis['baseline'] = null;
  let refs: string[][] = [pathStats.modal];
  let against: PathDivergence['against'] = 'modal';
  if (opts.baseline && opts.baseline.length) {
    refs = opts.baseline.map((events) => analyzedPath(computeReceipt(events)));
    against = 'baseline';
    const known = countTransitions(refs);
    let baseTotal = 0;
    for (const next of known.values()) for (const n of next.values()) baseTotal += n;
    const novel: TransitionCount[] = [];
    let novelCount = 0;
    for (const s of transitions.states)
      for (const n of s.next)
        if (!known.get(s.step)?.has(n.step)) {
          novel.push({ from: s.step, to: n.step, count: n.count });
          novelCount += n.count;
        }
    const refKeys = new Set(refs.map((p) => JSON.stringify(p)));
    baseline = {
      runs: refs.length,
      transitions: baseTotal,
      novel_transitions: novelCount,
      novel_transition_rate: ratio(novelCount, transitions.total),
      runs_off_baseline: paths.filter((p) => !refKeys.has(JSON.stringify(p))).length,
      novel,
    };
  }

  const analyzed: RunAnalysis[] = receipts.map((r, i) => ({
    run_id: r.run_id,
    status: r.status,
    outcome: r.outcome,
    path: paths[i]!,
    retries: r.counts.retries,
    tool_calls: r.counts.tool_calls,
    blocked_actions: r.counts.blocked_actions,
    health: r.health,
    first_divergence: firstDivergence(paths[i]!, refs, against),
  }));

  const alerts: Alert[] = [];
  /** Fires when value > threshold; the message reads "<who>: <metric> <value> > <threshold>: <detail>". */
  const check = (
    code: AlertCode,
    metric: keyof AnalyzerThresholds,
    label: string,
    value: number,
    run_id: string | null,
    detail: string,
  ) => {
    const threshold = thresholds[metric];
    if (value > threshold)
      alerts.push({
        code,
        metric,
        value,
        threshold,
        run_id,
        message: `${run_id ?? 'all runs'}: ${label} ${fmt(value)} > ${fmt(threshold)}: ${detail}`,
      });
  };
  const t = transitions;
  const branching = t.states.filter((s) => s.entropy_bits > 0).map((s) => s.step);
  check(
    'A_TRANSITION_ENTROPY',
    'transition_entropy_bits',
    'transition entropy H(next|current) in bits',
    t.entropy_bits,
    null,
    `${t.total} transitions, branching at ${branching.join(', ')}`,
  );
  check(
    'A_PATH_VARIANCE',
    'path_variance',
    'path variance',
    pathStats.path_variance,
    null,
    `${runs.length - pathStats.modal_runs} of ${runs.length} runs are off the modal path (${pathStats.distinct} distinct paths)`,
  );
  if (baseline)
    check(
      'A_NOVEL_TRANSITIONS',
      'novel_transition_rate',
      'novel-transition rate',
      baseline.novel_transition_rate,
      null,
      `${baseline.novel_transitions} of ${t.total} transitions were never taken by the ${baseline.runs} baseline runs: ${baseline.novel.map((n) => `${n.from} → ${n.to}`).join(', ')}`,
    );
  for (const a of analyzed) {
    const h = a.health;
    check(
      'A_RETRY_DENSITY',
      'retry_density',
      'retry density',
      h.retry_density,
      a.run_id,
      `${plural(a.retries, 'retry', 'retries')} over ${plural(h.visits, 'step visit')}`,
    );
    check(
      'A_TOOL_CHURN',
      'tool_churn',
      'tool churn',
      h.tool_churn,
      a.run_id,
      `${h.repeated_tool_calls} of ${plural(a.tool_calls, 'tool call')} repeat an earlier call with the same arguments`,
    );
    check(
      'A_INVARIANT_VIOLATIONS',
      'invariant_violation_rate',
      'invariant-violation rate',
      h.invariant_violation_rate,
      a.run_id,
      `${plural(h.rejected_outputs, 'rejected output')}, ${plural(h.failed_checks, 'failed check')}, ${plural(a.blocked_actions, 'blocked action')} over ${plural(h.visits, 'step visit')}`,
    );
    check(
      'A_BLOCKED_ACTIONS',
      'blocked_actions',
      'blocked actions',
      a.blocked_actions,
      a.run_id,
      `${plural(a.blocked_actions, 'transition')} rejected: ${a.blocked_actions === 1 ? 'a step asked for something it is not granted' : 'steps asked for what they are not granted'}`,
    );
  }

  return {
    format: ANALYSIS_FORMAT,
    program: { id: first.program_id, hash: first.program_hash },
    thresholds,
    runs: analyzed,
    transitions,
    paths: pathStats,
    baseline,
    alerts,
  };
}
