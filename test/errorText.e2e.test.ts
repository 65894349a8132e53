/**
 * Error output stays readable whatever the input: excerpts of the offending text are capped, a long
 * list of issues is cut in text mode, input-schema errors name the path and say what is wrong.
 * Spawns the built CLI (`npm test` builds first).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-errortext-'));
});

function nanoVm(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, NANO_VM_STORE: `sqlite:${join(dir, 'e2e.db')}` },
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Deterministic bytes that are neither YAML nor JSON. */
function binary(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 2463534242;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const program = (steps: string[]): string =>
  ['format: nano-vm.program/v1', 'id: p', 'input_schema: {type: object}', 'steps:', ...steps, ''].join('\n');

describe('capped error output', () => {
  it('a binary file named .json: a few lines, not the file', () => {
    const f = join(dir, 'binary.json');
    writeFileSync(f, binary(200_000));
    for (const json of [false, true]) {
      const r = nanoVm('validate', f, ...(json ? ['--json'] : []));
      expect(r.code).not.toBe(0);
      expect(r.code).not.toBe(70);
      expect(r.out.length + r.err.length).toBeLessThan(8_000);
      expect(r.out + r.err).toContain('E_PARSE');
    }
  });

  it('a long guard is quoted as an excerpt around the error', () => {
    const f = join(dir, 'longguard.yaml');
    const guard = `input.x == "${'a'.repeat(60_000)}" && input.y ==`;
    writeFileSync(
      f,
      program([
        '  - id: a',
        '    kind: condition',
        '    cases:',
        `      - when: '${guard}'`,
        '        next: b',
        '    else: b',
        '  - id: b',
        '    kind: end',
        '    outcome: OK',
      ]),
    );
    const r = nanoVm('validate', f);
    expect(r.code).toBe(1);
    expect(r.out + r.err).toContain('E_GUARD_SYNTAX');
    expect(r.out + r.err).toContain('input.y ==');
    expect(r.out.length + r.err.length).toBeLessThan(2_000);
  });

  it('many issues: the first 20, then how many more (text); all of them with --json', () => {
    const f = join(dir, 'many.yaml');
    const steps = Array.from({ length: 50 }, (_, i) => [
      `  - id: s${i}`,
      '    kind: tool',
      '    tool: t',
      `    next: ${i === 49 ? 'end' : `s${i + 1}`}`,
      '    max_visits: 0',
    ]).flat();
    writeFileSync(f, program([...steps, '  - id: end', '    kind: end', '    outcome: OK']));
    const text = nanoVm('validate', f);
    expect(text.code).toBe(1);
    const lines = text.out.split('\n').filter((l) => l.includes(' error '));
    expect(lines.length).toBe(20);
    expect(text.out).toContain('… 30 more');
    const json = JSON.parse(nanoVm('validate', f, '--json').out) as { issues: unknown[] };
    expect(json.issues.length).toBe(50);
  });

  it('input-schema errors name the path and say what is wrong, in text mode too', () => {
    const f = join(dir, 'schema.yaml');
    writeFileSync(
      f,
      [
        'format: nano-vm.program/v1',
        'id: p',
        'input_schema:',
        '  type: object',
        '  additionalProperties: false',
        '  required: [code, name]',
        '  properties:',
        '    code: { type: string, pattern: "^[A-Z]{2}$" }',
        '    name: { type: string }',
        '    tags: { type: array, items: { type: string } }',
        'steps:',
        '  - id: done',
        '    kind: end',
        '    outcome: OK',
        '',
      ].join('\n'),
    );
    const input = join(dir, 'schema-input.json');
    writeFileSync(input, JSON.stringify({ code: 'abc', extra: 1, tags: [1] }));
    const m = join(dir, 'model.yaml');
    writeFileSync(m, '{}\n');
    const r = nanoVm('run', f, '--input', input, '--model', `scripted:${m}`, '--deterministic');
    expect(r.code).toBe(2);
    const issues = r.err.split('\n').filter((l) => l.includes('error E_INPUT_INVALID'));
    expect(issues).toEqual([
      expect.stringContaining("/: missing required property 'name'"),
      expect.stringContaining('/code: "abc" does not match the pattern ^[A-Z]{2}$'),
      expect.stringContaining('/tags/0: expected string, got integer 1'),
      expect.stringContaining("/extra: unexpected property 'extra'"),
    ]);
    expect(r.err).not.toContain('False boolean schema');
  });
});
