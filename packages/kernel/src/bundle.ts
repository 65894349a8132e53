import { BUNDLE_FORMAT, type TraceEvent } from './events.js';
import type { Program } from './program.js';
import type { Receipt } from './receipt.js';

/** Everything needed to verify and replay a run offline (docs/trace-format.md). */
export interface Bundle {
  format: typeof BUNDLE_FORMAT;
  program: Program;
  /** The policy snapshot in force (null when the run had none). */
  policy: unknown;
  input: unknown;
  events: TraceEvent[];
  receipt: Receipt;
}

/**
 * Serialized form: two-space indent, trailing newline, and each event's members in a reading
 * order (seq, type, ts, body, prev_hash, hash). Key order never affects a hash (JCS sorts), so
 * this is presentation only; identical bundles serialize to identical bytes.
 */
export function serializeBundle(b: Bundle): string {
  const events = b.events.map(({ seq, type, ts, prev_hash, hash, ...body }) => ({
    seq,
    type,
    ts,
    ...body,
    prev_hash,
    hash,
  }));
  return JSON.stringify({ ...b, events }, null, 2) + '\n';
}
