/**
 * Crash recovery and resume: continue a stored run. The stored events are re-derived through a
 * fresh machine (drive.ts): recorded results, recorded resumes and recorded timestamps go back in,
 * and every re-derived event must equal the stored one, so the machine's state is exactly what it
 * was. Then the run continues live.
 *
 * - recoverRun finishes a run whose process died (status running). A tool call that had started
 *   but has no stored result is invoked again with the same idempotency key.
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
import { DEFAULT_EFFECT_TIMEOUT_MS, runResult, settleRun, type RunResult } from './executor.js';
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
  const run = await loadRun(opts.store, opts.runId);
  // Suspended runs are recovered too: one whose wait has timed out takes its timeout edge, and one
  // whose resume died after storing its event continues from there.
  if (run.status !== 'running' && run.status !== 'suspended')
    throw new StoreError(
      'E_RECOVERY_NOT_RUNNING',
      `run ${opts.runId} is ${run.status}; only running or suspended runs are recovered`,
    );
  const { result } = await continueRun(opts, run, await opts.store.events(opts.runId));
  return result;
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
  try {
    const { result, outcome } = await continueRun(opts, run, stored, opts.event);
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
      `run ${opts.runId} was resumed concurrently with another event; this one was not applied`,
    );
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
      canonicalJson(e.event) === payload,
  );
}

async function continueRun(
  opts: RecoverOptions,
  run: RunRecord,
  stored: TraceEvent[],
  resume?: ExternalEvent,
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
  const outcome = await drive({
    machine,
    store: opts.store,
    runId: run.run_id,
    fx,
    stored,
    ...(resume ? { resume } : {}),
    expireOn: live,
    onEvent: opts.onEvent,
    ...halt,
  });
  const settled = await settleRun(machine, outcome.waiting, opts.store, run);
  return { outcome, result: { ...settled, resumed_from_seq: stored.length, reinvoked: outcome.reinvoked } };
}

/** A run's result from its stored record and events alone (nothing is executed). */
function finishedResult(
  run: RunRecord,
  events: TraceEvent[],
): Omit<RunResult, 'status'> & { status: RunRecord['status'] } {
  return runResult(run, run.status, events);
}
