import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pureHasher, verifyBundle } from '@nano-vm/kernel';
import { SqliteStore, nodeHasher, recoverRun, runProgram } from '../src/internal.js';
import { program, scripted, tools } from './fixtures.js';

const prog = program([
  {
    id: 'ask',
    kind: 'llm',
    prompt: 'amount {{input.value}}',
    projection: ['input.value'],
    output: { enum: ['charge'] },
    next: 'charge',
  },
  { id: 'charge', kind: 'tool', tool: 'charge', args: { amount: 'input.value' }, next: 'receipt' },
  { id: 'receipt', kind: 'tool', tool: 'receipt', next: 'done' },
  { id: 'done', kind: 'end', outcome: 'SUCCESS' },
]);

describe('recoverRun', () => {
  it('finishes a run whose process died mid-tool: same idempotency key, chain verifies, nothing lost', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'nano-vm-recover-')), 'runs.db');
    const calls: string[] = [];
    // First process: the charge tool starts and never returns (the process "dies" here).
    const hung = tools([
      {
        name: 'charge',
        run: (_a, ctx) => {
          calls.push(ctx.idempotencyKey);
          return new Promise(() => {});
        },
      },
      { name: 'receipt', run: async () => ({ sent: true }) },
    ]);
    const before = new SqliteStore(path);
    void runProgram({
      program: prog,
      input: { value: 42 },
      model: scripted('answers: { ask: [charge] }'),
      tools: hung,
      store: before,
    });
    await new Promise((r) => setTimeout(r, 50));
    const [run] = await before.listRuns({ status: 'running' });
    const storedBefore = await before.events(run!.run_id);
    expect(storedBefore.map((e) => e.type)).toEqual(['run_started', 'step_completed', 'step_started']);
    await before.close();

    // Second process: recover with working tools.
    const after = new SqliteStore(path);
    const ok = tools([
      {
        name: 'charge',
        run: async (_a, ctx) => {
          calls.push(ctx.idempotencyKey);
          return { charged: 42 };
        },
      },
      {
        name: 'receipt',
        run: async (_a, ctx) => {
          calls.push(ctx.idempotencyKey);
          return { sent: true };
        },
      },
    ]);
    const r = await recoverRun({
      store: after,
      runId: run!.run_id,
      model: scripted('answers: { ask: [charge] }'),
      tools: ok,
      hasher: nodeHasher,
    });
    expect(r).toMatchObject({ status: 'completed', outcome: 'SUCCESS', resumed_from_seq: 3 });
    // The model was not asked again; the started charge was re-invoked with its original key, once.
    expect(calls).toEqual([`${run!.run_id}/charge/1`, `${run!.run_id}/charge/1`, `${run!.run_id}/receipt/1`]);
    expect(r.reinvoked).toEqual([`${run!.run_id}/charge/1`]);
    const stored = await after.events(run!.run_id);
    expect(stored.slice(0, 3)).toEqual(storedBefore);
    expect(stored.map((e) => e.hash)).toEqual(r.events.map((e) => e.hash));
    expect(verifyBundle(JSON.parse(JSON.stringify(r.bundle)), pureHasher)).toMatchObject({ ok: true });
    expect(await after.getRun(run!.run_id)).toMatchObject({ status: 'completed', outcome: 'SUCCESS' });
    await expect(
      recoverRun({ store: after, runId: run!.run_id, model: scripted('answers: {}'), tools: ok }),
    ).rejects.toMatchObject({ code: 'E_RECOVERY_NOT_RUNNING' });
    await after.close();
  });

  it('refuses to continue when the stored events no longer re-derive', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'nano-vm-recover-')), 'runs.db');
    const s = new SqliteStore(path);
    const hung = tools([
      { name: 'charge', run: () => new Promise(() => {}) },
      { name: 'receipt', run: async () => ({}) },
    ]);
    void runProgram({
      program: prog,
      input: { value: 1 },
      model: scripted('answers: { ask: [charge] }'),
      tools: hung,
      store: s,
    });
    await new Promise((r) => setTimeout(r, 50));
    const [run] = await s.listRuns({ status: 'running' });
    // Someone edits a stored event (its recorded answer) behind the store's back.
    s.db
      .prepare(
        `UPDATE events SET body = replace(body, '"raw":"charge"', '"raw":"refund"') WHERE run_no = (SELECT run_no FROM runs WHERE run_id = ?) AND seq = 1`,
      )
      .run(run!.run_id);
    await expect(
      recoverRun({ store: s, runId: run!.run_id, model: scripted('answers: {}'), tools: hung }),
    ).rejects.toMatchObject({ code: 'E_RECOVERY_DIVERGED' });
    await s.close();
  });
});

describe('recoverRun before the genesis event', () => {
  it('a run created but killed before its first event starts from the beginning', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'nano-vm-recover-')), 'runs.db');
    const s = new SqliteStore(path);
    await s.createRun({
      run_id: 'run-early',
      program_id: prog.id,
      program: prog,
      policy: null,
      input: { value: 5 },
      status: 'running',
      outcome: null,
    });
    const ok = tools([
      { name: 'charge', run: async () => ({ charged: 5 }) },
      { name: 'receipt', run: async () => ({ sent: true }) },
    ]);
    const r = await recoverRun({
      store: s,
      runId: 'run-early',
      model: scripted('answers: { ask: [charge] }'),
      tools: ok,
    });
    expect(r).toMatchObject({ status: 'completed', outcome: 'SUCCESS', resumed_from_seq: 0, reinvoked: [] });
    expect(verifyBundle(JSON.parse(JSON.stringify(r.bundle)), pureHasher)).toMatchObject({ ok: true });
    await s.close();
  });
});

describe('recoverRun with a parallel step', () => {
  it('children whose results were never joined run again with their original keys', async () => {
    const par = program([
      {
        id: 'fan',
        kind: 'parallel',
        children: [
          { id: 'x', kind: 'tool', tool: 'x' },
          { id: 'y', kind: 'tool', tool: 'y' },
        ],
        next: 'done',
      },
      { id: 'done', kind: 'end', outcome: 'SUCCESS' },
    ]);
    const path = join(mkdtempSync(join(tmpdir(), 'nano-vm-recover-')), 'runs.db');
    const s = new SqliteStore(path);
    const keys: string[] = [];
    const hung = tools([
      {
        name: 'x',
        run: async (_a, c) => {
          keys.push(c.idempotencyKey);
          return { x: 1 };
        },
      },
      { name: 'y', run: () => new Promise(() => {}) },
    ]);
    void runProgram({ program: par, input: {}, model: scripted('answers: {}'), tools: hung, store: s });
    await new Promise((r) => setTimeout(r, 50));
    const [run] = await s.listRuns({ status: 'running' });
    const ok = tools([
      {
        name: 'x',
        run: async (_a, c) => {
          keys.push(c.idempotencyKey);
          return { x: 1 };
        },
      },
      {
        name: 'y',
        run: async (_a, c) => {
          keys.push(c.idempotencyKey);
          return { y: 2 };
        },
      },
    ]);
    const r = await recoverRun({ store: s, runId: run!.run_id, model: scripted('answers: {}'), tools: ok });
    expect(r).toMatchObject({ status: 'completed', outcome: 'SUCCESS', resumed_from_seq: 4 });
    expect(keys.sort()).toEqual([`${run!.run_id}/fan/x/1`, `${run!.run_id}/fan/x/1`, `${run!.run_id}/fan/y/1`].sort());
    expect(verifyBundle(JSON.parse(JSON.stringify(r.bundle)), pureHasher)).toMatchObject({ ok: true });
    await s.close();
  });
});
