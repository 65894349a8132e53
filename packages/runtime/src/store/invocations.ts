/**
 * Idempotency-key bookkeeping, decided once for every store: which appended events count as a tool
 * invocation under which key, and what a recovered re-invocation adds. A store only applies the
 * upserts these functions return (a map entry, an `INSERT … ON CONFLICT DO UPDATE`), in the same
 * transaction as the append, so no backend reads event bodies to count.
 */
import type { TraceEvent } from '@nano-vm/kernel';
import type { Invocation } from './store.js';

/**
 * One row to upsert into a run's invocation table. A key not yet there enters with `enter`
 * invocations; a key already there gets `add` more. Either way its `attempt` becomes this one
 * (the last attempt that used the key).
 */
export interface InvocationUpsert {
  key: string;
  step: string;
  tool: string;
  attempt: number;
  /** The seq of the key's first step_started (orders a run's keys); -1 when that event's seq is not known. */
  first_seq: number;
  enter: number;
  add: number;
}

const NONE: readonly InvocationUpsert[] = [];

/**
 * The upserts an append of `events` makes: each tool `step_started` with an idempotency key is one
 * invocation of that key (every attempt of a visit shares its key). Starts of one key within the
 * batch make one row; a batch without tool starts makes none (the common case allocates nothing).
 */
export function invocationUpserts(events: readonly TraceEvent[]): readonly InvocationUpsert[] {
  let rows: InvocationUpsert[] | undefined;
  for (const e of events) {
    if (e.type !== 'step_started' || e.idempotency_key === undefined) continue;
    const same = rows?.find((r) => r.key === e.idempotency_key);
    if (same) {
      same.enter++;
      same.add++;
      same.attempt = e.attempt;
    } else
      (rows ??= []).push({
        key: e.idempotency_key,
        step: e.step,
        tool: e.tool ?? '',
        attempt: e.attempt,
        first_seq: e.seq,
        enter: 1,
        add: 1,
      });
  }
  return rows ?? NONE;
}

/**
 * The upsert of a recovered run calling a tool again whose step_started is stored but whose result
 * is not: one more invocation of its key. A key the table lacks (a run stored before the table
 * existed) enters with 2, because the stored step_started was the first invocation.
 */
export function reinvocationUpsert(call: Omit<Invocation, 'run_id' | 'invocations'>): InvocationUpsert {
  return { key: call.key, step: call.step, tool: call.tool, attempt: call.attempt, first_seq: -1, enter: 2, add: 1 };
}
