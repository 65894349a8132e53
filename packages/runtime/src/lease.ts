/**
 * The lease of the process driving a run (docs/stores.md "Leases"): taken atomically in the store
 * before anything of the run is driven, renewed by a heartbeat while it is, and released when the
 * drive ends (a terminal or suspended status releases it in the same write). Recovery drives only
 * runs whose lease expired, was released, or whose owner is a process of this host that is gone.
 *
 * Expiry is on the host's wall clock (ms since the epoch), never on a run's injected clock: a
 * `--deterministic` run's fixed clock says nothing about how long its process has been away.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { StoreError, type Lease, type Store } from './store/store.js';

/** How long a lease lasts unless renewed; the heartbeat renews it every third of that. */
export const DEFAULT_LEASE_MS = 30_000;

export interface LeaseOptions {
  /** Who drives (default: this host and process, and a random suffix: see newLeaseOwner). */
  owner?: string;
  /** Lease duration in ms (default DEFAULT_LEASE_MS). */
  ttlMs?: number;
  /** The host clock, ms since the epoch (default Date.now). */
  now?: () => number;
}

/**
 * Where a process lives: the hostname, and on Linux the boot id and the pid namespace, so that a
 * pid is only compared with pids of the same process table (two containers may share a hostname).
 */
const PROCESS_TABLE = (() => {
  const read = (f: () => string) => {
    try {
      return f()
        .trim()
        .replace(/[^0-9a-f-]/gi, '');
    } catch {
      return '';
    }
  };
  const boot = read(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'));
  const ns = read(() => readlinkSync('/proc/self/ns/pid'));
  return [hostname().replace(/[:/]/g, '_'), boot, ns].join('/');
})();

/** Random per process (a pid may be reused), then counted per drive. */
const PROCESS_NONCE = randomBytes(6).toString('hex');
let drives = 0;

/** `<host>/<boot id>/<pid namespace>:<pid>:<nonce>.<n>`: unique per drive, and names the process for people. */
export function newLeaseOwner(): string {
  return `${PROCESS_TABLE}:${process.pid}:${PROCESS_NONCE}.${++drives}`;
}

/**
 * True only when the owner is certainly gone: a process of this very process table whose pid no
 * longer exists. Any doubt (another host, a pid that exists, even if reused) keeps the lease until
 * it expires.
 */
export function leaseOwnerGone(owner: string): boolean {
  const [table, pidText, rest] = owner.split(':');
  if (table !== PROCESS_TABLE || rest === undefined || !/^[0-9]+$/.test(pidText ?? '')) return false;
  const pid = Number(pidText);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** The run is being driven by another process, which holds its lease. */
export class RunLeasedError extends StoreError {
  constructor(
    runId: string,
    readonly lease: Lease,
  ) {
    super(
      'E_RUN_LEASED',
      `run ${runId} is being driven by another process: its lease is held by ${lease.owner} until ${new Date(lease.expires_at).toISOString()}`,
    );
  }
}

/** A lease held by this process on one run, with its heartbeat. */
export class RunLease {
  private beating = false;
  /** When the lease was last written (taken or renewed), on this lease's clock. */
  private renewedAt: number;
  /** How often it is renewed: a third of its duration. */
  readonly period: number;
  private lostTo: string | null = null;
  private settled = false;
  readonly owner: string;
  readonly ttlMs: number;
  private readonly now: () => number;

  private constructor(
    private readonly store: Store,
    readonly runId: string,
    opts: LeaseOptions = {},
  ) {
    this.owner = opts.owner ?? newLeaseOwner();
    this.ttlMs = opts.ttlMs ?? DEFAULT_LEASE_MS;
    this.now = opts.now ?? Date.now;
    this.period = Math.max(1, Math.floor(this.ttlMs / 3));
    this.renewedAt = this.now();
  }

  /** The lease a new run is created with (Store.createRun takes it in the same transaction). */
  static forNewRun(store: Store, runId: string, opts?: LeaseOptions): RunLease {
    return new RunLease(store, runId, opts);
  }

  /**
   * Takes the lease of a stored run: free, expired, or held by a process of this host that is
   * gone. RunLeasedError (E_RUN_LEASED) when another owner holds it.
   */
  static async take(store: Store, runId: string, opts?: LeaseOptions): Promise<RunLease> {
    const l = new RunLease(store, runId, opts);
    let held = await store.acquireLease(runId, l.current(), l.now());
    if (held.owner !== l.owner && leaseOwnerGone(held.owner))
      held = await store.acquireLease(runId, l.current(), l.now(), held.owner);
    if (held.owner !== l.owner) throw new RunLeasedError(runId, held);
    return l;
  }

  /** The lease as it is written now: this owner, expiring a lease duration from now. */
  current(): Lease {
    return { owner: this.owner, expires_at: this.now() + this.ttlMs };
  }

  /**
   * Renews the lease every third of its duration, on the process's one heartbeat (below): a timer
   * per run showed in profiles of many short runs. The timer is unref'd: it never keeps a process
   * alive by itself, and it beats for as long as anything else (a tool call in flight) does.
   */
  startHeartbeat(): void {
    if (this.beating) return;
    this.beating = true;
    this.renewedAt = this.now();
    heartbeat.add(this);
  }

  /** Renews the lease when a period has passed since it was last written (called by the heartbeat). */
  beatIfDue(): void {
    const now = this.now();
    if (now - this.renewedAt < this.period) return;
    this.renewedAt = now;
    this.beat();
  }

  private beat(): void {
    this.store.renewLease(this.runId, this.current()).then(
      (ours) => {
        if (!ours && !this.settled) {
          this.lostTo = 'another owner';
          this.stopHeartbeat();
        }
      },
      (e: unknown) => {
        // A busy store is tried again at the next beat; a closed one has nothing left to renew.
        if ((e as { code?: string }).code === 'E_STORE_CLOSED') this.stopHeartbeat();
      },
    );
  }

  /** Throws E_LEASE_LOST when a renewal found the lease taken: called before each effect starts. */
  check(): void {
    if (this.lostTo !== null)
      throw new StoreError(
        'E_LEASE_LOST',
        `run ${this.runId}: the lease of ${this.owner} was taken by ${this.lostTo} (it could not be renewed in time); this process stopped driving the run before its next effect`,
      );
  }

  /** The run reached a terminal or suspended status: the store released the lease with it. */
  markSettled(): void {
    this.settled = true;
  }

  private stopHeartbeat(): void {
    if (!this.beating) return;
    this.beating = false;
    heartbeat.delete(this);
  }

  /**
   * Ends the drive: stops the heartbeat and, unless the run settled (which released it already),
   * releases the lease so recovery can take the run at once. A release that fails (a closed or
   * busy store) is left to expire.
   */
  async end(): Promise<void> {
    this.stopHeartbeat();
    if (this.settled || this.lostTo !== null) return;
    try {
      await this.store.releaseLease(this.runId, this.owner);
    } catch {
      // The lease expires by itself ttlMs after its last renewal.
    }
  }
}

/**
 * The process's one heartbeat for every lease it holds: one unref'd interval, running at the
 * shortest period among them, that renews each lease whose period has passed; stopped when no
 * lease is held. (Host-side state, shared by the runs of this process by design: the kernel keeps none.)
 */
const heartbeat = new (class Heartbeat {
  private readonly leases = new Set<RunLease>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private period = Number.POSITIVE_INFINITY;

  add(l: RunLease): void {
    this.leases.add(l);
    if (l.period < this.period) this.restart(l.period);
  }

  delete(l: RunLease): void {
    this.leases.delete(l);
    if (this.leases.size === 0) this.restart(Number.POSITIVE_INFINITY);
  }

  private restart(period: number): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.period = period;
    if (period === Number.POSITIVE_INFINITY) return;
    this.timer = setInterval(() => {
      for (const l of this.leases) l.beatIfDue();
    }, period);
    this.timer.unref();
  }
})();
