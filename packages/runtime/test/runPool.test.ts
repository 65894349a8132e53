/** RunPool runs through real worker threads, so it is tested from the built package. */
import { describe, expect, it } from 'vitest';
import { RunPool } from '../dist/index.js';

const setup = new URL('./fixtures/poolSetup.mjs', import.meta.url);

describe('RunPool', () => {
  it('runs inputs on worker threads and returns a summary per run', async () => {
    const pool = await RunPool.start({ module: setup, workers: 2, batch: 7 });
    try {
      const inputs = Array.from({ length: 60 }, (_, i) => ({ value: i / 60 }));
      const out = await Promise.all(inputs.map((x) => pool.run(x)));
      expect(out.filter((s) => s.status === 'completed').length).toBe(31);
      expect(out.filter((s) => s.status === 'failed').every((s) => s.error?.code === 'E_BOOM')).toBe(true);
      for (const s of out) {
        expect(s.head_hash).toMatch(/^[0-9a-f]{64}$/);
        expect(s.event_count).toBeGreaterThan(2);
      }
      expect(new Set(out.map((s) => s.run_id)).size).toBe(60);
      const refused = await pool.run({ value: 'high' });
      expect(refused).toMatchObject({ status: 'refused', run_id: null, error: { code: 'E_INPUT_INVALID' } });
    } finally {
      await pool.close();
    }
    await expect(pool.run({ value: 1 })).rejects.toThrow(/closed/);
  });

  it("runs every input under the setup module's policy", async () => {
    const pool = await RunPool.start({
      module: new URL('./fixtures/poolSetupPolicy.mjs', import.meta.url),
      workers: 1,
    });
    try {
      expect(await pool.run({ value: 0.1 })).toMatchObject({ status: 'completed', outcome: 'SUCCESS' });
      expect(await pool.run({ value: 0.6 })).toMatchObject({ status: 'failed', error: { code: 'E_BOOM' } });
      // The tool would throw E_BOOM if it ran; the deny rule blocks it first.
      expect(await pool.run({ value: 0.9 })).toMatchObject({
        status: 'failed',
        outcome: 'POLICY_BLOCKED',
        error: { code: 'E_POLICY_BLOCKED' },
      });
    } finally {
      await pool.close();
    }
  });

  it('refuses to start when the setup module exports no setup()', async () => {
    await expect(
      RunPool.start({ module: new URL('./fixtures/poolSetupBroken.mjs', import.meta.url), workers: 1 }),
    ).rejects.toThrow(/setup/);
  });
});
