/**
 * Program-derived lookup tables, built once per program and shared by every run of it: steps and
 * parallel children by id, each with a dense slot number for the run state's per-step records,
 * the compiled guards, the budgets, and which step outputs each decision reads (so a decision sees
 * a view of exactly those, not a copy of the whole state).
 */
import { compileGuard } from './guard/index.js';
import { guardTree } from './guard/compile.js';
import type { CompiledGuard } from './guard/types.js';
import { hashJson, type Hasher } from './hash.js';
import type { Budgets, LlmStep, ParallelChild, Program, Step, ToolStep } from './program.js';
import { sortKeys } from './canonicalJson.js';
import { startOf } from './program.js';
import { guardReadPaths } from './redact.js';
import { edgeTable } from './edges.js';
import { NanoVmError } from './errors.js';

export const DEFAULT_BUDGETS: Required<Budgets> = {
  max_steps: 10_000,
  max_tokens: Number.POSITIVE_INFINITY,
  max_cost_usd: Number.POSITIVE_INFINITY,
  max_wall_ms: Number.POSITIVE_INFINITY,
  max_stalled_steps: 25,
};

/** Where a step's edges lead, read from the program's edge table (edges.ts). */
export interface Exits {
  next?: string;
  /** Targets of `cases`, by case index. */
  cases: string[];
  else?: string;
  on_timeout?: string;
  on_exhausted?: string;
}

/** The step ids whose outputs a decision reads, or 'all' when it reads `steps` as a whole. */
export type StepReads = readonly string[] | 'all';

/** What an llm or tool step (or child) reads of the state, worked out once per program. */
export interface EffectReads {
  /** What the step's projection (llm) or argument paths (tool) read of `steps`. */
  readonly reads: StepReads;
  /** A tool's argument names in canonical member order (which keeps the event encodable natively). */
  readonly argNames: readonly string[];
}

const NO_READS: readonly string[] = Object.freeze([]);
const NO_ARGS: EffectReads = Object.freeze({ reads: NO_READS, argNames: NO_READS });

export class CompiledProgram {
  readonly steps = new Map<string, Step>();
  /** Children of parallel steps, by id (ids are unique program-wide). */
  readonly children = new Map<string, ParallelChild>();
  /** Slot of every step and child id in the run state's per-step records. */
  readonly slot = new Map<string, number>();
  /** Every step's exits: the successor takes edges only from here, as the validator, `paths` and `graph` do. */
  readonly exits = new Map<string, Exits>();
  readonly guards = new Map<string, CompiledGuard[]>();
  /** What each condition's guards read of `steps`. */
  readonly guardReads = new Map<string, StepReads>();
  /** What every llm/tool step and child reads (its projection or argument paths). */
  readonly effectReads = new Map<string, EffectReads>();
  readonly budgets: Required<Budgets>;
  readonly start: string;
  readonly sensitive: string[];
  private readonly programHashes = new WeakMap<Hasher, string>();

  constructor(readonly program: Program) {
    for (const s of program.steps) {
      this.steps.set(s.id, s);
      this.slot.set(s.id, this.slot.size);
      if (s.kind === 'llm' || s.kind === 'tool') this.effectReads.set(s.id, effectReadsOf(s));
      if (s.kind === 'parallel')
        for (const c of s.children) {
          this.children.set(c.id, c);
          this.slot.set(c.id, this.slot.size);
          this.effectReads.set(c.id, effectReadsOf(c));
        }
    }
    const table = edgeTable(program);
    program.steps.forEach((s, i) => {
      const x: Exits = { cases: [] };
      for (const e of table.at(i)) {
        if (e.via === 'case') x.cases[e.case!] = e.to;
        else x[e.via] = e.to;
      }
      this.exits.set(s.id, x);
    });
    for (const s of program.steps) {
      if (s.kind !== 'condition') continue;
      const guards = s.cases.map((c) => {
        const r = compileGuard(c.when);
        if (!r.ok)
          throw new NanoVmError(
            'E_INTERNAL',
            `guard of step ${s.id} does not compile (${r.error.code}); validate the program before running it`,
          );
        return r.guard;
      });
      this.guards.set(s.id, guards);
      // A guard whose tree cannot be walked is shown every output (never fewer than it reads).
      const walkable = guards.every((g) => guardTree(g).ok);
      this.guardReads.set(s.id, walkable ? stepReads(guards.flatMap(guardReadPaths)) : 'all');
    }
    this.budgets = { ...DEFAULT_BUDGETS, ...program.budgets };
    this.start = startOf(program) ?? '';
    this.sensitive = program.sensitive ?? [];
  }

  /** Hash of the program document, computed once per hasher. */
  hash(hasher: Hasher): string {
    let h = this.programHashes.get(hasher);
    if (h === undefined) {
      h = hashJson(hasher, this.program);
      this.programHashes.set(hasher, h);
    }
    return h;
  }
}

function effectReadsOf(s: LlmStep | ToolStep | ParallelChild): EffectReads {
  if (s.kind === 'llm') return { reads: stepReads(s.projection), argNames: NO_READS };
  const args = s.args;
  if (!args) return NO_ARGS;
  const argNames = Object.keys(args);
  sortKeys(argNames);
  const paths: string[] = [];
  for (const n of argNames) {
    const src = args[n];
    if (typeof src === 'string') paths.push(src);
  }
  return { reads: paths.length ? stepReads(paths) : NO_READS, argNames };
}

/** `steps.<id>...` paths name the outputs they read; a path that is `steps` itself reads them all. */
export function stepReads(paths: readonly string[]): StepReads {
  if (paths.length === 0) return NO_READS;
  const ids = new Set<string>();
  for (const p of paths) {
    if (p === 'steps') return 'all';
    if (!p.startsWith('steps.')) continue;
    const dot = p.indexOf('.', 6);
    ids.add(dot === -1 ? p.slice(6) : p.slice(6, dot));
  }
  return [...ids];
}
