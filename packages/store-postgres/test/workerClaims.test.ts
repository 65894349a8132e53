/**
 * A worker in this process on a real PostgreSQL: claiming ahead of free slots (prefetch) takes
 * several submissions per claim statement while work keeps coming, claims only for free slots when
 * waking from idle, and gives back what it claimed ahead when it stops.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Program } from '@nano-vm/kernel';
import { ToolRegistry, parseModelScript, ScriptedModel } from '@nano-vm/runtime';
import { PostgresStore, startWorker, submitRuns } from '../src/index.js';
import { schemas, unreachable, urlFor } from './pgTestServer.js';

const db = schemas('wclaim');
afterAll(() => db.dropAll());

const program: Program = {
  format: 'nano-vm.program/v1',
  id: 'claims',
  input_schema: { type: 'object' },
  steps: [
    { id: 'work', kind: 'tool', tool: 'work', next: 'done' },
    { id: 'done', kind: 'end', outcome: 'OK' },
  ],
};
const model = new ScriptedModel(parseModelScript('answers: {}', 'test'));

/** A tool whose calls wait until released (all of them, or one at a time). */
function gate() {
  const waiting: (() => void)[] = [];
  let open = false;
  const calls: string[] = [];
  const tools = new ToolRegistry([
    {
      name: 'work',
      run: async (_a, ctx) => {
        calls.push(ctx.idempotencyKey);
        if (!open) await new Promise<void>((r) => waiting.push(r));
        return { ok: true };
      },
    },
  ]);
  return {
    tools,
    calls,
    releaseOne: () => waiting.shift()?.(),
    openAll: () => {
      open = true;
      for (const r of waiting.splice(0)) r();
    },
    waitingCount: () => waiting.length,
  };
}

const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

const counts = async (s: PostgresStore) => {
  const r = await s.query<{ queued: number; claimed: number; done: number }>(
    `SELECT (SELECT count(*)::int FROM ${s.s}.queue) AS queued,
            (SELECT count(*)::int FROM ${s.s}.queue WHERE claimed_by IS NOT NULL) AS claimed,
            (SELECT count(*)::int FROM ${s.s}.runs WHERE status = 'completed') AS done`,
  );
  return r.rows[0]!;
};

describe.skipIf(unreachable !== null)('worker claims on PostgreSQL', () => {
  it('while work keeps coming, one claim statement takes several submissions; every run finishes once', async () => {
    const store = await new PostgresStore(urlFor(db.next()), { migrate: true }).open();
    const g = gate();
    g.openAll();
    const slow = new ToolRegistry([
      {
        name: 'work',
        run: async (_a, ctx) => {
          g.calls.push(ctx.idempotencyKey);
          await new Promise((r) => setTimeout(r, 5));
          return { ok: true };
        },
      },
    ]);
    await submitRuns(
      store,
      Array.from({ length: 60 }, () => ({ program, input: {} })),
    );
    const w = await startWorker({ store, model, tools: slow, concurrency: 4, prefetch: 4 });
    await until('60 runs finished', async () => (await counts(store)).done === 60);
    await w.stop();
    expect(w.stats.finished).toBe(60);
    expect(new Set(g.calls).size).toBe(60);
    expect(g.calls).toHaveLength(60);
    // Without claiming ahead each finished run would cost one claim (about 60); with 4 ahead,
    // a claim takes up to 5.
    expect(w.stats.claims).toBeLessThan(30);
    expect(await counts(store)).toEqual({ queued: 0, claimed: 0, done: 60 });
    await store.close();
  });

  it('an idle worker claims for its free slots only, so a burst spreads over idle workers', async () => {
    const store = await new PostgresStore(urlFor(db.next()), { migrate: true }).open();
    const a = gate();
    const b = gate();
    const wa = await startWorker({ store, model, tools: a.tools, concurrency: 2, prefetch: 8 });
    const wb = await startWorker({ store, model, tools: b.tools, concurrency: 2, prefetch: 8 });
    await submitRuns(
      store,
      Array.from({ length: 4 }, () => ({ program, input: {} })),
    );
    // Both idle workers wake; neither takes more than its two free slots, so each runs two.
    await until('four runs started', () => a.calls.length + b.calls.length === 4);
    expect([a.calls.length, b.calls.length]).toEqual([2, 2]);
    a.openAll();
    b.openAll();
    await until('4 runs finished', async () => (await counts(store)).done === 4);
    await Promise.all([wa.stop(), wb.stop()]);
    await store.close();
  });

  it('on stop, submissions claimed ahead go back to the queue and another worker finishes them', async () => {
    const store = await new PostgresStore(urlFor(db.next()), { migrate: true }).open();
    const g = gate();
    await submitRuns(
      store,
      Array.from({ length: 8 }, () => ({ program, input: {} })),
    );
    const w = await startWorker({ store, model, tools: g.tools, concurrency: 2, prefetch: 3, drainMs: 5_000 });
    await until('two runs started', () => g.calls.length === 2);
    // The first claim (from idle) took two. One run finishes: the next claim takes one for the
    // slot and three ahead.
    g.releaseOne();
    await until('a third run started', () => g.calls.length === 3);
    // (A started run's submission is gone: the run's creation consumed it.)
    await until('three claimed ahead', async () => (await counts(store)).claimed === 3);
    expect(w.stats.claims).toBe(2);
    const stopped = w.stop();
    await until('the ahead claims released', async () => (await counts(store)).claimed === 0);
    g.openAll();
    expect(await stopped).toMatchObject({ finished: 2, released: [] });
    expect(await counts(store)).toMatchObject({ queued: 5, claimed: 0, done: 3 });
    // Another worker takes the five left, at once (the release notified).
    const other = gate();
    other.openAll();
    const w2 = await startWorker({ store, model, tools: other.tools, concurrency: 4 });
    await until('all 8 finished', async () => (await counts(store)).done === 8);
    await w2.stop();
    expect(other.calls).toHaveLength(5);
    expect(new Set([...g.calls, ...other.calls]).size).toBe(8);
    await store.close();
  });
});
