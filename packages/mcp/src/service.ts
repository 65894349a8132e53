/**
 * What the MCP tools do, apart from MCP: programs, runs, proof. Every method takes the calling
 * principal and throws a NanoVmError with a code for anything a caller did wrong; tools.ts maps
 * those to `isError` results. Runs use the server's model, tools and policy only.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import {
  analyzeRuns,
  canonicalJson,
  checkSchema,
  computeReceipt,
  describeViolations,
  hashJson,
  loadPolicy,
  loadProgram,
  NanoVmError,
  parseJsonText,
  policyGuardGlobals,
  programGraph,
  programPaths,
  replayBundle,
  serializeBundle,
  validatePolicy,
  validateProgram,
  verifyBundle,
  type Bundle,
  type Issue,
  type PolicySnapshot,
  type Program,
  type RunResumedEvent,
  type RunStatus,
  type RunSuspendedEvent,
  type SourceMap,
  type TraceEvent,
} from '@nano-vm/kernel';
import {
  checkInput,
  eraseSubject,
  nodeHasher,
  preflight,
  randomSalt,
  resumeRun,
  runProgram,
  runResult,
  vaultEntries,
  type ModelPort,
  type RunRecord,
  type RunResult,
  type Store,
  type ToolRegistry,
} from '@nano-vm/runtime';
import type { ServerLimits } from './config.js';
import { importV08 } from './import/importV08.js';
import { hasScope, type Principal } from './principals.js';
import { sha256, type ServerState, type StoredProgram } from './state.js';

/** Where a program comes from: a stored one (by name and version, or hash) or inline text. */
export interface ProgramSource {
  name?: string;
  version?: number;
  hash?: string;
  text?: string;
  /** `llm-nano-vm/v0.8`: a program of the Python original, converted as `nano-vm import` does (docs/import.md). */
  format?: 'yaml' | 'json' | 'llm-nano-vm/v0.8';
}

export interface ServiceDeps {
  store: Store;
  state: ServerState;
  model: ModelPort;
  tools: ToolRegistry;
  /** The server's policy: every run is held to it. */
  policy?: PolicySnapshot;
  limits: ServerLimits;
  /** False: run_program refuses inline program text (docs/mcp.md "Configuration"). */
  inlinePrograms?: boolean;
  now?: () => Date;
  /**
   * Runs go to workers instead of running here (a PostgreSQL store): run_program enqueues them
   * and, with wait, waits for a worker to finish or suspend them (docs/mcp.md "On PostgreSQL, with workers").
   */
  queue?: RunQueue;
}

/** A queue of runs for workers, and word of their status changes (postgresQueue.ts). */
export interface RunQueue {
  submit(s: { runId: string; program: Program; input: unknown; policy?: PolicySnapshot }): Promise<void>;
  /** A submission no worker has made a run of yet: queued, or refused by a worker (`<code>: <message>`). */
  submission(runId: string): Promise<{ state: 'queued' } | { state: 'refused'; error: string } | undefined>;
  /** Calls `listener` on each status change (`run_id` `*`: changes may have been missed, look again). */
  on(listener: (c: { run_id: string; status: string }) => void): () => void;
  /** How long run_program with wait true waits for a worker, in ms. */
  waitMs: number;
}

/** A run as the tools report it. */
export interface RunView {
  run_id: string;
  program_id: string;
  program_hash: string;
  /** `queued`: submitted to the workers (a PostgreSQL store), no worker has started it yet. */
  status: RunStatus | 'running' | 'queued';
  outcome: string | null;
  head_hash: string;
  event_count: number;
  started_by: string | null;
  waiting: { step: string; role: string | null; deadline: string | null } | null;
}

export interface RunReport extends RunView {
  receipt: unknown;
  /** True when this result is an earlier call's, returned again for the same idempotency key. */
  replayed: boolean;
  /** What the conversion of an llm-nano-vm v0.8 program could not carry over (W_IMPORT_LOSSY). */
  warnings?: Issue[];
}

export type Progress = (progress: number, message: string) => void;

/**
 * The model of a run whose program has no llm step: never called, recorded as `none` (as the CLI
 * does), so a scripted model written for other programs does not refuse it.
 */
const NO_MODEL: ModelPort = {
  id: 'none',
  scripted: false,
  complete: () => Promise.reject(new NanoVmError('E_MODEL_SPEC', 'this run has no model')),
};

const needsModel = (program: Program): boolean =>
  program.steps.some((s) => s.kind === 'llm' || (s.kind === 'parallel' && s.children.some((c) => c.kind === 'llm')));

const need = (p: Principal, scope: Parameters<typeof hasScope>[1]): void => {
  if (!hasScope(p, scope))
    throw new NanoVmError('E_MCP_FORBIDDEN', `principal ${p.name} lacks the scope ${scope} this needs`);
};

/** The emitter's 'status' event: a run's status changed (it suspended, resumed or finished). */
export class NanoVmService extends EventEmitter<{ status: [runId: string] }> {
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly programs = new Map<string, Program>();
  private readonly now: () => Date;

  constructor(readonly deps: ServiceDeps) {
    super();
    this.setMaxListeners(0);
    this.now = deps.now ?? (() => new Date());
    // Runs finished or suspended by a worker: subscribers hear of them as of runs driven here.
    deps.queue?.on((c) => {
      if (c.run_id !== '*') this.emit('status', c.run_id);
    });
  }

  /** Runs started here that have not finished yet (a clean shutdown waits for them). */
  async settle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight.values()]);
  }

  // Programs.

  /** Loads a program from its source; inline text is parsed and located (`file` names it in issues). */
  async resolveProgram(
    src: ProgramSource,
  ): Promise<{ program: Program; hash: string; issues: Issue[]; sourceMap?: SourceMap }> {
    const given = [src.name !== undefined, src.hash !== undefined, src.text !== undefined].filter(Boolean).length;
    if (given !== 1)
      throw new NanoVmError('E_MCP_ARGS', 'program: give exactly one of name (with an optional version), hash or text');
    if (src.text !== undefined) {
      if (src.format === 'llm-nano-vm/v0.8') return convertV08(src.text);
      const format = src.format ?? (src.text.trimStart().startsWith('{') ? 'json' : 'yaml');
      const loaded = loadProgram(src.text, { file: '<program>', format });
      if (!loaded.program)
        throw new NanoVmError(
          loaded.issues.find((i) => i.severity === 'error')?.code ?? 'E_SCHEMA',
          'the program text is not a program',
          loaded.issues,
        );
      return {
        program: loaded.program,
        hash: hashJson(nodeHasher, loaded.program),
        issues: loaded.issues,
        ...(loaded.sourceMap ? { sourceMap: loaded.sourceMap } : {}),
      };
    }
    const stored = await this.deps.state.getProgram({
      ...(src.name !== undefined ? { name: src.name } : {}),
      ...(src.version !== undefined ? { version: src.version } : {}),
      ...(src.hash !== undefined ? { hash: src.hash } : {}),
    });
    if (stored) {
      // One object per program hash: the runtime caches validation and compilation per object.
      let program = this.programs.get(stored.hash);
      if (!program) {
        if (this.programs.size >= 256) this.programs.delete(this.programs.keys().next().value!);
        this.programs.set(stored.hash, (program = stored.program));
      }
      return { program, hash: stored.hash, issues: [] };
    }
    throw new NanoVmError(
      'E_MCP_NO_PROGRAM',
      `no stored program ${src.name !== undefined ? `${src.name}${src.version !== undefined ? ` version ${src.version}` : ''}` : `with hash ${src.hash}`}`,
    );
  }

  private policyOf(text: string | undefined): PolicySnapshot | undefined {
    if (text === undefined) return this.deps.policy;
    const loaded = loadPolicy(text, { file: '<policy>', format: text.trimStart().startsWith('{') ? 'json' : 'yaml' });
    if (!loaded.policy) throw new NanoVmError('E_POLICY_INVALID', 'the policy text is not a policy', loaded.issues);
    return loaded.policy;
  }

  async validate(
    p: Principal,
    a: { program: ProgramSource; policy?: string },
  ): Promise<{ valid: boolean; program_id: string; program_hash: string; issues: Issue[] }> {
    need(p, 'read');
    let r: Awaited<ReturnType<NanoVmService['resolveProgram']>>;
    try {
      r = await this.resolveProgram(a.program);
    } catch (e) {
      // A text that does not load is a validation result, not a failed call.
      if (e instanceof NanoVmError && e.issues.length && a.program.text !== undefined)
        return { valid: false, program_id: '', program_hash: '', issues: e.issues };
      throw e;
    }
    const policy = this.policyOf(a.policy);
    const issues = [
      ...r.issues,
      ...validateProgram(r.program, {
        tools: this.deps.tools.describe(),
        ...(r.sourceMap ? { sourceMap: r.sourceMap, file: '<program>' } : {}),
        ...(policy ? { guardGlobals: policyGuardGlobals(policy) } : {}),
      }),
      ...(policy
        ? validatePolicy(r.program, policy, {
            programHash: r.hash,
            ...(r.sourceMap ? { programSourceMap: r.sourceMap, programFile: '<program>' } : {}),
          })
        : []),
    ];
    return {
      valid: !issues.some((i) => i.severity === 'error'),
      program_id: r.program.id,
      program_hash: r.hash,
      issues,
    };
  }

  async putProgram(
    p: Principal,
    a: { text: string; format?: ProgramSource['format']; name?: string },
  ): Promise<{ name: string; version: number; hash: string; created: boolean; warnings: Issue[] }> {
    need(p, 'admin');
    const v = await this.validate(
      { ...p, scopes: [...p.scopes, 'read'] },
      { program: { text: a.text, ...(a.format ? { format: a.format } : {}) } },
    );
    if (!v.valid)
      throw new NanoVmError(
        v.issues.find((i) => i.severity === 'error')?.code ?? 'E_PROGRAM_INVALID',
        'the program is invalid; nothing was stored',
        v.issues,
      );
    const { program } = await this.resolveProgram({ text: a.text, ...(a.format ? { format: a.format } : {}) });
    const { stored, created } = await this.deps.state.putProgram({
      name: a.name ?? program.id,
      hash: v.program_hash,
      program,
      principal: p.name,
      ts: this.now().toISOString(),
    });
    return {
      name: stored.name,
      version: stored.version,
      hash: stored.hash,
      created,
      warnings: v.issues.filter((i) => i.severity === 'warning'),
    };
  }

  async getProgram(p: Principal, ref: ProgramSource): Promise<StoredProgram> {
    need(p, 'read');
    if (ref.text !== undefined) throw new NanoVmError('E_MCP_ARGS', 'get_program takes a name or a hash');
    const r = await this.resolveProgram(ref);
    const stored = await this.deps.state.getProgram({
      hash: r.hash,
      ...(ref.name !== undefined ? { name: ref.name } : {}),
    });
    return stored!;
  }

  async listPrograms(p: Principal, a: { name?: string; cursor?: string; limit?: number }) {
    need(p, 'read');
    const page = await this.deps.state.listPrograms({
      ...(a.name !== undefined ? { name: a.name } : {}),
      ...(a.cursor !== undefined ? { after: a.cursor } : {}),
      limit: this.pageSize(a.limit),
    });
    return {
      programs: page.items.map(({ program, ...rest }) => ({ ...rest, program_id: program.id })),
      next_cursor: page.next_cursor,
    };
  }

  async deleteProgram(p: Principal, a: { name: string; version?: number }): Promise<{ deleted: number }> {
    need(p, 'admin');
    const deleted = await this.deps.state.deleteProgram(a.name, a.version);
    if (deleted === 0)
      throw new NanoVmError(
        'E_MCP_NO_PROGRAM',
        `no stored program ${a.name}${a.version !== undefined ? ` version ${a.version}` : ''} to delete`,
      );
    return { deleted };
  }

  // Runs.

  async run(
    p: Principal,
    a: { program: ProgramSource; input: unknown; idempotency_key?: string; wait?: boolean; subject?: string },
    progress?: Progress,
  ): Promise<RunReport> {
    need(p, 'run');
    if (a.program.text !== undefined && this.deps.inlinePrograms === false)
      throw new NanoVmError(
        'E_MCP_FORBIDDEN',
        'this server runs stored programs only (inline_programs is false): run one by name or hash; an admin stores programs with put_program',
      );
    const resolved = await this.resolveProgram(a.program);
    const { program, hash } = resolved;
    const lossy = resolved.issues.filter((i) => i.code === 'W_IMPORT_LOSSY');
    const warnings = lossy.length ? { warnings: lossy } : {};
    // Everything a run would refuse is refused before a key is bound or a run exists.
    checkInput(program, a.input);
    const refused = preflight(program, this.deps.tools).filter((i) => i.severity === 'error');
    if (refused.length)
      throw new NanoVmError(refused[0]!.code, `program ${program.id} does not pass the pre-flight checks`, refused);
    const wait = a.wait ?? true;
    if (this.deps.queue && a.subject !== undefined)
      throw new NanoVmError(
        'E_MCP_ARGS',
        'subject is not supported yet on a server whose runs go to workers (a PostgreSQL store): the queue does not carry it',
      );
    const runId = `run-${randomUUID()}`;
    if (a.idempotency_key !== undefined) {
      const request_hash = sha256(
        canonicalJson({ program_hash: hash, input: a.input as never, subject: a.subject ?? null } as never),
      );
      const claim = await this.deps.state.claimIdempotency({
        principal: p.name,
        key: a.idempotency_key,
        request_hash,
        run_id: runId,
        created_at: this.now().toISOString(),
      });
      if (!claim.claimed) {
        if (claim.existing.request_hash !== request_hash)
          throw new NanoVmError(
            'E_IDEMPOTENCY_MISMATCH',
            `idempotency key ${JSON.stringify(a.idempotency_key)} was used for another request (run ${claim.existing.run_id}); use a new key for a new request`,
          );
        try {
          return { ...(await this.report(claim.existing.run_id, wait, progress)), replayed: true, ...warnings };
        } catch (e) {
          if (e instanceof NanoVmError && e.code === 'E_STORE_NO_RUN')
            throw e.withMessage(
              `idempotency key ${JSON.stringify(a.idempotency_key)}: the first request with it was refused before its run started; send the request with a new key`,
            );
          throw e;
        }
      }
    }
    // Until the run exists in the store, a concurrent call with the same key waits on this.
    let created!: () => void;
    this.inflight.set(runId, new Promise<void>((res) => (created = res)));
    try {
      await this.deps.state.recordRun({
        run_id: runId,
        principal: p.name,
        program_id: program.id,
        program_hash: hash,
        created_at: this.now().toISOString(),
      });
    } catch (e) {
      this.inflight.delete(runId);
      created();
      throw e;
    }
    if (this.deps.queue) return { ...(await this.enqueue(runId, program, a, created, p.name, progress)), ...warnings };
    let started!: () => void;
    const startedP = new Promise<void>((res) => (started = res));
    let steps = 0;
    const done = runProgram({
      program,
      input: a.input,
      model: needsModel(program) ? this.deps.model : NO_MODEL,
      tools: this.deps.tools,
      store: this.deps.store,
      ids: { runId: () => runId, salt: randomSalt },
      ...(this.deps.policy ? { policy: this.deps.policy } : {}),
      ...(a.subject !== undefined ? { subject: a.subject } : {}),
      onEvent: (e) => {
        if (e.seq === 0) started();
        // With wait false the answer goes first; progress after it would reach nobody.
        this.observe(e, runId, () => ++steps, wait ? progress : undefined);
      },
    });
    let begun = false;
    void startedP.then(() => (begun = true));
    const key = a.idempotency_key;
    const tracked = this.track(
      runId,
      done.catch(async (e: unknown) => {
        // Refused before its run started (the policy's pre-flight): the key was never used.
        if (!begun && key !== undefined) await this.deps.state.releaseIdempotency(p.name, key, runId);
        throw e;
      }),
    );
    created();
    if (!wait) {
      await Promise.race([startedP, tracked]);
      tracked.catch(() => {});
      return { ...(await this.report(runId, false)), replayed: false, ...warnings };
    }
    const r = await tracked;
    return { ...this.viewOf(r, p.name), replayed: false, ...warnings };
  }

  /** run_program on a server whose runs go to workers: submit, then (with wait) wait for a worker. */
  private async enqueue(
    runId: string,
    program: Program,
    a: { input: unknown; wait?: boolean; idempotency_key?: string },
    created: () => void,
    principal: string,
    progress?: Progress,
  ): Promise<RunReport> {
    const wait = a.wait ?? true;
    try {
      await this.deps.queue!.submit({
        runId,
        program,
        input: a.input,
        ...(this.deps.policy ? { policy: this.deps.policy } : {}),
      });
    } catch (e) {
      // Not submitted: the key was never used.
      if (a.idempotency_key !== undefined)
        await this.deps.state.releaseIdempotency(principal, a.idempotency_key, runId).catch(() => {});
      throw e;
    } finally {
      this.inflight.delete(runId);
      created();
    }
    if (wait) progress?.(0, 'queued for a worker');
    return { ...(await this.report(runId, wait, progress)), replayed: false };
  }

  /**
   * The run's status, a queued submission included: `undefined` when there is neither. A
   * submission a worker refused throws that refusal's code.
   */
  private async statusOf(runId: string): Promise<string | undefined> {
    const run = await this.deps.store.getRun(runId);
    if (run) return run.status;
    const sub = await this.deps.queue?.submission(runId);
    if (sub?.state === 'refused') {
      const m = /^([EW]_[A-Z0-9_]+): ([\s\S]*)$/.exec(sub.error);
      throw new NanoVmError(
        m ? m[1]! : 'E_INTERNAL',
        `run ${runId}: a worker refused the submission: ${m ? m[2]! : sub.error}`,
      );
    }
    return sub?.state;
  }

  /**
   * Waits, on word from the store's notifications, until a worker has started the run (without
   * `wait`) or until it has stopped running (with `wait`), for at most the queue's waitMs: then
   * E_MCP_WAIT_LIMIT names the run, which stays queued or running.
   */
  private async awaitWorker(runId: string, wait: boolean, progress?: Progress): Promise<void> {
    const q = this.deps.queue!;
    let wake: () => void = () => {};
    let n = 0;
    const off = q.on((c) => {
      if (c.run_id !== runId && c.run_id !== '*') return;
      // 'queued' was said at submission, and a refusal comes back as the call's error.
      if (wait && progress && c.run_id === runId && c.status !== 'queued' && c.status !== 'refused')
        progress(
          ++n,
          c.status === 'running'
            ? 'a worker is running it'
            : c.status === 'suspended'
              ? 'suspended at a wait'
              : `finished ${c.status}`,
        );
      wake();
    });
    const deadline = Date.now() + q.waitMs;
    // A run another server is submitting (its idempotency key is claimed, its submission not yet
    // committed) appears shortly; one that never does was refused before it was submitted.
    const appearBy = Date.now() + Math.min(q.waitMs, 5000);
    let timer: NodeJS.Timeout | undefined;
    try {
      for (;;) {
        // Armed before looking, so a change committed while we look is not missed.
        const changed = new Promise<void>((res) => (wake = res));
        const status = await this.statusOf(runId);
        if (status === undefined ? Date.now() >= appearBy : !wait || (status !== 'running' && status !== 'queued'))
          return;
        const left = (status === undefined ? appearBy : deadline) - Date.now();
        if (left <= 0 && status === undefined) continue;
        if (left <= 0)
          throw new NanoVmError(
            'E_MCP_WAIT_LIMIT',
            `run ${runId} is still ${status} after ${Math.round(q.waitMs / 1000)} s${status === 'queued' ? ' (no worker has started it: is a nano-vm worker running on this store?)' : ''}; it carries on: follow it with get_run or a subscription to nano-vm://runs/${runId}`,
          );
        await Promise.race([changed, new Promise<void>((res) => (timer = setTimeout(res, left)))]);
        clearTimeout(timer);
      }
    } finally {
      clearTimeout(timer);
      off();
    }
  }

  private track<T>(runId: string, done: Promise<T>): Promise<T> {
    const settled = done.finally(() => {
      this.inflight.delete(runId);
      this.emit('status', runId);
    });
    this.inflight.set(
      runId,
      settled.catch(() => {}),
    );
    return settled;
  }

  private observe(e: TraceEvent, runId: string, step: () => number, progress?: Progress): void {
    if (e.type === 'run_suspended' || e.type === 'run_resumed') this.emit('status', runId);
    if (!progress) return;
    // One notification per step the receipt's path lists (an llm step records only its completion).
    if (e.type === 'step_started' && !e.parent && e.attempt === 1) progress(step(), `step ${e.step} started`);
    else if ((e.type === 'step_completed' || e.type === 'step_failed') && e.kind === 'llm' && !e.parent)
      progress(step(), `step ${e.step} ${e.type === 'step_completed' ? 'answered' : 'failed'}`);
    else if (e.type === 'condition_evaluated') progress(step(), `step ${e.step} decided`);
    else if (e.type === 'run_suspended')
      progress(step(), `suspended at ${e.step}${e.role ? ` for role ${e.role}` : ''}`);
    else if (e.type === 'run_finished') progress(step(), `finished ${e.status}${e.outcome ? ` ${e.outcome}` : ''}`);
  }

  private viewOf(r: RunResult, startedBy: string | null): RunReport {
    const g = r.events[0] as { program_id?: string; program_hash?: string };
    return {
      run_id: r.run_id,
      program_id: g.program_id ?? '',
      program_hash: g.program_hash ?? '',
      status: r.status,
      outcome: r.outcome,
      head_hash: r.head_hash,
      event_count: r.events.length,
      started_by: startedBy,
      waiting: waitingOf(r.events),
      receipt: r.receipt,
      replayed: false,
    };
  }

  private async loadRun(runId: string): Promise<{ run: RunRecord; events: TraceEvent[] }> {
    const run = await this.deps.store.getRun(runId);
    if (!run) throw new NanoVmError('E_STORE_NO_RUN', `no run ${runId}`);
    return { run, events: await this.deps.store.events(runId) };
  }

  private async view(runId: string): Promise<RunView> {
    if (this.deps.queue && !(await this.deps.store.getRun(runId))) {
      const meta = await this.deps.state.runMeta(runId);
      if ((await this.statusOf(runId)) === 'queued')
        return {
          run_id: runId,
          program_id: meta?.program_id ?? '',
          program_hash: meta?.program_hash ?? '',
          status: 'queued',
          outcome: null,
          head_hash: '',
          event_count: 0,
          started_by: meta?.principal ?? null,
          waiting: null,
        };
    }
    const { run, events } = await this.loadRun(runId);
    const meta = await this.deps.state.runMeta(runId);
    const g = events[0] as { program_hash?: string } | undefined;
    return {
      run_id: run.run_id,
      program_id: run.program_id,
      program_hash: g?.program_hash ?? '',
      status: run.status,
      outcome: run.outcome,
      head_hash: run.head_hash,
      event_count: run.event_count,
      started_by: meta?.principal ?? null,
      waiting: run.status === 'suspended' ? waitingOf(events) : null,
    };
  }

  /** The run's report, once it has stopped running when `wait` (a run of this process is awaited). */
  private async report(runId: string, wait: boolean, progress?: Progress): Promise<Omit<RunReport, 'replayed'>> {
    for (let pending = this.inflight.get(runId); pending; pending = this.inflight.get(runId)) {
      if (!wait && ((await this.deps.store.getRun(runId)) || this.deps.queue)) break;
      await pending;
      if (this.inflight.get(runId) === pending) break;
    }
    // A run a worker drives: the store's notifications say when it stops.
    if (this.deps.queue) await this.awaitWorker(runId, wait, progress);
    // A run another process drives (a shared store): wait for it to appear, and to stop running.
    else
      for (let i = 0; i < 6000; i++) {
        const r = await this.deps.store.getRun(runId);
        if (r ? !wait || r.status !== 'running' : i >= 50) break;
        await new Promise((res) => setTimeout(res, 100));
      }
    const v = await this.view(runId);
    const events = v.status === 'queued' ? [] : await this.deps.store.events(runId);
    return { ...v, receipt: events.length ? computeReceipt(events) : null };
  }

  async getRun(p: Principal, a: { run_id: string }): Promise<RunView> {
    need(p, 'read');
    return this.view(a.run_id);
  }

  async listRuns(
    p: Principal,
    a: { status?: RunStatus | 'running'; program_id?: string; started_by?: string; cursor?: string; limit?: number },
  ): Promise<{ runs: RunView[]; next_cursor: string | null }> {
    need(p, 'read');
    const limit = this.pageSize(a.limit);
    const all = await this.deps.store.listRuns(a.status !== undefined ? { status: a.status } : {});
    let start = 0;
    if (a.cursor !== undefined) {
      const after = Buffer.from(a.cursor, 'base64url').toString('utf8');
      const i = all.findIndex((r) => r.run_id === after);
      if (i < 0) throw new NanoVmError('E_MCP_ARGS', 'cursor: not a cursor of this listing');
      start = i + 1;
    }
    const runs: RunView[] = [];
    let last: string | null = null;
    let i = start;
    for (; i < all.length && runs.length < limit; i++) {
      const r = all[i]!;
      last = r.run_id;
      if (a.program_id !== undefined && r.program_id !== a.program_id) continue;
      const meta = await this.deps.state.runMeta(r.run_id);
      if (a.started_by !== undefined && meta?.principal !== a.started_by) continue;
      runs.push({
        run_id: r.run_id,
        program_id: r.program_id,
        program_hash: meta?.program_hash ?? hashJson(nodeHasher, r.program),
        status: r.status,
        outcome: r.outcome,
        head_hash: r.head_hash,
        event_count: r.event_count,
        started_by: meta?.principal ?? null,
        waiting: null,
      });
    }
    return {
      runs,
      next_cursor: i < all.length && last !== null ? Buffer.from(last, 'utf8').toString('base64url') : null,
    };
  }

  async getTrace(
    p: Principal,
    a: { run_id: string; after_seq?: number; limit?: number },
  ): Promise<{ run_id: string; events: TraceEvent[]; event_count: number; next_after_seq: number | null }> {
    need(p, 'read');
    const { events } = await this.loadRun(a.run_id);
    const from = a.after_seq === undefined ? 0 : a.after_seq + 1;
    const page = events.slice(from, from + this.pageSize(a.limit));
    const lastSeq = page.length ? page[page.length - 1]!.seq : null;
    return {
      run_id: a.run_id,
      events: page,
      event_count: events.length,
      next_after_seq: lastSeq !== null && lastSeq < events.length - 1 ? lastSeq : null,
    };
  }

  async getReceipt(p: Principal, a: { run_id: string }): Promise<{ receipt: unknown }> {
    need(p, 'read');
    const { events } = await this.loadRun(a.run_id);
    return { receipt: computeReceipt(events) };
  }

  async bundleOf(runId: string): Promise<Bundle> {
    const { run, events } = await this.loadRun(runId);
    if (events.length === 0) throw new NanoVmError('E_NO_GENESIS', `run ${runId} has no events`);
    return runResult(run, run.status, events).bundle;
  }

  async exportBundle(p: Principal, a: { run_id: string }): Promise<{ bundle: unknown }> {
    need(p, 'read');
    // Serialized and read back, so the client gets exactly the bytes `nano-vm export` writes.
    return { bundle: JSON.parse(serializeBundle(await this.bundleOf(a.run_id))) as unknown };
  }

  verify(
    p: Principal,
    a: { bundle: unknown },
  ): {
    ok: boolean;
    code: string | null;
    first_bad_seq: number | null;
    reason: string | null;
    head_hash: string | null;
  } {
    need(p, 'read');
    const r = verifyBundle(a.bundle, nodeHasher);
    if (r.ok) return { ok: true, code: null, first_bad_seq: null, reason: null, head_hash: r.head_hash };
    return { ok: false, code: r.code, first_bad_seq: r.first_bad_seq, reason: r.reason, head_hash: null };
  }

  async replay(p: Principal, a: { run_id?: string; bundle?: unknown; program?: ProgramSource; policy?: string }) {
    need(p, 'read');
    if ((a.run_id === undefined) === (a.bundle === undefined))
      throw new NanoVmError('E_MCP_ARGS', 'replay_run takes exactly one of run_id or bundle');
    let bundle: Bundle;
    let vault: { path: string; salt: string; value: never }[] | undefined;
    if (a.run_id !== undefined) {
      bundle = await this.bundleOf(a.run_id);
      vault = (await vaultEntries(this.deps.store, a.run_id)) as never;
    } else {
      const v = verifyBundle(a.bundle, nodeHasher);
      if (!v.ok) throw new NanoVmError(v.code, `the bundle does not verify: ${v.reason}`);
      bundle = a.bundle as Bundle;
    }
    const program = a.program ? (await this.resolveProgram(a.program)).program : undefined;
    const policy = a.policy !== undefined ? this.policyOf(a.policy) : undefined;
    return replayBundle(bundle, {
      hasher: nodeHasher,
      ...(program ? { program } : {}),
      ...(policy !== undefined ? { policy } : {}),
      ...(vault ? { vault } : {}),
    });
  }

  /**
   * Delivers the event a suspended run waits for, as `principal`: its role comes from the
   * principal's `approve:<role>` scope, and four-eyes holds — the principal that started the run,
   * or one that already resumed one of its waits, may not resume it.
   */
  async resume(
    p: Principal,
    a: { run_id: string; event: unknown; event_id?: string },
    progress?: Progress,
  ): Promise<RunReport> {
    const { run, events } = await this.loadRun(a.run_id);
    if (run.status !== 'suspended') {
      // A retried approval (the answer was lost on the way back) is not an error: it was taken.
      const same = sameEvent(events, p.name, a.event, a.event_id);
      if (same) {
        const meta = await this.deps.state.runMeta(a.run_id);
        return { ...(await this.report(a.run_id, true)), started_by: meta?.principal ?? null, replayed: true };
      }
      throw new NanoVmError('E_RESUME_NOT_SUSPENDED', `run ${a.run_id} is ${run.status}, not waiting for an event`);
    }
    const waiting = waitingOf(events);
    const role = waiting?.role ?? undefined;
    if (role !== undefined) need(p, `approve:${role}`);
    else need(p, 'run');
    const meta = await this.deps.state.runMeta(a.run_id);
    if (meta?.principal === p.name)
      throw new NanoVmError(
        'E_FOUR_EYES',
        `principal ${p.name} started run ${a.run_id}, so it may not also resume it: four-eyes needs another principal`,
      );
    const earlier = events.find((e): e is RunResumedEvent => e.type === 'run_resumed' && e.principal === p.name);
    if (earlier)
      throw new NanoVmError(
        'E_FOUR_EYES',
        `principal ${p.name} already resumed run ${a.run_id} at step ${earlier.step}: four-eyes needs another principal`,
      );
    let steps = 0;
    const done = resumeRun({
      store: this.deps.store,
      runId: a.run_id,
      event: {
        payload: a.event,
        principal: p.name,
        ...(role !== undefined ? { role } : {}),
        ...(a.event_id !== undefined ? { event_id: a.event_id } : {}),
      },
      model: needsModel(run.program) ? this.deps.model : NO_MODEL,
      tools: this.deps.tools,
      ...(this.deps.policy ? { policy: this.deps.policy } : {}),
      onEvent: (e) => this.observe(e, a.run_id, () => ++steps, progress),
    });
    const r = await this.track(a.run_id, done);
    if (r.resume === 'policy_blocked')
      throw new NanoVmError(
        'E_POLICY_BLOCKED',
        `run ${a.run_id}: the server's policy is not the one the run started under, so the run halted as POLICY_BLOCKED`,
      );
    if (r.resume === 'timed_out')
      throw new NanoVmError('E_WAIT_EXPIRED', `run ${a.run_id}: the wait had timed out before this event arrived`);
    return { ...this.viewOf(r as unknown as RunResult, meta?.principal ?? null), replayed: r.resume === 'duplicate' };
  }

  async analyze(
    p: Principal,
    a: { program_id?: string; run_ids?: string[]; baseline_run_ids?: string[] },
  ): Promise<unknown> {
    need(p, 'read');
    let ids = a.run_ids;
    if (ids === undefined) {
      if (a.program_id === undefined) throw new NanoVmError('E_MCP_ARGS', 'analyze_runs takes program_id or run_ids');
      ids = (await this.deps.store.listRuns())
        .filter((r) => r.program_id === a.program_id && r.status !== 'running' && r.status !== 'suspended')
        .map((r) => r.run_id);
    }
    const traces = await Promise.all(ids.map(async (id) => (await this.loadRun(id)).events));
    const baseline = a.baseline_run_ids
      ? await Promise.all(a.baseline_run_ids.map(async (id) => (await this.loadRun(id)).events))
      : undefined;
    return analyzeRuns(traces, baseline ? { baseline } : {});
  }

  async erase(p: Principal, a: { subject: string }): Promise<unknown> {
    need(p, 'erase');
    return eraseSubject({
      store: this.deps.store,
      subject: a.subject,
      hasher: nodeHasher,
      ...(this.deps.policy ? { policies: [this.deps.policy] } : {}),
    });
  }

  async paths(p: Principal, a: { program: ProgramSource; max_paths?: number }): Promise<unknown> {
    need(p, 'read');
    const { program } = await this.resolveProgram(a.program);
    return programPaths(program, {
      ...(this.deps.policy ? { policy: this.deps.policy } : {}),
      ...(a.max_paths !== undefined ? { maxPaths: a.max_paths } : {}),
    });
  }

  async graph(
    p: Principal,
    a: { program: ProgramSource; format?: 'mermaid' | 'dot' },
  ): Promise<{ format: string; graph: string }> {
    need(p, 'read');
    const { program } = await this.resolveProgram(a.program);
    const format = a.format ?? 'mermaid';
    return { format, graph: programGraph(program, format) };
  }

  private pageSize(limit: number | undefined): number {
    return Math.min(limit ?? 100, this.deps.limits.max_page);
  }
}

/** The run_resumed event this principal's very event (payload and id) already produced, if any. */
function sameEvent(
  events: readonly TraceEvent[],
  principal: string,
  payload: unknown,
  eventId: string | undefined,
): RunResumedEvent | undefined {
  let text: string;
  try {
    text = canonicalJson(payload as never);
  } catch {
    return undefined;
  }
  return events.find(
    (e): e is RunResumedEvent =>
      e.type === 'run_resumed' &&
      e.principal === principal &&
      e.event_id === eventId &&
      canonicalJson(e.event) === text,
  );
}

/** The wait a suspended run's trace ends in: its last run_suspended with nothing after it. */
export function waitingOf(events: readonly TraceEvent[]): RunView['waiting'] {
  const last = events[events.length - 1];
  if (!last || last.type !== 'run_suspended') return null;
  const s = last as RunSuspendedEvent;
  return { step: s.step, role: s.role ?? null, deadline: s.deadline ?? null };
}

/** Checks a value against a tool's input schema; E_MCP_ARGS naming what is wrong. */
export function checkArgs(schema: unknown, args: unknown, tool: string): void {
  const vs = checkSchema(schema as never, args);
  if (vs.length) throw new NanoVmError('E_MCP_ARGS', `${tool}: ${describeViolations(vs)}`);
}

/** An llm-nano-vm v0.8 program (JSON text), converted as `nano-vm import` does; what it could not carry over comes back as W_IMPORT_LOSSY warnings. */
function convertV08(text: string): { program: Program; hash: string; issues: Issue[] } {
  let value: unknown;
  try {
    value = parseJsonText(text);
  } catch (e) {
    throw new NanoVmError('E_JSON', `the llm-nano-vm v0.8 program is not strict JSON: ${(e as Error).message}`);
  }
  const { program, warnings } = importV08(value);
  return {
    program,
    hash: hashJson(nodeHasher, program),
    issues: warnings.map((w) => ({
      code: w.code,
      severity: 'warning' as const,
      message: w.message,
      path: w.path,
      ...(w.step !== undefined ? { step: w.step } : {}),
    })),
  };
}
