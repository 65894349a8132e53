import { canonicalJson } from './canonicalJson.js';
import { eventText } from './eventText.js';
import type { EventBody, TraceEvent } from './events.js';
import { ZERO_HASH, type Hasher } from './hash.js';

/** hash_i = SHA-256(prev_hash ‖ JCS(event_i without `hash`)). */
export function eventHash(hasher: Hasher, event: Omit<TraceEvent, 'hash'> | TraceEvent): string {
  const { hash: _omit, ...rest } = event as TraceEvent;
  return hasher.sha256Hex(rest.prev_hash + canonicalJson(rest));
}

/**
 * The append-only hash chain of one run. Appending is O(1) in the length of the trace: only the
 * head hash is carried forward. `onAppend` lets a host persist each event as it is made.
 */
export class TraceChain {
  private head: string;
  private nextSeq: number;
  readonly events: TraceEvent[];

  constructor(
    private readonly hasher: Hasher,
    opts: { events?: TraceEvent[]; keep?: boolean } = {},
  ) {
    const prior = opts.events ?? [];
    this.events = opts.keep === false ? [] : prior.slice();
    const last = prior[prior.length - 1];
    this.head = last ? last.hash : ZERO_HASH;
    this.nextSeq = last ? last.seq + 1 : 0;
  }

  get headHash(): string {
    return this.head;
  }

  get length(): number {
    return this.nextSeq;
  }

  /**
   * Completes the event in place (seq, ts, prev_hash, then hash), hashes it and appends it; the
   * caller hands over an object built by eventBodies.ts. `outputText` is the canonical text of
   * its `output` when the caller already computed it.
   */
  append(body: EventBody | TraceEvent, ts: string, outputText?: string): TraceEvent {
    const event = body as TraceEvent;
    event.seq = this.nextSeq;
    event.ts = ts;
    event.prev_hash = this.head;
    const hash = this.hasher.sha256Hex(this.head + eventText(event, outputText));
    event.hash = hash;
    this.head = hash;
    this.nextSeq++;
    this.events.push(event);
    return event;
  }
}
