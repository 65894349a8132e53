/**
 * The OpenAI-compatible adapter against a local server that speaks the chat completions wire
 * format: request shape, usage and cost in the trace, structured output, retries (only on 429,
 * 5xx, network errors and slow attempts), Retry-After, cancellation, and every error code.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LlmOutput, StepCompletedEvent, StepFailedEvent } from '@nano-vm/kernel';
import {
  ModelError,
  modelFromSpec,
  runProgram,
  type ModelPort,
  type ModelRequest,
  type ModelSpecOptions,
} from '../src/internal.js';
import {
  closedPort,
  fakeOpenAi,
  openaiCompletion,
  openaiError,
  refundExample,
  stepOf,
  userText,
  type FakeServer,
  type Respond,
} from './fakeProviders.js';
import { program, tools } from './fixtures.js';

let servers: FakeServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function serve(respond: Respond, apiKey: string | null = 'sk-test'): Promise<FakeServer> {
  const s = await fakeOpenAi(respond, apiKey);
  servers.push(s);
  return s;
}

/** Records the waits the adapter asks for instead of waiting. */
function recordingSleep(): { sleeps: number[]; sleep: NonNullable<ModelSpecOptions['sleep']> } {
  const sleeps: number[] = [];
  return { sleeps, sleep: async (ms) => void sleeps.push(ms) };
}

function openai(server: FakeServer, extra: ModelSpecOptions = {}, env: Record<string, string> = {}): ModelPort {
  return modelFromSpec('openai:gpt-test', {
    env: { OPENAI_BASE_URL: `${server.origin}/v1`, OPENAI_API_KEY: 'sk-test', ...env },
    random: () => 0,
    sleep: async () => {},
    ...extra,
  });
}

function request(over: Partial<ModelRequest> = {}): ModelRequest {
  return {
    step: 'classify',
    call: 1,
    attempt: 1,
    prompt: 'Classify: broken kettle',
    projection: { input: { reason: 'broken kettle' } },
    output: { enum: ['approve', 'deny'] },
    signal: new AbortController().signal,
    ...over,
  };
}

async function failure(p: Promise<unknown>): Promise<ModelError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ModelError);
  return e as ModelError;
}

describe('openai: a real program end to end', () => {
  it('runs the refund example; the trace records the raw answer, the answering model, usage and the price-table cost', async () => {
    const server = await serve((s) =>
      stepOf(s.body) === 'classify'
        ? openaiCompletion('approve', { prompt_tokens: 120, completion_tokens: 1, total_tokens: 121 })
        : openaiError(400, 'unexpected prompt', 'invalid_request_error'),
    );
    const dir = mkdtempSync(join(tmpdir(), 'nano-vm-prices-'));
    writeFileSync(join(dir, 'prices.yaml'), 'openai:gpt-test: { input_per_million: 2, output_per_million: 8 }\n');
    const { program: prog, tools: reg, input } = await refundExample();
    const model = openai(server, {}, { NANO_VM_PRICES: join(dir, 'prices.yaml') });

    const r = await runProgram({ program: prog, input: input('approve'), model, tools: reg });
    expect([r.status, r.outcome]).toEqual(['completed', 'SUCCESS']);
    expect(r.receipt.model).toMatchObject({
      id: 'openai:gpt-test',
      scripted: false,
      input_tokens: 120,
      output_tokens: 1,
    });
    const done = r.events.find((e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === 'classify')!;
    expect(done).toMatchObject({
      raw: 'approve',
      output: 'approve',
      model: 'openai:gpt-test-2025-01-01',
      usage: { input_tokens: 120, output_tokens: 1 },
    });
    expect(done.cost_usd).toBeCloseTo((120 * 2 + 1 * 8) / 1e6, 12);

    // The wire request: the path, the bearer key, the model, and only the prompt and the projection.
    expect(server.seen).toHaveLength(1);
    const seen = server.seen[0]!;
    expect(seen.headers.authorization).toBe('Bearer sk-test');
    expect(seen.body.model).toBe('gpt-test');
    expect(seen.body.messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user']);
    expect(seen.body.messages[0]!.content).toContain('approve, deny, escalate');
    expect(userText(seen.body)).toContain('Reason given by the customer: The kettle arrived with a cracked base');
    expect(userText(seen.body)).toContain('"email":"[MASKED]"');
    expect(JSON.stringify(seen.body)).not.toContain('ana.silva@example.com');
    expect(JSON.stringify(seen.body)).not.toContain('ord_1001');
    expect(seen.body.response_format).toBeUndefined();
  });

  it('records the cost the provider reports (OpenRouter usage.cost) over any price table', async () => {
    const server = await serve(() =>
      openaiCompletion('approve', { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11, cost: 0.000123 }),
    );
    const a = await openai(server, {
      prices: new Map([['gpt-test', { input_per_million: 1000, output_per_million: 1000 }]]),
    }).complete(request());
    expect(a.cost_usd).toBe(0.000123);
  });

  it('records no cost for a model without a price, and the raw text exactly as returned', async () => {
    const server = await serve(() => openaiCompletion('  approve\n'));
    const a = await openai(server).complete(request());
    expect(a).toEqual({
      raw: '  approve\n',
      model: 'openai:gpt-test-2025-01-01',
      usage: { input_tokens: 57, output_tokens: 1 },
    });
  });
});

describe('openai: structured output', () => {
  const strictSchema = {
    type: 'object',
    additionalProperties: false,
    required: ['amount', 'flag'],
    properties: { amount: { type: 'number' }, flag: { type: 'boolean' } },
  };
  const looseSchema = { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } };

  it("asks for the step's JSON Schema as response_format, and the run accepts the structured answer", async () => {
    const server = await serve(() => openaiCompletion('{"amount":12,"flag":true}'));
    const prog = program([
      {
        id: 'extract',
        kind: 'llm',
        prompt: 'Extract from {{input.text}}',
        projection: ['input.text'],
        output: { schema: strictSchema },
        next: 'end',
      },
      { id: 'end', kind: 'end', outcome: 'DONE' },
    ]);
    const r = await runProgram({
      program: prog,
      input: { text: 'twelve, yes' },
      model: openai(server),
      tools: tools([]),
    });
    expect([r.status, r.outcome]).toEqual(['completed', 'DONE']);
    expect(server.seen[0]!.body.response_format).toEqual({
      type: 'json_schema',
      json_schema: { name: 'extract', strict: true, schema: strictSchema },
    });
    expect(server.seen[0]!.body.messages[0]!.content).toContain(JSON.stringify(strictSchema));
  });

  it('sends strict: false for a schema OpenAI strict mode would refuse, and no response_format for a non-object root', async () => {
    const server = await serve(() => openaiCompletion('{"amount":1}'));
    const model = openai(server);
    await model.complete(request({ step: 'my step!', output: { schema: looseSchema } }));
    expect(server.seen[0]!.body.response_format).toEqual({
      type: 'json_schema',
      json_schema: { name: 'my_step_', strict: false, schema: looseSchema },
    });
    await model.complete(request({ output: { schema: { type: 'string' } } as LlmOutput }));
    expect(server.seen[1]!.body.response_format).toBeUndefined();
    expect(server.seen[1]!.body.messages[0]!.content).toContain('{"type":"string"}');
  });
});

describe('openai: retries', () => {
  it('retries a 429 and waits exactly what Retry-After asks for', async () => {
    const server = await serve((_, n) =>
      n === 1
        ? openaiError(429, 'Rate limit reached for gpt-test', 'requests', 'rate_limit_exceeded', { 'retry-after': '7' })
        : openaiCompletion('approve'),
    );
    const { sleeps, sleep } = recordingSleep();
    const a = await openai(server, { sleep }).complete(request());
    expect(a.raw).toBe('approve');
    expect(server.seen).toHaveLength(2);
    expect(sleeps).toEqual([7000]);
  });

  it('honours Retry-After given as an HTTP date, and retry-after-ms', async () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const server = await serve((_, n) =>
      n === 1
        ? openaiError(503, 'busy', 'server_error', null, { 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' })
        : n === 2
          ? openaiError(429, 'slow down', 'requests', null, { 'retry-after-ms': '1500', 'retry-after': '9' })
          : openaiCompletion('deny'),
    );
    const { sleeps, sleep } = recordingSleep();
    expect((await openai(server, { sleep, now: () => now }).complete(request())).raw).toBe('deny');
    expect(sleeps).toEqual([30_000, 1500]);
  });

  it('retries 500 and 503 with exponential backoff, then answers', async () => {
    const server = await serve((_, n) =>
      n === 1
        ? openaiError(500, 'The server had an error while processing your request.', 'server_error')
        : n === 2
          ? { status: 503, text: 'upstream connect error' }
          : openaiCompletion('approve'),
    );
    const { sleeps, sleep } = recordingSleep();
    const a = await openai(server, { sleep, random: () => 0 }).complete(request());
    expect(a.raw).toBe('approve');
    expect(server.seen).toHaveLength(3);
    // Equal jitter with random() = 0: half of 500 ms, then half of 1000 ms.
    expect(sleeps).toEqual([250, 500]);
  });

  it('gives up after the bounded attempts: 429 → E_MODEL_RATE_LIMITED, 5xx → E_MODEL_UNAVAILABLE', async () => {
    const limited = await serve(() =>
      openaiError(429, 'You exceeded your current quota', 'insufficient_quota', 'insufficient_quota'),
    );
    const e1 = await failure(openai(limited).complete(request()));
    expect(e1.code).toBe('E_MODEL_RATE_LIMITED');
    expect(e1.message).toContain('You exceeded your current quota');
    expect(e1.message).toContain('gave up after 3 attempts');
    expect(limited.seen).toHaveLength(3);

    const down = await serve(() => openaiError(502, 'Bad gateway', 'server_error'));
    const e2 = await failure(openai(down, { retry: { maxAttempts: 2 } }).complete(request()));
    expect(e2.code).toBe('E_MODEL_UNAVAILABLE');
    expect(e2.message).toContain('HTTP 502');
    expect(down.seen).toHaveLength(2);
  });

  it('does not wait for a Retry-After longer than the limit', async () => {
    const server = await serve(() =>
      openaiError(429, 'Rate limit reached', 'requests', 'rate_limit_exceeded', { 'retry-after': '3600' }),
    );
    const { sleeps, sleep } = recordingSleep();
    const e = await failure(openai(server, { sleep }).complete(request()));
    expect(e.code).toBe('E_MODEL_RATE_LIMITED');
    expect(e.message).toContain('retry after 3600 s');
    expect(server.seen).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('never retries a 400 or a 401, and says what the provider said', async () => {
    const bad = await serve(() =>
      openaiError(
        400,
        "Invalid schema for response_format 'extract': 'additionalProperties' is required to be supplied and to be false.",
        'invalid_request_error',
        'invalid_json_schema',
      ),
    );
    const e1 = await failure(openai(bad).complete(request()));
    expect(e1.code).toBe('E_MODEL_BAD_REQUEST');
    expect(e1.message).toContain("'additionalProperties' is required to be supplied and to be false");
    expect(e1.message).toContain('HTTP 400');
    expect(bad.seen).toHaveLength(1);

    const auth = await serve(() => openaiCompletion('approve'), 'sk-right');
    const e2 = await failure(openai(auth).complete(request()));
    expect(e2.code).toBe('E_MODEL_AUTH');
    expect(e2.message).toContain('Incorrect API key provided');
    expect(e2.message).toContain('OPENAI_API_KEY');
    expect(auth.seen).toHaveLength(1);
  });
});

describe('openai: timeouts and cancellation', () => {
  it("the step's timeout aborts the in-flight request: the server sees the connection close, the step fails E_TIMEOUT", async () => {
    const server = await serve(() => ({ hang: true }));
    const prog = program([
      {
        id: 'ask',
        kind: 'llm',
        prompt: 'Say yes',
        projection: [],
        output: { enum: ['yes'] },
        timeout_ms: 200,
        next: 'end',
      },
      { id: 'end', kind: 'end', outcome: 'DONE' },
    ]);
    const r = await runProgram({ program: prog, input: {}, model: openai(server), tools: tools([]) });
    expect(r.status).toBe('failed');
    expect(r.events.find((e): e is StepFailedEvent => e.type === 'step_failed')!.error.code).toBe('E_TIMEOUT');
    expect(await server.seen[0]!.closed).toEqual({ beforeReply: true });
    expect(server.seen).toHaveLength(1);
  });

  it('cancellation also ends a backoff wait (the real, abortable sleep) and nothing is retried after it', async () => {
    const server = await serve(() => openaiError(503, 'overloaded', 'server_error'), null);
    const model = modelFromSpec('openai:gpt-test', {
      env: { OPENAI_BASE_URL: `${server.origin}/v1` },
      retry: { baseDelayMs: 3_600_000, maxDelayMs: 3_600_000 },
    });
    const ac = new AbortController();
    const pending = model.complete(request({ signal: ac.signal }));
    while (server.seen.length === 0) await new Promise((r) => setTimeout(r, 5));
    ac.abort(new ModelError('E_TIMEOUT', 'step timed out'));
    const e = await failure(pending);
    expect(e.code).toBe('E_TIMEOUT');
    expect(server.seen).toHaveLength(1);
  });

  it('a single slow attempt is aborted and retried (E_MODEL_TIMEOUT when every attempt is slow)', async () => {
    const once = await serve((_, n) => (n === 1 ? { hang: true } : openaiCompletion('approve')));
    const a = await openai(once, { retry: { attemptTimeoutMs: 100 } }).complete(request());
    expect(a.raw).toBe('approve');
    expect(once.seen).toHaveLength(2);
    expect(await once.seen[0]!.closed).toEqual({ beforeReply: true });

    const always = await serve(() => ({ hang: true }));
    const e = await failure(openai(always, { retry: { attemptTimeoutMs: 100, maxAttempts: 2 } }).complete(request()));
    expect(e.code).toBe('E_MODEL_TIMEOUT');
    expect(e.message).toContain('no complete response within 100 ms');
    expect(always.seen).toHaveLength(2);
  });
});

describe('openai: broken endpoints and configuration', () => {
  it('an unreachable endpoint (closed port) is E_MODEL_UNREACHABLE after the retries, naming the cause and the setting', async () => {
    const port = await closedPort();
    const { sleeps, sleep } = recordingSleep();
    const model = modelFromSpec('openai:gpt-test', {
      env: { OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1` },
      sleep,
      random: () => 0,
    });
    const e = await failure(model.complete(request()));
    expect(e.code).toBe('E_MODEL_UNREACHABLE');
    expect(e.message).toContain('ECONNREFUSED');
    expect(e.message).toContain('OPENAI_BASE_URL');
    expect(sleeps).toHaveLength(2);
  });

  it('a body that is not JSON, or JSON that is not a completion, is E_MODEL_RESPONSE_MALFORMED (not retried)', async () => {
    const html = await serve(() => ({ status: 200, text: '<html>502 Bad Gateway</html>' }));
    const e1 = await failure(openai(html).complete(request()));
    expect(e1.code).toBe('E_MODEL_RESPONSE_MALFORMED');
    expect(e1.message).toContain('<html>502 Bad Gateway</html>');
    expect(html.seen).toHaveLength(1);

    const empty = await serve(() => ({ json: { object: 'chat.completion', choices: [] } }));
    expect((await failure(openai(empty).complete(request()))).code).toBe('E_MODEL_RESPONSE_MALFORMED');
  });

  it('a missing OPENAI_API_KEY is refused up front; a custom base URL (local server) needs no key and sends none', async () => {
    expect(() => modelFromSpec('openai:gpt-4o-mini', { env: {} })).toThrow(
      expect.objectContaining({ code: 'E_MODEL_KEY_MISSING', message: expect.stringContaining('OPENAI_API_KEY') }),
    );
    const server = await serve(() => openaiCompletion('approve'), null);
    await modelFromSpec('openai:llama3', { env: { OPENAI_BASE_URL: `${server.origin}/v1/` } }).complete(request());
    expect(server.seen[0]!.headers.authorization).toBeUndefined();
  });

  it('refuses bad specs and settings with E_MODEL_SPEC, and a bad price table with E_MODEL_PRICES', () => {
    const code = (spec: string, env: Record<string, string> = { OPENAI_API_KEY: 'k', ANTHROPIC_API_KEY: 'k' }) => {
      try {
        modelFromSpec(spec, { env });
        return 'ok';
      } catch (e) {
        return (e as ModelError).code;
      }
    };
    expect(code('gpt:4')).toBe('E_MODEL_SPEC');
    expect(code('openai:')).toBe('E_MODEL_SPEC');
    expect(code('openai:a,,anthropic:b')).toBe('E_MODEL_SPEC');
    expect(code('openai:a', { OPENAI_BASE_URL: 'localhost:8080' })).toBe('E_MODEL_SPEC');
    expect(code('openai:a', { OPENAI_API_KEY: 'k', NANO_VM_MODEL_MAX_ATTEMPTS: 'three' })).toBe('E_MODEL_SPEC');
    expect(code('openai:a', { OPENAI_API_KEY: 'k', NANO_VM_PRICES: '/nonexistent/prices.yaml' })).toBe(
      'E_MODEL_PRICES',
    );
    const dir = mkdtempSync(join(tmpdir(), 'nano-vm-prices-'));
    writeFileSync(join(dir, 'p.yaml'), 'gpt-4o: { input: 1, output: 2 }\n');
    expect(code('openai:a', { OPENAI_API_KEY: 'k', NANO_VM_PRICES: join(dir, 'p.yaml') })).toBe('E_MODEL_PRICES');
    expect(code('openai:a', { OPENAI_API_KEY: 'k' })).toBe('ok');
  });
});
