/**
 * Sensitive values and their commitments (docs/privacy.md). A program's `sensitive` input paths hold
 * personal data: the host keeps each value in its vault with a random salt, and everything that is
 * stored, hashed or exported holds the salted commitment `vault:sha256:<hex>` instead, where
 *   hex = SHA-256(salt ‖ JCS(value)).
 * Erasing the value and the salt leaves the commitment, the input hash and every event hash intact,
 * so the chain still verifies and nobody can recompute the value from it.
 *
 * The machine's state keeps the real values for a live run (guards and tools need them); a
 * Redactor replaces them in what the machine writes into events: by path where the machine knows
 * the path (tool arguments, guard sub-expressions that are paths), by value everywhere else
 * (outputs that echo a value, error messages), because provenance through a tool cannot be tracked.
 */
import { canonicalJson } from './canonicalJson.js';
import { guardTree } from './guard/compile.js';
import { childrenOf, type GuardNode } from './guard/guardNode.js';
import type { CompiledGuard } from './guard/types.js';
import type { ConditionEvaluatedEvent, TraceEvent } from './events.js';
import type { EffectResult } from './command.js';
import { NanoVmError } from './errors.js';
import type { Hasher } from './hash.js';
import type { JsonValue } from './program.js';
import { isUnder, readPath, splitPath } from './statePath.js';
import { ownMember, setMember } from './dataMember.js';

export const COMMITMENT_PREFIX = 'vault:sha256:';
/** Strings at least this long are also replaced where they occur inside longer strings. */
const MIN_SUBSTRING = 4;

export function isCommitment(v: unknown): v is string {
  return typeof v === 'string' && v.length === COMMITMENT_PREFIX.length + 64 && v.startsWith(COMMITMENT_PREFIX);
}

/** `vault:sha256:` + SHA-256(salt ‖ JCS(value)). */
export function commitValue(hasher: Hasher, salt: string, value: JsonValue): string {
  return COMMITMENT_PREFIX + hasher.sha256Hex(salt + canonicalJson(value));
}

/**
 * How a subject id is stored and written into events, never the id itself. With the store's secret
 * (the runtime always passes one) it is `keyed-sha256:` SHA-256(secret ‖ NUL ‖ id): ids such as
 * email addresses are easy to guess, and a plain hash of a guessable id can be reversed by trying
 * candidates; without the secret nobody can link the key to a person. Without a secret: `sha256:`
 * of the id (how stores written before the secret existed keyed their rows).
 */
export function subjectKey(hasher: Hasher, subject: string, secret?: string): string {
  return secret === undefined
    ? `sha256:${hasher.sha256Hex(subject)}`
    : `keyed-sha256:${hasher.sha256Hex(`${secret}\u0000${subject}`)}`;
}

/** A sensitive leaf of one run's input: its path (e.g. `input.applicant.email`) and value. */
export interface SensitiveLeaf {
  path: string;
  value: JsonValue;
}

/**
 * The leaves at or below the declared sensitive paths of an input (objects and arrays are
 * expanded, so the redacted input keeps its shape: `has()` and `size()` of a list still work).
 * Absent paths have no leaf; a leaf already holding a commitment is skipped.
 */
export function sensitiveLeaves(input: unknown, sensitive: readonly string[]): SensitiveLeaf[] {
  const out: SensitiveLeaf[] = [];
  const seen = new Set<string>();
  const walk = (path: string, v: unknown): void => {
    if (v === undefined) return;
    if (v !== null && typeof v === 'object') {
      if (Array.isArray(v)) v.forEach((e, i) => walk(`${path}.${i}`, e));
      else for (const k of Object.keys(v).sort()) walk(`${path}.${k}`, (v as Record<string, unknown>)[k]);
      return;
    }
    if (seen.has(path) || isCommitment(v)) return;
    seen.add(path);
    out.push({ path, value: v as JsonValue });
  };
  for (const p of sensitive) walk(p, readPath({ input }, p));
  return out;
}

/** A copy of `input` with the value at each `input.…` path replaced (paths must exist). */
export function replaceAtPaths(input: unknown, values: ReadonlyMap<string, JsonValue>): unknown {
  if (values.size === 0) return input;
  const root = { input: structuredCloneJson(input) } as Record<string, unknown>;
  for (const [path, v] of values) {
    const segs = splitPath(path);
    let node = root as Record<string, unknown> | unknown[];
    for (let i = 0; i < segs.length - 1; i++)
      node = ownMember(node as Record<string, unknown>, segs[i]!) as Record<string, unknown>;
    setMember(node as Record<string, unknown>, segs[segs.length - 1]!, v);
  }
  return root.input;
}

/** A commitment and, while it is not erased, the value it commits to. */
export interface Sealed {
  path: string;
  commitment: string;
  value?: JsonValue;
}

/** Replaces sensitive values by their commitments in what the machine writes into events. */
export class Redactor {
  private readonly byPath = new Map<string, string>();
  private readonly byValue = new Map<string, string>();
  /** Strings replaced inside longer strings, longest first. */
  private readonly inside: [string, string][] = [];
  /** Commitment -> value, for the values this redactor holds. */
  private readonly byCommitment = new Map<string, JsonValue>();
  readonly paths: string[];

  constructor(sealed: readonly Sealed[]) {
    for (const s of sealed) {
      this.byPath.set(s.path, s.commitment);
      if (s.value === undefined) continue;
      this.byCommitment.set(s.commitment, s.value);
      // Booleans and null carry no identity of their own and occur everywhere in events; they are
      // replaced where the machine knows their path only.
      if (typeof s.value === 'string' || typeof s.value === 'number')
        this.byValue.set(canonicalJson(s.value), s.commitment);
      if (typeof s.value === 'string' && s.value.length >= MIN_SUBSTRING) this.inside.push([s.value, s.commitment]);
    }
    this.inside.sort((a, b) => b[0].length - a[0].length);
    this.paths = [...this.byPath.keys()];
  }

  /** `v` with every sensitive sub-value replaced; the same object when nothing was. */
  value(v: JsonValue): JsonValue {
    if (typeof v === 'string') {
      const c = this.byValue.get(JSON.stringify(v));
      return c ?? this.text(v);
    }
    if (typeof v === 'number') return this.byValue.get(canonicalJson(v)) ?? v;
    if (v === null || typeof v !== 'object') return v;
    let changed = false;
    if (Array.isArray(v)) {
      const out = v.map((e) => {
        const r = this.value(e);
        if (r !== e) changed = true;
        return r;
      });
      return changed ? out : v;
    }
    const out: { [k: string]: JsonValue } = {};
    for (const k of Object.keys(v)) {
      const r = this.value(v[k]!);
      if (r !== v[k]) changed = true;
      setMember(out, k, r);
    }
    return changed ? out : v;
  }

  /** The value read from state path `path`: leaves at sensitive paths by path, the rest by value. */
  at(path: string, v: JsonValue): JsonValue {
    const c = this.byPath.get(path);
    if (c !== undefined) return c;
    if (v === null || typeof v !== 'object' || !this.paths.some((p) => isUnder(p, path))) return this.value(v);
    if (Array.isArray(v)) return v.map((e, i) => this.at(`${path}.${i}`, e));
    const out: { [k: string]: JsonValue } = {};
    for (const k of Object.keys(v)) setMember(out, k, this.at(`${path}.${k}`, v[k]!));
    return out;
  }

  /** A string with every occurrence of a sensitive string (and a cut-off prefix of one, `…`) replaced. */
  text(s: string): string {
    let out = s;
    for (const [needle, c] of this.inside) if (out.includes(needle)) out = out.split(needle).join(c);
    if (out.endsWith('…')) {
      const head = out.slice(0, -1);
      for (const [needle, c] of this.inside) {
        for (let n = Math.min(needle.length - 1, head.length); n >= MIN_SUBSTRING; n--)
          if (head.endsWith(needle.slice(0, n))) return `${head.slice(0, head.length - n)}${c}…`;
      }
    }
    return out;
  }

  /**
   * The inverse of `value` for recorded results: commitments written in place of a value (whole,
   * or inside a string) become the value again, so a replay or a recovery that holds the vault's
   * values feeds the machine what the live run saw, and writes the same redacted events again.
   */
  reveal(v: JsonValue): JsonValue {
    if (this.byCommitment.size === 0) return v;
    if (typeof v === 'string') {
      const whole = this.byCommitment.get(v);
      if (whole !== undefined) return whole;
      if (!v.includes(COMMITMENT_PREFIX)) return v;
      let out = v;
      for (const [c, value] of this.byCommitment)
        if (typeof value === 'string' && out.includes(c)) out = out.split(c).join(value);
      return out;
    }
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((e) => this.reveal(e));
    const out: { [k: string]: JsonValue } = {};
    for (const k of Object.keys(v)) setMember(out, k, this.reveal(v[k]!));
    return out;
  }

  /** A recorded effect result with its commitments revealed (see `reveal`). */
  revealResult(r: EffectResult): EffectResult {
    if (this.byCommitment.size === 0) return r;
    if (!r.ok) return { ...r, error: { ...r.error, message: this.reveal(r.error.message) as string } };
    const out: EffectResult = { ...r };
    if (r.raw !== undefined) out.raw = this.reveal(r.raw) as string;
    if (r.value !== undefined) out.value = this.reveal(r.value as JsonValue);
    return out;
  }

  /** Guard explanations: sub-expressions that are state paths by path, the others by value. */
  explain(entries: readonly { expr: string; value: JsonValue }[]): { expr: string; value: JsonValue }[] {
    return entries.map((e) => {
      const value = PATH_EXPR.test(e.expr) ? this.at(e.expr, e.value) : this.value(e.value);
      const expr = this.text(e.expr);
      return value === e.value && expr === e.expr ? e : { expr, value };
    });
  }
}

/**
 * The state paths a guard reads (`input.a.b`, `steps.x.output.y`): chains of field selections and
 * `has()` from the `input` or `steps` identifier, cut at the first computed index.
 */
export function guardReadPaths(guard: CompiledGuard): string[] {
  const tree = guardTree(guard);
  if (!tree.ok) return [];
  const out = new Set<string>();
  const chain = (n: GuardNode): string | null => {
    if (n.kind === 'ident') return n.name === 'input' || n.name === 'steps' ? n.name : null;
    if (n.kind === 'field' || n.kind === 'has') {
      const base = chain(n.object);
      return base === null ? null : `${base}.${n.name}`;
    }
    if (n.kind === 'index') {
      const base = chain(n.object);
      if (base === null) return null;
      return n.key.kind === 'literal' && (typeof n.key.value === 'string' || typeof n.key.value === 'number')
        ? `${base}.${n.key.value}`
        : base;
    }
    return null;
  };
  const walk = (n: GuardNode): void => {
    const p = chain(n);
    if (p !== null) out.add(p);
    if (n.kind === 'field' || n.kind === 'has' || n.kind === 'index') {
      if (n.kind === 'index') walk(n.key);
      if (p === null) walk(n.object);
      return;
    }
    for (const c of childrenOf(n)) walk(c);
  };
  walk(tree.root);
  return [...out];
}

const PATH_EXPR = /^(input|steps)(\.[A-Za-z0-9_]+)*$/;

function structuredCloneJson<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

type ArgSources = Record<string, string | { value: JsonValue }> | undefined;

/**
 * The event as it may be written: sensitive values replaced by their commitments in every member
 * that can carry state (tool arguments, outputs, raw answers, guard explanations, error messages,
 * resume payloads). Returns the same object when nothing changed. `argsOf` names the source path
 * of each tool argument, so arguments are redacted by path.
 */
export function scrubEvent(r: Redactor, e: TraceEvent, argsOf: (step: string) => ArgSources): TraceEvent {
  const msg = <T extends { message: string } | undefined>(err: T): T => {
    if (err === undefined) return err;
    const m = r.text(err.message);
    return (m === err.message ? err : { ...err, message: m }) as T;
  };
  const msgs = <T extends { message: string }>(list: T[] | undefined): T[] | undefined => {
    if (list === undefined) return list;
    const out = list.map(msg);
    return out.some((x, i) => x !== list[i]) ? out : list;
  };
  switch (e.type) {
    case 'step_started': {
      if (e.args === undefined) return e;
      const src = argsOf(e.step);
      const args: Record<string, JsonValue> = {};
      let changed = false;
      for (const k of Object.keys(e.args)) {
        const from = src === undefined ? undefined : ownMember(src, k);
        const v = e.args[k]!;
        const redacted = typeof from === 'string' ? r.at(from, v) : r.value(v);
        setMember(args, k, redacted);
        if (redacted !== v) changed = true;
      }
      return changed ? { ...e, args } : e;
    }
    case 'step_completed': {
      const output = r.value(e.output);
      const raw = e.raw === undefined ? undefined : r.text(e.raw);
      const fallbacks = msgs(e.fallbacks);
      return output === e.output && raw === e.raw && fallbacks === e.fallbacks ? e : { ...e, output, raw, fallbacks };
    }
    case 'step_failed': {
      const raw = e.raw === undefined ? undefined : r.text(e.raw);
      const rejected_output = e.rejected_output === undefined ? undefined : r.value(e.rejected_output);
      const error = msg(e.error);
      const fallbacks = msgs(e.fallbacks);
      return raw === e.raw && rejected_output === e.rejected_output && error === e.error && fallbacks === e.fallbacks
        ? e
        : { ...e, error, raw, rejected_output, fallbacks };
    }
    case 'step_fallback': {
      const output = r.value(e.output);
      return output === e.output ? e : { ...e, output };
    }
    case 'condition_evaluated': {
      let changed = false;
      const guards = e.guards.map((g) => {
        const explain = r.explain(g.explain);
        const value = r.value(g.value);
        const error = msg(g.error);
        if (explain.every((x, i) => x === g.explain[i]) && value === g.value && error === g.error) return g;
        changed = true;
        return { ...g, error, explain, value };
      });
      return changed ? { ...e, guards } : e;
    }
    case 'transition_rejected': {
      const reason = r.text(e.reason);
      return reason === e.reason ? e : { ...e, reason };
    }
    case 'run_finished': {
      const error = msg(e.error);
      return error === e.error ? e : { ...e, error };
    }
    case 'run_started':
    case 'run_suspended':
    case 'run_resumed':
    case 'wait_timed_out':
    case 'step_retry':
    case 'visits_exhausted':
    case 'policy_checked':
    case 'values_erased':
    case 'erasure_refused': {
      // Events that carry an external payload (a resume event) are redacted by value.
      const withEvent = e as TraceEvent & { event?: JsonValue };
      if (withEvent.event === undefined) return e;
      const event = r.value(withEvent.event);
      return event === withEvent.event ? e : ({ ...withEvent, event } as unknown as TraceEvent);
    }
    default: {
      const _exhaustive: never = e;
      throw new NanoVmError('E_INTERNAL', `scrubEvent: unknown event type ${(_exhaustive as TraceEvent).type}`);
    }
  }
}

/**
 * Replay without the vault (a bundle never holds sensitive values): a condition whose guards read a
 * sealed path cannot be re-evaluated, so the machine takes the recorded decision and reports it.
 */
export interface SealedDecisions {
  /** Input paths whose values the replay does not have. */
  paths: readonly string[];
  /** The recorded condition_evaluated event of this step's visit, if the trace has one. */
  recorded(step: string, visit: number): ConditionEvaluatedEvent | undefined;
  /** A decision was taken from the record because its guards read `paths`. */
  used(seq: number, step: string, paths: string[]): void;
}

/** A replayed condition reads sealed inputs and the trace holds no decision of it that fits. */
export class SealedDecisionError extends NanoVmError {
  constructor(
    readonly step: string,
    readonly visit: number,
    message: string,
  ) {
    super('E_REPLAY_SEALED', message, {
      issues: [{ code: 'E_REPLAY_SEALED', severity: 'error', step, message }],
      location: { step },
    });
  }
}
