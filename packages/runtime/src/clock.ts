import { randomBytes, randomUUID } from 'node:crypto';
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
  /** A salt for a vault commitment (docs/privacy.md); 128 random bits when the source has none. */
  salt?(): string;
}

export const randomSalt = (): string => randomBytes(16).toString('hex');

export const randomIds: IdSource = { runId: () => `run-${randomUUID()}`, salt: randomSalt };

/** Run ids derived from what the run commits to, plus a counter: reproducible, still unique per process. */
export class SeededIds implements IdSource {
  private n = 0;
  private salts = 0;
  constructor(
    private readonly hasher: Hasher,
    private readonly seed = 'nano-vm',
  ) {}
  /** Reproducible salts, so --deterministic bundles stay byte-identical: never use them for real personal data. */
  salt(): string {
    return hashJson(this.hasher, [this.seed, 'salt', this.salts++]).slice(0, 32);
  }
  runId(s: { programHash: string; inputHash: string }): string {
    return `run-${hashJson(this.hasher, [this.seed, s.programHash, s.inputHash, this.n++]).slice(0, 24)}`;
  }
}
