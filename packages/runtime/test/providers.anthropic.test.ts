/**
 * The Anthropic Messages adapter against a local server that speaks the Messages wire format:
 * headers, body (max_tokens, system, messages), usage with prompt-cache fields, 529/429/5xx
 * retries, and the error body `{type:"error",error:{type,message}}`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { StepCompletedEvent } from '@nano-vm/kernel';
import {
  ModelError,
  modelFromSpec,
  runProgram,
  type ModelPort,
  type ModelRequest,
  type ModelSpecOptions,
} from '../src/internal.js';
import {
  anthropicError,
  anthropicMessage,
  closedPort,
  fakeAnthropic,
  refundExample,
  stepOf,
  userText,
  type FakeServer,
  type Respond,
} from './fakeProviders.js';

let servers: FakeServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function serve(respond: Respond): Promise<FakeServer> {
  const s = await fakeAnthropic(respond);
  servers.push(s);
  return s;
}

function anthropic(server: FakeServer, extra: ModelSpecOptions = {}, env: Record<string, string> = {}): ModelPort {
  return modelFromSpec('anthropic:claude-test', {
    env: { ANTHROPIC_BASE_URL: server.origin, ANTHROPIC_API_KEY: 'sk-ant-test', ...env },
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

describe('anthropic: a real program end to end', () => {
  it('runs the refund example; usage (prompt-cache tokens included), cost and the answering model are in the trace', async () => {
    const server = await serve((s) =>
      stepOf(s.body) === 'classify'
        ? anthropicMessage('deny', {
            input_tokens: 30,
            output_tokens: 2,
            cache_creation_input_tokens: 5,
            cache_read_input_tokens: 100,
          })
        : anthropicError(400, 'invalid_request_error', 'unexpected prompt'),
    );
    const { program, tools, input } = await refundExample();
    const model = anthropic(server, {
      prices: new Map([['anthropic:claude-test', { input_per_million: 3, output_per_million: 15 }]]),
    });
    const r = await runProgram({ program, input: input('deny'), model, tools });
    expect([r.status, r.outcome]).toEqual(['completed', 'REJECTED']);
    const done = r.events.find((e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === 'classify')!;
    expect(done).toMatchObject({
      raw: 'deny',
      model: 'anthropic:claude-test-20250101',
      usage: { input_tokens: 135, output_tokens: 2 },
    });
    expect(done.cost_usd).toBeCloseTo((135 * 3 + 2 * 15) / 1e6, 12);
    expect(r.receipt.model).toMatchObject({
      id: 'anthropic:claude-test',
      scripted: false,
      input_tokens: 135,
      output_tokens: 2,
    });

    const seen = server.seen[0]!;
    expect(seen.headers['x-api-key']).toBe('sk-ant-test');
    expect(seen.headers['anthropic-version']).toBe('2023-06-01');
    expect(seen.body).toMatchObject({ model: 'claude-test', max_tokens: 1024 });
    expect(seen.body.system).toContain('approve, deny, escalate');
    expect(seen.body.messages).toHaveLength(1);
    expect(userText(seen.body)).toContain('Classify this refund request');
    expect(JSON.stringify(seen.body)).not.toContain('@example.com');
  });

  it('joins the text blocks of the answer, and takes max_tokens from ANTHROPIC_MAX_TOKENS', async () => {
    const server = await serve(() => ({
      json: {
        id: 'msg_2',
        type: 'message',
        role: 'assistant',
        model: 'claude-test',
        content: [
          { type: 'text', text: '{"amount":' },
          { type: 'text', text: '12}' },
        ],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: { input_tokens: 9, output_tokens: 4 },
      },
    }));
    const a = await anthropic(server, {}, { ANTHROPIC_MAX_TOKENS: '256' }).complete(
      request({ output: { schema: { type: 'object' } } }),
    );
    expect(a).toEqual({
      raw: '{"amount":12}',
      model: 'anthropic:claude-test',
      usage: { input_tokens: 9, output_tokens: 4 },
    });
    expect(server.seen[0]!.body.max_tokens).toBe(256);
    expect(server.seen[0]!.body.system).toContain('{"type":"object"}');
  });
});

describe('anthropic: errors and retries', () => {
  it('retries 529 overloaded_error and 500, honouring retry-after', async () => {
    const sleeps: number[] = [];
    const server = await serve((_, n) =>
      n === 1
        ? anthropicError(529, 'overloaded_error', 'Overloaded', { 'retry-after': '2' })
        : n === 2
          ? anthropicError(500, 'api_error', 'Internal server error')
          : anthropicMessage('approve'),
    );
    const a = await anthropic(server, { sleep: async (ms) => void sleeps.push(ms) }).complete(request());
    expect(a.raw).toBe('approve');
    expect(sleeps).toEqual([2000, 500]);
    expect(server.seen).toHaveLength(3);
  });

  it('429 rate_limit_error exhausted is E_MODEL_RATE_LIMITED; 529 exhausted is E_MODEL_UNAVAILABLE', async () => {
    const limited = await serve(() =>
      anthropicError(429, 'rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit', {
        'retry-after': '1',
      }),
    );
    const e1 = await failure(anthropic(limited).complete(request()));
    expect(e1.code).toBe('E_MODEL_RATE_LIMITED');
    expect(e1.message).toContain('rate_limit_error: Number of request tokens has exceeded');
    expect(limited.seen).toHaveLength(3);

    const overloaded = await serve(() => anthropicError(529, 'overloaded_error', 'Overloaded'));
    const e2 = await failure(anthropic(overloaded).complete(request()));
    expect(e2.code).toBe('E_MODEL_UNAVAILABLE');
    expect(e2.message).toContain('HTTP 529: overloaded_error: Overloaded');
  });

  it('a wrong key is E_MODEL_AUTH, a 400 is E_MODEL_BAD_REQUEST with the provider message; neither is retried', async () => {
    const server = await serve(() =>
      anthropicError(400, 'invalid_request_error', 'prompt is too long: 250000 tokens > 200000 maximum'),
    );
    const e1 = await failure(anthropic(server, {}, { ANTHROPIC_API_KEY: 'sk-ant-wrong' }).complete(request()));
    expect(e1.code).toBe('E_MODEL_AUTH');
    expect(e1.message).toContain('authentication_error: invalid x-api-key');
    expect(e1.message).toContain('ANTHROPIC_API_KEY');
    const e2 = await failure(anthropic(server).complete(request()));
    expect(e2.code).toBe('E_MODEL_BAD_REQUEST');
    expect(e2.message).toContain('prompt is too long');
    expect(server.seen).toHaveLength(2);
  });

  it('a missing ANTHROPIC_API_KEY is refused up front; a bad ANTHROPIC_MAX_TOKENS too', () => {
    expect(() => modelFromSpec('anthropic:claude-x', { env: {} })).toThrow(
      expect.objectContaining({ code: 'E_MODEL_KEY_MISSING', message: expect.stringContaining('ANTHROPIC_API_KEY') }),
    );
    expect(() =>
      modelFromSpec('anthropic:claude-x', { env: { ANTHROPIC_API_KEY: 'k', ANTHROPIC_MAX_TOKENS: '0' } }),
    ).toThrow(expect.objectContaining({ code: 'E_MODEL_SPEC' }));
  });

  it('an unreachable endpoint is E_MODEL_UNREACHABLE naming ANTHROPIC_BASE_URL; a body without content is E_MODEL_RESPONSE_MALFORMED', async () => {
    const port = await closedPort();
    const e1 = await failure(
      modelFromSpec('anthropic:claude-test', {
        env: { ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}`, ANTHROPIC_API_KEY: 'k' },
        sleep: async () => {},
      }).complete(request()),
    );
    expect(e1.code).toBe('E_MODEL_UNREACHABLE');
    expect(e1.message).toContain('ANTHROPIC_BASE_URL');
    const server = await serve(() => ({ json: { type: 'message', role: 'assistant' } }));
    const e2 = await failure(anthropic(server).complete(request()));
    expect(e2.code).toBe('E_MODEL_RESPONSE_MALFORMED');
  });
});
