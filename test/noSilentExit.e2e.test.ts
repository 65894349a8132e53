/**
 * End to end (issue 11, item 1 and the EPIPE rough edge): the real CLI never exits 0 while a run
 * it started is unfinished. Every declared timeout fires even when the effect never settles (the
 * step then takes its declared error path), a tools module whose import never settles is refused
 * with a code, a process that would end with a run unfinished says so and exits non-zero, and a
 * reader that closes stdout early ends no run halfway and prints no stack.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
let dir: string;

interface Result {
  code: number;
  out: string;
  err: string;
  ms: number;
}

function nanoVm(args: string[], env: Record<string, string> = {}): Result {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, NANO_VM_STORE: `sqlite:${join(dir, 'default.db')}`, ...env },
    timeout: 30_000,
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, ms: performance.now() - t0 };
}

const jsonLines = (out: string): Record<string, unknown>[] =>
  out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

function file(name: string, text: string): string {
  const f = join(dir, name);
  mkdirSync(join(f, '..'), { recursive: true });
  writeFileSync(f, text);
  return f;
}

/** An llm step that times out after 500 ms and falls back to "no". */
const LLM_PROGRAM = `format: nano-vm.program/v1
id: hang_llm
version: "1"
input_schema: { type: object }
steps:
  - id: ask
    kind: llm
    prompt: "yes or no?"
    projection: []
    output: { enum: ["yes", "no"] }
    timeout_ms: 500
    on_error: { action: fallback, value: "no" }
    next: decide
  - id: decide
    kind: condition
    cases:
      - when: 'steps.ask.output == "yes"'
        next: said_yes
    else: said_no
  - id: said_yes
    kind: end
    outcome: YES
  - id: said_no
    kind: end
    outcome: NO
`;

/** A tool step that times out after 500 ms and falls back. */
const TOOL_PROGRAM = `format: nano-vm.program/v1
id: hang_tool
version: "1"
input_schema: { type: object }
steps:
  - id: call
    kind: tool
    tool: stuck
    timeout_ms: 500
    on_error: { action: fallback, value: { fell_back: true } }
    next: done
  - id: done
    kind: end
    outcome: DONE
`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-settle-'));
  file('llm/program.yaml', LLM_PROGRAM);
  file('llm/model.yaml', 'model: hang\nanswers:\n  ask:\n    - { timeout: true }\n');
  file('tool/program.yaml', TOOL_PROGRAM);
  file(
    'tool/tools.mjs',
    `export const tools = [{ name: 'stuck', description: 'never answers', run: () => new Promise(() => {}) }];\n`,
  );
  file(
    'tla/tools.mjs',
    `await new Promise(() => {});\nexport const tools = [{ name: 'stuck', description: 'never loaded', run: () => ({}) }];\n`,
  );
  file('tla/program.yaml', TOOL_PROGRAM);
  // An example directory whose middle case hangs: a, c answer at once, b never does.
  file('cases/program.yaml', LLM_PROGRAM);
  file(
    'cases/model.yaml',
    'model: cases\nanswers:\n  ask: ["yes"]\ncases:\n  b:\n    answers:\n      ask:\n        - { timeout: true }\n',
  );
  for (const c of ['a', 'b', 'c']) file(`cases/inputs/${c}.json`, '{}');
  file('root/cases/program.yaml', LLM_PROGRAM);
  file(
    'root/cases/model.yaml',
    'model: cases\nanswers:\n  ask: ["yes"]\ncases:\n  b:\n    answers:\n      ask:\n        - { timeout: true }\n',
  );
  for (const c of ['a', 'b', 'c']) file(`root/cases/inputs/${c}.json`, '{}');
  // A tool that ends the process in the middle of the run.
  file('exit/program.yaml', TOOL_PROGRAM.replace('tool: stuck', 'tool: quit'));
  file(
    'exit/tools.mjs',
    `export const tools = [{ name: 'quit', description: 'ends the process', run: () => process.exit(0) }];\n`,
  );
});

describe('a timeout whose effect never settles', () => {
  it('fires for an llm step: the run takes its fallback and is reported', () => {
    const r = nanoVm(['run', 'llm', '--input', file('empty.json', '{}'), '--deterministic', '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const [run] = jsonLines(r.out);
    expect(run).toMatchObject({ status: 'completed', outcome: 'NO' });
    expect(r.ms).toBeGreaterThanOrEqual(500);
  });

  it('fires for a tool returning a promise that never settles', () => {
    const r = nanoVm(['run', 'tool', '--input', file('empty.json', '{}'), '--deterministic', '--json']);
    expect(r.code).toBe(0);
    const [run] = jsonLines(r.out);
    expect(run).toMatchObject({ status: 'completed', outcome: 'DONE' });
    const receipt = run!.receipt as { counts: { fallbacks: number } };
    expect(receipt.counts.fallbacks).toBe(1);
  });

  it('a hanging case of an example directory does not stop the later ones', () => {
    const r = nanoVm(['run', 'cases', '--deterministic', '--json']);
    expect(r.code).toBe(0);
    expect(jsonLines(r.out).map((x) => [x.case, x.status, x.outcome])).toEqual([
      ['a', 'completed', 'YES'],
      ['b', 'completed', 'NO'],
      ['c', 'completed', 'YES'],
    ]);
  });

  it('`examples` runs every case and prints its summary', () => {
    const r = nanoVm(['examples', 'root', '--out', join(dir, 'bundles'), '--deterministic', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { runs: { case: string; outcome: string }[]; failures: number };
    expect(out.runs.map((x) => [x.case, x.outcome])).toEqual([
      ['a', 'YES'],
      ['b', 'NO'],
      ['c', 'YES'],
    ]);
    expect(out.failures).toBe(0);
  });
});

describe('a tools module whose top-level await never settles', () => {
  it('is refused with E_TOOLS_MODULE after the load timeout, before any run', () => {
    const r = nanoVm(['run', 'tla', '--input', file('empty.json', '{}'), '--store', `sqlite:${join(dir, 'tla.db')}`], {
      NANO_VM_TOOLS_TIMEOUT_MS: '700',
    });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /^nano-vm: E_TOOLS_MODULE: tools module tla\/tools\.mjs did not finish loading within 700 ms/,
    );
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(r.ms).toBeGreaterThanOrEqual(700);
  });

  it('the load timeout setting itself is checked', () => {
    const r = nanoVm(['run', 'tla', '--input', file('empty.json', '{}')], { NANO_VM_TOOLS_TIMEOUT_MS: 'soon' });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^nano-vm: E_USAGE: NANO_VM_TOOLS_TIMEOUT_MS/);
  });
});

describe('a process that would end with a run unfinished', () => {
  it('exits non-zero with E_UNSETTLED naming the run, and says how to continue it', () => {
    const db = join(dir, 'exit.db');
    const r = nanoVm(['run', 'exit', '--input', file('empty.json', '{}'), '--store', `sqlite:${db}`]);
    expect(r.code).toBe(1);
    const m = /nano-vm: E_UNSETTLED: .*run (run-[0-9a-f-]+)/.exec(r.err);
    expect(m, r.err).not.toBeNull();
    expect(r.err).toContain(`continue it with: nano-vm recover exit --store sqlite:${db} --run ${m![1]}`);
    const runs = nanoVm(['runs', '--store', `sqlite:${db}`, '--json']);
    expect((JSON.parse(runs.out) as { runs: { run_id: string; status: string }[] }).runs).toEqual([
      expect.objectContaining({ run_id: m![1], status: 'running' }),
    ]);
    // `recover` invokes the tool again, which ends that process too: reported the same way.
    const again = nanoVm(['recover', 'exit', '--store', `sqlite:${db}`]);
    expect(again.code).toBe(1);
    expect(again.err).toContain(
      `nano-vm: E_UNSETTLED: the process was ended (process.exit) before this was finished: run ${m![1]} (being recovered)`,
    );
  });

  it('reports a command whose work can never finish (the event loop ran empty) with E_UNSETTLED', () => {
    // The guard itself, in a process of its own: a tracked piece of work that nothing will ever settle.
    const guard = join(ROOT, 'packages/cli/dist/exitGuard.js');
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { installExitGuard, track } from ${JSON.stringify(guard)};
         installExitGuard();
         track('loading the moon');
         await new Promise(() => {});`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^nano-vm: E_UNSETTLED: .*loading the moon/);
  });
});

describe('stdout closed by its reader (`| head -c 100`)', () => {
  it('prints no stack, and every run still reaches its end in the store', async () => {
    const db = join(dir, 'epipe.db');
    const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI, 'run', join(ROOT, 'examples/kyc'), '--json', '--store', `sqlite:${db}`], {
        cwd: dir,
      });
      let err = '';
      p.stderr.on('data', (d) => (err += d));
      // The reader goes away before the first line: every write the CLI makes meets a closed pipe.
      p.stdout.destroy();
      p.on('close', (code) => resolve({ code, err }));
    });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const runs = JSON.parse(nanoVm(['runs', '--store', `sqlite:${db}`, '--json']).out) as {
      runs: { status: string }[];
    };
    expect(runs.runs.map((x) => x.status)).toEqual(Array(6).fill('completed'));
  });
});
