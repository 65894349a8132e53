/**
 * Reading a policy file (`--policy`, or an example directory's policy.yaml): parsed and checked
 * with the same file:line:col reporting as programs; a file that is not a policy is refused.
 */
import { extname } from 'node:path';
import { firstErrorCode, loadPolicy, NanoVmError, type PolicySnapshot, type SourceMap } from '@nano-vm/kernel';
import { readText } from './inputs.js';

export interface LoadedPolicy {
  policy: PolicySnapshot;
  file: string;
  sourceMap?: SourceMap;
}

export function loadPolicyFile(file: string): LoadedPolicy {
  const loaded = loadPolicy(readText(file, 'policy'), { file, format: extname(file) === '.json' ? 'json' : 'yaml' });
  if (!loaded.policy)
    throw new NanoVmError(
      firstErrorCode(loaded.issues, 'E_POLICY_INVALID'),
      `policy ${file} is invalid`,
      loaded.issues,
    );
  return { policy: loaded.policy, file, ...(loaded.sourceMap !== undefined ? { sourceMap: loaded.sourceMap } : {}) };
}
