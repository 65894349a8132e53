/**
 * The service in process (no transport): what a deployment with a curated catalogue
 * (`inline_programs: false`) lets each scope do.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { policyFromValue, type PolicySnapshot } from '@nano-vm/kernel';
import { MemoryStore, ToolRegistry, modelFromSpec, toolsFromModule } from '@nano-vm/runtime';
import { DEFAULT_LIMITS, MemoryServerState, NanoVmService, type Principal } from '../src/index.js';

const ROOT = new URL('../../..', import.meta.url).pathname;
const text = readFileSync(`${ROOT}examples/refund/program.yaml`, 'utf8');
const input = JSON.parse(readFileSync(`${ROOT}examples/refund/inputs/approve.json`, 'utf8')) as unknown;

async function service(inlinePrograms: boolean, policy?: PolicySnapshot): Promise<NanoVmService> {
  const tools: ToolRegistry = toolsFromModule(
    (await import(`${ROOT}examples/refund/tools.mjs`)) as Record<string, unknown>,
    'tools.mjs',
  );
  return new NanoVmService({
    store: new MemoryStore(),
    state: new MemoryServerState(),
    model: modelFromSpec(`scripted:${ROOT}examples/refund/model.yaml`),
    tools,
    limits: DEFAULT_LIMITS,
    inlinePrograms,
    ...(policy ? { policy } : {}),
  });
}

const runner: Principal = { name: 'runner', scopes: ['read', 'run'] };
const admin: Principal = { name: 'admin', scopes: ['read', 'admin'] };

describe('a curated catalogue (inline_programs false)', () => {
  it('runs stored programs only; only an admin stores them', async () => {
    const s = await service(false);
    await expect(s.run(runner, { program: { text }, input })).rejects.toMatchObject({ code: 'E_MCP_FORBIDDEN' });
    await expect(s.putProgram(runner, { text })).rejects.toMatchObject({ code: 'E_MCP_FORBIDDEN' });
    await s.putProgram(admin, { text });
    await expect(s.run(admin, { program: { name: 'refund' }, input })).rejects.toMatchObject({
      code: 'E_MCP_FORBIDDEN',
    });
    expect(await s.run(runner, { program: { name: 'refund' }, input })).toMatchObject({
      status: 'completed',
      outcome: 'SUCCESS',
    });
  });

  it('still validates and replays against inline text (nothing runs)', async () => {
    const s = await service(false);
    expect((await s.validate(runner, { program: { text } })).valid).toBe(true);
    await s.putProgram(admin, { text });
    const r = await s.run(runner, { program: { name: 'refund' }, input });
    const strict = text.replace('input.amount <= 500', 'input.amount <= 50');
    const cf = await s.replay(runner, { run_id: r.run_id, program: { text: strict } });
    expect(cf).toMatchObject({ counterfactual: true, identical: false });
  });
});

describe("the server's policy", () => {
  const policy = policyFromValue({
    format: 'nano-vm.policy/v1',
    id: 'refunds',
    version: '1',
    tools: { issue_refund: { capabilities: ['payments.refund'] } },
    grants: [{ id: 'refund_step_may_refund', step: 'issue_refund', capabilities: ['payments.refund'] }],
  }).policy!;

  it('holds every run to it: a program of the client’s own cannot reach a tool by another step', async () => {
    const s = await service(true, policy);
    const ok = await s.run(runner, { program: { text }, input });
    expect(ok).toMatchObject({ status: 'completed', outcome: 'SUCCESS' });
    expect((ok.receipt as { policy_hash: string }).policy_hash).not.toBe(null);
    const sneaky = text
      .replace('next: issue_refund', 'next: sneaky_refund')
      .replace('id: issue_refund', 'id: sneaky_refund');
    expect(sneaky).toContain('id: sneaky_refund');
    expect(sneaky).toContain('tool: issue_refund');
    await expect(s.run(runner, { program: { text: sneaky }, input })).rejects.toMatchObject({
      issues: expect.arrayContaining([expect.objectContaining({ code: 'E_POLICY_GRANT' })]) as unknown,
    });
    // A request the policy refused never used its idempotency key.
    await expect(s.run(runner, { program: { text: sneaky }, input, idempotency_key: 'k1' })).rejects.toMatchObject({
      code: 'E_PROGRAM_INVALID',
    });
    expect(await s.run(runner, { program: { text }, input, idempotency_key: 'k1' })).toMatchObject({ replayed: false });
    const v = await s.validate(runner, { program: { text: sneaky } });
    expect(v.issues.map((i) => i.code)).toContain('E_POLICY_GRANT');
  });
});

describe('erase_subject', () => {
  it('needs the erase scope, and erases the subject’s sensitive values from finished runs', async () => {
    const s = await service(true);
    await s.run(runner, { program: { text }, input, subject: 'ana' });
    await expect(s.erase(runner, { subject: 'ana' })).rejects.toMatchObject({ code: 'E_MCP_FORBIDDEN' });
    const report = (await s.erase({ name: 'dpo', scopes: ['erase'] }, { subject: 'ana' })) as { erased: unknown[] };
    expect(report.erased).toHaveLength(1);
  });
});

describe('an llm-nano-vm v0.8 program over MCP (format llm-nano-vm/v0.8)', () => {
  const v08 = readFileSync(`${ROOT}packages/mcp/test/fixtures/v08/customer_refund.json`, 'utf8');

  async function v08Service(): Promise<NanoVmService> {
    const dir = mkdtempSync(join(tmpdir(), 'nano-vm-mcp-v08-'));
    const model = join(dir, 'model.yaml');
    writeFileSync(model, 'model: v08-script\nanswers:\n  analyze: ["yes"]\n');
    const tools = toolsFromModule(
      {
        tools: [
          { name: 'issue_refund', run: (a: { order_id: string }) => ({ refund_id: `rf_${a.order_id}` }) },
          { name: 'send_rejection', run: (a: { order_id: string }) => ({ rejected: a.order_id }) },
        ],
      },
      'inline tools',
    );
    return new NanoVmService({
      store: new MemoryStore(),
      state: new MemoryServerState(),
      model: modelFromSpec(`scripted:${model}`),
      tools,
      limits: DEFAULT_LIMITS,
    });
  }

  it('converts and runs it as nano-vm import would, returning what was not carried over as located warnings', async () => {
    const s = await v08Service();
    const v = await s.validate(runner, { program: { text: v08, format: 'llm-nano-vm/v0.8' } });
    expect(v).toMatchObject({ valid: true, program_id: 'customer_refund' });
    const r = await s.run(runner, {
      program: { text: v08, format: 'llm-nano-vm/v0.8' },
      input: { user_input: 'charged twice', order_id: 'o_1' },
    });
    expect(r).toMatchObject({ status: 'completed' });
    expect(r.warnings?.length).toBeGreaterThan(0);
    for (const w of r.warnings!)
      expect(w).toMatchObject({ code: 'W_IMPORT_LOSSY', path: expect.stringMatching(/^\//) });
    // The same text as a nano-vm program is not a program at all: the format decides.
    await expect(s.run(runner, { program: { text: v08 }, input: {} })).rejects.toMatchObject({ code: 'E_FORMAT' });
  });

  it('refuses a v0.8 text that is not JSON, or not a v0.8 program, with the import codes', async () => {
    const s = await v08Service();
    await expect(
      s.run(runner, { program: { text: 'steps: []', format: 'llm-nano-vm/v0.8' }, input: {} }),
    ).rejects.toMatchObject({ code: 'E_JSON' });
    await expect(
      s.run(runner, { program: { text: '{"steps": []}', format: 'llm-nano-vm/v0.8' }, input: {} }),
    ).rejects.toMatchObject({ code: 'E_IMPORT_INVALID' });
    await expect(
      s.run(runner, {
        program: { text: '{"steps": [{"id": "a", "type": "shell"}]}', format: 'llm-nano-vm/v0.8' },
        input: {},
      }),
    ).rejects.toMatchObject({ code: 'E_IMPORT_STEP_TYPE' });
  });
});
