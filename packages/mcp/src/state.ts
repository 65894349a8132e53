/**
 * What the MCP server keeps beside the runtime's run store: the program catalogue (by content
 * hash, with names and versions), who started which run, idempotency keys, and the hash-chained
 * audit log of every call. `ServerState` is the seam: SQLite (sqliteState.ts, in the run store's
 * file) and memory ship; a shared store (PostgreSQL) implements the same interface.
 */
import { createHash } from 'node:crypto';
import { canonicalJson, type Program } from '@nano-vm/kernel';

export interface StoredProgram {
  /** SHA-256 of the program's canonical JSON (the hash its runs' genesis events pin). */
  hash: string;
  name: string;
  version: number;
  program: Program;
  principal: string;
  created_at: string;
}

export interface RunMeta {
  run_id: string;
  /** The principal that started it. */
  principal: string;
  program_id: string;
  program_hash: string;
  created_at: string;
}

export interface IdempotencyRecord {
  principal: string;
  key: string;
  /** SHA-256 of the request's canonical JSON: the same key with another request is refused. */
  request_hash: string;
  run_id: string;
  created_at: string;
}

export interface AuditEntry {
  seq: number;
  ts: string;
  principal: string;
  /** The tool (or `resources/read`, `http`) called. */
  tool: string;
  /** SHA-256 of the call's arguments as canonical JSON (the arguments themselves are not kept). */
  args_hash: string;
  /** `ok`, or the error code of the result. */
  result: string;
  run_id: string | null;
  prev_hash: string;
  hash: string;
}

export type NewAuditEntry = Omit<AuditEntry, 'seq' | 'prev_hash' | 'hash'>;

export interface ProgramRef {
  name?: string;
  version?: number;
  hash?: string;
}

export interface Page<T> {
  items: T[];
  /** Pass back as `cursor` for the next page; null on the last one. */
  next_cursor: string | null;
}

export interface ServerState {
  /**
   * Stores `program` under `name`: a new version when its hash differs from every live version of
   * that name, otherwise the existing version comes back (putting the same program twice is a no-op).
   */
  putProgram(p: { name: string; hash: string; program: Program; principal: string; ts: string }): Promise<{
    stored: StoredProgram;
    created: boolean;
  }>;
  /** By name (latest live version, or `version`), or by hash (any live version holding it). */
  getProgram(ref: ProgramRef): Promise<StoredProgram | undefined>;
  /** Live versions in (name, version) order, optionally of one name. `after` is an opaque cursor. */
  listPrograms(opts: { name?: string; after?: string; limit: number }): Promise<Page<StoredProgram>>;
  /** Marks versions deleted (all of `name`, or one); returns how many. Runs keep their own copy of the program. */
  deleteProgram(name: string, version?: number): Promise<number>;
  recordRun(meta: RunMeta): Promise<void>;
  runMeta(runId: string): Promise<RunMeta | undefined>;
  /**
   * Binds `key` to (principal, request hash, run id) unless the principal already bound it: then
   * the existing binding comes back and nothing changes. Atomic, so of two concurrent calls with
   * one key exactly one claims it.
   */
  claimIdempotency(
    rec: IdempotencyRecord,
  ): Promise<{ claimed: true } | { claimed: false; existing: IdempotencyRecord }>;
  /** Frees `key` if it is still bound to `runId` (its request was refused before the run started). */
  releaseIdempotency(principal: string, key: string, runId: string): Promise<void>;
  /** Appends one audit entry, chained to the last one atomically. */
  appendAudit(entry: NewAuditEntry): Promise<AuditEntry>;
  /** Every audit entry in order. */
  auditLog(): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

export const AUDIT_GENESIS = '0'.repeat(64);

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** `hash = SHA-256(prev_hash ‖ JCS(entry without hash))`, as a trace's chain. */
export function auditHash(e: Omit<AuditEntry, 'hash'>): string {
  return sha256(e.prev_hash + canonicalJson(e));
}

export function chainAudit(entry: NewAuditEntry, seq: number, prev_hash: string): AuditEntry {
  const body = { ...entry, seq, prev_hash };
  return { ...body, hash: auditHash(body) };
}

/** The first entry whose link or hash is wrong, or null when the whole log verifies. */
export function verifyAuditLog(log: readonly AuditEntry[]): { seq: number; reason: string } | null {
  let prev = AUDIT_GENESIS;
  for (let i = 0; i < log.length; i++) {
    const { hash, ...body } = log[i]!;
    if (body.seq !== i) return { seq: body.seq, reason: `entry ${i} has seq ${body.seq}` };
    if (body.prev_hash !== prev) return { seq: i, reason: `entry ${i} does not link to the entry before it` };
    if (auditHash(body) !== hash) return { seq: i, reason: `entry ${i} was changed after it was written` };
    prev = hash;
  }
  return null;
}

const encodeCursor = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

export function programCursor(p: StoredProgram): string {
  return encodeCursor([p.name, p.version]);
}

export function decodeCursor(c: string): unknown {
  try {
    return JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Everything in memory: for `--store memory:` and tests. */
export class MemoryServerState implements ServerState {
  private programs: (StoredProgram & { deleted: boolean })[] = [];
  private readonly runs = new Map<string, RunMeta>();
  private readonly keys = new Map<string, IdempotencyRecord>();
  private readonly audit: AuditEntry[] = [];

  putProgram(p: { name: string; hash: string; program: Program; principal: string; ts: string }) {
    const live = this.programs.filter((x) => x.name === p.name && !x.deleted);
    const same = live.find((x) => x.hash === p.hash);
    if (same) return Promise.resolve({ stored: strip(same), created: false });
    const version = Math.max(0, ...this.programs.filter((x) => x.name === p.name).map((x) => x.version)) + 1;
    const stored = {
      name: p.name,
      hash: p.hash,
      program: p.program,
      principal: p.principal,
      created_at: p.ts,
      version,
    };
    this.programs.push({ ...stored, deleted: false });
    return Promise.resolve({ stored, created: true });
  }

  getProgram(ref: ProgramRef): Promise<StoredProgram | undefined> {
    const live = this.programs.filter(
      (x) =>
        !x.deleted &&
        (ref.name === undefined || x.name === ref.name) &&
        (ref.version === undefined || x.version === ref.version) &&
        (ref.hash === undefined || x.hash === ref.hash),
    );
    const found = live.sort((a, b) => b.version - a.version)[0];
    return Promise.resolve(found ? strip(found) : undefined);
  }

  listPrograms(opts: { name?: string; after?: string; limit: number }): Promise<Page<StoredProgram>> {
    const after = opts.after === undefined ? undefined : (decodeCursor(opts.after) as [string, number]);
    const all = this.programs
      .filter((x) => !x.deleted && (opts.name === undefined || x.name === opts.name))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.version - b.version))
      .filter((x) => !after || x.name > after[0] || (x.name === after[0] && x.version > after[1]));
    const items = all.slice(0, opts.limit).map(strip);
    return Promise.resolve({
      items,
      next_cursor: all.length > opts.limit ? programCursor(items[items.length - 1]!) : null,
    });
  }

  deleteProgram(name: string, version?: number): Promise<number> {
    let n = 0;
    for (const x of this.programs)
      if (x.name === name && !x.deleted && (version === undefined || x.version === version)) {
        x.deleted = true;
        n++;
      }
    return Promise.resolve(n);
  }

  recordRun(meta: RunMeta): Promise<void> {
    this.runs.set(meta.run_id, meta);
    return Promise.resolve();
  }

  runMeta(runId: string): Promise<RunMeta | undefined> {
    return Promise.resolve(this.runs.get(runId));
  }

  claimIdempotency(rec: IdempotencyRecord) {
    const k = JSON.stringify([rec.principal, rec.key]);
    const existing = this.keys.get(k);
    if (existing) return Promise.resolve({ claimed: false as const, existing });
    this.keys.set(k, rec);
    return Promise.resolve({ claimed: true as const });
  }

  releaseIdempotency(principal: string, key: string, runId: string): Promise<void> {
    const k = JSON.stringify([principal, key]);
    if (this.keys.get(k)?.run_id === runId) this.keys.delete(k);
    return Promise.resolve();
  }

  appendAudit(entry: NewAuditEntry): Promise<AuditEntry> {
    const last = this.audit[this.audit.length - 1];
    const e = chainAudit(entry, this.audit.length, last ? last.hash : AUDIT_GENESIS);
    this.audit.push(e);
    return Promise.resolve(e);
  }

  auditLog(): Promise<AuditEntry[]> {
    return Promise.resolve([...this.audit]);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function strip(x: StoredProgram & { deleted?: boolean }): StoredProgram {
  const { deleted: _d, ...rest } = x;
  return rest;
}
