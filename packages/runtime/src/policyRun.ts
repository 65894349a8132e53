/**
 * Running under a policy (docs/policy.md): the policy document is checked and compiled for the
 * machine, which enforces it before every step (the kernel's policyOption, as replay uses it), and
 * the program is pre-flighted against it (the program's own checks with `policy` visible to guards,
 * then validatePolicy). Results are cached per (program, policy object, tool registry), like `preflight`.
 */
import {
  NanoVmError,
  policyGuardGlobals,
  policyOption,
  validatePolicy,
  validateProgram,
  type CompiledPolicy,
  type CompiledProgram,
  type Hasher,
  type Issue,
  type PolicySnapshot,
  type Program,
  type ToolDescription,
} from '@nano-vm/kernel';
import type { ToolRegistry } from './toolRegistry.js';

export interface PolicyPreflight {
  /** Errors of the program under this policy (its own and the policy's); the run is refused when any. */
  errors: Issue[];
  policy: CompiledPolicy;
}

const compiled = new WeakMap<Program, WeakMap<object, Map<Hasher, CompiledPolicy>>>();

/**
 * The policy compiled against a program (for the machine), once per (program, policy object,
 * hasher). NanoVmError E_POLICY_INVALID with its issues for a value that is not a policy, and
 * for none (null): a caller without a policy has nothing to compile.
 */
export function compilePolicy(program: Program, value: unknown, hasher: Hasher): CompiledPolicy {
  const cached =
    typeof value === 'object' && value !== null ? compiled.get(program)?.get(value)?.get(hasher) : undefined;
  if (cached) return cached;
  const { policy } = policyOption(value, program, hasher);
  if (!policy) throw new NanoVmError('E_POLICY_INVALID', 'the policy is invalid: no policy document was given', []);
  // A policy document is a mapping, so it can key the cache.
  let byPolicy = compiled.get(program);
  if (!byPolicy) compiled.set(program, (byPolicy = new WeakMap()));
  let byHasher = byPolicy.get(value as object);
  if (!byHasher) byPolicy.set(value as object, (byHasher = new Map()));
  byHasher.set(hasher, policy);
  return policy;
}

/** A program's issues under a policy (warnings too): its own checks with `policy` visible to guards, then the policy's rules. */
export function issuesUnderPolicy(
  program: Program,
  policy: PolicySnapshot,
  tools: Record<string, ToolDescription>,
  programHash: string,
): Issue[] {
  return [
    ...validateProgram(program, { tools, guardGlobals: policyGuardGlobals(policy) }),
    ...validatePolicy(program, policy, { programHash }),
  ];
}

const preflights = new WeakMap<Program, WeakMap<object, WeakMap<ToolRegistry, Issue[]>>>();

/** Pre-flight of a program under a policy. Throws E_POLICY_INVALID for a policy that is not one. */
export function policyPreflight(
  cp: CompiledProgram,
  value: unknown,
  tools: ToolRegistry,
  hasher: Hasher,
): PolicyPreflight {
  const program = cp.program;
  const policy = compilePolicy(program, value, hasher);
  let byPolicy = preflights.get(program);
  if (!byPolicy) preflights.set(program, (byPolicy = new WeakMap()));
  let byTools = byPolicy.get(policy.policy);
  if (!byTools) byPolicy.set(policy.policy, (byTools = new WeakMap()));
  let errors = byTools.get(tools);
  if (!errors) {
    byTools.set(
      tools,
      (errors = issuesUnderPolicy(program, policy.policy, tools.describe(), cp.hash(hasher)).filter(
        (i) => i.severity === 'error',
      )),
    );
  }
  return { errors, policy };
}
