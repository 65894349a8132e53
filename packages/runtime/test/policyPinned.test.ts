/**
 * The policy is pinned at genesis (docs/policy.md#pinned-at-genesis). A run that is continued —
 * recovered after a crash — by a host whose policy changed in the meantime halts as POLICY_BLOCKED
 * (rule policy.pinned) before any tool runs; under the same policy it re-derives its policy events
 * and finishes normally. Either way the stored chain verifies.
 */
import { describe, expect, it } from 'vitest';
import { pureHasher, verifyBundle, type PolicySnapshot } from '@nano-vm/kernel';
import { MemoryStore, nodeHasher, recoverRun, runProgram } from '../src/internal.js';
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
  { id: 'charge', kind: 'tool', tool: 'charge', args: { amount: 'input.value' }, next: 'done' },
  { id: 'done', kind: 'end', outcome: 'SUCCESS' },
]);
const v1: PolicySnapshot = {
  format: 'nano-vm.policy/v1',
  id: 'payments',
  version: '1',
  grants: [{ id: 'charge_may_charge', step: 'charge', tools: ['charge'] }],
};
const v2: PolicySnapshot = { ...v1, version: '2', deny: [{ id: 'no_charges_today', tool: 'charge' }] };

/** A run under v1 whose process died while the charge tool was running. */
async function crashedRun(): Promise<{ store: MemoryStore; runId: string; charges: string[] }> {
  const store = new MemoryStore();
  const hung = tools([{ name: 'charge', run: () => new Promise(() => {}) }]);
  void runProgram({
    program: prog,
    input: { value: 42 },
    model: scripted('answers: { ask: [charge] }'),
    tools: hung,
    store,
    policy: v1,
  });
  await new Promise((r) => setTimeout(r, 30));
  const [run] = await store.listRuns({ status: 'running' });
  expect((await store.events(run!.run_id)).map((e) => e.type)).toEqual([
    'run_started',
    'policy_checked',
    'step_completed',
    'policy_checked',
    'step_started',
  ]);
  return { store, runId: run!.run_id, charges: [] };
}

describe('a recovered run and its pinned policy', () => {
  it('under the same policy it re-derives the policy events and finishes', async () => {
    const { store, runId, charges } = await crashedRun();
    const ok = tools([{ name: 'charge', run: async () => (charges.push('charged'), { charged: 42 }) }]);
    const r = await recoverRun({
      store,
      runId,
      model: scripted('answers: {}'),
      tools: ok,
      hasher: nodeHasher,
      policy: v1,
    });
    expect(r).toMatchObject({ status: 'completed', outcome: 'SUCCESS', resumed_from_seq: 5 });
    expect(charges).toEqual(['charged']);
    expect(verifyBundle(JSON.parse(JSON.stringify(r.bundle)), pureHasher)).toMatchObject({ ok: true });
  });

  it('under a changed policy it halts as POLICY_BLOCKED (rule policy.pinned) and the tool is not invoked again', async () => {
    const { store, runId, charges } = await crashedRun();
    const ok = tools([{ name: 'charge', run: async () => (charges.push('charged'), { charged: 42 }) }]);
    const r = await recoverRun({
      store,
      runId,
      model: scripted('answers: {}'),
      tools: ok,
      hasher: nodeHasher,
      policy: v2,
    });
    expect(charges).toEqual([]);
    expect(r).toMatchObject({ status: 'failed', outcome: 'POLICY_BLOCKED', resumed_from_seq: 5 });
    const [rejected, finished] = r.events.slice(5);
    expect(rejected).toMatchObject({
      type: 'transition_rejected',
      rule: 'policy.pinned',
      policy_hash: r.receipt.policy_hash,
    });
    expect((rejected as { offered_policy_hash?: string }).offered_policy_hash).toMatch(/^[0-9a-f]{64}$/);
    expect((rejected as { offered_policy_hash?: string }).offered_policy_hash).not.toBe(r.receipt.policy_hash);
    expect(finished).toMatchObject({ type: 'run_finished', status: 'failed', error: { code: 'E_POLICY_BLOCKED' } });
    expect(r.receipt.counts.blocked_actions).toBe(1);
    expect(await store.getRun(runId)).toMatchObject({ status: 'failed', outcome: 'POLICY_BLOCKED' });
    // The halted run is a valid record: the bundle (with the genesis policy) verifies.
    expect(verifyBundle(JSON.parse(JSON.stringify(r.bundle)), pureHasher)).toMatchObject({ ok: true });
  });
});
