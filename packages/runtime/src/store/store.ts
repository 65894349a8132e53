import { NanoVmError, type JsonValue, type Program, type RunStatus, type TraceEvent } from '@nano-vm/kernel';

export interface RunRecord {
  run_id: string;
  program_id: string;
  program: Program;
  policy: unknown;
  input: unknown;
  status: RunStatus | 'running';
  outcome: string | null;
  head_hash: string;
  event_count: number;
}

/**
 * Where runs and their events live. Appends are compare-and-swap on (run_id, seq): an append whose
 * seq is not exactly the next one fails with E_STORE_CONFLICT and writes nothing.
 * Every method returns a promise, and a store reports every failure as a rejection (never a
 * synchronous throw), so an embedded store and one across a network are called the same way.
 * After `close()`, every call rejects with E_STORE_CLOSED.
 */
export interface Store {
  /**
   * Creates the run and, in the same transaction, its vault rows (docs/privacy.md) and, when
   * given, the lease of the process that is about to drive it (so no recover sees it unleased).
   */
  createRun(run: NewRun, vault?: readonly VaultValue[]): Promise<void>;
  /**
   * Appends consecutive events of one run, all in one transaction: all are stored or none. The
   * first event's seq must be the run's next one and the rest must follow it (E_STORE_CONFLICT
   * otherwise). The host appends everything the machine decided before it starts the next effect,
   * so one call usually carries a step's result and the next step's start. The promise settles
   * once the events are durable. The invocations the batch makes (`invocationUpserts`) are
   * counted in the same transaction.
   */
  append(runId: string, events: readonly TraceEvent[]): Promise<void>;
  /**
   * Record the run's status: a terminal one, 'suspended' at a wait, or 'running' again once
   * resumed. A terminal or suspended status also releases the run's lease, in the same write: the
   * drive that held it has ended.
   */
  finish(runId: string, status: RunStatus | 'running', outcome: string | null): Promise<void>;
  /**
   * Optional: what `createRun` (when `w.create` is given), `append` and `finish` (when `w.finish`
   * is given) would write, in that order, in one transaction: all of it or none of it, refused
   * with the codes those methods use. The runtime creates a run together with its first events,
   * and records a run's last events together with its terminal status, when the store has it:
   * two commits fewer per run. A store without it gets the three calls.
   */
  writeRun?(runId: string, w: RunWrite): Promise<void>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  events(runId: string): Promise<TraceEvent[]>;
  listRuns(filter?: { status?: RunStatus | 'running' }): Promise<RunRecord[]>;
  /**
   * The store's own random secret for subject keys (created with the store, never exported):
   * vault rows and erasure events name a subject by a keyed hash, so a guessable id cannot be
   * confirmed from a bundle or a database dump.
   */
  subjectSecret(): Promise<string>;
  /** The run's vault rows, tombstones included, in path order. */
  vault(runId: string): Promise<VaultRow[]>;
  /** Every vault row of a subject (its `sha256:` key), tombstones included, by run creation then path. */
  vaultBySubject(subject: string): Promise<VaultRow[]>;
  /**
   * Erasure, atomically: deletes the value and salt of the run's live rows of `subject` (leaving
   * tombstones) and appends `event` (compare-and-swap on its seq, as `append`). Returns how many
   * rows were erased; on a conflict nothing changes. A store that keeps files scrubs the deleted
   * bytes from them in `flushErased`.
   */
  eraseValues(runId: string, subject: string, event: TraceEvent): Promise<number>;
  /**
   * Moves erased bytes out of the store's files (SQLite: checkpoint the WAL into the database
   * file, where secure_delete zeroed them, and truncate it). False when another connection's open
   * snapshot keeps them in a file for now. A store without files has no such method.
   */
  flushErased?(): Promise<boolean>;
  /**
   * The run's tool invocations by idempotency key, in first-invocation order. What counts is
   * decided in one place for every store (store/invocations.ts): a tool's `step_started` counts
   * one invocation of its key, in the transaction that appends it (every attempt of a visit
   * shares its key), and `reinvoked` counts one more when a recovered run calls a tool again
   * whose result was never stored.
   */
  invocations(runId: string): Promise<Invocation[]>;
  /**
   * Counts one more invocation of `call.key` (recovery re-invoking a tool whose step_started is
   * stored); returns the new count. A key the table lacks (a run stored before it existed) is
   * entered with 2: the stored step_started is the first invocation.
   */
  reinvoked(runId: string, call: Omit<Invocation, 'run_id' | 'invocations'>): Promise<number>;
  /**
   * Leases (docs/stores.md "Leases"): the process driving a run holds its lease, so no other
   * process (a recover, a worker) drives it at the same time. Atomically: the run gets `lease`
   * when it has none, its lease expired (`expires_at <= now`), it is already `lease.owner`'s, or
   * it is held by `replacing` (an owner the caller knows to be gone). Returns the lease the run has
   * afterwards: `lease` itself when acquired, the other holder's otherwise. `now` and `expires_at`
   * are milliseconds since the epoch on the caller's clock. E_STORE_NO_RUN for an unknown run.
   */
  acquireLease(runId: string, lease: Lease, now: number, replacing?: string): Promise<Lease>;
  /** Extends the run's lease to `lease.expires_at` if `lease.owner` still holds it; false when it does not. */
  renewLease(runId: string, lease: Lease): Promise<boolean>;
  /** Clears the run's lease if `owner` holds it (otherwise changes nothing). */
  releaseLease(runId: string, owner: string): Promise<void>;
  /**
   * Releases the store (a file handle, a connection pool) once writes already accepted are
   * durable. Idempotent: closing a closed store resolves. Any other call afterwards rejects with
   * E_STORE_CLOSED.
   */
  close(): Promise<void>;
}

/** What one `Store.writeRun` stores for one run. */
export interface RunWrite {
  /** Create the run first (as `createRun`; its `run_id` is the one written). */
  create?: { run: NewRun; vault?: readonly VaultValue[] };
  /** Then append these events (as `append`; may be empty). */
  events: readonly TraceEvent[];
  /** Then record this status (as `finish`). */
  finish?: { status: RunStatus | 'running'; outcome: string | null };
}

/** A run as it is created; `lease` is taken in the same transaction. */
export type NewRun = Omit<RunRecord, 'head_hash' | 'event_count'> & { lease?: Lease };

/** Who drives a run, and until when (ms since the epoch) unless renewed. */
export interface Lease {
  owner: string;
  expires_at: number;
}

/** How often a tool was called under one idempotency key. */
export interface Invocation {
  key: string;
  run_id: string;
  step: string;
  tool: string;
  /** The last attempt that used the key. */
  attempt: number;
  invocations: number;
}

/** A sensitive input value as the executor hands it to the store. */
export interface VaultValue {
  path: string;
  /** `sha256:<hex>` of the run's data subject, or null when the run names none. */
  subject: string | null;
  commitment: string;
  salt: string;
  value: JsonValue;
}

/** A stored vault row; `salt` and `value` are null once erased. */
export interface VaultRow {
  run_id: string;
  path: string;
  subject: string | null;
  commitment: string;
  salt: string | null;
  value: JsonValue | null;
  erased: boolean;
}

/** A failure a store reports (and the run-level refusals of recover and resume built on it). */
export class StoreError extends NanoVmError {}
