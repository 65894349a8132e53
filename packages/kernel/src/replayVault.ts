/**
 * Replay of runs with sensitive inputs (docs/privacy.md). A bundle holds commitments, never the
 * values. Given vault entries (salt and value) that match their commitments, the replay puts the
 * values back and re-derives every decision; paths without one are *sealed* (the value is in a
 * vault the replay was not given) or *tombstoned* (a values_erased event says it was erased), and
 * the conditions that read them take their recorded decision, which the report lists.
 */
import { ADMIN_EVENT_TYPES, type ConditionEvaluatedEvent, type TraceEvent } from './events.js';
import type { Hasher } from './hash.js';
import type { JsonValue, Program } from './program.js';
import { commitValue, isCommitment, Redactor, replaceAtPaths, type Sealed, type SealedDecisions } from './redact.js';
import { isUnder } from './statePath.js';

/** One vault row that still holds its value. */
export interface VaultEntry {
  path: string;
  salt: string;
  value: JsonValue;
}

export interface VaultReport {
  /** Input paths held as commitments in the bundle. */
  committed: string[];
  /** Of those, the paths whose values the replay did not have. */
  sealed: string[];
  /** Of those, the paths erased by a values_erased event of the trace. */
  tombstoned: string[];
  /** Recorded decisions reused because their guards read a sealed path. */
  decisions: { seq: number; step: string; paths: string[] }[];
  /** Tool calls whose arguments carry sealed values (their recorded results were used as always). */
  tool_calls: { seq: number; step: string; paths: string[] }[];
  /** Erasure events after run_finished: not re-derived, they are not the machine's decisions. */
  admin_events: number;
}

export interface VaultView {
  /** The input the machine runs on: the bundle's, with every verified vault value put back. */
  input: unknown;
  /** The run's own events: the trace without the erasure events after run_finished. */
  runEvents: TraceEvent[];
  redact?: Redactor;
  sealed?: SealedDecisions;
  report: VaultReport | null;
}

/** Paths (`input.…`) of the commitments in a redacted input. */
export function committedPaths(input: unknown): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (path: string, v: unknown): void => {
    if (isCommitment(v)) out.set(path, v);
    else if (Array.isArray(v)) v.forEach((e, i) => walk(`${path}.${i}`, e));
    else if (v !== null && typeof v === 'object')
      for (const k of Object.keys(v)) walk(`${path}.${k}`, (v as Record<string, unknown>)[k]);
  };
  walk('input', input);
  return out;
}

export function vaultView(
  events: readonly TraceEvent[],
  input: unknown,
  hasher: Hasher,
  vault: readonly VaultEntry[] = [],
): VaultView {
  let end = events.length;
  while (end > 0 && ADMIN_EVENT_TYPES.includes(events[end - 1]!.type)) end--;
  const runEvents = events.slice(0, end);
  const admin = events.slice(end);
  const committed = new Map([...committedPaths(input)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  if (committed.size === 0 && admin.length === 0) return { input, runEvents, report: null };

  const values = new Map<string, JsonValue>();
  for (const v of vault) {
    const c = committed.get(v.path);
    if (c !== undefined && commitValue(hasher, v.salt, v.value) === c) values.set(v.path, v.value);
  }
  const entries: Sealed[] = [...committed].map(([path, commitment]) =>
    values.has(path) ? { path, commitment, value: values.get(path)! } : { path, commitment },
  );
  const sealedPaths = entries.filter((e) => e.value === undefined).map((e) => e.path);
  const erased = new Set(admin.flatMap((e) => (e.type === 'values_erased' ? e.paths : [])));
  const report: VaultReport = {
    committed: [...committed.keys()],
    sealed: sealedPaths,
    tombstoned: sealedPaths.filter((p) => erased.has(p)),
    decisions: [],
    tool_calls: [],
    admin_events: admin.length,
  };
  const view: VaultView = { input: replaceAtPaths(input, values), runEvents, report };
  if (values.size > 0) view.redact = new Redactor(entries);
  if (sealedPaths.length > 0) {
    const conditions = runEvents.filter((e): e is ConditionEvaluatedEvent => e.type === 'condition_evaluated');
    view.sealed = {
      paths: sealedPaths,
      recorded: (step, visit) => conditions.find((e) => e.step === step && e.visit === visit),
      used: (seq, step, paths) => report.decisions.push({ seq, step, paths }),
    };
  }
  return view;
}

/** Fill in the tool calls of the replayed events whose arguments read sealed paths. */
export function reportSealedToolCalls(report: VaultReport, program: Program, replayed: readonly TraceEvent[]): void {
  if (report.sealed.length === 0) return;
  const args = new Map<string, Record<string, unknown>>();
  for (const s of program.steps) {
    if (s.kind === 'tool' && s.args) args.set(s.id, s.args);
    if (s.kind === 'parallel') for (const c of s.children) if (c.kind === 'tool' && c.args) args.set(c.id, c.args);
  }
  for (const e of replayed) {
    if (e.type !== 'step_started' || e.kind !== 'tool') continue;
    const sources = Object.values(args.get(e.step) ?? {}).filter((v): v is string => typeof v === 'string');
    const paths = report.sealed.filter((p) => sources.some((src) => isUnder(p, src) || isUnder(src, p)));
    if (paths.length) report.tool_calls.push({ seq: e.seq, step: e.step, paths });
  }
}
