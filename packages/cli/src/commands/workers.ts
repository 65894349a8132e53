import { NanoVmError } from '@nano-vm/kernel';
import { EXIT } from '../exitCodes.js';
import { openPostgresStore } from '../storeSpec.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';
import { PG_STORE, pgStoreOption } from './migrate.js';

export const WORKERS = defineCommand({
  name: 'workers',
  summary:
    'Shows the workers of a PostgreSQL store and who holds what: each worker, the runs it holds leases on, runs leased by other processes, runs waiting to be recovered, and the queue.',
  args: '',
  options: {
    store: PG_STORE,
    all: { type: 'boolean', default: false, description: 'also list stopped workers' },
    json: {
      type: 'boolean',
      default: false,
      description:
        'one object: {workers: [{owner, host, pid, state, seen_at, done, runs}], others, orphaned, queued, refused}',
    },
  },
  run: workersCommand,
});
export const WORKERS_USAGE = usageText(WORKERS);

const iso = (ms: number): string => new Date(ms).toISOString();

export async function workersCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(WORKERS, argv);
  if (positionals.length) throw new NanoVmError('E_USAGE', WORKERS_USAGE);
  const spec = pgStoreOption(values.store, WORKERS_USAGE);
  const { listWorkers } = await import('@nano-vm/store-postgres');
  const store = await openPostgresStore(spec);
  try {
    const l = await listWorkers(store);
    const shown = l.workers.filter((w) => values.all || w.state !== 'stopped' || w.runs.length);
    if (values.json) {
      process.stdout.write(JSON.stringify({ ...l, workers: shown }) + '\n');
      return EXIT.OK;
    }
    const lines: string[] = [];
    for (const w of shown) {
      lines.push(
        `${w.owner}  ${w.state}, pid ${w.pid} on ${w.host}, ${w.runs.length}/${w.concurrency} runs, ${w.done} done, last seen ${iso(w.seen_at)}`,
      );
      for (const r of w.runs) lines.push(`  ${r.run_id}  lease until ${iso(r.lease_expires_at)}`);
    }
    if (!shown.length) lines.push('no workers');
    for (const r of l.others)
      lines.push(`${r.run_id}  leased by ${r.owner} (not a worker) until ${iso(r.lease_expires_at)}`);
    lines.push(
      `${l.queued} submitted run${l.queued === 1 ? '' : 's'} waiting, ${l.orphaned} running run${l.orphaned === 1 ? '' : 's'} without a live lease (a worker recovers them)`,
    );
    for (const r of l.refused) lines.push(`refused ${r.run_id}: ${r.error}`);
    process.stdout.write(lines.join('\n') + '\n');
    return EXIT.OK;
  } finally {
    await store.close();
  }
}
