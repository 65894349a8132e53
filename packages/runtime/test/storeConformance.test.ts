import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore, SqliteStore, type Store } from '../src/index.js';
import { storeConformance } from './storeConformance.js';

storeConformance('memory', { make: () => new MemoryStore() });

const dir = mkdtempSync(join(tmpdir(), 'nano-vm-sqlite-'));
let n = 0;
storeConformance('sqlite (WAL, file)', {
  make: () => new SqliteStore(join(dir, `store-${n++}.db`)),
  reopen: (s: Store) => new SqliteStore((s as SqliteStore).path),
  close: (s: Store) => (s as SqliteStore).close(),
});

import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';

describe('SqliteStore specifics', () => {
  it('refuses a database written by an incompatible store schema', () => {
    const path = join(dir, 'future.db');
    new SqliteStore(path).close();
    const db = new Database(path);
    db.prepare(`UPDATE meta SET value = '99' WHERE key = 'schema_version'`).run();
    db.close();
    expect(() => new SqliteStore(path)).toThrow(expect.objectContaining({ code: 'E_STORE_SCHEMA' }));
  });

  it('stores each program once however many runs use it', () => {
    const s = new SqliteStore(join(dir, 'programs.db'));
    const program = { format: 'nano-vm.program/v1' as const, id: 'p', input_schema: {}, steps: [{ id: 'done', kind: 'end' as const, outcome: 'OK' }] };
    for (let i = 0; i < 5; i++) s.createRun({ run_id: `r${i}`, program_id: 'p', program: structuredClone(program), policy: null, input: {}, status: 'running', outcome: null });
    expect(s.db.prepare('SELECT count(*) AS n FROM programs').get()).toEqual({ n: 1 });
    expect(s.db.prepare(`SELECT count(*) AS n FROM runs WHERE program = ''`).get()).toEqual({ n: 5 });
    s.db.prepare('DELETE FROM programs').run();
    const fresh = new SqliteStore(s.path);
    expect(() => fresh.getRun('r0')).toThrow(expect.objectContaining({ code: 'E_STORE_CORRUPT' }));
    fresh.close();
    s.close();
  });

  it('opens a version-2 file (runs carrying their own program, no idempotency keys) and reads its runs', () => {
    const path = join(dir, 'v2.db');
    const db = new Database(path);
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      INSERT INTO meta VALUES ('schema_version', '2');
      CREATE TABLE runs (run_id TEXT PRIMARY KEY, program_id TEXT NOT NULL, program TEXT NOT NULL, policy TEXT NOT NULL, input TEXT NOT NULL, status TEXT NOT NULL, outcome TEXT, head_hash TEXT NOT NULL DEFAULT '', event_count INTEGER NOT NULL DEFAULT 0);`);
    db.prepare(`INSERT INTO runs (run_id, program_id, program, policy, input, status, outcome) VALUES ('old', 'p', ?, 'null', '{}', 'completed', 'OK')`).run(JSON.stringify({ format: 'nano-vm.program/v1', id: 'p', input_schema: {}, steps: [] }));
    db.close();
    const s = new SqliteStore(path);
    expect(s.getRun('old')).toMatchObject({ program: { id: 'p' }, status: 'completed', outcome: 'OK' });
    expect(s.invocations('old')).toEqual([]);
    expect(s.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get()).toEqual({ value: '3' });
    s.close();
  });

  it('uses WAL and the requested synchronous level', () => {
    const s = new SqliteStore(join(dir, 'pragmas.db'), { synchronous: 'FULL' });
    expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(s.db.pragma('synchronous', { simple: true })).toBe(2);
    s.close();
  });
});
