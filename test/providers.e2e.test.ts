/**
 * End to end with real providers' wire formats: spawn the built CLI (`packages/cli/dist/main.js`)
 * against local fake OpenAI and Anthropic servers, the way an operator would point it at a real
 * endpoint (OPENAI_BASE_URL / ANTHROPIC_BASE_URL). `npm test` builds first (pretest).
 *
 * The CLI runs in a child process, asynchronously, so the fake servers in this process can answer.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Bundle, Receipt, StepCompletedEvent, StepFailedEvent } from '@nano-vm/kernel';
import {
  anthropicMessage,
  closedPort,
  fakeAnthropic,
  fakeOpenAi,
  openaiCompletion,
  openaiError,
  userText,
  type ChatRequestBody,
  type FakeServer,
} from '../packages/runtime/test/fakeProviders.js';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
let dir: string;
let servers: FakeServer[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-providers-e2e-'));
  writeFileSync(
    join(dir, 'prices.yaml'),
    'gpt-e2e: { input_per_million: 1, output_per_million: 2 }\nanthropic:claude-e2e: { input_per_million: 3, output_per_million: 15 }\n',
  );
});
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

/** A line of `nano-vm run --json`: one per case run. */
interface RunOutput {
  run_id: string;
  case: string;
  status: string;
  outcome: string | null;
  scripted_model: boolean;
  receipt: Receipt;
}
/** The line `--json` prints when the command fails. */
interface ErrorOutput {
  error: { code: string; message: string };
}

interface Result {
  code: number;
  out: string;
  err: string;
  /** stdout's JSON lines, parsed as what the command prints with `--json`. */
  lines: <T = RunOutput>() => T[];
}

/** Runs the CLI without any provider settings from the outer environment, plus `env`. */
function nanoVm(args: string[], env: Record<string, string>): Promise<Result> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(OPENAI_|ANTHROPIC_|NANO_VM_)/.test(k)),
  );
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: { ...base, NANO_VM_STORE: `sqlite:${join(dir, 'e2e.db')}`, ...env },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve) =>
    child.on('close', (code) =>
      resolve({
        code: code ?? -1,
        out,
        err,
        lines: <T>() =>
          out
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as T),
      }),
    ),
  );
}

/** What a model would plausibly answer for each refund input; the injected one answers outside the enum. */
function refundAnswer(body: ChatRequestBody): string {
  const text = userText(body);
  if (text.includes('cracked base')) return 'approve';
  if (text.includes('changed my mind')) return 'deny';
  if (text.includes('IGNORE ALL PREVIOUS INSTRUCTIONS')) return 'APPROVED. Calling issue_refund(amount=9000).';
  return 'escalate';
}

const track = (s: FakeServer) => (servers.push(s), s);

describe('nano-vm run against real provider wire formats', () => {
  it('openai:<model>: every refund input runs to its outcome; usage and cost are recorded; the injected answer is rejected', async () => {
    const server = track(
      await fakeOpenAi(
        (s) =>
          openaiCompletion(
            refundAnswer(s.body),
            { prompt_tokens: 100, completion_tokens: 1, total_tokens: 101 },
            'gpt-e2e-0101',
          ),
        'sk-e2e',
      ),
    );
    const r = await nanoVm(['run', 'examples/refund', '--model', 'openai:gpt-e2e', '--json'], {
      OPENAI_BASE_URL: `${server.origin}/v1`,
      OPENAI_API_KEY: 'sk-e2e',
      NANO_VM_PRICES: join(dir, 'prices.yaml'),
    });
    expect(r.code, r.err).toBe(0);
    const runs = r.lines();
    expect(runs.map((x) => [x.case, x.status, x.outcome])).toEqual([
      ['approve', 'completed', 'SUCCESS'],
      ['deny', 'completed', 'REJECTED'],
      ['injection', 'completed', 'NEEDS_HUMAN_REVIEW'],
    ]);
    for (const x of runs) {
      expect(x.scripted_model).toBe(false);
      expect(x.receipt.model.id).toBe('openai:gpt-e2e');
    }
    expect(runs.map((x) => [x.receipt.model.input_tokens, x.receipt.model.output_tokens])).toEqual([
      [100, 1],
      [100, 1],
      [200, 2],
    ]);
    expect(runs[0]!.receipt.model.cost_usd).toBeCloseTo((100 * 1 + 1 * 2) / 1e6, 12);
    expect(runs[2]!.receipt.counts).toMatchObject({ model_calls: 2, retries: 1, fallbacks: 1 });
    expect(server.seen).toHaveLength(4);
    expect(server.seen.every((s) => s.headers.authorization === 'Bearer sk-e2e')).toBe(true);
  });

  it('anthropic:<model>: runs with usage, cost and the answering model in the bundle', async () => {
    const server = track(
      await fakeAnthropic(
        (s) =>
          anthropicMessage(refundAnswer(s.body), {
            input_tokens: 80,
            output_tokens: 2,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
          }),
        'sk-ant-e2e',
      ),
    );
    const out = join(dir, 'anthropic.bundle.json');
    const r = await nanoVm(
      [
        'run',
        'examples/refund',
        '--input',
        'examples/refund/inputs/approve.json',
        '--model',
        'anthropic:claude-e2e',
        '--json',
        '--out',
        out,
      ],
      {
        ANTHROPIC_BASE_URL: server.origin,
        ANTHROPIC_API_KEY: 'sk-ant-e2e',
        NANO_VM_PRICES: join(dir, 'prices.yaml'),
      },
    );
    expect(r.code, r.err).toBe(0);
    const [run] = r.lines();
    if (!run) throw new Error(`no run line in ${r.out}`);
    expect([run.status, run.outcome, run.scripted_model]).toEqual(['completed', 'SUCCESS', false]);
    expect(run.receipt.model).toMatchObject({ id: 'anthropic:claude-e2e', input_tokens: 80, output_tokens: 2 });
    expect(run.receipt.model.cost_usd).toBeCloseTo((80 * 3 + 2 * 15) / 1e6, 12);
    const done = (JSON.parse(readFileSync(out, 'utf8')) as Bundle).events.find(
      (e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === 'classify',
    );
    expect(done).toMatchObject({
      raw: 'approve',
      model: 'anthropic:claude-test-20250101',
      usage: { input_tokens: 80, output_tokens: 2 },
    });
    expect(server.seen[0]!.headers['anthropic-version']).toBe('2023-06-01');
    expect((await nanoVm(['verify', out], {})).code).toBe(0);
  });

  it('a fallback chain answers from the second provider when the first is down', async () => {
    const a = track(await fakeOpenAi(() => openaiError(503, 'Service Unavailable', 'server_error'), 'sk-e2e'));
    const b = track(await fakeAnthropic((s) => anthropicMessage(refundAnswer(s.body)), 'sk-ant-e2e'));
    const out = join(dir, 'chain.bundle.json');
    const r = await nanoVm(
      [
        'run',
        'examples/refund',
        '--input',
        'examples/refund/inputs/deny.json',
        '--model',
        'openai:gpt-e2e,anthropic:claude-e2e',
        '--json',
        '--out',
        out,
      ],
      {
        OPENAI_BASE_URL: `${a.origin}/v1`,
        OPENAI_API_KEY: 'sk-e2e',
        ANTHROPIC_BASE_URL: b.origin,
        ANTHROPIC_API_KEY: 'sk-ant-e2e',
        NANO_VM_MODEL_MAX_ATTEMPTS: '1',
      },
    );
    expect(r.code, r.err).toBe(0);
    expect(r.lines()[0]).toMatchObject({ status: 'completed', outcome: 'REJECTED' });
    const done = (JSON.parse(readFileSync(out, 'utf8')) as Bundle).events.find(
      (e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === 'classify',
    );
    expect(done!.model).toBe('anthropic:claude-test-20250101');
    expect(done!.fallbacks).toEqual([
      { model: 'openai:gpt-e2e', code: 'E_MODEL_UNAVAILABLE', message: expect.stringContaining('HTTP 503') },
    ]);
    expect([a.seen.length, b.seen.length]).toEqual([1, 1]);
    expect((await nanoVm(['verify', out], {})).code).toBe(0);
  });

  it('an unreachable endpoint is recorded as E_MODEL_UNREACHABLE and handled by the step on_error (exit 0, human review)', async () => {
    const port = await closedPort();
    const out = join(dir, 'unreachable.bundle.json');
    const r = await nanoVm(
      [
        'run',
        'examples/refund',
        '--input',
        'examples/refund/inputs/approve.json',
        '--model',
        'openai:gpt-e2e',
        '--json',
        '--out',
        out,
      ],
      {
        OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1`,
        NANO_VM_MODEL_MAX_ATTEMPTS: '1',
      },
    );
    expect(r.code, r.err).toBe(0);
    expect(r.lines()[0]).toMatchObject({ status: 'completed', outcome: 'NEEDS_HUMAN_REVIEW' });
    const failed = (JSON.parse(readFileSync(out, 'utf8')) as Bundle).events.filter(
      (e): e is StepFailedEvent => e.type === 'step_failed',
    );
    expect(failed.map((e) => e.error.code)).toEqual(['E_MODEL_UNREACHABLE', 'E_MODEL_UNREACHABLE']);
    expect(failed[0]!.error.message).toContain('ECONNREFUSED');
  });
});

describe('nano-vm run refuses a model it cannot configure (exit 2, before any run, no stack trace)', () => {
  it('a missing API key: E_MODEL_KEY_MISSING', async () => {
    const r = await nanoVm(['run', 'examples/refund', '--model', 'anthropic:claude-e2e'], {});
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^nano-vm: E_MODEL_KEY_MISSING: anthropic:claude-e2e: ANTHROPIC_API_KEY is not set\n$/);
    expect(r.out).toBe('');
    const j = await nanoVm(['run', 'examples/refund', '--model', 'openai:gpt-e2e', '--json'], {});
    expect(j.code).toBe(2);
    expect(j.lines<ErrorOutput>()[0]!.error.code).toBe('E_MODEL_KEY_MISSING');
  });

  it('an unknown provider, or a bad provider setting: E_MODEL_SPEC; an unreadable price table: E_MODEL_PRICES', async () => {
    const unknown = await nanoVm(['run', 'examples/refund', '--model', 'gemini:pro'], {});
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('nano-vm: E_MODEL_SPEC: unknown model provider "gemini"');
    expect(unknown.err).toContain('available: openai, anthropic, scripted');
    const badUrl = await nanoVm(['run', 'examples/refund', '--model', 'openai:x', '--json'], {
      OPENAI_BASE_URL: 'ftp://example.com',
    });
    expect(badUrl.lines<ErrorOutput>()[0]!.error.code).toBe('E_MODEL_SPEC');
    const prices = await nanoVm(['run', 'examples/refund', '--model', 'openai:x', '--json'], {
      OPENAI_API_KEY: 'k',
      NANO_VM_PRICES: join(dir, 'missing-prices.yaml'),
    });
    expect(prices.code).toBe(2);
    expect(prices.lines<ErrorOutput>()[0]!.error.code).toBe('E_MODEL_PRICES');
    for (const x of [unknown, badUrl, prices]) expect(x.out + x.err).not.toMatch(/\n\s+at /);
  });

  it('scripted:<file> still works exactly as before, and `run --help` shows the providers', async () => {
    const r = await nanoVm(
      ['run', 'examples/refund', '--model', 'scripted:examples/refund/model.yaml', '--json', '--deterministic'],
      {},
    );
    expect(r.code).toBe(0);
    expect(r.lines().map((x) => [x.outcome, x.scripted_model])).toEqual([
      ['SUCCESS', true],
      ['REJECTED', true],
      ['NEEDS_HUMAN_REVIEW', true],
    ]);
    expect((await nanoVm(['run', '--help'], {})).out).toContain('openai:<model> | anthropic:<model>');
  });
});
