/**
 * The server's state in SQLite: its own tables (`mcp_*`) in the run store's file, so one file
 * holds a deployment's runs, catalogue and audit log. Every write that must be atomic across
 * processes (claiming a key, chaining an audit entry) runs under the write lock (BEGIN IMMEDIATE).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { NanoVmError, type Program } from '@nano-vm/kernel';
import {
  AUDIT_GENESIS,
  chainAudit,
  decodeCursor,
  programCursor,
  type AuditEntry,
  type IdempotencyRecord,
  type NewAuditEntry,
  type Page,
  type ProgramRef,
  type RunMeta,
  type ServerState,
  type StoredProgram,
} from './state.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS mcp_programs (
  name TEXT NOT NULL, version INTEGER NOT NULL, hash TEXT NOT NULL, program TEXT NOT NULL,
  principal TEXT NOT NULL, created_at TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (name, version));
CREATE INDEX IF NOT EXISTS mcp_programs_hash ON mcp_programs (hash);
CREATE TABLE IF NOT EXISTS mcp_runs (
  run_id TEXT PRIMARY KEY, principal TEXT NOT NULL, program_id TEXT NOT NULL, program_hash TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mcp_idempotency (
  principal TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, run_id TEXT NOT NULL,
  created_at TEXT NOT NULL, PRIMARY KEY (principal, key));
CREATE TABLE IF NOT EXISTS mcp_audit (
  seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, principal TEXT NOT NULL, tool TEXT NOT NULL,
  args_hash TEXT NOT NULL, result TEXT NOT NULL, run_id TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
`;

interface ProgramRow {
  name: string;
  version: number;
  hash: string;
  program: string;
  principal: string;
  created_at: string;
}

const fromRow = (r: ProgramRow): StoredProgram => ({ ...r, program: JSON.parse(r.program) as Program });

export class SqliteServerState implements ServerState {
  private readonly db: Database.Database;
  private closed = false;

  constructor(path: string, opts: { create?: boolean } = {}) {
    try {
      if (opts.create !== false) mkdirSync(dirname(path), { recursive: true });
      this.db = new Database(path, { fileMustExist: opts.create === false });
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('busy_timeout = 5000');
      // As the run store: WAL with NORMAL survives a process crash without an fsync per commit.
      this.db.pragma('synchronous = NORMAL');
      this.db.exec(SCHEMA);
    } catch (e) {
      throw new NanoVmError('E_STORE_OPEN', `cannot open the server state in ${path}: ${(e as Error).message}`);
    }
  }

  private run<T>(f: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new NanoVmError('E_STORE_CLOSED', 'the server state is closed'));
    try {
      return Promise.resolve(f());
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  putProgram(p: { name: string; hash: string; program: Program; principal: string; ts: string }) {
    return this.run(() =>
      this.db
        .transaction(() => {
          const same = this.db
            .prepare('SELECT * FROM mcp_programs WHERE name = ? AND hash = ? AND deleted = 0 ORDER BY version DESC')
            .get(p.name, p.hash) as ProgramRow | undefined;
          if (same) return { stored: fromRow(same), created: false };
          const { v } = this.db
            .prepare('SELECT COALESCE(MAX(version), 0) AS v FROM mcp_programs WHERE name = ?')
            .get(p.name) as { v: number };
          const row: ProgramRow = {
            name: p.name,
            version: v + 1,
            hash: p.hash,
            program: JSON.stringify(p.program),
            principal: p.principal,
            created_at: p.ts,
          };
          this.db
            .prepare(
              'INSERT INTO mcp_programs (name, version, hash, program, principal, created_at) VALUES (@name, @version, @hash, @program, @principal, @created_at)',
            )
            .run(row);
          return { stored: fromRow(row), created: true };
        })
        .immediate(),
    );
  }

  getProgram(ref: ProgramRef): Promise<StoredProgram | undefined> {
    return this.run(() => {
      const where = ['deleted = 0'];
      const args: (string | number)[] = [];
      if (ref.name !== undefined) (where.push('name = ?'), args.push(ref.name));
      if (ref.version !== undefined) (where.push('version = ?'), args.push(ref.version));
      if (ref.hash !== undefined) (where.push('hash = ?'), args.push(ref.hash));
      const row = this.db
        .prepare(
          `SELECT name, version, hash, program, principal, created_at FROM mcp_programs WHERE ${where.join(' AND ')} ORDER BY version DESC LIMIT 1`,
        )
        .get(...args) as ProgramRow | undefined;
      return row ? fromRow(row) : undefined;
    });
  }

  listPrograms(opts: { name?: string; after?: string; limit: number }): Promise<Page<StoredProgram>> {
    return this.run(() => {
      const where = ['deleted = 0'];
      const args: (string | number)[] = [];
      if (opts.name !== undefined) (where.push('name = ?'), args.push(opts.name));
      const after = opts.after === undefined ? undefined : decodeCursor(opts.after);
      if (Array.isArray(after) && typeof after[0] === 'string' && typeof after[1] === 'number') {
        where.push('(name > ? OR (name = ? AND version > ?))');
        args.push(after[0], after[0], after[1]);
      }
      const rows = this.db
        .prepare(
          `SELECT name, version, hash, program, principal, created_at FROM mcp_programs WHERE ${where.join(' AND ')} ORDER BY name, version LIMIT ?`,
        )
        .all(...args, opts.limit + 1) as ProgramRow[];
      const items = rows.slice(0, opts.limit).map(fromRow);
      return { items, next_cursor: rows.length > opts.limit ? programCursor(items[items.length - 1]!) : null };
    });
  }

  deleteProgram(name: string, version?: number): Promise<number> {
    return this.run(
      () =>
        (version === undefined
          ? this.db.prepare('UPDATE mcp_programs SET deleted = 1 WHERE name = ? AND deleted = 0').run(name)
          : this.db
              .prepare('UPDATE mcp_programs SET deleted = 1 WHERE name = ? AND version = ? AND deleted = 0')
              .run(name, version)
        ).changes,
    );
  }

  recordRun(meta: RunMeta): Promise<void> {
    return this.run(() => {
      this.db
        .prepare(
          'INSERT OR IGNORE INTO mcp_runs (run_id, principal, program_id, program_hash, created_at) VALUES (@run_id, @principal, @program_id, @program_hash, @created_at)',
        )
        .run(meta);
    });
  }

  runMeta(runId: string): Promise<RunMeta | undefined> {
    return this.run(() => this.db.prepare('SELECT * FROM mcp_runs WHERE run_id = ?').get(runId) as RunMeta | undefined);
  }

  claimIdempotency(rec: IdempotencyRecord) {
    return this.run(() =>
      this.db
        .transaction(() => {
          const existing = this.db
            .prepare('SELECT * FROM mcp_idempotency WHERE principal = ? AND key = ?')
            .get(rec.principal, rec.key) as IdempotencyRecord | undefined;
          if (existing) return { claimed: false as const, existing };
          this.db
            .prepare(
              'INSERT INTO mcp_idempotency (principal, key, request_hash, run_id, created_at) VALUES (@principal, @key, @request_hash, @run_id, @created_at)',
            )
            .run(rec);
          return { claimed: true as const };
        })
        .immediate(),
    );
  }

  releaseIdempotency(principal: string, key: string, runId: string): Promise<void> {
    return this.run(() => {
      this.db
        .prepare('DELETE FROM mcp_idempotency WHERE principal = ? AND key = ? AND run_id = ?')
        .run(principal, key, runId);
    });
  }

  appendAudit(entry: NewAuditEntry): Promise<AuditEntry> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const last = this.db.prepare('SELECT seq, hash FROM mcp_audit ORDER BY seq DESC LIMIT 1').get() as
            { seq: number; hash: string } | undefined;
          const e = chainAudit(entry, last ? last.seq + 1 : 0, last ? last.hash : AUDIT_GENESIS);
          this.db
            .prepare(
              'INSERT INTO mcp_audit (seq, ts, principal, tool, args_hash, result, run_id, prev_hash, hash) VALUES (@seq, @ts, @principal, @tool, @args_hash, @result, @run_id, @prev_hash, @hash)',
            )
            .run(e);
          return e;
        })
        .immediate(),
    );
  }

  auditLog(): Promise<AuditEntry[]> {
    return this.run(() => this.db.prepare('SELECT * FROM mcp_audit ORDER BY seq').all() as AuditEntry[]);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.db.close();
    }
    return Promise.resolve();
  }
}
