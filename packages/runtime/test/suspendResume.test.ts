/**
 * Wait steps: a run suspends durably at a wait step, resumes with a validated external event from
 * the declared role, times out onto its timeout edge, and replays, recovers and verifies like any
 * other run.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Machine, pureHasher, replayBundle, verifyBundle, type Clock, type Program, type Step } from '@nano-vm/kernel';
import {
  FixedClock,
  MemoryStore,
  SeededIds,
  nodeHasher,
  overdueWaits,
  recoverRun,
  resumeRun,
  runProgram,
  SqliteStore,
  type ResumeResult,
  type Store,
} from '../src/internal.js';
import { program, scripted, tools } from './fixtures.js';

const approvalSteps = (wait: Partial<Extract<Step, { kind: 'wait' }>> = {}): Step[] => [
  {
    id: 'triage',
    kind: 'llm',
    prompt: 'Triage {{input.value}}',
    projection: ['input.value'],
    output: { enum: ['routine', 'unusual'] },
    next: 'approval',
  },
  {
    id: 'approval',
    kind: 'wait',
    role: 'approver',
    event: {
      type: 'object',
      additionalProperties: false,
      required: ['decision'],
      properties: { decision: { enum: ['approve', 'reject'] }, note: { type: 'string' } },
    },
    next: 'decision',
    ...wait,
  },
  {
    id: 'decision',
    kind: 'condition',
    cases: [{ when: 'steps.approval.output.decision == "approve"', next: 'pay' }],
    else: 'rejected',
  },
  { id: 'pay', kind: 'tool', tool: 'pay', args: { value: 'input.value' }, next: 'paid' },
  { id: 'paid', kind: 'end', outcome: 'PAID' },
  { id: 'rejected', kind: 'end', outcome: 'REJECTED', failure: true },
  ...(wait.on_timeout === 'expired'
    ? [{ id: 'expired', kind: 'end', outcome: 'EXPIRED', failure: true } as const]
    : []),
];

function harness(p: Program = program(approvalSteps())) {
  const paid: unknown[] = [];
  const reg = tools([{ name: 'pay', run: async (args, ctx) => (paid.push([args, ctx.idempotencyKey]), { ok: true }) }]);
  const model = scripted('answers: { triage: [unusual] }');
  return { p, paid, reg, model };
}

async function suspendedRun(store: Store, clock: Clock = new FixedClock(), p?: Program) {
  const h = harness(p);
  const r = await runProgram({
    program: h.p,
    input: { value: 7 },
    model: h.model,
    tools: h.reg,
    store,
    clock,
    ids: new SeededIds(nodeHasher),
  });
  return { ...h, r };
}

const approve = { payload: { decision: 'approve' }, role: 'approver' };

describe('wait steps: suspend', () => {
  it('suspends at the wait step: status suspended in the result, the receipt and the store; the bundle verifies and replays', async () => {
    const store = new MemoryStore();
    const { r, paid } = await suspendedRun(store);
    expect(r.status).toBe('suspended');
    expect(r.waiting).toEqual({ type: 'wait', step: 'approval', visit: 1, role: 'approver' });
    expect(r.events.at(-1)).toMatchObject({ type: 'run_suspended', step: 'approval', visit: 1, role: 'approver' });
    expect(JSON.stringify(r.events.at(-1))).not.toContain('deadline');
    expect(r.receipt).toMatchObject({ status: 'suspended', path: ['triage', 'approval'], finished_at: null });
    expect((await store.getRun(r.run_id))?.status).toBe('suspended');
    expect(paid).toEqual([]);
    expect(verifyBundle(r.bundle, pureHasher)).toMatchObject({ ok: true });
    expect(replayBundle(r.bundle, { hasher: pureHasher })).toMatchObject({ identical: true, status: 'suspended' });
  });
});

describe('wait steps: resume', () => {
  it('continues from the wait with the event as the step output, and the whole trace verifies and replays identically', async () => {
    const store = new MemoryStore();
    const { r, reg, model, paid } = await suspendedRun(store);
    const done = await resumeRun({
      store,
      runId: r.run_id,
      event: { ...approve, event_id: 'evt-1' },
      model,
      tools: reg,
      clock: new FixedClock(Date.UTC(2026, 0, 1, 0, 0, 30)),
    });
    expect(done).toMatchObject({
      resume: 'resumed',
      status: 'completed',
      outcome: 'PAID',
      resumed_from_seq: r.events.length,
    });
    expect(done.events[r.events.length]).toMatchObject({
      type: 'run_resumed',
      step: 'approval',
      event: { decision: 'approve' },
      role: 'approver',
      event_id: 'evt-1',
      next: 'decision',
    });
    expect(done.receipt.path).toEqual(['triage', 'approval', 'decision', 'pay', 'paid']);
    expect(paid).toHaveLength(1);
    expect(await store.events(r.run_id)).toEqual(done.events);
    expect((await store.getRun(r.run_id))?.status).toBe('completed');
    expect(verifyBundle(done.bundle, pureHasher)).toMatchObject({ ok: true });
    expect(replayBundle(done.bundle, { hasher: pureHasher })).toMatchObject({
      identical: true,
      status: 'completed',
      outcome: 'PAID',
    });
  });

  it('refuses a wrong role, a missing role and a payload outside the event schema, and changes nothing', async () => {
    const store = new MemoryStore();
    const { r, reg, model } = await suspendedRun(store);
    const before = await store.events(r.run_id);
    const tries = [
      [{ payload: { decision: 'approve' }, role: 'intern' }, 'E_RESUME_ROLE'],
      [{ payload: { decision: 'approve' } }, 'E_RESUME_ROLE'],
      [{ payload: { decision: 'maybe' }, role: 'approver' }, 'E_RESUME_EVENT_INVALID'],
      [{ payload: { decision: 'approve', amount: 1e9 }, role: 'approver' }, 'E_RESUME_EVENT_INVALID'],
      [{ payload: { decision: 'approve', note: Number.NaN }, role: 'approver' }, 'E_RESUME_EVENT_INVALID'],
    ] as const;
    for (const [event, code] of tries) {
      await expect(resumeRun({ store, runId: r.run_id, event, model, tools: reg })).rejects.toMatchObject({ code });
    }
    expect(await store.events(r.run_id)).toEqual(before);
    expect((await store.getRun(r.run_id))?.status).toBe('suspended');
  });

  it('is idempotent: the same event again is a no-op; a different event loses to the one taken (E_RESUME_CONFLICT)', async () => {
    const store = new MemoryStore();
    const { r, reg, model, paid } = await suspendedRun(store);
    const first = await resumeRun({ store, runId: r.run_id, event: approve, model, tools: reg });
    const again = await resumeRun({ store, runId: r.run_id, event: approve, model, tools: reg });
    expect(again).toMatchObject({
      resume: 'duplicate',
      status: 'completed',
      outcome: 'PAID',
      head_hash: first.head_hash,
    });
    await expect(
      resumeRun({
        store,
        runId: r.run_id,
        event: { payload: { decision: 'reject' }, role: 'approver' },
        model,
        tools: reg,
      }),
    ).rejects.toMatchObject({ code: 'E_RESUME_CONFLICT' });
    expect(paid).toHaveLength(1);
    expect(await store.events(r.run_id)).toHaveLength(first.events.length);
  });

  it('of two concurrent resumes exactly one is taken; the other loses cleanly and runs nothing', async () => {
    for (const [other, expected] of [
      [approve, 'duplicate'],
      [{ payload: { decision: 'reject' }, role: 'approver' }, 'E_RESUME_CONFLICT'],
    ] as const) {
      const store = new MemoryStore();
      const { r, reg, model, paid } = await suspendedRun(store);
      const results = await Promise.allSettled([
        resumeRun({ store, runId: r.run_id, event: approve, model, tools: reg }),
        resumeRun({ store, runId: r.run_id, event: other, model, tools: reg }),
      ]);
      expect(results[0]).toMatchObject({ status: 'fulfilled', value: { resume: 'resumed', outcome: 'PAID' } });
      if (expected === 'duplicate')
        expect(results[1]).toMatchObject({ status: 'fulfilled', value: { resume: 'duplicate' } });
      else expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: expected } });
      const events = await store.events(r.run_id);
      expect(events.filter((e) => e.type === 'run_resumed')).toHaveLength(1);
      expect(events.filter((e) => e.type === 'step_started' && e.step === 'pay')).toHaveLength(1);
      expect(paid).toHaveLength(1);
      expect(
        verifyBundle(
          { ...r.bundle, events, receipt: (results[0] as PromiseFulfilledResult<ResumeResult>).value.receipt },
          pureHasher,
        ),
      ).toMatchObject({ ok: true });
    }
  });

  it('two processes on one SQLite file: the resume that comes while the winner is still running loses with E_RESUME_CONFLICT', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'nano-vm-race-')), 'runs.db');
    const first = new SqliteStore(file);
    const { r, model, paid } = await suspendedRun(first);
    // The winner's tool call blocks until released, so the loser arrives while the run is `running`.
    let release!: () => void;
    const held = new Promise<void>((res) => (release = res));
    const slow = tools([{ name: 'pay', run: async () => (await held, paid.push('slow'), { ok: true }) }]);
    const winner = resumeRun({ store: first, runId: r.run_id, event: approve, model, tools: slow });
    const second = new SqliteStore(file);
    try {
      while ((await second.events(r.run_id)).every((e) => e.type !== 'run_resumed'))
        await new Promise((res) => setTimeout(res, 5));
      const loser = { payload: { decision: 'reject' }, role: 'approver' };
      await expect(
        resumeRun({ store: second, runId: r.run_id, event: loser, model, tools: slow }),
      ).rejects.toMatchObject({ code: 'E_RESUME_CONFLICT' });
      release();
      expect(await winner).toMatchObject({ resume: 'resumed', outcome: 'PAID' });
      const events = await second.events(r.run_id);
      expect(events.filter((e) => e.type === 'run_resumed')).toHaveLength(1);
      expect(paid).toEqual(['slow']);
    } finally {
      release();
      await winner.catch(() => undefined);
      await second.close();
      await first.close();
    }
  });

  it('a resume under another policy than the one pinned at genesis halts the run as POLICY_BLOCKED without taking the event', async () => {
    const store = new MemoryStore();
    const { r, reg, model, paid } = await suspendedRun(store);
    const offered = { format: 'nano-vm.policy/v1', id: 'looser', version: '2' };
    const res = await resumeRun({ store, runId: r.run_id, event: approve, model, tools: reg, policy: offered });
    expect(res).toMatchObject({ resume: 'policy_blocked', status: 'failed', outcome: 'POLICY_BLOCKED' });
    expect(res.events.some((e) => e.type === 'run_resumed')).toBe(false);
    expect(res.events.find((e) => e.type === 'transition_rejected')).toMatchObject({ rule: 'policy.pinned' });
    expect(paid).toEqual([]);
  });

  it('refuses an unknown run and a run that is not suspended', async () => {
    const store = new MemoryStore();
    const h = { ...harness(program([{ id: 'done', kind: 'end', outcome: 'OK' }])), model: scripted('answers: {}') };
    const done = await runProgram({ program: h.p, input: {}, model: h.model, tools: h.reg, store });
    await expect(
      resumeRun({ store, runId: 'run-nope', event: approve, model: h.model, tools: h.reg }),
    ).rejects.toMatchObject({ code: 'E_STORE_NO_RUN' });
    await expect(
      resumeRun({ store, runId: done.run_id, event: approve, model: h.model, tools: h.reg }),
    ).rejects.toMatchObject({ code: 'E_RESUME_NOT_SUSPENDED' });
  });
});

describe('wait steps: timeouts', () => {
  const t0 = Date.UTC(2026, 0, 1);

  it('an event after the deadline is not taken: the run takes on_timeout', async () => {
    const store = new MemoryStore();
    const { r, reg, model, paid } = await suspendedRun(
      store,
      new FixedClock(t0),
      program(approvalSteps({ timeout_ms: 60_000, on_timeout: 'expired' })),
    );
    expect(r.waiting).toMatchObject({ deadline_ms: t0 + 2 + 60_000 });
    expect(r.events.at(-1)).toMatchObject({ type: 'run_suspended', deadline: new Date(t0 + 2 + 60_000).toISOString() });
    const late = await resumeRun({
      store,
      runId: r.run_id,
      event: approve,
      model,
      tools: reg,
      clock: new FixedClock(t0 + 61_000),
    });
    expect(late).toMatchObject({ resume: 'timed_out', status: 'completed', outcome: 'EXPIRED' });
    expect(late.events.map((e) => e.type)).not.toContain('run_resumed');
    expect(late.events.find((e) => e.type === 'wait_timed_out')).toMatchObject({ step: 'approval', next: 'expired' });
    expect(paid).toEqual([]);
    expect(replayBundle(late.bundle, { hasher: pureHasher })).toMatchObject({ identical: true, outcome: 'EXPIRED' });
  });

  it('recover times out overdue waits only, and a wait without on_timeout fails the run with E_WAIT_TIMEOUT', async () => {
    const store = new MemoryStore();
    const h = harness(program(approvalSteps({ timeout_ms: 1000 })));
    const r = await runProgram({
      program: h.p,
      input: { value: 1 },
      model: h.model,
      tools: h.reg,
      store,
      clock: new FixedClock(t0),
    });
    expect(await overdueWaits(store, new FixedClock(t0 + 500))).toEqual([]);
    expect(await overdueWaits(store, new FixedClock(t0 + 5000))).toEqual([r.run_id]);
    const rec = await recoverRun({
      store,
      runId: r.run_id,
      model: h.model,
      tools: h.reg,
      clock: new FixedClock(t0 + 5000),
    });
    expect(rec).toMatchObject({ status: 'failed', receipt: { error: { code: 'E_WAIT_TIMEOUT', step: 'approval' } } });
    expect(verifyBundle(rec.bundle, pureHasher)).toMatchObject({ ok: true });
  });

  it('time spent suspended does not count against max_wall_ms', async () => {
    const store = new MemoryStore();
    const h = harness(program(approvalSteps(), { budgets: { max_wall_ms: 1000 } }));
    const r = await runProgram({
      program: h.p,
      input: { value: 1 },
      model: h.model,
      tools: h.reg,
      store,
      clock: new FixedClock(t0),
    });
    const done = await resumeRun({
      store,
      runId: r.run_id,
      event: approve,
      model: h.model,
      tools: h.reg,
      clock: new FixedClock(t0 + 3_600_000),
    });
    expect(done).toMatchObject({ status: 'completed', outcome: 'PAID' });
    expect(replayBundle(done.bundle, { hasher: pureHasher }).identical).toBe(true);
  });
});

describe('wait steps: recovery and replay', () => {
  it('a resume whose process died after storing its event is finished by recover, paying once', async () => {
    const store = new MemoryStore();
    const { r, model } = await suspendedRun(store);
    // The process dies inside the payment call that follows the resume.
    const dying = tools([{ name: 'pay', run: () => new Promise<never>(() => {}) }]);
    void resumeRun({ store, runId: r.run_id, event: approve, model, tools: dying, defaultTimeoutMs: 10 ** 9 });
    await new Promise((res) => setTimeout(res, 20));
    const stored = await store.events(r.run_id);
    expect(stored.at(-1)).toMatchObject({ type: 'step_started', step: 'pay' });
    expect((await store.getRun(r.run_id))?.status).toBe('running');
    const paid: unknown[] = [];
    const rec = await recoverRun({
      store,
      runId: r.run_id,
      model,
      tools: tools([{ name: 'pay', run: async (_a, ctx) => (paid.push(ctx.idempotencyKey), { ok: true }) }]),
    });
    expect(rec).toMatchObject({ status: 'completed', outcome: 'PAID', reinvoked: [`${r.run_id}/pay/1`] });
    expect(paid).toEqual([`${r.run_id}/pay/1`]);
    expect(replayBundle(rec.bundle, { hasher: pureHasher }).identical).toBe(true);
  });

  it('counterfactual replay against a program whose wait declares another role stops suspended there', async () => {
    const store = new MemoryStore();
    const { r, reg, model } = await suspendedRun(store);
    const done = await resumeRun({ store, runId: r.run_id, event: approve, model, tools: reg });
    const other = program(approvalSteps({ role: 'cfo' }));
    const cf = replayBundle(done.bundle, { hasher: pureHasher, program: other });
    expect(cf).toMatchObject({
      counterfactual: true,
      identical: false,
      status: 'suspended',
      path: ['triage', 'approval'],
    });
  });

  it('a machine refuses resume() and expire() when it is not waiting, and appends nothing', () => {
    const m = new Machine(
      program(approvalSteps()),
      { value: 1 },
      {
        runId: 'r',
        hasher: nodeHasher,
        clock: new FixedClock(),
        runtimeVersion: 't',
        model: { id: 'm', scripted: true },
      },
    );
    expect(m.next()).toMatchObject({ type: 'llm', step: 'triage' });
    expect(() => m.resume(approve)).toThrow(expect.objectContaining({ code: 'E_RESUME_NOT_SUSPENDED' }));
    expect(() => m.expire()).toThrow(expect.objectContaining({ code: 'E_RESUME_NOT_SUSPENDED' }));
    expect(m.events).toHaveLength(1);
  });
});
