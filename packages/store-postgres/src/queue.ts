/**
 * Submitted runs waiting for a worker. A submission is a row of `queue` (its run id, program,
 * policy and input); the INSERT notifies the workers' channel in the same transaction, so they
 * wake when it is committed. A worker claims submissions with `FOR UPDATE SKIP LOCKED` (a claim
 * with an owner and an expiry, so a worker that dies before starting one leaves it to another),
 * and the run's creation deletes its submission in the transaction that creates the run.
 */
import { randomUUID } from 'node:crypto';
import { NanoVmError, type Program } from '@nano-vm/kernel';
import { canonicalJson, hashJson } from '@nano-vm/kernel/verify';
import { checkInput, nodeHasher } from '@nano-vm/runtime';
import type { PostgresStore } from './postgresStore.js';

export interface Submission {
  program: Program;
  input: unknown;
  /** The policy the run is governed by (pinned at its genesis), or none. */
  policy?: unknown;
  /** The run's id (default `run-<uuid>`): a run id already submitted or stored is refused. */
  runId?: string;
}

/** A submission as a worker claims it. */
export interface ClaimedSubmission {
  run_id: string;
  program_hash: string;
  policy: unknown;
  input: unknown;
  attempts: number;
}

/**
 * Enqueues runs for the workers of `store` (one transaction, one notification however many);
 * returns their run ids in order. The input is checked against the program's limits here, so
 * a submission a worker could never start is refused at once (E_TOO_DEEP, E_TOO_LARGE, …).
 */
export async function submitRuns(store: PostgresStore, submissions: readonly Submission[]): Promise<string[]> {
  if (!submissions.length) return [];
  const programs = new Map<string, string>();
  const hashes = submissions.map((s) => {
    const h = hashJson(nodeHasher, s.program);
    if (!programs.has(h)) programs.set(h, canonicalJson(s.program));
    return h;
  });
  const ids = submissions.map((s) => s.runId ?? `run-${randomUUID()}`);
  const inputs = submissions.map((s) => checkInput(s.program, s.input).text);
  return store.transaction('submitting runs', async (c) => {
    await c.query(
      `INSERT INTO ${store.s}.programs (hash, program) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`,
      [[...programs.keys()], [...programs.values()]],
    );
    const taken = await c.query<{ run_id: string }>(
      `SELECT run_id FROM ${store.s}.runs WHERE run_id = ANY($1::text[]) UNION SELECT run_id FROM ${store.s}.queue WHERE run_id = ANY($1::text[]) LIMIT 1`,
      [ids],
    );
    if (taken.rows[0] || new Set(ids).size !== ids.length)
      throw new NanoVmError(
        'E_STORE_DUPLICATE_RUN',
        `run ${taken.rows[0]?.run_id ?? ids.find((id, i) => ids.indexOf(id) !== i)} was already submitted or exists`,
      );
    await c.query(
      `INSERT INTO ${store.s}.queue (run_id, program_hash, policy, input) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`,
      [ids, hashes, submissions.map((s) => JSON.stringify(s.policy ?? null)), inputs],
    );
    await c.query(`SELECT pg_notify($1, 'submitted')`, [store.channel]);
    return ids;
  });
}

/** Enqueues one run for the workers (see submitRuns); returns its run id. */
export async function submitRun(store: PostgresStore, submission: Submission): Promise<{ run_id: string }> {
  const [run_id] = await submitRuns(store, [submission]);
  return { run_id: run_id! };
}

/** Claims up to `n` submissions nobody holds (or whose claim expired), oldest first. */
export async function claimSubmissions(
  store: PostgresStore,
  owner: string,
  n: number,
  now: number,
  expiresAt: number,
): Promise<ClaimedSubmission[]> {
  const r = await store.query<{ run_id: string; program_hash: string; policy: string; input: string; attempts: number }>(
    `WITH c AS (
       SELECT queue_no FROM ${store.s}.queue
       WHERE error IS NULL AND (claimed_until IS NULL OR claimed_until <= $2)
       ORDER BY queue_no LIMIT $1 FOR UPDATE SKIP LOCKED)
     UPDATE ${store.s}.queue q SET claimed_by = $3, claimed_until = $4, attempts = q.attempts + 1
     FROM c WHERE q.queue_no = c.queue_no
     RETURNING q.run_id, q.program_hash, q.policy, q.input, q.attempts`,
    [n, now, owner, expiresAt],
    'claiming submissions',
  );
  return r.rows.map((x) => ({
    run_id: x.run_id,
    program_hash: x.program_hash,
    policy: JSON.parse(x.policy) as unknown,
    input: JSON.parse(x.input) as unknown,
    attempts: x.attempts,
  }));
}

/**
 * Takes the lease of up to `n` running runs whose lease expired or was released (their process
 * died, or their drive stopped on an error): the worker then recovers them. Returns their ids.
 */
export async function claimExpiredRuns(
  store: PostgresStore,
  owner: (i: number) => string,
  n: number,
  now: number,
  expiresAt: number,
): Promise<{ run_id: string; owner: string }[]> {
  const owners = Array.from({ length: n }, (_, i) => owner(i));
  const r = await store.query<{ run_id: string; lease_owner: string }>(
    `WITH c AS (
       SELECT run_no, row_number() OVER () AS i FROM (
         SELECT run_no FROM ${store.s}.runs
         WHERE status = 'running' AND (lease_owner IS NULL OR lease_expires_at <= $2)
         ORDER BY lease_expires_at NULLS FIRST LIMIT $1 FOR UPDATE SKIP LOCKED) x)
     UPDATE ${store.s}.runs r SET lease_owner = ($3::text[])[c.i], lease_expires_at = $4
     FROM c WHERE r.run_no = c.run_no
     RETURNING r.run_id, r.lease_owner`,
    [n, now, owners, expiresAt],
    'claiming expired runs',
  );
  return r.rows.map((x) => ({ run_id: x.run_id, owner: x.lease_owner }));
}

/** A submission no worker can start (an invalid program, an unknown tool): kept, with why, and never claimed again. */
export async function failSubmission(store: PostgresStore, runId: string, owner: string, error: string): Promise<void> {
  await store.query(
    `UPDATE ${store.s}.queue SET error = $3, claimed_by = NULL, claimed_until = NULL WHERE run_id = $1 AND claimed_by = $2`,
    [runId, owner, error],
    'recording a refused submission',
  );
}

/** The earliest moment something becomes claimable without a notification: a lease or a claim expiring. */
export async function nextExpiry(store: PostgresStore): Promise<number | null> {
  const r = await store.query<{ t: number | null }>(
    `SELECT least(
       (SELECT min(lease_expires_at) FROM ${store.s}.runs WHERE status = 'running'),
       (SELECT min(claimed_until) FROM ${store.s}.queue WHERE error IS NULL AND claimed_until IS NOT NULL)) AS t`,
  );
  return r.rows[0]?.t ?? null;
}
