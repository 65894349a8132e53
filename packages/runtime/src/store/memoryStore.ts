import { randomBytes } from 'node:crypto';
import type { RunStatus, TraceEvent } from '@nano-vm/kernel';
import { invocationUpserts, reinvocationUpsert, type InvocationUpsert } from './invocations.js';
import {
  StoreError,
  type Invocation,
  type Lease,
  type NewRun,
  type RunRecord,
  type RunWrite,
  type Store,
  type VaultRow,
  type VaultValue,
} from './store.js';

const NO_ROWS: VaultRow[] = [];

interface MemoryRun {
  rec: RunRecord;
  events: TraceEvent[];
  vault: VaultRow[];
  /** Invocations by key, with the seq that orders them; made on a run's first tool start. */
  calls?: Map<string, Invocation & { first_seq: number }>;
  /**
   * How many of `events` the invocation table accounts for. The table is brought up to date when it
   * is read or re-invoked — the same upserts, in the same order, as if applied at each append — so a
   * run that nobody asks about (most in-memory runs) pays nothing per step for it.
   */
  counted: number;
  lease: Lease | null;
}

/**
 * Runs kept in this process only, for as long as the store lives. Each method does its work when
 * it is called (so a run's writes are in order without awaiting) and answers with a promise, as
 * every store does; failures are rejections.
 */
export class MemoryStore implements Store {
  private secret: string | undefined;
  private runs: Map<string, MemoryRun> | null = new Map();

  /** The runs, or E_STORE_CLOSED once the store is closed. */
  private liveRuns(): Map<string, MemoryRun> {
    if (this.runs === null) throw new StoreError('E_STORE_CLOSED', 'the memory store is closed');
    return this.runs;
  }

  private run(runId: string): MemoryRun {
    const r = this.liveRuns().get(runId);
    if (!r) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
    return r;
  }

  /** Random per store: a memory store's runs and vault live only as long as it does. */
  async subjectSecret(): Promise<string> {
    this.liveRuns();
    return (this.secret ??= randomBytes(32).toString('hex'));
  }

  async createRun(run: NewRun, vault: readonly VaultValue[] = []): Promise<void> {
    this.createNow(run, vault);
  }

  async writeRun(runId: string, w: RunWrite): Promise<void> {
    // Everything that can refuse is checked before anything is stored: all of it or none of it.
    if (w.create) {
      if (w.create.run.run_id !== runId)
        throw new StoreError('E_STORE_CONFLICT', `writeRun of ${runId} creates another run (${w.create.run.run_id})`);
      this.checkNew(w.create.run.run_id);
      checkSeqs(runId, w.events, 0);
      this.createNow(w.create.run, w.create.vault ?? []);
    } else checkSeqs(runId, w.events, this.run(runId).events.length);
    this.appendNow(runId, w.events);
    if (w.finish) await this.finish(runId, w.finish.status, w.finish.outcome);
  }

  private checkNew(runId: string): void {
    if (this.liveRuns().has(runId)) throw new StoreError('E_STORE_DUPLICATE_RUN', `run ${runId} already exists`);
  }

  private createNow(run: NewRun, vault: readonly VaultValue[]): void {
    const runs = this.liveRuns();
    this.checkNew(run.run_id);
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
    runs.set(run.run_id, {
      rec,
      events: [],
      vault: rows,
      counted: 0,
      lease: run.lease ? { ...run.lease } : null,
    });
  }

  async append(runId: string, events: readonly TraceEvent[]): Promise<void> {
    this.appendNow(runId, events);
  }

  private appendNow(runId: string, events: readonly TraceEvent[]): void {
    const r = this.run(runId);
    // Checked whole before anything is stored: all of the batch or none of it.
    checkSeqs(runId, events, r.events.length);
    for (const event of events) r.events.push(event);
    if (events.length) {
      r.rec.head_hash = events[events.length - 1]!.hash;
      r.rec.event_count = r.events.length;
    }
  }

  async invocations(runId: string): Promise<Invocation[]> {
    const r = this.liveRuns().get(runId);
    const calls = r && countInvocations(r, runId).calls;
    if (!calls) return [];
    // In first-invocation order; keys entered by a re-invocation (first_seq -1) come first, as in every store.
    return [...calls.values()]
      .sort((a, b) => a.first_seq - b.first_seq)
      .map(({ key, run_id, step, tool, attempt, invocations }) => ({ key, run_id, step, tool, attempt, invocations }));
  }

  async reinvoked(runId: string, call: Omit<Invocation, 'run_id' | 'invocations'>): Promise<number> {
    return upsert(countInvocations(this.run(runId), runId), runId, reinvocationUpsert(call));
  }

  async finish(runId: string, status: RunStatus | 'running', outcome: string | null): Promise<void> {
    const r = this.run(runId);
    r.rec.status = status;
    r.rec.outcome = outcome;
    if (status !== 'running') r.lease = null;
  }

  async acquireLease(runId: string, lease: Lease, now: number, replacing?: string): Promise<Lease> {
    const r = this.run(runId);
    const held = r.lease;
    if (held === null || held.expires_at <= now || held.owner === lease.owner || held.owner === replacing)
      r.lease = { owner: lease.owner, expires_at: lease.expires_at };
    return { ...r.lease! };
  }

  async renewLease(runId: string, lease: Lease): Promise<boolean> {
    const r = this.run(runId);
    if (r.lease?.owner !== lease.owner) return false;
    r.lease.expires_at = lease.expires_at;
    return true;
  }

  async releaseLease(runId: string, owner: string): Promise<void> {
    const r = this.run(runId);
    if (r.lease?.owner === owner) r.lease = null;
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const r = this.liveRuns().get(runId);
    return r && { ...r.rec };
  }

  async events(runId: string): Promise<TraceEvent[]> {
    return this.liveRuns().get(runId)?.events.slice() ?? [];
  }

  async listRuns(filter: { status?: RunStatus | 'running' } = {}): Promise<RunRecord[]> {
    return [...this.liveRuns().values()]
      .map((r) => ({ ...r.rec }))
      .filter((r) => filter.status === undefined || r.status === filter.status);
  }

  async vault(runId: string): Promise<VaultRow[]> {
    return (this.liveRuns().get(runId)?.vault ?? []).map((v) => ({ ...v }));
  }

  async vaultBySubject(subject: string): Promise<VaultRow[]> {
    return [...this.liveRuns().values()].flatMap((r) =>
      r.vault.filter((v) => v.subject === subject).map((v) => ({ ...v })),
    );
  }

  async eraseValues(runId: string, subject: string, event: TraceEvent): Promise<number> {
    const r = this.run(runId);
    this.appendNow(runId, [event]);
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

  /** Drops every run: a memory store's data ends with it. */
  async close(): Promise<void> {
    this.runs = null;
  }
}

/** Applies the upserts of the events appended since the table was last brought up to date. */
function countInvocations(r: MemoryRun, runId: string): MemoryRun {
  if (r.counted < r.events.length) {
    for (const u of invocationUpserts(r.events.slice(r.counted))) upsert(r, runId, u);
    r.counted = r.events.length;
  }
  return r;
}

/** Applies one invocation upsert to a run's table; returns the key's count. */
function upsert(r: MemoryRun, runId: string, u: InvocationUpsert): number {
  const calls = (r.calls ??= new Map());
  const c = calls.get(u.key);
  if (c) {
    c.invocations += u.add;
    c.attempt = u.attempt;
    return c.invocations;
  }
  calls.set(u.key, {
    key: u.key,
    run_id: runId,
    step: u.step,
    tool: u.tool,
    attempt: u.attempt,
    invocations: u.enter,
    first_seq: u.first_seq,
  });
  return u.enter;
}

/** An append's events must be the run's next seqs, `next` first (E_STORE_CONFLICT otherwise). */
function checkSeqs(runId: string, events: readonly TraceEvent[], next: number): void {
  for (let i = 0; i < events.length; i++) {
    if (events[i]!.seq !== next + i)
      throw new StoreError(
        'E_STORE_CONFLICT',
        `append of seq ${events[i]!.seq} to run ${runId} conflicts: the next seq is ${next + i}`,
      );
  }
}
