/**
 * Test helpers written from the documents alone, shared by the kernel's and the end-to-end tests:
 * RFC 8785 canonical JSON and SHA-256 as docs/trace-format.md §2 states them (not the kernel's
 * code, so a test comparing the two can fail), and the attacker of docs/trace-format.md §6 and
 * §10, who edits a bundle and recomputes every commitment, the chain and the receipt with the
 * kernel's own functions.
 */
import { createHash } from 'node:crypto';
import {
  computeReceipt,
  eventHash,
  hashJson,
  pureHasher,
  ZERO_HASH,
  type Bundle,
  type TraceEvent,
} from '@nano-vm/kernel';

/** SHA-256 of bytes (a string: its UTF-8 bytes), lowercase hex. */
export const sha = (s: string | Uint8Array): string =>
  createHash('sha256')
    .update(typeof s === 'string' ? Buffer.from(s, 'utf8') : s)
    .digest('hex');

/** Canonical JSON for JSON values (RFC 8785: members sorted by code unit, no white space). */
export function jcs(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(jcs).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${jcs(o[k])}`)
    .join(',')}}`;
}

/**
 * What an attacker with the kernel does: edit a copy of the bundle, then recompute the genesis
 * commitments to program, policy and input, every policy_hash, the chain and the receipt. The
 * result verifies (the chain is consistent); only a signature or a recorded head hash tells.
 */
export function rechain(b: Bundle, edit: (b: Bundle) => void): Bundle {
  const out = JSON.parse(JSON.stringify(b)) as Bundle;
  edit(out);
  const g = out.events[0] as TraceEvent & Record<string, unknown>;
  const policyHash = hashJson(pureHasher, out.policy);
  g.program_hash = hashJson(pureHasher, out.program);
  g.input_hash = hashJson(pureHasher, out.input);
  let prev = ZERO_HASH;
  for (const e of out.events as (TraceEvent & Record<string, unknown>)[]) {
    if ('policy_hash' in e) e.policy_hash = policyHash;
    e.prev_hash = prev;
    e.hash = eventHash(pureHasher, e);
    prev = e.hash;
  }
  out.receipt = computeReceipt(out.events);
  return out;
}
