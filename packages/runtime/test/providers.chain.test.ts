/**
 * Fallback chains (`openai:a,anthropic:b`): which failures fall through to the next model, which
 * end the call, and that the trace names the model that actually answered.
 */
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pureHasher, replayBundle, verifyBundle, type StepCompletedEvent, type StepFailedEvent } from '@nano-vm/kernel';
import {
  FallbackChainModel,
  ModelError,
  modelFromSpec,
  nodeHasher,
  runProgram,
  type ModelPort,
  type ModelRequest,
} from '../src/internal.js';
import {
  anthropicMessage,
  fakeAnthropic,
  fakeOpenAi,
  openaiCompletion,
  openaiError,
  refundExample,
  type FakeServer,
  type Reply,
} from './fakeProviders.js';
import { program, tools } from './fixtures.js';

let servers: FakeServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function pair(
  openaiReply: (n: number) => Reply,
  anthropicReply: (n: number) => Reply = () => anthropicMessage('approve'),
): Promise<{ a: FakeServer; b: FakeServer; chain: ModelPort }> {
  const a = await fakeOpenAi((_, n) => openaiReply(n));
  const b = await fakeAnthropic((_, n) => anthropicReply(n));
  servers.push(a, b);
  const chain = modelFromSpec('openai:gpt-test,anthropic:claude-test', {
    env: {
      OPENAI_BASE_URL: `${a.origin}/v1`,
      OPENAI_API_KEY: 'sk-test',
      ANTHROPIC_BASE_URL: b.origin,
      ANTHROPIC_API_KEY: 'sk-ant-test',
    },
    sleep: async () => {},
  });
  return { a, b, chain };
}

const request = (over: Partial<ModelRequest> = {}): ModelRequest => ({
  step: 'classify',
  call: 1,
  attempt: 1,
  prompt: 'Classify',
  projection: {},
  output: { enum: ['approve', 'deny'] },
  signal: new AbortController().signal,
  ...over,
});

describe('fallback chain', () => {
  it('falls to the second model when the first is unavailable after its retries; the trace names the second', async () => {
    const { a, b, chain } = await pair(() => openaiError(503, 'Service Unavailable', 'server_error'));
    expect(chain.id).toBe('openai:gpt-test,anthropic:claude-test');
    const { program: prog, tools: reg, input } = await refundExample();
    const r = await runProgram({ program: prog, input: input('approve'), model: chain, tools: reg });
    expect([r.status, r.outcome]).toEqual(['completed', 'SUCCESS']);
    const done = r.events.find((e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === 'classify')!;
    expect(done.model).toBe('anthropic:claude-test-20250101');
    // The failed first model is a fact of the trace, not only of the logs.
    expect(done.fallbacks).toEqual([
      { model: 'openai:gpt-test', code: 'E_MODEL_UNAVAILABLE', message: expect.stringContaining('HTTP 503') },
    ]);
    expect(verifyBundle(JSON.parse(JSON.stringify(r.bundle)), pureHasher)).toMatchObject({ ok: true });
    expect(replayBundle(r.bundle, { hasher: nodeHasher })).toMatchObject({ identical: true });
    expect(done.usage).toEqual({ input_tokens: 40, output_tokens: 1 });
    expect(r.receipt.model.id).toBe('openai:gpt-test,anthropic:claude-test');
    expect(a.seen).toHaveLength(3);
    expect(b.seen).toHaveLength(1);
    // Both providers got the same prompt and projection.
    expect(b.seen[0]!.body.messages[0]!.content).toBe(a.seen[0]!.body.messages[1]!.content);
  });

  it('falls through on rate limits, refused credentials and malformed bodies', async () => {
    for (const reply of [
      openaiError(429, 'Rate limit', 'requests', 'rate_limit_exceeded'),
      openaiError(401, 'Incorrect API key provided', 'invalid_request_error', 'invalid_api_key'),
      { text: 'not json' } as Reply,
    ]) {
      const { b, chain } = await pair(() => reply);
      expect((await chain.complete(request())).model).toBe('anthropic:claude-test-20250101');
      expect(b.seen).toHaveLength(1);
    }
  });

  it('uses only the first model when it answers', async () => {
    const { b, chain } = await pair(() => openaiCompletion('deny'));
    const answer = await chain.complete(request());
    expect(answer).toMatchObject({ raw: 'deny', model: 'openai:gpt-test-2025-01-01' });
    expect(answer.fallbacks).toBeUndefined();
    expect(b.seen).toHaveLength(0);
  });

  it('does not fall through on a rejected request (400): the second provider is never called', async () => {
    const { b, chain } = await pair(() =>
      openaiError(
        400,
        "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
        'invalid_request_error',
      ),
    );
    const e = await chain.complete(request()).catch((x: unknown) => x as ModelError);
    expect(e).toMatchObject({ code: 'E_MODEL_BAD_REQUEST' });
    expect(b.seen).toHaveLength(0);
  });

  it('a rejected request from a later member ends the chain and still names the earlier failures', async () => {
    const { b, chain } = await pair(
      () => openaiError(503, 'Service Unavailable', 'server_error'),
      () => ({
        status: 400,
        json: {
          type: 'error',
          error: { type: 'invalid_request_error', message: 'max_tokens: 999999 > 64000, which is the maximum allowed' },
        },
      }),
    );
    const e = (await chain.complete(request()).catch((x: unknown) => x)) as ModelError;
    expect(e.code).toBe('E_MODEL_BAD_REQUEST');
    expect(e.message).toContain('which is the maximum allowed');
    expect(e.message).toContain('(after E_MODEL_UNAVAILABLE: openai:gpt-test: the provider failed (HTTP 503');
    expect(b.seen).toHaveLength(1);
  });

  it("does not fall through when the step's timeout cancels the call", async () => {
    const { a, b, chain } = await pair(() => ({ hang: true }));
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
    const r = await runProgram({ program: prog, input: {}, model: chain, tools: tools([]) });
    expect(r.events.find((e): e is StepFailedEvent => e.type === 'step_failed')!.error.code).toBe('E_TIMEOUT');
    expect(await a.seen[0]!.closed).toEqual({ beforeReply: true });
    expect(b.seen).toHaveLength(0);
  });

  it('when every model fails, the error has the last code and names every failure', async () => {
    const { chain } = await pair(
      () => openaiError(500, 'boom', 'server_error'),
      () => ({ status: 529, json: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }),
    );
    const e = (await chain.complete(request()).catch((x: unknown) => x)) as ModelError;
    expect(e.code).toBe('E_MODEL_UNAVAILABLE');
    expect(e.message).toContain('every model in the chain failed');
    expect(e.message).toContain('openai:gpt-test: the provider failed (HTTP 500');
    expect(e.message).toContain('anthropic:claude-test: the provider failed (HTTP 529');
  });

  it('checks every member up front (a missing key for the second model refuses the chain), and refuses scripted members', () => {
    expect(() => modelFromSpec('openai:a,anthropic:b', { env: { OPENAI_API_KEY: 'k' } })).toThrow(
      expect.objectContaining({ code: 'E_MODEL_KEY_MISSING' }),
    );
    expect(() =>
      modelFromSpec('openai:a,scripted:examples/refund/model.yaml', { env: { OPENAI_API_KEY: 'k' } }),
    ).toThrow(expect.objectContaining({ code: 'E_MODEL_SPEC' }));
    expect(() => new FallbackChainModel([])).toThrow(expect.objectContaining({ code: 'E_MODEL_SPEC' }));
  });

  it('the runtime factory also reads scripted:<file> alone (E_FILE / E_SCRIPT_FORMAT when it cannot)', async () => {
    const m = modelFromSpec('scripted:examples/refund/model.yaml', { caseName: 'deny' });
    expect(m.scripted).toBe(true);
    expect((await m.complete(request())).raw).toBe('deny');
    expect(() => modelFromSpec('scripted:/nonexistent/model.yaml')).toThrow(
      expect.objectContaining({ code: 'E_FILE' }),
    );
    expect(() => modelFromSpec('scripted:examples/refund/program.yaml')).toThrow(
      expect.objectContaining({ code: 'E_SCRIPT_FORMAT' }),
    );
    expect(() => modelFromSpec('scripted:')).toThrow(expect.objectContaining({ code: 'E_MODEL_SPEC' }));
  });

  it('reads a script whose path has a comma as that one file, since a scripted model is never part of a chain', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nano-vm-a,b-'));
    copyFileSync('examples/refund/model.yaml', join(dir, 'model.yaml'));
    const m = modelFromSpec(`scripted:${join(dir, 'model.yaml')}`, { caseName: 'deny' });
    expect(m.scripted).toBe(true);
    expect((await m.complete(request())).raw).toBe('deny');
    // No such file: the spec is read as a chain, and a chain refuses its scripted member.
    expect(() => modelFromSpec(`scripted:${join(dir, 'other.yaml')}`)).toThrow(
      expect.objectContaining({ code: 'E_MODEL_SPEC' }),
    );
  });
});
