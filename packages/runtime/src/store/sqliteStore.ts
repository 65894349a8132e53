/**
 * The embedded default store: one SQLite file in WAL mode. Every append is its own transaction,
 * committed before `append` returns — and the executor appends an event before it starts the
 * effect that follows it, so a process crash never loses a recorded decision (with
 * synchronous=NORMAL an OS crash may lose the last commits; use FULL where that matters).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { JsonValue, Program, RunStatus, TraceEvent } from '@nano-vm/kernel';
import { StoreError, type RunRecord, type Store, type VaultRow, type VaultValue } from './store.js';

export interface SqliteStoreOptions {
  /** `NORMAL` (default) survives process crashes; `FULL` also survives power loss. */
  synchronous?: 'NORMAL' | 'FULL';
  /** Milliseconds to wait for another connection's write lock. */
  busyTimeoutMs?: number;
}

/** 2 added the vault; a version-1 file is migrated by creating it (its runs have no vault rows). */
const SCHEMA_VERSION = 2;

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
`;

interface RunRow {
  run_id: string;
  program_id: string;
  program: string;
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
    if (version === undefined) this.db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?)`).run(String(SCHEMA_VERSION));
    else if (Number(version) < SCHEMA_VERSION) this.db.prepare(`UPDATE meta SET value = ? WHERE key = 'schema_version'`).run(String(SCHEMA_VERSION));

    this.insertRun = this.db.prepare(`INSERT INTO runs (run_id, program_id, program, policy, input, status, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)`);
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
    });
    this.finishRun = this.db.prepare(`UPDATE runs SET status = ?, outcome = ? WHERE run_id = ?`);
    this.selectRun = this.db.prepare(`SELECT * FROM runs WHERE run_id = ?`);
    this.selectEvents = this.db.prepare(`SELECT body FROM events WHERE run_id = ? ORDER BY seq`);
    this.selectRuns = this.db.prepare(`SELECT * FROM runs ORDER BY rowid`);
    this.selectRunsByStatus = this.db.prepare(`SELECT * FROM runs WHERE status = ? ORDER BY rowid`);
  }

  createRun(run: Omit<RunRecord, 'head_hash' | 'event_count'>, vault: readonly VaultValue[] = []): void {
    const insert = () => this.insertRun.run(run.run_id, run.program_id, JSON.stringify(run.program), JSON.stringify(run.policy ?? null), JSON.stringify(run.input), run.status, run.outcome);
    try {
      if (vault.length === 0) insert();
      else this.vaultOps().create(insert, run.run_id, vault);
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new StoreError('E_STORE_DUPLICATE_RUN', `run ${run.run_id} already exists`);
      throw e;
    }
  }

  append(runId: string, event: TraceEvent): void {
    this.appendTx(runId, event);
  }

  finish(runId: string, status: RunStatus | 'running', outcome: string | null): void {
    if (this.finishRun.run(status, outcome, runId).changes !== 1) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
  }

  getRun(runId: string): RunRecord | undefined {
    const row = this.selectRun.get(runId) as RunRow | undefined;
    return row && toRecord(row);
  }

  events(runId: string): TraceEvent[] {
    return (this.selectEvents.all(runId) as { body: string }[]).map((r) => JSON.parse(r.body) as TraceEvent);
  }

  listRuns(filter: { status?: RunStatus | 'running' } = {}): RunRecord[] {
    const rows = (filter.status === undefined ? this.selectRuns.all() : this.selectRunsByStatus.all(filter.status)) as RunRow[];
    return rows.map(toRecord);
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
    this.db.close();
  }
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

function toRecord(r: RunRow): RunRecord {
  return {
    run_id: r.run_id,
    program_id: r.program_id,
    program: JSON.parse(r.program) as Program,
    policy: JSON.parse(r.policy) as unknown,
    input: JSON.parse(r.input) as unknown,
    status: r.status as RunRecord['status'],
    outcome: r.outcome,
    head_hash: r.head_hash,
    event_count: r.event_count,
  };
}
