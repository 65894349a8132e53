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

/** Serialized form: stable key order from construction, two-space indent, trailing newline. */
export function serializeBundle(b: Bundle): string {
  return JSON.stringify(b, null, 2) + '\n';
}
