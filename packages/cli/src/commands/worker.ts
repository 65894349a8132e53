import { NanoVmError } from '@nano-vm/kernel';
import { EXIT } from '../exitCodes.js';
import { loadTools, modelFromSpec } from '../inputs.js';
import { openPostgresStore } from '../storeSpec.js';
import { resolveTarget } from '../target.js';
import { cliTelemetry } from '../telemetry.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';
import { PG_STORE, pgStoreOption } from './migrate.js';

export const WORKER = defineCommand({
  name: 'worker',
  summary:
    'Runs submitted runs from a PostgreSQL store, and finishes runs whose worker died (their lease expired), until SIGTERM or SIGINT; wakes on notifications, never polls.',
  args: '[example dir]',
  options: {
    model: {
      type: 'string',
      value: '<spec>',
      description: 'the model runs with llm steps use (as for run). An example directory defaults to its model.yaml',
    },
    tools: {
      type: 'string',
      value: '<module>',
      description: 'the tools runs may call (as for run). An example directory defaults to its tools.mjs',
    },
    concurrency: {
      type: 'string',
      value: '<n>',
      defaultText: '16',
      description: 'runs driven at once (1–1000)',
    },
    prefetch: {
      type: 'string',
      value: '<n>',
      defaultText: 'half of --concurrency',
      description:
        'submissions claimed ahead of free slots while submissions keep coming, so that most finished runs need no claim of their own (0–1000; 0: claim only for free slots). A worker waking from idle claims for its free slots only',
    },
    'lease-ms': {
      type: 'string',
      value: '<ms>',
      defaultText: '30000',
      description:
        "how long a run's lease lasts (renewed every third of it while the run is driven); a run whose worker died is taken over once it expires. At least 100",
    },
    'drain-ms': {
      type: 'string',
      value: '<ms>',
      defaultText: '10000',
      description:
        'on SIGTERM or SIGINT, how long runs in flight may take to finish; the leases of those still going are then released, and another worker finishes them',
    },
    migrate: {
      type: 'boolean',
      default: false,
      description: "apply the store's pending migrations first (as nano-vm migrate)",
    },
    store: PG_STORE,
    json: {
      type: 'boolean',
      default: false,
      description:
        'one line per event: {worker, started} once, {run_id, phase, status?, outcome?, reinvoked?, error?} per run, {stopped, finished, released} at the end',
    },
    quiet: { type: 'boolean', default: false, description: 'print only problems and the final line' },
  },
  run: workerCommand,
});
export const WORKER_USAGE = usageText(WORKER);

const whole = (v: string | undefined, name: string, min: number, max: number, d: number): number => {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new NanoVmError('E_USAGE', `--${name} must be a whole number from ${min} to ${max}\n${WORKER_USAGE}`);
  return n;
};

export async function workerCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(WORKER, argv);
  if (positionals.length > 1) throw new NanoVmError('E_USAGE', WORKER_USAGE);
  const concurrency = whole(values.concurrency, 'concurrency', 1, 1000, 16);
  const prefetch = whole(values.prefetch, 'prefetch', 0, 1000, Math.ceil(concurrency / 2));
  const leaseMs = whole(values['lease-ms'], 'lease-ms', 100, 24 * 3600_000, 30_000);
  const drainMs = whole(values['drain-ms'], 'drain-ms', 0, 24 * 3600_000, 10_000);
  const spec = pgStoreOption(values.store, WORKER_USAGE);
  const { modelSpec, toolsFile } = resolveTarget(positionals[0], values, WORKER_USAGE);
  const tools = await loadTools(toolsFile);
  const model = modelSpec ? modelFromSpec(modelSpec) : undefined;
  if (!toolsFile)
    process.stderr.write(
      'worker: no tools module (--tools, or an example directory): runs that call a tool are left queued for workers that have it\n',
    );
  const onEvent = await cliTelemetry();
  const { startWorker, redactUrl } = await import('@nano-vm/store-postgres');
  // Each run is driven with its own lease; the pool carries the reads and lease writes of all of them.
  const store = await openPostgresStore(spec, {
    migrate: values.migrate,
    poolSize: Math.min(10, 2 + (concurrency >> 3)),
  });
  const out = (line: object, text: string) =>
    process.stdout.write(values.json ? JSON.stringify(line) + '\n' : text + '\n');
  let stopping: Promise<unknown> | undefined;
  try {
    const worker = await startWorker({
      store,
      ...(model ? { model } : {}),
      tools,
      concurrency,
      prefetch,
      leaseMs,
      drainMs,
      ...(onEvent ? { onEvent } : {}),
      onRun: (r) => {
        if (values.quiet && r.phase !== 'refused' && r.phase !== 'stopped' && r.phase !== 'skipped') return;
        const what =
          r.phase === 'finished'
            ? `finished ${r.run_id}: ${r.status}${r.outcome ? ` ${r.outcome}` : ''}${r.reinvoked?.length ? ` (re-invoked ${r.reinvoked.join(', ')})` : ''}`
            : r.error
              ? `${r.phase} ${r.run_id}: ${r.error.code} ${r.error.message}`
              : `${r.phase} ${r.run_id}`;
        out(r, what);
      },
      onProblem: (e) => process.stderr.write(`worker: ${e instanceof NanoVmError ? `${e.code} ` : ''}${e.message}\n`),
    });
    out(
      { worker: worker.owner, started: true, concurrency, lease_ms: leaseMs },
      `worker ${worker.owner} on ${redactUrl(spec)} (schema ${store.schema}), ${concurrency} at a time; SIGTERM stops it`,
    );
    const stop = (): void => {
      stopping ??= worker.stop();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    // The LISTEN connection and the worker's timers keep the process alive until stop().
    await worker.stopped;
    const r = (await stopping) as { finished: number; released: string[] };
    const s = worker.stats;
    out(
      { ...s, stopped: true, stopped_runs: s.stopped, drained: r.finished, released: r.released },
      `worker stopped: ${s.finished} runs finished (${s.recovered} recovered), ${s.refused} refused${r.released.length ? `; released ${r.released.length} runs still in flight: ${r.released.join(', ')}` : ''}`,
    );
    // A drive whose lease was released is abandoned (another worker continues the run); its tool
    // call may still hold the event loop: the process ends once the command has reported.
    if (r.released.length) setTimeout(() => process.exit(), 100).unref();
    return EXIT.OK;
  } finally {
    await store.close();
  }
}
