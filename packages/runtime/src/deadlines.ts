/**
 * Effect timeouts without a timer per effect: in-flight effects register a deadline here and one
 * shared, unref'd interval fires the expired ones. A timer pair per call was a visible share of a
 * fast step; this costs an array push and a flag. Resolution is TICK_MS.
 */
const TICK_MS = 5;

interface Entry {
  at: number;
  fire: () => void;
  done: boolean;
}

let pending: Entry[] = [];
let interval: ReturnType<typeof setInterval> | undefined;

function sweep(): void {
  const now = performance.now();
  const keep: Entry[] = [];
  for (const e of pending) {
    if (e.done) continue;
    if (e.at <= now) {
      e.done = true;
      e.fire();
    } else keep.push(e);
  }
  // Deadlines registered by a fire callback are pushed onto the array being iterated, so the
  // loop above sees them and they are kept too.
  pending = keep;
  if (pending.length === 0 && interval !== undefined) {
    clearInterval(interval);
    interval = undefined;
  }
}

/** Call `fire` once `ms` have passed, unless the returned cancel function runs first. */
export function deadline(ms: number, fire: () => void): () => void {
  const e: Entry = { at: performance.now() + ms, fire, done: false };
  pending.push(e);
  if (interval === undefined) {
    interval = setInterval(sweep, Math.min(TICK_MS, Math.max(1, ms)));
    interval.unref?.();
  }
  return () => {
    e.done = true;
  };
}
