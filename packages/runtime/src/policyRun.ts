/**
 * Running under a policy (docs/policy.md): the policy document is checked, the program is
 * pre-flighted against it (the program's own checks with `policy` visible to guards, then
 * validatePolicy), and the policy is compiled for the machine, which enforces it before every
 * step. Results are cached per (program, policy object, tool registry), like `preflight`.
 */
import {
  CompiledPolicy,
  NanoVmError,
  hashJson,
  policyFromValue,
  policyGuardGlobals,
  validatePolicy,
  validateProgram,
  type CompiledProgram,
  type Hasher,
  type Issue,
  type PolicySnapshot,
  type Program,
} from '@nano-vm/kernel';
import type { ToolRegistry } from './toolRegistry.js';

export interface PolicyPreflight {
  /** Errors of the program under this policy (its own and the policy's); the run is refused when any. */
  errors: Issue[];
  policy: CompiledPolicy;
}

/** The policy document as a PolicySnapshot, or NanoVmError E_POLICY_INVALID with its issues. */
export function checkPolicy(value: unknown): PolicySnapshot {
  const { policy, issues } = policyFromValue(value);
  if (!policy) throw new NanoVmError('E_POLICY_INVALID', `the policy is invalid: ${issues[0]?.message ?? 'not a policy'}`, issues);
  return policy;
}

const compiled = new WeakMap<Program, WeakMap<object, Map<Hasher, CompiledPolicy>>>();

/** The policy compiled against a program (for the machine), once per (program, policy object, hasher). */
export function compilePolicy(program: Program, value: unknown, hasher: Hasher): CompiledPolicy {
  const policy = checkPolicy(value);
  let byPolicy = compiled.get(program);
  if (!byPolicy) compiled.set(program, (byPolicy = new WeakMap()));
  let byHasher = byPolicy.get(policy);
  if (!byHasher) byPolicy.set(policy, (byHasher = new Map()));
  let c = byHasher.get(hasher);
  if (!c) byHasher.set(hasher, (c = new CompiledPolicy(policy, hashJson(hasher, policy), program)));
  return c;
}

const preflights = new WeakMap<Program, WeakMap<object, WeakMap<ToolRegistry, Issue[]>>>();

/** Pre-flight of a program under a policy. Throws E_POLICY_INVALID for a policy that is not one. */
export function policyPreflight(cp: CompiledProgram, value: unknown, tools: ToolRegistry, hasher: Hasher): PolicyPreflight {
  const program = cp.program;
  const policy = compilePolicy(program, value, hasher);
  let byPolicy = preflights.get(program);
  if (!byPolicy) preflights.set(program, (byPolicy = new WeakMap()));
  let byTools = byPolicy.get(policy.policy);
  if (!byTools) byPolicy.set(policy.policy, (byTools = new WeakMap()));
  let errors = byTools.get(tools);
  if (!errors) {
    const issues = [...validateProgram(program, { tools: tools.describe(), guardGlobals: policyGuardGlobals(policy.policy) }), ...validatePolicy(program, policy.policy, { programHash: cp.hash(hasher) })];
    byTools.set(tools, (errors = issues.filter((i) => i.severity === 'error')));
  }
  return { errors, policy };
}
