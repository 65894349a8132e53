import { NanoVmError, serializeBundle, type RunStatus } from '@nano-vm/kernel';
import { runResult } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { signerOption, writeSignature } from '../keys.js';
import { checkOutputFile, writeFileAtomic } from '../outputFile.js';
import { DEFAULT_STORE, withStore } from '../storeSpec.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const RUNS = defineCommand({
  name: 'runs',
  summary: 'Lists the runs in a store, in creation order.',
  args: '',
  options: {
    status: {
      type: 'string',
      value: '<status>',
      description: 'only runs with this status: completed, failed, budget_exceeded, stalled, suspended or running',
    },
    store: {
      type: 'string',
      default: DEFAULT_STORE,
      value: '<sqlite:path | memory: | postgres://…>',
      defaultText: 'sqlite:./.nano-vm/nano-vm.db, or $NANO_VM_STORE',
      description: 'the store to list',
    },
    json: { type: 'boolean', default: false, description: 'one object: {runs}' },
  },
  run: runsCommand,
});
export const RUNS_USAGE = usageText(RUNS);
export const EXPORT = defineCommand({
  name: 'export',
  summary:
    "Writes a stored run's bundle (program, policy, input, events and receipt) to a file or stdout: everything verify and replay need, offline.",
  args: '<run_id>',
  options: {
    out: {
      type: 'string',
      short: 'o',
      value: '<bundle.json>',
      description: 'write the bundle to this file instead of stdout',
    },
    store: {
      type: 'string',
      default: DEFAULT_STORE,
      value: '<sqlite:path | memory: | postgres://…>',
      defaultText: 'sqlite:./.nano-vm/nano-vm.db, or $NANO_VM_STORE',
      description: 'the store the run is in',
    },
    json: { type: 'boolean', default: false, description: 'print errors as JSON (the bundle is JSON either way)' },
    sign: {
      type: 'string',
      value: '<private key file>',
      description:
        'sign the bundle written with --out (required with it): the Ed25519 signature goes beside it as <bundle>.sig (docs/trace-format.md §10). A key that is not an Ed25519 private key, or that others can read, is refused (E_KEY_INVALID)',
    },
  },
  run: exportCommand,
});
export const EXPORT_USAGE = usageText(EXPORT);

const STATUSES = ['completed', 'failed', 'budget_exceeded', 'stalled', 'suspended', 'running'];

export async function runsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(RUNS, argv);
  if (positionals.length) throw new NanoVmError('E_USAGE', RUNS_USAGE);
  if (values.status !== undefined && !STATUSES.includes(values.status))
    throw new NanoVmError('E_USAGE', `--status must be one of ${STATUSES.join(', ')}`);
  // A store file that does not exist yet holds no runs: listed as none, and not created.
  let missing = false;
  const runs = await withStore(
    values.store,
    (store) => store.listRuns(values.status !== undefined ? { status: values.status as RunStatus } : {}),
    'existing',
  ).catch((e: unknown) => {
    if (!(e instanceof NanoVmError) || e.code !== 'E_STORE_MISSING') throw e;
    missing = true;
    return [];
  });
  if (values.json)
    process.stdout.write(
      JSON.stringify({ runs: runs.map(({ program: _p, policy: _q, input: _i, ...r }) => r) }) + '\n',
    );
  else {
    for (const r of runs)
      process.stdout.write(
        `${r.run_id}  ${r.program_id.padEnd(16)} ${r.status.padEnd(16)} ${(r.outcome ?? '-').padEnd(20)} ${String(r.event_count).padStart(5)} events  ${r.head_hash.slice(0, 16)}…\n`,
      );
    process.stdout.write(
      `${runs.length} run${runs.length === 1 ? '' : 's'} in ${values.store}${missing ? ' (there is no store file yet)' : ''}\n`,
    );
  }
  return EXIT.OK;
}

/** Everything needed offline: program, policy, input, events and the receipt computed from them. */
export async function exportCommand(argv: string[]): Promise<number> {
  // --json is accepted for symmetry (errors then print as JSON); the bundle is JSON either way.
  const { values, positionals } = parseCommandArgs(EXPORT, argv);
  const runId = positionals[0];
  if (!runId || positionals.length > 1) throw new NanoVmError('E_USAGE', EXPORT_USAGE);
  const signer = signerOption(values.sign, values.out);
  if (values.out) checkOutputFile(values.out);
  const { run, events } = await withStore(
    values.store,
    async (store) => {
      const run = await store.getRun(runId);
      return { run, events: run ? await store.events(runId) : [] };
    },
    'existing',
  );
  if (!run) throw new NanoVmError('E_STORE_NO_RUN', `no run ${runId} in ${values.store}`);
  if (events.length === 0) throw new NanoVmError('E_NO_GENESIS', `run ${runId} has no events`);
  const bundle = runResult(run, run.status, events).bundle;
  const text = serializeBundle(bundle);
  if (values.out) {
    try {
      writeFileAtomic(values.out, text);
    } catch (e) {
      throw new NanoVmError(
        'E_OUTPUT_WRITE',
        `cannot write the bundle of run ${runId} to ${values.out}: ${(e as Error).message} (the run is unchanged in ${values.store})`,
        { cause: e },
      );
    }
    const sigFile = signer ? writeSignature(values.out, bundle, signer) : undefined;
    process.stderr.write(
      `wrote ${values.out} (${events.length} events, ${run.status}${run.outcome ? ` ${run.outcome}` : ''})${sigFile ? `, signed by ${signer!.key_id}: ${sigFile}` : ''}\n`,
    );
  } else process.stdout.write(text);
  return EXIT.OK;
}
