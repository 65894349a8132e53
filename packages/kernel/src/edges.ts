/**
 * The program's edge table: every transition its steps declare, with the field that declares it.
 * Each kind's edges (`next`, `cases[].next`, `else`, `on_timeout`) are described in stepKinds.ts,
 * `on_exhausted` here; the successor, the validator, the policy pre-flight, `paths` and `graph`
 * read edges through this table.
 *
 * A program is an immutable input, so the table is built once per program object.
 */
import { memoByObject } from './memo.js';
import { startOf, type Program, type Step } from './program.js';
import { kindRules } from './stepKinds.js';

export type EdgeVia = 'next' | 'case' | 'else' | 'on_exhausted' | 'on_timeout';

export interface Edge {
  from: string;
  to: string;
  via: EdgeVia;
  /** For `case`: the index of the case in `cases`. */
  case?: number;
  /** For `case`: the case's `when`. */
  guard?: string;
  /** JSON pointer of the field that names `to`, e.g. `/steps/3/cases/1/next`. */
  path: string;
}

export interface EdgeTable {
  /** The first step: `start`, else the first declared step (undefined for a program without steps). */
  readonly start: string | undefined;
  /** Every edge, by step declaration order, then in the order `edgesOfStep` lists a step's edges. */
  readonly edges: readonly Edge[];
  /** The edges of `steps[index]`. */
  at(index: number): readonly Edge[];
  /** The edges of step `id` (its first declaration when the id is declared twice); none for an unknown id. */
  from(id: string): readonly Edge[];
}

const NONE: readonly Edge[] = [];

/** The edge table of `program`, built on first use and shared by every reader of that program object. */
export const edgeTable: (program: Program) => EdgeTable = memoByObject(buildTable);

function buildTable(program: Program): EdgeTable {
  const perStep = program.steps.map((step, i) => edgesOfStep(step, i));
  const firstIndex = new Map<string, number>();
  program.steps.forEach((s, i) => {
    if (!firstIndex.has(s.id)) firstIndex.set(s.id, i);
  });
  return {
    start: startOf(program),
    edges: perStep.flat(),
    at: (index) => perStep[index] ?? NONE,
    from: (id) => {
      const i = firstIndex.get(id);
      return i === undefined ? NONE : perStep[i]!;
    },
  };
}

/** The edges `steps[index]` declares: its kind's own edges in field order (stepKinds.ts), then on_exhausted. */
function edgesOfStep(step: Step, index: number): Edge[] {
  const at = `/steps/${index}`;
  const out = kindRules(step).edges(step, at);
  if (step.on_exhausted !== undefined)
    out.push({ from: step.id, to: step.on_exhausted, via: 'on_exhausted', path: `${at}/on_exhausted` });
  return out;
}
