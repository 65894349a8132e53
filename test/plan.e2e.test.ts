/**
 * `nano-vm plan` end to end (docs/planner.md): the real, built CLI drafts programs with the scripted
 * model and against a local fake OpenAI-compatible server; the planner's own run is stored, exported,
 * verified and replayed like any other run. `npm test` builds first (pretest).
 *
 * The CLI runs in a child process, asynchronously, so the fake server in this process can answer.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadProgram } from '@nano-vm/kernel';
import {
  fakeOpenAi,
  openaiCompletion,
  userText,
  type ChatRequestBody,
  type FakeServer,
} from '../packages/runtime/test/fakeProviders.js';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
let dir: string;
let store: string;
let servers: FakeServer[] = [];

/** What `nano-vm plan --json` prints, as far as these tests read it. */
interface PlanOutput {
  run_id: string;
  head_hash: string;
  error?: { code: string; message: string };
  issues: { code: string; severity: string; step: string | null; message: string; path: string | null }[];
}
/** What `--json` prints when a command fails. */
interface ErrorOutput {
  error: { code: string; message: string };
}

interface Result {
  code: number;
  out: string;
  err: string;
  /** stdout parsed as the shape the command prints with `--json`. */
  json: <T = unknown>() => T;
}

function nanoVm(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(OPENAI_|ANTHROPIC_|NANO_VM_)/.test(k)),
  );
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...base, NANO_VM_STORE: store, ...env } });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve) =>
    child.on('close', (code) => resolve({ code: code ?? -1, out, err, json: <T>() => JSON.parse(out) as T })),
  );
}

const TOOLS = `
const never = () => { throw new Error('the planner never calls the tools it plans with'); };
export const tools = [
  { name: 'lookup_order', description: 'Look up an order by id.', run: never,
    input_schema: { type: 'object', additionalProperties: false, required: ['order_id'], properties: { order_id: { type: 'string' } } },
    output_schema: { type: 'object', required: ['total', 'delivered'], properties: { total: { type: 'number' }, delivered: { type: 'boolean' } } } },
  { name: 'issue_refund', description: 'Refund an order.', run: never,
    input_schema: { type: 'object', additionalProperties: false, required: ['order_id', 'amount'], properties: { order_id: { type: 'string' }, amount: { type: 'number' } } } },
];
`;

const input_schema = {
  type: 'object',
  additionalProperties: false,
  required: ['order_id'],
  properties: { order_id: { type: 'string' } },
};
const VALID = {
  format: 'nano-vm.program/v1',
  id: 'refund_delivered',
  input_schema,
  steps: [
    {
      id: 'lookup',
      kind: 'tool',
      tool: 'lookup_order',
      args: { order_id: 'input.order_id' },
      output_schema: {
        type: 'object',
        required: ['total', 'delivered'],
        properties: { total: { type: 'number' }, delivered: { type: 'boolean' } },
      },
      next: 'decide',
    },
    {
      id: 'decide',
      kind: 'condition',
      cases: [{ when: 'steps.lookup.output.delivered && steps.lookup.output.total <= 100', next: 'refund' }],
      else: 'rejected',
    },
    {
      id: 'refund',
      kind: 'tool',
      tool: 'issue_refund',
      args: { order_id: 'input.order_id', amount: 'steps.lookup.output.total' },
      next: 'refunded',
    },
    { id: 'refunded', kind: 'end', outcome: 'REFUNDED' },
    { id: 'rejected', kind: 'end', outcome: 'REJECTED', failure: true },
  ],
};
/** Fits the program schema, but calls a tool that does not exist and goes to a step that does not exist. */
const INVALID = {
  ...VALID,
  steps: [
    { ...VALID.steps[0], tool: 'lookup_orders' },
    { ...VALID.steps[1], else: 'reject' },
    ...VALID.steps.slice(2, 4),
  ],
};

/** A scripted-model file (JSON is YAML) whose `draft` answers are these programs, in order. */
function script(name: string, ...drafts: unknown[]): string {
  const file = join(dir, `${name}.model.yaml`);
  writeFileSync(file, JSON.stringify({ model: name, answers: { draft: drafts.map((json) => ({ json })) } }));
  return `scripted:${file}`;
}

const INTENT = 'Refund an order when it was delivered and costs at most 100; reject it otherwise.';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-plan-e2e-'));
  store = `sqlite:${join(dir, 'plan.db')}`;
  writeFileSync(join(dir, 'tools.mjs'), TOOLS);
});
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

describe('nano-vm plan with the scripted model', () => {
  it('feeds an invalid first draft back, writes the valid second one, and the planner run verifies and replays', async () => {
    const out = join(dir, 'refund.yaml');
    const r = await nanoVm([
      'plan',
      INTENT,
      '--tools',
      join(dir, 'tools.mjs'),
      '--model',
      script('fix', INVALID, VALID),
      '-o',
      out,
      '--json',
    ]);
    expect(r.code).toBe(0);
    const res = r.json<PlanOutput>();
    expect(res).toMatchObject({
      status: 'completed',
      outcome: 'DRAFTED',
      drafts: 2,
      attempts: 3,
      written: out,
      scripted_model: true,
    });
    expect(res.error).toBeUndefined();
    expect(res.head_hash).toMatch(/^[0-9a-f]{64}$/);

    // The file loads and validates with the tools, and is the accepted draft.
    const text = readFileSync(out, 'utf8');
    expect(text).toContain(`planner run ${res.run_id}, head ${res.head_hash}`);
    expect(loadProgram(text).program).toEqual(VALID);
    const v = await nanoVm(['validate', out, '--tools', join(dir, 'tools.mjs'), '--json']);
    expect(v.json()).toMatchObject({ valid: true, tools_checked: true, issues: [] });

    // The planner run is an ordinary run: listed, exported, verified, replayed identically.
    expect(
      (await nanoVm(['runs', '--json']))
        .json<{ runs: { run_id: string }[] }>()
        .runs.map((x: { run_id: string }) => x.run_id),
    ).toContain(res.run_id);
    const bundleFile = join(dir, 'plan.bundle.json');
    expect((await nanoVm(['export', res.run_id, '-o', bundleFile])).code).toBe(0);
    const verified = await nanoVm(['verify', bundleFile, '--json']);
    expect(verified.code).toBe(0);
    expect(verified.json()).toMatchObject({ valid: true, head_hash: res.head_hash });
    const replayed = await nanoVm(['replay', bundleFile, '--json']);
    expect(replayed.code).toBe(0);
    expect(replayed.json()).toMatchObject({ identical: true });

    // Its trace: two drafts, shown different projections; the first check carried the issues that were fed back.
    const bundle = JSON.parse(readFileSync(bundleFile, 'utf8'));
    expect(bundle.program.id).toBe('nano-vm.planner');
    expect(bundle.receipt.path).toEqual(['draft', 'check', 'accept', 'draft', 'check', 'accept', 'drafted']);
    const completed = (step: string) =>
      bundle.events.filter((e: { type: string; step?: string }) => e.type === 'step_completed' && e.step === step);
    const [d1, d2] = completed('draft');
    expect(d1.output).toEqual(INVALID);
    expect(d2.output).toEqual(VALID);
    expect(d1.projection_hash).not.toBe(d2.projection_hash);
    const [c1, c2] = completed('check');
    expect(c1.output.ok).toBe(false);
    expect(
      c1.output.issues
        .filter((i: { severity: string }) => i.severity === 'error')
        .map((i: { code: string }) => i.code)
        .sort(),
    ).toEqual(['E_MISSING_TARGET', 'E_UNKNOWN_TOOL']);
    expect(c2.output).toEqual({ ok: true, issues: [] });
  });

  it('exits 1 and writes nothing when no draft is valid within the attempts', async () => {
    const out = join(dir, 'never.yaml');
    const r = await nanoVm([
      'plan',
      INTENT,
      '--tools',
      join(dir, 'tools.mjs'),
      '--model',
      script('stubborn', INVALID),
      '--attempts',
      '2',
      '-o',
      out,
    ]);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(r.out).toMatch(/outcome NO_VALID_DRAFT\s+drafts 2 of 2\s+head [0-9a-f]{64}/);
    expect(r.err).toContain('nano-vm: E_NO_VALID_DRAFT: no valid draft within 2 attempts');
    expect(r.err).toContain("unknown tool 'lookup_orders' (did you mean 'lookup_order'?)");
    expect(r.err).toContain("names step 'reject', which does not exist");

    const j = await nanoVm([
      'plan',
      INTENT,
      '--tools',
      join(dir, 'tools.mjs'),
      '--model',
      script('stubborn', INVALID),
      '--attempts',
      '1',
      '--json',
    ]);
    expect(j.code).toBe(1);
    expect(j.json()).toMatchObject({
      outcome: 'NO_VALID_DRAFT',
      drafts: 1,
      written: null,
      program: null,
      error: { code: 'E_NO_VALID_DRAFT' },
    });
    expect(j.json<PlanOutput>().issues.map((i: { code: string }) => i.code)).toContain('E_UNKNOWN_TOOL');
  });

  it('rejects a draft that violates the policy, feeds the violation back and accepts the compliant one', async () => {
    const kyc = loadProgram(readFileSync(join(ROOT, 'examples/kyc/program.yaml'), 'utf8')).program!;
    // Approves without screening anyone: valid on its own, but the KYC policy requires the sanctions screen.
    const unscreened = {
      format: 'nano-vm.program/v1',
      id: 'kyc_fast',
      input_schema: kyc.input_schema,
      steps: [
        { id: 'approved', kind: 'end', outcome: 'APPROVED' },
        { id: 'never', kind: 'end', outcome: 'NEVER', failure: true },
      ],
      start: 'approved',
    };
    const out = join(dir, 'kyc.yaml');
    const args = [
      'plan',
      'Onboard a customer after sanctions screening and risk scoring.',
      '--tools',
      'examples/kyc/tools.mjs',
      '--policy',
      'examples/kyc/policy.yaml',
      '-o',
      out,
      '--json',
    ];
    const r = await nanoVm([...args, '--model', script('kyc', unscreened, kyc)]);
    expect(r.code).toBe(0);
    const res = r.json<PlanOutput>();
    expect(res).toMatchObject({ outcome: 'DRAFTED', drafts: 2 });
    const bundleFile = join(dir, 'kyc-plan.bundle.json');
    expect((await nanoVm(['export', res.run_id, '-o', bundleFile])).code).toBe(0);
    const bundle = JSON.parse(readFileSync(bundleFile, 'utf8'));
    expect(bundle.input.policy.id).toBe('kyc-aml-policy');
    const firstCheck = bundle.events.find(
      (e: { type: string; step?: string }) => e.type === 'step_completed' && e.step === 'check',
    );
    expect(firstCheck.output.ok).toBe(false);
    expect(firstCheck.output.issues.map((i: { code: string }) => i.code)).toContain('E_POLICY_REQUIRED_STEP');
    expect(
      (
        await nanoVm([
          'validate',
          out,
          '--tools',
          'examples/kyc/tools.mjs',
          '--policy',
          'examples/kyc/policy.yaml',
          '--json',
        ])
      ).json(),
    ).toMatchObject({ valid: true });

    // Only the policy-violating draft: refused, nothing written.
    const none = join(dir, 'kyc-none.yaml');
    const bad = await nanoVm([
      'plan',
      'Onboard fast.',
      '--tools',
      'examples/kyc/tools.mjs',
      '--policy',
      'examples/kyc/policy.yaml',
      '--attempts',
      '1',
      '-o',
      none,
      '--model',
      script('kyc-bad', unscreened),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('E_POLICY_REQUIRED_STEP');
    expect(existsSync(none)).toBe(false);
  });

  it('exits 1 with the recorded error when the model fails or never fits the program schema', async () => {
    const failing = join(dir, 'failing.model.yaml');
    writeFileSync(
      failing,
      'answers:\n  draft:\n    - { error: { code: E_MODEL_AUTH, message: "401 invalid api key" } }\n',
    );
    const auth = await nanoVm(['plan', INTENT, '--tools', join(dir, 'tools.mjs'), '--model', `scripted:${failing}`]);
    expect(auth.code).toBe(1);
    expect(auth.err).toContain('nano-vm: E_MODEL_AUTH: the planner run ended failed: 401 invalid api key');

    // Not a program at all: rejected by the draft step's output check (asked again once), never checked or written.
    const shapeless = await nanoVm([
      'plan',
      INTENT,
      '--tools',
      join(dir, 'tools.mjs'),
      '--model',
      script('shapeless', { program: VALID }),
      '--json',
    ]);
    expect(shapeless.code).toBe(1);
    expect(shapeless.json()).toMatchObject({
      status: 'failed',
      drafts: 0,
      written: null,
      error: { code: 'E_OUTPUT_SCHEMA' },
    });
  });

  it('prints the program on stdout without -o', async () => {
    const r = await nanoVm([
      'plan',
      INTENT,
      '--tools',
      join(dir, 'tools.mjs'),
      '--model',
      script('stdout', VALID),
      '--deterministic',
    ]);
    expect(r.code).toBe(0);
    expect(loadProgram(r.out).program).toEqual(VALID);
    expect(r.err).toMatch(/plan run run-\S+\s+program nano-vm\.planner/);
  });

  it('refuses bad arguments with exit 2 before any model call', async () => {
    const model = script('unused', VALID);
    const cases: [string[], string][] = [
      [['plan', INTENT, '--model', model], 'E_USAGE'],
      [['plan', '--tools', join(dir, 'tools.mjs'), '--model', model], 'E_USAGE'],
      [['plan', INTENT, '--tools', join(dir, 'tools.mjs'), '--model', model, '--attempts', '0'], 'E_USAGE'],
      [['plan', INTENT, '--tools', join(dir, 'missing.mjs'), '--model', model], 'E_TOOLS_MODULE'],
      [['plan', INTENT, '--tools', join(dir, 'tools.mjs')], 'E_MODEL_SPEC'],
      [['plan', INTENT, '--tools', join(dir, 'tools.mjs'), '--model', 'nope:x'], 'E_MODEL_SPEC'],
      [
        ['plan', INTENT, '--tools', join(dir, 'tools.mjs'), '--model', model, '--policy', 'examples/kyc/program.yaml'],
        'E_POLICY_INVALID',
      ],
    ];
    for (const [args, code] of cases) {
      const r = await nanoVm([...args, '--json']);
      expect([args.join(' '), r.code]).toEqual([args.join(' '), 2]);
      expect(r.json<ErrorOutput>().error.code).toBe(code);
    }
  });
});

describe('nano-vm plan against an OpenAI-compatible server', () => {
  it('asks for structured output in the program schema, feeds the issues back and writes the valid draft', async () => {
    const server = await fakeOpenAi(
      (_s, n) =>
        openaiCompletion(JSON.stringify(n === 1 ? INVALID : VALID), {
          prompt_tokens: 5200,
          completion_tokens: 310,
          total_tokens: 5510,
        }),
      null,
    );
    servers.push(server);
    const out = join(dir, 'openai.yaml');
    const r = await nanoVm(
      ['plan', INTENT, '--tools', join(dir, 'tools.mjs'), '--model', 'openai:gpt-plan', '-o', out, '--json'],
      { OPENAI_BASE_URL: `${server.origin}/v1` },
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ outcome: 'DRAFTED', drafts: 2, scripted_model: false });
    expect(loadProgram(readFileSync(out, 'utf8')).program).toEqual(VALID);

    expect(server.seen).toHaveLength(2);
    // Two requests, as checked just above.
    const [first, second] = server.seen.map((s) => s.body) as [ChatRequestBody, ChatRequestBody];
    expect(first.model).toBe('gpt-plan');
    // The program schema is not strict-compatible (optional fields, oneOf): sent as guidance, $refs inlined.
    expect(first.response_format).toMatchObject({ type: 'json_schema', json_schema: { name: 'draft', strict: false } });
    const schema = first.response_format!.json_schema.schema;
    expect(schema.required).toEqual(['format', 'id', 'input_schema', 'steps']);
    expect(JSON.stringify(schema)).not.toContain('$ref');
    expect(userText(first)).toContain(INTENT);
    expect(userText(first)).toContain('"name":"lookup_order"');
    expect(userText(first)).not.toContain('E_UNKNOWN_TOOL');
    expect(userText(second)).toContain('E_UNKNOWN_TOOL');
    expect(userText(second)).toContain("did you mean 'lookup_order'");
  });
});
