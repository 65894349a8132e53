/**
 * The executor: drives the kernel machine, performs effects (model and tool calls) with timeouts
 * and cancellation, and persists every event before the effect that follows it starts.
 */
import {
  BUNDLE_FORMAT,
  CompiledProgram,
  Machine,
  NanoVmError,
  canonicalJson,
  checkInputSchema,
  canonicalForm,
  checkValueLimits,
  computeReceipt,
  hashJson,
  validateProgram,
  type Bundle,
  type Clock,
  type Hasher,
  type Issue,
  type Program,
  type Receipt,
  type RunStatus,
  type TraceEvent,
  type WaitCommand,
} from '@nano-vm/kernel';
import { randomIds, systemClock, type IdSource } from './clock.js';
import { drive } from './drive.js';
import { Effects } from './effects.js';
import { RunLease, type LeaseOptions } from './lease.js';
import { policyPreflight } from './policyRun.js';
import type { ModelPort } from './model/port.js';
import { nodeHasher } from './nodeHasher.js';
import { MemoryStore } from './store/memoryStore.js';
import { StoreError, type NewRun, type Store } from './store/store.js';
import type { ToolRegistry } from './toolRegistry.js';
import { sealInput } from './vault.js';
import { RUNTIME_VERSION } from './version.js';

/** Effects without a declared timeout_ms get this one, so a hung call cannot hang a run forever. */
export const DEFAULT_EFFECT_TIMEOUT_MS = 120_000;

export interface RunOptions {
  program: Program | CompiledProgram;
  input: unknown;
  model: ModelPort;
  tools: ToolRegistry;
  store?: Store;
  clock?: Clock;
  ids?: IdSource;
  hasher?: Hasher;
  policy?: unknown;
  /** The run's data subject for erasure (docs/privacy.md); defaults to the value at the program's `subject` path. */
  subject?: string;
  defaultTimeoutMs?: number;
  /** Called with each event once the store has it, in order (e.g. `await otelEventHook()`). */
  onEvent?: (event: TraceEvent, runId: string) => void;
  /** The lease this process holds on the run while it drives it (lease.ts; docs/stores.md "Leases"). */
  lease?: LeaseOptions;
}

export interface RunResult {
  run_id: string;
  /** 'suspended': the run waits at a wait step (see `waiting`) until `resumeRun` delivers its event. */
  status: RunStatus;
  /** The wait step a suspended run waits at. */
  waiting?: WaitCommand;
  outcome: string | null;
  head_hash: string;
  events: TraceEvent[];
  receipt: Receipt;
  bundle: Bundle;
}

const validated = new WeakMap<Program, WeakMap<ToolRegistry, Issue[]>>();

/** Pre-flight validation, cached per (program object, tool registry). */
export function preflight(program: Program, tools: ToolRegistry): Issue[] {
  let byTools = validated.get(program);
  if (!byTools) validated.set(program, (byTools = new WeakMap()));
  let issues = byTools.get(tools);
  if (!issues) {
    issues = validateProgram(program, { tools: tools.describe() });
    byTools.set(tools, issues);
  }
  return issues;
}

const refusals = new WeakMap<Issue[], Issue[]>();

/** The errors among the pre-flight issues (computed once per issue list). */
function preflightErrors(program: Program, tools: ToolRegistry): Issue[] {
  const issues = preflight(program, tools);
  let errors = refusals.get(issues);
  if (!errors) refusals.set(issues, (errors = issues.filter((i) => i.severity === 'error')));
  return errors;
}

const compiledCache = new WeakMap<Program, CompiledProgram>();
const noPolicyHash = new WeakMap<Hasher, string>();

/** Most runs have no policy: its hash is the same for every run, so compute it once per hasher. */
function policyHashOf(hasher: Hasher, policy: unknown): string {
  if (policy !== null) return hashJson(hasher, policy);
  let h = noPolicyHash.get(hasher);
  if (h === undefined) noPolicyHash.set(hasher, (h = hashJson(hasher, null)));
  return h;
}

function compiledOf(p: Program | CompiledProgram): CompiledProgram {
  if (p instanceof CompiledProgram) return p;
  let c = compiledCache.get(p);
  if (!c) compiledCache.set(p, (c = new CompiledProgram(p)));
  return c;
}

/** Run a program to a terminal state. Throws NanoVmError (E_PROGRAM_INVALID / E_INPUT_INVALID) before any event when refused. */
export async function runProgram(opts: RunOptions): Promise<RunResult> {
  const cp = compiledOf(opts.program);
  const program = cp.program;
  const hasher = opts.hasher ?? nodeHasher;
  // Under a policy the pre-flight includes the policy's rules (policyRun.ts); E_POLICY_INVALID when it is not a policy.
  const underPolicy =
    opts.policy !== undefined && opts.policy !== null
      ? policyPreflight(cp, opts.policy, opts.tools, hasher)
      : undefined;
  const errors = underPolicy ? underPolicy.errors : preflightErrors(program, opts.tools);
  if (errors.length)
    throw new NanoVmError(
      'E_PROGRAM_INVALID',
      `program '${program.id}' is invalid (${errors.length} error${errors.length > 1 ? 's' : ''}): ${errors[0]!.code} ${errors[0]!.message}`,
      errors,
    );
  // The machine works on the input in canonical member order (see canonicalJson's fast path).
  const { text: inputText, value: input } = checkInput(program, opts.input);
  opts.model.checkProgram?.(program);
  // Sensitive values go to the vault; what is stored, hashed and exported holds their commitments.
  const store = opts.store ?? new MemoryStore();
  const sealed = cp.sensitive.length
    ? sealInput(program, opts.input, hasher, opts.ids, opts.subject, await store.subjectSecret())
    : null;
  const storedInput = sealed ? sealed.redacted : opts.input;
  const inputHash = hasher.sha256Hex(sealed ? canonicalJson(storedInput) : inputText);
  const clock = opts.clock ?? systemClock;
  const policy = opts.policy ?? null;
  const runId = (opts.ids ?? randomIds).runId({ programHash: cp.hash(hasher), inputHash });
  // The run is created leased to this process: no recover ever sees it running and unleased.
  const lease = RunLease.forNewRun(store, runId, opts.lease);
  const newRun: NewRun = {
    run_id: runId,
    program_id: program.id,
    program,
    policy,
    input: storedInput,
    status: 'running',
    outcome: null,
    lease: lease.current(),
  };
  // A store with writeRun creates the run in the transaction of its first events (drive.ts);
  // otherwise it is created here, before the machine takes its first step.
  if (!store.writeRun) await store.createRun(newRun, sealed?.vault);

  const machine = new Machine(cp, input, {
    runId,
    hasher,
    clock,
    runtimeVersion: RUNTIME_VERSION,
    model: { id: opts.model.id, scripted: opts.model.scripted },
    policyHash: underPolicy ? underPolicy.policy.hash : policyHashOf(hasher, policy),
    ...(underPolicy && { policy: underPolicy.policy }),
    inputHash,
    ...(sealed && { redact: sealed.redactor }),
  });
  const fx = new Effects(opts.model, opts.tools, opts.defaultTimeoutMs ?? DEFAULT_EFFECT_TIMEOUT_MS);
  let created = !store.writeRun;
  const onCreated = () => {
    created = true;
    lease.startHeartbeat();
  };
  if (created) lease.startHeartbeat();
  try {
    const { waiting, finished } = await drive({
      machine,
      store,
      runId,
      fx,
      onEvent: opts.onEvent,
      lease,
      ...(!created && { create: { run: newRun, vault: sealed?.vault }, onCreated }),
    });
    const run = { run_id: runId, program, policy, input: storedInput };
    const result = await settleRun(machine, waiting, store, run, finished);
    lease.markSettled();
    return result;
  } catch (e) {
    // Refused before the run was stored (a duplicate run id, a busy store): nothing to recover.
    if (!created) throw e;
    throw unstoredResult(e, runId);
  } finally {
    if (created) await lease.end();
  }
}

/**
 * A store that stayed busy after a run started: what the run did since its last stored event is
 * not stored (a tool may have returned), so the error says which run and who finishes it. The
 * lease is released (RunLease.end) so recovery can take the run at once.
 */
export function unstoredResult(e: unknown, runId: string): unknown {
  if (!(e instanceof StoreError) || e.code !== 'E_STORE_BUSY') return e;
  return new StoreError(
    'E_STORE_BUSY',
    `run ${runId} stopped: ${e.message}. What it did since its last stored event is not stored; the run stays running and \`nano-vm recover\` (recoverRun) will finish it, invoking again with its idempotency key a tool whose result was not stored`,
    { cause: e },
  );
}

/**
 * Where a drive stopped: records the run's status in the store (suspended at a wait, or its
 * terminal status) and builds the result, receipt and bundle from the machine's events.
 */
export async function settleRun(
  machine: Machine,
  waiting: WaitCommand | null,
  store: Store,
  run: { run_id: string; program: Program; policy: unknown; input: unknown },
  /** The drive stored the terminal status with the last events already (DriveOutcome.finished). */
  finished = false,
): Promise<RunResult> {
  const status = waiting ? 'suspended' : machine.result!.status;
  const outcome = machine.result?.outcome ?? null;
  if (!finished) await store.finish(run.run_id, status, outcome);
  return { ...runResult(run, status, machine.events), ...(waiting ? { waiting } : {}) };
}

/** A run's result from its events: receipt, head hash and the bundle. */
export function runResult<S extends string>(
  run: { run_id: string; program: Program; policy: unknown; input: unknown },
  status: S,
  events: TraceEvent[],
): Omit<RunResult, 'status'> & { status: S } {
  const receipt = computeReceipt(events);
  return {
    run_id: run.run_id,
    status,
    outcome: receipt.outcome,
    head_hash: receipt.head_hash,
    events,
    receipt,
    bundle: { format: BUNDLE_FORMAT, program: run.program, policy: run.policy, input: run.input, events, receipt },
  };
}

/** Checks the run input against the program's input_schema; returns its canonical text and the input in canonical member order. */
export function checkInput<T>(program: Program, input: T): { text: string; value: T } {
  let form: { text: string; value: T };
  // Before anything walks it recursively (E_TOO_DEEP, E_TOO_LARGE; docs/limits.md).
  checkValueLimits(input, 'run input');
  try {
    form = canonicalForm(input);
  } catch (e) {
    throw new NanoVmError('E_INPUT_INVALID', `run input is not JSON: ${(e as Error).message}`, [
      { code: 'E_INPUT_INVALID', severity: 'error', message: (e as Error).message },
    ]);
  }
  // Worded messages that name the path: a refused input is not recorded, so they may read better.
  const vs = checkInputSchema(program.input_schema, input);
  if (vs.length)
    throw new NanoVmError(
      'E_INPUT_INVALID',
      `run input does not match the program's input_schema: ${vs.map((v) => v.message).join('; ')}`,
      vs.map((v) => ({ code: 'E_INPUT_INVALID', severity: 'error', path: v.at, message: v.message })),
    );
  return form;
}
