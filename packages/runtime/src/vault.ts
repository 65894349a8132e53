/**
 * The vault (docs/privacy.md): the host side of sensitive inputs. A run's values at its program's
 * `sensitive` paths go to the store's vault with a salt; the stored input, the bundle and every
 * event hold `vault:sha256:<hex>` commitments. Erasure deletes a data subject's values and salts,
 * leaves tombstones, and appends an audited event to each affected run's chain, unless a legal hold
 * in the run's policy refuses it, which is audited too.
 */
import {
  Redactor,
  TraceChain,
  commitValue,
  legalHoldFor,
  replaceAtPaths,
  scrubEvent,
  sensitiveLeaves,
  subjectKey,
  type Clock,
  type ErasureRefusedEvent,
  type Hasher,
  type JsonValue,
  type LegalHold,
  type PolicySnapshot,
  type Program,
  type TraceEvent,
  type ValuesErasedEvent,
} from '@nano-vm/kernel';
import { randomSalt, systemClock, type IdSource } from './clock.js';
import { StoreError, type RunRecord, type Store, type VaultRow, type VaultValue } from './store/store.js';

export interface SealedInput {
  /** The input as stored and exported: a commitment at every sensitive leaf. */
  redacted: unknown;
  /** The rows for the store's vault. */
  vault: VaultValue[];
  redactor: Redactor;
}

/** The run's data subject: `subject` when given, else the value at the program's `subject` path. */
export function subjectOf(program: Program, input: unknown, subject?: string): string | null {
  if (subject !== undefined) return subject;
  if (program.subject === undefined) return null;
  let v: unknown = { input };
  for (const seg of program.subject.split('.'))
    v =
      v !== null && typeof v === 'object' && Object.prototype.hasOwnProperty.call(v, seg)
        ? (v as Record<string, unknown>)[seg]
        : undefined;
  return typeof v === 'string' || typeof v === 'number' ? String(v) : null;
}

/** Seal a run's input; null when the program declares no sensitive value present in it. */
export function sealInput(
  program: Program,
  input: unknown,
  hasher: Hasher,
  ids: IdSource | undefined,
  subject: string | undefined,
  secret: string,
): SealedInput | null {
  const leaves = sensitiveLeaves(input, program.sensitive ?? []);
  if (leaves.length === 0) return null;
  const who = subjectOf(program, input, subject);
  const key = who === null ? null : subjectKey(hasher, who, secret);
  const vault: VaultValue[] = leaves.map((l) => {
    const salt = ids?.salt?.() ?? randomSalt();
    return { path: l.path, subject: key, commitment: commitValue(hasher, salt, l.value), salt, value: l.value };
  });
  const redactor = new Redactor(vault);
  // Every other copy of a sensitive value in the input (an undeclared field, a key, another letter
  // case) is stored as its commitment too, as events write it: the bundle holds no copy, and a
  // replay without the vault sees what the live run's projections and arguments recorded.
  const redacted = redactor.value(
    replaceAtPaths(input, new Map(vault.map((v) => [v.path, v.commitment as JsonValue]))) as JsonValue,
  );
  return { redacted, vault, redactor };
}

/**
 * The real input of a stored run (recovery, resume): the stored input with every live vault value
 * put back, and the redactor its events were written with. A stored input without commitments (a
 * program without sensitive paths, or a run stored before the vault existed) comes back as it is.
 */
export async function openRunInput(store: Store, run: RunRecord): Promise<{ input: unknown; redact?: Redactor }> {
  const rows = await store.vault(run.run_id);
  if (rows.length === 0) return { input: run.input };
  const live = rows.filter((r) => !r.erased);
  const redact = new Redactor(
    rows.map((r) =>
      r.erased
        ? { path: r.path, commitment: r.commitment }
        : { path: r.path, commitment: r.commitment, value: r.value as JsonValue },
    ),
  );
  // The values back at their paths, and every other copy the sealing replaced (sealInput) revealed.
  const input = redact.reveal(
    replaceAtPaths(run.input, new Map(live.map((r) => [r.path, r.value as JsonValue]))) as JsonValue,
  );
  return { input, redact };
}

/** The live vault rows of a run as replay takes them (`replayBundle(…, { vault })`). */
export async function vaultEntries(
  store: Store,
  runId: string,
): Promise<{ path: string; salt: string; value: JsonValue }[]> {
  return (await store.vault(runId))
    .filter((r) => !r.erased && r.salt !== null)
    .map((r) => ({ path: r.path, salt: r.salt!, value: r.value as JsonValue }));
}

export interface EraseOptions {
  store: Store;
  /** The subject id as the runs named it (e.g. an email address). */
  subject: string;
  hasher: Hasher;
  clock?: Clock;
  /** Policies whose legal holds apply besides each run's own (e.g. a hold placed after the runs). */
  policies?: readonly PolicySnapshot[];
}

export interface EraseReport {
  /** `sha256:<hex>` of the subject id, as stored and written into events. */
  subject: string;
  erased: { run_id: string; paths: string[]; seq: number }[];
  refused: { run_id: string; hold: string; reason: string; paths: string[]; seq: number }[];
  /** Runs not yet finished (running or suspended): nothing was erased or appended; erase again later. */
  pending: { run_id: string; status: string; paths: string[] }[];
  /** Runs whose values of this subject were already erased. */
  already_erased: string[];
  /**
   * Erased runs that still hold a copy of an erased value where the redactor would replace it now:
   * in the events of these seqs (written before the redaction caught keys, other letter cases and
   * numbers inside text; they are in the hash chain and stay), or in the stored input outside the
   * declared `sensitive` paths. Their vault values were erased all the same.
   */
  residual: { run_id: string; seqs: number[]; input: boolean }[];
  /**
   * True when the erased bytes are still in the store's files because another connection holds
   * an old snapshot (SQLite WAL): erase again once it has ended.
   */
  file_pending: boolean;
}

/**
 * Where a run's stored events and input still hold a copy of one of `rows`' values that today's
 * redaction would replace (docs/privacy.md, "What is caught"). Null when there is none.
 */
export function residualCopies(
  run: RunRecord,
  events: readonly TraceEvent[],
  rows: readonly VaultRow[],
): { seqs: number[]; input: boolean } | null {
  const r = new Redactor(
    rows.filter((x) => !x.erased).map((x) => ({ path: x.path, commitment: x.commitment, value: x.value as JsonValue })),
  );
  const seqs = events.filter((e) => scrubEvent(r, e, () => undefined) !== e).map((e) => e.seq);
  const input = run.input !== undefined && r.value(run.input as JsonValue) !== run.input;
  return seqs.length || input ? { seqs, input } : null;
}

/** The legal hold that keeps a run's values: from its own stored policy, then from the given ones. */
export function holdFor(run: RunRecord, policies: readonly PolicySnapshot[] = []): LegalHold | null {
  for (const p of [run.policy, ...policies]) {
    // Runs stored before policies existed may hold any JSON as their policy: read it defensively.
    if (p === null || typeof p !== 'object' || !Array.isArray((p as { legal_holds?: unknown }).legal_holds)) continue;
    const hold = legalHoldFor(p as PolicySnapshot, run.program_id);
    if (hold) return hold;
  }
  return null;
}

export async function eraseSubject(o: EraseOptions): Promise<EraseReport> {
  const key = subjectKey(o.hasher, o.subject, await o.store.subjectSecret());
  // Rows written before stores had a secret are keyed by the plain hash: erase those too.
  const legacy = subjectKey(o.hasher, o.subject);
  const clock = o.clock ?? systemClock;
  const report: EraseReport = {
    subject: key,
    erased: [],
    refused: [],
    pending: [],
    already_erased: [],
    residual: [],
    file_pending: false,
  };
  const byRun = new Map<string, VaultRow[]>();
  for (const row of [...(await o.store.vaultBySubject(key)), ...(await o.store.vaultBySubject(legacy))]) {
    let rows = byRun.get(row.run_id);
    if (!rows) byRun.set(row.run_id, (rows = []));
    rows.push(row);
  }
  for (const [runId, rows] of byRun) {
    const live = rows.filter((r) => !r.erased);
    if (live.length === 0) {
      report.already_erased.push(runId);
      continue;
    }
    const run = await o.store.getRun(runId);
    if (!run) throw new StoreError('E_STORE_NO_RUN', `vault rows name run ${runId}, which is not in the store`);
    const paths = live.map((r) => r.path);
    if (run.status === 'running' || run.status === 'suspended') {
      // The run still needs its values, and its chain is still being written by its executor.
      report.pending.push({ run_id: runId, status: run.status, paths });
      continue;
    }
    const events = await o.store.events(runId);
    const chain = new TraceChain(o.hasher, { events, keep: false });
    const ts = new Date(clock.now()).toISOString();
    const hold = holdFor(run, o.policies);
    // The key the run's rows carry (a legacy plain-hash key for rows written before the secret).
    const rowKey = live[0]!.subject ?? key;
    if (hold) {
      const body: ErasureRefusedEvent = {
        hash: '',
        hold: hold.id,
        paths,
        prev_hash: '',
        reason: hold.reason,
        seq: 0,
        subject: rowKey,
        ts: '',
        type: 'erasure_refused',
      };
      const e = chain.append(body, ts);
      await o.store.append(runId, [e]);
      report.refused.push({ run_id: runId, hold: hold.id, reason: hold.reason, paths, seq: e.seq });
      continue;
    }
    const body: ValuesErasedEvent = {
      commitments: live.map((r) => r.commitment),
      hash: '',
      paths,
      prev_hash: '',
      seq: 0,
      subject: rowKey,
      ts: '',
      type: 'values_erased',
    };
    // Checked while the values are still there to compare with.
    const residual = residualCopies(run, events, live);
    const e: TraceEvent = chain.append(body, ts);
    await o.store.eraseValues(runId, rowKey, e);
    if (residual) report.residual.push({ run_id: runId, ...residual });
    report.erased.push({ run_id: runId, paths, seq: e.seq });
  }
  // Also after an erasure found nothing left: erasing again finishes a flush a reader held up.
  if ((report.erased.length || report.already_erased.length) && o.store.flushErased)
    report.file_pending = !(await o.store.flushErased());
  return report;
}
