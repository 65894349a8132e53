import { NanoVmError, serializeBundle, type ExternalEvent } from '@nano-vm/kernel';
import { resumeRun, type ResumeResult } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { signerOption, writeSignature } from '../keys.js';
import { modelFromSpec, needsModel, NO_MODEL, readJson } from '../inputs.js';
import { checkOutputFile, writeBundle } from '../outputFile.js';
import { loadPolicyFile } from '../policyFile.js';
import { renderTrace } from '../render.js';
import { DEFAULT_STORE, openStore } from '../storeSpec.js';
import { resolveTarget } from '../target.js';
import { cliTelemetry } from '../telemetry.js';
import { commandLine, continueArgs, suspendedHint, waitingInfo } from './run.js';
import { track, type Tracked } from '../exitGuard.js';
import { CONTINUE_OPTIONS, defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';
import { loadRunTools, withCleanup, type Cleanup } from '../gatewayOption.js';

export const RESUME = defineCommand({
  name: 'resume',
  summary:
    'Delivers the external event a suspended run waits for (an approval, a webhook payload) and continues the run live.',
  args: '<run_id> [example dir]',
  options: {
    event: {
      type: 'string',
      value: '<payload.json>',
      required: true,
      description: "a file holding the event's payload (any JSON); it must satisfy the wait step's event schema",
    },
    role: {
      type: 'string',
      value: '<role>',
      description: "the sender's role; must be the wait step's role when it declares one",
    },
    'event-id': {
      type: 'string',
      value: '<id>',
      description: "the sender's id for the event (e.g. a webhook delivery id), recorded with it",
    },
    ...CONTINUE_OPTIONS,
    store: {
      type: 'string',
      default: DEFAULT_STORE,
      value: '<sqlite:path | memory: | postgres://…>',
      defaultText: 'sqlite:./.nano-vm/nano-vm.db, or $NANO_VM_STORE',
      description: 'the store the run is in',
    },
    out: { type: 'string', short: 'o', value: '<bundle.json>', description: "write the run's bundle there" },
    json: {
      type: 'boolean',
      default: false,
      description:
        'one object: {run_id, resume, status, waiting?, outcome, head_hash, resumed_from_seq, signature?, key_id?, receipt}',
    },
    sign: {
      type: 'string',
      value: '<private key file>',
      description:
        'sign the bundle written with --out (required with it): the Ed25519 signature goes beside it as <bundle>.sig (docs/trace-format.md §10). A key that is not an Ed25519 private key, or that others can read, is refused (E_KEY_INVALID)',
    },
  },
  run: resumeCommand,
});
export const RESUME_USAGE = usageText(RESUME);

/**
 * Delivers the external event a suspended run waits for (a human approval, a webhook payload) and
 * continues the run from its wait step. The run's model and tools come from --model/--tools or an
 * example directory, as for `recover`.
 *
 * Exit 0: the event was taken (or had already been taken: resuming twice with the same event is a
 * no-op). Exit 1: the run is not waiting (E_RESUME_NOT_SUSPENDED), another event took the wait
 * first, concurrently or earlier (E_RESUME_CONFLICT), or the wait had timed out before the event (E_WAIT_EXPIRED: the run
 * took its timeout edge instead). Exit 2: refused: wrong role, payload outside the step's event
 * schema, unknown run, bad arguments.
 */
export function resumeCommand(argv: string[]): Promise<number> {
  return withCleanup((cleanup) => resumeCommandWith(argv, cleanup));
}

async function resumeCommandWith(argv: string[], cleanup: Cleanup): Promise<number> {
  const { values, positionals } = parseCommandArgs(RESUME, argv);
  const [runId, dir, ...extra] = positionals;
  if (!runId || extra.length || values.event === undefined) throw new NanoVmError('E_USAGE', RESUME_USAGE);
  const signer = signerOption(values.sign, values.out);
  const { modelSpec, toolsFile, policyFile } = resolveTarget(dir, values, RESUME_USAGE);
  const storeSpec = values.store ?? DEFAULT_STORE;
  const event: ExternalEvent = { payload: readJson(values.event, 'event') };
  if (values.role !== undefined) event.role = values.role;
  if (values['event-id'] !== undefined) event.event_id = values['event-id'];
  if (values.out) checkOutputFile(values.out);
  const tools = await loadRunTools(toolsFile, values.gateway, cleanup);
  // The policy as it is now: a run whose pinned policy differs halts as POLICY_BLOCKED instead.
  const policy = policyFile ? loadPolicyFile(policyFile).policy : undefined;
  // Only a store that exists: resuming in the wrong place creates nothing.
  const store = openStore(storeSpec, 'existing');

  let r: ResumeResult;
  let pending: Tracked | undefined;
  try {
    // A model is needed only when the run's program calls one.
    const run = await store.getRun(runId);
    if (run && !modelSpec && needsModel(run.program))
      throw new NanoVmError(
        'E_MODEL_SPEC',
        `no model to continue run ${runId} with (program ${run.program_id} has llm steps): pass --model <spec> (or an example directory)`,
      );
    const model = modelSpec ? modelFromSpec(modelSpec) : NO_MODEL;
    const onEvent = await cliTelemetry();
    // Reported at exit if the process ends before the resumed run is finished and reported.
    pending = track(
      `run ${runId} (being resumed)`,
      `if it took the event it is running in ${storeSpec}; continue it with: ${commandLine(['recover', ...continueArgs(dir, values), '--run', runId])}`,
    );
    r = await resumeRun({
      store,
      runId,
      event,
      model,
      tools,
      ...(policy ? { policy } : {}),
      ...(onEvent ? { onEvent } : {}),
    });
  } finally {
    // Finished (or refused): what remains to report is the command's, which main.ts tracks.
    pending?.done();
    await store.close();
  }
  if (values.out)
    writeBundle(values.out, serializeBundle(r.bundle), {
      run_id: r.run_id,
      status: r.status,
      outcome: r.outcome,
      ...(storeSpec === 'memory:' ? {} : { store: storeSpec }),
    });
  const sigFile = values.out && signer ? writeSignature(values.out, r.bundle, signer) : undefined;
  if (r.resume === 'policy_blocked') {
    throw new NanoVmError(
      'E_POLICY_BLOCKED',
      `run ${runId}: the policy given is not the one the run started under, so the run halted as POLICY_BLOCKED without taking the event (docs/policy.md)`,
    );
  }
  if (r.resume === 'timed_out') {
    throw new NanoVmError(
      'E_WAIT_EXPIRED',
      `run ${runId}: the wait had timed out before this event arrived; the event was not taken and the run ${r.status === 'suspended' ? 'is suspended again' : `ended ${r.status}${r.outcome ? ` ${r.outcome}` : ''}`} (its timeout edge)`,
    );
  }
  if (values.json) {
    process.stdout.write(
      JSON.stringify({
        run_id: r.run_id,
        resume: r.resume,
        status: r.status,
        ...(r.waiting ? { waiting: waitingInfo(r.waiting) } : {}),
        outcome: r.outcome,
        head_hash: r.head_hash,
        resumed_from_seq: r.resumed_from_seq,
        ...(sigFile ? { signature: sigFile, key_id: signer!.key_id } : {}),
        receipt: r.receipt,
      }) + '\n',
    );
  } else {
    const lines =
      r.resume === 'duplicate'
        ? [
            `run ${runId} had already been resumed with this event: nothing done (status ${r.status}${r.outcome ? ` ${r.outcome}` : ''})`,
          ]
        : [`resumed ${runId}`, renderTrace(r.events.slice(r.resumed_from_seq))];
    lines.push(
      `status ${r.status}${r.outcome ? `  outcome ${r.outcome}` : ''}  events ${r.receipt.event_count}  head ${r.head_hash.slice(0, 16)}…${values.out ? `  bundle ${values.out}` : ''}${sigFile ? `  signed by ${signer!.key_id}` : ''}`,
    );
    if (r.waiting) lines.push(suspendedHint(runId, r.waiting, false, continueArgs(dir, values)));
    process.stdout.write(lines.join('\n') + '\n');
  }
  return EXIT.OK;
}
