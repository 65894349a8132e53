/**
 * The shared store: runs, events, vault and idempotency keys in one PostgreSQL schema, for many
 * worker processes on many machines. Appends are compare-and-swap on (run, seq) and on the
 * previous hash, under the run row's lock (`SELECT … FOR UPDATE`), with `(run_no, seq)` the
 * events' primary key as a second guard: of two writers on one run exactly one appends each seq,
 * so the chain never forks. Writes made while a commit is in flight share the next transaction
 * (group commit, one round of a few array statements however many runs it carries); each
 * promise settles once its write is committed, so write-ahead holds as on SQLite.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  MAX_DOCUMENT_DEPTH,
  NanoVmError,
  parseJsonText,
  type JsonValue,
  type Program,
  type RunStatus,
  type TraceEvent,
} from '@nano-vm/kernel';
import { canonicalJson, hashJson } from '@nano-vm/kernel/verify';
import {
  invocationUpserts,
  nodeHasher,
  reinvocationUpsert,
  StoreError,
  type Invocation,
  type InvocationUpsert,
  type Lease,
  type NewRun,
  type RunRecord,
  type RunWrite,
  type Store,
  type VaultRow,
  type VaultValue,
} from '@nano-vm/runtime';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';

export interface PostgresStoreOptions {
  /** The schema holding the store's tables (default `nano_vm`, or `?schema=` in the URL). */
  schema?: string;
  /** Apply pending migrations when the store is first used (default false: E_STORE_SCHEMA until `nano-vm migrate`). */
  migrate?: boolean;
  /** Connections for reads, leases and erasures (default 4). */
  poolSize?: number;
  /**
   * Connections for group-committed writes (default 2): a run's writes always go to the same
   * one (they stay in order), and the connections commit their groups in parallel.
   */
  writers?: number;
  /** How long connecting may take before E_STORE_UNREACHABLE (default 5000 ms). */
  connectTimeoutMs?: number;
  /**
   * What `flushErased` runs on the vault table: `full` (default) rewrites it, so erased values are
   * in no table file any more; `plain` only removes dead row versions (their bytes stay in free
   * page space until overwritten), without the exclusive lock a rewrite takes.
   */
  vacuum?: 'full' | 'plain';
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** `postgres://…[?schema=name]` → the connection string pg gets and the schema. */
export function parsePostgresUrl(url: string, schemaOption?: string): { connectionString: string; schema: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new NanoVmError('E_STORE_SPEC', `store "${redactUrl(url)}" is not a postgres:// URL`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')
    throw new NanoVmError('E_STORE_SPEC', `store "${redactUrl(url)}" is not a postgres:// URL`);
  if (!u.hostname || u.pathname.length <= 1)
    throw new NanoVmError(
      'E_STORE_SPEC',
      `store "${redactUrl(url)}" must name a host and a database: postgres://[user@]host[:port]/database[?schema=name]`,
    );
  const schema = schemaOption ?? u.searchParams.get('schema') ?? 'nano_vm';
  u.searchParams.delete('schema');
  if (!SCHEMA_NAME.test(schema))
    throw new NanoVmError(
      'E_STORE_SPEC',
      `schema "${schema}" must be a lower-case SQL name (letters, digits, _; at most 63 characters)`,
    );
  return { connectionString: u.toString(), schema };
}

/** The URL without its password, for messages and listings. */
export function redactUrl(url: string): string {
  return url.replace(/^(\w+:\/\/[^:/@]*):[^@/]*@/, '$1:***@');
}

/** bigint columns (lease expiry, run_no) as numbers: they stay far below 2^53. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/**
 * The store's statements run again and again with new parameters: on its connections, prepared
 * statements and the statements inside `apply_group` use a generic plan, planned once per
 * connection, instead of a custom plan per call (PostgreSQL's `auto` kept re-planning the
 * group statement: about 0.3 ms of server CPU per commit). An `options` in the URL takes precedence.
 */
const CONNECTION_OPTIONS = '-c plan_cache_mode=force_generic_plan';

/** A JSON column, read as strictly as a bundle (E_STORE_CORRUPT for text that is not JSON). */
function storedJson(text: string, what: string): unknown {
  try {
    return parseJsonText(text, { maxDepth: MAX_DOCUMENT_DEPTH });
  } catch (e) {
    throw new StoreError('E_STORE_CORRUPT', `${what} in the store is not JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** Connection-level failures (the server is down, refuses, or the network is gone). */
function isUnreachable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return (
    typeof code === 'string' &&
    (['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'EAI_AGAIN', '57P01', '57P03'].includes(
      code,
    ) ||
      code.startsWith('08'))
  );
}

/** A connection for group commits, with the writes waiting for its next group. */
interface Lane {
  client: pg.Client | null;
  pending: Pending[];
  committing: Promise<void> | null;
}

type Pending =
  | { kind: 'create'; run: NewRun; vault: readonly VaultValue[]; resolve: () => void; reject: (e: Error) => void }
  | {
      /** An append, a status, or both (finish: an append of nothing); `create`: the run is created first (writeRun). */
      kind: 'write';
      runId: string;
      events: readonly TraceEvent[];
      status: RunStatus | 'running' | null;
      outcome: string | null;
      create: { run: NewRun; vault: readonly VaultValue[] } | null;
      resolve: () => void;
      reject: (e: Error) => void;
    };

interface RunRow {
  run_no: number;
  run_id: string;
  program_id: string;
  program_hash: string;
  policy: string;
  input: string;
  status: string;
  outcome: string | null;
  next_seq: number;
  head_hash: string;
}

interface VaultDbRow {
  run_id: string;
  path: string;
  subject: string | null;
  commitment: string;
  salt: string | null;
  value: string | null;
  erased: boolean;
}

export class PostgresStore implements Store {
  readonly schema: string;
  /** The quoted schema, for SQL text. */
  readonly s: string;
  readonly pool: pg.Pool;
  private readonly connectionString: string;
  private readonly opts: PostgresStoreOptions;
  private readonly lanes: Lane[];
  private readyPromise: Promise<void> | null = null;
  private closed = false;
  /** Group commit at work: transactions committed and the writes they carried (bench/postgres.mjs reports them). */
  readonly stats = { groups: 0, writes: 0, largest: 0, groupMs: 0 };
  /** The notification channel workers LISTEN on. */
  readonly channel: string;

  constructor(
    readonly url: string,
    opts: PostgresStoreOptions = {},
  ) {
    const { connectionString, schema } = parsePostgresUrl(url, opts.schema);
    this.connectionString = connectionString;
    this.schema = schema;
    this.s = `"${schema}"`;
    this.applyGroupSql = `SELECT ${this.s}.apply_group(${Array.from({ length: 36 }, (_, i) => `$${i + 1}`).join(', ')}) AS res`;
    this.channel = `nano_vm_${schema}`;
    this.opts = opts;
    this.lanes = Array.from({ length: Math.max(1, opts.writers ?? 2) }, () => ({
      client: null,
      pending: [],
      committing: null,
    }));
    this.pool = new pg.Pool({
      connectionString,
      max: opts.poolSize ?? 4,
      // pg-pool applies this to waiting for a free pooled connection too: a busy process waits
      // longer than a connection attempt may take (an unreachable server refuses at once or
      // times out in connect()).
      connectionTimeoutMillis: Math.max(30_000, opts.connectTimeoutMs ?? 5000),
      types: TYPES,
      options: CONNECTION_OPTIONS,
    });
    // An idle connection the server dropped must not crash the process; the next query reconnects.
    this.pool.on('error', () => {});
  }

  /** A new client on the store's database (the caller connects and ends it): LISTEN, migrations. */
  client(): pg.Client {
    const c = new pg.Client({
      connectionString: this.connectionString,
      connectionTimeoutMillis: this.opts.connectTimeoutMs ?? 5000,
      types: TYPES,
      options: CONNECTION_OPTIONS,
    });
    c.on('error', () => {});
    return c;
  }

  /** Maps a driver failure to a store error with a code (unreachable server, other SQL errors). */
  wrap(e: unknown, what: string): Error {
    if (e instanceof NanoVmError) return e;
    if (isUnreachable(e))
      return new StoreError(
        'E_STORE_UNREACHABLE',
        `${what}: PostgreSQL at ${redactUrl(this.url)} could not be reached (${(e as Error).message || (e as { code?: string }).code})`,
        { cause: e },
      );
    if (/timeout exceeded when trying to connect/.test(String((e as Error)?.message)))
      return new StoreError(
        'E_STORE_BUSY',
        `${what}: no connection to ${redactUrl(this.url)} became free in time (every pooled connection was busy, or connecting took too long)`,
        { cause: e },
      );
    // The events' primary key backs the compare-and-swap: a second row for one (run, seq) is a conflict.
    if ((e as { code?: unknown }).code === '23505' && /events_pkey/.test(String((e as Error).message)))
      return new StoreError('E_STORE_CONFLICT', `${what}: another writer stored this seq first`, { cause: e });
    return e as Error;
  }

  private closedError(): StoreError {
    return new StoreError('E_STORE_CLOSED', `store ${redactUrl(this.url)} is closed`);
  }

  /**
   * Connects and checks the schema now (migrating first when the store was opened with
   * `migrate`), instead of at the first call: E_STORE_UNREACHABLE or E_STORE_SCHEMA early.
   */
  async open(): Promise<this> {
    await this.ready();
    // The write connections too: the first write does not wait for a connection.
    try {
      await Promise.all(this.lanes.map((l) => this.writerClient(l)));
    } catch (e) {
      throw this.wrap(e, 'opening the store');
    }
    return this;
  }

  /** Checks the schema version once (migrating first when asked); every call awaits it. */
  private ready(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    return this.schemaReady();
  }

  /** The schema check alone: a group accepted before close() still commits after it. */
  private schemaReady(): Promise<void> {
    return (this.readyPromise ??= this.checkSchema().catch((e: unknown) => {
      this.readyPromise = null; // a server that was down may be up at the next call
      throw this.wrap(e, 'opening the store');
    }));
  }

  private async checkSchema(): Promise<void> {
    if (this.opts.migrate) await this.migrate();
    const v = await this.schemaVersion();
    if (v === SCHEMA_VERSION) return;
    if (v > SCHEMA_VERSION)
      throw new StoreError(
        'E_STORE_SCHEMA',
        `schema ${this.schema} in ${redactUrl(this.url)} has store schema ${v}, newer than this nano-vm's ${SCHEMA_VERSION}: upgrade nano-vm`,
      );
    throw new StoreError(
      'E_STORE_SCHEMA',
      v === 0
        ? `schema ${this.schema} in ${redactUrl(this.url)} has no nano-vm tables yet: run nano-vm migrate --store ${redactUrl(this.url)}`
        : `schema ${this.schema} in ${redactUrl(this.url)} is at store schema ${v}, this nano-vm needs ${SCHEMA_VERSION}: run nano-vm migrate --store ${redactUrl(this.url)}`,
    );
  }

  /** The applied schema version: 0 when the schema has no store tables. */
  async schemaVersion(): Promise<number> {
    const r = await this.pool.query<{ v: string | null }>(
      `SELECT CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE '' END AS v`,
      [`${this.s}.meta`],
    );
    if (r.rows[0]?.v === null) return 0;
    const m = await this.pool.query<{ value: string }>(`SELECT value FROM ${this.s}.meta WHERE key = 'schema_version'`);
    return m.rows[0] ? Number(m.rows[0].value) : 0;
  }

  /**
   * Applies the migrations the schema lacks, in one transaction under an advisory lock (two
   * processes migrating at once apply each step once). Returns the versions applied now.
   */
  async migrate(): Promise<{ from: number; to: number; applied: { version: number; name: string }[] }> {
    if (this.closed) throw this.closedError();
    const c = this.client();
    try {
      await c.connect();
    } catch (e) {
      throw this.wrap(e, 'migrating the store');
    }
    try {
      await c.query('BEGIN');
      await c.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`nano-vm migrate ${this.schema}`]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${this.s}`);
      const exists = (await c.query(`SELECT to_regclass($1) AS t`, [`${this.s}.meta`])).rows[0].t !== null;
      const from = exists
        ? Number((await c.query(`SELECT value FROM ${this.s}.meta WHERE key = 'schema_version'`)).rows[0]?.value ?? 0)
        : 0;
      if (from > SCHEMA_VERSION)
        throw new StoreError(
          'E_STORE_SCHEMA',
          `schema ${this.schema} has store schema ${from}, newer than this nano-vm's ${SCHEMA_VERSION}: upgrade nano-vm; nothing was changed`,
        );
      const applied: { version: number; name: string }[] = [];
      for (const m of MIGRATIONS) {
        if (m.version <= from) continue;
        await c.query(m.sql.replaceAll('$S', this.s));
        if (m.version === 1) {
          await c.query(
            `CREATE TABLE ${this.s}.migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
          );
          await c.query(`INSERT INTO ${this.s}.meta (key, value) VALUES ('subject_secret', $1)`, [
            randomBytes(32).toString('hex'),
          ]);
        }
        await c.query(`INSERT INTO ${this.s}.migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
        applied.push({ version: m.version, name: m.name });
      }
      await c.query(
        `INSERT INTO ${this.s}.meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [String(Math.max(from, SCHEMA_VERSION))],
      );
      await c.query('COMMIT');
      return { from, to: Math.max(from, SCHEMA_VERSION), applied };
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw this.wrap(e, 'migrating the store');
    } finally {
      await c.end().catch(() => {});
    }
  }

  // ---- writes: group commit on a few connections ----

  /**
   * Writes go to one of `writers` lanes by their run id, so one run's writes keep their order;
   * each lane commits its pending writes as one group at a time on its own connection, and the
   * lanes commit in parallel.
   */
  private lane(runId: string): Lane {
    let h = 0;
    for (let i = 0; i < runId.length; i++) h = (h * 31 + runId.charCodeAt(i)) | 0;
    return this.lanes[Math.abs(h) % this.lanes.length]!;
  }

  private enqueue(p: Pending): void {
    const lane = this.lane(p.kind === 'create' ? p.run.run_id : p.runId);
    lane.pending.push(p);
    lane.committing ??= this.commitLoop(lane);
  }

  /** Commits the lane's pending writes, group after group, until none is left. */
  private async commitLoop(lane: Lane): Promise<void> {
    // One turn of the event loop: writes issued together share the first group too.
    await new Promise((r) => setImmediate(r));
    while (lane.pending.length) {
      // A group names each run once (apply_group checks every write against the run's stored
      // head); a run's next write waits for the next group, keeping its order.
      const seen = new Set<string>();
      const batch: Pending[] = [];
      const later: Pending[] = [];
      for (const p of lane.pending) {
        const id = p.kind === 'create' ? p.run.run_id : p.runId;
        if (seen.has(id)) later.push(p);
        else {
          seen.add(id);
          batch.push(p);
        }
      }
      lane.pending = later;
      await this.commitGroup(lane, batch);
    }
    lane.committing = null;
  }

  private async writerClient(lane: Lane): Promise<pg.Client> {
    if (lane.client) return lane.client;
    const c = this.client();
    await c.connect();
    c.on('error', () => {
      if (lane.client === c) lane.client = null;
    });
    return (lane.client = c);
  }

  private async commitGroup(lane: Lane, batch: Pending[]): Promise<void> {
    let c: pg.Client | undefined;
    const failures = new Map<Pending, Error>();
    try {
      await this.schemaReady();
      c = await this.writerClient(lane);
      // One statement, its own transaction: committed (and durable) when it returns.
      const t0 = performance.now();
      await this.applyGroup(c, batch, failures);
      this.stats.groupMs += performance.now() - t0;
      this.stats.groups++;
      this.stats.writes += batch.length;
      if (batch.length > this.stats.largest) this.stats.largest = batch.length;
    } catch (e) {
      if (c && isUnreachable(e)) {
        lane.client = null;
        await c.end().catch(() => {});
      }
      // Another process stored one of these runs' next seq first (the events' key refused the
      // second row): the group is applied again one write at a time, so only the loser fails.
      if ((e as { code?: unknown }).code === '23505' && batch.length > 1) {
        for (const p of batch) await this.commitGroup(lane, [p]);
        return;
      }
      // A program this store took for stored is not there (a schema emptied behind its back):
      // forget them all and send the programs again, once.
      if ((e as { code?: unknown }).code === '23503' && this.storedPrograms.size) {
        this.storedPrograms.clear();
        return this.commitGroup(lane, batch);
      }
      const err = this.wrap(e, 'a write');
      for (const p of batch) p.reject(err);
      return;
    }
    for (const p of batch) {
      const f = failures.get(p);
      if (f) p.reject(f);
      else p.resolve();
    }
  }

  /** The group statement's text (built once: it was rebuilt on every call). */
  private readonly applyGroupSql: string;

  private programHashes = new WeakMap<Program, string>();
  /** Hashes of programs committed through this store (or found stored): creations of their runs send only the hash. */
  private readonly storedPrograms = new Set<string>();

  private programHash(program: Program): string {
    let h = this.programHashes.get(program);
    if (h === undefined) {
      h = hashJson(nodeHasher, program);
      this.programHashes.set(program, h);
    }
    return h;
  }

  /**
   * One group in one statement (the schema's `apply_group`, migrations.ts): run creations, then
   * appends and status writes in arrival order, each checked against its locked run row. A
   * refused write (conflict, unknown or duplicate run) fails alone and writes nothing; the
   * others commit together, in one round trip.
   */
  /**
   * The parameters of one `apply_group` call (null: nothing to write). Kept apart from the async
   * applyGroup, and in one synchronous function: V8's optimizing compiler spent about 0.36 s per
   * compilation on the async function that did both (measured with --trace-opt, recompiled after
   * each deopt), which on a worker of a few dozen runs a second was most of its CPU.
   */
  private groupParams(
    batch: Pending[],
    failures: Map<Pending, Error>,
  ): {
    creates: Pending[];
    writes: Extract<Pending, { kind: 'write' }>[];
    values: unknown[];
    hashes: string[];
  } | null {
    const programs = new Map<string, string>();
    const creates: Pending[] = [];
    const runs: NewRun[] = [];
    const writes: Extract<Pending, { kind: 'write' }>[] = [];
    const hashes: string[] = [];
    // Columns as arrays of arrays, not objects of arrays: cheaper for V8 to optimize.
    const V: unknown[][] = Array.from({ length: 6 }, () => []); // run, path, subject, commitment, salt, value
    const E: unknown[][] = Array.from({ length: 5 }, () => []); // op, seq, type, hash, body
    const K: unknown[][] = Array.from({ length: 7 }, () => []); // op, key, step, tool, attempt, n, first_seq
    for (const p of batch) {
      if (p.kind === 'write') {
        // What does not depend on the stored run is checked here: the batch is consecutive and
        // chained, and starts the run when it creates it (so a creation never commits without its events).
        const first = p.events[0];
        const refused = p.create
          ? casRefusal(p.runId, p.events, 0, '')
          : casRefusal(p.runId, p.events, first?.seq ?? 0, first?.prev_hash ?? '');
        if (refused) {
          failures.set(p, refused);
          continue;
        }
        if (!p.events.length && p.status === null && !p.create) continue;
      }
      const c = p.kind === 'create' ? p : p.create;
      if (c) {
        const h = this.programHash(c.run.program);
        // A program this store has seen committed is not sent again (programs are never deleted).
        if (!programs.has(h) && !this.storedPrograms.has(h)) programs.set(h, canonicalJson(c.run.program));
        creates.push(p);
        runs.push(c.run);
        hashes.push(h);
        for (const v of c.vault) {
          V[0]!.push(c.run.run_id);
          V[1]!.push(v.path);
          V[2]!.push(v.subject);
          V[3]!.push(v.commitment);
          V[4]!.push(v.salt);
          V[5]!.push(JSON.stringify(v.value));
        }
      }
      if (p.kind === 'create') continue;
      writes.push(p);
      const op = writes.length;
      {
        for (const e of p.events) {
          E[0]!.push(op);
          E[1]!.push(e.seq);
          E[2]!.push(e.type);
          E[3]!.push(e.hash);
          E[4]!.push(JSON.stringify(e));
        }
        for (const u of invocationUpserts(p.events)) {
          K[0]!.push(op);
          K[1]!.push(u.key);
          K[2]!.push(u.step);
          K[3]!.push(u.tool);
          K[4]!.push(u.attempt);
          K[5]!.push(u.enter);
          K[6]!.push(u.first_seq);
        }
      }
    }
    if (!creates.length && !writes.length) return null;
    // Sorted: two lanes inserting the same new programs take their index locks in one order.
    const progs = [...programs].sort((x, y) => (x[0] < y[0] ? -1 : 1));
    // Each column in one loop over the rows (two dozen .map calls made this function slow to optimize).
    const P: [string[], string[]] = [[], []];
    for (const [h, text] of progs) {
      P[0].push(h);
      P[1].push(text);
    }
    return {
      creates,
      writes,
      hashes,
      // Event bodies as one JSON array (apply_group's e_body json): their texts joined, no escaping.
      values: [
        ...P,
        ...createColumns(runs, hashes),
        ...V,
        ...writeColumns(writes),
        E[0],
        E[1],
        E[2],
        E[3],
        `[${(E[4] as string[]).join(',')}]`,
        ...K,
      ],
    };
  }

  private async applyGroup(c: pg.Client, batch: Pending[], failures: Map<Pending, Error>): Promise<void> {
    const g = this.groupParams(batch, failures);
    if (!g) return;
    const { creates, writes } = g;
    const r = await c.query<{ res: (string | null)[] }>({
      // Prepared once per write connection (which serves this store's schema only).
      name: 'nano_vm_apply_group',
      text: this.applyGroupSql,
      values: g.values,
    });
    const res = r.rows[0]!.res;
    for (const h of g.hashes) this.storedPrograms.add(h);
    // A write that also created its run fails with its creation's reason first (it wrote nothing).
    [...creates, ...writes].forEach((p, i) => {
      const why = res[i];
      if (why === null || why === undefined || failures.has(p)) return;
      if (why === 'duplicate')
        failures.set(
          p,
          new StoreError('E_STORE_DUPLICATE_RUN', `run ${p.kind === 'create' ? p.run.run_id : p.runId} already exists`),
        );
      else if (why === 'no run' && p.kind === 'write')
        failures.set(p, new StoreError('E_STORE_NO_RUN', `no run ${p.runId}`));
      else if (p.kind === 'write') {
        const [, next, head] = why.split(' ');
        failures.set(
          p,
          casRefusal(p.runId, p.events, Number(next), head ?? '') ?? new StoreError('E_STORE_CONFLICT', why),
        );
      }
    });
  }

  private write(p: Pending): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
      this.enqueue(p);
    });
  }

  async createRun(run: NewRun, vault: readonly VaultValue[] = []): Promise<void> {
    if (this.closed) throw this.closedError();
    return this.write({ kind: 'create', run, vault, resolve: noop, reject: noop });
  }

  async append(runId: string, events: readonly TraceEvent[]): Promise<void> {
    return this.writeRun(runId, { events });
  }

  async finish(runId: string, status: RunStatus | 'running', outcome: string | null): Promise<void> {
    return this.writeRun(runId, { events: [], finish: { status, outcome } });
  }

  /** createRun, append and finish of one run in one `apply_group` entry: one statement, all or nothing. */
  async writeRun(runId: string, w: RunWrite): Promise<void> {
    if (this.closed) throw this.closedError();
    if (w.create && w.create.run.run_id !== runId)
      throw new StoreError('E_STORE_CONFLICT', `writeRun of ${runId} creates another run (${w.create.run.run_id})`);
    return this.write({
      kind: 'write',
      runId,
      events: w.events,
      status: w.finish?.status ?? null,
      outcome: w.finish?.outcome ?? null,
      create: w.create ? { run: w.create.run, vault: w.create.vault ?? [] } : null,
      resolve: noop,
      reject: noop,
    });
  }

  // ---- reads ----

  /** Runs `sql` on the pool once the schema is checked; driver failures become coded store errors. */
  async query<R extends pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
    what = 'a query',
    /** A name for a statement run often: prepared once per connection (its text must never differ). */
    prepared?: string,
  ): Promise<pg.QueryResult<R>> {
    await this.ready();
    try {
      return await this.pool.query<R>(
        prepared ? { name: prepared, text: sql, values: params } : { text: sql, values: params },
      );
    } catch (e) {
      throw this.wrap(e, what);
    }
  }

  private readonly programsByHash = new Map<string, Program>();

  /** Run rows with their head: the seq and hash of each run's last event. */
  private get runsWithHead(): string {
    return `SELECT r.*, coalesce(l.seq + 1, 0) AS next_seq, coalesce(l.hash, '') AS head_hash FROM ${this.s}.runs r
      LEFT JOIN LATERAL (SELECT e.seq, e.hash FROM ${this.s}.events e WHERE e.run_no = r.run_no ORDER BY e.seq DESC LIMIT 1) l ON true`;
  }

  private async toRecords(rows: RunRow[]): Promise<RunRecord[]> {
    const missing = [...new Set(rows.map((r) => r.program_hash))].filter((h) => !this.programsByHash.has(h));
    if (missing.length) {
      const ps = await this.query<{ hash: string; program: string }>(
        `SELECT hash, program FROM ${this.s}.programs WHERE hash = ANY($1::text[])`,
        [missing],
      );
      for (const p of ps.rows) this.programsByHash.set(p.hash, storedJson(p.program, `program ${p.hash}`) as Program);
    }
    return rows.map((r) => {
      const p = this.programsByHash.get(r.program_hash);
      if (!p)
        throw new StoreError(
          'E_STORE_CORRUPT',
          `run ${r.run_id} names program ${r.program_hash}, which is not in the store`,
        );
      return {
        run_id: r.run_id,
        program_id: r.program_id,
        // Each record gets its own copy: callers may not change the store's cached program.
        program: structuredClone(p),
        policy: storedJson(r.policy, `run ${r.run_id}: policy`),
        input: storedJson(r.input, `run ${r.run_id}: input`),
        status: r.status as RunRecord['status'],
        outcome: r.outcome,
        head_hash: r.head_hash,
        event_count: r.next_seq,
      };
    });
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    if (this.closed) throw this.closedError();
    const r = await this.query<RunRow>(`${this.runsWithHead} WHERE r.run_id = $1`, [runId]);
    return r.rows.length ? (await this.toRecords(r.rows))[0] : undefined;
  }

  async events(runId: string): Promise<TraceEvent[]> {
    if (this.closed) throw this.closedError();
    const r = await this.query<{ body: string }>(
      `SELECT e.body FROM ${this.s}.events e JOIN ${this.s}.runs r USING (run_no) WHERE r.run_id = $1 ORDER BY e.seq`,
      [runId],
    );
    return r.rows.map((x, i) => storedJson(x.body, `run ${runId}: stored event ${i + 1}`) as TraceEvent);
  }

  async listRuns(filter: { status?: RunStatus | 'running' } = {}): Promise<RunRecord[]> {
    if (this.closed) throw this.closedError();
    const r =
      filter.status === undefined
        ? await this.query<RunRow>(`${this.runsWithHead} ORDER BY r.run_no`)
        : await this.query<RunRow>(`${this.runsWithHead} WHERE r.status = $1 ORDER BY r.run_no`, [filter.status]);
    return this.toRecords(r.rows);
  }

  private secret: string | undefined;

  async subjectSecret(): Promise<string> {
    if (this.closed) throw this.closedError();
    if (this.secret !== undefined) return this.secret;
    const r = await this.query<{ value: string }>(`SELECT value FROM ${this.s}.meta WHERE key = 'subject_secret'`);
    if (!r.rows[0]) throw new StoreError('E_STORE_CORRUPT', `schema ${this.schema} has no subject secret`);
    return (this.secret = r.rows[0].value);
  }

  async vault(runId: string): Promise<VaultRow[]> {
    if (this.closed) throw this.closedError();
    const r = await this.query<VaultDbRow>(
      `SELECT r.run_id, v.path, v.subject, v.commitment, v.salt, v.value, v.erased
       FROM ${this.s}.vault v JOIN ${this.s}.runs r USING (run_no) WHERE r.run_id = $1 ORDER BY v.path COLLATE "C"`,
      [runId],
    );
    return r.rows.map(toVaultRow);
  }

  async vaultBySubject(subject: string): Promise<VaultRow[]> {
    if (this.closed) throw this.closedError();
    const r = await this.query<VaultDbRow>(
      `SELECT r.run_id, v.path, v.subject, v.commitment, v.salt, v.value, v.erased
       FROM ${this.s}.vault v JOIN ${this.s}.runs r USING (run_no) WHERE v.subject = $1 ORDER BY v.run_no, v.path COLLATE "C"`,
      [subject],
    );
    return r.rows.map(toVaultRow);
  }

  /** In its own transaction: the run row locked, the event checked and appended, the values deleted. */
  async eraseValues(runId: string, subject: string, event: TraceEvent): Promise<number> {
    if (this.closed) throw this.closedError();
    return this.transaction('an erasure', async (c) => {
      const r = await c.query<{ run_no: number }>(`SELECT run_no FROM ${this.s}.runs WHERE run_id = $1 FOR UPDATE`, [
        runId,
      ]);
      if (!r.rows[0]) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
      const last = await c.query<{ seq: number; hash: string }>(
        `SELECT seq, hash FROM ${this.s}.events WHERE run_no = $1 ORDER BY seq DESC LIMIT 1`,
        [r.rows[0].run_no],
      );
      const h = {
        run_no: r.rows[0].run_no,
        next_seq: last.rows[0] ? last.rows[0].seq + 1 : 0,
        head_hash: last.rows[0]?.hash ?? '',
      };
      const refused = casRefusal(runId, [event], h.next_seq, h.head_hash);
      if (refused) throw refused;
      await c.query(`INSERT INTO ${this.s}.events (run_no, seq, type, hash, body) VALUES ($1, $2, $3, $4, $5)`, [
        h.run_no,
        event.seq,
        event.type,
        event.hash,
        JSON.stringify(event),
      ]);
      const erased = await c.query(
        `UPDATE ${this.s}.vault SET salt = NULL, value = NULL, erased = true WHERE run_no = $1 AND subject = $2 AND NOT erased`,
        [h.run_no, subject],
      );
      // The erasure's transaction id: a snapshot older than it may still see the values (flushErased).
      const x = await c.query<{ x: string }>(`SELECT txid_current()::text AS x`);
      if (this.erasedBy === null || BigInt(x.rows[0]!.x) > BigInt(this.erasedBy)) this.erasedBy = x.rows[0]!.x;
      return erased.rowCount ?? 0;
    });
  }

  /**
   * Removes the old row versions that still hold erased values: `VACUUM FULL` of the vault table
   * (the default) rewrites it into a new file, so the bytes are in no table file; `plain` VACUUM
   * frees them without the rewrite's exclusive lock. PostgreSQL's WAL and any base backup keep
   * them until they are recycled (docs/stores.md). False when the vacuum could not run now, or
   * when a snapshot older than the last erasure was held (the vacuum then keeps the old row
   * versions): call it again once that transaction has ended.
   */
  async flushErased(): Promise<boolean> {
    if (this.closed) throw this.closedError();
    await this.ready();
    try {
      // A snapshot taken before the last erasure committed (another session's open transaction
      // or statement, a replication slot) may still see the old row versions, so the vacuum keeps
      // them: looked for before the vacuum, which computes the same horizon when it starts.
      const held = this.erasedBy === null ? false : await this.olderSnapshotHeld(this.erasedBy);
      await this.pool.query(`VACUUM ${this.opts.vacuum === 'plain' ? '' : 'FULL '}${this.s}.vault`);
      if (!held) this.erasedBy = null;
      return !held;
    } catch (e) {
      if (isUnreachable(e)) throw this.wrap(e, 'vacuuming erased values');
      return false;
    }
  }

  /** The highest transaction id (txid_current) of an erasure through this store, or null. */
  private erasedBy: string | null = null;

  /** Whether any session of this database or a replication slot holds a snapshot from before transaction `txid`. */
  private async olderSnapshotHeld(txid: string): Promise<boolean> {
    const r = await this.pool.query<{ n: number }>(
      `WITH e AS (SELECT age((($1::bigint) % 4294967296)::text::xid) AS erase_age)
       SELECT ((SELECT count(*) FROM pg_stat_activity, e
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND backend_xmin IS NOT NULL AND age(backend_xmin) >= e.erase_age)
             + (SELECT count(*) FROM pg_replication_slots, e
                WHERE (xmin IS NOT NULL AND age(xmin) >= e.erase_age)
                   OR (catalog_xmin IS NOT NULL AND age(catalog_xmin) >= e.erase_age)))::int AS n`,
      [txid],
    );
    return (r.rows[0]?.n ?? 0) > 0;
  }

  async invocations(runId: string): Promise<Invocation[]> {
    if (this.closed) throw this.closedError();
    const r = await this.query<Invocation>(
      `SELECT k.key, r.run_id, k.step, k.tool, k.attempt, k.invocations FROM ${this.s}.idempotency_keys k
       JOIN ${this.s}.runs r USING (run_no) WHERE r.run_id = $1 ORDER BY k.first_seq, k.key`,
      [runId],
    );
    return r.rows.map((x) => ({ ...x }));
  }

  /** One statement, committed on its own: the count is durable before the tool is called again. */
  async reinvoked(runId: string, call: Omit<Invocation, 'run_id' | 'invocations'>): Promise<number> {
    if (this.closed) throw this.closedError();
    const u = reinvocationUpsert(call);
    const r = await this.query<{ invocations: number }>(
      `INSERT INTO ${this.s}.idempotency_keys AS k (run_no, key, step, tool, attempt, invocations, first_seq)
       SELECT run_no, $2, $3, $4, $5, $6, $7 FROM ${this.s}.runs WHERE run_id = $1
       ON CONFLICT (run_no, key) DO UPDATE SET invocations = k.invocations + $8, attempt = excluded.attempt
       RETURNING invocations`,
      [runId, u.key, u.step, u.tool, u.attempt, u.enter, u.first_seq, u.add],
    );
    if (!r.rows[0]) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
    return r.rows[0].invocations;
  }

  // ---- leases ----

  /**
   * One statement: the run row is locked for the update, so of two processes acquiring at once
   * one changes it and the other, waiting for the lock, then sees the new holder.
   */
  async acquireLease(runId: string, lease: Lease, now: number, replacing?: string): Promise<Lease> {
    if (this.closed) throw this.closedError();
    const r = await this.query<{ lease_owner: string | null; lease_expires_at: number | null }>(
      // The locking read waits for a concurrent taker and then sees its lease (not the snapshot's).
      `WITH cur AS (SELECT run_no, lease_owner, lease_expires_at FROM ${this.s}.runs WHERE run_id = $1 FOR UPDATE),
       taken AS (
         UPDATE ${this.s}.runs r SET lease_owner = $2, lease_expires_at = $3 FROM cur
         WHERE r.run_no = cur.run_no
           AND (cur.lease_owner IS NULL OR cur.lease_expires_at <= $4 OR cur.lease_owner = $2 OR cur.lease_owner = $5)
         RETURNING r.lease_owner, r.lease_expires_at)
       SELECT lease_owner, lease_expires_at FROM taken
       UNION ALL SELECT lease_owner, lease_expires_at FROM cur WHERE NOT EXISTS (SELECT 1 FROM taken)`,
      [runId, lease.owner, lease.expires_at, now, replacing ?? null],
      `taking the lease of run ${runId}`,
    );
    const row = r.rows[0];
    if (!row) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
    return { owner: row.lease_owner ?? '', expires_at: row.lease_expires_at ?? 0 };
  }

  async renewLease(runId: string, lease: Lease): Promise<boolean> {
    if (this.closed) throw this.closedError();
    const r = await this.query(
      `UPDATE ${this.s}.runs SET lease_expires_at = $3 WHERE run_id = $1 AND lease_owner = $2`,
      [runId, lease.owner, lease.expires_at],
      `renewing the lease of run ${runId}`,
    );
    return r.rowCount === 1;
  }

  /** A run released while still running (its drive stopped on an error) is work: workers are told. */
  async releaseLease(runId: string, owner: string): Promise<void> {
    if (this.closed) throw this.closedError();
    await this.query(
      `WITH released AS (
         UPDATE ${this.s}.runs SET lease_owner = NULL, lease_expires_at = NULL
         WHERE run_id = $1 AND lease_owner = $2 RETURNING status)
       SELECT pg_notify($3, 'released') FROM released WHERE status = 'running'`,
      [runId, owner, this.channel],
      `releasing the lease of run ${runId}`,
    );
  }

  /** `use` inside one transaction on a pooled connection (rolled back if it throws). */
  async transaction<T>(what: string, use: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    await this.ready();
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (e) {
      throw this.wrap(e, what);
    }
    try {
      await c.query('BEGIN');
      const out = await use(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw this.wrap(e, what);
    } finally {
      c.release();
    }
  }

  /** Commits the writes already accepted, then closes every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const lane of this.lanes) while (lane.committing) await lane.committing;
    const clients = this.lanes.map((l) => l.client);
    for (const l of this.lanes) l.client = null;
    await Promise.all([...clients.map((c) => c?.end().catch(() => {})), this.pool.end().catch(() => {})]);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

const noop = (): void => {};

/** The run columns of apply_group's creations (c_run_id … c_lease_expires), one loop. */
function createColumns(runs: readonly NewRun[], hashes: readonly string[]): unknown[][] {
  const cols: unknown[][] = Array.from({ length: 9 }, () => []);
  for (let i = 0; i < runs.length; i++) {
    const x = runs[i]!;
    cols[0]!.push(x.run_id);
    cols[1]!.push(x.program_id);
    cols[2]!.push(hashes[i]);
    cols[3]!.push(JSON.stringify(x.policy ?? null));
    cols[4]!.push(JSON.stringify(x.input ?? null));
    cols[5]!.push(x.status);
    cols[6]!.push(x.outcome);
    cols[7]!.push(x.lease?.owner ?? null);
    cols[8]!.push(x.lease?.expires_at ?? null);
  }
  return cols;
}

/** The columns of apply_group's appends and status writes (w_run_id … w_outcome), one loop. */
function writeColumns(writes: readonly Extract<Pending, { kind: 'write' }>[]): unknown[][] {
  const cols: unknown[][] = Array.from({ length: 7 }, () => []);
  for (const p of writes) {
    const events = p.events;
    cols[0]!.push(p.runId);
    cols[1]!.push(events[0]?.seq ?? 0);
    cols[2]!.push(events.length);
    cols[3]!.push(events[0]?.prev_hash ?? '');
    cols[4]!.push(events.length ? events[events.length - 1]!.hash : '');
    cols[5]!.push(p.status);
    cols[6]!.push(p.outcome);
  }
  return cols;
}

/**
 * Why an append of `events` onto a run whose next seq is `next` and head `head` is refused, or
 * null: the batch must start at the next seq, be consecutive, and chain from the stored head.
 */
function casRefusal(runId: string, events: readonly TraceEvent[], next: number, head: string): StoreError | null {
  if (!events.length) return null;
  const first = events[0]!.seq;
  for (let i = 1; i < events.length; i++)
    if (events[i]!.seq !== first + i || events[i]!.prev_hash !== events[i - 1]!.hash)
      return new StoreError(
        'E_STORE_CONFLICT',
        `append to run ${runId}: seq ${events[i]!.seq} does not follow seq ${first + i - 1} in one batch`,
      );
  if (first !== next)
    return new StoreError(
      'E_STORE_CONFLICT',
      `append of seq ${first} to run ${runId} conflicts: the next seq is ${next}`,
    );
  if (first > 0 && events[0]!.prev_hash !== head)
    return new StoreError(
      'E_STORE_CONFLICT',
      `append of seq ${first} to run ${runId} conflicts: it chains from ${events[0]!.prev_hash.slice(0, 12)}…, the stored head is ${head.slice(0, 12)}…`,
    );
  return null;
}

function toVaultRow(r: VaultDbRow): VaultRow {
  return {
    run_id: r.run_id,
    path: r.path,
    subject: r.subject,
    commitment: r.commitment,
    salt: r.salt,
    value: r.value === null ? null : (storedJson(r.value, `vault value of ${r.path}`) as JsonValue),
    erased: r.erased,
  };
}
