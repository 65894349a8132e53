/**
 * When and how long a provider adapter waits before it tries a transient failure again.
 * Sleep and randomness are injected so tests are fast and deterministic; the default sleep is
 * abortable, so a step's timeout also ends a backoff wait.
 */

export interface RetryPolicy {
  /** Attempts per model call, the first included (1 = no retries). */
  maxAttempts: number;
  /** Backoff before retry n is baseDelayMs * 2^(n-1), capped at maxDelayMs, with jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A Retry-After longer than this is not waited for: the call fails at once instead. */
  maxRetryAfterMs: number;
  /** One attempt (request and response body) that takes longer is aborted and counts as transient. */
  attemptTimeoutMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 3,
  baseDelayMs: 500,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 60_000,
  attemptTimeoutMs: 60_000,
};

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export const abortableSleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** Exponential backoff with "equal jitter": between half and all of the capped delay. */
export function backoffMs(policy: RetryPolicy, retry: number, random: () => number): number {
  const capped = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.round(capped / 2 + (capped / 2) * random());
}

/**
 * The wait a response asks for, in ms: `retry-after-ms` (OpenAI), else `Retry-After` as seconds
 * or an HTTP date (RFC 9110 §10.2.3). Undefined when absent or unreadable.
 */
export function retryAfterMs(headers: Headers, now: () => number = Date.now): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const v = headers.get('retry-after')?.trim();
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.ceil(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now());
}
