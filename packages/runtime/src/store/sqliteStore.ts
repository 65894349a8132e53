/**
 * The embedded default store: one SQLite file in WAL mode. Every append is its own transaction,
 * committed before `append` returns — and the executor appends an event before it starts the
 * effect that follows it, so a process crash never loses a recorded decision (with
 * synchronous=NORMAL an OS crash may lose the last commits; use FULL where that matters).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { canonicalJson, hashJson, type JsonValue, type Program, type RunStatus, type TraceEvent } from '@nano-vm/kernel';
import { nodeHasher } from '../nodeHasher.js';
import { StoreError, type Invocation, type RunRecord, type Store, type VaultRow, type VaultValue } from './store.js';

export interface SqliteStoreOptions {
  /** `NORMAL` (default) survives process crashes; `FULL` also survives power loss. */
  synchronous?: 'NORMAL' | 'FULL';
  /** Milliseconds to wait for another connection's write lock. */
  busyTimeoutMs?: number;
  /**
   * Group commit: appends made while a commit is pending share one transaction (one fsync under
   * FULL), committed on the next turn of the event loop. `append` then returns a promise that
   * settles when its event is durable, so the executor still starts no effect before the event
   * that precedes it is stored. Worth it with many concurrent runs and `synchronous: 'FULL'`.
   */
  groupCommit?: boolean;
}

/**
 * 2 added the vault, 3 the idempotency keys and the programs table (each program stored once, by
 * its hash; runs written before keep their own copy). Older files are migrated on open by creating
 * what they lack; their runs simply have no rows in the new tables.
 */
const SCHEMA_VERSION = 3;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
  run_id      TEXT PRIMARY KEY,
  program_id  TEXT NOT NULL,
  program     TEXT NOT NULL,
  policy      TEXT NOT NULL,
  input       TEXT NOT NULL,
  status      TEXT NOT NULL,
  outcome     TEXT,
  head_hash   TEXT NOT NULL DEFAULT '',
  event_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);
CREATE TABLE IF NOT EXISTS events (
  run_id TEXT NOT NULL REFERENCES runs (run_id),
  seq    INTEGER NOT NULL,
  type   TEXT NOT NULL,
  hash   TEXT NOT NULL,
  body   TEXT NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vault (
  run_id     TEXT NOT NULL REFERENCES runs (run_id),
  path       TEXT NOT NULL,
  subject    TEXT,
  commitment TEXT NOT NULL,
  salt       TEXT,
  value      TEXT,
  erased     INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vault_by_subject ON vault (subject);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  key         TEXT PRIMARY KEY,
  run_id      TEXT NOT NULL REFERENCES runs (run_id),
  step        TEXT NOT NULL,
  tool        TEXT NOT NULL,
  attempt     INTEGER NOT NULL,
  invocations INTEGER NOT NULL,
  first_seq   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_by_run ON idempotency_keys (run_id);
CREATE TABLE IF NOT EXISTS programs (
  hash    TEXT PRIMARY KEY,
  program TEXT NOT NULL
) WITHOUT ROWID;
`;

interface RunRow {
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

export class SqliteStore implements Store {
  readonly db: Database.Database;
  private readonly insertRun: Database.Statement;
  private readonly insertEvent: Database.Statement;
  private readonly advanceHead: Database.Statement;
  private readonly appendTx: (runId: string, e: TraceEvent) => void;
  private readonly finishRun: Database.Statement;
  private readonly selectRun: Database.Statement;
  private readonly selectEvents: Database.Statement;
  private readonly selectRuns: Database.Statement;
  private readonly selectRunsByStatus: Database.Statement;

  constructor(
    readonly path: string,
    opts: SqliteStoreOptions = {},
  ) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
    this.db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 5000}`);
    this.db.pragma('foreign_keys = ON');
    // Erased vault values must leave the file: deleted content is overwritten with zeros.
    this.db.pragma('secure_delete = ON');
    const hasMeta = this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).get() !== undefined;
    const version = hasMeta ? (this.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined)?.value : undefined;
    if (version !== undefined && !(Number(version) >= 1 && Number(version) <= SCHEMA_VERSION)) throw new StoreError('E_STORE_SCHEMA', `${path} has store schema version ${version}; this nano-vm reads versions 1 to ${SCHEMA_VERSION}`);
    this.db.exec(SCHEMA);
    // runs.program_hash (schema 3) names the programs row; a run written before keeps runs.program.
    if (!(this.db.prepare(`SELECT name FROM pragma_table_info('runs')`).all() as { name: string }[]).some((c) => c.name === 'program_hash')) this.db.exec(`ALTER TABLE runs ADD COLUMN program_hash TEXT`);
    if (version === undefined) this.db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?)`).run(String(SCHEMA_VERSION));
    else if (Number(version) < SCHEMA_VERSION) this.db.prepare(`UPDATE meta SET value = ? WHERE key = 'schema_version'`).run(String(SCHEMA_VERSION));

    this.insertRun = this.db.prepare(`INSERT INTO runs (run_id, program_id, program, program_hash, policy, input, status, outcome) VALUES (?, ?, '', ?, ?, ?, ?, ?)`);
    this.insertProgram = this.db.prepare(`INSERT OR IGNORE INTO programs (hash, program) VALUES (?, ?)`);
    this.selectProgram = this.db.prepare(`SELECT program FROM programs WHERE hash = ?`);
    this.countInvocation = this.db.prepare(
      `INSERT INTO idempotency_keys (key, run_id, step, tool, attempt, invocations, first_seq) VALUES (?, ?, ?, ?, ?, 1, ?)
       ON CONFLICT (key) DO UPDATE SET invocations = invocations + 1, attempt = excluded.attempt`,
    );
    this.insertEvent = this.db.prepare(`INSERT INTO events (run_id, seq, type, hash, body) VALUES (?, ?, ?, ?, ?)`);
    // Compare-and-swap: the head only moves from exactly seq to seq + 1.
    this.advanceHead = this.db.prepare(`UPDATE runs SET event_count = event_count + 1, head_hash = ? WHERE run_id = ? AND event_count = ?`);
    this.appendTx = this.db.transaction((runId: string, e: TraceEvent) => {
      const moved = this.advanceHead.run(e.hash, runId, e.seq);
      if (moved.changes !== 1) {
        const run = this.selectRun.get(runId) as RunRow | undefined;
        if (!run) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
        throw new StoreError('E_STORE_CONFLICT', `append of seq ${e.seq} to run ${runId} conflicts: the next seq is ${run.event_count}`);
      }
      this.insertEvent.run(runId, e.seq, e.type, e.hash, JSON.stringify(e));
      if (e.type === 'step_started' && e.idempotency_key !== undefined) this.countInvocation.run(e.idempotency_key, runId, e.step, e.tool ?? '', e.attempt, e.seq);
    });
    this.group = opts.groupCommit
      ? {
          pending: [],
          commit: this.db.transaction((batch: PendingAppend[]) =>
            batch.map((p) => {
              try {
                this.appendTx(p.runId, p.event); // nested: a savepoint, rolled back alone on a conflict
                return null;
              } catch (e) {
                if (e instanceof StoreError) return e;
                throw e;
              }
            }),
          ),
        }
      : null;
    this.finishRun = this.db.prepare(`UPDATE runs SET status = ?, outcome = ? WHERE run_id = ?`);
    this.selectRun = this.db.prepare(`SELECT * FROM runs WHERE run_id = ?`);
    this.selectEvents = this.db.prepare(`SELECT body FROM events WHERE run_id = ? ORDER BY seq`);
    this.selectRuns = this.db.prepare(`SELECT * FROM runs ORDER BY rowid`);
    this.selectRunsByStatus = this.db.prepare(`SELECT * FROM runs WHERE status = ? ORDER BY rowid`);
  }

  createRun(run: Omit<RunRecord, 'head_hash' | 'event_count'>, vault: readonly VaultValue[] = []): void {
    const programHash = this.programHash(run.program);
    const insert = () => this.insertRun.run(run.run_id, run.program_id, programHash, JSON.stringify(run.policy ?? null), JSON.stringify(run.input), run.status, run.outcome);
    try {
      if (vault.length === 0) insert();
      else this.vaultOps().create(insert, run.run_id, vault);
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new StoreError('E_STORE_DUPLICATE_RUN', `run ${run.run_id} already exists`);
      throw e;
    }
  }

  append(runId: string, event: TraceEvent): void | Promise<void> {
    if (!this.group) {
      this.appendTx(runId, event);
      return;
    }
    return new Promise<void>((resolve, reject) => {
      const g = this.group!;
      g.pending.push({ runId, event, resolve, reject });
      if (g.pending.length === 1) setImmediate(() => this.commitGroup());
    });
  }

  private readonly group: { pending: PendingAppend[]; commit: (batch: PendingAppend[]) => (Error | null)[] } | null;

  /** Commits every pending append in one transaction; each append is its own savepoint, so a conflict fails only that append. */
  private commitGroup(): void {
    const g = this.group!;
    const batch = g.pending;
    g.pending = [];
    let outcomes: (Error | null)[];
    try {
      outcomes = g.commit(batch);
    } catch (e) {
      for (const p of batch) p.reject(e as Error);
      return;
    }
    batch.forEach((p, i) => (outcomes[i] ? p.reject(outcomes[i]!) : p.resolve()));
  }

  finish(runId: string, status: RunStatus | 'running', outcome: string | null): void {
    if (this.finishRun.run(status, outcome, runId).changes !== 1) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
  }

  getRun(runId: string): RunRecord | undefined {
    const row = this.selectRun.get(runId) as RunRow | undefined;
    return row && this.toRecord(row);
  }

  private secret: string | undefined;

  /** Created with the file (meta `subject_secret`, 32 random bytes), then read back on every open. */
  subjectSecret(): string {
    if (this.secret !== undefined) return this.secret;
    const read = () => (this.db.prepare(`SELECT value FROM meta WHERE key = 'subject_secret'`).get() as { value: string } | undefined)?.value;
    let s = read();
    if (s === undefined) {
      this.db.prepare(`INSERT OR IGNORE INTO meta (key, value) VALUES ('subject_secret', ?)`).run(randomBytes(32).toString('hex'));
      s = read()!; // another connection may have created it first
    }
    return (this.secret = s);
  }

  invocations(runId: string): Invocation[] {
    return (this.selectInvocations.all(runId) as Invocation[]).map((r) => ({ ...r }));
  }

  reinvoked(runId: string, call: Omit<Invocation, 'run_id' | 'invocations'>): number {
    if (!this.selectRun.get(runId)) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
    const row = this.bumpInvocation.get(call.key, runId, call.step, call.tool, call.attempt) as { invocations: number };
    return row.invocations;
  }

  private readonly insertProgram: Database.Statement;
  private readonly selectProgram: Database.Statement;
  private readonly countInvocation: Database.Statement;
  private get selectInvocations(): Database.Statement {
    return (this.invocationStatements ??= this.prepareInvocationStatements()).select;
  }
  private get bumpInvocation(): Database.Statement {
    return (this.invocationStatements ??= this.prepareInvocationStatements()).bump;
  }
  private invocationStatements?: { select: Database.Statement; bump: Database.Statement };
  private prepareInvocationStatements() {
    return {
      select: this.db.prepare(`SELECT key, run_id, step, tool, attempt, invocations FROM idempotency_keys WHERE run_id = ? ORDER BY first_seq`),
      // A key missing from the table (a run stored before it existed) enters with 2: its stored step_started was the first call.
      bump: this.db.prepare(
        `INSERT INTO idempotency_keys (key, run_id, step, tool, attempt, invocations, first_seq) VALUES (?, ?, ?, ?, ?, 2, -1)
         ON CONFLICT (key) DO UPDATE SET invocations = invocations + 1 RETURNING invocations`,
      ),
    };
  }

  /** Programs written by this handle, by object, and programs read, by hash: each is serialized and parsed once. */
  private readonly programHashes = new WeakMap<Program, string>();
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
        if (!row) throw new StoreError('E_STORE_CORRUPT', `run ${r.run_id} names program ${r.program_hash}, which is not in the store`);
        p = JSON.parse(row.program) as Program;
        this.programsByHash.set(r.program_hash, p);
      }
      // Each record gets its own copy: callers may not change the store's cached program.
      program = structuredClone(p);
    } else program = JSON.parse(r.program) as Program;
    return {
      run_id: r.run_id,
      program_id: r.program_id,
      program,
      policy: JSON.parse(r.policy) as unknown,
      input: JSON.parse(r.input) as unknown,
      status: r.status as RunRecord['status'],
      outcome: r.outcome,
      head_hash: r.head_hash,
      event_count: r.event_count,
    };
  }

  events(runId: string): TraceEvent[] {
    return (this.selectEvents.all(runId) as { body: string }[]).map((r) => JSON.parse(r.body) as TraceEvent);
  }

  listRuns(filter: { status?: RunStatus | 'running' } = {}): RunRecord[] {
    const rows = (filter.status === undefined ? this.selectRuns.all() : this.selectRunsByStatus.all(filter.status)) as RunRow[];
    return rows.map((r) => this.toRecord(r));
  }

  vault(runId: string): VaultRow[] {
    return (this.vaultOps().byRun.all(runId) as VaultDbRow[]).map(toVaultRow);
  }

  vaultBySubject(subject: string): VaultRow[] {
    return (this.vaultOps().bySubject.all(subject) as VaultDbRow[]).map(toVaultRow);
  }

  eraseValues(runId: string, subject: string, event: TraceEvent): number {
    const n = this.vaultOps().erase(runId, subject, event);
    // The WAL still holds the pages written before the erasure: copy them back and truncate it,
    // so with secure_delete the erased bytes are in neither file. A reader holding an old snapshot
    // can keep the WAL from truncating; the next erase or checkpoint finishes the job.
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    return n;
  }

  private vaultStatements?: VaultOps;

  /** Vault statements, prepared on first use. */
  private vaultOps(): VaultOps {
    if (this.vaultStatements) return this.vaultStatements;
    const insert = this.db.prepare(`INSERT INTO vault (run_id, path, subject, commitment, salt, value) VALUES (?, ?, ?, ?, ?, ?)`);
    const tombstone = this.db.prepare(`UPDATE vault SET salt = NULL, value = NULL, erased = 1 WHERE run_id = ? AND subject = ? AND erased = 0`);
    this.vaultStatements = {
      create: this.db.transaction((insertRun: () => void, runId: string, rows: readonly VaultValue[]) => {
        insertRun();
        for (const v of rows) insert.run(runId, v.path, v.subject, v.commitment, v.salt, JSON.stringify(v.value));
      }),
      byRun: this.db.prepare(`SELECT * FROM vault WHERE run_id = ? ORDER BY path`),
      bySubject: this.db.prepare(`SELECT vault.* FROM vault JOIN runs USING (run_id) WHERE subject = ? ORDER BY runs.rowid, vault.path`),
      erase: this.db.transaction((runId: string, subject: string, event: TraceEvent) => {
        this.appendTx(runId, event);
        return tombstone.run(runId, subject).changes;
      }),
    };
    return this.vaultStatements;
  }

  close(): void {
    if (this.group?.pending.length) this.commitGroup();
    this.db.close();
  }
}

interface PendingAppend {
  runId: string;
  event: TraceEvent;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface VaultOps {
  create: (insertRun: () => void, runId: string, rows: readonly VaultValue[]) => void;
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
  return { run_id: r.run_id, path: r.path, subject: r.subject, commitment: r.commitment, salt: r.salt, value: r.value === null ? null : (JSON.parse(r.value) as JsonValue), erased: r.erased === 1 };
}

