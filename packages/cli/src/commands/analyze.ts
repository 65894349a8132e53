import { existsSync } from 'node:fs';
import {
  firstErrorCode,
  THRESHOLD_NAMES,
  analyzeRuns,
  hashJson,
  NanoVmError,
  type Alert,
  type Analysis,
  type AnalyzerThresholds,
  type Bundle,
  type RunStartedEvent,
  type TraceEvent,
} from '@nano-vm/kernel';
import { nodeHasher, type Store } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { BUNDLE_TEXT, isBundleText, readVerifiedBundle } from '../bundleFile.js';
import { exampleLayout, isDirectory, loadProgramFile, readText } from '../inputs.js';
import { DEFAULT_STORE, openStore } from '../storeSpec.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const ANALYZE = defineCommand({
  name: 'analyze',
  summary:
    'Metrics and alerts over the runs of one program (docs/analyzer.md): exit 0 with no alert, 1 when an alert fired.',
  args: '<program file | example dir | run id | bundle.json …>',
  options: {
    store: {
      type: 'string',
      default: DEFAULT_STORE,
      value: '<sqlite:path | memory: | postgres://…>',
      defaultText: 'sqlite:./.nano-vm/nano-vm.db, or $NANO_VM_STORE',
      description: 'where program files and run ids are looked up (bundles need no store)',
    },
    baseline: {
      type: 'string',
      multiple: true,
      default: [],
      value: '<runs>',
      description:
        'known-good runs to compare with: program files, run ids or bundles, comma-separated (repeatable). Adds the novel-transition rate and measures divergence against the baseline paths',
    },
    threshold: {
      type: 'string',
      multiple: true,
      default: [],
      value: '<name>=<value>',
      description:
        'override one alert threshold (repeatable): retry_density, tool_churn, invariant_violation_rate, blocked_actions, transition_entropy_bits, path_variance, novel_transition_rate',
    },
    json: {
      type: 'boolean',
      default: false,
      description: 'one object: {format, program, thresholds, runs, transitions, paths, baseline, alerts}',
    },
  },
  run: analyzeCommand,
});
export const ANALYZE_USAGE = usageText(ANALYZE);

/** A program or bundle file name, as opposed to a run id. */
const FILE_NAME = /\.(json|ya?ml)$/;

interface Run {
  run_id: string;
  events: TraceEvent[];
}

/**
 * Metrics and alerts over the runs of one program (docs/analyzer.md). Exit 0 with no alerts, 1
 * when an alert fired (a check that did not pass, like verify), 2 when refused.
 */
export async function analyzeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(ANALYZE, argv);
  if (positionals.length === 0) throw new NanoVmError('E_USAGE', ANALYZE_USAGE);
  const thresholds = parseThresholds(values.threshold);
  const sources = new RunSources(values.store);
  try {
    const runs = await sources.collect(positionals);
    const baselineSpecs = values.baseline.flatMap((b) => b.split(',')).filter((b) => b !== '');
    const baseline = baselineSpecs.length ? await sources.collect(baselineSpecs) : [];
    const analysis: Analysis = analyzeRuns(
      runs.map((r) => r.events),
      { thresholds, ...(baseline.length ? { baseline: baseline.map((r) => r.events) } : {}) },
    );
    process.stdout.write(values.json ? `${JSON.stringify(analysis)}\n` : renderAnalysis(analysis));
    return analysis.alerts.length ? EXIT.FAILED : EXIT.OK;
  } finally {
    await sources.close();
  }
}

function parseThresholds(specs: string[]): Partial<AnalyzerThresholds> {
  const out: Partial<AnalyzerThresholds> = {};
  for (const spec of specs) {
    const m = /^([a-z_]+)=(.+)$/.exec(spec);
    const name = m?.[1] as keyof AnalyzerThresholds | undefined;
    if (!m || !name || !THRESHOLD_NAMES.includes(name))
      throw new NanoVmError(
        'E_USAGE',
        `--threshold "${spec}" must be <name>=<number> with a name among ${THRESHOLD_NAMES.join(', ')}`,
      );
    const v = Number(m[2]);
    if (!Number.isFinite(v) || v < 0)
      throw new NanoVmError('E_USAGE', `--threshold ${name} must be a number ≥ 0, got "${m[2]}"`);
    out[name] = v;
  }
  return out;
}

/** Resolves what the operator named — bundles, program files, example directories, run ids — into runs. */
class RunSources {
  private store: Store | undefined;
  constructor(private readonly spec: string) {}

  /** Opened only when a program or a run id needs it, so analyzing bundles touches no store. */
  private open(): Store {
    return (this.store ??= openStore(this.spec, 'existing'));
  }

  async close(): Promise<void> {
    await this.store?.close();
  }

  /** Every run the specs name, each once, in the order named (a program's runs in store order). */
  async collect(specs: string[]): Promise<Run[]> {
    const seen = new Set<string>();
    const out: Run[] = [];
    for (const spec of specs)
      for (const r of await this.resolve(spec))
        if (!seen.has(r.run_id)) {
          seen.add(r.run_id);
          out.push(r);
        }
    return out;
  }

  private async resolve(spec: string): Promise<Run[]> {
    if (isDirectory(spec)) return this.programRuns(exampleLayout(spec).programFile);
    // A run id never names a file: a missing program or bundle file is reported as one.
    if (!existsSync(spec)) {
      if (FILE_NAME.test(spec)) throw new NanoVmError('E_FILE', `cannot read program or bundle ${spec}: no such file`);
      return [await this.storedRun(spec)];
    }
    if (spec.endsWith('.json')) {
      const text = readText(spec, 'bundle or program', BUNDLE_TEXT);
      // Read as every command reads a bundle, so a damaged one gets the code verify gives it.
      if (isBundleText(text)) return [bundleRun(readVerifiedBundle(spec, text))];
    }
    return this.programRuns(spec);
  }

  private async storedRun(runId: string): Promise<Run> {
    const store = this.open();
    const run = await store.getRun(runId);
    if (!run) throw new NanoVmError('E_STORE_NO_RUN', `"${runId}" is not a file, a directory or a run in ${this.spec}`);
    return { run_id: runId, events: await store.events(runId) };
  }

  /** The stored runs whose program hashes to the same value as the file's. */
  private async programRuns(file: string): Promise<Run[]> {
    const loaded = loadProgramFile(file);
    if (!loaded.program)
      throw new NanoVmError(
        firstErrorCode(loaded.issues, 'E_PROGRAM_INVALID'),
        `program ${file} does not load`,
        loaded.issues,
      );
    const program = loaded.program;
    const hash = hashJson(nodeHasher, program);
    const store = this.open();
    const runs = (await store.listRuns()).filter(
      (r) => r.program_id === program.id && hashJson(nodeHasher, r.program) === hash,
    );
    if (runs.length === 0)
      throw new NanoVmError(
        'E_NO_RUNS',
        `no run of program ${program.id} (${file}, hash ${hash.slice(0, 12)}…) in ${this.spec}`,
      );
    const out: Run[] = [];
    for (const r of runs) out.push({ run_id: r.run_id, events: await store.events(r.run_id) });
    return out;
  }
}

/** A bundle is analyzed only if it verifies (readVerifiedBundle): metrics of a tampered trace would be evidence of nothing. */
function bundleRun(bundle: Bundle): Run {
  return { run_id: (bundle.events[0] as RunStartedEvent).run_id, events: bundle.events };
}

const num = (v: number): string => String(Number(v.toFixed(4)));
const arrow = (p: string[]): string => p.join(' → ');

export function renderAnalysis(a: Analysis): string {
  const out: string[] = [];
  out.push(
    `analysis of program ${a.program.id} (${a.program.hash.slice(0, 12)}…): ${a.runs.length} run${a.runs.length === 1 ? '' : 's'}`,
    '',
  );
  const rows = [
    ['run', 'status', 'outcome', 'visits', 'retry', 'churn', 'violations', 'blocked', 'path'],
    ...a.runs.map((r) => [
      r.run_id,
      r.status,
      r.outcome ?? '-',
      String(r.health.visits),
      num(r.health.retry_density),
      num(r.health.tool_churn),
      num(r.health.invariant_violation_rate),
      String(r.blocked_actions),
      arrow(r.path),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows)
    out.push(`  ${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`);
  out.push('');
  const t = a.transitions;
  out.push(
    `transitions   ${t.total} recorded; H(next | current) = ${num(t.entropy_bits)} bits (bound log2(max out-degree ${t.max_out_degree}) = ${num(Math.log2(Math.max(1, t.max_out_degree)))})`,
  );
  for (const s of t.states.filter((x) => x.entropy_bits > 0))
    out.push(
      `  ${s.step}: ${num(s.entropy_bits)} bits over ${s.transitions} → ${s.next.map((n) => `${n.step} ×${n.count}`).join(', ')}`,
    );
  const p = a.paths;
  out.push(
    `paths         ${p.distinct} distinct; modal path (${p.modal_runs} of ${a.runs.length}): ${arrow(p.modal)}; path variance ${num(p.path_variance)}`,
  );
  if (a.baseline) {
    const b = a.baseline;
    out.push(
      `baseline      ${b.runs} runs, ${b.transitions} transitions; novel transitions ${b.novel_transitions} of ${t.total} (rate ${num(b.novel_transition_rate)}); ${b.runs_off_baseline} of ${a.runs.length} runs off the baseline paths`,
    );
    for (const n of b.novel) out.push(`  new: ${n.from} → ${n.to} ×${n.count}`);
  }
  const diverging = a.runs.filter((r) => r.first_divergence);
  if (diverging.length) {
    out.push(`divergence    first step where each run left the ${a.baseline ? 'baseline paths' : 'modal path'}`);
    for (const r of diverging) {
      const d = r.first_divergence!;
      out.push(
        `  ${r.run_id}  at ${d.index}: ${d.step ?? '(path ended)'}${d.expected.length ? ` instead of ${d.expected.join(' | ')}` : ''}`,
      );
    }
  }
  out.push('', a.alerts.length ? `alerts (${a.alerts.length})` : 'alerts        none');
  for (const x of a.alerts) out.push(`  ${renderAlert(x)}`);
  return `${out.join('\n')}\n`;
}

const renderAlert = (x: Alert): string => `${x.code.padEnd(23)} ${x.message}`;
