/**
 * Effect timeouts without a timer per effect: in-flight effects register a deadline here and one
 * shared, unref'd interval fires the expired ones. A timer pair per call was a visible share of a
 * fast step; this costs a Set insert and delete. Resolution is TICK_MS.
 */
const TICK_MS = 5;

interface Entry {
  at: number;
  fire: () => void;
}

const pending = new Set<Entry>();
let interval: ReturnType<typeof setInterval> | undefined;

function sweep(): void {
  const now = performance.now();
  for (const e of pending) {
    if (e.at <= now) {
      pending.delete(e);
      e.fire();
    }
  }
  if (pending.size === 0 && interval !== undefined) {
    clearInterval(interval);
    interval = undefined;
  }
}

/** Call `fire` once `ms` have passed, unless the returned cancel function runs first. */
export function deadline(ms: number, fire: () => void): () => void {
  const e: Entry = { at: performance.now() + ms, fire };
  pending.add(e);
  if (interval === undefined) {
    interval = setInterval(sweep, Math.min(TICK_MS, Math.max(1, ms)));
    interval.unref?.();
  }
  return () => {
    pending.delete(e);
  };
}
