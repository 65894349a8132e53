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
import { stripFence } from './outputCheck.js';
import { parseJsonText } from './jsonText.js';
import { isUnder, readPath, splitPath } from './statePath.js';
import { ownMember, setMember } from './dataMember.js';

export const COMMITMENT_PREFIX = 'vault:sha256:';
/** Sensitive texts (strings, numbers as JSON text) at least this long are also replaced inside longer strings and keys. */
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

/** A regular-expression source matching `s` literally (escaping the syntax characters of `u` mode). */
const literal = (s: string): string => s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
/** A commitment already in a text: matched first and kept, so nothing inside its hex is replaced. */
const COMMITMENT_SOURCE = `${literal(COMMITMENT_PREFIX)}[0-9a-f]{64}`;
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** Where long text is clipped: an ellipsis or three dots. */
const CUT_MARK = /…|\.\.\./g;

/** KMP's prefix function: fail[i] = the length of the longest proper border of `s[0..i]`. */
function prefixFunction(s: string): number[] {
  const fail = new Array<number>(s.length).fill(0);
  for (let i = 1, k = 0; i < s.length; i++) {
    while (k > 0 && s[i] !== s[k]) k = fail[k - 1]!;
    if (s[i] === s[k]) k++;
    fail[i] = k;
  }
  return fail;
}

/** A needle: a text form of a sensitive value, and the commitment that replaces it. */
interface Needle {
  text: string;
  commitment: string;
}

/**
 * Replaces sensitive values by their commitments in what the machine writes into events.
 *
 * The rules (docs/privacy.md, "What is caught"): a string or number equal to a sensitive string or
 * number, compared as text in any letter case (simple Unicode case folding, the `iu` flags of a
 * regular expression, and the value's full upper- and lower-case forms), becomes the commitment;
 * a sensitive string or number of 4 or more characters (a number by its JSON text) is replaced
 * where it occurs inside a longer string, in any case, and inside JSON text in its JSON-escaped
 * form too; a number whose digits hold one becomes the commitment. Object keys follow the string
 * rules; keys that redact to the same text are told apart by `#2`, `#3`, … in the code-unit order
 * of the original keys (a key that needed no redaction keeps its name).
 */
export class Redactor {
  private readonly byPath = new Map<string, string>();
  /** Sensitive texts shorter than MIN_SUBSTRING: replaced as whole values, in their own case. */
  private readonly exact = new Map<string, string>();
  /** Every text form of a longer sensitive string or number, for whole-value matching. */
  private readonly whole: Needle[] = [];
  /** The forms replaced inside longer strings, longest first. */
  private readonly inside: Needle[] = [];
  private readonly wholeRe: RegExp | null;
  private readonly wholeMax: number;
  private readonly insideRe: RegExp | null;
  /** The inside needles lower-cased, with their KMP prefix functions, for cut-off copies. */
  private readonly prefixes: { lower: string; fail: number[]; commitment: string }[] = [];
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
      if (typeof s.value !== 'string' && typeof s.value !== 'number') continue;
      const text = typeof s.value === 'string' ? s.value : canonicalJson(s.value);
      // A short value matches whole and in its own case only: `NO` in any case would take every "no".
      if (text.length < MIN_SUBSTRING) {
        if (!this.exact.has(text)) this.exact.set(text, s.commitment);
        continue;
      }
      // Simple case folding (the regular expressions' `iu`) maps one character to one; the full
      // upper- and lower-case forms also catch what `toUpperCase()` makes of `ß` (`SS`) or `ﬀ` (`FF`).
      for (const form of new Set([text, text.toUpperCase(), text.toLowerCase()])) {
        this.whole.push({ text: form, commitment: s.commitment });
        this.inside.push({ text: form, commitment: s.commitment });
        // In raw JSON text (a model's answer) a string appears escaped: `"` as `\"`, a newline as `\n`.
        const escaped = JSON.stringify(form).slice(1, -1);
        if (escaped !== form) this.inside.push({ text: escaped, commitment: s.commitment });
      }
    }
    this.inside.sort((a, b) => b.text.length - a.text.length);
    const groups = (ns: Needle[]): string => ns.map((n) => `(${literal(n.text)})`).join('|');
    this.wholeMax = 2 * this.whole.reduce((m, n) => Math.max(m, n.text.length), 0);
    this.wholeRe = this.whole.length ? new RegExp(`^(?:${groups(this.whole)})$`, 'iu') : null;
    this.insideRe = this.inside.length ? new RegExp(`(${COMMITMENT_SOURCE})|${groups(this.inside)}`, 'giu') : null;
    for (const n of this.inside) {
      const lower = n.text.toLowerCase();
      this.prefixes.push({ lower, fail: prefixFunction(lower), commitment: n.commitment });
    }
    this.paths = [...this.byPath.keys()];
  }

  /** `v` with every sensitive sub-value replaced; the same object when nothing was. */
  value(v: JsonValue): JsonValue {
    if (typeof v === 'string') return this.string(v);
    if (typeof v === 'number') return this.number(v);
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) {
      let changed = false;
      const out = v.map((e) => {
        const r = this.value(e);
        if (r !== e) changed = true;
        return r;
      });
      return changed ? out : v;
    }
    return this.object(v, (_k, x) => this.value(x));
  }

  /** The value read from state path `path`: leaves at sensitive paths by path, the rest by value. */
  at(path: string, v: JsonValue): JsonValue {
    const c = this.byPath.get(path);
    if (c !== undefined) return c;
    if (v === null || typeof v !== 'object' || !this.paths.some((p) => isUnder(p, path))) return this.value(v);
    if (Array.isArray(v)) return v.map((e, i) => this.at(`${path}.${i}`, e));
    return this.object(v, (k, x) => this.at(`${path}.${k}`, x));
  }

  /** A string equal to a sensitive value (any case) becomes its commitment; else `text`. */
  private string(s: string): string {
    const short = this.exact.get(s);
    if (short !== undefined) return short;
    // Case folding keeps a text within twice its length: a longer string cannot equal a needle.
    const m = s.length <= this.wholeMax ? this.wholeRe?.exec(s) : null;
    return m ? this.matched(m, 1, this.whole) : this.text(s);
  }

  /** A number equal to a sensitive value, or whose JSON text holds one, becomes its commitment. */
  private number(n: number): JsonValue {
    if (this.wholeRe === null && this.exact.size === 0) return n;
    const t = canonicalJson(n);
    const short = this.exact.get(t);
    if (short !== undefined) return short;
    if (this.wholeRe === null) return n;
    const m = t.length <= this.wholeMax ? this.wholeRe.exec(t) : null;
    if (m) return this.matched(m, 1, this.whole);
    if (this.insideRe === null) return n;
    this.insideRe.lastIndex = 0;
    const i = this.insideRe.exec(t);
    return i && i[1] === undefined ? this.matched(i, 2, this.inside) : n;
  }

  /** The commitment of the needle whose capture group matched (groups start at `first`). */
  private matched(m: RegExpExecArray, first: number, needles: readonly Needle[]): string {
    for (let g = first; g < m.length; g++) if (m[g] !== undefined) return needles[g - first]!.commitment;
    return m[0];
  }

  /**
   * An object with its keys redacted like strings and its values by `child`; keys that redact to
   * the same text get `#2`, `#3`, … (see the class comment). Built with `Object.fromEntries`, so a
   * `__proto__` key stays an ordinary own property. The same object when nothing changed.
   */
  private object(v: { [k: string]: JsonValue }, child: (k: string, x: JsonValue) => JsonValue): JsonValue {
    const keys = Object.keys(v);
    const names = new Map<string, string>();
    for (const k of keys) {
      const r = this.string(k);
      if (r !== k) names.set(k, r);
    }
    if (names.size > 0) {
      const taken = new Set(keys.filter((k) => !names.has(k)));
      for (const k of [...names.keys()].sort(byCodeUnits)) {
        const base = names.get(k)!;
        let name = base;
        for (let i = 2; taken.has(name); i++) name = `${base}#${i}`;
        taken.add(name);
        names.set(k, name);
      }
    }
    let changed = names.size > 0;
    const entries = keys.map((k): [string, JsonValue] => {
      const x = v[k]!;
      const r = child(k, x);
      if (r !== x) changed = true;
      return [names.get(k) ?? k, r];
    });
    return changed ? (Object.fromEntries(entries) as JsonValue) : v;
  }

  /**
   * A string with every occurrence of a sensitive string or number text (any case; see the class
   * comment) replaced, and a cut-off prefix of one before a final `…`. Commitments already in the
   * text are kept as they are.
   */
  text(s: string): string {
    if (this.insideRe === null) return s;
    const out = s.replace(this.insideRe, (...m: unknown[]) => {
      if (m[1] !== undefined) return m[0] as string;
      for (let g = 2; g < this.inside.length + 2; g++) if (m[g] !== undefined) return this.inside[g - 2]!.commitment;
      return m[0] as string;
    });
    return out.includes('…') || out.includes('...') ? this.cutOffs(out) : out;
  }

  /**
   * Cut-off copies: before every `…` or `...` (how messages and explanations clip long text), the
   * longest tail of 4 or more characters that is a prefix of a sensitive text (any case) becomes
   * its commitment. Each needle is scanned with its prefix function (Knuth–Morris–Pratt), so a
   * text costs its length times the number of needles.
   */
  private cutOffs(s: string): string {
    let out = '';
    let from = 0;
    for (const m of s.matchAll(CUT_MARK)) {
      const at = m.index;
      out += this.cutTail(s.slice(from, at)) + m[0];
      from = at + m[0].length;
    }
    return out + s.slice(from);
  }

  private cutTail(head: string): string {
    if (head.length < MIN_SUBSTRING) return head;
    // A commitment (or the clipped start of one) at the end is not a copy of anything.
    const open = head.lastIndexOf(COMMITMENT_PREFIX);
    const fixedUpTo = open < 0 ? 0 : Math.min(head.length, open + COMMITMENT_PREFIX.length + 64);
    let best: { k: number; commitment: string } | null = null;
    for (const n of this.prefixes) {
      const tail = head.slice(Math.max(fixedUpTo, head.length - n.lower.length + 1)).toLowerCase();
      if (tail.length !== Math.min(head.length - fixedUpTo, n.lower.length - 1)) continue; // case mapping changed a length
      let k = 0;
      for (let i = 0; i < tail.length; i++) {
        const ch = tail[i];
        while (k > 0 && (k === n.lower.length || n.lower[k] !== ch)) k = n.fail[k - 1]!;
        if (n.lower[k] === ch) k++;
      }
      if (k >= MIN_SUBSTRING && (best === null || k > best.k)) best = { k, commitment: n.commitment };
    }
    return best ? head.slice(0, head.length - best.k) + best.commitment : head;
  }

  /**
   * A model's raw answer: `text`, unless the answer is JSON whose redacted text would not parse to
   * the redacted answer (two keys that redact alike would merge into one, a short value that `text`
   * leaves in place, a match that spans JSON syntax); then the JSON text of the redacted answer
   * (`value`). So the raw answer holds no more than the output, and a replay that parses the
   * recorded raw answer gets the recorded output.
   */
  raw(s: string): string {
    const t = this.text(s);
    let parsed: JsonValue;
    try {
      // The strict reader, as the output check reads answers (depth limit, no duplicate names).
      parsed = parseJsonText(stripFence(s)) as JsonValue;
    } catch {
      return t;
    }
    const want = this.value(parsed);
    if (want === parsed) return t;
    try {
      if (canonicalJson(parseJsonText(stripFence(t)) as JsonValue) === canonicalJson(want)) return t;
    } catch {
      // The redacted text is no JSON any more: fall through to the redacted answer's JSON text.
    }
    return JSON.stringify(want);
  }

  /**
   * The inverse of `value` for recorded results: commitments written in place of a value (whole,
   * or inside a string or key) become the value again, so a replay or a recovery that holds the
   * vault's values feeds the machine what the live run saw, and writes the same redacted events
   * again. Lossy where the redaction was: a copy in another letter case comes back in the vault's
   * spelling, and a key told apart by `#2` keeps its suffix.
   */
  reveal(v: JsonValue): JsonValue {
    if (this.byCommitment.size === 0) return v;
    if (typeof v === 'string') {
      const whole = this.byCommitment.get(v);
      return whole !== undefined ? whole : this.revealText(v);
    }
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((e) => this.reveal(e));
    return Object.fromEntries(Object.keys(v).map((k) => [this.revealText(k), this.reveal(v[k]!)])) as JsonValue;
  }

  /** Commitments inside a string turned back into the text of their string or number. */
  private revealText(s: string, escaped = false): string {
    if (!s.includes(COMMITMENT_PREFIX)) return s;
    let out = s;
    for (const [c, value] of this.byCommitment) {
      if ((typeof value !== 'string' && typeof value !== 'number') || !out.includes(c)) continue;
      const text = typeof value === 'string' ? value : canonicalJson(value);
      out = out.split(c).join(escaped ? JSON.stringify(text).slice(1, -1) : text);
    }
    return out;
  }

  /**
   * A recorded raw answer revealed: in an answer that is JSON, a commitment stands inside a JSON
   * string, so the value goes back in its JSON-escaped form and the answer still parses. (A number
   * that `raw` replaced comes back as a string of its digits: the commitment was a string.)
   */
  private revealRaw(s: string): string {
    if (!s.includes(COMMITMENT_PREFIX)) return s;
    try {
      parseJsonText(stripFence(s));
    } catch {
      return this.revealText(s);
    }
    return this.revealText(s, true);
  }

  /** A recorded effect result with its commitments revealed (see `reveal`). */
  revealResult(r: EffectResult): EffectResult {
    if (this.byCommitment.size === 0) return r;
    if (!r.ok) return { ...r, error: { ...r.error, message: this.revealText(r.error.message) } };
    const out: EffectResult = { ...r };
    if (r.raw !== undefined) out.raw = this.revealRaw(r.raw);
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
      const raw = e.raw === undefined ? undefined : r.raw(e.raw);
      const fallbacks = msgs(e.fallbacks);
      return output === e.output && raw === e.raw && fallbacks === e.fallbacks ? e : { ...e, output, raw, fallbacks };
    }
    case 'step_failed': {
      const raw = e.raw === undefined ? undefined : r.raw(e.raw);
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
