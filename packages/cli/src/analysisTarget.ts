/**
 * What the static commands (`paths`, `graph`) read: a program file or an example directory, and a
 * policy (`--policy`, else the directory's). The program is checked as `validate` checks it, and
 * refused (exit 2, located issues) when invalid. The policy's pre-flight issues are not a refusal
 * here: they are what these commands explain, so they are handed back instead.
 */
import { NanoVmError, POLICY_CODES, type Issue, type Program } from '@nano-vm/kernel';
import { loadProgramFile } from './inputs.js';
import { loadPolicyFile, type LoadedPolicy } from './policyFile.js';
import { resolveTarget } from './target.js';

export interface AnalysisTarget {
  file: string;
  program: Program;
  policy?: LoadedPolicy;
  /** The policy pre-flight's issues (E_POLICY_*): a run under the policy refuses the program when one is an error. */
  preflight: Issue[];
}

export function readAnalysisTarget(path: string, policyOption: string | undefined): AnalysisTarget {
  const { programFile = path, policyFile } = resolveTarget(path, { policy: policyOption });
  const policy = policyFile !== undefined ? loadPolicyFile(policyFile) : undefined;
  const loaded = loadProgramFile(programFile, undefined, policy);
  const isPreflight = (i: Issue): boolean => Object.hasOwn(POLICY_CODES, i.code);
  const own = loaded.issues.filter((i) => !isPreflight(i));
  const errors = own.filter((i) => i.severity === 'error');
  if (!loaded.program || errors.length > 0)
    throw new NanoVmError(errors[0]?.code ?? 'E_PROGRAM_INVALID', `program ${programFile} is invalid`, own);
  return {
    file: programFile,
    program: loaded.program,
    ...(policy !== undefined ? { policy } : {}),
    preflight: loaded.issues.filter(isPreflight),
  };
}
