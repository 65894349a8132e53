/**
 * The machine: a thin shell around the successor function (successor.ts) for hosts that drive
 * one run. It holds the run's current state and its hash chain: it hands each happening to the
 * successor, chains the events the successor decided (write-ahead: `onEvent` sees each before the
 * host may act on the next command) and hands back the command to perform. It decides nothing.
 */
import { TraceChain } from './chain.js';
import type { Clock, Command, EffectResult, ExternalEvent } from './command.js';
import { CompiledProgram } from './compiledProgram.js';
import { NanoVmError } from './errors.js';
import { memoByString } from './memo.js';
import * as ev from './eventBodies.js';
import type { RunFinishedEvent, RunStartedEvent, TraceEvent } from './events.js';
import { hashJson, type Hasher } from './hash.js';
import type { Program } from './program.js';
import type { CompiledPolicy } from './policyGate.js';
import { scrubEvent, type Redactor, type SealedDecisions } from './redact.js';
import { initialState, type RunState } from './runState.js';
import { successor, type Happening, type SuccessorEnv, type Transition } from './successor.js';

export interface MachineOptions {
  runId: string;
  hasher: Hasher;
  clock: Clock;
  runtimeVersion: string;
  model: { id: string; scripted: boolean };
  policyHash?: string;
  /** The policy the run is under (its hash must be policyHash): enforced before every step entry. */
  policy?: CompiledPolicy;
  /** Hash of the input when the host already computed it. */
  inputHash?: string;
  /** Called synchronously for every appended event (persist it before acting on the next command). */
  onEvent?: (e: TraceEvent) => void;
  /** Sensitive values to write as their commitments (docs/privacy.md); the state keeps the values. */
  redact?: Redactor;
  /** Replay without the vault: conditions reading these input paths take their recorded decision. */
  sealed?: SealedDecisions;
}

export class Machine {
  readonly chain: TraceChain;
  private readonly env: SuccessorEnv;
  private state: RunState;

  constructor(
    program: Program | CompiledProgram,
    input: unknown,
    private readonly opts: MachineOptions,
  ) {
    const cp = program instanceof CompiledProgram ? program : new CompiledProgram(program);
    this.chain = new TraceChain(opts.hasher);
    this.env = {
      cp,
      runId: opts.runId,
      hasher: opts.hasher,
      clock: opts.clock,
      timestamp: isoTimestamps(),
      policy: opts.policy,
      redact: opts.redact,
      sealed: opts.sealed,
    };
    const ms = opts.clock.now();
    const genesis = ev.runStarted({
      run_id: opts.runId,
      program_id: cp.program.id,
      program_hash: cp.hash(opts.hasher),
      policy_hash: opts.policyHash ?? hashJson(opts.hasher, null),
      input_hash: opts.inputHash ?? hashJson(opts.hasher, input),
      runtime_version: opts.runtimeVersion,
      model: opts.model,
    });
    this.append(opts.redact ? scrubEvent(opts.redact, genesis, () => undefined) : genesis, this.env.timestamp(ms));
    this.state = initialState(cp, input, ms, opts.policy?.view);
  }

  get events(): TraceEvent[] {
    return this.chain.events;
  }

  /** The run_finished event once the run has finished (chained: the successor's body, completed in place). */
  get result(): RunFinishedEvent | null {
    return this.state.finished;
  }

  /** The redactor events are written with (hosts reveal recorded results with it). */
  get redactor(): Redactor | undefined {
    return this.opts.redact;
  }

  get compiled(): CompiledProgram {
    return this.env.cp;
  }

  /** The command to perform now. Idempotent until the host reports what happened. */
  next(): Command {
    return this.state.pending ?? this.take({ type: 'begin' }).command!;
  }

  /** Hand the machine the result of the pending llm/tool command. */
  complete(result: EffectResult): void {
    this.take({ type: 'effect', result });
  }

  /** Every attempt of every child of the pending parallel command, in declared child order. */
  completeParallel(attempts: readonly (readonly EffectResult[])[]): void {
    this.take({ type: 'parallel', attempts });
  }

  /**
   * Deliver the external event a suspended run waits for. A wrong role or a payload outside the
   * step's event schema is refused with a NanoVmError and changes nothing. Past the deadline the
   * wait times out instead (returns 'timed_out'): the event is not taken.
   */
  resume(event: ExternalEvent): 'resumed' | 'timed_out' {
    return this.take({ type: 'resume', event }).resumed!;
  }

  /** The wait's timeout has passed (the host checks the deadline): take on_timeout, or fail. */
  expire(): void {
    this.take({ type: 'expire' });
  }

  /**
   * The host offers a policy whose hash differs from the one pinned at genesis (a recovered or
   * resumed run whose policy file changed): nothing more runs; the run halts as POLICY_BLOCKED.
   */
  haltOnPolicyChange(offeredPolicyHash: string): void {
    const pinned = (this.events[0] as RunStartedEvent).policy_hash;
    this.take({ type: 'policy_changed', pinned, offered: offeredPolicyHash });
  }

  private take(what: Happening): Transition {
    const t = successor(this.env, this.state, what);
    for (const d of t.events) this.append(d.body, d.ts, d.outputText);
    for (const u of t.sealedUses) this.opts.sealed?.used(u.seq, u.step, u.paths);
    this.state = t.state;
    if (t.stuck) throw t.stuck;
    if (t.command === null) throw new NanoVmError('E_INTERNAL', 'the successor returned no command');
    return t;
  }

  private append(body: TraceEvent, ts: string, outputText?: string): TraceEvent {
    const e = this.chain.append(body, ts, outputText);
    this.opts.onEvent?.(e);
    return e;
  }
}

/**
 * An event's `ts` from a clock reading. Formatting a Date per event showed in profiles, so the text
 * of the run's last reading is kept, and the `YYYY-MM-DDTHH:MM:SS.` prefix of a second is memoized
 * (a pure function of the second, shared by every run: a new run does not format a Date again).
 */
function isoTimestamps(): (ms: number) => string {
  let lastMs = Number.NaN;
  let lastText = '';
  let second = Number.NaN;
  let prefix = '';
  return (ms) => {
    if (ms !== lastMs) {
      const s = ms - (((ms % 1000) + 1000) % 1000);
      if (s !== second) {
        second = s;
        prefix = secondPrefix(String(s));
      }
      const milli = ms - s;
      lastText = `${prefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
      lastMs = ms;
    }
    return lastText;
  };
}

const secondPrefix = memoByString(64, (s) => new Date(Number(s)).toISOString().slice(0, 20));
