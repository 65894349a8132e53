import { afterAll, describe, expect, it } from 'vitest';
import { schemas, unreachable, urlFor } from './pgTestServer.js';
import { killSoak } from './killWorkers.js';

const db = schemas('kill');
afterAll(() => db.dropAll());

/** The size: modest by default (CI time); scripts/pg-kill-soak.mjs runs it bigger through these variables. */
const size = (name: string, d: number) => Number(process.env[`NANO_VM_PG_KILL_${name}`] ?? d);
const RUNS = size('RUNS', 120);
const KILLS = size('KILLS', 3);

describe.skipIf(unreachable !== null)('workers on PostgreSQL, killed at random (the real CLI)', () => {
  it(
    'every run finishes exactly once, no event lost or duplicated, every chain verifies, no tool call under an unrecorded key',
    async () => {
      const r = await killSoak({
        url: urlFor(db.next()),
        runs: RUNS,
        workers: size('WORKERS', 3),
        kills: KILLS,
        concurrency: size('CONCURRENCY', 6),
        killEveryMs: size('EVERY_MS', 500),
        leaseMs: 1000,
        sleepMs: [20, 60],
        timeoutMs: size('TIMEOUT_MS', 45_000),
        log: process.env.NANO_VM_PG_KILL_RUNS ? (l) => console.error(l) : undefined,
      });
      expect(r.problems).toEqual([]);
      expect(r).toMatchObject({ runs: RUNS, completed: RUNS, killed: KILLS });
      // The kills landed on runs in flight, which other workers finished.
      expect(r.recoveredRuns).toBeGreaterThan(0);
      expect(r.gracefulExitCodes.every((c) => c === 0)).toBe(true);
      console.log(`kill test: ${JSON.stringify({ ...r, problems: r.problems.length })}`);
    },
    size('TIMEOUT_MS', 45_000) + 15_000,
  );
});
