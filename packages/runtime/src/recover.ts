/**
 * Crash recovery: finish a run whose process died. The stored events are fed back through a fresh
 * machine (recorded results, recorded timestamps) and every re-derived event must equal the stored
 * one — so the machine's state is exactly what it was. From the first step with no recorded result
 * the run continues live: a tool call that had started (its step_started is stored) but has no
 * result is invoked again with the same idempotency key, so a tool that honours the key does not
 * act twice.
 */
import { BUNDLE_FORMAT, CompiledProgram, Machine, computeReceipt, hashJson, recordedResults, resultKey, type Clock, type EffectCommand, type EffectResult, type Hasher, type RunStartedEvent, type TraceEvent } from '@nano-vm/kernel';
import { systemClock } from './clock.js';
import { DEFAULT_EFFECT_TIMEOUT_MS, type RunResult } from './executor.js';
import { Effects } from './effects.js';
import type { ModelPort } from './model/port.js';
import { nodeHasher } from './nodeHasher.js';
import { StoreError, type Store } from './store/store.js';
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
}

export interface RecoverResult extends RunResult {
  /** Events that were already stored and re-derived; the run continued from this seq. */
  resumed_from_seq: number;
  /** Idempotency keys of tool calls that had started before the crash and were invoked again. */
  reinvoked: string[];
}

export async function recoverRun(opts: RecoverOptions): Promise<RecoverResult> {
  const run = await opts.store.getRun(opts.runId);
  if (!run) throw new StoreError('E_STORE_NO_RUN', `no run ${opts.runId}`);
  if (run.status !== 'running') throw new StoreError('E_RECOVERY_NOT_RUNNING', `run ${opts.runId} is ${run.status}; only running runs are recovered`);
  const stored = await opts.store.events(opts.runId);
  const genesis = stored[0] as RunStartedEvent | undefined;
  if (genesis !== undefined && genesis.type !== 'run_started') throw new StoreError('E_NO_GENESIS', `run ${opts.runId} does not start with a genesis event`);
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
  const machine = new Machine(new CompiledProgram(run.program), opened.input, {
    runId: run.run_id,
    hasher,
    clock,
    runtimeVersion: genesis?.runtime_version ?? RUNTIME_VERSION,
    model: genesis?.model ?? { id: opts.model.id, scripted: opts.model.scripted },
    policyHash: hashJson(hasher, run.policy ?? null),
    ...(opened.redact && { redact: opened.redact, inputHash: hashJson(hasher, run.input) }),
  });

  const recorded = recordedResults(stored, machine.redactor);
  const taken = new Map<string, number>();
  const take = (cmd: EffectCommand): EffectResult | undefined => {
    const k = resultKey(cmd.step, cmd.parent);
    const n = taken.get(k) ?? 0;
    const r = recorded.get(k)?.[n];
    if (r !== undefined) taken.set(k, n + 1);
    return r;
  };
  /** One child's recorded attempts for this visit, taken as a host would have made them; null when none are stored. */
  const recordedAttempts = (child: EffectCommand): EffectResult[] | null => {
    const rs: EffectResult[] = [];
    for (let attempt = 1; ; attempt++) {
      const r = take(child);
      if (r === undefined) return rs.length ? rs : null;
      rs.push(r);
      if (machine.checkResult(child.step, r).ok || !machine.shouldRetry(child.step, attempt)) return rs;
    }
  };
  const fx = new Effects(opts.model, opts.tools, opts.defaultTimeoutMs ?? DEFAULT_EFFECT_TIMEOUT_MS);
  const reinvoked: string[] = [];

  let checked = 0;
  let persisted = stored.length;
  const sync = async (): Promise<void> => {
    const evs = machine.events;
    for (; checked < Math.min(evs.length, stored.length); checked++) {
      if (evs[checked]!.hash !== stored[checked]!.hash) throw new StoreError('E_RECOVERY_DIVERGED', `re-deriving run ${opts.runId} diverges at seq ${checked} (${stored[checked]!.type}): the program, the runtime or the stored events changed`);
    }
    for (; persisted < evs.length; persisted++) {
      const w = opts.store.append(opts.runId, evs[persisted]!);
      if (w) await w;
    }
  };

  for (;;) {
    const cmd = machine.next();
    await sync();
    if (cmd.type === 'done') break;
    if (cmd.type === 'parallel') {
      // Children's results are recorded together after the join, so either all of this visit's
      // are stored or none are (the crash came first): then the children run again live.
      const attempts = cmd.children.map((child) => recordedAttempts(child));
      machine.completeParallel(attempts.every((a) => a !== null) ? (attempts as EffectResult[][]) : await fx.parallel(cmd, machine));
      continue;
    }
    const r = take(cmd);
    if (r) machine.complete(r);
    else {
      if (cmd.type === 'tool' && stored.some((e) => e.type === 'step_started' && e.idempotency_key === cmd.idempotency_key && e.attempt === cmd.attempt)) reinvoked.push(cmd.idempotency_key);
      machine.complete(await fx.perform(cmd));
    }
  }
  const finished = machine.result!;
  const fin = opts.store.finish(opts.runId, finished.status, finished.outcome ?? null);
  if (fin) await fin;
  const events: TraceEvent[] = machine.events;
  const receipt = computeReceipt(events);
  return {
    run_id: run.run_id,
    status: finished.status,
    outcome: finished.outcome ?? null,
    head_hash: receipt.head_hash,
    events,
    receipt,
    bundle: { format: BUNDLE_FORMAT, program: run.program, policy: run.policy, input: run.input, events, receipt },
    resumed_from_seq: stored.length,
    reinvoked,
  };
}
