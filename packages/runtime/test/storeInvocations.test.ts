/** The idempotency bookkeeping every store applies (store/invocations.ts), on its own. */
import { describe, expect, it } from 'vitest';
import { TraceChain, type TraceEvent } from '@nano-vm/kernel';
import { nodeHasher } from '../src/internal.js';
import { invocationUpserts, reinvocationUpsert } from '../src/store/invocations.js';

const TS = '2026-01-01T00:00:00.000Z';

/** A chain holding the given event bodies after a genesis event. */
function events(...bodies: object[]): TraceEvent[] {
  const c = new TraceChain(nodeHasher);
  c.append(
    {
      type: 'run_started',
      run_id: 'r',
      program_id: 'p',
      program_hash: 'a'.repeat(64),
      policy_hash: 'b'.repeat(64),
      input_hash: 'c'.repeat(64),
      runtime_version: 't',
      model: { id: 'm', scripted: true },
    },
    TS,
  );
  for (const b of bodies) c.append(b as never, TS);
  return c.events;
}

const toolStart = (step: string, attempt: number, key = `r/${step}/1`) => ({
  type: 'step_started',
  step,
  kind: 'tool',
  visit: 1,
  attempt,
  tool: `${step}_tool`,
  args: {},
  idempotency_key: key,
});

describe('invocationUpserts', () => {
  it('makes no rows for a batch without tool starts (llm starts carry no key)', () => {
    expect(invocationUpserts(events({ type: 'step_started', step: 'ask', kind: 'llm', visit: 1, attempt: 1 }))).toEqual(
      [],
    );
    expect(invocationUpserts([])).toEqual([]);
  });

  it('counts each tool start once under its key: the key enters with its count, its attempt is the last one', () => {
    const batch = events(
      toolStart('pay', 1),
      { type: 'step_retry', step: 'pay', attempt: 2, max_attempts: 3 },
      toolStart('pay', 2),
      toolStart('ship', 1),
    );
    expect(invocationUpserts(batch)).toEqual([
      { key: 'r/pay/1', step: 'pay', tool: 'pay_tool', attempt: 2, first_seq: 1, enter: 2, add: 2 },
      { key: 'r/ship/1', step: 'ship', tool: 'ship_tool', attempt: 1, first_seq: 4, enter: 1, add: 1 },
    ]);
    // Split into one-event batches, the same starts add up to the same counts.
    const split = batch.flatMap((e) => invocationUpserts([e]));
    expect(split.map((u) => [u.key, u.attempt, u.add])).toEqual([
      ['r/pay/1', 1, 1],
      ['r/pay/1', 2, 1],
      ['r/ship/1', 1, 1],
    ]);
  });

  it('a re-invocation adds one to a known key and enters an unknown one with 2 (its stored start was the first)', () => {
    expect(reinvocationUpsert({ key: 'r/pay/1', step: 'pay', tool: 'pay_tool', attempt: 2 })).toEqual({
      key: 'r/pay/1',
      step: 'pay',
      tool: 'pay_tool',
      attempt: 2,
      first_seq: -1,
      enter: 2,
      add: 1,
    });
  });
});
