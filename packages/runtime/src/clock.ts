import { randomUUID } from 'node:crypto';
import { hashJson, type Clock, type Hasher } from '@nano-vm/kernel';

export const systemClock: Clock = { now: () => Date.now() };

/**
 * A fixed clock for --deterministic runs: starts at a fixed instant and advances one millisecond
 * per reading, so timestamps are ordered and identical inputs give identical traces.
 */
export class FixedClock implements Clock {
  private t: number;
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }
  now(): number {
    return this.t++;
  }
}

export interface IdSource {
  runId(seed: { programHash: string; inputHash: string }): string;
}

export const randomIds: IdSource = { runId: () => `run-${randomUUID()}` };

/** Run ids derived from what the run commits to, plus a counter: reproducible, still unique per process. */
export class SeededIds implements IdSource {
  private n = 0;
  constructor(private readonly hasher: Hasher, private readonly seed = 'nano-vm') {}
  runId(s: { programHash: string; inputHash: string }): string {
    return `run-${hashJson(this.hasher, [this.seed, s.programHash, s.inputHash, this.n++]).slice(0, 24)}`;
  }
}
