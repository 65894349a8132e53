/**
 * Effect timeouts without a timer per effect: in-flight effects register themselves here and one
 * shared interval fires the expired ones. A timer pair per call was a visible share of a fast
 * step; this costs an array push. Resolution is TICK_MS.
 *
 * The interval keeps the process alive while any deadline is pending (it is cleared once none
 * is): an effect whose promise never settles and holds nothing else open (a scripted
 * `{ timeout: true }`, a tool returning `new Promise(() => {})`) would otherwise let Node exit
 * before its timeout fired, with the run left `running` and nothing reported (issue 11).
 *
 * The registered object is the effect's own in-flight record (effects.ts), not a closure, so a
 * deadline allocates nothing of its own.
 */
const TICK_MS = 5;

export interface Deadline {
  /** performance.now() reading at which it fires. */
  readonly at: number;
  /** Set once the effect settled (or fired): the sweep drops it without calling fire. */
  readonly done: boolean;
  /** Called at most once, when `at` has passed and `done` is still false. */
  fire(): void;
}

let pending: Deadline[] = [];
let interval: ReturnType<typeof setInterval> | undefined;
/**
 * Runs whose effects settle in microtasks (in-memory tools and models) never yield to the timer,
 * so settled entries would pile up until the next sweep, each keeping its effect's request alive
 * and promoted by every minor GC. The list is compacted in place whenever it has doubled since
 * the last compaction, which keeps it within twice the live entries at O(1) amortized cost.
 */
const MIN_COMPACT = 1024;
let compactAt = MIN_COMPACT;
let sweeping = false;

function compact(): void {
  let n = 0;
  for (const e of pending) if (!e.done) pending[n++] = e;
  pending.length = n;
  compactAt = Math.max(MIN_COMPACT, 2 * n);
}

function sweep(): void {
  const now = performance.now();
  const keep: Deadline[] = [];
  sweeping = true;
  try {
    for (const e of pending) {
      if (e.done) continue;
      if (e.at <= now) e.fire();
      else keep.push(e);
    }
  } finally {
    sweeping = false;
  }
  // Deadlines registered by a fire callback are pushed onto the array being iterated, so the
  // loop above sees them and they are kept too.
  pending = keep;
  compactAt = Math.max(MIN_COMPACT, 2 * keep.length);
  if (pending.length === 0 && interval !== undefined) {
    clearInterval(interval);
    interval = undefined;
  }
}

/** Watch `d`: its `fire()` runs once `d.at` has passed, unless `d.done` is set first. `ms`: how far off `at` is. */
export function watchDeadline(d: Deadline, ms: number): void {
  if (pending.length >= compactAt && !sweeping) compact();
  pending.push(d);
  if (interval === undefined) {
    interval = setInterval(sweep, Math.min(TICK_MS, Math.max(1, ms)));
  }
}
