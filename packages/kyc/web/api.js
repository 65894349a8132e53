// The HTTP API of the KYC server (packages/kyc/API.md): JSON in and out, errors as
// {error: {code, message, path}}, which arrive here as thrown ApiError values.
export class ApiError extends Error {
  constructor(status, body) {
    const e = body && typeof body === 'object' && body.error ? body.error : null;
    super(e ? `${e.code}: ${e.message}` : `HTTP ${status}`);
    this.status = status;
    this.code = e ? e.code : `HTTP_${status}`;
    this.path = e ? e.path : undefined;
  }
}

async function call(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const api = {
  meta: () => call('GET', '/api/meta'),
  runs: () => call('GET', '/api/runs'),
  run: (id) => call('GET', `/api/runs/${encodeURIComponent(id)}`),
  start: (body) => call('POST', '/api/runs', body),
  verify: (id) => call('GET', `/api/runs/${encodeURIComponent(id)}/verify`),
  bundleUrl: (id) => `/api/runs/${encodeURIComponent(id)}/bundle`,
  bundle: (id) => call('GET', `/api/runs/${encodeURIComponent(id)}/bundle`),
  inbox: () => call('GET', '/api/inbox'),
  approve: (id, reviewer, decision) =>
    call('POST', `/api/runs/${encodeURIComponent(id)}/approve`, { reviewer, decision }),
  analytics: (runs) => call('GET', `/api/analytics?runs=${encodeURIComponent(runs)}`),
};

/** Server-sent events: `trace` (one per appended event) and `status` (a run's status changed). */
export function subscribe(onTrace, onStatus, onState) {
  const es = new EventSource('/api/stream');
  const parse = (fn) => (ev) => {
    try {
      fn(JSON.parse(ev.data));
    } catch {
      /* a malformed frame is dropped; the run's own record is fetched from the API anyway */
    }
  };
  es.addEventListener('trace', parse(onTrace));
  es.addEventListener('status', parse(onStatus));
  es.onopen = () => onState('live');
  es.onerror = () => onState(es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
  return () => es.close();
}
