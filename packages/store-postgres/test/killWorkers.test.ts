import { afterAll, describe, expect, it } from 'vitest';
import { schemas, unreachable, urlFor } from './pgTestServer.js';
import { killSoak } from './killWorkers.js';

const db = schemas('kill');
afterAll(() => db.dropAll());

describe.skipIf(unreachable !== null)('workers on PostgreSQL, killed at random (the real CLI)', () => {
  it('every run finishes exactly once, no event lost or duplicated, every chain verifies, no tool call under an unrecorded key', async () => {
    const r = await killSoak({
      url: urlFor(db.next()),
      runs: 120,
      workers: 3,
      kills: 3,
      concurrency: 6,
      killEveryMs: 500,
      leaseMs: 1000,
      sleepMs: [20, 60],
      timeoutMs: 45_000,
    });
    expect(r.problems).toEqual([]);
    expect(r).toMatchObject({ runs: 120, completed: 120, killed: 3 });
    // The kills landed on runs in flight, which other workers finished.
    expect(r.recoveredRuns).toBeGreaterThan(0);
    expect(r.gracefulExitCodes.every((c) => c === 0)).toBe(true);
    console.log(`kill test: ${JSON.stringify({ ...r, problems: r.problems.length })}`);
  }, 60_000);
});
