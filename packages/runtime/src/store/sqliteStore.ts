/**
 * The embedded default store: one SQLite file in WAL mode. Every append is committed before its
 * promise settles (without group commit, in its own transaction before `append` returns) — and
 * the executor awaits an append before it starts the effect that follows it, so a process crash
 * never loses a recorded decision (with synchronous=NORMAL an OS crash may lose the last commits;
 * use FULL where that matters).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import {
  canonicalJson,
  MAX_DOCUMENT_DEPTH,
  parseJsonText,
  hashJson,
  type JsonValue,
  type Program,
  type RunStatus,
  type TraceEvent,
} from '@nano-vm/kernel';
import { nodeHasher } from '../nodeHasher.js';
import { invocationUpserts, reinvocationUpsert, type InvocationUpsert } from './invocations.js';
import {
  StoreError,
  type Invocation,
  type Lease,
  type NewRun,
  type RunRecord,
  type RunWrite,
  type Store,
  type VaultRow,
  type VaultValue,
} from './store.js';

export interface SqliteStoreOptions {
  /** `NORMAL` (default) survives process crashes; `FULL` also survives power loss. */
  synchronous?: 'NORMAL' | 'FULL';
  /**
   * Milliseconds SQLite itself waits for another connection's write lock, per attempt (default
   * 1000). The wait blocks the process, so it is kept short and retried instead.
   */
  busyTimeoutMs?: number;
  /**
   * How many more attempts a write gets after the lock stayed busy (default 6), with a backoff
   * between them that doubles from 100 ms up to 2 s; then it fails with E_STORE_BUSY.
   */
  busyRetries?: number;
  /**
   * Group commit: appends made while a commit is pending share one transaction (one fsync under
   * FULL), committed on the next turn of the event loop. `append`'s promise settles when its
   * event is durable, so the executor still starts no effect before the event that precedes it
   * is stored. Worth it with many concurrent runs and `synchronous: 'FULL'`.
   */
  groupCommit?: boolean;
  /**
   * Open only a file that exists (E_STORE_MISSING otherwise): what a command that reads or
   * continues runs uses, so that pointing it at the wrong path creates nothing.
   */
  mustExist?: boolean;
}

/**
 * 2 added the vault, 3 the idempotency keys and the programs table (each program stored once, by
 * its hash; runs written before keep their own copy), 4 integer run keys: every run-owned row is
 * keyed by the run's `run_no` (the runs table's rowid) instead of its random text id, so the rows
 * of the runs in flight share a few B-tree pages instead of each landing on a random one; events
 * are a rowid table, appended at its end, with the (run_no, seq) key a small index beside it.
 * 5 leases: the owner and expiry of the process driving a run (docs/stores.md "Leases").
 * Older files are migrated on open, in one transaction.
 */
const SCHEMA_VERSION = 5;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
  run_no       INTEGER PRIMARY KEY,
  run_id       TEXT NOT NULL UNIQUE,
  program_id   TEXT NOT NULL,
  program      TEXT NOT NULL,
  program_hash TEXT,
  policy       TEXT NOT NULL,
  input        TEXT NOT NULL,
  status       TEXT NOT NULL,
  outcome      TEXT,
  lease_owner  TEXT,
  lease_expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);
CREATE TABLE IF NOT EXISTS events (
  run_no INTEGER NOT NULL REFERENCES runs (run_no),
  seq    INTEGER NOT NULL,
  type   TEXT NOT NULL,
  hash   TEXT NOT NULL,
  body   TEXT NOT NULL,
  PRIMARY KEY (run_no, seq)
);
CREATE TABLE IF NOT EXISTS vault (
  run_no     INTEGER NOT NULL REFERENCES runs (run_no),
  path       TEXT NOT NULL,
  subject    TEXT,
  commitment TEXT NOT NULL,
  salt       TEXT,
  value      TEXT,
  erased     INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_no, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vault_by_subject ON vault (subject);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  run_no      INTEGER NOT NULL REFERENCES runs (run_no),
  key         TEXT NOT NULL,
  step        TEXT NOT NULL,
  tool        TEXT NOT NULL,
  attempt     INTEGER NOT NULL,
  invocations INTEGER NOT NULL,
  first_seq   INTEGER NOT NULL,
  PRIMARY KEY (run_no, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS programs (
  hash    TEXT PRIMARY KEY,
  program TEXT NOT NULL
) WITHOUT ROWID;
`;

/**
 * A JSON column, read as strictly as a bundle: a row edited outside nano-vm to hold text that is
 * not JSON, a duplicate member name or too deep a nesting is E_STORE_CORRUPT, not half-read and
 * not a crash (docs/limits.md).
 */
function storedJson(text: string, what: string): unknown {
  try {
    return parseJsonText(text, { maxDepth: MAX_DOCUMENT_DEPTH });
  } catch (e) {
    throw new StoreError('E_STORE_CORRUPT', `${what} in the store is not JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** The column names of a table. */
const columnsOf = (db: Database.Database, table: string): Set<string> =>
  new Set((db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[]).map((c) => c.name));

/**
 * Moves a file of schema 1 to 3 (run-owned rows keyed by the text run id) to schema 4, keeping
 * every row: the old tables are renamed, the new ones created and filled (a run's run_no is its
 * old rowid, so the listing order stays), then the old ones dropped. One transaction: a failure
 * leaves the file as it was.
 */
function migrateToIntegerKeys(db: Database.Database): void {
  const tables = new Set(
    (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((r) => r.name),
  );
  const old = ['runs', 'events', 'vault', 'idempotency_keys'].filter((t) => tables.has(t));
  db.pragma('foreign_keys = OFF');
  try {
    db.transaction(() => {
      db.exec(
        `DROP INDEX IF EXISTS runs_by_status; DROP INDEX IF EXISTS vault_by_subject; DROP INDEX IF EXISTS idempotency_keys_by_run;`,
      );
      for (const t of old) db.exec(`ALTER TABLE ${t} RENAME TO old_${t}`);
      db.exec(SCHEMA);
      const programHash = columnsOf(db, 'old_runs').has('program_hash') ? 'program_hash' : 'NULL';
      db.exec(`INSERT INTO runs (run_no, run_id, program_id, program, program_hash, policy, input, status, outcome)
        SELECT rowid, run_id, program_id, program, ${programHash}, policy, input, status, outcome FROM old_runs ORDER BY rowid`);
      if (tables.has('events'))
        db.exec(
          `INSERT INTO events SELECT runs.run_no, e.seq, e.type, e.hash, e.body FROM old_events e JOIN runs USING (run_id)`,
        );
      if (tables.has('vault'))
        db.exec(
          `INSERT INTO vault SELECT runs.run_no, v.path, v.subject, v.commitment, v.salt, v.value, v.erased FROM old_vault v JOIN runs USING (run_id)`,
        );
      if (tables.has('idempotency_keys'))
        db.exec(
          `INSERT INTO idempotency_keys SELECT runs.run_no, k.key, k.step, k.tool, k.attempt, k.invocations, k.first_seq FROM old_idempotency_keys k JOIN runs USING (run_id)`,
        );
      for (const t of [...old].reverse()) db.exec(`DROP TABLE old_${t}`);
      const broken = db.pragma('foreign_key_check') as unknown[];
      if (broken.length)
        throw new StoreError(
          'E_STORE_CORRUPT',
          `migrating to store schema ${SCHEMA_VERSION}: ${broken.length} rows name a run that is not in the file`,
        );
      db.prepare(
        `INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      ).run(String(SCHEMA_VERSION));
    })();
  } finally {
    db.pragma('foreign_keys = ON');
  }
}

/** Run rows with their head: the hash and seq of each run's last event, found once per run. */
const RUNS_WITH_HEAD = `SELECT runs.*, coalesce(last.hash, '') AS head_hash, coalesce(last.seq + 1, 0) AS event_count FROM runs
  LEFT JOIN events last ON last.run_no = runs.run_no AND last.seq = (SELECT max(seq) FROM events WHERE events.run_no = runs.run_no)`;

interface RunRow {
  run_no: number;
  run_id: string;
  program_id: string;
  program: string;
  program_hash: string | null;
  policy: string;
  input: string;
  status: string;
  outcome: string | null;
  head_hash: string;
  event_count: number;
}

/** A write waiting for the group's transaction; `op` runs inside it as its own savepoint. */
interface PendingWrite {
  op: () => void;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class SqliteStore implements Store {
  readonly db: Database.Database;
  private readonly insertRun: Database.Statement;
  private readonly insertEvent: Database.Statement;
  private readonly lastSeq: Database.Statement;
  private readonly appendRows: (runId: string, events: readonly TraceEvent[]) => void;
  private readonly inTransaction: (op: () => void) => void;
  private readonly finishRun: Database.Statement;
  private readonly selectRun: Database.Statement;
  private readonly selectRunNo: Database.Statement;
  private readonly selectEvents: Database.Statement;
  private readonly selectRuns: Database.Statement;
  private readonly selectRunsByStatus: Database.Statement;

  constructor(
    readonly path: string,
    opts: SqliteStoreOptions = {},
  ) {
    if (opts.mustExist && path !== ':memory:' && !existsSync(path))
      throw new StoreError('E_STORE_MISSING', `there is no store file ${path}`);
    if (path !== ':memory:' && !opts.mustExist) mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path, opts.mustExist ? { fileMustExist: true } : {});
    try {
      this.open(path, opts);
    } catch (e) {
      // Not a database, a newer schema, a failed migration: nothing stays open behind the error.
      this.db.close();
      if (isBusy(e))
        throw new StoreError('E_STORE_BUSY', `opening ${path}: another connection holds its write lock`, { cause: e });
      throw e;
    }
    this.busyRetries = opts.busyRetries ?? 6;

    this.insertRun = this.db.prepare(
      `INSERT INTO runs (run_id, program_id, program, program_hash, policy, input, status, outcome, lease_owner, lease_expires_at) VALUES (?, ?, '', ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertProgram = this.db.prepare(`INSERT OR IGNORE INTO programs (hash, program) VALUES (?, ?)`);
    this.selectProgram = this.db.prepare(`SELECT program FROM programs WHERE hash = ?`);
    // The upserts are decided in invocations.ts, for every store alike; this statement only applies one.
    const upsertInvocation = this.db.prepare(
      `INSERT INTO idempotency_keys (run_no, key, step, tool, attempt, invocations, first_seq) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (run_no, key) DO UPDATE SET invocations = invocations + ?, attempt = excluded.attempt RETURNING invocations`,
    );
    this.upsertInvocation = (no: number, u: InvocationUpsert) =>
      (
        upsertInvocation.get(no, u.key, u.step, u.tool, u.attempt, u.enter, u.first_seq, u.add) as {
          invocations: number;
        }
      ).invocations;
    this.insertEvent = this.db.prepare(`INSERT INTO events (run_no, seq, type, hash, body) VALUES (?, ?, ?, ?, ?)`);
    // Compare-and-swap, under the write lock (BEGIN IMMEDIATE): the batch's first seq must be the
    // one after the run's last stored event. The head is read from the events themselves (the
    // last row of the run's key range), so an append writes the event rows and nothing else.
    this.lastSeq = this.db.prepare(`SELECT seq FROM events WHERE run_no = ? ORDER BY seq DESC LIMIT 1`).pluck();
    // Checks come before the first write, so a refused append writes nothing: a group transaction
    // needs no savepoint per append.
    this.appendRows = (runId: string, events: readonly TraceEvent[]) => {
      if (events.length === 0) return;
      const first = events[0]!.seq;
      events.forEach((e, i) => {
        if (e.seq !== first + i)
          throw new StoreError(
            'E_STORE_CONFLICT',
            `append to run ${runId}: seq ${e.seq} does not follow seq ${first + i - 1} in one batch`,
          );
      });
      const no = this.runNo(runId);
      const last = this.lastSeq.get(no) as number | undefined;
      const next = last === undefined ? 0 : last + 1;
      if (first !== next)
        throw new StoreError(
          'E_STORE_CONFLICT',
          `append of seq ${first} to run ${runId} conflicts: the next seq is ${next}`,
        );
      for (const e of events) this.insertEvent.run(no, e.seq, e.type, e.hash, JSON.stringify(e));
      for (const u of invocationUpserts(events)) this.upsertInvocation(no, u);
    };
    this.inTransaction = this.db.transaction((op: () => void) => op()).immediate;
    this.group = opts.groupCommit
      ? {
          pending: [],
          // Every write checks before it writes (a refused one writes nothing), so one failing
          // write fails alone; anything else thrown rolls the whole group back and fails all of it.
          commit: this.db.transaction((batch: PendingWrite[]) =>
            batch.map((p) => {
              try {
                p.op();
                return null;
              } catch (e) {
                if (e instanceof StoreError) return e;
                throw e;
              }
            }),
          ).immediate,
        }
      : null;
    // A terminal or suspended status ends the drive: its lease goes with it.
    this.finishRun = this.db.prepare(
      `UPDATE runs SET status = @status, outcome = @outcome,
         lease_owner = CASE WHEN @status = 'running' THEN lease_owner END,
         lease_expires_at = CASE WHEN @status = 'running' THEN lease_expires_at END
       WHERE run_no = @no`,
    );
    // One statement: of two processes acquiring at once, SQLite's write lock lets one change the row.
    const takeLease = this.db.prepare(
      `UPDATE runs SET lease_owner = @owner, lease_expires_at = @expires
       WHERE run_id = @run AND (lease_owner IS NULL OR lease_expires_at <= @now OR lease_owner = @owner OR lease_owner = @replacing)`,
    );
    const selectLease = this.db.prepare(`SELECT lease_owner, lease_expires_at FROM runs WHERE run_id = ?`);
    this.takeLease = this.db.transaction((runId: string, lease: Lease, now: number, replacing: string | null) => {
      takeLease.run({ owner: lease.owner, expires: lease.expires_at, run: runId, now, replacing });
      const row = selectLease.get(runId) as { lease_owner: string | null; lease_expires_at: number | null } | undefined;
      if (!row) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
      return { owner: row.lease_owner ?? '', expires_at: row.lease_expires_at ?? 0 };
    }).immediate;
    this.renewLeaseRow = this.db.prepare(`UPDATE runs SET lease_expires_at = ? WHERE run_id = ? AND lease_owner = ?`);
    this.releaseLeaseRow = this.db.prepare(
      `UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL WHERE run_id = ? AND lease_owner = ?`,
    );
    this.selectRun = this.db.prepare(`${RUNS_WITH_HEAD} WHERE run_id = ?`);
    this.selectRunNo = this.db.prepare(`SELECT run_no FROM runs WHERE run_id = ?`).pluck();
    this.selectEvents = this.db
      .prepare(`SELECT body FROM events WHERE run_no = (SELECT run_no FROM runs WHERE run_id = ?) ORDER BY seq`)
      .pluck();
    this.selectRuns = this.db.prepare(`${RUNS_WITH_HEAD} ORDER BY runs.run_no`);
    this.selectRunsByStatus = this.db.prepare(`${RUNS_WITH_HEAD} WHERE status = ? ORDER BY runs.run_no`);
  }

  /** Pragmas, then the schema: created, checked, or migrated from an older version. */
  private open(path: string, opts: SqliteStoreOptions): void {
    // A new file gets 8 KiB pages (an existing one keeps its own): events are a few hundred bytes
    // each, and the rows of the runs in flight then share fewer pages per commit.
    this.db.pragma('page_size = 8192');
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
    this.db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 1000}`);
    this.db.pragma('foreign_keys = ON');
    // Erased vault values must leave the file: deleted content is overwritten with zeros.
    this.db.pragma('secure_delete = ON');
    const hasTable = (name: string) =>
      this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;
    const version = hasTable('meta')
      ? (this.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined)
          ?.value
      : undefined;
    if (version !== undefined && !(Number(version) >= 1 && Number(version) <= SCHEMA_VERSION))
      throw new StoreError(
        'E_STORE_SCHEMA',
        `${path} has store schema version ${version}; this nano-vm reads versions 1 to ${SCHEMA_VERSION}`,
      );
    if (hasTable('runs') && !columnsOf(this.db, 'runs').has('run_no')) {
      this.db.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`);
      migrateToIntegerKeys(this.db);
    } else if (hasTable('runs') && !columnsOf(this.db, 'runs').has('lease_owner')) {
      // Schema 4: the lease columns are added (every run unleased), in one transaction.
      this.db
        .transaction(() => {
          this.db.exec(SCHEMA);
          this.db.exec(
            `ALTER TABLE runs ADD COLUMN lease_owner TEXT; ALTER TABLE runs ADD COLUMN lease_expires_at INTEGER;`,
          );
          this.db
            .prepare(
              `INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
            )
            .run(String(SCHEMA_VERSION));
        })
        .immediate();
    } else {
      this.db.exec(SCHEMA);
      if (version === undefined)
        this.db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?)`).run(String(SCHEMA_VERSION));
    }
  }

  /** run_no by run id for the runs this handle is writing (created here, or looked up once); dropped when the run is finished. */
  private readonly runNos = new Map<string, number>();

  /**
   * After a transaction was rolled back, what was cached inside it may be gone: run_nos of runs
   * that no longer exist (SQLite may hand their rowid to the next run) and programs recorded as
   * stored. Both caches are only shortcuts: drop them.
   */
  private forgetCaches(): void {
    this.runNos.clear();
    this.programHashes = new WeakMap();
  }

  private runNo(runId: string): number {
    let no = this.runNos.get(runId);
    if (no === undefined) {
      no = this.selectRunNo.get(runId) as number | undefined;
      if (no === undefined) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
      this.runNos.set(runId, no);
    }
    return no;
  }

  createRun(run: NewRun, vault: readonly VaultValue[] = []): Promise<void> {
    return this.write(this.creation(run, vault));
  }

  /**
   * One write: a refusal of any part writes nothing. Everything that can refuse is checked before
   * the first row is written (events that do not start a new run, a duplicate run id), as for
   * appends, so a group transaction needs no savepoint for it (one per write cost group commit
   * about a fifth of its throughput).
   */
  writeRun(runId: string, w: RunWrite): Promise<void> {
    if (w.create && w.create.run.run_id !== runId)
      return Promise.reject(
        new StoreError('E_STORE_CONFLICT', `writeRun of ${runId} creates another run (${w.create.run.run_id})`),
      );
    const create = w.create && this.creation(w.create.run, w.create.vault ?? []);
    return this.write(() => {
      if (create) {
        w.events.forEach((e, i) => {
          if (e.seq !== i)
            throw new StoreError(
              'E_STORE_CONFLICT',
              `append of seq ${e.seq} to run ${runId} conflicts: the next seq is ${i}`,
            );
        });
        create(); // refuses a duplicate before it writes anything
      }
      this.appendRows(runId, w.events);
      if (w.finish) this.finishNow(runId, w.finish.status, w.finish.outcome);
    });
  }

  /** The write that creates a run (and its vault rows), for createRun and writeRun. */
  private creation(run: NewRun, vault: readonly VaultValue[]): () => void {
    return () => {
      const programHash = this.programHash(run.program);
      const insert = () =>
        Number(
          this.insertRun.run(
            run.run_id,
            run.program_id,
            programHash,
            JSON.stringify(run.policy ?? null),
            JSON.stringify(run.input),
            run.status,
            run.outcome,
            run.lease?.owner ?? null,
            run.lease?.expires_at ?? null,
          ).lastInsertRowid,
        );
      try {
        this.runNos.set(run.run_id, vault.length === 0 ? insert() : this.vaultOps().create(insert, vault));
      } catch (e) {
        if (
          (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' ||
          (e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
        )
          throw new StoreError('E_STORE_DUPLICATE_RUN', `run ${run.run_id} already exists`);
        throw e;
      }
    };
  }

  append(runId: string, events: readonly TraceEvent[]): Promise<void> {
    return this.write(() => this.appendRows(runId, events));
  }

  private closed = false;

  private closedError(): StoreError {
    return new StoreError('E_STORE_CLOSED', `store ${this.path} is closed`);
  }

  /** Every public method asks first: a closed store refuses with E_STORE_CLOSED. */
  private checkOpen(): void {
    if (this.closed) throw this.closedError();
  }

  /**
   * Runs `op` now in its own transaction, or, with group commit, in the next group transaction;
   * the promise settles once it is durable. Not async: without group commit the write is done
   * when this returns, and the caller awaits an already settled promise.
   */
  private write(op: () => void): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    const g = this.group;
    if (!g) {
      try {
        this.inTransaction(op);
        return WRITTEN;
      } catch (e) {
        this.forgetCaches(); // the whole transaction was rolled back
        if (isBusy(e)) return this.retryBusy(() => this.inTransaction(op), 'a write', this.forgetCaches.bind(this));
        return Promise.reject(e as Error);
      }
    }
    return new Promise<void>((resolve, reject) => {
      g.pending.push({ op, resolve, reject });
      if (g.pending.length === 1) setImmediate(() => this.commitGroup());
    });
  }

  private readonly busyRetries: number;

  /** The wait before retry `n` (1-based) of a write that found the store locked. */
  private static backoff(n: number): number {
    return Math.min(2000, 100 * 2 ** (n - 1));
  }

  /**
   * Runs `op` (which found the write lock busy once already) again after a backoff, up to
   * `busyRetries` times; then rejects with E_STORE_BUSY. SQLite's own busy timeout has waited
   * within each attempt; the backoff lets the event loop (a lease heartbeat, other runs) go on.
   */
  private retryBusy<T>(op: () => T, what: string, onBusy?: () => void): Promise<T> {
    const started = Date.now();
    return new Promise<T>((resolve, reject) => {
      const attempt = (n: number) => {
        if (this.closed) return reject(this.closedError());
        try {
          resolve(op());
        } catch (e) {
          if (!isBusy(e)) return reject(e as Error);
          onBusy?.();
          if (n > this.busyRetries) return reject(this.busyError(what, Date.now() - started + this.busyWaitMs(), e));
          setTimeout(() => attempt(n + 1), SqliteStore.backoff(n));
        }
      };
      setTimeout(() => attempt(2), SqliteStore.backoff(1));
    });
  }

  /** SQLite's own wait per attempt (the busy_timeout pragma). */
  private busyWaitMs(): number {
    return Number(this.db.pragma('busy_timeout', { simple: true }));
  }

  private busyError(what: string, waitedMs: number, cause: unknown): StoreError {
    return new StoreError(
      'E_STORE_BUSY',
      `${what} to store ${this.path} did not get the write lock: another connection held it for ${Math.round(waitedMs / 100) / 10} s (${this.busyRetries + 1} attempts)`,
      { cause },
    );
  }

  private readonly group: { pending: PendingWrite[]; commit: (batch: PendingWrite[]) => (Error | null)[] } | null;

  /**
   * Commits every pending write in one transaction; each is its own savepoint, so a conflict fails
   * only that write. A busy write lock is retried (see retryBusy) with the writes that came meanwhile.
   */
  private commitGroup(busyAttempt = 1, busySince = 0): void {
    const g = this.group!;
    const batch = g.pending;
    g.pending = [];
    if (batch.length === 0) return;
    let outcomes: (Error | null)[];
    try {
      outcomes = g.commit(batch);
    } catch (e) {
      // The whole group was rolled back (a refused write only fails itself and commits the rest).
      this.forgetCaches();
      if (isBusy(e) && busyAttempt <= this.busyRetries && !this.closed) {
        g.pending = [...batch, ...g.pending];
        const since = busySince || Date.now();
        setTimeout(() => this.commitGroup(busyAttempt + 1, since), SqliteStore.backoff(busyAttempt));
        return;
      }
      const err = isBusy(e)
        ? this.busyError('a write', Date.now() - (busySince || Date.now()) + this.busyWaitMs(), e)
        : (e as Error);
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => (outcomes[i] ? p.reject(outcomes[i]!) : p.resolve()));
  }

  finish(runId: string, status: RunStatus | 'running', outcome: string | null): Promise<void> {
    return this.write(() => this.finishNow(runId, status, outcome));
  }

  private finishNow(runId: string, status: RunStatus | 'running', outcome: string | null): void {
    this.finishRun.run({ status, outcome, no: this.runNo(runId) });
    if (status !== 'running') this.runNos.delete(runId);
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    this.checkOpen();
    const row = this.selectRun.get(runId) as RunRow | undefined;
    return row && this.toRecord(row);
  }

  private secret: string | undefined;

  /** Created with the file (meta `subject_secret`, 32 random bytes), then read back on every open. */
  async subjectSecret(): Promise<string> {
    this.checkOpen();
    if (this.secret !== undefined) return this.secret;
    const read = () =>
      (this.db.prepare(`SELECT value FROM meta WHERE key = 'subject_secret'`).get() as { value: string } | undefined)
        ?.value;
    let s = read();
    if (s === undefined) {
      const insert = this.db.prepare(`INSERT OR IGNORE INTO meta (key, value) VALUES ('subject_secret', ?)`);
      const secret = randomBytes(32).toString('hex');
      await this.busyRetried(() => insert.run(secret), 'creating the subject secret');
      s = read()!; // another connection may have created it first
    }
    return (this.secret = s);
  }

  async invocations(runId: string): Promise<Invocation[]> {
    this.checkOpen();
    return (this.selectInvocations.all(runId) as Invocation[]).map((r) => ({ ...r }));
  }

  /** One statement, committed on its own: the count is durable before the tool is called again. */
  async reinvoked(runId: string, call: Omit<Invocation, 'run_id' | 'invocations'>): Promise<number> {
    this.checkOpen();
    return this.busyRetried(() => this.upsertInvocation(this.runNo(runId), reinvocationUpsert(call)), 'a write');
  }

  /** `op` now, or retried while the write lock is busy (E_STORE_BUSY in the end). */
  private busyRetried<T>(op: () => T, what: string): Promise<T> {
    try {
      return Promise.resolve(op());
    } catch (e) {
      return isBusy(e) ? this.retryBusy(op, what) : Promise.reject(e as Error);
    }
  }

  private readonly takeLease: (runId: string, lease: Lease, now: number, replacing: string | null) => Lease;
  private readonly renewLeaseRow: Database.Statement;
  private readonly releaseLeaseRow: Database.Statement;

  async acquireLease(runId: string, lease: Lease, now: number, replacing?: string): Promise<Lease> {
    this.checkOpen();
    return this.busyRetried(
      () => this.takeLease(runId, lease, now, replacing ?? null),
      `taking the lease of run ${runId}`,
    );
  }

  /** One attempt, not retried: a heartbeat that finds the store busy tries again at its next beat. */
  async renewLease(runId: string, lease: Lease): Promise<boolean> {
    this.checkOpen();
    try {
      return this.renewLeaseRow.run(lease.expires_at, runId, lease.owner).changes === 1;
    } catch (e) {
      throw isBusy(e) ? this.busyError(`renewing the lease of run ${runId}`, this.busyWaitMs(), e) : e;
    }
  }

  /**
   * One attempt, not retried: a drive releases its lease when it stops on an error, often this
   * very busy store; a lease left behind expires, or is taken at once when its process is gone.
   */
  async releaseLease(runId: string, owner: string): Promise<void> {
    this.checkOpen();
    try {
      this.releaseLeaseRow.run(runId, owner);
    } catch (e) {
      throw isBusy(e) ? this.busyError(`releasing the lease of run ${runId}`, this.busyWaitMs(), e) : e;
    }
  }

  private readonly insertProgram: Database.Statement;
  private readonly selectProgram: Database.Statement;
  /** Applies one upsert of invocations.ts to the run's key rows; returns the key's count. */
  private readonly upsertInvocation: (runNo: number, u: InvocationUpsert) => number;
  private selectInvocationsStatement?: Database.Statement;
  private get selectInvocations(): Database.Statement {
    return (this.selectInvocationsStatement ??= this.db.prepare(
      `SELECT key, run_id, step, tool, attempt, invocations FROM idempotency_keys JOIN runs USING (run_no) WHERE run_id = ? ORDER BY first_seq`,
    ));
  }

  /** Programs written by this handle, by object, and programs read, by hash: each is serialized and parsed once. */
  private programHashes = new WeakMap<Program, string>();
  private readonly programsByHash = new Map<string, Program>();

  /** The program's canonical hash (the genesis program_hash), storing the program the first time. */
  private programHash(program: Program): string {
    let h = this.programHashes.get(program);
    if (h === undefined) {
      h = hashJson(nodeHasher, program);
      this.insertProgram.run(h, canonicalJson(program));
      this.programHashes.set(program, h);
    }
    return h;
  }

  private toRecord(r: RunRow): RunRecord {
    let program: Program;
    if (r.program_hash) {
      let p = this.programsByHash.get(r.program_hash);
      if (p === undefined) {
        const row = this.selectProgram.get(r.program_hash) as { program: string } | undefined;
        if (!row)
          throw new StoreError(
            'E_STORE_CORRUPT',
            `run ${r.run_id} names program ${r.program_hash}, which is not in the store`,
          );
        p = storedJson(row.program, `run ${r.run_id}: program`) as Program;
        this.programsByHash.set(r.program_hash, p);
      }
      // Each record gets its own copy: callers may not change the store's cached program.
      program = structuredClone(p);
    } else program = storedJson(r.program, `run ${r.run_id}: program`) as Program;
    return {
      run_id: r.run_id,
      program_id: r.program_id,
      program,
      policy: storedJson(r.policy, `run ${r.run_id}: policy`),
      input: storedJson(r.input, `run ${r.run_id}: input`),
      status: r.status as RunRecord['status'],
      outcome: r.outcome,
      head_hash: r.head_hash,
      event_count: r.event_count,
    };
  }

  async events(runId: string): Promise<TraceEvent[]> {
    this.checkOpen();
    return (this.selectEvents.all(runId) as string[]).map(
      (body, i) => storedJson(body, `run ${runId}: stored event ${i + 1}`) as TraceEvent,
    );
  }

  async listRuns(filter: { status?: RunStatus | 'running' } = {}): Promise<RunRecord[]> {
    this.checkOpen();
    const rows = (
      filter.status === undefined ? this.selectRuns.all() : this.selectRunsByStatus.all(filter.status)
    ) as RunRow[];
    return rows.map((r) => this.toRecord(r));
  }

  async vault(runId: string): Promise<VaultRow[]> {
    this.checkOpen();
    return (this.vaultOps().byRun.all(runId) as VaultDbRow[]).map(toVaultRow);
  }

  async vaultBySubject(subject: string): Promise<VaultRow[]> {
    this.checkOpen();
    return (this.vaultOps().bySubject.all(subject) as VaultDbRow[]).map(toVaultRow);
  }

  async eraseValues(runId: string, subject: string, event: TraceEvent): Promise<number> {
    this.checkOpen();
    return this.busyRetried(() => this.vaultOps().erase(runId, subject, event), 'an erasure');
  }

  async flushErased(): Promise<boolean> {
    this.checkOpen();
    // The WAL still holds the pages written before the erasure: copy the latest back and truncate
    // it, so with secure_delete the erased bytes are in neither file. A reader holding an old
    // snapshot keeps the WAL from resetting (after busy_timeout): then say so.
    const [r] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    return r !== undefined && r.busy === 0 && r.log <= 0;
  }

  private vaultStatements?: VaultOps;

  /** Vault statements, prepared on first use. */
  private vaultOps(): VaultOps {
    if (this.vaultStatements) return this.vaultStatements;
    const insert = this.db.prepare(
      `INSERT INTO vault (run_no, path, subject, commitment, salt, value) VALUES (?, ?, ?, ?, ?, ?)`,
    );
    const tombstone = this.db.prepare(
      `UPDATE vault SET salt = NULL, value = NULL, erased = 1 WHERE run_no = ? AND subject = ? AND erased = 0`,
    );
    this.vaultStatements = {
      create: this.db.transaction((insertRun: () => number, rows: readonly VaultValue[]) => {
        const no = insertRun();
        for (const v of rows) insert.run(no, v.path, v.subject, v.commitment, v.salt, JSON.stringify(v.value));
        return no;
      }),
      byRun: this.db.prepare(
        `SELECT runs.run_id, vault.* FROM vault JOIN runs USING (run_no) WHERE run_id = ? ORDER BY path`,
      ),
      bySubject: this.db.prepare(
        `SELECT runs.run_id, vault.* FROM vault JOIN runs USING (run_no) WHERE subject = ? ORDER BY run_no, vault.path`,
      ),
      erase: this.db.transaction((runId: string, subject: string, event: TraceEvent) => {
        this.appendRows(runId, [event]);
        return tombstone.run(this.runNo(runId), subject).changes;
      }).immediate,
    };
    return this.vaultStatements;
  }

  /** Commits the writes still waiting for a group, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.group?.pending.length) this.commitGroup();
    this.db.close();
  }
}

/** SQLite could not get a lock another connection holds (after its own busy timeout). */
function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/** What a write without group commit returns: it is durable by then. */
const WRITTEN: Promise<void> = Promise.resolve();

interface VaultOps {
  create: (insertRun: () => number, rows: readonly VaultValue[]) => number;
  byRun: Database.Statement;
  bySubject: Database.Statement;
  erase: (runId: string, subject: string, event: TraceEvent) => number;
}

interface VaultDbRow {
  run_id: string;
  path: string;
  subject: string | null;
  commitment: string;
  salt: string | null;
  value: string | null;
  erased: number;
}

function toVaultRow(r: VaultDbRow): VaultRow {
  return {
    run_id: r.run_id,
    path: r.path,
    subject: r.subject,
    commitment: r.commitment,
    salt: r.salt,
    value: r.value === null ? null : (storedJson(r.value, `vault value of ${r.path}`) as JsonValue),
    erased: r.erased === 1,
  };
}
