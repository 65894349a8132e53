/**
 * What each step kind means to the static readers of a program: the edges it declares (the edge
 * table), how `graph` draws it, and how a run can end at it (`paths`, and the dashed "run fails"
 * arrows of `graph`). One entry per kind, in a table typed by `StepKind`, so a new kind that is
 * missing here fails to compile, and edges.ts, graph.ts and paths.ts hold no switch over kinds.
 *
 * What a kind does at run time is the successor's (successor.ts); its shape is the program
 * model's (program.ts, programSchema.ts).
 */
import { canonicalJson } from './canonicalJson.js';
import { durationText } from './durationText.js';
import type { Edge } from './edges.js';
import { NanoVmError } from './errors.js';
import type { GraphItem } from './graph.js';
import type { PathEnd } from './paths.js';
import type { OnError, ParallelChild, Step, StepKind } from './program.js';

/** A way a run can end at a step. */
export interface StepEnd {
  /** As `paths` reports it. */
  end: PathEnd;
  /** For a failure no end step declares: the label of the dashed arrow to "run fails" in `graph`. */
  failsWith?: string;
}

export interface StepKindRules<S extends Step> {
  /**
   * The edges the kind declares, in field order, without `on_exhausted` (every kind has it; the
   * edge table adds it last), as a new array. `at` is the step's JSON pointer, e.g. `/steps/3`.
   */
  edges(step: S, at: string): Edge[];
  /** The label `graph` writes on the kind's `next` or `on_timeout` edge (none when undefined). */
  edgeLabel(step: S, via: 'next' | 'on_timeout'): string | undefined;
  /** The step's node in `graph` (`id` is its node id; `visits` the max_visits line, if any). */
  node(step: S, id: string, visits: readonly string[]): GraphItem;
  /** The ends of a run at the step that belong to its kind (max_visits is common to all kinds). */
  ends(step: S): readonly StepEnd[];
}

type KindTable = { [K in StepKind]: StepKindRules<Extract<Step, { kind: K }>> };

const NO_ENDS: readonly StepEnd[] = [];

const effect: StepKindRules<Extract<Step, { kind: 'llm' | 'tool' }>> = {
  edges: (step, at) => [nextEdge(step, at)],
  edgeLabel: () => undefined,
  node: (step, id, visits) => ({ id, shape: step.kind, lines: [...effectLines(step), ...visits] }),
  ends: (step) =>
    hasFallback(step.on_error)
      ? NO_ENDS
      : [
          {
            end: { kind: 'step_failed', step: step.id, attempts: attemptsOf(step.on_error) },
            failsWith:
              step.on_error?.action === 'retry' ? `error after ${step.on_error.max_attempts} attempts` : 'error',
          },
        ],
};

export const STEP_KINDS: KindTable = {
  llm: effect,
  tool: effect,
  condition: {
    edges: (step, at) => [
      ...step.cases.map((c, k): Edge => ({
        from: step.id,
        to: c.next,
        via: 'case',
        case: k,
        guard: c.when,
        path: `${at}/cases/${k}/next`,
      })),
      { from: step.id, to: step.else, via: 'else', path: `${at}/else` },
    ],
    edgeLabel: () => undefined,
    node: (step, id, visits) => ({ id, shape: 'condition', lines: [step.id, ...visits] }),
    ends: () => NO_ENDS,
  },
  parallel: {
    edges: (step, at) => [nextEdge(step, at)],
    edgeLabel: () => undefined,
    node: (step, id, visits) => {
      const limit = step.max_concurrency !== undefined ? `, at most ${step.max_concurrency} at once` : '';
      return {
        id,
        title: `${step.id}: parallel${limit}${visits.length > 0 ? `, ${visits[0]}` : ''}`,
        children: step.children.map((c, j) => ({ id: `${id}_${j}`, shape: c.kind, lines: effectLines(c) })),
      };
    },
    ends: (step) => {
      const failing = step.children.filter((c) => !hasFallback(c.on_error));
      if (failing.length === 0) return NO_ENDS;
      const children = failing.map((c) => c.id);
      return [
        {
          end: {
            kind: 'step_failed',
            step: step.id,
            attempts: Math.max(...failing.map((c) => attemptsOf(c.on_error))),
            children,
          },
          failsWith: `error in ${children.join(', ')}`,
        },
      ];
    },
  },
  wait: {
    edges: (step, at) => [
      nextEdge(step, at),
      ...(step.on_timeout !== undefined
        ? [{ from: step.id, to: step.on_timeout, via: 'on_timeout' as const, path: `${at}/on_timeout` }]
        : []),
    ],
    edgeLabel: (step, via) =>
      via === 'next'
        ? 'event'
        : step.timeout_ms !== undefined
          ? `no event within ${durationText(step.timeout_ms)}`
          : 'timeout',
    node: (step, id, visits) => {
      const who = step.role !== undefined ? `wait for event from ${step.role}` : 'wait for event';
      return { id, shape: 'wait', lines: [step.id, who, ...visits] };
    },
    ends: (step) =>
      step.timeout_ms !== undefined && step.on_timeout === undefined
        ? [
            {
              end: { kind: 'wait_timeout', step: step.id, timeout_ms: step.timeout_ms },
              failsWith: `no event within ${durationText(step.timeout_ms)}`,
            },
          ]
        : NO_ENDS,
  },
  end: {
    edges: () => [],
    edgeLabel: () => undefined,
    node: (step, id) => ({
      id,
      shape: step.failure === true ? 'failure' : 'outcome',
      lines: [step.outcome, step.failure === true ? `${step.id} (failure)` : step.id],
    }),
    ends: (step) => [
      { end: { kind: 'outcome', step: step.id, outcome: step.outcome, failure: step.failure === true } },
    ],
  },
};

/** The rules of `step`'s kind, typed for that step. */
export function kindRules<S extends Step>(step: S): StepKindRules<S> {
  // Only a bug, or a value from JS that skipped the types, has a kind the table lacks.
  if (!Object.hasOwn(STEP_KINDS, step.kind))
    throw new NanoVmError('E_INTERNAL', `unknown step kind in ${JSON.stringify(step)}`);
  // The table is keyed by kind, so the entry for step.kind takes exactly this step's type.
  return STEP_KINDS[step.kind] as unknown as StepKindRules<S>;
}

function nextEdge(step: Step & { next: string }, at: string): Edge {
  return { from: step.id, to: step.next, via: 'next', path: `${at}/next` };
}

function effectLines(step: Extract<Step, { kind: 'llm' | 'tool' }> | ParallelChild): string[] {
  const lines = [step.id];
  if (step.kind === 'llm')
    lines.push('output' in step && 'enum' in step.output ? `llm: ${step.output.enum.join(' | ')}` : 'llm: JSON');
  else lines.push(`tool ${step.tool}`);
  const oe = step.on_error;
  if (oe?.action === 'retry')
    lines.push(
      `retry: ${oe.max_attempts} attempts${oe.then === 'fallback' ? `, then fallback ${clip(canonicalJson(oe.value ?? null))}` : ''}`,
    );
  else if (oe?.action === 'fallback') lines.push(`on error: fallback ${clip(canonicalJson(oe.value))}`);
  return lines;
}

function hasFallback(oe: OnError | undefined): boolean {
  return oe?.action === 'fallback' || (oe?.action === 'retry' && oe.then === 'fallback');
}

function attemptsOf(oe: OnError | undefined): number {
  return oe?.action === 'retry' ? oe.max_attempts : 1;
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}
