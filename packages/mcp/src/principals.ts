/**
 * Who calls the server: a principal is a name with scopes, found by the SHA-256 of its bearer
 * token (tokens themselves are never stored). Scopes: `read`, `run`, `approve:<role>`, `erase`,
 * `admin`. The role that resumes a wait comes from here, never from a tool argument.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export interface Principal {
  name: string;
  scopes: string[];
}

export type Scope = 'read' | 'run' | 'erase' | 'admin' | `approve:${string}`;

export const SCOPE_PATTERN = /^(read|run|erase|admin|approve:[A-Za-z0-9_.-]+)$/;

export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.includes(scope);
}

/** The configured principal whose token hash matches, compared in constant time; undefined when none does. */
export function principalForToken<P extends Principal & { token_sha256: string }>(
  token: string,
  principals: readonly P[],
): P | undefined {
  const digest = createHash('sha256').update(token, 'utf8').digest();
  let found: P | undefined;
  for (const p of principals) {
    // Every entry is compared, so the time taken does not tell which one matched.
    if (timingSafeEqual(digest, Buffer.from(p.token_sha256, 'hex')) && !found) found = p;
  }
  return found;
}

const MAX_BUCKETS = 10_000;

/** A token bucket per principal: `perMinute` calls a minute, bursts up to the same number. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one call from the principal's bucket; false (and nothing taken) when it is empty. */
  take(principal: string): boolean {
    const t = this.now();
    let b = this.buckets.get(principal);
    if (!b) {
      // Keyed by principal (few) or by address for refusals (many): the map is bounded.
      if (this.buckets.size >= MAX_BUCKETS) this.buckets.clear();
      b = { tokens: this.perMinute, at: t };
    }
    b.tokens = Math.min(this.perMinute, b.tokens + ((t - b.at) * this.perMinute) / 60_000);
    b.at = t;
    this.buckets.set(principal, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Seconds until the principal's next call is allowed. */
  retryAfter(principal: string): number {
    const b = this.buckets.get(principal);
    if (!b || b.tokens >= 1) return 0;
    return Math.ceil(((1 - b.tokens) * 60) / this.perMinute);
  }
}
