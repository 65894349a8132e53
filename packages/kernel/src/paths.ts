/**
 * Every path a run can take from the start step to each way it can end (`nano-vm paths`), read
 * from the edge table: the end steps (their outcomes) and the ends a program declares by leaving
 * something out (an effect without a fallback, max_visits without on_exhausted, a wait timeout
 * without on_timeout). Along each path: the guards that must hold, and under a policy the required
 * steps it passes, the precedence and tool rules that would block it, and the required steps a
 * path to a success end skips.
 *
 * Paths are simple: a path enters each step at most once, so a loop is listed once, not unrolled.
 * The count is capped (programs can have exponentially many paths); a capped report says so.
 * Guards are listed, not solved: a path whose guards contradict each other is still listed.
 */
import { edgeTable, type Edge } from './edges.js';
import type { PolicySnapshot } from './policy.js';
import { CompiledPolicy } from './policyGate.js';
import type { Program, Step } from './program.js';
import { kindRules } from './stepKinds.js';
import { stepsOnCycles } from './validateGraph.js';

export const PATHS_FORMAT = 'nano-vm.paths/v1';
export const DEFAULT_MAX_PATHS = 1000;
/** Step entries the search may make per allowed path before it stops (loops can make many dead ends). */
export const ENTRIES_PER_PATH = 1000;

/** How a path ends. */
export type PathEnd =
  /** An end step: status completed with its outcome. */
  | { kind: 'outcome'; step: string; outcome: string; failure: boolean }
  /** An llm/tool effect (or a parallel step's children) failed with no fallback: status failed, the effect's code. */
  | { kind: 'step_failed'; step: string; attempts: number; children?: string[] }
  /** Entered more than max_visits times without on_exhausted: status failed, E_MAX_VISITS. */
  | { kind: 'max_visits'; step: string; max_visits: number }
  /** A wait timed out without on_timeout: status failed, E_WAIT_TIMEOUT. */
  | { kind: 'wait_timeout'; step: string; timeout_ms: number };

/** The guards a condition step on the path decides with: `holds` true (null for else) and every guard in `fails` false. */
export interface PathGuard {
  step: string;
  holds: string | null;
  fails: string[];
}

export interface PathPolicyCheck {
  /** Every required-step rule, and whether the path passes through its step. */
  required: Array<{ rule: string; step: string; passed: boolean }>;
  /** Rules whose step this path skips although it ends in a success outcome. */
  skipped: string[];
  /** The first step the policy refuses to enter on this path (the run ends POLICY_BLOCKED there), or null. */
  blocked: { step: string; rule: string; reason: string } | null;
  /** Deny rules with a `when` that may refuse a tool call on this path, depending on the run's state. */
  may_block: Array<{ step: string; rule: string; when: string }>;
}

export interface ProgramPath {
  /** 1-based number, in the order listed. */
  n: number;
  /** The steps entered, in order; the last is where the run ends. */
  steps: string[];
  /** The edges taken between them. */
  edges: Edge[];
  guards: PathGuard[];
  /** Steps of the path that lie on a loop: a run may repeat them (within their max_visits); the path lists them once. */
  on_loop: string[];
  end: PathEnd;
  /** Present with a policy. */
  policy?: PathPolicyCheck;
}

export interface OutcomeReach {
  outcome: string;
  /** Whether every end step with this outcome is a failure end. */
  failure: boolean;
  steps: string[];
  /** Numbers of the listed paths that reach it (and that the policy does not block). */
  paths: number[];
  /** null when the listing was capped before any path reached it and it is reachable in the step graph. */
  reachable: boolean | null;
}

export type PathFinding =
  | { kind: 'truncated'; max_paths: number; message: string }
  | { kind: 'unreachable_outcome'; outcome: string; steps: string[]; message: string }
  | { kind: 'blocked_by_policy'; path: number; step: string; rule: string; message: string }
  | { kind: 'skips_required_step'; path: number; rule: string; step: string; message: string };

export interface PathsReport {
  format: typeof PATHS_FORMAT;
  program: string;
  start: string | null;
  /** The policy's id, or null without one. */
  policy: string | null;
  max_paths: number;
  /** False when the cap stopped the listing: some paths are not listed. */
  complete: boolean;
  paths: ProgramPath[];
  outcomes: OutcomeReach[];
  findings: PathFinding[];
}

export interface PathsOptions {
  policy?: PolicySnapshot;
  /** Most paths listed (default DEFAULT_MAX_PATHS). */
  maxPaths?: number;
}

/** The paths of a program (validate it first: edges to unknown steps are skipped). */
export function programPaths(program: Program, opts: PathsOptions = {}): PathsReport {
  const maxPaths = opts.maxPaths ?? DEFAULT_MAX_PATHS;
  const table = edgeTable(program);
  const steps = program.steps;
  const byId = new Map<string, number>();
  steps.forEach((s, i) => {
    if (!byId.has(s.id)) byId.set(s.id, i);
  });
  const onCycle = stepsOnCycles(program);
  // An on_exhausted edge is taken only by a step entered twice, so only from a step on a loop.
  const takeable = (e: Edge): boolean => e.via !== 'on_exhausted' || onCycle[byId.get(e.from)!] === 1;

  const listing = enumerate(program, byId, onCycle, takeable, maxPaths);
  const rules = opts.policy !== undefined ? new PolicyRules(opts.policy, program) : undefined;

  const paths: ProgramPath[] = listing.found.map((f, k) => {
    const path: ProgramPath = {
      n: k + 1,
      steps: f.steps,
      edges: f.edges,
      guards: guardsOf(f.edges, steps, byId),
      on_loop: f.steps.filter((id) => onCycle[byId.get(id)!] === 1),
      end: f.end,
    };
    if (rules) path.policy = rules.check(f.steps, f.end);
    return path;
  });

  const findings: PathFinding[] = [];
  if (!listing.complete)
    findings.push({
      kind: 'truncated',
      max_paths: maxPaths,
      message: `the listing stopped at ${maxPaths} paths (or ${maxPaths * ENTRIES_PER_PATH} step entries): other paths exist and are not listed; raise the cap to see them all`,
    });
  const outcomes = outcomesOf(program, paths, listing.complete, () => reachableSteps(program, byId, takeable, rules));
  for (const o of outcomes)
    if (o.reachable === false)
      findings.push({
        kind: 'unreachable_outcome',
        outcome: o.outcome,
        steps: o.steps,
        message: `no run can end with outcome ${o.outcome} (end step${o.steps.length === 1 ? '' : 's'} ${o.steps.map((s) => `'${s}'`).join(', ')})${rules ? ' under this policy' : ''}`,
      });
  for (const p of paths) {
    const check = p.policy;
    if (check === undefined) continue;
    if (check.blocked !== null)
      findings.push({
        kind: 'blocked_by_policy',
        path: p.n,
        step: check.blocked.step,
        rule: check.blocked.rule,
        message: `path ${p.n}: the policy refuses to enter '${check.blocked.step}' (rule '${check.blocked.rule}': ${check.blocked.reason}); the run ends POLICY_BLOCKED there`,
      });
    for (const rule of check.skipped) {
      const step = check.required.find((r) => r.rule === rule)!.step;
      findings.push({
        kind: 'skips_required_step',
        path: p.n,
        rule,
        step,
        message: `path ${p.n} reaches success outcome ${(p.end as { outcome: string }).outcome} without passing required step '${step}' (rule '${rule}')`,
      });
    }
  }

  return {
    format: PATHS_FORMAT,
    program: program.id,
    start: table.start ?? null,
    policy: opts.policy?.id ?? null,
    max_paths: maxPaths,
    complete: listing.complete,
    paths,
    outcomes,
    findings,
  };
}

interface Found {
  steps: string[];
  edges: Edge[];
  end: PathEnd;
}

/**
 * Depth-first over simple paths, iterative (a path may be as long as the program). Paths come out
 * grouped by how they end: end steps in declaration order, then the other ends by step.
 */
function enumerate(
  program: Program,
  byId: ReadonlyMap<string, number>,
  onCycle: Uint8Array,
  takeable: (e: Edge) => boolean,
  maxPaths: number,
): { found: Found[]; complete: boolean } {
  const table = edgeTable(program);
  const steps = program.steps;
  const found: Array<Found & { key: [number, number, number] }> = [];
  const onPath = new Uint8Array(steps.length);
  const frames: Array<{ index: number; edges: readonly Edge[]; next: number }> = [];
  const pathSteps: string[] = [];
  const pathEdges: Edge[] = [];
  const maxEntries = maxPaths * ENTRIES_PER_PATH;
  let entries = 0;
  let complete = true;

  const enter = (index: number): void => {
    entries++;
    onPath[index] = 1;
    pathSteps.push(steps[index]!.id);
    frames.push({ index, edges: table.at(index), next: 0 });
    for (const end of endsAt(steps[index]!, onCycle[index] === 1)) {
      if (found.length >= maxPaths) {
        complete = false;
        return;
      }
      found.push({
        steps: [...pathSteps],
        edges: [...pathEdges],
        end,
        key: [end.kind === 'outcome' ? 0 : 1, index, END_ORDER[end.kind]],
      });
    }
  };

  const start = table.start !== undefined ? byId.get(table.start) : undefined;
  if (start !== undefined) enter(start);
  while (frames.length > 0 && complete) {
    if (entries >= maxEntries) {
      complete = false;
      break;
    }
    const frame = frames[frames.length - 1]!;
    if (frame.next < frame.edges.length) {
      const edge = frame.edges[frame.next++]!;
      const j = byId.get(edge.to);
      if (j === undefined || onPath[j] === 1 || !takeable(edge)) continue;
      pathEdges.push(edge);
      enter(j);
      continue;
    }
    frames.pop();
    onPath[frame.index] = 0;
    pathSteps.pop();
    pathEdges.pop();
  }
  found.sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.key[2] - b.key[2]);
  return { found: found.map(({ steps: s, edges, end }) => ({ steps: s, edges, end })), complete };
}

const END_ORDER: Record<PathEnd['kind'], number> = { outcome: 0, max_visits: 1, step_failed: 2, wait_timeout: 3 };

/** The ends a run can reach at `step` itself: its outcome, or the failures it leaves undeclared (stepKinds.ts). */
function endsAt(step: Step, onLoop: boolean): PathEnd[] {
  const ends: PathEnd[] = [];
  if (step.max_visits !== undefined && step.on_exhausted === undefined && onLoop)
    ends.push({ kind: 'max_visits', step: step.id, max_visits: step.max_visits });
  for (const e of kindRules(step).ends(step)) ends.push(e.end);
  return ends;
}

function guardsOf(edges: readonly Edge[], steps: readonly Step[], byId: ReadonlyMap<string, number>): PathGuard[] {
  const out: PathGuard[] = [];
  for (const e of edges) {
    if (e.via !== 'case' && e.via !== 'else') continue;
    const step = steps[byId.get(e.from)!]!;
    if (step.kind !== 'condition') continue;
    const earlier = e.via === 'case' ? step.cases.slice(0, e.case) : step.cases;
    out.push({ step: e.from, holds: e.guard ?? null, fails: earlier.map((c) => c.when) });
  }
  return out;
}

/** The outcomes of the end steps, in declaration order, with the paths that reach them. */
function outcomesOf(
  program: Program,
  paths: readonly ProgramPath[],
  complete: boolean,
  reachable: () => ReadonlySet<string>,
): OutcomeReach[] {
  const byOutcome = new Map<string, OutcomeReach>();
  for (const s of program.steps)
    for (const { end } of kindRules(s).ends(s)) {
      if (end.kind !== 'outcome') continue;
      let o = byOutcome.get(end.outcome);
      if (o === undefined) {
        o = { outcome: end.outcome, failure: true, steps: [], paths: [], reachable: false };
        byOutcome.set(end.outcome, o);
      }
      if (!o.steps.includes(end.step)) o.steps.push(end.step);
      if (!end.failure) o.failure = false;
    }
  for (const p of paths)
    if (p.end.kind === 'outcome' && (p.policy?.blocked ?? null) === null) byOutcome.get(p.end.outcome)?.paths.push(p.n);
  let graphReach: ReadonlySet<string> | undefined;
  for (const o of byOutcome.values()) {
    if (o.paths.length > 0) o.reachable = true;
    else if (!complete) {
      graphReach ??= reachable();
      o.reachable = o.steps.some((s) => graphReach!.has(s)) ? null : false;
    }
  }
  return [...byOutcome.values()];
}

/**
 * Steps reachable from the start over the edges a run can take, never through a step the policy
 * always refuses. An over-approximation (precedence is path-dependent and ignored), so a step it
 * misses is certainly unreachable.
 */
function reachableSteps(
  program: Program,
  byId: ReadonlyMap<string, number>,
  takeable: (e: Edge) => boolean,
  rules: PolicyRules | undefined,
): Set<string> {
  const table = edgeTable(program);
  const seen = new Set<string>();
  const stack = table.start !== undefined && byId.has(table.start) ? [table.start] : [];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    if (rules?.toolBlock(program.steps[byId.get(id)!]!) != null) continue;
    seen.add(id);
    for (const e of table.from(id)) if (takeable(e) && byId.has(e.to) && !seen.has(e.to)) stack.push(e.to);
  }
  return seen;
}

/** A policy's rules as they bear on one path: required steps, precedence and the static tool decisions. */
class PolicyRules {
  private readonly gate: CompiledPolicy;
  private readonly byId = new Map<string, Step>();
  private readonly toolBlocks = new Map<string, { rule: string; reason: string } | null>();
  private readonly conditional = new Map<string, Array<{ rule: string; when: string }>>();

  constructor(
    private readonly policy: PolicySnapshot,
    program: Program,
  ) {
    this.gate = new CompiledPolicy(policy, '', program);
    for (const s of program.steps) if (!this.byId.has(s.id)) this.byId.set(s.id, s);
  }

  check(steps: readonly string[], end: PathEnd): PathPolicyCheck {
    const entered = new Set<string>();
    let blocked: PathPolicyCheck['blocked'] = null;
    const mayBlock: PathPolicyCheck['may_block'] = [];
    for (const id of steps) {
      // As the machine does: a step counts as entered when its own entry is decided.
      entered.add(id);
      for (const r of this.policy.precedence ?? []) {
        if (this.gate.topOf(r.after) !== id || entered.has(this.gate.topOf(r.before))) continue;
        blocked = {
          step: id,
          rule: r.id,
          reason: `'${r.before}' must be entered before '${r.after}', and it has not been`,
        };
        break;
      }
      if (blocked !== null) break;
      const step = this.byId.get(id);
      if (step === undefined) continue;
      const tool = this.toolBlock(step);
      if (tool !== null) {
        blocked = { step: id, ...tool };
        break;
      }
      for (const c of this.conditional.get(id) ?? []) mayBlock.push({ step: id, ...c });
    }
    const required = (this.policy.required_steps ?? []).map((r) => ({
      rule: r.id,
      step: r.step,
      passed: entered.has(this.gate.topOf(r.step)),
    }));
    const success = end.kind === 'outcome' && !end.failure && blocked === null;
    return {
      required,
      skipped: success ? required.filter((r) => !r.passed).map((r) => r.rule) : [],
      blocked,
      may_block: mayBlock,
    };
  }

  /**
   * The rule that refuses a tool call of `step` whatever the run's state (a deny rule without
   * `when`, or no grant), or null; deny rules with `when` that match are kept for `may_block`.
   */
  toolBlock(step: Step): { rule: string; reason: string } | null {
    const known = this.toolBlocks.get(step.id);
    if (known !== undefined) return known;
    const calls: Array<{ id: string; tool: string; parent?: string }> = [];
    if (step.kind === 'tool') calls.push({ id: step.id, tool: step.tool });
    else if (step.kind === 'parallel')
      for (const c of step.children) if (c.kind === 'tool') calls.push({ id: c.id, tool: c.tool, parent: step.id });
    let block: { rule: string; reason: string } | null = null;
    const conditional: Array<{ rule: string; when: string }> = [];
    for (const call of calls) {
      for (const rule of this.policy.deny ?? []) {
        if (!this.gate.denyMatches(rule, call.id, call.parent, call.tool)) continue;
        if (rule.when !== undefined) {
          conditional.push({ rule: rule.id, when: rule.when });
          continue;
        }
        block = { rule: rule.id, reason: rule.reason ?? `tool '${call.tool}' is denied` };
        break;
      }
      if (block === null && this.gate.governsTools) {
        const d = this.gate.grantFor(call.id, call.tool);
        if (!d.ok) block = { rule: d.rejection.rule, reason: d.rejection.reason };
      }
      if (block !== null) break;
    }
    this.toolBlocks.set(step.id, block);
    this.conditional.set(step.id, conditional);
    return block;
  }
}
