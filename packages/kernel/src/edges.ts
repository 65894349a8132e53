/**
 * The program's edge table: every transition its steps declare, with the field that declares it.
 * It is the one place that reads `next`, `cases[].next`, `else`, `on_timeout` and `on_exhausted`
 * as edges; the successor, the validator, the policy pre-flight, `paths` and `graph` read edges
 * through it.
 *
 * A program is an immutable input, so the table is built once per program object.
 */
import { NanoVmError } from './errors.js';
import { memoByObject } from './memo.js';
import { startOf, type Program, type Step } from './program.js';

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

/**
 * The edges `steps[index]` declares: its kind's own edges in field order (next; cases then else;
 * next then on_timeout), then on_exhausted.
 */
function edgesOfStep(step: Step, index: number): Edge[] {
  const at = `/steps/${index}`;
  const from = step.id;
  const out: Edge[] = [];
  switch (step.kind) {
    case 'llm':
    case 'tool':
    case 'parallel':
      out.push({ from, to: step.next, via: 'next', path: `${at}/next` });
      break;
    case 'condition':
      step.cases.forEach((c, k) =>
        out.push({ from, to: c.next, via: 'case', case: k, guard: c.when, path: `${at}/cases/${k}/next` }),
      );
      out.push({ from, to: step.else, via: 'else', path: `${at}/else` });
      break;
    case 'wait':
      out.push({ from, to: step.next, via: 'next', path: `${at}/next` });
      if (step.on_timeout !== undefined)
        out.push({ from, to: step.on_timeout, via: 'on_timeout', path: `${at}/on_timeout` });
      break;
    case 'end':
      break;
    default: {
      const _exhaustive: never = step;
      // Unreachable (the switch is exhaustive): only a bug, or a value from JS that skipped the types, gets here.
      throw new NanoVmError('E_INTERNAL', `edge table: unknown step kind in ${JSON.stringify(_exhaustive)}`);
    }
  }
  if (step.on_exhausted !== undefined)
    out.push({ from, to: step.on_exhausted, via: 'on_exhausted', path: `${at}/on_exhausted` });
  return out;
}
