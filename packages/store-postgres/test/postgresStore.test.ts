import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { TraceChain, type TraceEvent } from '@nano-vm/kernel';
import { eraseSubject, nodeHasher, parseModelScript, runProgram, ScriptedModel, ToolRegistry } from '@nano-vm/runtime';
import { PostgresStore, SCHEMA_VERSION, submitRun } from '../src/index.js';
import { PG_URL, schemas, unreachable, urlFor } from './pgTestServer.js';

const db = schemas('pgs');
afterAll(() => db.dropAll());

const fresh = () => new PostgresStore(urlFor(db.next()), { migrate: true }).open();
const admin = async <T>(use: (c: pg.Client) => Promise<T>): Promise<T> => {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    return await use(c);
  } finally {
    await c.end();
  }
};
const runRec = (run_id: string) => ({
  run_id,
  program_id: 'p',
  program: {
    format: 'nano-vm.program/v1' as const,
    id: 'p',
    input_schema: {},
    steps: [{ id: 'done', kind: 'end' as const, outcome: 'OK' }],
  },
  policy: null,
  input: {},
  status: 'running' as const,
  outcome: null,
});
const genesis = (runId: string): TraceChain => {
  const c = new TraceChain(nodeHasher);
  c.append(
    {
      type: 'run_started',
      run_id: runId,
      program_id: 'p',
      program_hash: 'a'.repeat(64),
      policy_hash: 'b'.repeat(64),
      input_hash: 'c'.repeat(64),
      runtime_version: 't',
      model: { id: 'm', scripted: true },
    } as never,
    '2026-01-01T00:00:00.000Z',
  );
  return c;
};

/** A program whose input holds a sensitive value of a data subject (vault and erasure). */
const sensitiveProgram = {
  format: 'nano-vm.program/v1' as const,
  id: 'kyc',
  sensitive: ['input.email'],
  subject: 'input.email',
  input_schema: { type: 'object', required: ['email'], properties: { email: { type: 'string' } } },
  steps: [{ id: 'done', kind: 'end' as const, outcome: 'OK' }],
};

describe('PostgreSQL store without a server', () => {
  it('E_STORE_UNREACHABLE, quickly, when nothing listens', async () => {
    const s = new PostgresStore('postgres://postgres@127.0.0.1:1/test', { connectTimeoutMs: 1000 });
    await expect(s.getRun('r')).rejects.toMatchObject({ code: 'E_STORE_UNREACHABLE' });
    await expect(s.createRun(runRec('r'))).rejects.toMatchObject({ code: 'E_STORE_UNREACHABLE' });
    await s.close();
  });

  it('refuses a URL that is not postgres:// or a schema name that is not a plain SQL name', () => {
    expect(() => new PostgresStore('mysql://x/y')).toThrow(expect.objectContaining({ code: 'E_STORE_SPEC' }));
    expect(() => new PostgresStore('postgres://x')).toThrow(expect.objectContaining({ code: 'E_STORE_SPEC' }));
    expect(() => new PostgresStore('postgres://h/db?schema=a";drop table x;--')).toThrow(
      expect.objectContaining({ code: 'E_STORE_SPEC' }),
    );
  });
});

describe.skipIf(unreachable !== null)('PostgreSQL store specifics', () => {
  it('migrations: a new schema is refused until migrated; migrate applies each version once, even twice at once; a newer schema is refused and left alone', async () => {
    const schema = db.next();
    const s = new PostgresStore(urlFor(schema));
    await expect(s.getRun('x')).rejects.toMatchObject({
      code: 'E_STORE_SCHEMA',
      message: expect.stringContaining('nano-vm migrate'),
    });
    const [a, b] = await Promise.all([
      new PostgresStore(urlFor(schema)).migrate(),
      new PostgresStore(urlFor(schema)).migrate(),
    ]);
    expect([a.applied.length, b.applied.length].sort()).toEqual([0, SCHEMA_VERSION]);
    expect(await s.getRun('x')).toBeUndefined();
    await admin((c) => c.query(`UPDATE "${schema}".meta SET value = '99' WHERE key = 'schema_version'`));
    const newer = new PostgresStore(urlFor(schema));
    await expect(newer.getRun('x')).rejects.toMatchObject({
      code: 'E_STORE_SCHEMA',
      message: expect.stringContaining('newer'),
    });
    await expect(newer.migrate()).rejects.toMatchObject({ code: 'E_STORE_SCHEMA' });
    await newer.close();
    await s.close();
  });

  it('an append that does not chain from the stored head is refused though its seq is right: the chain never forks', async () => {
    const s = await fresh();
    await s.createRun(runRec('r1'));
    const c = genesis('r1');
    c.append({ type: 'step_retry', step: 's', attempt: 2, max_attempts: 3 } as never, '2026-01-01T00:00:00.001Z');
    await s.append('r1', [c.events[0]!]);
    // Seq 1, chained from another head (a writer that saw another history of the run).
    await expect(s.append('r1', [{ ...c.events[1]!, prev_hash: 'f'.repeat(64) } as TraceEvent])).rejects.toMatchObject({
      code: 'E_STORE_CONFLICT',
      message: expect.stringContaining('chains from'),
    });
    await s.append('r1', [c.events[1]!]);
    expect((await s.events('r1')).map((e) => e.hash)).toEqual(c.events.map((e) => e.hash));
    await s.close();
  });

  it('event bodies travel as one JSON array: hostile strings round-trip byte for byte, in one group with others', async () => {
    const s = await fresh();
    const nasty = ['\u0000', '\udc00 lone', '"quoted" \\ back\\slash', 'é 😀 \u2028', '{"not": "json"]', ',', '[]'];
    const chains = nasty.map((text, i) => {
      const c = genesis(`h${i}`);
      c.append({ type: 'step_retry', step: text, attempt: 2, max_attempts: 3 } as never, '2026-01-01T00:00:00.001Z');
      return c;
    });
    // Issued together: one group carries them all (creation, events and status per run).
    await Promise.all(
      chains.map((c, i) =>
        s.writeRun(`h${i}`, {
          create: { run: runRec(`h${i}`) },
          events: c.events,
          finish: { status: 'completed', outcome: 'OK' },
        }),
      ),
    );
    for (const [i, c] of chains.entries()) {
      expect(await s.events(`h${i}`)).toEqual(c.events);
      const stored = await s.query<{ body: string }>(
        `SELECT e.body FROM ${s.s}.events e JOIN ${s.s}.runs r USING (run_no) WHERE r.run_id = $1 ORDER BY seq`,
        [`h${i}`],
      );
      expect(stored.rows.map((r) => r.body)).toEqual(c.events.map((e) => JSON.stringify(e)));
    }
    expect(s.stats.groups).toBeLessThan(nasty.length);
    await s.close();
  });

  it('many writers on one run through separate connections: each seq is stored once', async () => {
    const a = await fresh();
    const handles = [a, ...(await Promise.all([1, 2, 3].map(() => new PostgresStore(a.url).open())))];
    await a.createRun(runRec('r1'));
    const c = genesis('r1');
    for (let i = 1; i < 20; i++)
      c.append(
        { type: 'step_retry', step: 's', attempt: i + 1, max_attempts: 99 } as never,
        '2026-01-01T00:00:00.001Z',
      );
    await a.append('r1', [c.events[0]!]);
    // Every handle tries every next event; exactly one append per seq wins.
    for (let i = 1; i < 20; i++) {
      const r = await Promise.allSettled(handles.map((h) => h.append('r1', [c.events[i]!])));
      expect(r.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
      expect(r.filter((x) => x.status === 'rejected').map((x) => (x as PromiseRejectedResult).reason.code)).toEqual(
        Array(3).fill('E_STORE_CONFLICT'),
      );
    }
    expect(await a.events('r1')).toEqual(c.events);
    for (const h of handles) await h.close();
  });

  it('erasure deletes the values: after flushErased no version of the row in the vault table file holds them', async () => {
    const s = await fresh();
    const secret = `ana-${Math.random().toString(36).slice(2)}@example.com`;
    const r = await runProgram({
      program: sensitiveProgram,
      input: { email: secret },
      model: new ScriptedModel(parseModelScript('answers: {}')),
      tools: new ToolRegistry(),
      store: s,
    });
    expect((await s.vault(r.run_id)).map((v) => v.value)).toEqual([secret]);
    expect(JSON.stringify(await s.events(r.run_id))).not.toContain(secret);
    // The vault table's file, read as PostgreSQL wrote it (this test runs beside the server, as root or postgres).
    const fileBytes = () =>
      admin(async (c) => {
        await c.query('CHECKPOINT');
        const dir = (await c.query(`SHOW data_directory`)).rows[0].data_directory as string;
        const rel = (await c.query(`SELECT pg_relation_filepath($1) AS p`, [`"${s.schema}".vault`])).rows[0]
          .p as string;
        try {
          return readFileSync(join(dir, rel));
        } catch {
          return null; // not on this machine, or not readable: the row-level checks still hold
        }
      });
    const before = await fileBytes();
    if (before) expect(before.includes(Buffer.from(secret))).toBe(true);
    const report = await eraseSubject({ store: s, subject: secret, hasher: nodeHasher });
    expect(report.erased).toMatchObject([{ run_id: r.run_id, paths: ['input.email'] }]);
    // Another test's transaction may hold a snapshot from before the erasure (tests run side by
    // side on this server): then the flush says so, and succeeds once that snapshot is gone.
    for (let i = 0; report.file_pending && !(await s.flushErased()); i++) {
      if (i > 100) throw new Error('an older snapshot held the erased values for 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await s.vault(r.run_id)).toMatchObject([{ value: null, salt: null, erased: true }]);
    // The value is gone from the table, not hidden: no column of any live row holds it.
    const rows = await admin((c) => c.query(`SELECT * FROM "${s.schema}".vault`));
    expect(JSON.stringify(rows.rows)).not.toContain(secret);
    const after = await fileBytes();
    if (after) expect(after.includes(Buffer.from(secret))).toBe(false);
    else console.warn('the vault table file is not readable here: its bytes were not checked');
    await s.close();
  });

  it('flushErased says false while a snapshot from before the erasure is open (the vacuum keeps those row versions), true after', async () => {
    const s = await fresh();
    const secret = `bo-${Math.random().toString(36).slice(2)}@example.com`;
    const model = new ScriptedModel(parseModelScript('answers: {}'));
    await runProgram({
      program: sensitiveProgram,
      input: { email: secret },
      model,
      tools: new ToolRegistry(),
      store: s,
    });
    // Another session opens a snapshot before the erasure, and keeps it.
    const other = new pg.Client({ connectionString: PG_URL });
    await other.connect();
    try {
      await other.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await other.query('SELECT 1');
      const report = await eraseSubject({ store: s, subject: secret, hasher: nodeHasher });
      expect(report.erased).toHaveLength(1);
      expect(report.file_pending).toBe(true);
      expect(await s.flushErased()).toBe(false);
      await other.query('COMMIT');
    } finally {
      await other.end();
    }
    for (let i = 0; !(await s.flushErased()); i++) {
      if (i > 100) throw new Error('an older snapshot held the erased values for 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const rows = await admin((c) => c.query(`SELECT * FROM "${s.schema}".vault`));
    expect(JSON.stringify(rows.rows)).not.toContain(secret);
    await s.close();
  });

  it('submitRun enqueues a run that a worker would take; a run id already used is refused', async () => {
    const s = await fresh();
    const { run_id } = await submitRun(s, { program: runRec('x').program, input: {}, runId: 'sub-1' });
    expect(run_id).toBe('sub-1');
    await expect(submitRun(s, { program: runRec('x').program, input: {}, runId: 'sub-1' })).rejects.toMatchObject({
      code: 'E_STORE_DUPLICATE_RUN',
    });
    // Creating the run consumes its submission, in the same transaction.
    await s.createRun({ ...runRec('sub-1') });
    const q = await s.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${s.s}.queue`);
    expect(q.rows[0]!.n).toBe(0);
    await s.close();
  });
});
