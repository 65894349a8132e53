/**
 * End to end (issue 11: item 5 and rough edges of `run`, `resume` and the read-only commands):
 * everything a command can check is checked before anything runs or any file is created — the
 * program file, the program, the input, the model (only when one is needed), the output path —
 * bundles are written atomically, a run's record survives a bundle that cannot be written,
 * commands that read stores create none, and the resume command printed at a suspension works
 * exactly as printed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
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
}

/** The CLI in `cwd` (default: the test directory), with no NANO_VM_STORE: the default store is ./.nano-vm/nano-vm.db there. */
function nanoVm(args: string[], cwd = dir): Result {
  const env = { ...process.env };
  delete env.NANO_VM_STORE;
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', env, timeout: 30_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function file(name: string, text: string): string {
  const f = join(dir, name);
  mkdirSync(join(f, '..'), { recursive: true });
  writeFileSync(f, text);
  return f;
}

/** A fresh empty directory. */
const fresh = (name: string): string => {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  return d;
};

/** A program without llm steps whose one tool leaves a mark: a file the tool appends to each call. */
const TOOL_PROGRAM = `format: nano-vm.program/v1
id: marker
version: "1"
input_schema:
  type: object
  properties: { n: { type: integer } }
steps:
  - id: mark
    kind: tool
    tool: mark
    next: done
  - id: done
    kind: end
    outcome: MARKED
`;

let MARKS: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-preflight-'));
  MARKS = join(dir, 'marks.txt');
  file('marker.yaml', TOOL_PROGRAM);
  file(
    'marker-tools.mjs',
    `import { appendFileSync } from 'node:fs';
export const tools = [{ name: 'mark', description: 'leaves a mark', run: () => { appendFileSync(${JSON.stringify(MARKS)}, 'x'); return { marked: true }; } }];
`,
  );
  file('n1.json', '{"n": 1}');
  file('a-file', 'not a directory');
  file(
    'needs-input.yaml',
    TOOL_PROGRAM.replace(
      '  properties: { n: { type: integer } }',
      '  required: [n]\n  properties: { n: { type: integer } }',
    ),
  );
});

const marks = (): number => (existsSync(MARKS) ? readFileSync(MARKS, 'utf8').length : 0);
const run = (...extra: string[]) => nanoVm(['run', 'marker.yaml', '--tools', 'marker-tools.mjs', ...extra]);

describe('run --out: checked before anything runs (E_FILE, exit 2)', () => {
  it.each([
    ['in a missing directory', 'nodir/out.json', /directory nodir does not exist/],
    ['below a regular file', 'a-file/out.json', /a-file is not a directory|not a directory/],
    ['that is a directory', '.', /it is a directory/],
  ])('an output file %s', (_what, out, why) => {
    const before = marks();
    const db = join(dir, `out-${before}.db`);
    const r = run('--input', 'n1.json', '--store', `sqlite:${db}`, '--out', out);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^nano-vm: E_FILE: cannot write the bundle to /);
    expect(r.err).toMatch(why);
    expect(r.err).not.toMatch(/\n\s+at /);
    // Nothing ran, nothing was created.
    expect(marks()).toBe(before);
    expect(existsSync(db)).toBe(false);
  });
});

describe('an output directory below a regular file (E_FILE, exit 2, before anything runs)', () => {
  it.each([
    ['run <example dir>', ['run', join(ROOT, 'examples/kyc'), '--store', 'sqlite:dir-out.db']],
    ['examples', ['examples', join(ROOT, 'examples')]],
  ])('%s --out', (_what, args) => {
    const r = nanoVm([...args, '--out', 'a-file/bundles']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^nano-vm: E_FILE: cannot write the bundles to directory a-file\/bundles/);
    expect(existsSync(join(dir, 'dir-out.db'))).toBe(false);
  });
});

describe('run --out: written atomically, and a failed write loses no run', () => {
  it('replaces an existing file whole and leaves no temporary file behind', () => {
    const d = fresh('atomic');
    const out = join(d, 'bundle.json');
    writeFileSync(out, 'old');
    const r = run('--input', 'n1.json', '--deterministic', '--out', out);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ receipt: { outcome: 'MARKED' } });
    expect(readdirSync(d)).toEqual(['bundle.json']);
  });

  it.runIf(existsSync('/dev/full'))(
    'to /dev/full with a memory store: E_OUTPUT_WRITE (exit 1), the run reported, its bundle saved elsewhere',
    () => {
      const before = marks();
      const r = run('--input', 'n1.json', '--deterministic', '--out', '/dev/full', '--json');
      expect(marks()).toBe(before + 1);
      expect(r.code).toBe(1);
      const [line, error] = r.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(line).toMatchObject({ status: 'completed', outcome: 'MARKED' });
      expect(error).toMatchObject({ error: { code: 'E_OUTPUT_WRITE' } });
      const message = (error!.error as { message: string }).message;
      const saved = /its bundle was saved to (\S+) instead/.exec(message);
      expect(saved, message).not.toBeNull();
      const verify = nanoVm(['verify', saved![1]!]);
      expect(verify.code, verify.err).toBe(0);
      expect(JSON.parse(readFileSync(saved![1]!, 'utf8')).receipt.run_id).toBe(line!.run_id);
    },
  );

  it.runIf(existsSync('/dev/full'))(
    'to /dev/full with a SQLite store: E_OUTPUT_WRITE names the export command, which works as printed',
    () => {
      const db = join(dir, 'full.db');
      const r = run('--input', 'n1.json', '--store', `sqlite:${db}`, '--out', '/dev/full');
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/status completed\s+outcome MARKED/);
      const m = /^nano-vm: E_OUTPUT_WRITE: .*export it with (nano-vm export \S+ --store \S+) -o <file>/m.exec(r.err);
      expect(m, r.err).not.toBeNull();
      const out = join(dir, 'exported.json');
      const words = m![1]!.split(' ').slice(1);
      expect(nanoVm([...words, '-o', out]).code).toBe(0);
      expect(nanoVm(['verify', out]).code).toBe(0);
    },
  );
});

describe('run: file, program, input, then model — a model only when one is needed', () => {
  it('a missing program file is E_FILE, not E_MODEL_SPEC', () => {
    const r = nanoVm(['run', 'nosuch.yaml']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^nano-vm: E_FILE: cannot read program nosuch\.yaml: no such file/);
  });

  it('a program with no llm step runs without --model', () => {
    const r = run('--input', 'n1.json', '--deterministic', '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      status: 'completed',
      outcome: 'MARKED',
      receipt: { model: { id: 'none' } },
    });
  });

  it('a program with an llm step and no --model: its bad input is reported first, then the missing model', () => {
    const p = join(ROOT, 'examples/refund/program.yaml');
    const tools = ['--tools', join(ROOT, 'examples/refund/tools.mjs')];
    const bad = nanoVm(['run', p, ...tools, '--input', file('bad-refund.json', '{"order_id": 7}')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^nano-vm: E_INPUT_INVALID: /);
    const noModel = nanoVm(['run', p, ...tools, '--input', join(ROOT, 'examples/refund/inputs/approve.json')]);
    expect(noModel.code).toBe(2);
    expect(noModel.err).toMatch(/^nano-vm: E_MODEL_SPEC: no model: program refund has llm steps/);
  });

  it('without --input: refused (E_USAGE) when the input_schema requires fields', () => {
    const before = marks();
    const r = nanoVm(['run', 'needs-input.yaml', '--tools', 'marker-tools.mjs', '--deterministic']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^nano-vm: E_USAGE: program needs-input\.yaml needs an input .*pass --input <file\.json>/);
    expect(marks()).toBe(before);
  });

  it('without --input: runs with {} and says so when the input_schema accepts it', () => {
    const r = run('--deterministic');
    expect(r.code).toBe(0);
    expect(r.err).toContain('no --input given: running with the empty input {}');
  });
});

describe('commands that read stores create none', () => {
  it.each([
    ['export', ['export', 'run-x']],
    ['resume', ['resume', 'run-x', '--event', 'n1.json']],
    ['recover', ['recover', '--run', 'run-x']],
    ['erase', ['erase', '--subject', 's']],
  ])('%s in a directory without a store: E_STORE_MISSING, and no .nano-vm/', (_name, args) => {
    const cwd = fresh(`ro-${_name}`);
    copyInput(cwd);
    const r = nanoVm(args, cwd);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^nano-vm: E_STORE_MISSING: no store sqlite:\.\/\.nano-vm\/nano-vm\.db/);
    expect(readdirSync(cwd)).toEqual(['n1.json']);
  });

  it('runs in a directory without a store lists none (exit 0) and creates none', () => {
    const cwd = fresh('ro-runs');
    const r = nanoVm(['runs'], cwd);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe('0 runs in sqlite:./.nano-vm/nano-vm.db (there is no store file yet)\n');
    expect(nanoVm(['runs', '--json'], cwd).out).toBe('{"runs":[]}\n');
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('a bare recover in a directory without a store has nothing to recover (exit 0) and creates none', () => {
    const cwd = fresh('ro-bare-recover');
    const r = nanoVm(['recover'], cwd);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /^0 of 0 runs recovered \(there is no store file for sqlite:\.\/\.nano-vm\/nano-vm\.db yet\)/,
    );
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('a refused run creates no store (bad input, missing model)', () => {
    const cwd = fresh('refused-run');
    copyInput(cwd);
    // The example directory brings its model: the input is refused by the program's input_schema.
    const bad = nanoVm(['run', join(ROOT, 'examples/refund'), '--input', 'n1.json'], cwd);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^nano-vm: E_INPUT_INVALID: /);
    const p = join(ROOT, 'examples/refund/program.yaml');
    expect(nanoVm(['run', p, '--input', join(ROOT, 'examples/refund/inputs/approve.json')], cwd).code).toBe(2);
    expect(readdirSync(cwd)).toEqual(['n1.json']);
  });
});

function copyInput(cwd: string): void {
  writeFileSync(join(cwd, 'n1.json'), '{"n": 1}');
}

describe('the resume command printed at a suspension', () => {
  /** Runs the printed `nano-vm resume …` line word for word, with a real event file for <file.json>. */
  function resumeAsPrinted(printed: string, cwd: string): Result {
    const line = /(nano-vm resume .*)$/m.exec(printed);
    expect(line, printed).not.toBeNull();
    const event = join(dir, 'approve.json');
    writeFileSync(event, JSON.stringify({ decision: 'approve', approver: 'b.ng' }));
    const words = line![1]!.split(' ').map((w) => (w === '<file.json>' ? event : w));
    expect(words[0]).toBe('nano-vm');
    return nanoVm(words.slice(1), cwd);
  }

  it('works exactly as printed for an example directory and the default store', () => {
    const cwd = fresh('printed-default');
    const r = nanoVm(
      ['run', join(ROOT, 'examples/approval'), '--input', join(ROOT, 'examples/approval/inputs/waiting.json')],
      cwd,
    );
    expect(r.code, r.err).toBe(0);
    const resumed = resumeAsPrinted(r.out, cwd);
    expect(resumed.err).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.out).toMatch(/status completed\s+outcome PAID/);
  });

  it('works exactly as printed for a program file with --model, --tools and --store', () => {
    const cwd = fresh('printed-file');
    const db = join(dir, 'printed.db');
    const ex = join(ROOT, 'examples/approval');
    const r = nanoVm(
      [
        'run',
        join(ex, 'program.yaml'),
        '--model',
        `scripted:${join(ex, 'model.yaml')}`,
        '--tools',
        join(ex, 'tools.mjs'),
        '--input',
        join(ex, 'inputs/waiting.json'),
        '--store',
        `sqlite:${db}`,
      ],
      cwd,
    );
    expect(r.code, r.err).toBe(0);
    const resumed = resumeAsPrinted(r.out, cwd);
    expect(resumed.err).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.out).toMatch(/status completed\s+outcome PAID/);
  });
});
