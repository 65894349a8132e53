/**
 * verify(bundle): recompute the chain and the receipt from the bundle alone and name the first
 * event that does not hold, and why. Pure: it needs only a Hasher.
 *
 * It reads exactly the formats of docs/trace-format.md (v1). Anything it does not know (another
 * bundle, program or policy format string, an event type) fails with a code, never passes
 * unchecked: a later version's meaning cannot be verified by rules written before it.
 */
import { canonicalJson } from './canonicalJson.js';
import { eventHash } from './chain.js';
import { ADMIN_EVENT_TYPES, BUNDLE_FORMAT, EVENT_TYPES, type TraceEvent } from './events.js';
import { hashJson, ZERO_HASH, type Hasher } from './hash.js';
import { POLICY_FORMAT } from './policy.js';
import { firstPolicyChange } from './policyGate.js';
import { PROGRAM_FORMAT } from './program.js';
import { computeReceipt } from './receipt.js';
import { checkValueLimits, MAX_BUNDLE_BYTES, MAX_DOCUMENT_DEPTH } from './limits.js';

export type VerifyCode =
  | 'E_BUNDLE_FORMAT'
  | 'E_NO_GENESIS'
  | 'E_EVENT_SHAPE'
  | 'E_CHAIN_SEQ'
  | 'E_CHAIN_PREV'
  | 'E_CHAIN_HASH'
  | 'E_GENESIS_PROGRAM'
  | 'E_GENESIS_POLICY'
  | 'E_GENESIS_INPUT'
  | 'E_POLICY_CHANGED'
  | 'E_RECEIPT_MISMATCH';

export type VerifyResult =
  | { ok: true; event_count: number; head_hash: string }
  | { ok: false; code: VerifyCode; first_bad_seq: number | null; reason: string };

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const HEX64 = /^[0-9a-f]{64}$/;
const BUNDLE_KEYS = ['format', 'program', 'policy', 'input', 'events', 'receipt'];

export function verifyBundle(bundle: unknown, hasher: Hasher): VerifyResult {
  const bad = (code: VerifyCode, first_bad_seq: number | null, reason: string): VerifyResult => ({
    ok: false,
    code,
    first_bad_seq,
    reason,
  });
  if (!isObj(bundle)) return bad('E_BUNDLE_FORMAT', null, 'a bundle must be a JSON object');
  // Before anything below walks it recursively (a file is held to the same limits when it is read).
  try {
    checkValueLimits(bundle, 'the bundle', MAX_DOCUMENT_DEPTH, MAX_BUNDLE_BYTES);
  } catch (e) {
    return bad('E_BUNDLE_FORMAT', null, (e as Error).message);
  }
  if (bundle.format !== BUNDLE_FORMAT)
    return bad(
      'E_BUNDLE_FORMAT',
      null,
      typeof bundle.format === 'string' && bundle.format.startsWith('nano-vm.bundle/')
        ? `this verifier reads ${BUNDLE_FORMAT}; ${JSON.stringify(bundle.format)} is another version of the format (verify it with a nano-vm that reads it)`
        : `format must be "${BUNDLE_FORMAT}", got ${JSON.stringify(bundle.format)}`,
    );
  // Exactly these members: anything else would be unhashed content riding along with the bundle.
  for (const k of BUNDLE_KEYS) if (!(k in bundle)) return bad('E_BUNDLE_FORMAT', null, `missing "${k}"`);
  for (const k of Object.keys(bundle))
    if (!BUNDLE_KEYS.includes(k)) return bad('E_BUNDLE_FORMAT', null, `unknown member "${k}"`);
  const events = bundle.events;
  if (!Array.isArray(events) || events.length === 0)
    return bad('E_NO_GENESIS', null, 'events must be a non-empty array');

  let prev = ZERO_HASH;
  let finished = false;
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as unknown;
    if (!isObj(e) || typeof e.type !== 'string' || !EVENT_TYPES.includes(e.type as TraceEvent['type']))
      return bad(
        'E_EVENT_SHAPE',
        i,
        `event at index ${i} is not a known event (type ${isObj(e) ? JSON.stringify(e.type) : typeof e})`,
      );
    if (i === 0 && e.type !== 'run_started')
      return bad('E_NO_GENESIS', 0, `the first event must be run_started, got ${e.type}`);
    if (i > 0 && e.type === 'run_started') return bad('E_EVENT_SHAPE', i, 'run_started may only be the first event');
    // Erasure events are appended to finished runs only; nothing else follows run_finished.
    const admin = ADMIN_EVENT_TYPES.includes(e.type as TraceEvent['type']);
    if (admin !== finished)
      return bad(
        'E_EVENT_SHAPE',
        i,
        admin
          ? `${e.type} may only follow run_finished`
          : `${e.type} after run_finished (only erasure events may follow it)`,
      );
    if (e.type === 'run_finished') finished = true;
    if (e.seq !== i)
      return bad(
        'E_CHAIN_SEQ',
        i,
        `event at index ${i} has seq ${JSON.stringify(e.seq)}; seq must be contiguous from 0`,
      );
    if (e.prev_hash !== prev)
      return bad(
        'E_CHAIN_PREV',
        i,
        `prev_hash ${String(e.prev_hash).slice(0, 12)}… does not equal the hash of event ${i - 1} (${prev.slice(0, 12)}…)`,
      );
    if (typeof e.hash !== 'string' || !HEX64.test(e.hash))
      return bad('E_EVENT_SHAPE', i, 'hash must be 64 lowercase hex digits');
    let h: string;
    try {
      h = eventHash(hasher, e as unknown as TraceEvent);
    } catch (err) {
      return bad('E_EVENT_SHAPE', i, `event is not canonicalizable JSON: ${(err as Error).message}`);
    }
    if (h !== e.hash)
      return bad(
        'E_CHAIN_HASH',
        i,
        `content of event ${i} (${e.type}) does not match its hash: recomputed ${h.slice(0, 12)}…, recorded ${e.hash.slice(0, 12)}…`,
      );
    prev = e.hash;
  }

  const g = events[0] as Record<string, unknown>;
  const commit = (code: VerifyCode, field: string, what: string, value: unknown): VerifyResult | null => {
    let h: string;
    try {
      h = hashJson(hasher, value);
    } catch {
      return bad(code, 0, `bundle ${what} is not JSON`);
    }
    return h === g[field] ? null : bad(code, 0, `genesis ${field} does not match the bundle's ${what}`);
  };
  const mismatch =
    commit('E_GENESIS_PROGRAM', 'program_hash', 'program', bundle.program) ??
    commit('E_GENESIS_POLICY', 'policy_hash', 'policy', bundle.policy) ??
    commit('E_GENESIS_INPUT', 'input_hash', 'input', bundle.input);
  if (mismatch) return mismatch;
  // Checked once the hashes hold, so an edited format string reads as tampering (above), and a
  // consistent bundle that embeds another version's program or policy is refused here.
  const formatOf = (v: unknown): unknown => (isObj(v) ? v.format : undefined);
  if (formatOf(bundle.program) !== PROGRAM_FORMAT)
    return bad(
      'E_BUNDLE_FORMAT',
      null,
      `a ${BUNDLE_FORMAT} bundle holds a ${PROGRAM_FORMAT} program; its program's format is ${JSON.stringify(formatOf(bundle.program))}`,
    );
  if (bundle.policy !== null && formatOf(bundle.policy) !== POLICY_FORMAT)
    return bad(
      'E_BUNDLE_FORMAT',
      null,
      `a ${BUNDLE_FORMAT} bundle holds a ${POLICY_FORMAT} policy or null; its policy's format is ${JSON.stringify(formatOf(bundle.policy))}`,
    );
  const changed = firstPolicyChange(events as TraceEvent[]);
  if (changed) return bad('E_POLICY_CHANGED', changed.seq, changed.reason);

  let recomputed: unknown;
  try {
    recomputed = computeReceipt(events as TraceEvent[]);
  } catch (err) {
    return bad('E_EVENT_SHAPE', null, `receipt cannot be computed: ${(err as Error).message}`);
  }
  const field = firstDifference(recomputed, bundle.receipt);
  if (field !== null)
    return bad(
      'E_RECEIPT_MISMATCH',
      null,
      `receipt field ${field || '(whole)'} differs from the receipt recomputed from the events`,
    );
  return { ok: true, event_count: events.length, head_hash: prev };
}

/** JSON-pointer-ish path of the first difference, or null when equal. */
function firstDifference(a: unknown, b: unknown, path = ''): string | null {
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const d = firstDifference(a[k], b[k], `${path}/${k}`);
      if (d !== null) return d;
    }
    return null;
  }
  let ca: string, cb: string;
  try {
    ca = canonicalJson(a);
    cb = canonicalJson(b);
  } catch {
    return path;
  }
  return ca === cb ? null : path;
}
