/**
 * The service in process (no transport): what a deployment with a curated catalogue
 * (`inline_programs: false`) lets each scope do.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MemoryStore, ToolRegistry, modelFromSpec, toolsFromModule } from '@nano-vm/runtime';
import { DEFAULT_LIMITS, MemoryServerState, NanoVmService, type Principal } from '../src/index.js';

const ROOT = new URL('../../..', import.meta.url).pathname;
const text = readFileSync(`${ROOT}examples/refund/program.yaml`, 'utf8');
const input = JSON.parse(readFileSync(`${ROOT}examples/refund/inputs/approve.json`, 'utf8')) as unknown;

async function service(inlinePrograms: boolean): Promise<NanoVmService> {
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
