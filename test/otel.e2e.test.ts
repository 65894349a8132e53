/**
 * The CLI emits OpenTelemetry spans when the environment asks for them (NANO_VM_OTEL=1 or the
 * standard OTEL_* exporter variables) and an SDK is registered in the process: here one preloaded
 * with `node --import`, recording to a file. Without the variables, no span is made.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const SETUP = join(ROOT, 'test/fixtures/otel-setup.mjs');
const dir = mkdtempSync(join(tmpdir(), 'nano-vm-otel-'));

function runWithSdk(env: Record<string, string>, out: string) {
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      SETUP,
      CLI,
      'run',
      'examples/refund',
      '--input',
      'examples/refund/inputs/approve.json',
      '--deterministic',
      '--json',
    ],
    {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        ...process.env,
        OTEL_TEST_OUT: out,
        NANO_VM_OTEL: '',
        OTEL_TRACES_EXPORTER: '',
        OTEL_EXPORTER_OTLP_ENDPOINT: '',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '',
        ...env,
      },
    },
  );
  expect(r.status, r.stderr).toBe(0);
  return {
    run: JSON.parse(r.stdout),
    spans: JSON.parse(readFileSync(out, 'utf8')) as {
      name: string;
      attributes: Record<string, unknown>;
      parent: string | null;
      id: string;
    }[],
  };
}

describe('nano-vm run with OpenTelemetry', () => {
  it('with NANO_VM_OTEL=1: one span per step under one run span, with the run and step ids', () => {
    const { run, spans } = runWithSdk({ NANO_VM_OTEL: '1' }, join(dir, 'on.json'));
    const root = spans.find((s) => s.parent === null || !spans.some((p) => p.id === s.parent))!;
    const steps = spans.filter((s) => s.name.startsWith('nano-vm.step '));
    expect(steps.map((s) => s.attributes['nano_vm.step_id'])).toEqual(['classify', 'decide', 'issue_refund']);
    for (const s of [root, ...steps]) expect(s.attributes['nano_vm.run_id']).toBe(run.run_id);
    for (const s of steps) expect(s.parent).toBe(root.id);
  });

  it('with the standard OTEL_TRACES_EXPORTER set as well', () => {
    const { spans } = runWithSdk({ OTEL_TRACES_EXPORTER: 'otlp' }, join(dir, 'std.json'));
    expect(spans.some((s) => s.name.startsWith('nano-vm.step '))).toBe(true);
  });

  it('without them, no span is made', () => {
    const out = join(dir, 'off.json');
    const { spans } = runWithSdk({}, out);
    expect(existsSync(out)).toBe(true);
    expect(spans).toEqual([]);
  });
});
