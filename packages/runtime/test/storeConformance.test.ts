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

  it('uses WAL and the requested synchronous level', () => {
    const s = new SqliteStore(join(dir, 'pragmas.db'), { synchronous: 'FULL' });
    expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(s.db.pragma('synchronous', { simple: true })).toBe(2);
    s.close();
  });
});
