/**
 * Crash recovery and resume: continue a stored run. The stored events are re-derived through a
 * fresh machine (drive.ts): recorded results, recorded resumes and recorded timestamps go back in,
 * and every re-derived event must equal the stored one, so the machine's state is exactly what it
 * was. Then the run continues live.
 *
 * - recoverRun finishes a run whose process died (status running). A tool call that had started
 *   but has no stored result is invoked again with the same idempotency key.
 * - Both first take the run's lease (lease.ts): a run another live process is driving is refused
 *   with E_RUN_LEASED (recover) or E_RESUME_CONFLICT (resume) before anything of it runs.
 * - resumeRun delivers the external event a suspended run waits for. Delivering the same event
 *   twice is idempotent; of two concurrent resumes exactly one appends its event, the other loses
 *   with E_RESUME_CONFLICT before anything of it runs.
 */
import {
  CompiledProgram,
  Machine,
  canonicalJson,
  hashJson,
  policyOption,
  type Clock,
  type ExternalEvent,
  type Hasher,
  type RunResumedEvent,
  type RunStartedEvent,
  type TraceEvent,
} from '@nano-vm/kernel';
import { systemClock } from './clock.js';
import { drive, type DriveOutcome } from './drive.js';
import { DEFAULT_EFFECT_TIMEOUT_MS, runResult, settleRun, unstoredResult, type RunResult } from './executor.js';
import { RunLease, RunLeasedError, type LeaseOptions } from './lease.js';
import { Effects } from './effects.js';
import type { ModelPort } from './model/port.js';
import { nodeHasher } from './nodeHasher.js';
import { StoreError, type RunRecord, type Store } from './store/store.js';
import type { ToolRegistry } from './toolRegistry.js';
import { RUNTIME_VERSION } from './version.js';
import { openRunInput } from './vault.js';

export interface RecoverOptions {
  store: Store;
  runId: string;
  model: ModelPort;
  tools: ToolRegistry;
  hasher?: Hasher;
  clock?: Clock;
  defaultTimeoutMs?: number;
  onEvent?: (e: TraceEvent, runId: string) => void;
  /**
   * The policy the host runs under now (e.g. the example's policy.yaml, read again). A run keeps
   * the policy pinned at its genesis: when this one's hash differs, the run halts as POLICY_BLOCKED
   * before anything live happens (docs/policy.md). Absent: the run's own stored policy is used.
   */
  policy?: unknown;
  /** The lease this process takes on the run while it drives it (docs/stores.md "Leases"). */
  lease?: LeaseOptions;
}

export interface RecoverResult extends RunResult {
  /** Events that were already stored and re-derived; the run continued from this seq. */
  resumed_from_seq: number;
  /** Idempotency keys of tool calls that had started before the crash and were invoked again. */
  reinvoked: string[];
}

export interface ResumeOptions extends RecoverOptions {
  event: ExternalEvent;
}

export interface ResumeResult extends Omit<RecoverResult, 'status'> {
  /** 'running' only for a duplicate whose run another process is still executing. */
  status: RecoverResult['status'] | 'running';
  /**
   * 'resumed': the event was taken; 'timed_out': it came after the wait's deadline, so the wait
   * timed out instead; 'duplicate': this very event had already resumed the run (nothing was done);
   * 'policy_blocked': the policy offered now is not the one pinned at genesis, so the run halted as
   * POLICY_BLOCKED without taking the event.
   */
  resume: 'resumed' | 'timed_out' | 'duplicate' | 'policy_blocked';
}

export async function recoverRun(opts: RecoverOptions): Promise<RecoverResult> {
  recoverable(await loadRun(opts.store, opts.runId));
  // Only a run no live process drives (E_RUN_LEASED otherwise); read again once leased: the
  // process that held it may have finished it meanwhile.
  const lease = await RunLease.take(opts.store, opts.runId, opts.lease);
  try {
    const run = recoverable(await loadRun(opts.store, opts.runId));
    lease.startHeartbeat();
    const { result } = await continueRun(opts, run, await opts.store.events(opts.runId), undefined, lease);
    return result;
  } finally {
    await lease.end();
  }
}

/**
 * Suspended runs are recovered too: one whose wait has timed out takes its timeout edge, and one
 * whose resume died after storing its event continues from there.
 */
function recoverable(run: RunRecord): RunRecord {
  if (run.status !== 'running' && run.status !== 'suspended')
    throw new StoreError(
      'E_RECOVERY_NOT_RUNNING',
      `run ${run.run_id} is ${run.status}; only running or suspended runs are recovered`,
    );
  return run;
}

export async function resumeRun(opts: ResumeOptions): Promise<ResumeResult> {
  const run = await loadRun(opts.store, opts.runId);
  const stored = await opts.store.events(opts.runId);
  if (run.status !== 'suspended' || stored.at(-1)?.type !== 'run_suspended') {
    const dup = duplicateOf(stored, opts.event);
    if (dup)
      return { ...finishedResult(run, stored), resumed_from_seq: stored.length, reinvoked: [], resume: 'duplicate' };
    // Its last wait was taken by another event: this resume lost to that one, whether it came a
    // millisecond later (two resumes racing, the winner still running) or an hour later.
    if (waitTakenByAnother(stored))
      throw new StoreError(
        'E_RESUME_CONFLICT',
        `run ${opts.runId} was resumed with another event first (it is ${run.status} now); this one was not applied`,
      );
    throw new StoreError('E_RESUME_NOT_SUSPENDED', `run ${opts.runId} is ${run.status}, not waiting for an event`);
  }
  let lease: RunLease | undefined;
  try {
    lease = await takeForResume(opts, stored.length);
    lease.startHeartbeat();
    const { result, outcome } = await continueRun(opts, run, stored, opts.event, lease);
    return { ...result, resume: outcome.resumed ?? 'policy_blocked' };
  } catch (e) {
    if (!(e instanceof StoreError) || e.code !== 'E_STORE_CONFLICT') throw e;
    // Another resume stored its event first. If it was this same event, the resume is done.
    const now = await opts.store.events(opts.runId);
    if (duplicateOf(now, opts.event)) {
      const fresh = await loadRun(opts.store, opts.runId);
      return { ...finishedResult(fresh, now), resumed_from_seq: stored.length, reinvoked: [], resume: 'duplicate' };
    }
    throw new StoreError(
      'E_RESUME_CONFLICT',
      e.cause instanceof RunLeasedError
        ? `${e.message}; this event was not applied`
        : `run ${opts.runId} was resumed concurrently with another event; this one was not applied`,
    );
  } finally {
    await lease?.end();
  }
}

/** How long a resume waits for another process that holds the run's lease to store what it resumes with. */
const RESUME_LEASE_WAIT_MS = 2000;

/**
 * The run's lease for a resume. Another process holding it (a resume, a recover) stores its
 * resume event or releases the lease first thing; until then, or RESUME_LEASE_WAIT_MS, this one
 * waits. Once the stored events have grown, CAS in the append decides (duplicate or conflict).
 */
async function takeForResume(opts: ResumeOptions, storedCount: number): Promise<RunLease> {
  const until = Date.now() + RESUME_LEASE_WAIT_MS;
  for (;;) {
    try {
      return await RunLease.take(opts.store, opts.runId, opts.lease);
    } catch (e) {
      if (!(e instanceof RunLeasedError)) throw e;
      if ((await opts.store.events(opts.runId)).length > storedCount || Date.now() > until)
        // The append of a stale resume conflicts: the caller maps that to duplicate or conflict.
        throw new StoreError(
          'E_STORE_CONFLICT',
          `run ${opts.runId} is being continued by another process (lease held by ${e.lease.owner})`,
          { cause: e },
        );
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Suspended runs whose wait deadline has passed on `clock` (what `nano-vm recover` times out). */
export async function overdueWaits(store: Store, clock: Clock = systemClock): Promise<string[]> {
  const now = clock.now();
  const out: string[] = [];
  for (const run of await store.listRuns({ status: 'suspended' })) {
    const last = (await store.events(run.run_id)).at(-1);
    if (last?.type !== 'run_suspended' || (last.deadline !== undefined && Date.parse(last.deadline) < now))
      out.push(run.run_id);
  }
  return out;
}

async function loadRun(store: Store, runId: string): Promise<RunRecord> {
  const run = await store.getRun(runId);
  if (!run) throw new StoreError('E_STORE_NO_RUN', `no run ${runId}`);
  return run;
}

/** Whether the run's last wait was ended by an event (a run_resumed after its last run_suspended). */
function waitTakenByAnother(events: readonly TraceEvent[]): boolean {
  for (let i = events.length - 1; i >= 0; i--) {
    const type = events[i]!.type;
    if (type === 'run_resumed') return true;
    if (type === 'run_suspended' || type === 'wait_timed_out') return false;
  }
  return false;
}

/** The stored run_resumed event that carried exactly this event (payload, role and id), if any. */
function duplicateOf(events: readonly TraceEvent[], ev: ExternalEvent): RunResumedEvent | undefined {
  let payload: string;
  try {
    payload = canonicalJson(ev.payload);
  } catch {
    return undefined;
  }
  return events.find(
    (e): e is RunResumedEvent =>
      e.type === 'run_resumed' &&
      e.role === ev.role &&
      e.event_id === ev.event_id &&
      e.principal === ev.principal &&
      canonicalJson(e.event) === payload,
  );
}

async function continueRun(
  opts: RecoverOptions,
  run: RunRecord,
  stored: TraceEvent[],
  resume: ExternalEvent | undefined,
  lease: RunLease,
): Promise<{ result: RecoverResult; outcome: DriveOutcome }> {
  const genesis = stored[0] as RunStartedEvent | undefined;
  if (genesis !== undefined && genesis.type !== 'run_started')
    throw new StoreError('E_NO_GENESIS', `run ${opts.runId} does not start with a genesis event`);
  opts.model.checkProgram?.(run.program);
  // A process killed between creating the run and writing its genesis left nothing that happened:
  // the run starts from the beginning, with this runtime and this model.
  const hasher = opts.hasher ?? nodeHasher;
  const live = opts.clock ?? systemClock;
  const times = stored.map((e) => Date.parse(e.ts));
  let reads = 0;
  // Recorded timestamps while re-deriving stored events, the live clock after.
  const clock: Clock = { now: () => (reads < times.length ? times[reads++]! : live.now()) };
  // Sensitive values come back from the vault; the genesis commits to the stored (redacted) input.
  const opened = await openRunInput(opts.store, run);
  // The run's own policy, as at its start (policy_hash pinned at genesis).
  const { policy } = policyOption(run.policy ?? null, run.program, hasher);
  const policyHash = policy ? policy.hash : hashJson(hasher, run.policy ?? null);
  const machine = new Machine(new CompiledProgram(run.program), opened.input, {
    runId: run.run_id,
    hasher,
    clock,
    runtimeVersion: genesis?.runtime_version ?? RUNTIME_VERSION,
    model: genesis?.model ?? { id: opts.model.id, scripted: opts.model.scripted },
    policyHash,
    ...(policy && { policy }),
    ...(opened.redact && { redact: opened.redact, inputHash: hashJson(hasher, run.input) }),
  });
  const fx = new Effects(opts.model, opts.tools, opts.defaultTimeoutMs ?? DEFAULT_EFFECT_TIMEOUT_MS);
  const offered = opts.policy === undefined ? undefined : hashJson(hasher, opts.policy ?? null);
  const pinned = genesis?.policy_hash ?? policyHash;
  const halt = offered !== undefined && offered !== pinned ? { policyChangedTo: offered } : {};
  let outcome: DriveOutcome;
  let settled: RunResult;
  try {
    outcome = await drive({
      machine,
      store: opts.store,
      runId: run.run_id,
      fx,
      stored,
      ...(resume ? { resume } : {}),
      expireOn: live,
      onEvent: opts.onEvent,
      lease,
      ...halt,
    });
    settled = await settleRun(machine, outcome.waiting, opts.store, run, outcome.finished);
  } catch (e) {
    throw unstoredResult(e, run.run_id);
  }
  lease.markSettled();
  return { outcome, result: { ...settled, resumed_from_seq: stored.length, reinvoked: outcome.reinvoked } };
}

/** A run's result from its stored record and events alone (nothing is executed). */
function finishedResult(
  run: RunRecord,
  events: TraceEvent[],
): Omit<RunResult, 'status'> & { status: RunRecord['status'] } {
  return runResult(run, run.status, events);
}
