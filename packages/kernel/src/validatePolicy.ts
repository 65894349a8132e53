/**
 * Pre-flight of a program against a policy (`nano-vm validate --policy`, and every run under a
 * policy): pinned program hash, required steps unavoidable on the way to every success end,
 * precedence on every path, a grant for every tool call, threshold reads the policy declares.
 * The graph checks are one iterative breadth-first search per rule over the top-level steps
 * (a parallel child counts as its parent), so they stay linear in the program's size.
 */
import { setMember } from './dataMember.js';
import type { Issue } from './errors.js';
import { excerpt } from './excerpt.js';
import { compileGuard } from './guard/index.js';
import type { GuardType, GuardTypeEnv } from './guard/types.js';
import { locateIssues, type SourceMap } from './load.js';
import type { PolicySnapshot, ThresholdValue } from './policy.js';
import { CompiledPolicy } from './policyGate.js';
import { edgeTable, type EdgeTable } from './edges.js';
import type { Program, Step } from './program.js';
import { guardEnvOf } from './validate.js';

/** Every code the policy loader and validatePolicy report (docs/errors.md lists the same). */
export const POLICY_CODES: Readonly<Record<string, string>> = {
  E_POLICY_INVALID:
    'The policy is not a valid nano-vm.policy/v1 document: wrong format, shape, a duplicate or reserved rule id, a deny rule that names nothing, a deny guard that does not compile.',
  E_POLICY_PROGRAM_HASH: 'The policy pins a program_hash that is not the hash of this program.',
  E_POLICY_UNKNOWN_STEP: 'A precedence, grant or deny rule names a step the program does not have.',
  E_POLICY_REQUIRED_STEP:
    'A required step is not in the program, or a success end step can be reached without passing through it.',
  E_POLICY_PRECEDENCE:
    'A step can be reached without passing the step a precedence rule says must come before it (or both run in one parallel step).',
  E_POLICY_GRANT:
    'A tool step calls a tool that no grant covers, whose capabilities the step does not hold, or that a deny rule without `when` denies.',
  E_POLICY_THRESHOLD: 'A guard reads policy.thresholds.<name> that the policy does not declare.',
};

export interface ValidatePolicyOptions {
  /** Hash of the program (run_started.program_hash); needed to check a pinned program_hash. */
  programHash?: string;
  /** Where the program came from: issues about its steps are located there. */
  programSourceMap?: SourceMap;
  programFile?: string;
  /** Where the policy came from: issues about its rules are located there. */
  policySourceMap?: SourceMap;
  policyFile?: string;
}

/** The type guards see for `policy` under this policy: `thresholds` with each declared value's type. */
export function policyGuardGlobals(policy: PolicySnapshot): GuardTypeEnv {
  const fields: Record<string, GuardType> = {};
  for (const [name, v] of Object.entries(policy.thresholds ?? {})) setMember(fields, name, thresholdType(v));
  // Open: a read of an undeclared threshold is reported once, as E_POLICY_THRESHOLD, not also as a type error.
  return { policy: { kind: 'map', fields: { thresholds: { kind: 'map', fields, open: true } }, open: false } };
}

function thresholdType(v: ThresholdValue): GuardType {
  return typeof v === 'number' ? { kind: 'number' } : typeof v === 'string' ? { kind: 'string' } : { kind: 'bool' };
}

/** `policy.thresholds.<name>` and `policy.thresholds["<name>"]` in a guard's text. */
const THRESHOLD_READ =
  /\bpolicy\s*\.\s*thresholds\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(?:"([^"]*)"|'([^']*)')\s*\])/g;

export function validatePolicy(program: Program, policy: PolicySnapshot, opts: ValidatePolicyOptions = {}): Issue[] {
  const onPolicy: Issue[] = [];
  const onProgram: Issue[] = [];
  const graph = new StepGraph(program);
  const gate = new CompiledPolicy(policy, '', program);

  if (policy.program_hash !== undefined && opts.programHash !== undefined && policy.program_hash !== opts.programHash) {
    onPolicy.push({
      code: 'E_POLICY_PROGRAM_HASH',
      severity: 'error',
      path: '/program_hash',
      message: `the policy is pinned to program ${policy.program_hash.slice(0, 12)}…, but program '${program.id}' hashes to ${opts.programHash.slice(0, 12)}…`,
    });
  }

  policy.required_steps?.forEach((r, i) => {
    const at = `/required_steps/${i}/step`;
    if (!graph.has(r.step)) {
      onPolicy.push({
        code: 'E_POLICY_REQUIRED_STEP',
        severity: 'error',
        path: at,
        message: `rule '${r.id}': required step '${r.step}' is not in program '${program.id}'`,
      });
      return;
    }
    const witness = graph.pathAvoiding(graph.topOf(r.step), (s) => s.kind === 'end' && s.failure !== true);
    if (witness)
      onPolicy.push({
        code: 'E_POLICY_REQUIRED_STEP',
        severity: 'error',
        path: at,
        message: `rule '${r.id}': success end '${witness[witness.length - 1]}' can be reached without '${r.step}': ${witness.join(' → ')}`,
      });
  });

  policy.precedence?.forEach((r, i) => {
    const base = `/precedence/${i}`;
    const missing = [r.before, r.after].filter((s) => !graph.has(s));
    if (missing.length) {
      for (const s of missing)
        onPolicy.push({
          code: 'E_POLICY_UNKNOWN_STEP',
          severity: 'error',
          path: `${base}/${s === r.before ? 'before' : 'after'}`,
          message: `rule '${r.id}': program '${program.id}' has no step '${s}'`,
        });
      return;
    }
    const before = graph.topOf(r.before);
    const after = graph.topOf(r.after);
    if (before === after) {
      onPolicy.push({
        code: 'E_POLICY_PRECEDENCE',
        severity: 'error',
        path: base,
        message: `rule '${r.id}': '${r.before}' and '${r.after}' run in the same step ('${before}'), so neither comes first`,
      });
      return;
    }
    const witness = graph.pathAvoiding(before, (s) => s.id === after);
    if (witness)
      onPolicy.push({
        code: 'E_POLICY_PRECEDENCE',
        severity: 'error',
        path: base,
        message: `rule '${r.id}': '${r.after}' can be reached before '${r.before}': ${witness.join(' → ')}`,
      });
  });

  const unknownStep = (list: Array<{ id: string; step?: string }> | undefined, name: string) =>
    list?.forEach((r, i) => {
      if (r.step !== undefined && !graph.has(r.step))
        onPolicy.push({
          code: 'E_POLICY_UNKNOWN_STEP',
          severity: 'error',
          path: `/${name}/${i}/step`,
          message: `rule '${r.id}': program '${program.id}' has no step '${r.step}'`,
        });
    });
  unknownStep(policy.grants, 'grants');
  unknownStep(policy.deny, 'deny');

  for (const { step, parent, path } of graph.toolSteps()) {
    const denied = gate.staticDeny(step.id, parent, step.tool);
    const d =
      denied !== undefined
        ? {
            ok: false as const,
            why: `denied by rule '${denied.id}'${denied.reason !== undefined ? `: ${denied.reason}` : ''}`,
          }
        : gate.governsTools
          ? gate.grantFor(step.id, step.tool)
          : { ok: true as const };
    if (!d.ok)
      onProgram.push({
        code: 'E_POLICY_GRANT',
        severity: 'error',
        step: step.id,
        path: `${path}/tool`,
        message: `step '${step.id}' calls tool '${step.tool}', which the policy does not allow: ${'why' in d ? d.why : d.rejection.reason}`,
      });
  }

  const declared = policy.thresholds ?? {};
  const readsOf = (src: string, at: string, step: string | undefined, out: Issue[]) => {
    for (const m of src.matchAll(THRESHOLD_READ)) {
      const name = m[1] ?? m[2] ?? m[3]!;
      if (Object.hasOwn(declared, name)) continue;
      const known = Object.keys(declared);
      const issue: Issue = {
        code: 'E_POLICY_THRESHOLD',
        severity: 'error',
        path: at,
        message: `${step !== undefined ? `step '${step}': ` : ''}the guard reads policy.thresholds.${name}, which policy '${policy.id}' does not declare (${known.length ? `it declares: ${known.join(', ')}` : 'it declares no thresholds'})`,
      };
      if (step !== undefined) issue.step = step;
      out.push(issue);
    }
  };
  program.steps.forEach((s, i) => {
    if (s.kind === 'condition')
      s.cases.forEach((c, k) => readsOf(c.when, `/steps/${i}/cases/${k}/when`, s.id, onProgram));
  });

  const denyEnv: GuardTypeEnv = { ...guardEnvOf(program), ...policyGuardGlobals(policy), args: { kind: 'dyn' } };
  policy.deny?.forEach((d, i) => {
    if (d.when === undefined) return;
    const at = `/deny/${i}/when`;
    readsOf(d.when, at, undefined, onPolicy);
    const r = compileGuard(d.when, denyEnv);
    if (!r.ok)
      onPolicy.push({
        code: r.error.code,
        severity: 'error',
        path: at,
        message: `deny rule '${d.id}': ${r.error.message} (guard column ${r.error.column}: ${excerpt(d.when, r.error.column - 1)})`,
      });
  });

  return [
    ...locateIssues(onPolicy, opts.policySourceMap, opts.policyFile),
    ...locateIssues(onProgram, opts.programSourceMap, opts.programFile),
  ];
}

/** The program's top-level step graph (the edge table's), with parallel children mapped to their parent. */
class StepGraph {
  private readonly byId = new Map<string, Step>();
  private readonly parentOf = new Map<string, string>();
  private readonly edges: EdgeTable;
  private readonly start: string | undefined;

  constructor(private readonly program: Program) {
    for (const s of program.steps) {
      if (!this.byId.has(s.id)) this.byId.set(s.id, s);
      if (s.kind === 'parallel') for (const c of s.children) this.parentOf.set(c.id, s.id);
    }
    this.edges = edgeTable(program);
    this.start = this.edges.start;
  }

  has(id: string): boolean {
    return this.byId.has(id) || this.parentOf.has(id);
  }

  topOf(id: string): string {
    return this.parentOf.get(id) ?? id;
  }

  /**
   * A shortest path from the start to a step satisfying `goal` that never enters `avoid`, or null.
   * Breadth-first with an explicit queue: no recursion, so program size is bounded by memory only.
   */
  pathAvoiding(avoid: string, goal: (s: Step) => boolean): string[] | null {
    if (this.start === undefined || this.start === avoid || !this.byId.has(this.start)) return null;
    const from = new Map<string, string | null>([[this.start, null]]);
    const queue: string[] = [this.start];
    for (let head = 0; head < queue.length; head++) {
      const id = queue[head]!;
      const step = this.byId.get(id)!;
      if (goal(step)) {
        const path: string[] = [];
        for (let at: string | null = id; at !== null; at = from.get(at)!) path.push(at);
        return path.reverse();
      }
      for (const { to: next } of this.edges.from(id)) {
        if (next === avoid || from.has(next) || !this.byId.has(next)) continue;
        from.set(next, id);
        queue.push(next);
      }
    }
    return null;
  }

  /** Every tool call the program can make: tool steps and tool children of parallel steps, with their JSON pointers. */
  *toolSteps(): Generator<{
    step:
      | Extract<Step, { kind: 'tool' }>
      | Extract<Extract<Step, { kind: 'parallel' }>['children'][number], { kind: 'tool' }>;
    parent?: string;
    path: string;
  }> {
    for (let i = 0; i < this.program.steps.length; i++) {
      const s = this.program.steps[i]!;
      if (s.kind === 'tool') yield { step: s, path: `/steps/${i}` };
      else if (s.kind === 'parallel') {
        for (let k = 0; k < s.children.length; k++) {
          const c = s.children[k]!;
          if (c.kind === 'tool') yield { step: c, parent: s.id, path: `/steps/${i}/children/${k}` };
        }
      }
    }
  }
}
