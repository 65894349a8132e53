/**
 * The PostgreSQL the tests use (127.0.0.1:5432, database `test`, or $NANO_VM_TEST_PG): each test
 * file works in schemas of its own (a prefix per file and process), dropped when it ends, so
 * parallel test files never collide. `reachable` is probed once, with a short timeout: without
 * a server the tests skip with the reason printed, and nothing hangs.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_URL = process.env.NANO_VM_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

async function probe(): Promise<string | null> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return null;
  } catch (e) {
    return `PostgreSQL at ${PG_URL} is not reachable (${(e as Error).message || (e as { code?: string }).code}): the PostgreSQL store tests are skipped`;
  } finally {
    await c.end().catch(() => {});
  }
}

export const unreachable = await probe();
if (unreachable) console.warn(unreachable);

/** Schema names for one test file: `t_<file>_<random>_<n>`; `dropAll` removes them. */
export function schemas(file: string): { next: () => string; dropAll: () => Promise<void> } {
  const prefix = `t_${file}_${randomBytes(4).toString('hex')}`;
  let n = 0;
  const made: string[] = [];
  return {
    next: () => {
      const s = `${prefix}_${n++}`;
      made.push(s);
      return s;
    },
    dropAll: async () => {
      if (unreachable || !made.length) return;
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        for (const s of made) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}

/** The store URL for a schema. */
export const urlFor = (schema: string): string => `${PG_URL}?schema=${schema}`;
