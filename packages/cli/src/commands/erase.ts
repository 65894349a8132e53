import { NanoVmError } from '@nano-vm/kernel';
import { eraseSubject, nodeHasher } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { loadPolicyFile } from '../policyFile.js';
import { DEFAULT_STORE, openStore } from '../storeSpec.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const ERASE = defineCommand({
  name: 'erase',
  summary:
    "GDPR erasure: deletes the vault values of every finished run of a data subject, leaving tombstones and a values_erased event in each run's chain.",
  args: '',
  options: {
    subject: { type: 'string', value: '<id>', required: true, description: 'the data subject whose values are erased' },
    policy: {
      type: 'string',
      value: '<file>',
      description: "a policy whose legal holds also refuse erasure (besides each run's own policy)",
    },
    store: {
      type: 'string',
      default: DEFAULT_STORE,
      value: '<sqlite:path | memory: | postgres://…>',
      defaultText: 'sqlite:./.nano-vm/nano-vm.db, or $NANO_VM_STORE',
      description: 'the store to erase in',
    },
    json: {
      type: 'boolean',
      default: false,
      description: 'one object: {subject, erased, refused, pending, already_erased}',
    },
  },
  run: eraseCommand,
});
export const ERASE_USAGE = usageText(ERASE);

/**
 * GDPR erasure (docs/privacy.md): deletes the vault values and salts of every finished run of a
 * data subject and appends `values_erased` to each run's chain. A legal hold in the run's own policy
 * (or in --policy) refuses it for that run, and the refusal is appended as `erasure_refused`.
 * Exit 0 when everything of the subject is erased; 1 when a hold refused some run or some run is
 * not finished yet (nothing of those was erased; the report names them), or when an erased run
 * still holds a copy of a value outside the vault (`residual`: events written before redaction
 * caught that copy, or an input field not declared sensitive).
 */
export async function eraseCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(ERASE, argv);
  if (positionals.length || values.subject === undefined || values.subject === '')
    throw new NanoVmError('E_USAGE', ERASE_USAGE);
  const policies = values.policy ? [loadPolicyFile(values.policy).policy] : [];
  const store = openStore(values.store, 'existing');
  let report;
  try {
    report = await eraseSubject({ store, subject: values.subject, hasher: nodeHasher, policies });
  } finally {
    await store.close();
  }
  if (values.json) process.stdout.write(JSON.stringify(report) + '\n');
  else {
    const lines = [`subject ${report.subject}`];
    for (const r of report.erased)
      lines.push(`  erased   ${r.run_id}  ${r.paths.join(', ')}  (values_erased at seq ${r.seq})`);
    for (const r of report.refused)
      lines.push(`  REFUSED  ${r.run_id}  legal hold ${r.hold}: ${r.reason}  (erasure_refused at seq ${r.seq})`);
    for (const r of report.pending)
      lines.push(`  pending  ${r.run_id}  run is ${r.status}; erase again when it has finished`);
    for (const id of report.already_erased) lines.push(`  already erased  ${id}`);
    for (const r of report.residual)
      lines.push(
        `  RESIDUAL ${r.run_id}  erased from the vault, but copies remain in ${[
          ...(r.seqs.length ? [`events at seq ${r.seqs.join(', ')}`] : []),
          ...(r.input ? ['the stored input (a field not declared sensitive)'] : []),
        ].join(' and ')}`,
      );
    if (report.file_pending)
      lines.push(
        '  PENDING  the erased values are still in the database files: another connection holds an old snapshot; erase again when it has ended',
      );
    if (lines.length === 1) lines.push('  no vault values of this subject in the store');
    process.stdout.write(lines.join('\n') + '\n');
  }
  return report.refused.length || report.pending.length || report.residual.length || report.file_pending
    ? EXIT.FAILED
    : EXIT.OK;
}
