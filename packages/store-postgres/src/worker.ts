/**
 * A worker: claims submitted runs and runs whose lease expired, drives up to `concurrency` of
 * them at once, and sleeps until PostgreSQL notifies it (a submission, a released run) or until
 * the earliest lease or claim in the store expires — there is no polling loop. A run is driven
 * under a lease owned by this worker (`<worker>/<n>`), renewed by the runtime's heartbeat; a run
 * whose lease expired is finished with the runtime's `recoverRun`, which invokes a tool whose
 * result was not stored again under its original idempotency key.
 */
import { hostname } from 'node:os';
import { NanoVmError, type Program, type TraceEvent } from '@nano-vm/kernel';
import {
  DEFAULT_LEASE_MS,
  newLeaseOwner,
  randomSalt,
  recoverRun,
  runProgram,
  RunLeasedError,
  type ModelPort,
  type ToolRegistry,
} from '@nano-vm/runtime';
import type { PostgresStore } from './postgresStore.js';
import {
  claimExpiredRuns,
  claimSubmissions,
  failSubmission,
  nextExpiry,
  releaseClaims,
  type ClaimedSubmission,
} from './queue.js';

export interface WorkerOptions {
  store: PostgresStore;
  /**
   * The model runs with llm steps call. Without one, this worker leaves such runs (submitted or
   * to recover) to workers that have one.
   */
  model?: ModelPort;
  tools: ToolRegistry;
  /** Runs driven at once (default 16). */
  concurrency?: number;
  /**
   * Submissions a busy worker claims ahead of its free slots, started as slots free (default: half
   * of `concurrency`, rounded up; 0: claim only for free slots). With runs in flight each finished
   * run frees one slot, and claiming for it alone costs one claim statement per run; claiming
   * ahead takes several per statement. Only while submissions keep coming (its last claim found
   * some): a worker waking from idle claims for its free slots only, so a burst spreads over idle
   * workers. Claims ahead are held under the claim's expiry (the lease duration): one that
   * expired before its slot freed is left to whoever claims it next; on stop they are released.
   */
  prefetch?: number;
  /** Lease duration in ms (default DEFAULT_LEASE_MS, 30 s); renewed every third of it. */
  leaseMs?: number;
  /** On SIGTERM (`stop()`), how long running drives may take to finish before their leases are released (default 10 s). */
  drainMs?: number;
  /** Called as runs start and end (the CLI prints them). */
  onRun?: (r: WorkerRunReport) => void;
  onEvent?: (e: TraceEvent, runId: string) => void;
  /** Called when something goes wrong outside a run (the store is unreachable, …); the worker carries on. */
  onProblem?: (e: Error) => void;
}

export interface WorkerRunReport {
  run_id: string;
  /** `started`: a submission; `recovering`: a run whose lease expired; then how it ended. */
  /**
   * `skipped`: this worker cannot run it (no model for its llm steps, a tool it does not have): it
   * stays queued (or leased for one lease duration) for a worker that can.
   */
  phase: 'started' | 'recovering' | 'finished' | 'refused' | 'stopped' | 'skipped';
  status?: string;
  outcome?: string | null;
  reinvoked?: string[];
  error?: { code: string; message: string };
}

export interface WorkerStats {
  owner: string;
  started: number;
  recovered: number;
  finished: number;
  refused: number;
  stopped: number;
  skipped: number;
  /** Claim statements run (submissions and expired leases), and how many of them found nothing. */
  claims: number;
  emptyClaims: number;
  /** Wake-ups by notification, and by a timer (the next lease or claim expiry, or a claim retried after meeting rows another claim held). */
  notified: number;
  timerWakes: number;
}

/**
 * Failures that say nothing about the submission itself (the store, a lease, a bug): it stays
 * queued, and is claimed again once this worker's claim expires.
 */
const TRANSIENT = /^E_(STORE_|LEASE_LOST|RUN_LEASED|INTERNAL)/;

/** Whether a program has an llm step (its parallel children included). */
function hasLlmStep(program: Program): boolean {
  return program.steps.some(
    (s) =>
      s.kind === 'llm' ||
      (s.kind === 'parallel' && (s as { children?: { kind: string }[] }).children?.some((c) => c.kind === 'llm')),
  );
}

/** A refusal that says what this worker lacks (a tool), not what is wrong with the submission. */
function lacksTool(e: NanoVmError): boolean {
  const issues = (e as { issues?: { code?: string }[] }).issues;
  return e.code === 'E_UNKNOWN_TOOL' || (issues ?? []).some((i) => i.code === 'E_UNKNOWN_TOOL');
}

/**
 * How soon a claim that met claimable rows locked by another worker's claim is tried again. Such
 * rows are the ones the other claim takes (its LIMIT sits above its row locks), so the retry only
 * matters when that claim rolls back: it need not be soon, and a later one costs fewer claims
 * when many workers claim each single submission at once.
 */
const CLAIM_RETRY_MS = 100;

const NO_MODEL: ModelPort = {
  id: 'none',
  scripted: false,
  complete: () => Promise.reject(new NanoVmError('E_MODEL_SPEC', 'this worker has no model')),
};

export class Worker {
  readonly owner: string;
  readonly concurrency: number;
  readonly leaseMs: number;
  readonly prefetch: number;
  /** Submissions claimed ahead of free slots (prefetch), oldest first, with their claim's expiry. */
  private readonly ahead: { sub: ClaimedSubmission; until: number }[] = [];
  private lastClaimFound = false;
  private readonly active = new Map<string, { owner: string; done: Promise<void> }>();
  private drives = 0;
  private claiming: Promise<void> | null = null;
  private again = false;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  private timerExpiry = false;
  private listener: import('pg').Client | null = null;
  private beat: NodeJS.Timeout | null = null;
  /** Submitted programs by hash, fetched once however many claimed runs need one at the same time. */
  private readonly programs = new Map<string, Promise<Program>>();
  readonly stats: WorkerStats;
  private resolveStopped!: () => void;
  /** Settles once the worker has stopped (after `stop()`). */
  readonly stopped = new Promise<void>((r) => (this.resolveStopped = r));

  constructor(private readonly o: WorkerOptions) {
    this.owner = newLeaseOwner();
    this.concurrency = Math.max(1, o.concurrency ?? 16);
    this.leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
    this.prefetch = Math.max(0, Math.floor(o.prefetch ?? Math.ceil(this.concurrency / 2)));
    this.stats = {
      owner: this.owner,
      started: 0,
      recovered: 0,
      finished: 0,
      refused: 0,
      stopped: 0,
      skipped: 0,
      claims: 0,
      emptyClaims: 0,
      notified: 0,
      timerWakes: 0,
    };
  }

  private get s(): string {
    return this.o.store.s;
  }

  /** Registers the worker, listens for notifications, and claims what is already waiting. */
  async start(): Promise<void> {
    const now = Date.now();
    await this.o.store.query(
      `INSERT INTO ${this.s}.workers (owner, host, pid, concurrency, started_at, seen_at, state) VALUES ($1, $2, $3, $4, $5, $5, 'running')
       ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at, state = 'running'`,
      [this.owner, hostname(), process.pid, this.concurrency, now],
      'registering the worker',
    );
    await this.listen();
    this.beat = setInterval(() => void this.heartbeat(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.beat.unref();
    this.wake();
  }

  private async heartbeat(): Promise<void> {
    try {
      await this.o.store.query(`UPDATE ${this.s}.workers SET seen_at = $2, done = $3, state = $4 WHERE owner = $1`, [
        this.owner,
        Date.now(),
        this.stats.finished,
        this.stopping ? 'draining' : 'running',
      ]);
    } catch (e) {
      this.o.onProblem?.(e as Error);
    }
  }

  /** A dedicated connection LISTENs; when it drops, the worker reconnects and claims what it may have missed. */
  private async listen(): Promise<void> {
    const c = this.o.store.client();
    c.on('notification', (n) => {
      this.stats.notified++;
      if (n.payload === 'released') this.expiredDue = true;
      this.wake();
    });
    const lost = () => {
      if (this.listener !== c) return;
      this.listener = null;
      if (this.stopping) return;
      setTimeout(() => {
        if (this.stopping) return;
        this.listen()
          .then(() => {
            this.expiredDue = true;
            this.wake();
          })
          .catch((e: unknown) => {
            this.o.onProblem?.(e as Error);
            lost();
          });
      }, 1000).unref();
    };
    c.on('error', lost);
    c.on('end', lost);
    try {
      await c.connect();
      await c.query(`LISTEN "${this.o.store.channel}"`);
    } catch (e) {
      await c.end().catch(() => {});
      throw this.o.store.wrap(e, 'listening for work');
    }
    this.listener = c;
  }

  /** Claims work while there are free slots (one claim round at a time; a wake during one runs another). */
  wake(): void {
    if (this.stopping) return;
    if (this.claiming) {
      this.again = true;
      return;
    }
    this.claiming = this.claimRounds()
      .catch((e: unknown) => {
        this.o.onProblem?.(e as Error);
        // The store failed: try again after a while (a notification may also come first).
        this.armTimer(Date.now() + 1000);
      })
      .finally(() => {
        this.claiming = null;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  private async claimRounds(): Promise<void> {
    for (;;) {
      this.again = false;
      let free = this.concurrency - this.active.size;
      if (free <= 0 || this.stopping) return;
      // Claimed ahead first (a claim that expired meanwhile may be another worker's now: dropped).
      while (free > 0 && this.ahead.length) {
        const a = this.ahead.shift()!;
        if (a.until > Date.now()) {
          this.startSubmission(a.sub);
          free--;
        }
      }
      if (free <= 0) return;
      const now = Date.now();
      // While submissions keep coming (the last claim found some), claim ahead too, so the next
      // slots that free need no claim of their own; a worker waking from idle claims for its free
      // slots only.
      const want = free + (this.lastClaimFound ? Math.max(0, this.prefetch - this.ahead.length) : 0);
      const until = now + this.leaseMs;
      const { claimed, busy } = await claimSubmissions(this.o.store, this.owner, want, now, until);
      this.stats.claims++;
      this.lastClaimFound = claimed.length > 0;
      // Another worker's claim held the rest: look again once it has committed (or rolled back).
      if (busy) this.armTimer(Date.now() + CLAIM_RETRY_MS, false);
      if (this.stopping) {
        await releaseClaims(
          this.o.store,
          this.owner,
          claimed.map((c) => c.run_id),
        ).catch(() => {});
        return;
      }
      const subs = claimed.slice(0, free);
      for (const c of claimed.slice(free)) this.ahead.push({ sub: c, until });
      for (const s of subs) this.startSubmission(s);
      let expired: { run_id: string; owner: string }[] = [];
      const left = free - subs.length;
      // Expired leases are looked for when something may have expired or been released (a timer,
      // a release notification, a reconnect), and otherwise at most every quarter lease: a busy
      // worker does not pay a second query per claim.
      if (left > 0 && (this.expiredDue || Date.now() - this.expiredCheckedAt >= this.leaseMs / 4)) {
        this.expiredDue = false;
        this.expiredCheckedAt = Date.now();
        const base = ++this.drives;
        this.drives += left;
        expired = await claimExpiredRuns(
          this.o.store,
          (i) => `${this.owner}/${base + i}`,
          left,
          Date.now(),
          Date.now() + this.leaseMs,
        );
        this.stats.claims++;
        for (const r of expired) this.startRecovery(r.run_id, r.owner);
      }
      if (subs.length + expired.length === 0) {
        this.stats.emptyClaims++;
        // (Not when a retry is armed: that round arms the next expiry if it finds nothing.)
        if (!this.again && !busy) await this.armForNextExpiry();
        if (!this.again) return;
      }
    }
  }

  /** Sleeps until the earliest lease or claim in the store expires (then claims again). */
  private async armForNextExpiry(): Promise<void> {
    const t = await nextExpiry(this.o.store);
    if (t !== null) this.armTimer(t + 5);
  }

  /**
   * Wakes at `at` instead of at the wake-up armed before; `expiry`: something may have expired by
   * then (look for expired leases too). A replaced expiry wake-up keeps that flag: the claim round
   * the new one runs re-arms the next expiry when it finds nothing.
   */
  private armTimer(at: number, expiry = true): void {
    if (this.stopping) return;
    let expiryDue = expiry;
    if (this.timer) {
      expiryDue ||= this.timerExpiry;
      clearTimeout(this.timer);
    }
    this.timerExpiry = expiryDue;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.stats.timerWakes++;
        if (this.timerExpiry) this.expiredDue = true;
        this.wake();
      },
      Math.max(0, at - Date.now()),
    );
  }

  private track(runId: string, owner: string, drive: () => Promise<void>): void {
    const done = drive()
      .catch((e: unknown) => this.o.onProblem?.(e as Error))
      .finally(() => {
        this.active.delete(runId);
        if (this.stopping) {
          if (this.active.size === 0) this.drained?.();
        } else this.wake();
      });
    this.active.set(runId, { owner, done });
  }

  private drained: (() => void) | undefined;
  private expiredDue = true;
  private expiredCheckedAt = 0;

  private program(hash: string): Promise<Program> {
    let p = this.programs.get(hash);
    if (!p) {
      p = this.o.store
        .query<{ program: string }>(`SELECT program FROM ${this.s}.programs WHERE hash = $1`, [hash])
        .then((r) => {
          if (!r.rows[0]) throw new NanoVmError('E_STORE_CORRUPT', `submitted program ${hash} is not in the store`);
          return JSON.parse(r.rows[0].program) as Program;
        });
      // A failed fetch is not kept: the next run that needs the program asks again.
      p.catch(() => this.programs.delete(hash));
      this.programs.set(hash, p);
    }
    return p;
  }

  /** Reports a run left to a worker with a model (its program has llm steps, this worker has none). */
  private skippedNoModel(runId: string, programId: string): void {
    this.stats.skipped++;
    this.o.onRun?.({
      run_id: runId,
      phase: 'skipped',
      error: { code: 'E_MODEL_SPEC', message: `program ${programId} has llm steps and this worker has no model` },
    });
  }

  private startSubmission(s: ClaimedSubmission): void {
    const owner = `${this.owner}/${++this.drives}`;
    this.stats.started++;
    this.track(s.run_id, owner, async () => {
      try {
        const program = await this.program(s.program_hash);
        if (!this.o.model && hasLlmStep(program)) {
          this.skippedNoModel(s.run_id, program.id);
          return; // its claim expires, and a worker with a model takes it
        }
        this.o.onRun?.({ run_id: s.run_id, phase: 'started' });
        const r = await runProgram({
          program,
          input: s.input,
          policy: s.policy ?? undefined,
          model: this.o.model ?? NO_MODEL,
          tools: this.o.tools,
          store: this.o.store,
          ids: { runId: () => s.run_id, salt: randomSalt },
          lease: { owner, ttlMs: this.leaseMs },
          ...(this.o.onEvent ? { onEvent: this.o.onEvent } : {}),
        });
        this.stats.finished++;
        this.o.onRun?.({ run_id: s.run_id, phase: 'finished', status: r.status, outcome: r.outcome });
      } catch (e) {
        const err = e instanceof NanoVmError ? e : new NanoVmError('E_INTERNAL', String((e as Error)?.message ?? e));
        if (!(e instanceof NanoVmError)) this.o.onProblem?.(e as Error);
        // Refused before the run existed (an invalid program, an unknown tool, an input its schema
        // refuses): the submission is kept with why, and never claimed again. Another worker that
        // created the run first (its claim had expired) is not a failure of this one.
        if (err.code === 'E_STORE_DUPLICATE_RUN') return;
        if (lacksTool(err)) {
          this.stats.skipped++;
          this.o.onRun?.({ run_id: s.run_id, phase: 'skipped', error: { code: err.code, message: err.message } });
        } else if (!TRANSIENT.test(err.code)) {
          await failSubmission(this.o.store, s.run_id, this.owner, `${err.code}: ${err.message}`);
          this.stats.refused++;
          this.o.onRun?.({ run_id: s.run_id, phase: 'refused', error: { code: err.code, message: err.message } });
        } else {
          this.stats.stopped++;
          this.o.onRun?.({ run_id: s.run_id, phase: 'stopped', error: { code: err.code, message: err.message } });
        }
      }
    });
  }

  private startRecovery(runId: string, owner: string): void {
    this.stats.recovered++;
    this.track(runId, owner, async () => {
      try {
        if (!this.o.model) {
          const run = await this.o.store.getRun(runId);
          if (run && hasLlmStep(run.program)) {
            this.skippedNoModel(runId, run.program_id);
            // Held for one lease duration (not released: that would wake this worker again).
            return;
          }
        }
        this.o.onRun?.({ run_id: runId, phase: 'recovering' });
        const r = await recoverRun({
          store: this.o.store,
          runId,
          model: this.o.model ?? NO_MODEL,
          tools: this.o.tools,
          lease: { owner, ttlMs: this.leaseMs },
          ...(this.o.onEvent ? { onEvent: this.o.onEvent } : {}),
        });
        this.stats.finished++;
        this.o.onRun?.({
          run_id: runId,
          phase: 'finished',
          status: r.status,
          outcome: r.outcome,
          reinvoked: r.reinvoked,
        });
      } catch (e) {
        if (e instanceof RunLeasedError) return;
        const err = e instanceof NanoVmError ? e : new NanoVmError('E_INTERNAL', String((e as Error)?.message ?? e));
        if (err.code === 'E_RECOVERY_NOT_RUNNING') return;
        this.stats.stopped++;
        this.o.onRun?.({ run_id: runId, phase: 'stopped', error: { code: err.code, message: err.message } });
        // A run that cannot be recovered now is not retried at once: it is leased to no live
        // drive for one lease duration, so workers do not spin on it.
        await this.o.store
          .acquireLease(runId, { owner: `${this.owner}/backoff`, expires_at: Date.now() + this.leaseMs }, Date.now())
          .catch(() => {});
      }
    });
  }

  /** The runs this worker drives now, with their lease owners. */
  running(): { run_id: string; owner: string }[] {
    return [...this.active].map(([run_id, a]) => ({ run_id, owner: a.owner }));
  }

  /**
   * Graceful stop (SIGTERM): claims nothing more, lets the drives in flight finish for up to
   * `drainMs`, then releases the leases of those still going (another worker recovers them at
   * once: a release of a running run notifies), and marks the worker stopped.
   */
  async stop(): Promise<{ finished: number; released: string[] }> {
    if (this.stopping) {
      await this.stopped;
      return { finished: 0, released: [] };
    }
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.beat) clearInterval(this.beat);
    const l = this.listener;
    this.listener = null;
    await l?.end().catch(() => {});
    await this.claiming;
    // Submissions claimed ahead and not started go back to the queue (and wake the other workers).
    const ahead = this.ahead.splice(0).map((a) => a.sub.run_id);
    if (ahead.length)
      await releaseClaims(this.o.store, this.owner, ahead).catch((e: unknown) => this.o.onProblem?.(e as Error));
    const inFlight = this.active.size;
    if (inFlight) {
      const drained = new Promise<void>((r) => (this.drained = r));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise<void>((r) => (timer = setTimeout(r, this.o.drainMs ?? 10_000)))]);
      clearTimeout(timer);
    }
    const left = this.running();
    for (const r of left) await this.o.store.releaseLease(r.run_id, r.owner).catch(() => {});
    await this.o.store
      .query(`UPDATE ${this.s}.workers SET state = 'stopped', seen_at = $2, done = $3 WHERE owner = $1`, [
        this.owner,
        Date.now(),
        this.stats.finished,
      ])
      .catch(() => {});
    this.resolveStopped();
    return { finished: inFlight - left.length, released: left.map((r) => r.run_id) };
  }
}

/** Starts a worker on `store` (see Worker); stop it with `worker.stop()`. */
export async function startWorker(opts: WorkerOptions): Promise<Worker> {
  const w = new Worker(opts);
  await w.start();
  return w;
}
