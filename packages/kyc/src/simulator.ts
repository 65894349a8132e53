/**
 * The simulator: runs the KYC/AML program on seeded and user cases, fires injectors, keeps its own
 * small bookkeeping (which case and injector a run belongs to, the events it witnessed) beside the
 * runtime's tables in the same SQLite file, and publishes every appended event to listeners.
 * Everything a client is shown is computed from the stored events of real runs.
 */
import { randomUUID } from 'node:crypto';
import {
  BUNDLE_FORMAT,
  DEFAULT_THRESHOLDS,
  NanoVmError,
  analyzeRuns,
  computeReceipt,
  replayBundle,
  verifyBundle,
  type Bundle,
  type Issue,
  type JsonValue,
  type PolicySnapshot,
  type Program,
  type Receipt,
  type TraceEvent,
  type VerifyResult,
} from '@nano-vm/kernel';
import {
  MemoryStore,
  SqliteStore,
  eraseSubject,
  vaultEntries,
  nodeHasher,
  recoverRun,
  resumeRun,
  runProgram,
  type ModelPort,
  type Store,
  type ToolRegistry,
} from '@nano-vm/runtime';
import { countersOf, humanReceipt } from './humanReceipt.js';
import {
  INJECTORS,
  OutageModel,
  OutOfEnumModel,
  RunawayModel,
  holdLiftedPolicy,
  injectorInfo,
  loosenedPolicy,
  mutateProgram,
  type InjectorId,
  type InjectorInfo,
} from './injectors.js';
import { loadKycProgram, type KycProgram } from './kycProgram.js';
import { runNaive, type NaiveApproval, type NaiveResult } from './naiveExecutor.js';
import { ReviewerModel } from './reviewerModel.js';

export type SimEvent =
  | { type: 'trace'; data: { run_id: string; seq: number; kind: string; step: string | null; hash: string } }
  | { type: 'status'; data: { run_id: string; status: string; outcome: string | null } };

export interface SimulatorOptions {
  /** SQLite file (created when missing), or ':memory:'. */
  store: string;
  /** The model for the review step; default: the scripted reviewer. */
  model?: ModelPort;
  exampleDir?: string;
}

export type Lane = 'single' | 'baseline' | 'governed';

/** What the simulator keeps about a run beside the runtime's own tables. */
interface SimDoc {
  case: string | null;
  injector: InjectorId | null;
  lane: Lane;
  created_at: string;
  /** Pre-flight refusal: the run never started. */
  refused?: { code: string; message: string; issues: Issue[] };
  /** Each event as the simulator saw it appended (an outside witness for corrupt_receipt's diff). */
  witness: TraceEvent[];
  related: { run_id: string; role: string }[];
  notes: string[];
  /** corrupt_receipt: what was edited in storage. */
  tampered?: { seq: number; path: string; from: JsonValue; to: JsonValue };
  /**
   * Program injectors: the unmutated case's recorded run replayed (counterfactual, kernel replay)
   * against the mutated program, as a host that skipped the pre-flight would drive it: what the
   * machine's own runtime checks do with the mutation.
   */
  counterfactual?: {
    status: string;
    outcome: string | null;
    path: string[];
    rejected: TraceEvent[];
    missing: unknown;
    error: { code: string; message: string } | null;
  };
  /** gdpr_erase: the erasure reports. */
  erasure?: { refused: number; erased: number; pending: number };
  input_source: 'seeded' | 'user';
}

export class RequestError extends NanoVmError<string> {
  constructor(
    code: string,
    message: string,
    readonly status: 400 | 404 | 409 | 413 | 422,
    readonly path?: string,
  ) {
    super(code, message);
  }
}

export interface StartRequest {
  case?: string;
  input?: unknown;
  injector?: string;
}

export const REVIEWERS = ['alice', 'bob'] as const;

export class Simulator {
  private listeners = new Set<(e: SimEvent) => void>();
  private readonly analyticsCache = new Map<string, AnalyticsResult>();
  private readonly model: ModelPort;
  private constructor(
    readonly kyc: KycProgram,
    readonly store: SqliteStore,
    model: ModelPort | undefined,
  ) {
    this.model = model ?? new ReviewerModel();
    store.db.exec(
      `CREATE TABLE IF NOT EXISTS kyc_sim_runs (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, doc TEXT NOT NULL)`,
    );
  }

  static async open(o: SimulatorOptions): Promise<Simulator> {
    const kyc = await loadKycProgram(o.exampleDir);
    return new Simulator(kyc, new SqliteStore(o.store), o.model);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.store.close();
  }

  get modelInfo(): { kind: string; scripted: boolean; label: string; id: string } {
    return {
      kind: this.model.scripted ? 'scripted' : this.model.id.split(':')[0]!,
      scripted: this.model.scripted,
      id: this.model.id,
      label: this.model.scripted ? 'Scripted reviewer (deterministic, not a real model)' : this.model.id,
    };
  }

  subscribe(f: (e: SimEvent) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  private emit(e: SimEvent): void {
    for (const f of this.listeners) {
      try {
        f(e);
      } catch {
        // A listener that fails (a closed stream) does not stop a run.
      }
    }
  }

  // ---- bookkeeping -------------------------------------------------------------------------

  private saveDoc(id: string, doc: SimDoc): void {
    this.store.db
      .prepare(
        `INSERT INTO kyc_sim_runs (id, created_at, doc) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`,
      )
      .run(id, doc.created_at, JSON.stringify(doc));
  }

  private doc(id: string): SimDoc | undefined {
    const row = this.store.db.prepare(`SELECT doc FROM kyc_sim_runs WHERE id = ?`).get(id) as
      { doc: string } | undefined;
    return row ? (JSON.parse(row.doc) as SimDoc) : undefined;
  }

  private newDoc(caseId: string | null, injector: InjectorId | null, lane: Lane, user: boolean): SimDoc {
    return {
      case: caseId,
      injector,
      lane,
      created_at: new Date().toISOString(),
      witness: [],
      related: [],
      notes: [],
      input_source: user ? 'user' : 'seeded',
    };
  }

  private observer(docRef: { doc: SimDoc }) {
    return (e: TraceEvent, runId: string) => {
      docRef.doc.witness.push(JSON.parse(JSON.stringify(e)) as TraceEvent);
      if (e.type === 'run_started')
        this.emit({ type: 'status', data: { run_id: runId, status: 'running', outcome: null } });
      this.emit({
        type: 'trace',
        data: { run_id: runId, seq: e.seq, kind: e.type, step: 'step' in e ? (e.step ?? null) : null, hash: e.hash },
      });
    };
  }

  // ---- requests ----------------------------------------------------------------------------

  /** Resolves a request's case or input (400/404 before anything runs). */
  resolveInput(req: StartRequest): { caseId: string | null; input: unknown; user: boolean } {
    if (req.case !== undefined && req.input !== undefined)
      throw new RequestError('E_KYC_REQUEST', 'give either "case" or "input", not both', 400, '/case');
    if (req.case !== undefined) {
      if (typeof req.case !== 'string')
        throw new RequestError('E_KYC_REQUEST', '"case" must be a string', 400, '/case');
      const c = this.kyc.cases.find((x) => x.id === req.case);
      if (!c)
        throw new RequestError(
          'E_KYC_UNKNOWN_CASE',
          `unknown case '${req.case}'; the cases are ${this.kyc.cases.map((x) => x.id).join(', ')}`,
          404,
          '/case',
        );
      return { caseId: c.id, input: JSON.parse(JSON.stringify(c.input)) as unknown, user: false };
    }
    if (req.input === undefined) throw new RequestError('E_KYC_REQUEST', 'the body needs "case" or "input"', 400, '/');
    return { caseId: null, input: req.input, user: true };
  }

  resolveInjector(id: unknown): InjectorInfo | null {
    if (id === undefined || id === null) return null;
    if (typeof id !== 'string')
      throw new RequestError('E_KYC_REQUEST', '"injector" must be a string', 400, '/injector');
    const inj = injectorInfo(id);
    if (!inj)
      throw new RequestError(
        'E_KYC_UNKNOWN_INJECTOR',
        `unknown injector '${id}'; the injectors are ${INJECTORS.map((i) => i.id).join(', ')}`,
        404,
        '/injector',
      );
    return inj;
  }

  /** Starts a run (with an injector, when given). Returns the run's id once it has settled (ended, waiting or refused). */
  async start(req: StartRequest, lane: Lane = 'single'): Promise<string> {
    const { caseId, input, user } = this.resolveInput(req);
    const inj = this.resolveInjector(req.injector);
    if (user) this.checkUserInput(input);
    return this.governed(caseId, input, inj?.id ?? null, lane, user);
  }

  /** A user-entered case: the program's input schema decides (422 with the path when it does not fit). */
  private checkUserInput(input: unknown): void {
    try {
      // The runtime's own check, without starting anything.
      void runProgramCheck(this.kyc.program, input);
    } catch (e) {
      if (e instanceof NanoVmError) {
        const first = e.issues[0];
        throw new RequestError(
          e.code,
          e.message,
          e.code === 'E_INPUT_INVALID' ? 422 : 400,
          `/input${first?.path ?? ''}`,
        );
      }
      throw e;
    }
  }

  private async governed(
    caseId: string | null,
    input: unknown,
    inj: InjectorId | null,
    lane: Lane,
    user: boolean,
  ): Promise<string> {
    const ref = { doc: this.newDoc(caseId, inj, lane, user) };
    const onEvent = this.observer(ref);
    const base = {
      program: this.kyc.program as Program,
      input,
      model: this.model,
      tools: this.kyc.tools,
      policy: this.kyc.policy as PolicySnapshot,
      store: this.store as Store,
      onEvent,
    };
    const mutated = inj ? mutateProgram(inj, this.kyc.program) : null;
    const settle = (runId: string, status: string, outcome: string | null) => {
      this.saveDoc(runId, ref.doc);
      this.emit({ type: 'status', data: { run_id: runId, status, outcome } });
      return runId;
    };
    if (mutated) {
      try {
        const r = await runProgram({ ...base, program: mutated });
        ref.doc.notes.push('the mutated program was not refused');
        return settle(r.run_id, r.status, r.outcome);
      } catch (e) {
        if (!(e instanceof NanoVmError) || e.code !== 'E_PROGRAM_INVALID') throw e;
        const id = `refused_${randomUUID()}`;
        ref.doc.refused = {
          code: e.code,
          message: e.code === 'E_PROGRAM_INVALID' ? e.message : String(e),
          issues: e.issues,
        };
        ref.doc.counterfactual = await this.counterfactual(base, mutated);
        return settle(id, 'refused', null);
      }
    }
    switch (inj) {
      case 'llm_out_of_enum':
      case 'budget_exhaust':
      case 'provider_outage': {
        const model =
          inj === 'llm_out_of_enum'
            ? new OutOfEnumModel(this.model)
            : inj === 'budget_exhaust'
              ? new RunawayModel(this.model)
              : new OutageModel(this.model);
        const r = await runProgram({ ...base, model });
        return settle(r.run_id, r.status, r.outcome);
      }
      case 'policy_bypass': {
        // The worker dies once the first step has completed (a thrown observer stops the drive
        // with the run left running), and a new worker continues it under a swapped policy file.
        const crash = new Error('simulated worker crash');
        let runId = '';
        const crashing = (e: TraceEvent, id: string) => {
          onEvent(e, id);
          runId = id;
          if (e.type === 'step_completed' && e.step === 'collect_customer') throw crash;
        };
        try {
          const r = await runProgram({ ...base, onEvent: crashing });
          ref.doc.notes.push('the run ended before the crash point');
          return settle(r.run_id, r.status, r.outcome);
        } catch (e) {
          if (e !== crash) throw e;
        }
        const loose = loosenedPolicy(this.kyc.policy);
        ref.doc.notes.push(`worker crashed after collect_customer; recovered under policy '${loose.id}'`);
        const r = await recoverRun({
          store: this.store,
          runId,
          model: this.model,
          tools: this.kyc.toolsFor(loose),
          policy: loose,
          onEvent,
          lease: { now: () => Date.now() + 3_600_000 },
        });
        return settle(r.run_id, r.status, r.outcome);
      }
      case 'double_approval': {
        const r = await runProgram(base);
        settle(r.run_id, r.status, r.outcome);
        if (r.status === 'suspended' && r.waiting?.step === 'first_approval') {
          await this.approve(r.run_id, 'alice', 'approve');
          await this.approve(r.run_id, 'alice', 'approve');
          ref.doc = this.doc(r.run_id)!;
          ref.doc.notes.push("'alice' approved both four-eyes steps");
        } else ref.doc.notes.push('not reached: this case does not need two approvers');
        const rec = await this.store.getRun(r.run_id);
        return settle(r.run_id, rec!.status, rec!.outcome);
      }
      case 'corrupt_receipt': {
        const r = await runProgram(base);
        settle(r.run_id, r.status, r.outcome);
        ref.doc.tampered = this.tamper(r.run_id, r.events);
        return settle(r.run_id, r.status, r.outcome);
      }
      case 'gdpr_erase':
        return this.gdpr(caseId, input, ref, base);
      case 'invalid_program':
      case 'skip_step':
      case 'reorder_steps':
      case 'tool_injection':
      // Program mutations are handled above (mutateProgram); they never get here.
      case null: {
        const r = await runProgram(base);
        return settle(r.run_id, r.status, r.outcome);
      }
    }
  }

  /** Runs the unmutated case in memory and replays its recorded outputs against `mutated` (kernel replayBundle). */
  private async counterfactual(
    base: Parameters<typeof runProgram>[0],
    mutated: Program,
  ): Promise<SimDoc['counterfactual']> {
    const store = new MemoryStore();
    try {
      const r = await runProgram({ ...base, store, onEvent: undefined });
      const vault = await vaultEntries(store, r.run_id);
      const cf = replayBundle(r.bundle, { hasher: nodeHasher, program: mutated, vault });
      return {
        status: cf.status,
        outcome: cf.outcome,
        path: cf.path,
        rejected: cf.events.filter((e) => e.type === 'transition_rejected'),
        missing: cf.missing,
        error: (() => {
          const fin = cf.events.find((e) => e.type === 'run_finished');
          return fin?.type === 'run_finished' && fin.error
            ? { code: fin.error.code, message: fin.error.message }
            : null;
        })(),
      };
    } catch (e) {
      // A mutation the replay itself refuses (an invalid guard cannot even be compiled) has no runtime record.
      return {
        status: 'refused',
        outcome: null,
        path: [],
        rejected: [],
        missing: null,
        error: { code: (e as NanoVmError).code ?? 'E_INTERNAL', message: (e as Error).message },
      };
    } finally {
      await store.close();
    }
  }

  /** corrupt_receipt: edits a decisive stored event in place (no re-hash), as someone with write access to the database would. */
  private tamper(runId: string, events: readonly TraceEvent[]): SimDoc['tampered'] {
    const pick =
      events.find((e) => e.type === 'step_completed' && e.step === 'screen_sanctions') ??
      events.find((e) => e.type === 'step_completed' && e.step === 'collect_customer');
    if (!pick || pick.type !== 'step_completed') return undefined;
    const body = JSON.parse(JSON.stringify(pick)) as { output: Record<string, JsonValue> };
    let change: { path: string; from: JsonValue; to: JsonValue };
    if (pick.step === 'screen_sanctions') {
      change = {
        path: '/output/match',
        from: body.output.match!,
        to: body.output.match === 'none' ? 'confirmed' : 'none',
      };
      body.output.match = change.to;
    } else {
      change = { path: '/output/complete', from: body.output.complete!, to: !body.output.complete };
      body.output.complete = change.to;
    }
    this.store.db
      .prepare(`UPDATE events SET body = ? WHERE run_no = (SELECT run_no FROM runs WHERE run_id = ?) AND seq = ?`)
      .run(JSON.stringify(body), runId, pick.seq);
    return { seq: pick.seq, ...change };
  }

  /** gdpr_erase: both paths — refused under the AML hold, erased with the hold lifted. */
  private async gdpr(
    caseId: string | null,
    input: unknown,
    ref: { doc: SimDoc },
    base: Parameters<typeof runProgram>[0],
  ): Promise<string> {
    // A fresh data subject per request, so erasure touches only these two runs.
    const subject = `erasure-${randomUUID().slice(0, 8)}@example.test`;
    const withSubject = (v: unknown) => {
      const c = JSON.parse(JSON.stringify(v)) as { customer?: { email?: string } };
      if (c.customer) c.customer.email = subject;
      return c;
    };
    const held = await runProgram({ ...base, input: withSubject(input) });
    this.saveDoc(held.run_id, ref.doc);
    const liftedPolicy = holdLiftedPolicy(this.kyc.policy);
    const liftedRef = { doc: this.newDoc(caseId, 'gdpr_erase', ref.doc.lane, ref.doc.input_source === 'user') };
    const lifted = await runProgram({
      ...base,
      input: withSubject(input),
      policy: liftedPolicy,
      tools: this.kyc.toolsFor(liftedPolicy),
      onEvent: this.observer(liftedRef),
    });
    const report = await eraseSubject({ store: this.store, subject, hasher: nodeHasher });
    for (const [r, d] of [
      [held.run_id, ref.doc],
      [lifted.run_id, liftedRef.doc],
    ] as const) {
      for (const e of (await this.store.events(r)).slice(d.witness.length)) d.witness.push(e);
      d.erasure = {
        refused: report.refused.filter((x) => x.run_id === r).length,
        erased: report.erased.filter((x) => x.run_id === r).length,
        pending: report.pending.filter((x) => x.run_id === r).length,
      };
    }
    ref.doc.related.push({ run_id: lifted.run_id, role: 'hold_lifted' });
    liftedRef.doc.related.push({ run_id: held.run_id, role: 'hold_in_force' });
    ref.doc.notes.push(
      `erasure requested for a fresh subject; policy '${liftedPolicy.id}' lifts the hold for the second run`,
    );
    this.saveDoc(lifted.run_id, liftedRef.doc);
    this.emit({ type: 'status', data: { run_id: lifted.run_id, status: lifted.status, outcome: lifted.outcome } });
    this.saveDoc(held.run_id, ref.doc);
    this.emit({ type: 'status', data: { run_id: held.run_id, status: held.status, outcome: held.outcome } });
    return held.run_id;
  }

  // ---- approvals ---------------------------------------------------------------------------

  /** Delivers a reviewer's decision to a waiting run. Refused requests (not waiting, bad payload) change nothing. */
  async approve(runId: string, reviewer: unknown, decision: unknown, note?: unknown): Promise<void> {
    const rec = await this.store.getRun(runId);
    if (!rec) throw new RequestError('E_STORE_NO_RUN', `no run ${runId}`, 404, '/run_id');
    if (rec.status !== 'suspended')
      throw new RequestError(
        'E_RESUME_NOT_SUSPENDED',
        `run ${runId} is ${rec.status}, not waiting for an approval`,
        409,
      );
    const doc = this.doc(runId) ?? this.newDoc(null, null, 'single', false);
    const ref = { doc };
    const payload: Record<string, unknown> = { decision, reviewer };
    if (note !== undefined) payload.note = note;
    try {
      const r = await resumeRun({
        store: this.store,
        runId,
        model: this.model,
        // The run continues under the policy it started with (pinned at genesis; another one would
        // halt it as POLICY_BLOCKED — that is the policy_bypass injector, not an approval).
        tools: this.kyc.toolsFor(rec.policy as PolicySnapshot),
        policy: rec.policy,
        event: { payload, role: 'kyc_reviewer' },
        onEvent: this.observer(ref),
      });
      this.saveDoc(runId, ref.doc);
      this.emit({ type: 'status', data: { run_id: runId, status: r.status, outcome: r.outcome } });
    } catch (e) {
      if (e instanceof NanoVmError && (e.code === 'E_RESUME_EVENT_INVALID' || e.code === 'E_RESUME_ROLE'))
        throw new RequestError(e.code, e.message, 400, e.issues[0]?.path ?? '/');
      if (
        e instanceof NanoVmError &&
        (e.code === 'E_RESUME_NOT_SUSPENDED' || e.code === 'E_RESUME_CONFLICT' || e.code === 'E_RUN_LEASED')
      )
        throw new RequestError(e.code, e.message, 409);
      throw e;
    }
  }

  /** Waiting runs and what they still need. */
  async inbox(): Promise<InboxItem[]> {
    const out: InboxItem[] = [];
    for (const rec of await this.store.listRuns({ status: 'suspended' })) {
      if (rec.program_id !== this.kyc.program.id) continue;
      const events = await this.store.events(rec.run_id);
      out.push(inboxItem(rec.run_id, this.doc(rec.run_id), events));
    }
    return out;
  }

  // ---- reading runs ------------------------------------------------------------------------

  async list(): Promise<RunSummary[]> {
    const rows = this.store.db.prepare(`SELECT id, doc FROM kyc_sim_runs ORDER BY created_at DESC, id`).all() as {
      id: string;
      doc: string;
    }[];
    const out: RunSummary[] = [];
    for (const row of rows) {
      const doc = JSON.parse(row.doc) as SimDoc;
      const rec = doc.refused ? undefined : await this.store.getRun(row.id);
      out.push({
        run_id: row.id,
        case: doc.case,
        injector: doc.injector,
        lane: doc.lane,
        created_at: doc.created_at,
        status: doc.refused ? 'refused' : (rec?.status ?? 'unknown'),
        outcome: rec?.outcome ?? null,
        event_count: rec?.event_count ?? 0,
      });
    }
    return out;
  }

  async bundle(runId: string): Promise<Bundle> {
    const rec = await this.store.getRun(runId);
    if (!rec) throw new RequestError('E_STORE_NO_RUN', `no stored run ${runId}`, 404, '/run_id');
    const events = await this.store.events(runId);
    let receipt: Receipt;
    try {
      receipt = computeReceipt(events);
    } catch {
      // A trace broken in storage still exports (verify says why); its receipt is the one the witness saw.
      receipt = computeReceipt(this.doc(runId)?.witness ?? events);
    }
    return { format: BUNDLE_FORMAT, program: rec.program, policy: rec.policy, input: rec.input, events, receipt };
  }

  async verify(runId: string): Promise<VerifyResult> {
    return verifyBundle(await this.bundle(runId), nodeHasher);
  }

  async view(runId: string): Promise<RunView> {
    const doc = this.doc(runId);
    const rec = doc?.refused ? undefined : await this.store.getRun(runId);
    if (!doc && !rec) throw new RequestError('E_STORE_NO_RUN', `no run ${runId}`, 404, '/run_id');
    const d = doc ?? this.newDoc(null, null, 'single', false);
    const events = rec ? await this.store.events(runId) : [];
    const verify = rec ? await this.verify(runId) : null;
    let receipt: Receipt | null = null;
    try {
      receipt = events.length ? computeReceipt(events) : null;
    } catch {
      receipt = null;
    }
    const related: RunView['related'] = [];
    for (const r of d.related) {
      const rr = await this.store.getRun(r.run_id);
      const ev = rr ? await this.store.events(r.run_id) : [];
      related.push({
        ...r,
        status: rr?.status ?? 'unknown',
        outcome: rr?.outcome ?? null,
        verify: rr ? await this.verify(r.run_id) : null,
        events: ev.map(eventRow),
      });
    }
    const inj = d.injector ? injectorInfo(d.injector)! : null;
    const analysis = events.length && receipt ? analyzeRuns([events]) : null;
    return {
      run_id: runId,
      case: d.case,
      injector: d.injector,
      lane: d.lane,
      input_source: d.input_source,
      created_at: d.created_at,
      status: d.refused ? 'refused' : (rec?.status ?? 'unknown'),
      outcome: rec?.outcome ?? null,
      program_hash: receipt?.program_hash ?? null,
      policy_hash: receipt?.policy_hash ?? null,
      preflight: d.refused
        ? { ok: false, code: d.refused.code, message: d.refused.message, issues: d.refused.issues }
        : { ok: true, issues: [] },
      events: events.map(eventRow),
      detector: inj ? detect(inj, d, events, verify, related) : null,
      rejected: rejectedOf(d, events),
      counters: countersOf(events),
      receipt,
      human_receipt: events.length
        ? humanReceipt(events.length && verify?.ok === false && d.witness.length ? d.witness : events)
        : null,
      health: receipt
        ? { metrics: receipt.health, thresholds: { ...DEFAULT_THRESHOLDS }, alerts: analysis?.alerts ?? [] }
        : null,
      verify,
      waiting: rec?.status === 'suspended' ? inboxItem(runId, d, events) : null,
      related,
      notes: d.notes,
      tampered: d.tampered ?? null,
    };
  }

  // ---- lanes -------------------------------------------------------------------------------

  async lanes(req: StartRequest): Promise<LanesResult> {
    const { caseId, input, user } = this.resolveInput(req);
    const inj = this.resolveInjector(req.injector);
    if (user) this.checkUserInput(input);
    const baselineId = await this.governed(caseId, input, null, 'baseline', user);
    const governedId = await this.governed(caseId, input, inj?.id ?? null, 'governed', user);
    const ungoverned = await this.naive(input, inj?.id ?? null);
    const baseline = await this.view(baselineId);
    const governed = await this.view(governedId);
    const paths = {
      baseline: pathOf(baseline),
      ungoverned: ungoverned.path,
      governed: pathOf(governed),
    };
    return {
      case: caseId,
      injector: inj?.id ?? null,
      baseline: laneSummary(baseline),
      governed: laneSummary(governed),
      ungoverned: { ...ungoverned, damage: damageOf(ungoverned, inj?.id ?? null, baseline) },
      divergence: divergence(paths),
      paths,
      first_divergence: {
        ungoverned_vs_baseline: firstDifference(paths.baseline, paths.ungoverned),
        governed_vs_baseline: firstDifference(paths.baseline, paths.governed),
      },
    };
  }

  private async naive(input: unknown, inj: InjectorId | null): Promise<NaiveResult> {
    const program = (inj && mutateProgram(inj, this.kyc.program)) || this.kyc.program;
    const policy = inj === 'policy_bypass' ? loosenedPolicy(this.kyc.policy) : this.kyc.policy;
    const tools: ToolRegistry = this.kyc.toolsFor(policy);
    const model =
      inj === 'llm_out_of_enum'
        ? new OutOfEnumModel(this.model)
        : inj === 'budget_exhaust'
          ? new RunawayModel(this.model)
          : inj === 'provider_outage'
            ? new OutageModel(this.model)
            : this.model;
    const approvals: NaiveApproval[] =
      inj === 'double_approval'
        ? [
            { reviewer: 'alice', decision: 'approve' },
            { reviewer: 'alice', decision: 'approve' },
          ]
        : [];
    const r = await runNaive({ program, policy, input, model, tools, approvals });
    if (inj === 'corrupt_receipt') {
      const rec =
        r.records.find((x) => x.step === 'screen_sanctions') ?? r.records.find((x) => x.step === 'collect_customer');
      if (rec) rec.detail += ' — then edited in the log; nothing can tell';
    }
    if (inj === 'gdpr_erase')
      r.records.push({
        step: '(erase)',
        kind: 'admin',
        detail: 'record deleted outright: the AML retention hold is not known to the code',
      });
    return r;
  }

  // ---- analytics ---------------------------------------------------------------------------

  /** Cross-run analysis by the kernel's analyzer over `n` seeded runs (in memory, not stored), with a series for charts. */
  async analytics(n: number, seed = 1): Promise<AnalyticsResult> {
    // Seeded runs describe the program, not a provider: always the scripted reviewer (a real model
    // would be called n times), so the same (n, seed) gives the same analysis, kept once computed.
    const key = `${n}:${seed}`;
    const hit = this.analyticsCache.get(key);
    if (hit) return hit;
    const reviewer = new ReviewerModel();
    const store = new MemoryStore();
    const runs: TraceEvent[][] = [];
    let x = seed >>> 0 || 1;
    const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x / 2 ** 32);
    const mix: (InjectorId | null)[] = [
      null,
      null,
      null,
      null,
      'llm_out_of_enum',
      'provider_outage',
      'double_approval',
    ];
    for (let i = 0; i < n; i++) {
      const c = this.kyc.cases[Math.floor(rnd() * this.kyc.cases.length)]!;
      const inj = mix[Math.floor(rnd() * mix.length)]!;
      const model =
        inj === 'llm_out_of_enum'
          ? new OutOfEnumModel(this.model)
          : inj === 'provider_outage'
            ? new OutageModel(this.model)
            : this.model;
      const base = { program: this.kyc.program, policy: this.kyc.policy, tools: this.kyc.tools, store, model };
      let r: { status: string; run_id: string; events: TraceEvent[] } = await runProgram({ ...base, input: c.input });
      const reviewers = inj === 'double_approval' ? ['alice', 'alice'] : [...REVIEWERS];
      for (let k = 0; r.status === 'suspended' && k < 2; k++)
        r = await resumeRun({
          ...base,
          runId: r.run_id,
          event: { payload: { decision: 'approve', reviewer: reviewers[k]! }, role: 'kyc_reviewer' },
        });
      runs.push(r.events);
      // Let the server answer other requests (and the stream) between runs.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const analysis = analyzeRuns(runs);
    const series: AnalyticsResult['series'] = [];
    const every = Math.max(1, Math.floor(n / 25));
    for (let k = every; k <= n; k += every) {
      const a = analyzeRuns(runs.slice(0, k));
      series.push({
        runs: k,
        entropy_bits: a.transitions.entropy_bits,
        path_variance: a.paths.path_variance,
        distinct_paths: a.paths.distinct,
      });
    }
    await store.close();
    const result = { runs: n, seed, model: reviewer.id, analysis, series };
    if (this.analyticsCache.size > 32) this.analyticsCache.clear();
    this.analyticsCache.set(key, result);
    return result;
  }
}

export interface RunSummary {
  run_id: string;
  case: string | null;
  injector: string | null;
  lane: Lane;
  created_at: string;
  status: string;
  outcome: string | null;
  event_count: number;
}

export interface EventRow {
  seq: number;
  kind: string;
  step: string | null;
  hash: string;
  prev_hash: string;
  body: TraceEvent;
}

export interface InboxItem {
  run_id: string;
  case: string | null;
  step: string;
  four_eyes: boolean;
  approvals_given: { reviewer: string; decision: string; step: string }[];
  approvals_needed: number;
  /** A reviewer who may not approve this step (the first approver of a four-eyes case). */
  excluded_reviewer: string | null;
  deadline: string | null;
}

export interface RunView {
  run_id: string;
  case: string | null;
  injector: string | null;
  lane: Lane;
  input_source: 'seeded' | 'user';
  created_at: string;
  status: string;
  outcome: string | null;
  program_hash: string | null;
  policy_hash: string | null;
  preflight: { ok: boolean; code?: string; message?: string; issues: Issue[] };
  events: EventRow[];
  detector: Detection | null;
  rejected: Rejected[];
  counters: Record<string, number>;
  receipt: Receipt | null;
  human_receipt: ReturnType<typeof humanReceipt> | null;
  health: { metrics: Receipt['health']; thresholds: Record<string, number>; alerts: unknown[] } | null;
  verify: VerifyResult | null;
  waiting: InboxItem | null;
  related: {
    run_id: string;
    role: string;
    status: string;
    outcome: string | null;
    verify: VerifyResult | null;
    events: EventRow[];
  }[];
  notes: string[];
  tampered: SimDoc['tampered'] | null;
}

export interface Detection {
  injector: string;
  component: string;
  point: string;
  /** Whether the run reached the mutation point (read from its events). */
  reached: boolean;
  /** Whether the named component caught it (read from events, the pre-flight's issues or verify). */
  caught: boolean;
  summary: string;
  evidence: { what: string; seq?: number; code?: string; detail?: unknown }[];
}

export type Rejected =
  | {
      source: 'trace';
      seq: number;
      step: string;
      requested: string;
      rule: string;
      reason: string;
      capability?: string;
      granting_step?: string;
      policy_hash?: string;
      offered_policy_hash?: string;
    }
  | { source: 'preflight'; code: string; message: string; path?: string; line?: number; col?: number }
  | {
      source: 'counterfactual';
      seq: number;
      step: string;
      requested: string;
      rule: string;
      reason: string;
      capability?: string;
      granting_step?: string;
    };

export interface LanesResult {
  case: string | null;
  injector: string | null;
  baseline: LaneSummary;
  governed: LaneSummary;
  ungoverned: NaiveResult & { damage: string[] };
  divergence: {
    index: number;
    step: { baseline: string | null; ungoverned: string | null; governed: string | null };
  } | null;
  paths: { baseline: string[]; ungoverned: string[]; governed: string[] };
  /** Pairwise: where each lane first left the baseline's path (null: the same path). */
  first_divergence: {
    ungoverned_vs_baseline: { index: number; baseline: string | null; other: string | null } | null;
    governed_vs_baseline: { index: number; baseline: string | null; other: string | null } | null;
  };
}

export interface LaneSummary {
  run_id: string;
  status: string;
  outcome: string | null;
  path: string[];
  counters: Record<string, number>;
  detector: Detection | null;
}

export interface AnalyticsResult {
  runs: number;
  seed: number;
  /** The model of the seeded runs (always the scripted reviewer). */
  model: string;
  analysis: ReturnType<typeof analyzeRuns>;
  series: { runs: number; entropy_bits: number; path_variance: number; distinct_paths: number }[];
}

// ---- pure helpers over events --------------------------------------------------------------

function runProgramCheck(program: Program, input: unknown): void {
  // checkInput is the runtime's own input check (E_INPUT_INVALID with paths, E_TOO_DEEP, E_TOO_LARGE).
  checkInputFn(program, input);
}
import { checkInput as checkInputFn } from '@nano-vm/runtime';

export const eventRow = (e: TraceEvent): EventRow => ({
  seq: e.seq,
  kind: e.type,
  step: 'step' in e ? (e.step ?? null) : null,
  hash: e.hash,
  prev_hash: e.prev_hash,
  body: e,
});

function inboxItem(runId: string, doc: SimDoc | undefined, events: readonly TraceEvent[]): InboxItem {
  const susp = [...events].reverse().find((e) => e.type === 'run_suspended');
  const step = susp && susp.type === 'run_suspended' ? susp.step : '';
  const given = events
    .filter((e) => e.type === 'run_resumed')
    .map((e) => {
      const ev = (e.type === 'run_resumed' ? e.event : {}) as { reviewer?: string; decision?: string };
      return {
        reviewer: String(ev.reviewer),
        decision: String(ev.decision),
        step: e.type === 'run_resumed' ? e.step : '',
      };
    });
  const fourEyes = step === 'first_approval' || step === 'second_approval';
  return {
    run_id: runId,
    case: doc?.case ?? null,
    step,
    four_eyes: fourEyes,
    approvals_given: given,
    approvals_needed: step === 'first_approval' ? 2 : 1,
    excluded_reviewer:
      step === 'second_approval' ? (given.find((g) => g.step === 'first_approval')?.reviewer ?? null) : null,
    deadline: susp && susp.type === 'run_suspended' ? (susp.deadline ?? null) : null,
  };
}

function rejectedOf(doc: SimDoc, events: readonly TraceEvent[]): Rejected[] {
  const out: Rejected[] = [];
  for (const i of doc.refused?.issues ?? [])
    out.push({
      source: 'preflight',
      code: i.code,
      message: i.message,
      ...(i.path !== undefined && { path: i.path }),
      ...(i.line !== undefined && { line: i.line }),
      ...(i.col !== undefined && { col: i.col }),
    });
  for (const e of doc.counterfactual?.rejected ?? [])
    if (e.type === 'transition_rejected')
      out.push({
        source: 'counterfactual',
        seq: e.seq,
        step: e.step,
        requested: e.requested,
        rule: e.rule,
        reason: e.reason,
        ...(e.capability !== undefined && { capability: e.capability }),
        ...(e.granting_step !== undefined && { granting_step: e.granting_step }),
      });
  for (const e of events)
    if (e.type === 'transition_rejected')
      out.push({
        source: 'trace',
        seq: e.seq,
        step: e.step,
        requested: e.requested,
        rule: e.rule,
        reason: e.reason,
        ...(e.capability !== undefined && { capability: e.capability }),
        ...(e.granting_step !== undefined && { granting_step: e.granting_step }),
        ...(e.policy_hash !== undefined && { policy_hash: e.policy_hash }),
        ...(e.offered_policy_hash !== undefined && { offered_policy_hash: e.offered_policy_hash }),
      });
  return out;
}

const entered = (events: readonly TraceEvent[], step: string) =>
  events.some(
    (e) =>
      (e.type === 'policy_checked' ||
        e.type === 'step_started' ||
        e.type === 'step_completed' ||
        e.type === 'step_failed' ||
        e.type === 'run_suspended') &&
      e.step === step,
  );

/** Reads from the run's own record whether the injector was caught, and by what. */
export function detect(
  inj: InjectorInfo,
  doc: SimDoc,
  events: readonly TraceEvent[],
  verify: VerifyResult | null,
  related: RunView['related'],
): Detection {
  const ev: Detection['evidence'] = [];
  let reached = true;
  let caught = false;
  const issueCodes = (codes: string[]) => {
    for (const i of doc.refused?.issues ?? [])
      if (codes.includes(i.code)) ev.push({ what: `pre-flight issue ${i.code}`, code: i.code, detail: i.message });
    caught = ev.length > 0 && events.length === 0;
    const cf = doc.counterfactual;
    if (cf) {
      for (const e of cf.rejected)
        if (e.type === 'transition_rejected')
          ev.push({
            what: `runtime check too (counterfactual replay without pre-flight): transition_rejected ${e.requested} by rule ${e.rule}`,
            seq: e.seq,
            code: 'E_POLICY_BLOCKED',
            detail: e.reason,
          });
      ev.push({
        what: `counterfactual replay without pre-flight: ${cf.status}${cf.outcome ? ` ${cf.outcome}` : ''}${cf.error ? ` (${cf.error.code})` : ''}${cf.missing ? ' (stopped: the recorded results do not follow the rewired order)' : ''}`,
        ...(cf.error && { code: cf.error.code }),
        detail: { path: cf.path, missing: cf.missing, error: cf.error },
      });
    }
  };
  switch (inj.id) {
    case 'invalid_program':
      issueCodes(['E_GUARD_TYPE', 'E_GUARD_UNKNOWN_IDENT', 'E_PROJECTION_UNDECLARED']);
      break;
    case 'skip_step':
      issueCodes(['E_POLICY_REQUIRED_STEP']);
      break;
    case 'reorder_steps':
      issueCodes(['E_POLICY_PRECEDENCE']);
      break;
    case 'tool_injection':
      issueCodes(['E_POLICY_GRANT']);
      break;
    case 'policy_bypass':
    case 'double_approval': {
      const rule = inj.id === 'policy_bypass' ? 'policy.pinned' : 'four_eyes_distinct_reviewers';
      reached = inj.id === 'policy_bypass' ? events.length > 0 : entered(events, 'second_approval');
      for (const e of events)
        if (e.type === 'transition_rejected' && e.rule === rule)
          ev.push({
            what: `transition_rejected ${e.requested} by rule ${e.rule}`,
            seq: e.seq,
            code: 'E_POLICY_BLOCKED',
            detail: e.reason,
          });
      const calls = events.filter((e) => e.type === 'step_started' && e.tool === 'approve_customer').length;
      caught = ev.length > 0 && calls === 0;
      ev.push({ what: `approve_customer calls: ${calls}` });
      break;
    }
    case 'corrupt_receipt': {
      reached = doc.tampered !== undefined;
      if (verify && !verify.ok) {
        ev.push({
          what: `verify: ${verify.code} at event ${verify.first_bad_seq}`,
          seq: verify.first_bad_seq ?? undefined,
          code: verify.code,
          detail: verify.reason,
        });
        const seq = verify.first_bad_seq;
        const stored = events.find((e) => e.seq === seq);
        const seen = doc.witness.find((e) => e.seq === seq);
        if (stored && seen)
          ev.push({
            what: 'field diff against the witnessed event',
            seq: seq ?? undefined,
            detail: jsonDiff(seen, stored),
          });
        caught = seq === doc.tampered?.seq;
      }
      break;
    }
    case 'gdpr_erase': {
      const refused = events.find((e) => e.type === 'erasure_refused');
      if (refused && refused.type === 'erasure_refused')
        ev.push({ what: `erasure_refused by hold ${refused.hold}`, seq: refused.seq, detail: refused.reason });
      const lifted = related.find((r) => r.role === 'hold_lifted');
      const erased = lifted?.events.find((e) => e.kind === 'values_erased');
      if (erased)
        ev.push({
          what: `values_erased on run ${lifted!.run_id} (hold lifted)`,
          seq: erased.seq,
          detail: (erased.body as { paths: string[] }).paths,
        });
      if (lifted?.verify) ev.push({ what: `verify after erasure: ${lifted.verify.ok ? 'ok' : lifted.verify.code}` });
      reached = (doc.erasure?.pending ?? 0) === 0;
      caught = !!refused && !!erased && lifted?.verify?.ok === true && verify?.ok === true;
      break;
    }
    case 'llm_out_of_enum':
    case 'provider_outage': {
      reached = entered(events, 'review');
      const code = inj.id === 'llm_out_of_enum' ? 'E_OUTPUT_NOT_IN_ENUM' : 'E_MODEL_UNAVAILABLE';
      for (const e of events) {
        if (e.type === 'step_failed' && e.step === 'review' && e.error.code === code)
          ev.push({ what: `step_failed ${code}`, seq: e.seq, code, detail: e.raw ?? e.error.message });
        if (e.type === 'step_retry' && e.step === 'review')
          ev.push({ what: `step_retry attempt ${e.attempt} of ${e.max_attempts}`, seq: e.seq });
        if (e.type === 'step_fallback' && e.step === 'review')
          ev.push({ what: `step_fallback ${JSON.stringify(e.output)}`, seq: e.seq });
      }
      caught = ev.some((x) => x.code === code) && events.some((e) => e.type === 'step_fallback' && e.step === 'review');
      break;
    }
    case 'budget_exhaust': {
      reached = entered(events, 'review');
      const fin = events.find((e) => e.type === 'run_finished');
      if (fin && fin.type === 'run_finished' && fin.status === 'budget_exceeded') {
        ev.push({
          what: `run_finished budget_exceeded: ${fin.budget?.name} ${fin.budget?.used} > ${fin.budget?.limit}`,
          seq: fin.seq,
          detail: fin.budget,
        });
        caught = true;
      }
      break;
    }
    default: {
      const never: never = inj.id;
      throw new Error(`unknown injector ${String(never)}`);
    }
  }
  if (doc.refused && events.length === 0) reached = true;
  return {
    injector: inj.id,
    component: inj.detector,
    point: inj.point,
    reached,
    caught,
    summary: !reached
      ? inj.id === 'gdpr_erase'
        ? 'not reached: the runs are waiting for approval, and erasure waits until a run has ended'
        : `not reached: this case never got to ${inj.point}`
      : caught
        ? `caught by ${inj.detector}`
        : `NOT caught by ${inj.detector}`,
    evidence: ev,
  };
}

/** Field-level differences between two JSON values, as JSON pointers. */
export function jsonDiff(a: unknown, b: unknown, path = ''): { path: string; witnessed: unknown; stored: unknown }[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (!obj(a) || !obj(b) || Array.isArray(a) !== Array.isArray(b))
    return [{ path: path || '/', witnessed: a, stored: b }];
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.flatMap((k) => jsonDiff(a[k], b[k], `${path}/${k}`));
}

const pathOf = (v: RunView): string[] => (v.receipt ? v.receipt.path : []);

function laneSummary(v: RunView): LaneSummary {
  return {
    run_id: v.run_id,
    status: v.status,
    outcome: v.outcome,
    path: pathOf(v),
    counters: v.counters,
    detector: v.detector,
  };
}

export function divergence(paths: {
  baseline: string[];
  ungoverned: string[];
  governed: string[];
}): LanesResult['divergence'] {
  const n = Math.max(paths.baseline.length, paths.ungoverned.length, paths.governed.length);
  for (let i = 0; i < n; i++) {
    const b = paths.baseline[i] ?? null;
    const u = paths.ungoverned[i] ?? null;
    const g = paths.governed[i] ?? null;
    if (b !== u || b !== g) return { index: i, step: { baseline: b, ungoverned: u, governed: g } };
  }
  return null;
}

export function firstDifference(
  a: readonly string[],
  b: readonly string[],
): { index: number; baseline: string | null; other: string | null } | null {
  for (let i = 0; i < Math.max(a.length, b.length); i++)
    if (a[i] !== b[i]) return { index: i, baseline: a[i] ?? null, other: b[i] ?? null };
  return null;
}

/** What went wrong in the ungoverned lane, read from its records (compared with the governed baseline). */
function damageOf(r: NaiveResult, inj: InjectorId | null, baseline: RunView): string[] {
  const d: string[] = [];
  const byModel = r.tool_calls.filter((c) => c.requested_by_model);
  for (const c of byModel) d.push(`${c.tool} called because the model's answer asked for it`);
  if (!r.path.includes('screen_sanctions'))
    d.push(r.outcome === 'APPROVED' ? 'approved without screening' : 'no sanctions screening ran');
  else if (r.path.indexOf('review') >= 0 && r.path.indexOf('review') < r.path.indexOf('screen_sanctions'))
    d.push("the model saw the customer's data before the screening ran");
  const screened = r.records.find((x) => x.step === 'screen_sanctions' && x.kind === 'tool')?.output as
    { match?: string } | undefined;
  if (screened?.match === 'confirmed' && r.outcome === 'APPROVED') d.push('a confirmed sanctions match was approved');
  if (r.pii_sent_to_model.length) d.push(`raw PII sent to the model: ${r.pii_sent_to_model.join(', ')}`);
  const review = r.records.find((x) => x.step === 'review' && x.kind === 'llm');
  if (
    review &&
    typeof review.output === 'string' &&
    !['CLEAR', 'ESCALATE', 'INSUFFICIENT_DATA'].includes(review.output)
  )
    d.push(`an answer outside the enum drove the decision: ${JSON.stringify(review.output)}`);
  if (inj === 'budget_exhaust') d.push(`${r.tokens} tokens spent with no budget to stop them`);
  if (inj === 'double_approval' && r.outcome === 'APPROVED') d.push('approved by one person acting as both reviewers');
  if (inj === 'corrupt_receipt') d.push('the edited record is accepted: there is no chain to verify it against');
  if (inj === 'gdpr_erase')
    d.push('the AML record was deleted despite the retention hold, and nothing records the request');
  if (r.status === 'crashed') d.push(`crashed: ${r.error}; no decision and no record of why`);
  if (r.outcome && baseline.outcome && r.outcome !== baseline.outcome)
    d.push(`outcome ${r.outcome} where the baseline is ${baseline.outcome}`);
  return d;
}
