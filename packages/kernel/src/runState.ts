/**
 * The run state: an immutable record of everything the successor needs to decide what comes next.
 * It is never changed in place; the successor returns a new one. Per-step records (visits, model
 * calls, the stored output) live in a persistent vector indexed by the step's slot, so making the
 * next state costs O(log32 steps) however long the program is.
 */
import type { Command } from './command.js';
import type { CompiledProgram, StepReads } from './compiledProgram.js';
import type { RunFinishedEvent } from './events.js';
import type { JsonValue } from './program.js';
import { Slots } from './slots.js';
import { setMember } from './dataMember.js';

export interface StepRecord {
  /** Times the step was entered. */
  readonly visits: number;
  /** Model calls made for this step id (llm steps and llm children). */
  readonly calls: number;
  /** The step's stored output (top-level steps that produce one), with its canonical text. */
  readonly output: StoredOutput | undefined;
}

export interface StoredOutput {
  readonly value: JsonValue;
  readonly text: string;
  readonly order: number;
}

/**
 * A step record. Always built here, with every member present, so every record has one shape:
 * records are made on every step, and a spread of records of varying shapes showed in profiles.
 */
export function stepRecord(visits: number, calls: number, output: StoredOutput | undefined): StepRecord {
  return { visits, calls, output };
}

export interface RunState {
  readonly input: unknown;
  /** What guards see as `policy` (a policy's thresholds) when the run is under one; else undefined. */
  readonly policyView: unknown;
  readonly records: Slots<StepRecord>;
  /** The step the run is at (meaningful while no command is pending). */
  readonly at: string;
  /** 1, or the attempt of a step being retried. */
  readonly attempt: number;
  readonly stepsTaken: number;
  readonly tokens: number;
  readonly cost: number;
  /** Consecutive steps that changed nothing. */
  readonly stalled: number;
  /** Clock reading of genesis, moved on by time spent suspended (the wall budget is run time). */
  readonly startedAt: number;
  readonly suspendedAt: number;
  /** Clock reading of the last event. */
  readonly lastMs: number;
  /** Events recorded so far (the next event's seq). */
  readonly seq: number;
  /** Outputs stored so far (the order in which outputs first appeared). */
  readonly stored: number;
  /** The command the host is performing, or null while the successor decides. */
  readonly pending: Command | null;
  readonly finished: RunFinishedEvent | null;
}

const NO_RECORD: StepRecord = stepRecord(0, 0, undefined);

/** The state right after genesis (seq 1): at the start step, nothing done. */
export function initialState(cp: CompiledProgram, input: unknown, genesisMs: number, policyView: unknown): RunState {
  return {
    input,
    policyView,
    records: Slots.empty<StepRecord>(cp.slot.size),
    at: cp.start,
    attempt: 1,
    stepsTaken: 0,
    tokens: 0,
    cost: 0,
    stalled: 0,
    startedAt: genesisMs,
    suspendedAt: 0,
    lastMs: genesisMs,
    seq: 1,
    stored: 0,
    pending: null,
    finished: null,
  };
}

export function recordOf(cp: CompiledProgram, records: Slots<StepRecord>, id: string): StepRecord {
  const i = cp.slot.get(id);
  return (i === undefined ? undefined : records.get(i)) ?? NO_RECORD;
}

/**
 * The state as guards, projections and tool arguments read it — `{ input, steps, policy }` —
 * with exactly the step outputs `reads` names (all of them, in the order they appeared, for 'all').
 */
export function stateView(
  cp: CompiledProgram,
  records: Slots<StepRecord>,
  input: unknown,
  policyView: unknown,
  reads: StepReads,
): { input: unknown; steps: Record<string, { output: JsonValue }>; policy?: unknown } {
  const steps: Record<string, { output: JsonValue }> = {};
  if (reads === 'all') {
    const present: Array<{ id: string; order: number; value: JsonValue }> = [];
    for (const [id, i] of cp.slot) {
      const o = records.get(i)?.output;
      if (o !== undefined) present.push({ id, order: o.order, value: o.value });
    }
    present.sort((a, b) => a.order - b.order);
    for (const p of present) setMember(steps, p.id, { output: p.value });
  } else
    for (const id of reads) {
      const o = recordOf(cp, records, id).output;
      if (o !== undefined) setMember(steps, id, { output: o.value });
    }
  return policyView !== undefined ? { input, steps, policy: policyView } : { input, steps };
}
