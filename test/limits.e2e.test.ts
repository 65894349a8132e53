/**
 * Issue 11 items 3, 7 and 8 through the real CLI: depth and size limits (docs/limits.md) hold at
 * every boundary with a code and no stack overflow; duplicate member names and non-UTF-8 bytes
 * are refused with the byte offset; `__proto__` data survives run, verify and `replay --store`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
let dir: string;

function nanoVmWith(env: Record<string, string>, ...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, NANO_VM_STORE: `sqlite:${join(dir, 'limits.db')}`, ...env },
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}
const nanoVm = (...args: string[]) => nanoVmWith({}, ...args);

const PROGRAM = `format: nano-vm.program/v1
id: limits
input_schema:
  type: object
  properties:
    data: { type: object }
    email: { type: string }
sensitive: [input.email]
steps:
  - id: __proto__
    kind: tool
    tool: echo
    args: { d: input.data, e: input.email }
    output_schema: { type: object }
    next: check
  - id: check
    kind: condition
    cases:
      - when: "steps.__proto__.output.ok == true"
        next: done
    else: other
  - id: done
    kind: end
    outcome: OK
  - id: other
    kind: end
    outcome: OTHER
    failure: true
`;

const TOOLS = `export const tools = [{
  name: 'plain',
  // CRASH=1: the process dies inside the call, leaving the run \`running\` for recover.
  run: async () => (process.env.CRASH === '1' ? process.exit(9) : { ok: true }),
}, {
  name: 'echo',
  run: async (a) => ({ ok: ({}).polluted === undefined, got: a.d, mail: a.e, ...JSON.parse('{"__proto__":{"polluted":"y"}}') }),
}];
`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-limits-'));
  writeFileSync(join(dir, 'program.yaml'), PROGRAM);
  writeFileSync(join(dir, 'plain.yaml'), PROGRAM.replaceAll('__proto__', 'first').replace('tool: echo', 'tool: plain'));
  writeFileSync(join(dir, 'tools.mjs'), TOOLS);
  writeFileSync(join(dir, 'model.yaml'), 'model: none\nanswers: {}\n');
});

const file = (name: string, content: string | Buffer) => {
  writeFileSync(join(dir, name), content);
  return name;
};
const nested = (n: number) => `{"data":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`;

describe('depth and size limits (docs/limits.md)', () => {
  it.each([5000, 3000])('an input nested %i deep is refused with E_TOO_DEEP (exit 2), no stack overflow', (n) => {
    const r = nanoVm(
      'run',
      'program.yaml',
      '--input',
      file(`deep${n}.json`, nested(n)),
      '--tools',
      'tools.mjs',
      '--model',
      'scripted:model.yaml',
    );
    expect(r.err).toMatch(/^nano-vm: E_TOO_DEEP: .*nested deeper than 128 levels at byte \d+/);
    expect(r.err).not.toMatch(/Maximum call stack|E_INTERNAL/);
    expect(r.code).toBe(2);
  });

  it('an input inside the limit runs, verifies and replays (the same limits in run, verify and replay)', () => {
    const r = nanoVm(
      'run',
      'program.yaml',
      '--input',
      file('deep100.json', nested(100)),
      '--tools',
      'tools.mjs',
      '--model',
      'scripted:model.yaml',
      '--out',
      'deep100.bundle.json',
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(nanoVm('verify', 'deep100.bundle.json').code).toBe(0);
    expect(nanoVm('replay', 'deep100.bundle.json').code).toBe(0);
  });

  it('a bundle nested deeper than bundles may be is refused by verify and replay with E_TOO_DEEP', () => {
    const b = file('deep.bundle.json', `{"format":"nano-vm.bundle/v1","input":${'['.repeat(400)}${']'.repeat(400)}}`);
    for (const cmd of ['verify', 'replay']) {
      const r = nanoVm(cmd, b);
      expect(r.err).toMatch(/E_TOO_DEEP/);
      expect(r.code).toBe(2);
    }
  });

  it('a JSON program nested 5,000 deep is refused as E_PARSE with its position, not a crash', () => {
    const p = file('deep.json', `{"format":"nano-vm.program/v1","x":${'['.repeat(5000)}${']'.repeat(5000)}}`);
    const r = nanoVm('validate', p);
    expect(r.out + r.err).toMatch(/deep\.json:1:\d+: error E_PARSE: the document is nested deeper than 128 levels/);
    expect(r.code).toBe(1);
  });

  it('a YAML program indented 1,000 levels deep is refused as E_PARSE', () => {
    let y = 'format: nano-vm.program/v1\nx:\n';
    for (let i = 0; i < 1000; i++) y += `${' '.repeat(i + 1)}a:\n`;
    const r = nanoVm('validate', file('indent.yaml', y));
    expect(r.out + r.err).toMatch(/E_PARSE: the document is nested deeper than 128 levels/);
    expect(r.code).toBe(1);
  });

  it('a guard of 10,000 `!` is refused with E_GUARD_LIMIT', () => {
    const p = PROGRAM.replace('"steps.__proto__.output.ok == true"', `"${'!'.repeat(10000)}true"`);
    const r = nanoVm('validate', file('bang.yaml', p));
    expect(r.out + r.err).toMatch(/E_GUARD_LIMIT/);
    expect(r.out + r.err).not.toMatch(/Maximum call stack/);
    expect(r.code).toBe(1);
  });

  it('a program larger than 4 MiB is refused with E_TOO_LARGE before it is parsed', () => {
    const big = PROGRAM + `description: "${'x'.repeat(5 * 1024 * 1024)}"\n`;
    const r = nanoVm('validate', file('big.yaml', big));
    expect(r.err).toMatch(/^nano-vm: E_TOO_LARGE: program big\.yaml is \d+ bytes, more than the 4194304 allowed/);
    expect(r.code).toBe(2);
  });
});

describe('duplicate member names and non-UTF-8 bytes', () => {
  let bundle: string;
  beforeAll(() => {
    const r = nanoVm(
      'run',
      'plain.yaml',
      '--input',
      file('ok.json', '{"data":{"x":1},"email":"p@example.com"}'),
      '--tools',
      'tools.mjs',
      '--model',
      'scripted:model.yaml',
      '--out',
      'ok.bundle.json',
    );
    expect(r.code).toBe(0);
    bundle = readFileSync(join(dir, 'ok.bundle.json'), 'utf8');
  });

  it.each(['outcome', 'head_hash'])('verify refuses a bundle whose receipt has two `%s` members', (name) => {
    const doubled = bundle.replace(/"receipt":\s*\{/, `"receipt":{"${name}":"FORGED",`);
    expect(doubled).not.toBe(bundle);
    const r = nanoVm('verify', file(`dup-${name}.bundle.json`, doubled), '--json');
    const out = JSON.parse(r.out) as { valid: boolean; code: string; reason: string };
    expect(out.valid).toBe(false);
    expect(out.code).toBe('E_BUNDLE_FORMAT');
    expect(out.reason).toMatch(new RegExp(`duplicate member name "${name}" at byte \\d+`));
    expect(r.code).toBe(1);
  });

  it('an input with a duplicate member name is refused with E_JSON and the byte offset', () => {
    const r = nanoVm(
      'run',
      'plain.yaml',
      '--input',
      file('dup.json', '{"data":{},"data":{"x":1}}'),
      '--tools',
      'tools.mjs',
      '--model',
      'scripted:model.yaml',
    );
    expect(r.err).toMatch(
      /^nano-vm: E_JSON: input dup\.json is not valid JSON: duplicate member name "data" at byte 11/,
    );
    expect(r.code).toBe(2);
  });

  it('non-UTF-8 bytes in an input are refused with their offset, not read as U+FFFD', () => {
    const bad = Buffer.concat([Buffer.from('{"data":{"k":"a'), Buffer.from([0xff]), Buffer.from('"}}')]);
    const r = nanoVm(
      'run',
      'plain.yaml',
      '--input',
      file('bad.json', bad),
      '--tools',
      'tools.mjs',
      '--model',
      'scripted:model.yaml',
    );
    expect(r.err).toMatch(/^nano-vm: E_JSON: input bad\.json is not UTF-8: malformed byte at offset 15/);
    expect(r.code).toBe(2);
  });

  it('non-UTF-8 bytes in a program are refused with their offset', () => {
    const bad = Buffer.concat([
      Buffer.from(PROGRAM.replace('id: limits', 'id: lim')),
      Buffer.from('# caf'),
      Buffer.from([0xe9, 0x0a]),
    ]);
    const r = nanoVm('validate', file('bad.yaml', bad));
    expect(r.err).toMatch(
      new RegExp(`E_PARSE: program bad\\.yaml is not UTF-8: malformed byte at offset ${bad.length - 2}`),
    );
    expect(r.code).toBe(2);
  });
});

describe('__proto__ is data through run, verify and replay --store', () => {
  it('a step named __proto__ with __proto__ data and a sensitive value replays identically from the store', () => {
    const input = file('proto.json', '{"data":{"__proto__":{"polluted":"x"}},"email":"q@example.com"}');
    const r = nanoVm(
      'run',
      'program.yaml',
      '--input',
      input,
      '--tools',
      'tools.mjs',
      '--model',
      'scripted:model.yaml',
      '--out',
      'proto.bundle.json',
      '--json',
    );
    expect(r.err).toBe('');
    expect(JSON.parse(r.out)).toMatchObject({ status: 'completed', outcome: 'OK' });
    expect(nanoVm('verify', 'proto.bundle.json').code).toBe(0);
    const replay = nanoVm('replay', 'proto.bundle.json', '--store', `sqlite:${join(dir, 'limits.db')}`, '--json');
    expect(JSON.parse(replay.out)).toMatchObject({ identical: true });
    expect(replay.code).toBe(0);
  });
});

describe('recover goes on past a run it cannot recover', () => {
  it('a run whose stored event is not JSON is reported (E_STORE_CORRUPT) and the next one is recovered', () => {
    const db = `sqlite:${join(dir, 'recover.db')}`;
    for (const x of [1, 2]) {
      const input = file(`r${x}.json`, `{"data":{"x":${x}},"email":"r${x}@example.com"}`);
      const r = nanoVmWith(
        { CRASH: '1' },
        'run',
        'plain.yaml',
        '--input',
        input,
        '--tools',
        'tools.mjs',
        '--model',
        'scripted:model.yaml',
        '--store',
        db,
      );
      // The tool ended the process mid-run: the exit guard names the unfinished run (E_UNSETTLED, exit 1).
      expect([r.code, r.err]).toEqual([1, expect.stringContaining('E_UNSETTLED')]);
    }
    const sql = new Database(join(dir, 'recover.db'));
    const ids = (
      sql.prepare("SELECT run_id FROM runs WHERE status = 'running' ORDER BY run_no").all() as { run_id: string }[]
    ).map((r) => r.run_id);
    expect(ids).toHaveLength(2);
    sql
      .prepare('UPDATE events SET body = ? WHERE seq = 0 AND run_no = (SELECT run_no FROM runs WHERE run_id = ?)')
      .run('{"seq":', ids[0]);
    sql.close();
    const r = nanoVm('recover', '--tools', 'tools.mjs', '--model', 'scripted:model.yaml', '--store', db, '--json');
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { run_id: string; recovered: boolean; status?: string; error?: { code: string } });
    expect(lines).toEqual([
      expect.objectContaining({
        run_id: ids[0],
        recovered: false,
        error: expect.objectContaining({ code: 'E_STORE_CORRUPT' }),
      }),
      expect.objectContaining({ run_id: ids[1], recovered: true, status: 'completed' }),
    ]);
    expect(r.code).toBe(1);
  });
});
