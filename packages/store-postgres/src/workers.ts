/**
 * Who holds what (`nano-vm workers`): every registered worker with its state and last sign of
 * life, the runs whose lease it holds now, and the submissions it has claimed; plus the runs
 * leased by other processes (a `nano-vm run` or `recover` on this store) and the queue's size.
 */
import type { PostgresStore } from './postgresStore.js';

export interface WorkerListing {
  workers: {
    owner: string;
    host: string;
    pid: number;
    concurrency: number;
    state: string;
    started_at: number;
    seen_at: number;
    done: number;
    runs: { run_id: string; lease_expires_at: number }[];
  }[];
  /** Runs leased by an owner that is not a registered worker. */
  others: { run_id: string; owner: string; lease_expires_at: number }[];
  /** Running runs no one holds a live lease on: a worker will recover them. */
  orphaned: number;
  queued: number;
  /** Submissions a worker refused (an invalid program, an unknown tool), with why. */
  refused: { run_id: string; error: string }[];
}

export async function listWorkers(store: PostgresStore, now = Date.now()): Promise<WorkerListing> {
  const S = store.s;
  const workers = await store.query<{
    owner: string;
    host: string;
    pid: number;
    concurrency: number;
    state: string;
    started_at: number;
    seen_at: number;
    done: number;
  }>(`SELECT owner, host, pid, concurrency, state, started_at, seen_at, done FROM ${S}.workers ORDER BY started_at`);
  const leased = await store.query<{ run_id: string; lease_owner: string; lease_expires_at: number }>(
    `SELECT run_id, lease_owner, lease_expires_at FROM ${S}.runs
     WHERE status = 'running' AND lease_owner IS NOT NULL AND lease_expires_at > $1 ORDER BY run_no`,
    [now],
  );
  const orphaned = await store.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${S}.runs WHERE status = 'running' AND (lease_owner IS NULL OR lease_expires_at <= $1)`,
    [now],
  );
  const queue = await store.query<{ queued: number }>(
    `SELECT count(*)::int AS queued FROM ${S}.queue WHERE error IS NULL`,
  );
  const refused = await store.query<{ run_id: string; error: string }>(
    `SELECT run_id, error FROM ${S}.queue WHERE error IS NOT NULL ORDER BY queue_no`,
  );
  const byOwner = new Map(
    workers.rows.map((w) => [w.owner, { ...w, runs: [] as { run_id: string; lease_expires_at: number }[] }]),
  );
  const others: WorkerListing['others'] = [];
  for (const r of leased.rows) {
    // A worker's drives are leased as `<worker>/<n>`.
    const w = byOwner.get(r.lease_owner.replace(/\/[^/]*$/, ''));
    if (w) w.runs.push({ run_id: r.run_id, lease_expires_at: r.lease_expires_at });
    else others.push({ run_id: r.run_id, owner: r.lease_owner, lease_expires_at: r.lease_expires_at });
  }
  return {
    workers: [...byOwner.values()],
    others,
    orphaned: orphaned.rows[0]?.n ?? 0,
    queued: queue.rows[0]?.queued ?? 0,
    refused: refused.rows,
  };
}
