/**
 * Run many workflows on every core: worker threads each run the same program with the same tools
 * and model, taking inputs in batches. For platform teams that push thousands of runs through one
 * process; a single run is never split (a run's trace is built by one machine, in order).
 *
 * Each worker imports the operator's setup module (never anything named by a program, a model
 * answer or a tool result), which exports
 *
 *   export async function setup() { return { program, tools, model, store? } }
 *
 * and keeps its runs in the store that setup returns (a MemoryStore per worker by default).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { NanoVmError } from '@nano-vm/kernel';

export interface RunPoolOptions {
  /** Path or URL of the setup module. */
  module: string | URL;
  /** Worker threads; defaults to the number of cores. */
  workers?: number;
  /** Most inputs sent to a worker in one message. */
  batch?: number;
}

export interface RunSummary {
  run_id: string | null;
  /** `refused` when the input or program was rejected before any event was written. */
  status: 'completed' | 'failed' | 'budget_exceeded' | 'stalled' | 'suspended' | 'refused';
  outcome: string | null;
  head_hash: string | null;
  event_count: number;
  error: { code: string; message: string } | null;
}

/**
 * Summaries travel as one flat array of scalars, SUMMARY_FIELDS per run (the run's pool id first):
 * structured clone writes every member name of every object, and posting an array of summary
 * objects was a tenth of a worker's time on short runs.
 */
const SUMMARY_FIELDS = 8;

export function packSummaries(ids: readonly number[], summaries: readonly RunSummary[]): (string | number | null)[] {
  const out: (string | number | null)[] = [];
  summaries.forEach((s, i) =>
    out.push(
      ids[i]!,
      s.run_id,
      s.status,
      s.outcome,
      s.head_hash,
      s.event_count,
      s.error?.code ?? null,
      s.error?.message ?? null,
    ),
  );
  return out;
}

function unpackSummary(p: readonly (string | number | null)[], at: number): RunSummary {
  const code = p[at + 6] as string | null;
  return {
    run_id: p[at + 1] as string | null,
    status: p[at + 2] as RunSummary['status'],
    outcome: p[at + 3] as string | null,
    head_hash: p[at + 4] as string | null,
    event_count: p[at + 5] as number,
    error: code === null ? null : { code, message: p[at + 7] as string },
  };
}

interface Pending {
  resolve: (s: RunSummary) => void;
  reject: (e: Error) => void;
}

interface WorkerSlot {
  worker: Worker;
  inFlight: number;
}

export class RunPool {
  private readonly slots: WorkerSlot[] = [];
  private readonly pending = new Map<number, Pending>();
  private queue: { id: number; input: unknown }[] = [];
  private nextId = 0;
  private scheduled = false;
  private closed = false;
  private readonly batch: number;

  private constructor(batch: number) {
    this.batch = batch;
  }

  /** Start the workers and wait until each has run its setup. */
  static async start(opts: RunPoolOptions): Promise<RunPool> {
    const pool = new RunPool(opts.batch ?? 256);
    const n = Math.max(1, opts.workers ?? availableParallelism());
    const moduleUrl =
      opts.module instanceof URL ? opts.module.href : new URL(opts.module, `file://${process.cwd()}/`).href;
    try {
      await Promise.all(Array.from({ length: n }, () => pool.spawn(moduleUrl)));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  private spawn(moduleUrl: string): Promise<void> {
    const worker = new Worker(new URL('./runPoolWorker.js', import.meta.url), { workerData: { moduleUrl } });
    const slot: WorkerSlot = { worker, inFlight: 0 };
    this.slots.push(slot);
    return new Promise((resolve, reject) => {
      worker.once('error', (e) => {
        const failed = new NanoVmError('E_RUN_POOL_WORKER', `run pool worker failed: ${e.message}`, { cause: e });
        this.failAll(failed);
        reject(failed);
      });
      worker.on(
        'message',
        (
          msg:
            | { type: 'ready' }
            | { type: 'setup_failed'; message: string }
            | { type: 'results'; results: (string | number | null)[] },
        ) => {
          if (msg.type === 'ready') resolve();
          else if (msg.type === 'setup_failed')
            reject(new NanoVmError('E_RUN_POOL_SETUP', `run pool setup failed: ${msg.message}`));
          else {
            const r = msg.results;
            slot.inFlight -= r.length / SUMMARY_FIELDS;
            for (let at = 0; at < r.length; at += SUMMARY_FIELDS) {
              const id = r[at] as number;
              const p = this.pending.get(id);
              this.pending.delete(id);
              p?.resolve(unpackSummary(r, at));
            }
            this.dispatch();
          }
        },
      );
    });
  }

  /** Queue one run; inputs queued in the same tick travel to the workers together. */
  run(input: unknown): Promise<RunSummary> {
    if (this.closed) return Promise.reject(new NanoVmError('E_RUN_POOL_CLOSED', 'run pool is closed'));
    const id = this.nextId++;
    const p = new Promise<RunSummary>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.queue.push({ id, input });
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => {
        this.scheduled = false;
        this.dispatch();
      });
    }
    return p;
  }

  /** Send queued inputs to the least busy workers, in batches. */
  private dispatch(): void {
    while (this.queue.length) {
      let slot = this.slots[0]!;
      for (const s of this.slots) if (s.inFlight < slot.inFlight) slot = s;
      const size = Math.min(this.batch, Math.ceil(this.queue.length / this.slots.length));
      const items = this.queue.length <= size ? this.queue : this.queue.slice(0, size);
      this.queue = this.queue.length <= size ? [] : this.queue.slice(size);
      slot.inFlight += items.length;
      slot.worker.postMessage({ type: 'run', ids: items.map((x) => x.id), inputs: items.map((x) => x.input) });
    }
  }

  private failAll(e: NanoVmError): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.failAll(new NanoVmError('E_RUN_POOL_CLOSED', 'run pool closed'));
  }
}
