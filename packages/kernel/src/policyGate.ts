/**
 * Run-time enforcement of a policy (docs/policy.md): before the machine enters a step it asks
 * `decideEntry`, which checks the precedence rules for that step and, for a tool step (or a
 * parallel step's tool children), the deny rules and grants of every tool call it would make.
 * Pure: the decision is a function of the policy, the program and the run state. The machine
 * records every decision (policy_checked or transition_rejected) with the rule that made it.
 */
import { NanoVmError } from './errors.js';
import type { RunStartedEvent, TraceEvent } from './events.js';
import { compileGuard, evaluateGuard } from './guard/index.js';
import { hashJson, type Hasher } from './hash.js';
import { policyFromValue } from './policyLoad.js';
import type { CompiledGuard } from './guard/types.js';
import {
  DEFAULT_DENY_RULE,
  type DenyRule,
  type PolicySnapshot,
  type PrecedenceRule,
  type ThresholdValue,
} from './policy.js';
import type { JsonValue, ParallelChild, Program, Step, ToolStep } from './program.js';

export interface PolicyRejection {
  step: string;
  parent?: string;
  requested: string;
  rule: string;
  reason: string;
  capability?: string;
  granting_step?: string;
}

export type PolicyDecision = { ok: true; rules: string[] } | { ok: false; rejection: PolicyRejection };

interface StepGrants {
  /** tool -> id of the grant that names it */
  tools: Map<string, string>;
  /** capability -> id of the grant that holds it */
  capabilities: Map<string, string>;
}

/** A policy compiled against one program: lookup tables built once, shared by every run. */
export class CompiledPolicy {
  /** What guards see as `policy`. */
  readonly view: { thresholds: Record<string, ThresholdValue> };
  /** Whether tool calls are governed (the policy has `grants`); otherwise only ordering is. */
  readonly governsTools: boolean;
  private readonly grants = new Map<string, StepGrants>();
  private readonly toolCapabilities = new Map<string, readonly string[]>();
  private readonly capabilityHolder = new Map<string, string>();
  private readonly toolHolder = new Map<string, string>();
  private readonly precedence = new Map<string, PrecedenceRule[]>();
  private readonly parentOf = new Map<string, string>();
  /** Deny rules with their compiled guards (the successor reads which outputs the guards read). */
  readonly denies: ReadonlyArray<{ rule: DenyRule; guard?: CompiledGuard }>;

  constructor(
    readonly policy: PolicySnapshot,
    /** SHA-256 of the policy's canonical JSON (the genesis policy_hash). */
    readonly hash: string,
    program: Program,
  ) {
    this.view = { thresholds: policy.thresholds ?? {} };
    this.governsTools = policy.grants !== undefined;
    for (const s of program.steps) if (s.kind === 'parallel') for (const c of s.children) this.parentOf.set(c.id, s.id);
    for (const [tool, t] of Object.entries(policy.tools ?? {})) this.toolCapabilities.set(tool, t.capabilities);
    for (const g of policy.grants ?? []) {
      let sg = this.grants.get(g.step);
      if (!sg) this.grants.set(g.step, (sg = { tools: new Map(), capabilities: new Map() }));
      for (const t of g.tools ?? []) {
        if (!sg.tools.has(t)) sg.tools.set(t, g.id);
        if (!this.toolHolder.has(t)) this.toolHolder.set(t, g.step);
      }
      for (const c of g.capabilities ?? []) {
        if (!sg.capabilities.has(c)) sg.capabilities.set(c, g.id);
        if (!this.capabilityHolder.has(c)) this.capabilityHolder.set(c, g.step);
      }
    }
    for (const r of policy.precedence ?? []) {
      const at = this.topOf(r.after);
      let list = this.precedence.get(at);
      if (!list) this.precedence.set(at, (list = []));
      list.push(r);
    }
    this.denies = (policy.deny ?? []).map((rule) => {
      if (rule.when === undefined) return { rule };
      const r = compileGuard(rule.when);
      if (!r.ok)
        throw new NanoVmError(
          'E_POLICY_INVALID',
          `deny rule ${rule.id}: guard does not compile (${r.error.code}); load the policy with loadPolicy first`,
        );
      return { rule, guard: r.guard };
    });
  }

  /** The top-level step a step id runs in (a parallel child runs in its parent). */
  topOf(step: string): string {
    return this.parentOf.get(step) ?? step;
  }

  /** Capabilities the policy says a tool needs. */
  capabilitiesOf(tool: string): readonly string[] {
    return this.toolCapabilities.get(tool) ?? [];
  }

  /**
   * The grant decision for one tool call, without deny rules' guards (those need the run state):
   * the grant ids that allow it, or why nothing does.
   */
  grantFor(step: string, tool: string): PolicyDecision {
    const sg = this.grants.get(step);
    const needed = this.capabilitiesOf(tool);
    const rules: string[] = [];
    for (const c of needed) {
      const by = sg?.capabilities.get(c);
      if (by === undefined) {
        const holder = this.capabilityHolder.get(c);
        return reject({
          step,
          requested: `tool:${tool}`,
          rule: DEFAULT_DENY_RULE,
          reason: `step '${step}' does not hold capability '${c}', which tool '${tool}' needs${holder !== undefined ? ` (granted to step '${holder}')` : ' (no step holds it)'}`,
          capability: c,
          ...(holder !== undefined ? { granting_step: holder } : {}),
        });
      }
      if (!rules.includes(by)) rules.push(by);
    }
    const named = sg?.tools.get(tool);
    if (named !== undefined) rules.push(named);
    else if (needed.length === 0) {
      const holder = this.toolHolder.get(tool);
      return reject({
        step,
        requested: `tool:${tool}`,
        rule: DEFAULT_DENY_RULE,
        reason: `no grant lets step '${step}' call tool '${tool}'${holder !== undefined ? ` (it is granted to step '${holder}')` : ''}`,
        ...(holder !== undefined ? { granting_step: holder } : {}),
      });
    }
    return { ok: true, rules };
  }

  /** Deny rules that match a call regardless of state (no `when`): for pre-flight. */
  staticDeny(step: string, parent: string | undefined, tool: string): DenyRule | undefined {
    return this.denies.find((d) => d.guard === undefined && this.denyMatches(d.rule, step, parent, tool))?.rule;
  }

  denyMatches(rule: DenyRule, step: string, parent: string | undefined, tool: string): boolean {
    if (rule.step !== undefined && rule.step !== step && rule.step !== parent) return false;
    if (rule.tool !== undefined && rule.tool !== tool) return false;
    if (rule.capability !== undefined && !this.capabilitiesOf(tool).includes(rule.capability)) return false;
    return true;
  }

  /** Deny rules first (deny overrides allow), then grants. `args` resolves the call's arguments. */
  decideToolCall(
    step: string,
    parent: string | undefined,
    tool: string,
    state: { input: unknown; steps: unknown },
    args: () => Record<string, JsonValue>,
  ): PolicyDecision {
    for (const { rule, guard } of this.denies) {
      if (!this.denyMatches(rule, step, parent, tool)) continue;
      let why = rule.reason ?? `denied by rule '${rule.id}'`;
      if (guard !== undefined) {
        const r = evaluateGuard(guard, { input: state.input, steps: state.steps, policy: this.view, args: args() });
        // A deny guard that cannot be evaluated denies: a policy fails closed.
        if (r.ok && r.value !== true) continue;
        if (!r.ok)
          why = `${why} (its guard failed to evaluate, so the call is denied: ${r.error.code} ${r.error.message})`;
      }
      return reject({
        step,
        ...(parent !== undefined ? { parent } : {}),
        requested: `tool:${tool}`,
        rule: rule.id,
        reason: why,
        ...(rule.capability !== undefined ? { capability: rule.capability } : {}),
      });
    }
    const d = this.grantFor(step, tool);
    if (!d.ok && parent !== undefined) d.rejection.parent = parent;
    return d;
  }

  /**
   * Entering `step`: its precedence rules (by the steps entered so far, `visits`), then every tool
   * call it makes. The rule ids that allowed the entry, or the first rejection.
   */
  decideEntry(
    step: Step,
    visits: (stepId: string) => number,
    state: { input: unknown; steps: unknown },
    argsOf: (s: ToolStep | Extract<ParallelChild, { kind: 'tool' }>) => Record<string, JsonValue>,
  ): PolicyDecision {
    const rules: string[] = [];
    for (const r of this.precedence.get(step.id) ?? []) {
      if (visits(this.topOf(r.before)) > 0) {
        rules.push(r.id);
        continue;
      }
      return reject({
        step: step.id,
        requested: `enter:${r.after}`,
        rule: r.id,
        reason: `'${r.before}' must be entered before '${r.after}', and it has not been`,
      });
    }
    if (!this.governsTools) return { ok: true, rules };
    const calls: Array<{ s: ToolStep | Extract<ParallelChild, { kind: 'tool' }>; parent?: string }> = [];
    if (step.kind === 'tool') calls.push({ s: step });
    else if (step.kind === 'parallel')
      for (const c of step.children) if (c.kind === 'tool') calls.push({ s: c, parent: step.id });
    for (const { s, parent } of calls) {
      const d = this.decideToolCall(s.id, parent, s.tool, state, () => argsOf(s));
      if (!d.ok) return d;
      for (const id of d.rules) if (!rules.includes(id)) rules.push(id);
    }
    return { ok: true, rules };
  }
}

const reject = (rejection: PolicyRejection): PolicyDecision => ({ ok: false, rejection });

/**
 * `{ policy }` for MachineOptions when a recorded policy value is present (a bundle's, or a
 * counterfactual one), `{}` for null. A value that is not a policy document is E_POLICY_INVALID.
 */
export function policyOption(value: unknown, program: Program, hasher: Hasher): { policy?: CompiledPolicy } {
  if (value === null || value === undefined) return {};
  const { policy, issues } = policyFromValue(value);
  if (!policy)
    throw new NanoVmError('E_POLICY_INVALID', `the policy is invalid: ${issues[0]?.message ?? 'not a policy'}`, issues);
  return { policy: new CompiledPolicy(policy, hashJson(hasher, value), program) };
}

/**
 * The first event that carries a policy_hash other than the one pinned at genesis (a run that
 * went on under another policy), or null. verifyBundle reports it as E_POLICY_CHANGED.
 */
export function firstPolicyChange(events: readonly TraceEvent[]): { seq: number; reason: string } | null {
  const pinned = (events[0] as RunStartedEvent | undefined)?.policy_hash;
  for (let i = 1; i < events.length; i++) {
    const carried = (events[i] as { policy_hash?: unknown }).policy_hash;
    if (carried === undefined || carried === pinned) continue;
    return {
      seq: i,
      reason: `event ${i} (${events[i]!.type}) was decided under policy ${String(carried).slice(0, 12)}…, not the policy pinned at genesis (${String(pinned).slice(0, 12)}…)`,
    };
  }
  return null;
}
