import { describe, expect, it } from 'vitest';
import { MemoryStore, StoreError, nodeHasher } from '../src/index.js';
import { TraceChain, type TraceEvent } from '@nano-vm/kernel';

function events(n: number): TraceEvent[] {
  const c = new TraceChain(nodeHasher);
  c.append({ type: 'run_started', run_id: 'r1', program_id: 'p', program_hash: 'a', policy_hash: 'b', input_hash: 'c', runtime_version: 't', model: { id: 'm', scripted: true } }, 't0');
  for (let i = 1; i < n; i++) c.append({ type: 'step_retry', step: 's', attempt: i + 1, max_attempts: 99 }, `t${i}`);
  return c.events;
}
const run = { run_id: 'r1', program_id: 'p', program: { format: 'nano-vm.program/v1' as const, id: 'p', input_schema: {}, steps: [] }, policy: null, input: {}, status: 'running' as const, outcome: null };

describe('MemoryStore', () => {
  it('appends in order and tracks the head', () => {
    const s = new MemoryStore();
    s.createRun(run);
    const evs = events(3);
    for (const e of evs) s.append('r1', e);
    expect(s.events('r1')).toEqual(evs);
    expect(s.getRun('r1')).toMatchObject({ head_hash: evs[2]!.hash, event_count: 3, status: 'running' });
    s.finish('r1', 'completed', 'OK');
    expect(s.listRuns({ status: 'completed' }).map((r) => r.run_id)).toEqual(['r1']);
    expect(s.listRuns({ status: 'failed' })).toEqual([]);
  });

  it('compare-and-swap on (run_id, seq): a gap or a duplicate seq writes nothing', () => {
    const s = new MemoryStore();
    s.createRun(run);
    const evs = events(3);
    s.append('r1', evs[0]!);
    expect(() => s.append('r1', evs[2]!)).toThrow(expect.objectContaining({ code: 'E_STORE_CONFLICT' }));
    s.append('r1', evs[1]!);
    expect(() => s.append('r1', evs[1]!)).toThrow(StoreError);
    expect(s.events('r1')).toHaveLength(2);
  });

  it('refuses duplicate runs and unknown runs with codes', () => {
    const s = new MemoryStore();
    s.createRun(run);
    expect(() => s.createRun(run)).toThrow(expect.objectContaining({ code: 'E_STORE_DUPLICATE_RUN' }));
    expect(() => s.append('nope', events(1)[0]!)).toThrow(expect.objectContaining({ code: 'E_STORE_NO_RUN' }));
    expect(() => s.finish('nope', 'failed', null)).toThrow(expect.objectContaining({ code: 'E_STORE_NO_RUN' }));
    expect(s.getRun('nope')).toBeUndefined();
    expect(s.events('nope')).toEqual([]);
  });
});
