/**
 * Reading a policy file (`--policy`, or an example directory's policy.yaml): parsed and checked
 * with the same file:line:col reporting as programs; a file that is not a policy is refused.
 */
import { extname } from 'node:path';
import { loadPolicy, type PolicySnapshot, type SourceMap } from '@nano-vm/kernel';
import { CliError } from './cliError.js';
import { EXIT } from './exitCodes.js';
import { readText } from './inputs.js';

export interface LoadedPolicy {
  policy: PolicySnapshot;
  file: string;
  sourceMap?: SourceMap;
}

export function loadPolicyFile(file: string): LoadedPolicy {
  const loaded = loadPolicy(readText(file, 'policy'), { file, format: extname(file) === '.json' ? 'json' : 'yaml' });
  if (!loaded.policy)
    throw new CliError(
      loaded.issues[0]?.code ?? 'E_POLICY_INVALID',
      `policy ${file} is invalid`,
      EXIT.REFUSED,
      loaded.issues,
    );
  return { policy: loaded.policy, file, ...(loaded.sourceMap !== undefined ? { sourceMap: loaded.sourceMap } : {}) };
}
