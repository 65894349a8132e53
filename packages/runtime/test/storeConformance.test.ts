import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TraceChain } from '@nano-vm/kernel';
import { MemoryStore, SqliteStore, nodeHasher, type Store } from '../src/internal.js';
import { storeConformance } from './storeConformance.js';

storeConformance('memory', { make: () => new MemoryStore() });

const dir = mkdtempSync(join(tmpdir(), 'nano-vm-sqlite-'));
let n = 0;
storeConformance('sqlite (WAL, file)', {
  make: () => new SqliteStore(join(dir, `store-${n++}.db`)),
  reopen: (s: Store) => new SqliteStore((s as SqliteStore).path),
});

storeConformance('sqlite (WAL, file, group commit)', {
  make: () => new SqliteStore(join(dir, `store-${n++}.db`), { groupCommit: true }),
  reopen: (s: Store) => new SqliteStore((s as SqliteStore).path, { groupCommit: true }),
});

import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';

describe('SqliteStore specifics', () => {
  it('refuses a database written by an incompatible store schema', async () => {
    const path = join(dir, 'future.db');
    await new SqliteStore(path).close();
    const db = new Database(path);
    db.prepare(`UPDATE meta SET value = '99' WHERE key = 'schema_version'`).run();
    db.close();
    expect(() => new SqliteStore(path)).toThrow(expect.objectContaining({ code: 'E_STORE_SCHEMA' }));
    // The refused handle is closed: SQLite removes the WAL and shared-memory files with the last connection.
    expect([existsSync(`${path}-wal`), existsSync(`${path}-shm`)]).toEqual([false, false]);
  });

  it('stores each program once however many runs use it', async () => {
    const s = new SqliteStore(join(dir, 'programs.db'));
    const program = {
      format: 'nano-vm.program/v1' as const,
      id: 'p',
      input_schema: {},
      steps: [{ id: 'done', kind: 'end' as const, outcome: 'OK' }],
    };
    for (let i = 0; i < 5; i++)
      await s.createRun({
        run_id: `r${i}`,
        program_id: 'p',
        program: structuredClone(program),
        policy: null,
        input: {},
        status: 'running',
        outcome: null,
      });
    expect(s.db.prepare('SELECT count(*) AS n FROM programs').get()).toEqual({ n: 1 });
    expect(s.db.prepare(`SELECT count(*) AS n FROM runs WHERE program = ''`).get()).toEqual({ n: 5 });
    s.db.prepare('DELETE FROM programs').run();
    const fresh = new SqliteStore(s.path);
    await expect(fresh.getRun('r0')).rejects.toMatchObject({ code: 'E_STORE_CORRUPT' });
    await fresh.close();
    await s.close();
  });

  it('opens a version-2 file (runs carrying their own program, no idempotency keys) and reads its runs', async () => {
    const path = join(dir, 'v2.db');
    const db = new Database(path);
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      INSERT INTO meta VALUES ('schema_version', '2');
      CREATE TABLE runs (run_id TEXT PRIMARY KEY, program_id TEXT NOT NULL, program TEXT NOT NULL, policy TEXT NOT NULL, input TEXT NOT NULL, status TEXT NOT NULL, outcome TEXT, head_hash TEXT NOT NULL DEFAULT '', event_count INTEGER NOT NULL DEFAULT 0);`);
    db.prepare(
      `INSERT INTO runs (run_id, program_id, program, policy, input, status, outcome) VALUES ('old', 'p', ?, 'null', '{}', 'completed', 'OK')`,
    ).run(JSON.stringify({ format: 'nano-vm.program/v1', id: 'p', input_schema: {}, steps: [] }));
    db.close();
    const s = new SqliteStore(path);
    expect(await s.getRun('old')).toMatchObject({ program: { id: 'p' }, status: 'completed', outcome: 'OK' });
    expect(await s.invocations('old')).toEqual([]);
    expect(s.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get()).toEqual({ value: '4' });
    await s.close();
  });

  it('migrates a version-3 file (rows keyed by text run ids) to integer run keys, keeping every row', async () => {
    const path = join(dir, 'v3.db');
    const db = new Database(path);
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      INSERT INTO meta VALUES ('schema_version', '3'), ('subject_secret', 'feed');
      CREATE TABLE runs (run_id TEXT PRIMARY KEY, program_id TEXT NOT NULL, program TEXT NOT NULL, policy TEXT NOT NULL, input TEXT NOT NULL, status TEXT NOT NULL, outcome TEXT, head_hash TEXT NOT NULL DEFAULT '', event_count INTEGER NOT NULL DEFAULT 0, program_hash TEXT);
      CREATE INDEX runs_by_status ON runs (status);
      CREATE TABLE events (run_id TEXT NOT NULL REFERENCES runs (run_id), seq INTEGER NOT NULL, type TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
      CREATE TABLE vault (run_id TEXT NOT NULL REFERENCES runs (run_id), path TEXT NOT NULL, subject TEXT, commitment TEXT NOT NULL, salt TEXT, value TEXT, erased INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, path)) WITHOUT ROWID;
      CREATE INDEX vault_by_subject ON vault (subject);
      CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs (run_id), step TEXT NOT NULL, tool TEXT NOT NULL, attempt INTEGER NOT NULL, invocations INTEGER NOT NULL, first_seq INTEGER NOT NULL) WITHOUT ROWID;
      CREATE INDEX idempotency_keys_by_run ON idempotency_keys (run_id);
      CREATE TABLE programs (hash TEXT PRIMARY KEY, program TEXT NOT NULL) WITHOUT ROWID;`);
    const program = { format: 'nano-vm.program/v1', id: 'p', input_schema: {}, steps: [] };
    db.prepare(`INSERT INTO programs VALUES ('ph', ?)`).run(JSON.stringify(program));
    const c = new TraceChain(nodeHasher);
    c.append(
      {
        type: 'run_started',
        run_id: 'zz',
        program_id: 'p',
        program_hash: 'a'.repeat(64),
        policy_hash: 'b'.repeat(64),
        input_hash: 'c'.repeat(64),
        runtime_version: 't',
        model: { id: 'm', scripted: true },
      } as never,
      '2026-01-01T00:00:00.000Z',
    );
    c.append(
      {
        type: 'step_started',
        step: 'pay',
        kind: 'tool',
        visit: 1,
        attempt: 1,
        tool: 'pay',
        args: {},
        idempotency_key: 'zz/pay/1',
      } as never,
      '2026-01-01T00:00:00.001Z',
    );
    // Two runs, inserted so that the text order (aa < zz) is not the creation order.
    db.prepare(
      `INSERT INTO runs (run_id, program_id, program, program_hash, policy, input, status, outcome, head_hash, event_count) VALUES ('zz', 'p', '', 'ph', 'null', '{}', 'running', NULL, ?, 2)`,
    ).run(c.events[1]!.hash);
    db.prepare(
      `INSERT INTO runs (run_id, program_id, program, program_hash, policy, input, status, outcome) VALUES ('aa', 'p', '', 'ph', 'null', '{}', 'completed', 'OK')`,
    ).run();
    for (const e of c.events)
      db.prepare(`INSERT INTO events VALUES ('zz', ?, ?, ?, ?)`).run(e.seq, e.type, e.hash, JSON.stringify(e));
    db.prepare(
      `INSERT INTO vault VALUES ('zz', 'input.email', 'keyed-sha256:s', 'vault:sha256:x', 'salt', '"a@b.c"', 0)`,
    ).run();
    db.prepare(`INSERT INTO idempotency_keys VALUES ('zz/pay/1', 'zz', 'pay', 'pay', 1, 2, 1)`).run();
    db.close();

    const s = new SqliteStore(path, { groupCommit: true });
    expect(s.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get()).toEqual({ value: '4' });
    expect(s.db.prepare(`SELECT name FROM sqlite_master WHERE name LIKE 'old_%'`).all()).toEqual([]);
    expect((await s.listRuns()).map((r) => r.run_id)).toEqual(['zz', 'aa']);
    expect(await s.getRun('zz')).toMatchObject({
      program: { id: 'p' },
      status: 'running',
      head_hash: c.events[1]!.hash,
      event_count: 2,
    });
    expect(await s.events('zz')).toEqual(c.events);
    expect(await s.vault('zz')).toEqual([
      {
        run_id: 'zz',
        path: 'input.email',
        subject: 'keyed-sha256:s',
        commitment: 'vault:sha256:x',
        salt: 'salt',
        value: 'a@b.c',
        erased: false,
      },
    ]);
    expect(await s.vaultBySubject('keyed-sha256:s')).toHaveLength(1);
    expect(await s.invocations('zz')).toEqual([
      { key: 'zz/pay/1', run_id: 'zz', step: 'pay', tool: 'pay', attempt: 1, invocations: 2 },
    ]);
    expect(await s.subjectSecret()).toBe('feed');
    // The migrated run goes on where it was, and new runs come after the old ones.
    c.append({ type: 'step_retry', step: 'pay', attempt: 2, max_attempts: 2 } as never, '2026-01-01T00:00:00.002Z');
    await s.append('zz', [c.events[2]!]);
    await s.createRun({
      run_id: 'new',
      program_id: 'p',
      program: program as never,
      policy: null,
      input: {},
      status: 'running',
      outcome: null,
    });
    expect((await s.listRuns()).map((r) => r.run_id)).toEqual(['zz', 'aa', 'new']);
    expect(await s.events('zz')).toHaveLength(3);
    expect(s.db.pragma('foreign_key_check')).toEqual([]);
    await s.close();
  });

  it('a refused run creation does not leave its program recorded as stored', async () => {
    const s = new SqliteStore(join(dir, 'dup-program.db'));
    const program = (id: string) => ({ format: 'nano-vm.program/v1' as const, id, input_schema: {}, steps: [] });
    const rec = (run_id: string, p: ReturnType<typeof program>) => ({
      run_id,
      program_id: p.id,
      program: p,
      policy: null,
      input: {},
      status: 'running' as const,
      outcome: null,
    });
    await s.createRun(rec('r1', program('p1')));
    const p2 = program('p2');
    await expect(s.createRun(rec('r1', p2))).rejects.toMatchObject({ code: 'E_STORE_DUPLICATE_RUN' });
    await s.createRun(rec('r2', p2));
    const fresh = new SqliteStore(s.path);
    expect(await fresh.getRun('r2')).toMatchObject({ program: { id: 'p2' } });
    await fresh.close();
    await s.close();
  });

  it('group commit: a group that fails as a whole leaves no run behind, and its run ids never reach another run', async () => {
    const s = new SqliteStore(join(dir, 'group-fail.db'), { groupCommit: true });
    const program = { format: 'nano-vm.program/v1' as const, id: 'p', input_schema: {}, steps: [] };
    const rec = (run_id: string, input: unknown) => ({
      run_id,
      program_id: 'p',
      program,
      policy: null,
      input,
      status: 'running' as const,
      outcome: null,
    });
    // The second write throws a TypeError (a BigInt cannot be stored): the whole group rolls back.
    const first = await Promise.allSettled([s.createRun(rec('a', {})), s.createRun(rec('bad', { n: 1n }))]);
    expect(first.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await s.getRun('a')).toBeUndefined();
    // 'b' may get the rowid 'a' had; an append to 'a' must not land in 'b'.
    await s.createRun(rec('b', {}));
    const c = new TraceChain(nodeHasher);
    const genesis = c.append(
      {
        type: 'run_started',
        run_id: 'a',
        program_id: 'p',
        program_hash: 'a'.repeat(64),
        policy_hash: 'b'.repeat(64),
        input_hash: 'c'.repeat(64),
        runtime_version: 't',
        model: { id: 'm', scripted: true },
      } as never,
      '2026-01-01T00:00:00.000Z',
    );
    await expect(s.append('a', [genesis])).rejects.toMatchObject({ code: 'E_STORE_NO_RUN' });
    expect(await s.events('b')).toEqual([]);
    // The program stored inside the failed group was rolled back with it and is stored again.
    expect(await s.getRun('b')).toMatchObject({ program: { id: 'p' } });
    await s.close();
  });

  it('group commit: appends made together commit together, and a conflict fails only its own append', async () => {
    const s = new SqliteStore(join(dir, 'group.db'), { groupCommit: true, synchronous: 'FULL' });
    const c = new TraceChain(nodeHasher);
    const genesis = (id: string) =>
      c.append(
        {
          type: 'run_started',
          run_id: id,
          program_id: 'p',
          program_hash: 'a'.repeat(64),
          policy_hash: 'b'.repeat(64),
          input_hash: 'c'.repeat(64),
          runtime_version: 't',
          model: { id: 'm', scripted: true },
        } as never,
        '2026-01-01T00:00:00.000Z',
      );
    const program = { format: 'nano-vm.program/v1' as const, id: 'p', input_schema: {}, steps: [] };
    const ids = ['g1', 'g2', 'g3'];
    for (const id of ids)
      await s.createRun({
        run_id: id,
        program_id: 'p',
        program,
        policy: null,
        input: {},
        status: 'running',
        outcome: null,
      });
    const first = ids.map((id) => genesis(id));
    const results = await Promise.allSettled([
      ...ids.map((id, i) => s.append(id, [{ ...first[i]!, seq: 0 }])),
      s.append('g1', [{ ...first[0]!, seq: 5 }]),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    expect((results[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'E_STORE_CONFLICT' });
    for (const id of ids) expect(await s.getRun(id)).toMatchObject({ event_count: 1 });
    await s.close();
  });

  it('uses WAL and the requested synchronous level', async () => {
    const s = new SqliteStore(join(dir, 'pragmas.db'), { synchronous: 'FULL' });
    expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(s.db.pragma('synchronous', { simple: true })).toBe(2);
    await s.close();
  });
});
