/**
 * The simulator's server over real HTTP: a real server on an ephemeral port, a real SQLite store in
 * a temp dir, the real KYC/AML program. Every seeded case, user cases, bad requests (which change
 * nothing), the SSE stream, static files, and the bundles checked by the real CLI.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyBundle, type Bundle } from '@nano-vm/kernel';
import { nodeHasher, type ModelAnswer, type ModelPort, type ModelRequest } from '@nano-vm/runtime';
import { ReviewerModel, type InboxItem, type RunningServer, type RunView } from '@nano-vm/kyc';
import { call, start, tempDir } from './httpClient.js';

const ROOT = new URL('../../..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const EXAMPLE = join(ROOT, 'examples/kyc-aml');

/** Every prompt the review step was sent, to check what the model saw. */
class SpyModel implements ModelPort {
  readonly id = 'scripted:spy';
  readonly scripted = true;
  readonly prompts: string[] = [];
  private readonly inner = new ReviewerModel();
  async complete(req: ModelRequest): Promise<ModelAnswer> {
    this.prompts.push(req.prompt + JSON.stringify(req.projection));
    return this.inner.complete(req);
  }
}

let dir: string;
let server: RunningServer;
let base: string;
const spy = new SpyModel();

const post = (body: unknown) => call<RunView>(base, 'POST', '/api/runs', body);
const runCount = async () => (await call<{ runs: unknown[] }>(base, 'GET', '/api/runs')).body.runs.length;

/** fetch may not set Host; node:http may. */
function rawGet(path: string, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
    });
    req.on('error', reject);
    req.end();
  });
}

function cliVerify(bundle: string): { code: number; json: { valid: boolean; code?: string; first_bad_seq?: number } } {
  const f = join(dir, `b-${createHash('sha256').update(bundle).digest('hex').slice(0, 8)}.json`);
  writeFileSync(f, bundle);
  const r = spawnSync(process.execPath, [CLI, 'verify', f, '--json'], { encoding: 'utf8' });
  return { code: r.status ?? -1, json: JSON.parse(r.stdout) };
}

beforeAll(async () => {
  dir = tempDir('server');
  server = await start(join(dir, 'kyc.db'), { model: spy, webDir: join(dir, 'web'), assetsDir: join(dir, 'web-dist') });
  base = server.url;
});
afterAll(async () => {
  await server?.close();
});

describe('GET /api/meta', () => {
  it('describes the program, policy, model, pinned fixtures (hashes of the files), cases and injectors', async () => {
    const r = await call<{
      program: {
        id: string;
        hash: string;
        graph: { nodes: { id: string; kind: string }[]; edges: unknown[]; mermaid: string };
      };
      policy: { hash: string; text: string };
      model: { scripted: boolean; id: string };
      fixtures: Record<string, { version: string; hash: string; illustrative: boolean }>;
      cases: { id: string }[];
      injectors: { id: string; detector: string; point: string }[];
      input_schema: { required: string[] };
    }>(base, 'GET', '/api/meta');
    expect(r.status).toBe(200);
    const m = r.body;
    expect(m.program.id).toBe('kyc-aml');
    expect(m.program.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(m.program.graph.nodes.map((n) => n.id)).toContain('review');
    expect(m.program.graph.mermaid).toContain('flowchart');
    expect(m.policy.text).toBe(readFileSync(join(EXAMPLE, 'policy.yaml'), 'utf8'));
    expect(m.model).toMatchObject({ scripted: true, id: 'scripted:spy' });
    const sha = (f: string) =>
      `sha256:${createHash('sha256')
        .update(readFileSync(join(EXAMPLE, 'fixtures', f)))
        .digest('hex')}`;
    expect(m.fixtures.sanctions).toEqual({
      version: '2026-11-30.1',
      hash: sha('sanctions-pep.json'),
      illustrative: true,
    });
    expect(m.fixtures.media).toMatchObject({ hash: sha('adverse-media.json'), illustrative: true });
    expect(m.cases.map((c) => c.id)).toEqual([
      'clean_retail',
      'sanctions_exact',
      'fuzzy_match',
      'domestic_pep',
      'missing_id',
      'media_injection',
    ]);
    expect(m.injectors).toHaveLength(11);
    expect(m.input_schema.required).toEqual(['customer', 'account']);
  });
});

describe('the six seeded cases', () => {
  it('clean retail customer: APPROVED straight through, LOW risk, the chain verifies here and with the CLI', async () => {
    const r = await post({ case: 'clean_retail' });
    expect(r.status).toBe(201);
    const v = r.body;
    expect(v).toMatchObject({ status: 'completed', outcome: 'APPROVED', case: 'clean_retail', verify: { ok: true } });
    expect(v.human_receipt!.risk).toMatchObject({ band: 'LOW', score: 5 });
    expect(v.human_receipt!.factors).toEqual([{ rule: 'risk.base', points: 5, detail: 'every customer' }]);
    expect(v.human_receipt!.list_versions.screening!.version).toBe('2026-11-30.1');
    expect(v.counters).toMatchObject({ model_calls: 1, approvals: 0, blocked_actions: 0 });
    expect(v.events.map((e) => e.seq)).toEqual(v.events.map((_, i) => i));
    expect(v.events[0]!.prev_hash).toBe('0'.repeat(64));
    const b = await call(base, 'GET', `/api/runs/${v.run_id}/bundle`);
    expect(b.headers.get('content-disposition')).toBe(`attachment; filename="${v.run_id}.bundle.json"`);
    expect(verifyBundle(JSON.parse(b.text) as Bundle, nodeHasher)).toMatchObject({
      ok: true,
      head_hash: v.human_receipt!.head_hash,
    });
    expect(cliVerify(b.text)).toMatchObject({ code: 0, json: { valid: true } });
  });

  it('exact sanctions hit: POLICY_BLOCKED at the sanctions gate with zero model calls', async () => {
    const v = (await post({ case: 'sanctions_exact' })).body;
    expect(v).toMatchObject({ status: 'completed', outcome: 'POLICY_BLOCKED' });
    expect(v.counters.model_calls).toBe(0);
    expect(v.receipt!.path).toEqual([
      'collect_customer',
      'completeness_gate',
      'screen_sanctions',
      'sanctions_gate',
      'blocked_sanctions',
    ]);
    expect(v.human_receipt!.screening).toMatchObject({ match: 'confirmed', score: 1, matched_id: 'SAN-0001' });
  });

  it('fuzzy name match: a potential match scored below 1, waiting for two distinct approvers', async () => {
    const v = (await post({ case: 'fuzzy_match' })).body;
    expect(v.status).toBe('suspended');
    expect(v.human_receipt!.screening!.match).toBe('potential');
    expect(v.human_receipt!.screening!.score).toBeGreaterThanOrEqual(0.85);
    expect(v.human_receipt!.screening!.score).toBeLessThan(0.97);
    expect(v.human_receipt!.factors.map((f) => f.rule)).toContain('risk.potential_match');
    expect(v.waiting).toMatchObject({ step: 'first_approval', four_eyes: true, approvals_needed: 2 });
  });

  it('domestic PEP: HIGH risk from the policy weights, four-eyes, then APPROVED by alice and bob', async () => {
    const v = (await post({ case: 'domestic_pep' })).body;
    expect(v.human_receipt!.risk!.band).toBe('HIGH');
    expect(v.human_receipt!.factors).toContainEqual({ rule: 'risk.pep', points: 55, detail: 'on the PEP list' });
    expect(v.human_receipt!.factors.reduce((s, f) => s + f.points, 0)).toBe(v.human_receipt!.risk!.score);
    expect(v.waiting).toMatchObject({ step: 'first_approval', four_eyes: true });
    const one = await call<RunView>(base, 'POST', `/api/runs/${v.run_id}/approve`, {
      reviewer: 'alice',
      decision: 'approve',
    });
    expect(one.status).toBe(200);
    expect(one.body.waiting).toMatchObject({
      step: 'second_approval',
      excluded_reviewer: 'alice',
      approvals_needed: 1,
    });
    const inbox = (await call<{ waiting: InboxItem[] }>(base, 'GET', '/api/inbox')).body.waiting;
    expect(inbox.find((w) => w.run_id === v.run_id)).toMatchObject({
      approvals_given: [{ reviewer: 'alice', decision: 'approve' }],
    });
    const two = (
      await call<RunView>(base, 'POST', `/api/runs/${v.run_id}/approve`, { reviewer: 'bob', decision: 'approve' })
    ).body;
    expect(two).toMatchObject({ status: 'completed', outcome: 'APPROVED', verify: { ok: true } });
    expect(two.human_receipt!.reviewers.map((r) => r.reviewer)).toEqual(['alice', 'bob']);
    expect(two.counters.approve_customer_calls).toBe(1);
    const approval = two.events.find((e) => e.kind === 'step_completed' && e.step === 'record_four_eyes_approval');
    expect((approval!.body as { output: unknown }).output).toMatchObject({ reviewers: ['alice', 'bob'] });
  });

  it('a four-eyes case the first reviewer escalates ends ESCALATED; one the second reviewer rejects ends REJECTED', async () => {
    const a = (await post({ case: 'fuzzy_match' })).body;
    const escalated = (
      await call<RunView>(base, 'POST', `/api/runs/${a.run_id}/approve`, {
        reviewer: 'alice',
        decision: 'escalate',
        note: 'needs EDD',
      })
    ).body;
    expect(escalated).toMatchObject({ status: 'completed', outcome: 'ESCALATED' });
    const b = (await post({ case: 'domestic_pep' })).body;
    await call(base, 'POST', `/api/runs/${b.run_id}/approve`, { reviewer: 'alice', decision: 'approve' });
    const rejected = (
      await call<RunView>(base, 'POST', `/api/runs/${b.run_id}/approve`, { reviewer: 'bob', decision: 'reject' })
    ).body;
    expect(rejected).toMatchObject({ status: 'completed', outcome: 'REJECTED' });
    expect(rejected.counters.approve_customer_calls).toBe(0);
  });

  it('missing ID document: INSUFFICIENT_DATA at the completeness gate, before screening', async () => {
    const v = (await post({ case: 'missing_id' })).body;
    expect(v).toMatchObject({ status: 'completed', outcome: 'INSUFFICIENT_DATA' });
    expect(v.receipt!.path).toEqual(['collect_customer', 'completeness_gate', 'insufficient_data']);
    expect(v.counters).toMatchObject({ model_calls: 0, tool_calls: 1 });
  });

  it('adverse media with a prompt injection: out-of-enum answers rejected, approve_customer never called, escalated to a reviewer', async () => {
    const v = (await post({ case: 'media_injection' })).body;
    expect(v.status).toBe('suspended');
    expect(v.waiting!.step).toBe('single_approval');
    const failed = v.events.filter((e) => e.kind === 'step_failed');
    expect(failed.map((e) => (e.body as { error: { code: string } }).error.code)).toEqual([
      'E_OUTPUT_NOT_IN_ENUM',
      'E_OUTPUT_NOT_IN_ENUM',
    ]);
    expect((failed[0]!.body as { raw: string }).raw).toContain('approve_customer');
    expect(v.human_receipt!.review).toMatchObject({ answer: 'ESCALATE', fallback: true });
    expect(v.counters).toMatchObject({ rejected_outputs: 2, approve_customer_calls: 0, fallbacks: 1 });
    // A single reviewer may reject it.
    const done = (
      await call<RunView>(base, 'POST', `/api/runs/${v.run_id}/approve`, { reviewer: 'bob', decision: 'reject' })
    ).body;
    expect(done).toMatchObject({ status: 'completed', outcome: 'REJECTED' });
    expect(done.counters.approve_customer_calls).toBe(0);
  });

  it('the model never saw raw PII or governance metadata in any prompt', async () => {
    expect(spy.prompts.length).toBeGreaterThan(0);
    const seen = spy.prompts.join('\n');
    for (const c of ['clean_retail', 'fuzzy_match', 'domestic_pep', 'media_injection']) {
      const input = JSON.parse(readFileSync(join(EXAMPLE, 'inputs', `${c}.json`), 'utf8')) as {
        customer: Record<string, string>;
      };
      for (const k of ['full_name', 'email', 'date_of_birth', 'document_number'])
        expect(seen).not.toContain(input.customer[k]);
    }
    for (const word of ['run-', 'policy_hash', 'kyc-aml-policy', 'list_hash', 'sha256:'])
      expect(seen).not.toContain(word);
  });
});

describe('user-entered cases', () => {
  const input = () =>
    JSON.parse(readFileSync(join(EXAMPLE, 'inputs/clean_retail.json'), 'utf8')) as {
      customer: Record<string, unknown>;
      account: Record<string, unknown>;
    };

  it('a valid case runs like a seeded one', async () => {
    const i = input();
    i.customer.full_name = 'Maria Gonzalez';
    i.customer.residence_country = 'AE';
    const v = (await post({ input: i })).body;
    expect(v).toMatchObject({ status: 'completed', outcome: 'APPROVED', input_source: 'user', case: null });
    expect(v.human_receipt!.factors.map((f) => f.rule)).toEqual(['risk.base', 'risk.residence_medium']);
  });

  it('an input outside the schema is 422 with the path, and nothing is stored', async () => {
    const before = await runCount();
    const i = input();
    i.customer.nationality = 'norway';
    const r = await call<{ error: { code: string; path: string } }>(base, 'POST', '/api/runs', { input: i });
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({ code: 'E_INPUT_INVALID', path: '/input/customer/nationality' });
    expect(await runCount()).toBe(before);
  });
});

describe('bad requests get a clear 4xx and change nothing', () => {
  const cases: [string, () => Promise<{ status: number; body: unknown }>, number, string][] = [
    ['unknown case', () => call(base, 'POST', '/api/runs', { case: 'nobody' }), 404, 'E_KYC_UNKNOWN_CASE'],
    [
      'unknown injector',
      () => call(base, 'POST', '/api/runs', { case: 'clean_retail', injector: 'rm_rf' }),
      404,
      'E_KYC_UNKNOWN_INJECTOR',
    ],
    ['malformed JSON', () => call(base, 'POST', '/api/runs', '{"case": '), 400, 'E_JSON'],
    [
      'duplicate member names',
      () => call(base, 'POST', '/api/runs', '{"case":"clean_retail","case":"sanctions_exact"}'),
      400,
      'E_JSON',
    ],
    ['not an object', () => call(base, 'POST', '/api/runs', '["clean_retail"]'), 400, 'E_KYC_REQUEST'],
    [
      'unknown field',
      () => call(base, 'POST', '/api/runs', { case: 'clean_retail', __proto__x: 1 }),
      400,
      'E_KYC_REQUEST',
    ],
    [
      'case and input',
      () => call(base, 'POST', '/api/runs', { case: 'clean_retail', input: {} }),
      400,
      'E_KYC_REQUEST',
    ],
    [
      'wrong content type',
      () => call(base, 'POST', '/api/runs', '{"case":"clean_retail"}', { 'content-type': 'text/plain' }),
      400,
      'E_KYC_REQUEST',
    ],
    [
      'oversized body',
      () => call(base, 'POST', '/api/runs', JSON.stringify({ input: { pad: 'x'.repeat(70_000) } })),
      413,
      'E_TOO_LARGE',
    ],
    ['unknown run', () => call(base, 'GET', '/api/runs/run-nope'), 404, 'E_STORE_NO_RUN'],
    [
      'approve an unknown run',
      () => call(base, 'POST', '/api/runs/run-nope/approve', { reviewer: 'alice', decision: 'approve' }),
      404,
      'E_STORE_NO_RUN',
    ],
    ['unknown route', () => call(base, 'GET', '/api/nothing'), 404, 'E_KYC_NOT_FOUND'],
    ['analytics runs out of range', () => call(base, 'GET', '/api/analytics?runs=100000'), 400, 'E_KYC_REQUEST'],
    [
      'cross-origin write',
      () => call(base, 'POST', '/api/runs', { case: 'clean_retail' }, { origin: 'https://evil.example' }),
      403,
      'E_KYC_REQUEST',
    ],
    ['foreign Host header (DNS rebinding)', () => rawGet('/api/meta', { host: 'evil.example' }), 421, 'E_KYC_REQUEST'],
  ];
  it.each(cases)('%s', async (_name, send, status, code) => {
    const before = await runCount();
    const r = await send();
    expect(r.status).toBe(status);
    expect(r.body).toMatchObject({ error: { code, message: expect.any(String) } });
    expect(await runCount()).toBe(before);
  });

  it('a JSON body with __proto__ is data: refused as an unknown field, nothing polluted', async () => {
    const r = await call(base, 'POST', '/api/runs', '{"case":"clean_retail","__proto__":{"polluted":true}}');
    expect(r.status).toBe(400);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('approvals: a bad payload is refused by the wait step’s schema, a finished run is 409; neither appends an event', async () => {
    const v = (await post({ case: 'fuzzy_match' })).body;
    const bad = await call(base, 'POST', `/api/runs/${v.run_id}/approve`, {
      reviewer: 'Alice Smith',
      decision: 'approve',
    });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: 'E_RESUME_EVENT_INVALID' } });
    const badDecision = await call(base, 'POST', `/api/runs/${v.run_id}/approve`, {
      reviewer: 'alice',
      decision: 'yes',
    });
    expect(badDecision.status).toBe(400);
    const after = (await call<RunView>(base, 'GET', `/api/runs/${v.run_id}`)).body;
    expect(after.events.length).toBe(v.events.length);
    const done = (await post({ case: 'clean_retail' })).body;
    const late = await call(base, 'POST', `/api/runs/${done.run_id}/approve`, {
      reviewer: 'alice',
      decision: 'approve',
    });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ error: { code: 'E_RESUME_NOT_SUSPENDED' } });
    expect((await call<RunView>(base, 'GET', `/api/runs/${done.run_id}`)).body.events.length).toBe(done.events.length);
  });
});

describe('GET /api/stream', () => {
  it('pushes every appended event with its hash, then the status, as the run happens', async () => {
    const ac = new AbortController();
    const res = await fetch(`${base}/api/stream`, { signal: ac.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('event: hello')) text += decoder.decode((await reader.read()).value);
    const v = (await post({ case: 'sanctions_exact' })).body;
    while (!text.includes(`"run_id":"${v.run_id}","status"`)) text += decoder.decode((await reader.read()).value);
    ac.abort();
    const traces = text
      .split('\n\n')
      .filter((b) => b.startsWith('event: trace'))
      .map(
        (b) =>
          JSON.parse(b.slice(b.indexOf('data: ') + 6)) as { run_id: string; seq: number; hash: string; kind: string },
      )
      .filter((t) => t.run_id === v.run_id);
    expect(traces.map((t) => [t.seq, t.hash, t.kind])).toEqual(v.events.map((e) => [e.seq, e.hash, e.kind]));
    const statuses = text
      .split('\n\n')
      .filter((b) => b.startsWith('event: status') && b.includes(v.run_id))
      .map((b) => (JSON.parse(b.slice(b.indexOf('data: ') + 6)) as { status: string }).status);
    expect(statuses).toEqual(['running', 'completed']);
  });
});

describe('static files', () => {
  it('a missing web build is a 404 that says what to build', async () => {
    const r = await call<{ error: { message: string } }>(base, 'GET', '/');
    expect(r.status).toBe(404);
    expect(r.body.error.message).toContain('npm run build');
  });

  it('serves web/ at / and web-dist/ at /assets/, never outside them', async () => {
    mkdirSync(join(dir, 'web'), { recursive: true });
    mkdirSync(join(dir, 'web-dist'), { recursive: true });
    writeFileSync(join(dir, 'web', 'index.html'), '<!doctype html><title>kyc</title>');
    writeFileSync(join(dir, 'web-dist', 'app.js'), 'export {};');
    writeFileSync(join(dir, 'secret.txt'), 'secret');
    const index = await call(base, 'GET', '/');
    expect([index.status, index.headers.get('content-type'), index.text]).toEqual([
      200,
      'text/html; charset=utf-8',
      '<!doctype html><title>kyc</title>',
    ]);
    const js = await call(base, 'GET', '/assets/app.js');
    expect([js.status, js.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8']);
    for (const p of ['/assets/..%2fsecret.txt', '/..%2fsecret.txt', '/assets/%2e%2e/secret.txt', '/%2e%2e%2fkyc.db'])
      expect((await call(base, 'GET', p)).status, p).toBe(404);
  });
});

describe('GET /api/analytics', () => {
  it("runs N seeded runs through the kernel's analyzer: entropy, path variance and a series for charts", async () => {
    const r = await call<{
      runs: number;
      analysis: {
        runs: unknown[];
        transitions: { entropy_bits: number };
        paths: { path_variance: number; distinct: number };
        thresholds: object;
      };
      series: { runs: number; entropy_bits: number }[];
    }>(base, 'GET', '/api/analytics?runs=24&seed=7');
    expect(r.status).toBe(200);
    expect(r.body.analysis.runs).toHaveLength(24);
    expect(r.body.analysis.transitions.entropy_bits).toBeGreaterThan(0);
    expect(r.body.analysis.paths.distinct).toBeGreaterThan(1);
    expect(r.body.analysis.paths.path_variance).toBeGreaterThan(0);
    expect(r.body.series.at(-1)).toMatchObject({ runs: 24, entropy_bits: r.body.analysis.transitions.entropy_bits });
    // Seeded: the same request gives the same analysis.
    const again = await call<{ analysis: { transitions: unknown } }>(base, 'GET', '/api/analytics?runs=24&seed=7');
    expect(again.body.analysis.transitions).toEqual(r.body.analysis.transitions);
  });
});
