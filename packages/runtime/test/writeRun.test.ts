/**
 * The runtime's use of Store.writeRun: a run is created in the transaction of its first events and
 * its terminal status goes with its last events (two commits fewer per run), the bundle is the same
 * as through createRun / append / finish, and no effect starts before the run is stored.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryStore, SqliteStore, resumeRun, runProgram, type Store } from '../src/internal.js';
import { det, program, scripted, tools } from './fixtures.js';

const prog = program([
  { id: 'ask', kind: 'llm', prompt: 'ok?', projection: [], output: { enum: ['yes'] }, next: 'pay' },
  { id: 'pay', kind: 'tool', tool: 'pay', next: 'done' },
  { id: 'done', kind: 'end', outcome: 'PAID' },
]);

/** The store's calls by method (and, for writeRun, which parts each carried), in order. */
function recording(inner: Store, withWriteRun: boolean): { store: Store; calls: string[] } {
  const calls: string[] = [];
  const store = new Proxy(inner, {
    get(target, name, receiver) {
      if (name === 'writeRun' && !withWriteRun) return undefined;
      const v = Reflect.get(target, name, receiver) as unknown;
      if (typeof v !== 'function' || typeof name !== 'string') return v;
      return (...args: unknown[]) => {
        if (name === 'writeRun') {
          const w = args[1] as { create?: unknown; finish?: { status: string } };
          calls.push(`writeRun${w.create ? '+create' : ''}${w.finish ? `+${w.finish.status}` : ''}`);
        } else if (['createRun', 'append', 'finish'].includes(name)) calls.push(name);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, calls };
}

const payTool = (log: string[]) =>
  tools([
    {
      name: 'pay',
      run: async (_a, ctx) => {
        log.push(ctx.idempotencyKey);
        return { ok: true };
      },
    },
  ]);

const stores: [string, () => Store][] = [
  ['memory', () => new MemoryStore()],
  ['sqlite', () => new SqliteStore(join(mkdtempSync(join(tmpdir(), 'nano-vm-writerun-')), 'runs.db'))],
  [
    'sqlite, group commit',
    () => new SqliteStore(join(mkdtempSync(join(tmpdir(), 'nano-vm-writerun-')), 'runs.db'), { groupCommit: true }),
  ],
];

describe.each(stores)('runProgram with writeRun (%s)', (_name, make) => {
  it('creates the run with its first events and records the status with its last: two writes fewer, the same bundle', async () => {
    const a = recording(make(), true);
    const b = recording(make(), false);
    const run = (store: Store) =>
      runProgram({
        program: prog,
        input: {},
        model: scripted('answers: { ask: [yes] }'),
        tools: payTool([]),
        store,
        ...det(),
      });
    const [ra, rb] = [await run(a.store), await run(b.store)];
    expect(ra.status).toBe('completed');
    expect(ra.bundle).toEqual(rb.bundle);
    expect(a.calls).toEqual(['writeRun+create', 'append', 'writeRun+completed']);
    expect(b.calls).toEqual(['createRun', 'append', 'append', 'append', 'finish']);
    // What is stored is the same too.
    for (const s of [a.store, b.store]) {
      expect(await s.getRun(ra.run_id)).toMatchObject({
        status: 'completed',
        outcome: 'PAID',
        head_hash: ra.head_hash,
      });
      expect(await s.events(ra.run_id)).toEqual(ra.events);
      // The terminal status released the lease.
      expect((await s.acquireLease(ra.run_id, { owner: 'x', expires_at: Date.now() + 1000 }, Date.now())).owner).toBe(
        'x',
      );
    }
    await a.store.close();
    await b.store.close();
  });

  it('a duplicate run id is refused before any effect starts, and changes nothing stored', async () => {
    const s = make();
    const log: string[] = [];
    const opts = {
      program: prog,
      input: {},
      model: scripted('answers: { ask: [yes] }'),
      tools: payTool(log),
      store: s,
    };
    const first = await runProgram({ ...opts, ...det() });
    await expect(runProgram({ ...opts, ...det() })).rejects.toMatchObject({ code: 'E_STORE_DUPLICATE_RUN' });
    expect(log).toHaveLength(1);
    expect(await s.events(first.run_id)).toEqual(first.events);
    await s.close();
  });

  it('a run suspended at a wait records its status on its own, and its resume finishes it with its last events', async () => {
    const waiting = program([
      { id: 'hold', kind: 'wait', role: 'approver', event: { type: 'object' }, next: 'done' },
      { id: 'done', kind: 'end', outcome: 'OK' },
    ]);
    const r = recording(make(), true);
    const started = await runProgram({
      program: waiting,
      input: {},
      model: scripted('answers: {}'),
      tools: tools([]),
      store: r.store,
      ...det(),
    });
    expect(started.status).toBe('suspended');
    expect(r.calls).toEqual(['writeRun+create', 'finish']);
    const resumed = await resumeRun({
      store: r.store,
      runId: started.run_id,
      event: { payload: {}, role: 'approver' },
      model: scripted('answers: {}'),
      tools: tools([]),
    });
    expect(resumed.status).toBe('completed');
    expect(r.calls.at(-1)).toBe('writeRun+completed');
    expect(await r.store.getRun(started.run_id)).toMatchObject({ status: 'completed', outcome: 'OK' });
    await r.store.close();
  });
});
