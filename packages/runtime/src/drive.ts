/**
 * The one host loop that moves a machine forward: for a new run, a recovered run and a resumed
 * run alike. It performs effects, persists every event before the next effect starts (write-ahead),
 * and stops at the end or at a wait step.
 *
 * Given the events already stored for the run, it first re-derives them: each stored effect result
 * and each stored resume is fed back to the machine, and every re-derived event must hash exactly
 * like the stored one (E_RECOVERY_DIVERGED otherwise), so the machine's state is exactly what it
 * was. From the first step with nothing recorded the run continues live; a tool call that had
 * started but has no stored result is invoked again with its original idempotency key.
 */
import {
  applyRecordedWait,
  RecordedCursor,
  type Clock,
  type ExternalEvent,
  type Machine,
  type RunStatus,
  type TraceEvent,
  type WaitCommand,
} from '@nano-vm/kernel';
import type { Effects } from './effects.js';
import { StoreError, type NewRun, type Store, type VaultValue } from './store/store.js';

export interface DriveOptions {
  machine: Machine;
  store: Store;
  runId: string;
  fx: Effects;
  /** Events already stored for this run (recovery, resume). */
  stored?: readonly TraceEvent[];
  /** The external event for the wait the run is suspended at (resume). */
  resume?: ExternalEvent;
  /** When given, a pending wait whose deadline has passed on this clock times out instead of suspending. */
  expireOn?: Clock;
  /** Called for every newly persisted event. */
  onEvent?: ((e: TraceEvent, runId: string) => void) | undefined;
  /**
   * The hash of the policy the host runs under now, when it is not the one pinned at the run's
   * genesis: the run halts as POLICY_BLOCKED (rule policy.pinned) before anything live happens.
   */
  policyChangedTo?: string;
  /** The run's lease (lease.ts): checked before each effect starts, so a drive whose lease was taken stops. */
  lease?: { check(): void };
  /**
   * A new run not yet stored (only with a store that has `writeRun`): it is created in the
   * transaction of its first events, and `onCreated` is called once that is durable.
   */
  create?: { run: NewRun; vault?: readonly VaultValue[] | undefined };
  onCreated?: () => void;
}

export interface DriveOutcome {
  /** The wait the run is suspended at, or null when it finished. */
  waiting: WaitCommand | null;
  /** How the resume event was taken: 'resumed', or 'timed_out' when it came after the deadline. */
  resumed: 'resumed' | 'timed_out' | null;
  /** Idempotency keys of tool calls that had started before and were invoked again. */
  reinvoked: string[];
  /** The run's terminal status was stored with its last events (`Store.writeRun`): settleRun need not write it. */
  finished: boolean;
}

export async function drive(o: DriveOptions): Promise<DriveOutcome> {
  const { machine, store, runId, fx } = o;
  const stored = o.stored ?? [];
  // New runs (nothing stored) allocate none of the replay bookkeeping.
  const recorded = stored.length ? new RecordedCursor(stored, machine.compiled, machine.redactor) : null;

  let checked = 0;
  let persisted = stored.length;
  /**
   * Check re-derived events against the stored ones, and persist the new ones: everything the
   * machine decided since the last effect, in one append (one transaction). Returns the store's
   * promise when there is something to write (else undefined, so a step with nothing to write
   * awaits nothing); `announce` then reports the batch once it is stored.
   */
  let unannounced = persisted;
  let create = o.create;
  let finished = false;
  const sync = (finish?: { status: RunStatus; outcome: string | null }): Promise<void> | undefined => {
    const evs = machine.events;
    for (const end = Math.min(evs.length, stored.length); checked < end; checked++) {
      if (evs[checked]!.hash !== stored[checked]!.hash) {
        throw new StoreError(
          'E_RECOVERY_DIVERGED',
          `re-deriving run ${runId} diverges at seq ${checked} (${stored[checked]!.type}): the program, the runtime or the stored events changed`,
        );
      }
    }
    if (persisted >= evs.length && !create) return undefined;
    const batch = evs.slice(persisted);
    persisted = evs.length;
    // With writeRun, the run's creation and its terminal status go in the transaction of the events
    // next to them (one commit each fewer); `create` is only given for a store that has it.
    if (store.writeRun && (create || finish)) {
      const c = create;
      create = undefined;
      finished = finish !== undefined;
      const w = store.writeRun(runId, { ...(c && { create: c }), events: batch, ...(finish && { finish }) });
      return c && o.onCreated ? w.then(o.onCreated) : w;
    }
    return store.append(runId, batch);
  };
  const announce = (): void => {
    if (o.onEvent) for (let i = unannounced; i < persisted; i++) o.onEvent(machine.events[i]!, runId);
    unannounced = persisted;
  };

  /** The terminal status to store with the events that end the run (with writeRun), once it has one. */
  const ending = () => {
    const r = machine.result;
    return r && store.writeRun ? { status: r.status, outcome: r.outcome ?? null } : undefined;
  };

  let resume = o.resume;
  let resumed: DriveOutcome['resumed'] = null;
  const reinvoked: string[] = [];
  for (;;) {
    const cmd = machine.next();
    const written = sync(cmd.type === 'done' ? ending() : undefined);
    if (written) {
      await written;
      announce();
    }
    switch (cmd.type) {
      case 'done':
        return { waiting: null, resumed, reinvoked, finished };
      case 'wait':
        if (recorded !== null && recorded.waitsLeft > 0) {
          if (!applyRecordedWait(machine, recorded.nextWait()))
            throw new StoreError(
              'E_RECOVERY_DIVERGED',
              `re-deriving run ${runId}: the stored resume of step '${cmd.step}' no longer fits the program`,
            );
        } else if (resume && o.policyChangedTo !== undefined) machine.haltOnPolicyChange(o.policyChangedTo);
        else if (resume) {
          // A refused event (role, schema) throws here, before anything is appended. The resume
          // is taken once its event is stored (an append that loses a race throws E_STORE_CONFLICT
          // and nothing runs); from then on the run is running again.
          resumed = machine.resume(resume);
          resume = undefined;
          const w = sync(ending());
          if (w) {
            await w;
            announce();
          }
          if (!machine.result) {
            await store.finish(runId, 'running', null);
          }
        } else if (o.expireOn && cmd.deadline_ms !== undefined && o.expireOn.now() > cmd.deadline_ms) machine.expire();
        else return { waiting: cmd, resumed, reinvoked, finished: false };
        break;
      case 'parallel': {
        // Children's results are recorded together after the join, so either all of this visit's
        // are stored or none are (the process died first): then the children run again live.
        const attempts = recorded ? cmd.children.map((child) => recorded.attempts(child)) : [];
        const allRecorded = recorded !== null && attempts.every((a) => a !== null);
        if (allRecorded) machine.completeParallel(attempts as NonNullable<(typeof attempts)[number]>[]);
        else if (o.policyChangedTo !== undefined) machine.haltOnPolicyChange(o.policyChangedTo);
        else {
          o.lease?.check();
          machine.completeParallel(await fx.parallel(cmd, machine.compiled));
        }
        break;
      }
      case 'llm':
      case 'tool': {
        const r = recorded?.take(cmd);
        if (r) machine.complete(r);
        else if (o.policyChangedTo !== undefined) machine.haltOnPolicyChange(o.policyChangedTo);
        else {
          o.lease?.check();
          if (cmd.type === 'tool' && recorded?.started(cmd)) {
            // The store counts the second invocation of the key (its step_started counted the first).
            reinvoked.push(cmd.idempotency_key);
            await store.reinvoked(runId, {
              key: cmd.idempotency_key,
              step: cmd.step,
              tool: cmd.tool,
              attempt: cmd.attempt,
            });
          }
          machine.complete(await fx.perform(cmd));
        }
      }
    }
  }
}
