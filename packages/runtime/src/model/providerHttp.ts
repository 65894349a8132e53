/**
 * One model call over HTTP: POST a JSON body, retry transient failures (429, 5xx, network errors,
 * an attempt that takes too long) with backoff, and turn every other outcome into a ModelError
 * with a stable code. Shared by the provider adapters: they build bodies and read answers, and
 * providerAnswer makes what is recorded of an answer (the model label, usage and cost).
 *
 * The caller's AbortSignal (the step's timeout) aborts the in-flight request and any backoff
 * wait; such a call never retries and never falls through to another model.
 */
import type { Usage } from '@nano-vm/kernel';
import { ModelError, type ModelAnswer } from './port.js';
import { costFromTable, type PriceTable } from './priceTable.js';
import {
  abortableSleep,
  backoffMs,
  DEFAULT_RETRY_POLICY,
  retryAfterMs,
  type RetryPolicy,
  type Sleep,
} from './retryPolicy.js';

/** What the adapters need from the outside world; tests replace any of it. */
export interface HttpDeps {
  fetch: typeof fetch;
  sleep: Sleep;
  /** In [0, 1): jitter for backoff. */
  random: () => number;
  /** Milliseconds since the epoch, for Retry-After given as an HTTP date. */
  now: () => number;
  policy: RetryPolicy;
}

export const defaultHttpDeps = (): HttpDeps => ({
  fetch: globalThis.fetch,
  sleep: abortableSleep,
  random: Math.random,
  now: Date.now,
  policy: DEFAULT_RETRY_POLICY,
});

export interface ProviderRequest {
  /** Who is called, for messages: `openai:gpt-4o-mini`. */
  label: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
  signal: AbortSignal;
  /** Named in the message when the provider rejects the credentials (e.g. OPENAI_API_KEY). */
  keyEnv: string;
  /** Named in the message when the endpoint cannot be reached (e.g. OPENAI_BASE_URL). */
  baseUrlEnv: string;
}

export interface ProviderResponse {
  /** The parsed JSON body of the successful response. */
  body: unknown;
}

/** The URL of an endpoint under a base URL that may end in slashes. */
export const endpointUrl = (baseUrl: string, path: string): string => `${baseUrl.replace(/\/+$/, '')}${path}`;

/** What an adapter read from a provider's answer. */
export interface ProviderReply {
  raw: string;
  /** The model the response names, if any. */
  model: unknown;
  usage?: Usage;
  /** What the provider says the call cost, in USD. */
  cost?: number;
}

/**
 * The answer as recorded: labelled with the model that answered (the one the response names,
 * else the one called), and with usage, its cost — the provider's own figure, else the price table's.
 */
export function providerAnswer(
  provider: string,
  called: { model: string; prices?: PriceTable },
  reply: ProviderReply,
): ModelAnswer {
  const answer: ModelAnswer = {
    raw: reply.raw,
    model: `${provider}:${typeof reply.model === 'string' && reply.model ? reply.model : called.model}`,
  };
  if (reply.usage) {
    answer.usage = reply.usage;
    const cost = reply.cost ?? costFromTable(called.prices, provider, called.model, reply.usage);
    if (cost !== undefined) answer.cost_usd = cost;
  }
  return answer;
}

/** Codes of failures that a later attempt may not repeat. */
const TRANSIENT = new Set(['E_MODEL_RATE_LIMITED', 'E_MODEL_UNAVAILABLE', 'E_MODEL_UNREACHABLE', 'E_MODEL_TIMEOUT']);

export async function postWithRetries(req: ProviderRequest, deps: HttpDeps): Promise<ProviderResponse> {
  const { policy } = deps;
  const bodyText = JSON.stringify(req.body);
  let last: ModelError | undefined;
  for (let attempt = 1; attempt <= policy.maxAttempts; attempt++) {
    if (req.signal.aborted) throw cancelled(req);
    const outcome = await attemptOnce(req, bodyText, deps);
    if ('body' in outcome) return { body: outcome.body };
    last = outcome.error;
    if (!TRANSIENT.has(last.code) || attempt === policy.maxAttempts) break;
    let wait = backoffMs(policy, attempt, deps.random);
    if (outcome.retryAfterMs !== undefined) {
      if (outcome.retryAfterMs > policy.maxRetryAfterMs)
        throw new ModelError(
          last.code,
          `${last.message}; the provider asks to retry after ${Math.ceil(outcome.retryAfterMs / 1000)} s, longer than the ${policy.maxRetryAfterMs / 1000} s nano-vm waits`,
        );
      wait = outcome.retryAfterMs;
    }
    try {
      await deps.sleep(wait, req.signal);
    } catch {
      throw cancelled(req);
    }
  }
  const tries =
    policy.maxAttempts > 1 && TRANSIENT.has(last!.code) ? ` (gave up after ${policy.maxAttempts} attempts)` : '';
  throw new ModelError(last!.code, `${last!.message}${tries}`);
}

type AttemptOutcome = { body: unknown } | { error: ModelError; retryAfterMs?: number };

async function attemptOnce(req: ProviderRequest, bodyText: string, deps: HttpDeps): Promise<AttemptOutcome> {
  const ac = new AbortController();
  let timedOut = false;
  const onAbort = () => ac.abort(req.signal.reason);
  req.signal.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort(new ModelError('E_MODEL_TIMEOUT', `${req.label}: attempt timed out`));
  }, deps.policy.attemptTimeoutMs);
  let status: number;
  let headers: Headers;
  let text: string;
  try {
    const res = await deps.fetch(req.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...req.headers },
      body: bodyText,
      signal: ac.signal,
    });
    status = res.status;
    headers = res.headers;
    text = await res.text();
  } catch (e) {
    if (req.signal.aborted) throw cancelled(req);
    if (timedOut)
      return {
        error: new ModelError(
          'E_MODEL_TIMEOUT',
          `${req.label}: no complete response within ${deps.policy.attemptTimeoutMs} ms`,
        ),
      };
    return {
      error: new ModelError(
        'E_MODEL_UNREACHABLE',
        `${req.label}: cannot reach ${req.url} (${networkReason(e)}); check ${req.baseUrlEnv} and the network`,
      ),
    };
  } finally {
    clearTimeout(timer);
    req.signal.removeEventListener('abort', onAbort);
  }

  if (status >= 200 && status < 300) {
    try {
      return { body: JSON.parse(text) as unknown };
    } catch {
      return {
        error: new ModelError(
          'E_MODEL_RESPONSE_MALFORMED',
          `${req.label}: the response body (HTTP ${status}) is not JSON: ${excerpt(text)}`,
        ),
      };
    }
  }
  const detail = providerDetail(text);
  const wait = retryAfterMs(headers, deps.now);
  const withWait = <T extends { error: ModelError }>(o: T): T & { retryAfterMs?: number } =>
    wait === undefined ? o : { ...o, retryAfterMs: wait };
  if (status === 429)
    return withWait({
      error: new ModelError('E_MODEL_RATE_LIMITED', `${req.label}: rate limited (HTTP 429${detail})`),
    });
  if (status >= 500)
    return withWait({
      error: new ModelError('E_MODEL_UNAVAILABLE', `${req.label}: the provider failed (HTTP ${status}${detail})`),
    });
  if (status === 401 || status === 403)
    return {
      error: new ModelError(
        'E_MODEL_AUTH',
        `${req.label}: the provider refused the credentials (HTTP ${status}${detail}); check ${req.keyEnv}`,
      ),
    };
  return {
    error: new ModelError(
      'E_MODEL_BAD_REQUEST',
      `${req.label}: the provider rejected the request (HTTP ${status}${detail})`,
    ),
  };
}

/** The step was cancelled (its timeout fired): report the executor's own reason. */
function cancelled(req: ProviderRequest): ModelError {
  const r: unknown = req.signal.reason;
  return r instanceof ModelError ? r : new ModelError('E_TIMEOUT', `${req.label}: the model call was cancelled`);
}

/** `: <type>: <message>` from an error body: OpenAI `{error:{message,type,code}}`, Anthropic `{type:"error",error:{type,message}}`, or `{error:"..."}` (Ollama and other compatible servers). */
function providerDetail(text: string): string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return text.trim() ? `: ${excerpt(text)}` : '';
  }
  const err = isObj(body) ? body.error : undefined;
  if (typeof err === 'string') return `: ${excerpt(err)}`;
  if (isObj(err)) {
    const kind = typeof err.type === 'string' ? err.type : typeof err.code === 'string' ? err.code : undefined;
    const msg = typeof err.message === 'string' ? err.message : undefined;
    if (kind || msg) return `: ${[kind, msg && excerpt(msg)].filter(Boolean).join(': ')}`;
  }
  return `: ${excerpt(text)}`;
}

/** Node's fetch wraps the socket error in `cause` (ECONNREFUSED, ENOTFOUND, ...). */
function networkReason(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message;
  return e instanceof Error ? e.message : String(e);
}

const excerpt = (s: string): string => {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > 300 ? `${one.slice(0, 300)}…` : one;
};

export const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
