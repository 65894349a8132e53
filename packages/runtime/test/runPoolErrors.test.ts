/** RunPool's failures are coded NanoVmErrors (tested from the built package: the pool runs real worker threads). */
import { describe, expect, it } from 'vitest';
import { NanoVmError } from '@nano-vm/kernel';
import { RunPool } from '../dist/index.js';

const fixture = (name: string): URL => new URL(`./fixtures/${name}`, import.meta.url);

describe('RunPool errors', () => {
  it('a setup module without setup() is refused with E_RUN_POOL_SETUP', async () => {
    const e = await RunPool.start({ module: fixture('poolSetupBroken.mjs'), workers: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NanoVmError);
    expect(e).toMatchObject({ code: 'E_RUN_POOL_SETUP', message: expect.stringContaining('setup()') });
  });

  it('a run queued after close() is refused with E_RUN_POOL_CLOSED', async () => {
    const pool = await RunPool.start({ module: fixture('poolSetup.mjs'), workers: 1 });
    await pool.close();
    await expect(pool.run({ value: 0.1 })).rejects.toMatchObject({ code: 'E_RUN_POOL_CLOSED' });
  });

  it('the runs of a worker that dies fail with E_RUN_POOL_WORKER, the crash as cause', async () => {
    const pool = await RunPool.start({ module: fixture('poolSetupCrash.mjs'), workers: 1 });
    try {
      const e = (await pool.run({}).catch((x: unknown) => x)) as NanoVmError;
      expect(e).toBeInstanceOf(NanoVmError);
      expect(e).toMatchObject({ code: 'E_RUN_POOL_WORKER', message: expect.stringContaining('the worker crashed') });
      expect((e.cause as Error).message).toBe('the worker crashed');
    } finally {
      await pool.close();
    }
  });
});
