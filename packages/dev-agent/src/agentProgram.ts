/**
 * The dev agent's program and policy, read from the files shipped with the package
 * (program/dev-agent.program.yaml, program/dev-agent.policy.yaml) and checked like any other.
 * `--max-attempts` sets `max_visits` of `propose` and the step budget; an operator's policy adds
 * its rules to the agent's own.
 */
import { readFileSync } from 'node:fs';
import { NanoVmError, loadPolicy, loadProgram, type PolicySnapshot, type Program } from '@nano-vm/kernel';

export const DEV_AGENT_PROGRAM_ID = 'nano-vm.dev-agent';
export const DEFAULT_MAX_ATTEMPTS = 3;
export const MAX_ATTEMPTS_LIMIT = 10;
export const COMMITTED = 'COMMITTED';
export const NO_PASSING_PATCH = 'NO_PASSING_PATCH';

const PROGRAM_FILE = new URL('../program/dev-agent.program.yaml', import.meta.url);
const POLICY_FILE = new URL('../program/dev-agent.policy.yaml', import.meta.url);

let baseProgram: Program | undefined;
let basePolicy: PolicySnapshot | undefined;

function shipped<T>(
  file: URL,
  load: (text: string, opts: { file: string }) => { issues: { message: string }[] } & T,
): T {
  const r = load(readFileSync(file, 'utf8'), { file: file.pathname });
  if (r.issues.length)
    throw new NanoVmError('E_INTERNAL', `${file.pathname} (shipped with nano-vm) is invalid: ${r.issues[0]!.message}`);
  return r;
}

/** The agent's program for `attempts` proposals (1..MAX_ATTEMPTS_LIMIT). */
export function devAgentProgram(attempts = DEFAULT_MAX_ATTEMPTS): Program {
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > MAX_ATTEMPTS_LIMIT)
    throw new RangeError(`attempts must be an integer from 1 to ${MAX_ATTEMPTS_LIMIT}, got ${attempts}`);
  baseProgram ??= shipped(PROGRAM_FILE, loadProgram).program!;
  const program = structuredClone(baseProgram);
  const propose = program.steps.find((s) => s.id === 'propose') as { max_visits?: number };
  propose.max_visits = attempts;
  // plan and read; per attempt propose, vet, stage, staged, typecheck, typechecked, test, tested, feedback; then commit or rollback.
  program.budgets = { ...program.budgets, max_steps: 2 + 9 * attempts + 2 };
  return program;
}

/** The agent's own policy, with an operator's policy rules added (rule ids must stay unique). */
export function devAgentPolicy(extra?: PolicySnapshot): PolicySnapshot {
  basePolicy ??= shipped(POLICY_FILE, loadPolicy).policy!;
  if (!extra) return basePolicy;
  const cat = <T>(a: readonly T[] | undefined, b: readonly T[] | undefined): T[] | undefined =>
    a || b ? [...(a ?? []), ...(b ?? [])] : undefined;
  const merged: PolicySnapshot = {
    ...basePolicy,
    id: `${basePolicy.id}+${extra.id}`,
    ...(extra.version !== undefined ? { version: `${basePolicy.version ?? ''}+${extra.version}` } : {}),
  };
  const lists = ['required_steps', 'precedence', 'grants', 'deny', 'legal_holds'] as const;
  for (const k of lists) {
    const v = cat(basePolicy[k] as unknown[] | undefined, extra[k] as unknown[] | undefined);
    if (v) (merged as unknown as Record<string, unknown>)[k] = v;
  }
  // The agent's own tool capabilities and thresholds cannot be redefined, only added to.
  if (extra.tools) merged.tools = { ...extra.tools, ...basePolicy.tools };
  if (extra.thresholds) merged.thresholds = { ...extra.thresholds, ...basePolicy.thresholds };
  if (extra.program_hash !== undefined) merged.program_hash = extra.program_hash;
  return merged;
}
