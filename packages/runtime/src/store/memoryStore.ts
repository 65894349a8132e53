import { randomBytes } from 'node:crypto';
import type { RunStatus, TraceEvent } from '@nano-vm/kernel';
import { StoreError, type Invocation, type RunRecord, type Store, type VaultRow, type VaultValue } from './store.js';

const NO_ROWS: VaultRow[] = [];

export class MemoryStore implements Store {
  private secret: string | undefined;

  /** Random per store: a memory store's runs and vault live only as long as it does. */
  subjectSecret(): string {
    return (this.secret ??= randomBytes(32).toString('hex'));
  }

  private readonly runs = new Map<
    string,
    { rec: RunRecord; events: TraceEvent[]; vault: VaultRow[]; calls?: Map<string, Invocation> }
  >();

  createRun(run: Omit<RunRecord, 'head_hash' | 'event_count'>, vault: readonly VaultValue[] = []): void {
    if (this.runs.has(run.run_id)) throw new StoreError('E_STORE_DUPLICATE_RUN', `run ${run.run_id} already exists`);
    // Most runs have no vault rows: they share one empty list (erasure only loops over rows).
    const rows =
      vault.length === 0
        ? NO_ROWS
        : vault
            .map((v) => ({
              run_id: run.run_id,
              path: v.path,
              subject: v.subject,
              commitment: v.commitment,
              salt: v.salt,
              value: structuredClone(v.value),
              erased: false,
            }))
            .sort((a, b) => (a.path < b.path ? -1 : 1));
    const rec: RunRecord = {
      run_id: run.run_id,
      program_id: run.program_id,
      program: run.program,
      policy: run.policy,
      input: run.input,
      status: run.status,
      outcome: run.outcome,
      head_hash: '',
      event_count: 0,
    };
    this.runs.set(run.run_id, { rec, events: [], vault: rows });
  }

  append(runId: string, events: readonly TraceEvent[]): void {
    const r = this.runs.get(runId);
    if (!r) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
    // Checked whole before anything is stored: all of the batch or none of it.
    for (let i = 0; i < events.length; i++) {
      if (events[i]!.seq !== r.events.length + i)
        throw new StoreError(
          'E_STORE_CONFLICT',
          `append of seq ${events[i]!.seq} to run ${runId} conflicts: the next seq is ${r.events.length + i}`,
        );
    }
    for (const event of events) {
      r.events.push(event);
      if (event.type === 'step_started' && event.idempotency_key !== undefined) {
        const calls = (r.calls ??= new Map());
        const c = calls.get(event.idempotency_key);
        if (c) {
          c.invocations++;
          c.attempt = event.attempt;
        } else
          calls.set(event.idempotency_key, {
            key: event.idempotency_key,
            run_id: runId,
            step: event.step,
            tool: event.tool ?? '',
            attempt: event.attempt,
            invocations: 1,
          });
      }
    }
    if (events.length) {
      r.rec.head_hash = events[events.length - 1]!.hash;
      r.rec.event_count = r.events.length;
    }
  }

  invocations(runId: string): Invocation[] {
    return [...(this.runs.get(runId)?.calls?.values() ?? [])].map((c) => ({ ...c }));
  }

  reinvoked(runId: string, call: Omit<Invocation, 'run_id' | 'invocations'>): number {
    const r = this.runs.get(runId);
    if (!r) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
    const calls = (r.calls ??= new Map());
    const c = calls.get(call.key);
    if (c) return ++c.invocations;
    calls.set(call.key, { ...call, run_id: runId, invocations: 2 });
    return 2;
  }

  finish(runId: string, status: RunStatus | 'running', outcome: string | null): void {
    const r = this.runs.get(runId);
    if (!r) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
    r.rec.status = status;
    r.rec.outcome = outcome;
  }

  getRun(runId: string): RunRecord | undefined {
    const r = this.runs.get(runId);
    return r && { ...r.rec };
  }

  events(runId: string): TraceEvent[] {
    return this.runs.get(runId)?.events.slice() ?? [];
  }

  listRuns(filter: { status?: RunStatus | 'running' } = {}): RunRecord[] {
    return [...this.runs.values()]
      .map((r) => ({ ...r.rec }))
      .filter((r) => filter.status === undefined || r.status === filter.status);
  }

  vault(runId: string): VaultRow[] {
    return (this.runs.get(runId)?.vault ?? []).map((v) => ({ ...v }));
  }

  vaultBySubject(subject: string): VaultRow[] {
    return [...this.runs.values()].flatMap((r) => r.vault.filter((v) => v.subject === subject).map((v) => ({ ...v })));
  }

  eraseValues(runId: string, subject: string, event: TraceEvent): number {
    const r = this.runs.get(runId);
    if (!r) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
    this.append(runId, [event]);
    let n = 0;
    for (const v of r.vault) {
      if (v.subject !== subject || v.erased) continue;
      v.salt = null;
      v.value = null;
      v.erased = true;
      n++;
    }
    return n;
  }
}
