import { parseArgs } from 'node:util';
import { NanoVmError } from '@nano-vm/kernel';
import { RunLeasedError, overdueWaits, recoverRun } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { loadProgramFile, loadTools, modelFromSpec } from '../inputs.js';
import { loadPolicyFile } from '../policyFile.js';
import { DEFAULT_STORE, openStore } from '../storeSpec.js';
import { resolveTarget } from '../target.js';
import { cliTelemetry } from '../telemetry.js';

export const RECOVER_USAGE =
  'usage: nano-vm recover [example dir] [--model scripted:<file>] [--tools <module>] [--policy <file>] [--run <run_id>] [--lease-ms <ms>] [--store sqlite:<path>] [--json]';

/**
 * Finishes runs whose process died: every `running` run in the store (or just --run), re-derived
 * from its stored events and continued live with the given model and tools (an example directory
 * supplies both). A tool call that had started is invoked again with its original idempotency key.
 * Suspended runs whose wait has timed out are continued too: they take the wait's timeout edge.
 * A run another live process drives (it holds the run's lease) is skipped and reported, as is one
 * that process finished meanwhile; only a skipped `--run` fails the command.
 */
export async function recoverCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      tools: { type: 'string' },
      policy: { type: 'string' },
      run: { type: 'string' },
      'lease-ms': { type: 'string' },
      store: { type: 'string', default: DEFAULT_STORE },
      json: { type: 'boolean', default: false },
    },
  });
  if (positionals.length > 1) throw new NanoVmError('E_USAGE', RECOVER_USAGE);
  const leaseMs = values['lease-ms'] === undefined ? undefined : Number(values['lease-ms']);
  if (leaseMs !== undefined && !(Number.isInteger(leaseMs) && leaseMs >= 100))
    throw new NanoVmError(
      'E_USAGE',
      `--lease-ms must be a whole number of milliseconds, at least 100\n${RECOVER_USAGE}`,
    );
  const { layout, modelSpec, toolsFile, policyFile } = resolveTarget(positionals[0], values, RECOVER_USAGE);
  /** With an example directory's policy.yaml, the program it governs: other programs' runs keep theirs. */
  const governs = !values.policy && layout?.policyFile ? loadProgramFile(layout.programFile).program?.id : undefined;
  if (!modelSpec)
    throw new NanoVmError('E_MODEL_SPEC', 'no model: pass --model scripted:<file> (or an example directory)');
  // The policy as it is now: a run whose pinned policy differs halts as POLICY_BLOCKED.
  const policy = policyFile ? loadPolicyFile(policyFile).policy : undefined;
  const tools = await loadTools(toolsFile);
  const store = openStore(values.store);
  try {
    // Interrupted runs, and suspended runs whose wait has timed out (they take their timeout edge).
    const runs =
      values.run !== undefined
        ? [values.run]
        : [...(await store.listRuns({ status: 'running' })).map((r) => r.run_id), ...(await overdueWaits(store))];
    let failures = 0;
    let skipped = 0;
    let recovered = 0;
    const onEvent = await cliTelemetry();
    const model = modelFromSpec(modelSpec);
    for (const runId of runs) {
      try {
        const r = await recoverRun({
          store,
          runId,
          model,
          tools,
          ...(leaseMs !== undefined ? { lease: { ttlMs: leaseMs } } : {}),
          ...(onEvent ? { onEvent } : {}),
          ...(policy && (governs === undefined || (await store.getRun(runId))?.program_id === governs)
            ? { policy }
            : {}),
        });
        recovered++;
        if (values.json)
          process.stdout.write(
            JSON.stringify({
              run_id: runId,
              recovered: true,
              status: r.status,
              outcome: r.outcome,
              resumed_from_seq: r.resumed_from_seq,
              reinvoked: r.reinvoked,
              head_hash: r.head_hash,
            }) + '\n',
          );
        else
          process.stdout.write(
            `recovered ${runId}: ${r.status}${r.outcome ? ` ${r.outcome}` : ''} (re-derived ${r.resumed_from_seq} stored events${r.reinvoked.length ? `, re-invoked ${r.reinvoked.join(', ')}` : ''})\n`,
          );
      } catch (e) {
        // A run that cannot be recovered is reported, and the others still are; a bug stops here.
        if (!(e instanceof NanoVmError)) throw e;
        // Another live process drives it, or finished it since the listing: not this recover's to do.
        const leased = e instanceof RunLeasedError ? e.lease : undefined;
        if (leased || (e.code === 'E_RECOVERY_NOT_RUNNING' && values.run === undefined)) {
          skipped++;
          if (values.run !== undefined) failures++;
          if (values.json)
            process.stdout.write(
              JSON.stringify({
                run_id: runId,
                recovered: false,
                skipped: leased ? 'leased' : 'finished',
                ...(leased
                  ? { lease: { owner: leased.owner, expires_at: new Date(leased.expires_at).toISOString() } }
                  : {}),
              }) + '\n',
            );
          else
            process.stdout.write(
              leased
                ? `skipped ${runId}: another process drives it (lease held by ${leased.owner} until ${new Date(leased.expires_at).toISOString()})\n`
                : `skipped ${runId}: another process finished it meanwhile\n`,
            );
          continue;
        }
        failures++;
        if (values.json)
          process.stdout.write(
            JSON.stringify({ run_id: runId, recovered: false, error: { code: e.code, message: e.message } }) + '\n',
          );
        else process.stdout.write(`NOT recovered ${runId}: ${e.code} ${e.message}\n`);
      }
    }
    if (!values.json)
      process.stdout.write(
        `${recovered} of ${runs.length} run${runs.length === 1 ? '' : 's'} recovered${skipped ? `, ${skipped} skipped` : ''}\n`,
      );
    return failures ? EXIT.FAILED : EXIT.OK;
  } finally {
    await store.close();
  }
}
