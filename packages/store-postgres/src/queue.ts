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
  // One statement, so one round trip and one transaction: the programs, the queue rows (none
  // when a run id is already a run), and the notification the workers wake on at commit.
  let r;
  try {
    r = await store.query<{ queued: number }>(
      `WITH p AS (
         INSERT INTO ${store.s}.programs (hash, program) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING),
       q AS (
         INSERT INTO ${store.s}.queue (run_id, program_hash, policy, input)
         SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])
         WHERE NOT EXISTS (SELECT 1 FROM ${store.s}.runs WHERE run_id = ANY($3::text[]))
         RETURNING 1)
       SELECT count(*)::int AS queued, (SELECT pg_notify($7, 'submitted') WHERE EXISTS (SELECT 1 FROM q)) AS n FROM q`,
      [
        [...programs.keys()],
        [...programs.values()],
        ids,
        hashes,
        submissions.map((s) => JSON.stringify(s.policy ?? null)),
        inputs,
        store.channel,
      ],
      'submitting runs',
    );
  } catch (e) {
    if ((e as { code?: unknown }).code === '23505' || /duplicate key/.test(String((e as Error).message)))
      throw new NanoVmError('E_STORE_DUPLICATE_RUN', `a run among ${ids.length} was already submitted`, { cause: e });
    throw e;
  }
  if (r.rows[0]?.queued !== ids.length)
    throw new NanoVmError('E_STORE_DUPLICATE_RUN', `a run among ${ids.length} already exists; nothing was submitted`);
  return ids;
}

/** Enqueues one run for the workers (see submitRuns); returns its run id. */
export async function submitRun(store: PostgresStore, submission: Submission): Promise<{ run_id: string }> {
  const [run_id] = await submitRuns(store, [submission]);
  return { run_id: run_id! };
}

/**
 * Claims up to `n` submissions nobody holds (or whose claim expired), oldest first. `busy` says
 * whether claimable rows were left that this claim could not take because another worker's
 * concurrent claim held them (SKIP LOCKED): the caller claims again shortly. (Claims used to
 * notify every worker whenever they took all they asked for; in an I/O-bound steady state that
 * was a notification, and a claim by each woken worker, per finished run.)
 */
export async function claimSubmissions(
  store: PostgresStore,
  owner: string,
  n: number,
  now: number,
  expiresAt: number,
): Promise<{ claimed: ClaimedSubmission[]; busy: boolean }> {
  const r = await store.query<{
    run_id: string | null;
    program_hash: string;
    policy: string;
    input: string;
    attempts: number;
    seen: number;
  }>(
    `WITH c AS (
       SELECT queue_no FROM ${store.s}.queue
       WHERE error IS NULL AND (claimed_until IS NULL OR claimed_until <= $2)
       ORDER BY queue_no LIMIT $1 FOR UPDATE SKIP LOCKED)
     , u AS (
       UPDATE ${store.s}.queue q SET claimed_by = $3, claimed_until = $4, attempts = q.attempts + 1
       FROM c WHERE q.queue_no = c.queue_no
       RETURNING q.run_id, q.program_hash, q.policy, q.input, q.attempts)
     -- How many were claimable in this statement's snapshot (locked ones included), up to n + 1;
     -- one row with a NULL run id when nothing was claimed.
     , seen AS (SELECT count(*)::int AS seen FROM (SELECT 1 FROM ${store.s}.queue
         WHERE error IS NULL AND (claimed_until IS NULL OR claimed_until <= $2) LIMIT $1 + 1) x)
     SELECT u.*, seen.seen FROM seen LEFT JOIN u ON true`,
    [n, now, owner, expiresAt],
    'claiming submissions',
    'nano_vm_claim_submissions',
  );
  const claimed = r.rows
    .filter((x) => x.run_id !== null)
    .map((x) => ({
      run_id: x.run_id!,
      program_hash: x.program_hash,
      policy: JSON.parse(x.policy) as unknown,
      input: JSON.parse(x.input) as unknown,
      attempts: x.attempts,
    }));
  // Fewer taken than asked while more were claimable: the rest were locked by another claim.
  const seen = r.rows[0]?.seen ?? 0;
  return { claimed, busy: claimed.length < n && seen > claimed.length };
}

/**
 * Takes the lease of up to `n` running runs whose lease expired or was released (their process
 * died, or their drive stopped on an error): the worker then recovers them. Returns their ids. A
 * claim that got all `n` notifies the other workers ('released'), as claimSubmissions does.
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
     , u AS (
       UPDATE ${store.s}.runs r SET lease_owner = ($3::text[])[c.i], lease_expires_at = $4
       FROM c WHERE r.run_no = c.run_no
       RETURNING r.run_id, r.lease_owner)
     SELECT u.*, (SELECT pg_notify($5, 'released') WHERE (SELECT count(*) FROM u) = $1
       AND (SELECT count(*) FROM (SELECT 1 FROM ${store.s}.runs WHERE status = 'running' AND (lease_owner IS NULL OR lease_expires_at <= $2)
            LIMIT $1 + 1) x) > $1) AS more FROM u`,
    [n, now, owners, expiresAt, store.channel],
    'claiming expired runs',
  );
  return r.rows.map((x) => ({ run_id: x.run_id, owner: x.lease_owner }));
}

/**
 * Gives back claims of submissions `owner` will not start (claimed ahead, then the worker
 * stopped): they are claimable at once, and the workers are notified.
 */
export async function releaseClaims(store: PostgresStore, owner: string, runIds: readonly string[]): Promise<void> {
  if (!runIds.length) return;
  await store.query(
    `WITH r AS (
       UPDATE ${store.s}.queue SET claimed_by = NULL, claimed_until = NULL
       WHERE run_id = ANY($1::text[]) AND claimed_by = $2 RETURNING 1)
     SELECT pg_notify($3, 'submitted') WHERE EXISTS (SELECT 1 FROM r)`,
    [runIds, owner, store.channel],
    'releasing claimed submissions',
  );
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
