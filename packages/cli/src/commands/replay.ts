import {
  NanoVmError,
  POLICY_CODES,
  policyFromValue,
  replayBundle,
  type Bundle,
  type Issue,
  type Program,
} from '@nano-vm/kernel';
import { nodeHasher } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { readVerifiedBundle } from '../bundleFile.js';
import { loadProgramFile } from '../inputs.js';
import { loadPolicyFile, type LoadedPolicy } from '../policyFile.js';
import { renderIssues } from '../render.js';
import { missingText, renderVaultReport } from '../renderVault.js';
import { vaultFromStore } from '../vaultOption.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const REPLAY = defineCommand({
  name: 'replay',
  summary:
    "Re-derives a bundle's run from its recorded answers (no model or tool is called): exit 0 when identical, 1 at the first divergence; with --program or --policy, a counterfactual.",
  args: '<bundle.json>',
  options: {
    program: {
      type: 'string',
      value: '<file>',
      description: 'replay the recorded answers against this version of the program (counterfactual)',
    },
    policy: {
      type: 'string',
      value: '<file>',
      description: "replay under this policy instead of the bundle's (counterfactual)",
    },
    store: {
      type: 'string',
      value: '<sqlite:path | memory: | postgres://…>',
      description:
        "read the run's sensitive input values from this store's vault, so that every decision is re-derived",
    },
    json: {
      type: 'boolean',
      default: false,
      description: 'one object: the replay result (identical, first_divergence, path, outcome, missing, vault, …)',
    },
  },
  run: replayCommand,
});
export const REPLAY_USAGE = usageText(REPLAY);

/**
 * Re-runs the recorded decisions from a bundle with its recorded answers (no model or tool is
 * called). Plain replay: exit 0 when identical, 1 at the first diverging event. With --program or
 * --policy (counterfactual): exit 0 with the new path and outcome, 1 when a step needs a result
 * that was never recorded.
 */
export async function replayCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(REPLAY, argv);
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new NanoVmError('E_USAGE', REPLAY_USAGE);
  // A bundle that does not verify is refused: its recorded answers cannot be trusted.
  const bundle = readVerifiedBundle(file);

  const loadedPolicy = values.policy ? loadPolicyFile(values.policy) : undefined;
  const policy: unknown = loadedPolicy?.policy;
  let program: Program | undefined;
  let warnings: Issue[] = [];
  if (values.program) {
    // Checked under the policy in force for the replay, so guards may read its thresholds. The
    // policy's own pre-flight rules are reported, not enforced: the replay shows what the machine
    // would have decided at run time.
    const inForce = loadedPolicy ?? bundlePolicy(bundle, file);
    const loaded = loadProgramFile(values.program, undefined, inForce);
    const refusing = (i: Issue) => i.severity === 'error' && !Object.hasOwn(POLICY_CODES, i.code);
    if (!loaded.program || loaded.issues.some(refusing))
      throw new NanoVmError('E_PROGRAM_INVALID', `program ${values.program} is invalid`, loaded.issues);
    program = loaded.program;
    warnings = loaded.issues.filter((i) => !refusing(i));
  }
  // With --store, the run's sensitive inputs come back from the vault and every decision is re-derived.
  const vault = values.store ? await vaultFromStore(values.store, bundle) : undefined;
  const r = replayBundle(bundle, {
    hasher: nodeHasher,
    ...(program ? { program } : {}),
    ...(values.policy ? { policy } : {}),
    ...(vault ? { vault } : {}),
  });
  const ok = r.counterfactual ? r.missing === null : r.identical;
  if (values.json) {
    const { events: _e, receipt: _r, ...rest } = r;
    process.stdout.write(JSON.stringify({ ...rest, event_count: r.events.length }) + '\n');
  } else if (!r.counterfactual) {
    process.stdout.write(
      r.identical
        ? `${file}: replay identical — ${r.events.length} events re-derived from recorded answers, head ${r.head_hash}\n`
        : `${file}: replay DIVERGES at event seq ${r.first_divergence?.seq}${r.first_divergence?.field ? ` (${r.first_divergence.field})` : ''}\n  recorded: ${JSON.stringify(r.first_divergence?.recorded)}\n  replayed: ${JSON.stringify(r.first_divergence?.replayed)}\n`,
    );
  } else {
    process.stdout.write(
      [
        `counterfactual replay of ${file}${values.program ? ` under program ${values.program}` : ''}${values.policy ? ` under policy ${values.policy}` : ''}`,
        `  recorded: ${r.recorded_path.join(' → ')}  outcome ${r.recorded_outcome ?? '-'}`,
        `  now:      ${r.path.join(' → ')}  ${r.status === 'incomplete' ? 'INCOMPLETE' : `status ${r.status} outcome ${r.outcome ?? '-'}`}`,
        ...(r.missing ? [`  ${missingText(r.missing)}`] : []),
        '',
      ].join('\n'),
    );
  }
  if (!values.json && r.vault) process.stdout.write(renderVaultReport(r.vault));
  if (warnings.length && !values.json) process.stderr.write(renderIssues(warnings) + '\n');
  return ok ? EXIT.OK : EXIT.FAILED;
}

/** The policy recorded in a (verified) bundle, when it has one. */
function bundlePolicy(bundle: Bundle, file: string): LoadedPolicy | undefined {
  const value = bundle.policy;
  if (value === null || value === undefined) return undefined;
  const { policy } = policyFromValue(value);
  return policy ? { policy, file: `${file}#/policy` } : undefined;
}
