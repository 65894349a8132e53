/**
 * The server's state on PostgreSQL, beside a `PostgresStore`'s tables in the same schema (one
 * schema is one deployment: its runs, queue, catalogue and audit log), so several MCP server
 * processes on several machines share one catalogue, one set of idempotency keys and one audit
 * chain. Its tables (`mcp_*`) are versioned apart from the store's (`mcp_migrations`), applied on
 * open under an advisory lock: the MCP server owns them, `nano-vm migrate` owns the store's.
 *
 * Atomic across processes: claiming a key is one `INSERT … ON CONFLICT DO NOTHING` (of two
 * servers with one key exactly one inserts); an audit append takes a transaction-scoped advisory
 * lock, so entries are chained one at a time whoever writes them.
 *
 * `RunWatch` listens for the runs' status changes, which triggers (migration 1) announce on a
 * channel of the schema: the server learns when a worker starts, suspends or finishes a run.
 */
import type pg from 'pg';
import { NanoVmError, type Program } from '@nano-vm/kernel';
import type { PostgresStore } from '@nano-vm/store-postgres';
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

export interface McpMigration {
  version: number;
  name: string;
  /** SQL with `$S` standing for the quoted schema name. */
  sql: string;
}

/**
 * Applied in order, once each, after the store's own migrations (its `runs` and `queue` tables
 * must exist). Never edit an applied one: add the next version.
 */
export const MCP_MIGRATIONS: readonly McpMigration[] = [
  {
    version: 1,
    name: 'programs, run owners, idempotency keys, audit log; run status notifications',
    sql: `
CREATE TABLE $S.mcp_programs (
  name text NOT NULL, version integer NOT NULL, hash text NOT NULL, program text NOT NULL,
  principal text NOT NULL, created_at text NOT NULL, deleted boolean NOT NULL DEFAULT false,
  PRIMARY KEY (name, version));
CREATE INDEX mcp_programs_hash ON $S.mcp_programs (hash);
CREATE TABLE $S.mcp_runs (
  run_id text PRIMARY KEY, principal text NOT NULL, program_id text NOT NULL, program_hash text NOT NULL,
  created_at text NOT NULL);
CREATE TABLE $S.mcp_idempotency (
  principal text NOT NULL, key text NOT NULL, request_hash text NOT NULL, run_id text NOT NULL,
  created_at text NOT NULL, PRIMARY KEY (principal, key));
CREATE TABLE $S.mcp_audit (
  seq bigint PRIMARY KEY, ts text NOT NULL, principal text NOT NULL, tool text NOT NULL,
  args_hash text NOT NULL, result text NOT NULL, run_id text, prev_hash text NOT NULL, hash text NOT NULL);
-- A run's status as it changes ('<status> <run_id>'), a submission ('queued <run_id>') and one a
-- worker refused ('refused <run_id>'): one notification per change, sent when the transaction
-- that made it commits. Statements that do not change a status (appends) send none.
CREATE FUNCTION $S.mcp_notify_run() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_TABLE_NAME = 'queue' THEN
    PERFORM pg_notify(left('nano_vm_runs_' || TG_TABLE_SCHEMA, 63),
      CASE WHEN TG_OP = 'INSERT' THEN 'queued ' ELSE 'refused ' END || NEW.run_id);
  ELSE
    PERFORM pg_notify(left('nano_vm_runs_' || TG_TABLE_SCHEMA, 63), NEW.status || ' ' || NEW.run_id);
  END IF;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER mcp_run_created AFTER INSERT ON $S.runs FOR EACH ROW EXECUTE FUNCTION $S.mcp_notify_run();
CREATE TRIGGER mcp_run_status AFTER UPDATE OF status ON $S.runs FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION $S.mcp_notify_run();
CREATE TRIGGER mcp_submitted AFTER INSERT ON $S.queue FOR EACH ROW EXECUTE FUNCTION $S.mcp_notify_run();
CREATE TRIGGER mcp_submission_refused AFTER UPDATE OF error ON $S.queue FOR EACH ROW
  WHEN (OLD.error IS NULL AND NEW.error IS NOT NULL) EXECUTE FUNCTION $S.mcp_notify_run();`,
  },
];

export const MCP_SCHEMA_VERSION = MCP_MIGRATIONS[MCP_MIGRATIONS.length - 1]!.version;

/** The channel the triggers notify on (PostgreSQL names are at most 63 bytes). */
export const runsChannel = (schema: string): string => `nano_vm_runs_${schema}`.slice(0, 63);

/**
 * Applies the MCP migrations the schema lacks, in one transaction under an advisory lock (two
 * servers starting at once apply each once). The store's schema must be current (`nano-vm migrate`).
 */
export async function migrateMcp(store: PostgresStore): Promise<{ from: number; to: number; applied: number[] }> {
  await store.schemaVersion().then(
    (v) => {
      if (v === 0)
        throw new NanoVmError(
          'E_STORE_SCHEMA',
          `schema ${store.schema} has no nano-vm tables yet: run nano-vm migrate --store <url> before the MCP server`,
        );
    },
    (e: unknown) => {
      throw store.wrap(e, 'opening the MCP server state');
    },
  );
  return store.transaction('migrating the MCP server state', async (c) => {
    await c.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`nano-vm mcp migrate ${store.schema}`]);
    await c.query(
      `CREATE TABLE IF NOT EXISTS ${store.s}.mcp_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const from = Number(
      (await c.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${store.s}.mcp_migrations`)).rows[0]?.v ?? 0,
    );
    if (from > MCP_SCHEMA_VERSION)
      throw new NanoVmError(
        'E_STORE_SCHEMA',
        `schema ${store.schema} has MCP server state version ${from}, newer than this nano-vm's ${MCP_SCHEMA_VERSION}: upgrade nano-vm; nothing was changed`,
      );
    const applied: number[] = [];
    for (const m of MCP_MIGRATIONS) {
      if (m.version <= from) continue;
      await c.query(m.sql.replaceAll('$S', store.s));
      await c.query(`INSERT INTO ${store.s}.mcp_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
      applied.push(m.version);
    }
    return { from, to: Math.max(from, MCP_SCHEMA_VERSION), applied };
  });
}

interface ProgramRow {
  name: string;
  version: number;
  hash: string;
  program: string;
  principal: string;
  created_at: string;
}

const fromRow = (r: ProgramRow): StoredProgram => ({
  name: r.name,
  version: Number(r.version),
  hash: r.hash,
  program: JSON.parse(r.program) as Program,
  principal: r.principal,
  created_at: r.created_at,
});

const fromAudit = (r: AuditEntry): AuditEntry => ({
  seq: Number(r.seq),
  ts: r.ts,
  principal: r.principal,
  tool: r.tool,
  args_hash: r.args_hash,
  result: r.result,
  run_id: r.run_id,
  prev_hash: r.prev_hash,
  hash: r.hash,
});

/** The server state in a PostgresStore's schema. It uses the store's connections; closing the store closes it. */
export class PostgresServerState implements ServerState {
  private closed = false;
  private readonly s: string;

  constructor(private readonly store: PostgresStore) {
    this.s = store.s;
  }

  /**
   * Opens the state of `store`'s schema: applies the MCP migrations (`migrate`, the server) or
   * only checks they were applied (a reader such as `nano-vm audit`: E_STORE_SCHEMA otherwise).
   */
  static async open(store: PostgresStore, opts: { migrate: boolean }): Promise<PostgresServerState> {
    if (opts.migrate) await migrateMcp(store);
    else {
      const r = await store.query<{ t: string | null }>(`SELECT to_regclass($1)::text AS t`, [
        `${store.s}.mcp_migrations`,
      ]);
      if (r.rows[0]?.t == null)
        throw new NanoVmError(
          'E_STORE_SCHEMA',
          `schema ${store.schema} holds no MCP server state (no MCP server has used this store yet)`,
        );
    }
    return new PostgresServerState(store);
  }

  private q<R extends pg.QueryResultRow>(sql: string, params: unknown[], what: string) {
    if (this.closed) return Promise.reject(new NanoVmError('E_STORE_CLOSED', 'the server state is closed'));
    return this.store.query<R>(sql, params, what);
  }

  async putProgram(p: { name: string; hash: string; program: Program; principal: string; ts: string }) {
    if (this.closed) throw new NanoVmError('E_STORE_CLOSED', 'the server state is closed');
    return this.store.transaction('storing a program', async (c) => {
      // One name's versions are numbered one at a time, whichever server stores them.
      await c.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [
        `nano-vm mcp program ${this.store.schema} ${p.name}`,
      ]);
      const same = await c.query<ProgramRow>(
        `SELECT * FROM ${this.s}.mcp_programs WHERE name = $1 AND hash = $2 AND NOT deleted ORDER BY version DESC LIMIT 1`,
        [p.name, p.hash],
      );
      if (same.rows[0]) return { stored: fromRow(same.rows[0]), created: false };
      const v = await c.query<{ v: number }>(
        `SELECT coalesce(max(version), 0)::int AS v FROM ${this.s}.mcp_programs WHERE name = $1`,
        [p.name],
      );
      const row: ProgramRow = {
        name: p.name,
        version: v.rows[0]!.v + 1,
        hash: p.hash,
        program: JSON.stringify(p.program),
        principal: p.principal,
        created_at: p.ts,
      };
      await c.query(
        `INSERT INTO ${this.s}.mcp_programs (name, version, hash, program, principal, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
        [row.name, row.version, row.hash, row.program, row.principal, row.created_at],
      );
      return { stored: fromRow(row), created: true };
    });
  }

  async getProgram(ref: ProgramRef): Promise<StoredProgram | undefined> {
    const where = ['NOT deleted'];
    const args: unknown[] = [];
    if (ref.name !== undefined) (args.push(ref.name), where.push(`name = $${args.length}`));
    if (ref.version !== undefined) (args.push(ref.version), where.push(`version = $${args.length}`));
    if (ref.hash !== undefined) (args.push(ref.hash), where.push(`hash = $${args.length}`));
    const r = await this.q<ProgramRow>(
      `SELECT * FROM ${this.s}.mcp_programs WHERE ${where.join(' AND ')} ORDER BY version DESC LIMIT 1`,
      args,
      'reading a program',
    );
    return r.rows[0] ? fromRow(r.rows[0]) : undefined;
  }

  async listPrograms(opts: { name?: string; after?: string; limit: number }): Promise<Page<StoredProgram>> {
    const where = ['NOT deleted'];
    const args: unknown[] = [];
    if (opts.name !== undefined) (args.push(opts.name), where.push(`name = $${args.length}`));
    const after = opts.after === undefined ? undefined : decodeCursor(opts.after);
    if (Array.isArray(after) && typeof after[0] === 'string' && typeof after[1] === 'number') {
      args.push(after[0], after[1]);
      where.push(`(name > $${args.length - 1} OR (name = $${args.length - 1} AND version > $${args.length}))`);
    }
    args.push(opts.limit + 1);
    const r = await this.q<ProgramRow>(
      // COLLATE "C": names in byte order, as the other implementations compare them.
      `SELECT * FROM ${this.s}.mcp_programs WHERE ${where.join(' AND ')} ORDER BY name COLLATE "C", version LIMIT $${args.length}`,
      args,
      'listing programs',
    );
    const items = r.rows.slice(0, opts.limit).map(fromRow);
    return { items, next_cursor: r.rows.length > opts.limit ? programCursor(items[items.length - 1]!) : null };
  }

  async deleteProgram(name: string, version?: number): Promise<number> {
    const r =
      version === undefined
        ? await this.q(
            `UPDATE ${this.s}.mcp_programs SET deleted = true WHERE name = $1 AND NOT deleted`,
            [name],
            'deleting a program',
          )
        : await this.q(
            `UPDATE ${this.s}.mcp_programs SET deleted = true WHERE name = $1 AND version = $2 AND NOT deleted`,
            [name, version],
            'deleting a program',
          );
    return r.rowCount ?? 0;
  }

  async recordRun(meta: RunMeta): Promise<void> {
    await this.q(
      `INSERT INTO ${this.s}.mcp_runs (run_id, principal, program_id, program_hash, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
      [meta.run_id, meta.principal, meta.program_id, meta.program_hash, meta.created_at],
      'recording a run',
    );
  }

  async runMeta(runId: string): Promise<RunMeta | undefined> {
    const r = await this.q<RunMeta>(`SELECT * FROM ${this.s}.mcp_runs WHERE run_id = $1`, [runId], 'reading a run');
    return r.rows[0] ? { ...r.rows[0] } : undefined;
  }

  async claimIdempotency(
    rec: IdempotencyRecord,
  ): Promise<{ claimed: true } | { claimed: false; existing: IdempotencyRecord }> {
    // One statement: of two servers inserting one (principal, key), the second waits for the
    // first's commit and inserts nothing. A key released in between is claimed on the next turn.
    for (;;) {
      const ins = await this.q(
        `INSERT INTO ${this.s}.mcp_idempotency (principal, key, request_hash, run_id, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
        [rec.principal, rec.key, rec.request_hash, rec.run_id, rec.created_at],
        'claiming an idempotency key',
      );
      if (ins.rowCount === 1) return { claimed: true };
      const r = await this.q<IdempotencyRecord>(
        `SELECT principal, key, request_hash, run_id, created_at FROM ${this.s}.mcp_idempotency WHERE principal = $1 AND key = $2`,
        [rec.principal, rec.key],
        'reading an idempotency key',
      );
      if (r.rows[0]) return { claimed: false, existing: { ...r.rows[0] } };
    }
  }

  async releaseIdempotency(principal: string, key: string, runId: string): Promise<void> {
    await this.q(
      `DELETE FROM ${this.s}.mcp_idempotency WHERE principal = $1 AND key = $2 AND run_id = $3`,
      [principal, key, runId],
      'releasing an idempotency key',
    );
  }

  async appendAudit(entry: NewAuditEntry): Promise<AuditEntry> {
    if (this.closed) throw new NanoVmError('E_STORE_CLOSED', 'the server state is closed');
    return this.store.transaction('appending to the audit log', async (c) => {
      // One chain, one writer at a time across every server on this schema.
      await c.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`nano-vm mcp audit ${this.store.schema}`]);
      const last = await c.query<{ seq: number; hash: string }>(
        `SELECT seq, hash FROM ${this.s}.mcp_audit ORDER BY seq DESC LIMIT 1`,
      );
      const l = last.rows[0];
      const e = chainAudit(entry, l ? Number(l.seq) + 1 : 0, l ? l.hash : AUDIT_GENESIS);
      await c.query(
        `INSERT INTO ${this.s}.mcp_audit (seq, ts, principal, tool, args_hash, result, run_id, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [e.seq, e.ts, e.principal, e.tool, e.args_hash, e.result, e.run_id, e.prev_hash, e.hash],
      );
      return e;
    });
  }

  async auditLog(): Promise<AuditEntry[]> {
    const r = await this.q<AuditEntry>(`SELECT * FROM ${this.s}.mcp_audit ORDER BY seq`, [], 'reading the audit log');
    return r.rows.map(fromAudit);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** A run's status change as the triggers announce it; `refused`: a worker refused its submission. */
export type RunChange = { run_id: string; status: string };

/**
 * One LISTEN connection per server for the runs' status changes. A dropped connection is
 * reconnected (after a second, then every 5 s); listeners get `{run_id: '*'}` on reconnecting,
 * as a change may have been missed meanwhile, and look again.
 */
export class RunWatch {
  private client: pg.Client | null = null;
  private closed = false;
  private retry: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<(c: RunChange) => void>();

  private constructor(private readonly store: PostgresStore) {}

  static async open(store: PostgresStore): Promise<RunWatch> {
    const w = new RunWatch(store);
    await w.connect();
    return w;
  }

  private async connect(): Promise<void> {
    const c = this.store.client();
    try {
      await c.connect();
      await c.query(`LISTEN "${runsChannel(this.store.schema)}"`);
    } catch (e) {
      await c.end().catch(() => {});
      throw this.store.wrap(e, 'listening for run status changes');
    }
    if (this.closed) {
      await c.end().catch(() => {});
      return;
    }
    c.on('notification', (n) => {
      const text = n.payload ?? '';
      const sp = text.indexOf(' ');
      if (sp > 0) this.emit({ status: text.slice(0, sp), run_id: text.slice(sp + 1) });
    });
    c.on('error', () => this.lost(c));
    c.on('end', () => this.lost(c));
    this.client = c;
  }

  private lost(c: pg.Client): void {
    if (this.client !== c || this.closed) return;
    this.client = null;
    const again = (delay: number): void => {
      this.retry = setTimeout(() => {
        this.retry = null;
        this.connect().then(
          () => this.emit({ run_id: '*', status: 'reconnected' }),
          () => again(5000),
        );
      }, delay);
      this.retry.unref();
    };
    again(1000);
  }

  private emit(c: RunChange): void {
    for (const l of this.listeners) l(c);
  }

  on(listener: (c: RunChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => {});
  }
}
