import { NanoVmError } from '@nano-vm/kernel';
import { RunLeasedError, overdueWaits, recoverRun, type Store } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { loadProgramFile, modelFromSpec, needsModel, NO_MODEL } from '../inputs.js';
import { loadPolicyFile } from '../policyFile.js';
import { DEFAULT_STORE, openStore } from '../storeSpec.js';
import { resolveTarget } from '../target.js';
import { cliTelemetry } from '../telemetry.js';
import { track } from '../exitGuard.js';
import { commandLine, continueArgs } from './run.js';
import { CONTINUE_OPTIONS, defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';
import { loadRunTools, withCleanup, type Cleanup } from '../gatewayOption.js';

export const RECOVER = defineCommand({
  name: 'recover',
  summary:
    'Finishes runs whose process died (still running) and suspended runs whose wait has timed out: re-derived from their stored events, then continued live.',
  args: '[example dir]',
  options: {
    ...CONTINUE_OPTIONS,
    run: { type: 'string', value: '<run_id>', description: 'recover this run only' },
    'lease-ms': {
      type: 'string',
      value: '<ms>',
      defaultText: '30000',
      description:
        'how long the lease recover takes on each run lasts (renewed while it drives the run); at least 100 (docs/stores.md "Leases")',
    },
    store: {
      type: 'string',
      default: DEFAULT_STORE,
      value: '<sqlite:path | memory: | postgres://…>',
      defaultText: 'sqlite:./.nano-vm/nano-vm.db, or $NANO_VM_STORE',
      description: 'the store whose runs are recovered',
    },
    json: {
      type: 'boolean',
      default: false,
      description:
        'one line per run: {run_id, recovered, status, outcome, resumed_from_seq, reinvoked, head_hash}, or {run_id, recovered: false, skipped, lease} for a run another process holds',
    },
  },
  run: recoverCommand,
});
export const RECOVER_USAGE = usageText(RECOVER);

/**
 * Finishes runs whose process died: every `running` run in the store (or just --run), re-derived
 * from its stored events and continued live with the given model and tools (an example directory
 * supplies both). A tool call that had started is invoked again with its original idempotency key.
 * Suspended runs whose wait has timed out are continued too: they take the wait's timeout edge.
 * A run another live process drives (it holds the run's lease) is skipped and reported, as is one
 * that process finished meanwhile; only a skipped `--run` fails the command.
 */
export function recoverCommand(argv: string[]): Promise<number> {
  return withCleanup((cleanup) => recoverCommandWith(argv, cleanup));
}

async function recoverCommandWith(argv: string[], cleanup: Cleanup): Promise<number> {
  const { values, positionals } = parseCommandArgs(RECOVER, argv);
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
  // The policy as it is now: a run whose pinned policy differs halts as POLICY_BLOCKED.
  const policy = policyFile ? loadPolicyFile(policyFile).policy : undefined;
  const tools = await loadRunTools(toolsFile, values.gateway, cleanup);
  let store: Store;
  try {
    store = openStore(values.store, 'existing');
  } catch (e) {
    // A store file that does not exist yet holds no run to recover: a periodic `recover` (at
    // start-up, before anything has run) finds nothing to do, and creates nothing. `--run` names
    // a run, which is then missing (E_STORE_MISSING).
    if (!(e instanceof NanoVmError) || e.code !== 'E_STORE_MISSING' || values.run !== undefined) throw e;
    if (!values.json) process.stdout.write(`0 of 0 runs recovered (there is no store file for ${values.store} yet)\n`);
    return EXIT.OK;
  }
  try {
    // A run named by the operator must exist: that is a refusal (as in export, resume, analyze), not a run that failed to recover.
    if (values.run !== undefined && !(await store.getRun(values.run)))
      throw new NanoVmError('E_STORE_NO_RUN', `no run ${values.run} in ${values.store}`);
    // Interrupted runs, and suspended runs whose wait has timed out (they take their timeout edge).
    const runs =
      values.run !== undefined
        ? [values.run]
        : [...(await store.listRuns({ status: 'running' })).map((r) => r.run_id), ...(await overdueWaits(store))];
    let failures = 0;
    let skipped = 0;
    let recovered = 0;
    const onEvent = await cliTelemetry();
    const model = modelSpec ? modelFromSpec(modelSpec) : undefined;
    for (const runId of runs) {
      // Reported at exit if the process ends before this run is finished and reported.
      const pending = track(
        `run ${runId} (being recovered)`,
        `it stays in ${values.store}; continue it with: ${commandLine(['recover', ...continueArgs(positionals[0], values), '--run', runId])}`,
      );
      try {
        // A model is needed only for a run whose program calls one; without it that run is reported, not recovered.
        const stored = model ? undefined : await store.getRun(runId);
        if (stored && needsModel(stored.program))
          throw new NanoVmError(
            'E_MODEL_SPEC',
            `no model: program ${stored.program_id} has llm steps; pass --model scripted:<file> (or an example directory)`,
          );
        const r = await recoverRun({
          store,
          runId,
          model: model ?? NO_MODEL,
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
      } catch (caught) {
        // Another live process drives it, or finished it since the listing: not this recover's to do.
        const leased = caught instanceof RunLeasedError ? caught.lease : undefined;
        if (
          leased ||
          (caught instanceof NanoVmError && caught.code === 'E_RECOVERY_NOT_RUNNING' && values.run === undefined)
        ) {
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
        // A run that cannot be recovered is reported, and the others still are; even a bug stops
        // only the run it happened in (its stack goes to stderr).
        failures++;
        const e = caught instanceof NanoVmError ? caught : bugIn(caught);
        if (values.json)
          process.stdout.write(
            JSON.stringify({ run_id: runId, recovered: false, error: { code: e.code, message: e.message } }) + '\n',
          );
        else process.stdout.write(`NOT recovered ${runId}: ${e.code} ${e.message}\n`);
      } finally {
        pending.done();
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

function bugIn(e: unknown): NanoVmError {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  return new NanoVmError('E_INTERNAL', e instanceof Error ? e.message : String(e));
}
