/**
 * The storage conformance suite: one spec, run against every Store implementation (memory and
 * SQLite now; Postgres later). A store passes only if it behaves identically on all of it.
 */
import { describe, expect, it } from 'vitest';
import { TraceChain, type TraceEvent } from '@nano-vm/kernel';
import { RunLease, nodeHasher, recoverRun, resumeRun, runProgram, type Store } from '../src/internal.js';
import { invocationUpserts } from '../src/store/invocations.js';
import { det, program, scripted, tools } from './fixtures.js';

export interface StoreHarness {
  /** A fresh, empty store. */
  make(): Store | Promise<Store>;
  /** A second handle on the same data (another connection), when the store supports one. */
  reopen?(store: Store): Store | Promise<Store>;
}

function chain(runId: string, n: number): TraceEvent[] {
  const c = new TraceChain(nodeHasher);
  c.append(
    {
      type: 'run_started',
      run_id: runId,
      program_id: 'p',
      program_hash: 'a'.repeat(64),
      policy_hash: 'b'.repeat(64),
      input_hash: 'c'.repeat(64),
      runtime_version: 't',
      model: { id: 'm', scripted: true },
    },
    '2026-01-01T00:00:00.000Z',
  );
  for (let i = 1; i < n; i++)
    c.append({ type: 'step_retry', step: `s${i}`, attempt: i + 1, max_attempts: 1000 }, '2026-01-01T00:00:00.001Z');
  return c.events;
}

/** A run's events with tool starts: two attempts of `pay` (one key), an llm start (no key), then `ship`. */
function toolStarts(runId: string): TraceEvent[] {
  const c = new TraceChain(nodeHasher);
  const ts = '2026-01-01T00:00:00.000Z';
  c.append(
    {
      type: 'run_started',
      run_id: runId,
      program_id: 'p',
      program_hash: 'a'.repeat(64),
      policy_hash: 'b'.repeat(64),
      input_hash: 'c'.repeat(64),
      runtime_version: 't',
      model: { id: 'm', scripted: true },
    },
    ts,
  );
  const start = (step: string, attempt: number, kind: 'tool' | 'llm') =>
    c.append(
      (kind === 'tool'
        ? {
            type: 'step_started',
            step,
            kind,
            visit: 1,
            attempt,
            tool: step,
            args: {},
            idempotency_key: `${runId}/${step}/1`,
          }
        : { type: 'step_started', step, kind, visit: 1, attempt }) as never,
      ts,
    );
  start('pay', 1, 'tool');
  c.append({ type: 'step_retry', step: 'pay', attempt: 2, max_attempts: 2 } as never, ts);
  start('pay', 2, 'tool');
  start('ask', 1, 'llm');
  start('ship', 1, 'tool');
  return c.events;
}

const runRec = (run_id: string) => ({
  run_id,
  program_id: 'p',
  program: program([{ id: 'done', kind: 'end', outcome: 'OK' }]),
  policy: { rules: [] },
  input: { x: 1, nested: { s: 'é' } },
  status: 'running' as const,
  outcome: null,
});

export function storeConformance(name: string, h: StoreHarness): void {
  describe(`Store conformance: ${name}`, () => {
    it('round-trips runs and events exactly, in seq order', async () => {
      const s = await h.make();
      await s.createRun(runRec('r1'));
      const evs = chain('r1', 5);
      for (const e of evs) await s.append('r1', [e]);
      expect(await s.events('r1')).toEqual(evs);
      expect(await s.getRun('r1')).toEqual({ ...runRec('r1'), head_hash: evs[4]!.hash, event_count: 5 });
      await s.close();
    });

    it('compare-and-swap on (run_id, seq): gaps and repeats are refused and write nothing', async () => {
      const s = await h.make();
      await s.createRun(runRec('r1'));
      const evs = chain('r1', 4);
      await s.append('r1', [evs[0]!]);
      await expect(s.append('r1', [evs[2]!])).rejects.toMatchObject({ code: 'E_STORE_CONFLICT' });
      await s.append('r1', [evs[1]!]);
      await expect(s.append('r1', [evs[1]!])).rejects.toMatchObject({ code: 'E_STORE_CONFLICT' });
      await expect(s.append('r1', [evs[0]!])).rejects.toMatchObject({ code: 'E_STORE_CONFLICT' });
      expect(await s.events('r1')).toEqual(evs.slice(0, 2));
      expect((await s.getRun('r1'))?.event_count).toBe(2);
      await s.close();
    });

    it('appends a batch in one transaction: all of it or none of it', async () => {
      const s = await h.make();
      await s.createRun(runRec('r1'));
      const evs = chain('r1', 6);
      await s.append('r1', evs.slice(0, 3));
      expect((await s.getRun('r1'))?.event_count).toBe(3);
      // A batch whose first seq is taken, or with a gap inside it, stores nothing of itself.
      await expect(s.append('r1', evs.slice(2, 5))).rejects.toMatchObject({ code: 'E_STORE_CONFLICT' });
      await expect(s.append('r1', [evs[3]!, evs[5]!])).rejects.toMatchObject({
        code: 'E_STORE_CONFLICT',
      });
      expect(await s.events('r1')).toEqual(evs.slice(0, 3));
      await s.append('r1', evs.slice(3));
      await s.append('r1', []);
      expect(await s.events('r1')).toEqual(evs);
      expect(await s.getRun('r1')).toMatchObject({ head_hash: evs[5]!.hash, event_count: 6 });
      await s.close();
    });

    it('concurrent writers on one run: exactly one wins each seq', async () => {
      const a = await h.make();
      const b = h.reopen ? await h.reopen(a) : a;
      await a.createRun(runRec('r1'));
      const evs = chain('r1', 3);
      const fork = chain('r1', 3).map((e, i) => (i === 0 ? evs[0]! : e));
      await a.append('r1', [evs[0]!]);
      // Both writers try seq 1; the loser gets a conflict and its event is not stored.
      await a.append('r1', [evs[1]!]);
      await expect(b.append('r1', [{ ...fork[1]!, step: 'other' } as TraceEvent])).rejects.toMatchObject({
        code: 'E_STORE_CONFLICT',
      });
      expect((await b.events('r1')).map((e) => e.hash)).toEqual(evs.slice(0, 2).map((e) => e.hash));
      if (b !== a) await b.close();
      await a.close();
    });

    it('refuses duplicate and unknown runs with codes', async () => {
      const s = await h.make();
      await s.createRun(runRec('r1'));
      await expect(s.createRun(runRec('r1'))).rejects.toMatchObject({ code: 'E_STORE_DUPLICATE_RUN' });
      await expect(s.append('nope', [chain('nope', 1)[0]!])).rejects.toMatchObject({
        code: 'E_STORE_NO_RUN',
      });
      await expect(s.finish('nope', 'failed', null)).rejects.toMatchObject({ code: 'E_STORE_NO_RUN' });
      expect(await s.getRun('nope')).toBeUndefined();
      expect(await s.events('nope')).toEqual([]);
      await s.close();
    });

    it('finishes runs and lists them by status in creation order', async () => {
      const s = await h.make();
      for (const id of ['r1', 'r2', 'r3']) await s.createRun(runRec(id));
      await s.finish('r2', 'completed', 'OK');
      await s.finish('r3', 'failed', null);
      expect((await s.listRuns()).map((r) => r.run_id)).toEqual(['r1', 'r2', 'r3']);
      expect((await s.listRuns({ status: 'running' })).map((r) => r.run_id)).toEqual(['r1']);
      expect(await s.listRuns({ status: 'completed' })).toMatchObject([{ run_id: 'r2', outcome: 'OK' }]);
      await s.close();
    });

    it('a real run persists every event before the run returns, and survives a reopen', async () => {
      const s = await h.make();
      const prog = program([
        {
          id: 'ask',
          kind: 'llm',
          prompt: 'v={{input.value}}',
          projection: ['input.value'],
          output: { enum: ['go'] },
          next: 'act',
        },
        { id: 'act', kind: 'tool', tool: 'act', next: 'done' },
        { id: 'done', kind: 'end', outcome: 'SUCCESS' },
      ]);
      const seenByTool: number[] = [];
      const reg = tools([
        {
          name: 'act',
          run: async (_a, ctx) => {
            seenByTool.push((await s.events(ctx.idempotencyKey.split('/')[0]!)).length);
            return { ok: true };
          },
        },
      ]);
      const r = await runProgram({
        program: prog,
        input: { value: 3 },
        model: scripted('answers: { ask: [go] }'),
        tools: reg,
        store: s,
        ...det(),
      });
      // Write-ahead: when the tool ran, its step_started event (seq 2) was already stored.
      expect(seenByTool).toEqual([3]);
      const again = h.reopen ? await h.reopen(s) : s;
      expect(await again.events(r.run_id)).toEqual(JSON.parse(JSON.stringify(r.events)));
      expect(await again.getRun(r.run_id)).toMatchObject({
        status: 'completed',
        outcome: 'SUCCESS',
        head_hash: r.head_hash,
        event_count: r.events.length,
      });
      if (again !== s) await again.close();
      await s.close();
    });

    it('has its own secret for subject keys: the same across handles, another for another store', async () => {
      const s = await h.make();
      const secret = await s.subjectSecret();
      expect(secret).toMatch(/^[0-9a-f]{64}$/);
      expect(await s.subjectSecret()).toBe(secret);
      const other = h.reopen ? await h.reopen(s) : s;
      expect(await other.subjectSecret()).toBe(secret);
      const fresh = await h.make();
      expect(await fresh.subjectSecret()).not.toBe(secret);
      if (other !== s) await other.close();
      await fresh.close();
      await s.close();
    });

    describe('leases', () => {
      const T = 1_000_000;
      it('a lease is taken when free or expired, kept by its owner, refused to others until it expires', async () => {
        const s = await h.make();
        await s.createRun({ ...runRec('r1'), lease: { owner: 'a', expires_at: T + 100 } });
        // Held: another owner gets the holder back, and nothing changes.
        expect(await s.acquireLease('r1', { owner: 'b', expires_at: T + 500 }, T)).toEqual({
          owner: 'a',
          expires_at: T + 100,
        });
        // The owner itself extends it.
        expect(await s.acquireLease('r1', { owner: 'a', expires_at: T + 200 }, T)).toEqual({
          owner: 'a',
          expires_at: T + 200,
        });
        // Expired (expires_at <= now): another owner takes it.
        expect(await s.acquireLease('r1', { owner: 'b', expires_at: T + 900 }, T + 200)).toEqual({
          owner: 'b',
          expires_at: T + 900,
        });
        // An owner the caller knows to be gone is replaced before expiry.
        expect(await s.acquireLease('r1', { owner: 'c', expires_at: T + 950 }, T + 300, 'b')).toEqual({
          owner: 'c',
          expires_at: T + 950,
        });
        await expect(s.acquireLease('nope', { owner: 'a', expires_at: T }, T)).rejects.toMatchObject({
          code: 'E_STORE_NO_RUN',
        });
        await s.close();
      });

      it('renew only by the holder; release only by the holder; a terminal or suspended status releases it', async () => {
        const s = await h.make();
        await s.createRun(runRec('r1'));
        expect(await s.acquireLease('r1', { owner: 'a', expires_at: T + 100 }, T)).toMatchObject({ owner: 'a' });
        expect(await s.renewLease('r1', { owner: 'a', expires_at: T + 400 })).toBe(true);
        expect(await s.renewLease('r1', { owner: 'b', expires_at: T + 9999 })).toBe(false);
        await s.releaseLease('r1', 'b'); // not b's: nothing changes
        expect(await s.acquireLease('r1', { owner: 'b', expires_at: T + 500 }, T + 300)).toMatchObject({
          owner: 'a',
          expires_at: T + 400,
        });
        await s.releaseLease('r1', 'a');
        expect(await s.acquireLease('r1', { owner: 'b', expires_at: T + 500 }, T)).toMatchObject({ owner: 'b' });
        // Once taken over, the old holder's renewal says so.
        expect(await s.renewLease('r1', { owner: 'a', expires_at: T + 600 })).toBe(false);
        await s.finish('r1', 'running', null); // running again (a resume): the drive goes on
        expect(await s.acquireLease('r1', { owner: 'c', expires_at: T + 500 }, T)).toMatchObject({ owner: 'b' });
        await s.finish('r1', 'suspended', null);
        expect(await s.acquireLease('r1', { owner: 'c', expires_at: T + 500 }, T)).toMatchObject({ owner: 'c' });
        await s.finish('r1', 'completed', 'OK');
        expect(await s.acquireLease('r1', { owner: 'd', expires_at: T + 500 }, T)).toMatchObject({ owner: 'd' });
        await s.close();
      });

      it('of two handles acquiring at once, exactly one gets the lease', async () => {
        const a = await h.make();
        const b = h.reopen ? await h.reopen(a) : a;
        for (let i = 0; i < 10; i++) await a.createRun(runRec(`r${i}`));
        for (let i = 0; i < 10; i++) {
          const got = await Promise.all([
            a.acquireLease(`r${i}`, { owner: 'a', expires_at: T + 100 }, T),
            b.acquireLease(`r${i}`, { owner: 'b', expires_at: T + 100 }, T),
          ]);
          expect(got[0]).toEqual(got[1]);
        }
        if (b !== a) await b.close();
        await a.close();
      });

      it('recoverRun refuses a run another live owner holds (E_RUN_LEASED) and runs nothing; after expiry it recovers it', async () => {
        const s = await h.make();
        const calls: string[] = [];
        const hang = tools([{ name: 'act', run: () => new Promise<never>(() => {}) }]);
        const prog = program([
          { id: 'act', kind: 'tool', tool: 'act', next: 'done' },
          { id: 'done', kind: 'end', outcome: 'OK' },
        ]);
        void runProgram({ program: prog, input: {}, model: scripted('answers: {}'), tools: hang, store: s });
        // Until the run is stored and its tool has started (a busy database may take a while).
        let run: Awaited<ReturnType<Store['getRun']>>;
        for (let waited = 0; !(run = (await s.listRuns({ status: 'running' }))[0]); waited += 10) {
          if (waited > 10_000) throw new Error('the run was not stored within 10 s');
          await new Promise((r) => setTimeout(r, 10));
        }
        const ok = tools([{ name: 'act', run: async (_a, ctx) => (calls.push(ctx.idempotencyKey), { ok: true }) }]);
        const rec = (now?: number) =>
          recoverRun({
            store: s,
            runId: run!.run_id,
            model: scripted('answers: {}'),
            tools: ok,
            ...(now ? { lease: { now: () => now } } : {}),
          });
        await expect(rec()).rejects.toMatchObject({ code: 'E_RUN_LEASED', lease: { owner: expect.any(String) } });
        expect(calls).toEqual([]);
        const r = await rec(Date.now() + 3_600_000);
        expect(r).toMatchObject({ status: 'completed', reinvoked: [`${run!.run_id}/act/1`] });
        expect(calls).toEqual([`${run!.run_id}/act/1`]);
        await s.close();
      });

      it('the heartbeat keeps the lease through a tool call longer than the lease; a drive whose lease was taken stops with E_LEASE_LOST', async () => {
        const s = await h.make();
        const prog = program([
          { id: 'slow', kind: 'tool', tool: 'slow', next: 'after' },
          { id: 'after', kind: 'tool', tool: 'after', next: 'done' },
          { id: 'done', kind: 'end', outcome: 'OK' },
        ]);
        const after: string[] = [];
        let release!: () => void;
        const reg = tools([
          { name: 'slow', run: () => new Promise((r) => (release = () => r({ ok: true }))) },
          { name: 'after', run: async (_a, ctx) => (after.push(ctx.idempotencyKey), { ok: true }) },
        ]);
        const run = runProgram({
          program: prog,
          input: {},
          model: scripted('answers: {}'),
          tools: reg,
          store: s,
          lease: { ttlMs: 150 },
        });
        run.catch(() => {});
        await new Promise((r) => setTimeout(r, 600)); // four lease durations: renewed all along
        const [r] = await s.listRuns({ status: 'running' });
        const other = RunLease.take(s, r!.run_id, { owner: 'other', ttlMs: 60_000 });
        await expect(other).rejects.toMatchObject({ code: 'E_RUN_LEASED' });
        // Another owner takes it over as if it had expired: the drive's next renewal finds it gone.
        await s.acquireLease(r!.run_id, { owner: 'other', expires_at: Date.now() + 60_000 }, Date.now() + 3_600_000);
        await new Promise((res) => setTimeout(res, 200));
        release();
        await expect(run).rejects.toMatchObject({ code: 'E_LEASE_LOST' });
        expect(after).toEqual([]);
        expect(await s.getRun(r!.run_id)).toMatchObject({ status: 'running' });
        await s.close();
      });
    });

    describe('close', () => {
      it('is idempotent, and every other call after it rejects with E_STORE_CLOSED', async () => {
        const s = await h.make();
        await s.createRun(runRec('r1'));
        const genesis = chain('r1', 1)[0]!;
        await s.close();
        await s.close();
        // Keyed by method: a method added to Store does not compile here until it is covered.
        const calls: { [M in Exclude<keyof Store, 'close'>]: () => Promise<unknown> } = {
          createRun: () => s.createRun(runRec('r2')),
          append: () => s.append('r1', [genesis]),
          finish: () => s.finish('r1', 'failed', null),
          writeRun: () => s.writeRun!('r2', { create: { run: runRec('r2') }, events: [] }),
          getRun: () => s.getRun('r1'),
          events: () => s.events('r1'),
          listRuns: () => s.listRuns(),
          subjectSecret: () => s.subjectSecret(),
          vault: () => s.vault('r1'),
          vaultBySubject: () => s.vaultBySubject('sha256:s'),
          eraseValues: () => s.eraseValues('r1', 'sha256:s', genesis),
          flushErased: () => s.flushErased!(),
          invocations: () => s.invocations('r1'),
          reinvoked: () => s.reinvoked('r1', { key: 'k', step: 's', tool: 't', attempt: 1 }),
          acquireLease: () => s.acquireLease('r1', { owner: 'a', expires_at: 2 }, 1),
          renewLease: () => s.renewLease('r1', { owner: 'a', expires_at: 2 }),
          releaseLease: () => s.releaseLease('r1', 'a'),
        };
        for (const [method, call] of Object.entries(calls))
          // Optional methods (flushErased: stores with files) are checked where the store has them.
          if (method in s) await expect(call(), method).rejects.toMatchObject({ code: 'E_STORE_CLOSED' });
      });

      it('resolves once the writes made before it are stored', async () => {
        const s = await h.make();
        await s.createRun(runRec('r1'));
        const evs = chain('r1', 3);
        // Not awaited: close() must not drop writes the store has accepted (a pending group commit).
        const writes = [s.append('r1', evs.slice(0, 2)), s.append('r1', [evs[2]!]), s.finish('r1', 'completed', 'OK')];
        await s.close();
        await Promise.all(writes);
        // A store without a second handle (memory) keeps nothing after close.
        if (!h.reopen) return;
        const again = await h.reopen(s);
        expect(await again.events('r1')).toEqual(evs);
        expect(await again.getRun('r1')).toMatchObject({ status: 'completed', outcome: 'OK', event_count: 3 });
        await again.close();
      });
    });

    describe('idempotency keys', () => {
      const toolProgram = program([
        { id: 'act', kind: 'tool', tool: 'act', on_error: { action: 'retry', max_attempts: 3 }, next: 'done' },
        { id: 'done', kind: 'end', outcome: 'SUCCESS' },
      ]);

      it('counts every invocation of a key with the step_started that precedes it (retries share the key), and survives a reopen', async () => {
        const s = await h.make();
        let n = 0;
        const reg = tools([
          {
            name: 'act',
            run: async () => {
              if (++n < 3) throw new Error('flaky');
              return { ok: true };
            },
          },
        ]);
        const r = await runProgram({
          program: toolProgram,
          input: {},
          model: scripted('answers: {}'),
          tools: reg,
          store: s,
          ...det(),
        });
        expect(r.outcome).toBe('SUCCESS');
        const other = h.reopen ? await h.reopen(s) : s;
        expect(await other.invocations(r.run_id)).toEqual([
          { key: `${r.run_id}/act/1`, run_id: r.run_id, step: 'act', tool: 'act', attempt: 3, invocations: 3 },
        ]);
        expect(await other.invocations('r-none')).toEqual([]);
        if (other !== s) await other.close();
        await s.close();
      });

      it('reinvoked counts a recovered re-invocation; an unknown key is refused with a code', async () => {
        const s = await h.make();
        await s.createRun(runRec('r1'));
        const c = new TraceChain(nodeHasher);
        c.append(
          {
            type: 'run_started',
            run_id: 'r1',
            program_id: 'p',
            program_hash: 'a'.repeat(64),
            policy_hash: 'b'.repeat(64),
            input_hash: 'c'.repeat(64),
            runtime_version: 't',
            model: { id: 'm', scripted: true },
          },
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
            idempotency_key: 'r1/pay/1',
          } as never,
          '2026-01-01T00:00:00.001Z',
        );
        for (const e of c.events) await s.append('r1', [e]);
        expect(await s.reinvoked('r1', { key: 'r1/pay/1', step: 'pay', tool: 'pay', attempt: 1 })).toBe(2);
        expect(await s.invocations('r1')).toMatchObject([{ key: 'r1/pay/1', invocations: 2, attempt: 1 }]);
        // A key the table lacks (a run stored before the table existed) enters with 2 invocations.
        expect(await s.reinvoked('r1', { key: 'r1/old/1', step: 'old', tool: 'pay', attempt: 1 })).toBe(2);
        expect((await s.invocations('r1')).map((x) => `${x.key} ${x.invocations}`).sort()).toEqual([
          'r1/old/1 2',
          'r1/pay/1 2',
        ]);
        await expect(s.reinvoked('nope', { key: 'k', step: 's', tool: 't', attempt: 1 })).rejects.toMatchObject({
          code: 'E_STORE_NO_RUN',
        });
        await s.close();
      });

      it('counts the invocations invocationUpserts decides, whether the events come in one append or one by one', async () => {
        const s = await h.make();
        for (const id of ['one', 'each']) await s.createRun(runRec(id));
        await s.append('one', toolStarts('one'));
        for (const e of toolStarts('each')) await s.append('each', [e]);
        const expected = (id: string) => [
          { key: `${id}/pay/1`, run_id: id, step: 'pay', tool: 'pay', attempt: 2, invocations: 2 },
          { key: `${id}/ship/1`, run_id: id, step: 'ship', tool: 'ship', attempt: 1, invocations: 1 },
        ];
        expect(await s.invocations('one')).toEqual(expected('one'));
        expect(await s.invocations('each')).toEqual(expected('each'));
        // The rows are those the shared bookkeeping computes from the events, applied as upserts.
        expect(invocationUpserts(toolStarts('one')).map((u) => [u.key, u.attempt, u.enter, u.first_seq])).toEqual([
          ['one/pay/1', 2, 2, 1],
          ['one/ship/1', 1, 1, 5],
        ]);
        await s.close();
      });

      it('lists keys in first-invocation order: a key entered by a re-invocation (its start predates the table) comes first', async () => {
        const s = await h.make();
        await s.createRun(runRec('r1'));
        await s.append('r1', toolStarts('r1'));
        expect(await s.reinvoked('r1', { key: 'r1/ship/1', step: 'ship', tool: 'ship', attempt: 1 })).toBe(2);
        expect(await s.reinvoked('r1', { key: 'r1/legacy/1', step: 'legacy', tool: 'pay', attempt: 1 })).toBe(2);
        expect(await s.reinvoked('r1', { key: 'r1/legacy/1', step: 'legacy', tool: 'pay', attempt: 1 })).toBe(3);
        expect((await s.invocations('r1')).map((x) => `${x.key} ${x.attempt} ${x.invocations}`)).toEqual([
          'r1/legacy/1 1 3',
          'r1/pay/1 2 2',
          'r1/ship/1 1 2',
        ]);
        await s.close();
      });

      it('keeps one program per content: runs of the same program share it, and each reads back an equal, independent copy', async () => {
        const s = await h.make();
        const prog = program([{ id: 'done', kind: 'end', outcome: 'OK' }]);
        await s.createRun({ ...runRec('a'), program: prog });
        await s.createRun({ ...runRec('b'), program: structuredClone(prog) });
        const a = (await s.getRun('a'))!;
        const b = (await s.getRun('b'))!;
        expect(a.program).toEqual(prog);
        expect(b.program).toEqual(prog);
        (a.program as { id: string }).id = 'mutated';
        expect((await s.getRun('a'))!.program).toEqual(prog);
        await s.close();
      });
    });

    describe('suspend and resume', () => {
      const waitProgram = program([
        {
          id: 'approval',
          kind: 'wait',
          role: 'approver',
          event: { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } } },
          next: 'act',
        },
        { id: 'act', kind: 'tool', tool: 'act', next: 'done' },
        { id: 'done', kind: 'end', outcome: 'SUCCESS' },
      ]);
      /** A new store holding one run suspended at the wait; `acted` collects the tool's idempotency keys. */
      const suspendedRun = async () => {
        const s = await h.make();
        const acted: string[] = [];
        const reg = tools([{ name: 'act', run: async (_a, ctx) => (acted.push(ctx.idempotencyKey), { ok: true }) }]);
        const model = scripted('answers: {}');
        const r = await runProgram({ program: waitProgram, input: {}, model, tools: reg, store: s, ...det() });
        return { s, acted, reg, model, r };
      };

      it('keeps a suspended run durable: status, cursor and events survive a reopen, and the resume continues from the wait', async () => {
        const { s, acted, reg, model, r } = await suspendedRun();
        expect(r.status).toBe('suspended');
        const other = h.reopen ? await h.reopen(s) : s;
        expect(await other.getRun(r.run_id)).toMatchObject({ status: 'suspended', event_count: 2 });
        expect((await other.listRuns({ status: 'suspended' })).map((x) => x.run_id)).toEqual([r.run_id]);
        const done = await resumeRun({
          store: other,
          runId: r.run_id,
          event: { payload: { ok: true }, role: 'approver' },
          model,
          tools: reg,
        });
        expect(done).toMatchObject({ resume: 'resumed', status: 'completed', outcome: 'SUCCESS' });
        expect(await s.events(r.run_id)).toEqual(JSON.parse(JSON.stringify(done.events)));
        expect(await s.getRun(r.run_id)).toMatchObject({
          status: 'completed',
          outcome: 'SUCCESS',
          event_count: done.events.length,
        });
        expect(acted).toHaveLength(1);
        if (other !== s) await other.close();
        await s.close();
      });

      it('two resumes racing on two handles: one event is taken, the other resume runs nothing', async () => {
        const { s, acted, reg, model, r } = await suspendedRun();
        const other = h.reopen ? await h.reopen(s) : s;
        const results = await Promise.allSettled([
          resumeRun({
            store: s,
            runId: r.run_id,
            event: { payload: { ok: true }, role: 'approver' },
            model,
            tools: reg,
          }),
          resumeRun({
            store: other,
            runId: r.run_id,
            event: { payload: { ok: false }, role: 'approver' },
            model,
            tools: reg,
          }),
        ]);
        expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
        expect(results.find((x) => x.status === 'rejected')).toMatchObject({ reason: { code: 'E_RESUME_CONFLICT' } });
        const events = await s.events(r.run_id);
        expect(events.filter((e) => e.type === 'run_resumed')).toHaveLength(1);
        expect(events.at(-1)).toMatchObject({ type: 'run_finished', outcome: 'SUCCESS' });
        expect(acted).toHaveLength(1);
        if (other !== s) await other.close();
        await s.close();
      });
    });

    // Every store of this repository has writeRun (it is optional in the Store interface).
    describe('writeRun: creation, events and status in one transaction', () => {
      const leased = (id: string) => ({ ...runRec(id), lease: { owner: 'w/1', expires_at: Date.now() + 60_000 } });

      it('creates a run with its first events and its terminal status; the status releases the lease', async () => {
        const s = await h.make();
        const evs = chain('w1', 3);
        await s.writeRun!('w1', {
          create: { run: leased('w1') },
          events: evs,
          finish: { status: 'completed', outcome: 'OK' },
        });
        expect(await s.events('w1')).toEqual(evs);
        expect(await s.getRun('w1')).toEqual({
          ...runRec('w1'),
          status: 'completed',
          outcome: 'OK',
          head_hash: evs[2]!.hash,
          event_count: 3,
        });
        expect(
          (await s.acquireLease('w1', { owner: 'other', expires_at: Date.now() + 60_000 }, Date.now())).owner,
        ).toBe('other');
        // Without create and finish it is an append; with finish only, a status.
        await s.writeRun!('w2', { create: { run: leased('w2') }, events: evs.slice(0, 0).concat(chain('w2', 1)) });
        await s.writeRun!('w2', { events: chain('w2', 3).slice(1) });
        await s.writeRun!('w2', { events: [], finish: { status: 'failed', outcome: null } });
        expect(await s.getRun('w2')).toMatchObject({ status: 'failed', outcome: null, event_count: 3 });
        await s.close();
      });

      it('all or nothing: a refused part writes nothing of the rest, with the codes of createRun, append and finish', async () => {
        const s = await h.make();
        const gap = chain('w1', 3);
        // Events that do not start the run (a gap): the run is not created either.
        await expect(
          s.writeRun!('w1', {
            create: { run: leased('w1') },
            events: [gap[0]!, gap[2]!],
            finish: { status: 'completed', outcome: 'OK' },
          }),
        ).rejects.toMatchObject({ code: 'E_STORE_CONFLICT' });
        await expect(s.writeRun!('w1', { create: { run: leased('w1') }, events: gap.slice(1) })).rejects.toMatchObject({
          code: 'E_STORE_CONFLICT',
        });
        expect(await s.getRun('w1')).toBeUndefined();
        expect(await s.events('w1')).toEqual([]);
        // A duplicate run: nothing is appended to the existing one, even events that would fit it.
        await s.createRun(runRec('w2'));
        await expect(
          s.writeRun!('w2', {
            create: { run: { ...leased('w2'), input: { other: true } } },
            events: chain('w2', 2),
            finish: { status: 'completed', outcome: 'OK' },
          }),
        ).rejects.toMatchObject({ code: 'E_STORE_DUPLICATE_RUN' });
        expect(await s.getRun('w2')).toEqual({ ...runRec('w2'), head_hash: '', event_count: 0 });
        // A repeated seq with a status: neither is stored.
        const evs = chain('w2', 2);
        await s.append('w2', evs);
        await expect(
          s.writeRun!('w2', { events: [evs[1]!], finish: { status: 'completed', outcome: 'OK' } }),
        ).rejects.toMatchObject({ code: 'E_STORE_CONFLICT' });
        expect(await s.getRun('w2')).toMatchObject({ status: 'running', outcome: null, event_count: 2 });
        await expect(
          s.writeRun!('nope', { events: chain('nope', 1), finish: { status: 'failed', outcome: null } }),
        ).rejects.toMatchObject({ code: 'E_STORE_NO_RUN' });
        await expect(s.writeRun!('w3', { create: { run: leased('w4') }, events: [] })).rejects.toMatchObject({
          code: 'E_STORE_CONFLICT',
        });
        expect(await s.getRun('w3')).toBeUndefined();
        expect(await s.getRun('w4')).toBeUndefined();
        await s.close();
      });

      it('many at once: each stands alone; of two creating one run, exactly one wins and its events alone are stored', async () => {
        const s = await h.make();
        const other = h.reopen ? await h.reopen(s) : s;
        const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
        // Issued without awaiting, so a store with group commit puts them in one group.
        const results = await Promise.allSettled([
          ...ids.map((id) =>
            s.writeRun!(id, {
              create: { run: leased(id) },
              events: chain(id, 2),
              finish: { status: 'completed', outcome: 'OK' },
            }),
          ),
          s.writeRun!('m3', { create: { run: leased('m3') }, events: chain('m3', 1) }),
          other.writeRun!('dup', { create: { run: leased('dup') }, events: chain('dup', 2) }),
          s.writeRun!('dup', { create: { run: leased('dup') }, events: chain('dup', 1) }),
        ]);
        expect(results.slice(0, 20).every((r) => r.status === 'fulfilled')).toBe(true);
        expect(results[20]).toMatchObject({ status: 'rejected', reason: { code: 'E_STORE_DUPLICATE_RUN' } });
        expect(results.slice(21).filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        expect(results.slice(21).find((r) => r.status === 'rejected')).toMatchObject({
          reason: { code: 'E_STORE_DUPLICATE_RUN' },
        });
        for (const id of ids) expect(await s.getRun(id)).toMatchObject({ status: 'completed', event_count: 2 });
        const winner = results[21]!.status === 'fulfilled' ? 2 : 1;
        expect(await s.events('dup')).toEqual(chain('dup', winner));
        if (other !== s) await other.close();
        await s.close();
      });

      it('stores the vault rows of the run it creates, and none for a duplicate', async () => {
        const s = await h.make();
        const row = {
          path: 'input.email',
          subject: 'sha256:s',
          commitment: `vault:sha256:${'e'.repeat(64)}`,
          salt: 'salt',
          value: 'ana@example.com',
        };
        await s.writeRun!('v1', { create: { run: leased('v1'), vault: [row] }, events: chain('v1', 1) });
        expect(await s.vault('v1')).toEqual([{ run_id: 'v1', ...row, erased: false }]);
        await expect(
          s.writeRun!('v1', { create: { run: leased('v1'), vault: [{ ...row, subject: 'sha256:x' }] }, events: [] }),
        ).rejects.toMatchObject({ code: 'E_STORE_DUPLICATE_RUN' });
        expect(await s.vaultBySubject('sha256:x')).toEqual([]);
        await s.close();
      });
    });

    describe('erase (vault)', () => {
      const vaultRows = (subject: string | null) => [
        {
          path: 'input.email',
          subject,
          commitment: `vault:sha256:${'e'.repeat(64)}`,
          salt: 'salt-email',
          value: 'ana@example.com',
        },
        {
          path: 'input.name',
          subject,
          commitment: `vault:sha256:${'f'.repeat(64)}`,
          salt: 'salt-name',
          value: 'Ana Díaz',
        },
      ];
      const erasedEvent = (prev: TraceEvent) => {
        const c = new TraceChain(nodeHasher, { events: [prev], keep: false });
        return c.append(
          {
            type: 'values_erased',
            subject: 'sha256:s',
            paths: ['input.email', 'input.name'],
            commitments: [`vault:sha256:${'e'.repeat(64)}`, `vault:sha256:${'f'.repeat(64)}`],
          } as unknown as TraceEvent,
          '2026-01-02T00:00:00.000Z',
        );
      };

      it('keeps vault rows with the run, in path order, and finds them by subject across runs', async () => {
        const s = await h.make();
        await s.createRun(runRec('r1'), vaultRows('sha256:s').reverse());
        await s.createRun(runRec('r2'), vaultRows('sha256:other'));
        await s.createRun(runRec('r3'), vaultRows('sha256:s'));
        await s.createRun(runRec('r4'));
        expect(await s.vault('r1')).toEqual(vaultRows('sha256:s').map((v) => ({ run_id: 'r1', ...v, erased: false })));
        expect(await s.vault('r4')).toEqual([]);
        expect((await s.vaultBySubject('sha256:s')).map((v) => [v.run_id, v.path])).toEqual([
          ['r1', 'input.email'],
          ['r1', 'input.name'],
          ['r3', 'input.email'],
          ['r3', 'input.name'],
        ]);
        expect(await s.vaultBySubject('sha256:nobody')).toEqual([]);
        await s.close();
      });

      it('a duplicate run writes no vault rows', async () => {
        const s = await h.make();
        await s.createRun(runRec('r1'), vaultRows('sha256:s'));
        await expect(s.createRun(runRec('r1'), vaultRows('sha256:x'))).rejects.toMatchObject({
          code: 'E_STORE_DUPLICATE_RUN',
        });
        expect(await s.vaultBySubject('sha256:x')).toEqual([]);
        await s.close();
      });

      it("eraseValues tombstones the subject's rows and appends the event atomically; nothing else changes", async () => {
        const s = await h.make();
        await s.createRun(runRec('r1'), [
          ...vaultRows('sha256:s'),
          {
            path: 'input.other',
            subject: 'sha256:t',
            commitment: `vault:sha256:${'a'.repeat(64)}`,
            salt: 'x',
            value: 1,
          },
        ]);
        await s.createRun(runRec('r2'), vaultRows('sha256:s'));
        const evs = chain('r1', 3);
        for (const e of evs) await s.append('r1', [e]);
        const before = await s.getRun('r2');
        const e = erasedEvent(evs[2]!);
        expect(await s.eraseValues('r1', 'sha256:s', e)).toBe(2);
        expect((await s.vault('r1')).map((v) => [v.path, v.salt, v.value, v.erased])).toEqual([
          ['input.email', null, null, true],
          ['input.name', null, null, true],
          ['input.other', 'x', 1, false],
        ]);
        expect((await s.vault('r1')).map((v) => v.commitment)).toEqual([
          `vault:sha256:${'e'.repeat(64)}`,
          `vault:sha256:${'f'.repeat(64)}`,
          `vault:sha256:${'a'.repeat(64)}`,
        ]);
        expect((await s.events('r1')).map((x) => x.hash)).toEqual([...evs, e].map((x) => x.hash));
        expect((await s.getRun('r1'))?.head_hash).toBe(e.hash);
        expect(await s.getRun('r2')).toEqual(before);
        expect((await s.vault('r2')).every((v) => !v.erased)).toBe(true);
        // Erasing again finds no live row; the event still needs the next seq.
        const again = erasedEvent(e);
        expect(await s.eraseValues('r1', 'sha256:s', again)).toBe(0);
        await s.close();
      });

      it('an erase whose event loses the compare-and-swap erases nothing', async () => {
        const s = await h.make();
        await s.createRun(runRec('r1'), vaultRows('sha256:s'));
        const evs = chain('r1', 3);
        for (const e of evs) await s.append('r1', [e]);
        const stale = erasedEvent(evs[1]!);
        await expect(s.eraseValues('r1', 'sha256:s', stale)).rejects.toMatchObject({ code: 'E_STORE_CONFLICT' });
        expect((await s.vault('r1')).every((v) => !v.erased && v.value !== null)).toBe(true);
        expect(await s.events('r1')).toEqual(evs);
        await expect(s.eraseValues('nope', 'sha256:s', stale)).rejects.toMatchObject({ code: 'E_STORE_NO_RUN' });
        await s.close();
      });
    });
  });
}
