/**
 * One command table (packages/cli/src/commandTable.ts) feeds the parser, `--help` and docs/cli.md:
 * the page's command reference is exactly what the table generates, its per-command sections name
 * exactly the table's commands, every command parses with its own table, and the built CLI prints
 * the table's commands, options and the package version.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliReference, REFERENCE_BEGIN, REFERENCE_END } from '../packages/cli/src/cliReference.js';
import { optionLabel } from '../packages/cli/src/commandSpec.js';
import { COMMANDS } from '../packages/cli/src/commandTable.js';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const doc = readFileSync(join(ROOT, 'docs/cli.md'), 'utf8');
const nanoVm = (...args: string[]) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

describe('docs/cli.md and the command table', () => {
  it('the command reference is the text the table generates (regenerate with `npm run docs:cli`)', () => {
    const begin = doc.indexOf(REFERENCE_BEGIN);
    const end = doc.indexOf(REFERENCE_END);
    expect(begin).toBeGreaterThan(0);
    expect(doc.slice(begin, end + REFERENCE_END.length)).toBe(cliReference());
  });

  it('the page has one section per command of the table, and none for a command it lacks', () => {
    const sections = [...doc.matchAll(/^## `nano-vm ([a-z-]+)/gm)].map((m) => m[1]);
    expect([...sections].sort()).toEqual(COMMANDS.map((c) => c.name).sort());
  });

  it('the reference lists every option of every command with its description', () => {
    for (const c of COMMANDS)
      for (const [name, o] of Object.entries(c.options)) {
        expect(cliReference()).toContain(`| \`${optionLabel(name, o).replace(/\|/g, '\\|')}\` |`);
        expect(o.description.length, `${c.name} --${name}`).toBeGreaterThan(0);
      }
  });

  it('every command parses its arguments with its own table (no option list of its own)', () => {
    const dir = join(ROOT, 'packages/cli/src/commands');
    const own = readdirSync(dir).filter((f) => /\bparseArgs\(/.test(readFileSync(join(dir, f), 'utf8')));
    expect(own).toEqual([]);
  });
});

describe('nano-vm --help, <command> --help, -V', () => {
  it('--help lists every command of the table with its summary', () => {
    const r = nanoVm('--help');
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.out).toMatch(new RegExp(`^  ${c.name} +${c.summary.split(' ')[0]}`, 'm'));
  });

  it.each(COMMANDS.map((c) => [c.name, c] as const))(
    '%s --help prints its usage and every option with its description',
    (name, c) => {
      const r = nanoVm(name, '--help');
      expect(r.code).toBe(0);
      expect(r.out.startsWith(`usage: nano-vm ${name}`)).toBe(true);
      const flat = r.out.replace(/\s+/g, ' ');
      for (const [opt, o] of Object.entries(c.options)) {
        expect(r.out).toContain(optionLabel(opt, o));
        expect(flat).toContain(o.description.replace(/\s+/g, ' '));
      }
    },
  );

  it('help <command> prints what <command> --help prints', () => {
    expect(nanoVm('help', 'verify')).toEqual(nanoVm('verify', '--help'));
  });

  it('-V and --version print the version of packages/cli/package.json', () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'packages/cli/package.json'), 'utf8')) as {
      version: string;
    };
    for (const flag of ['-V', '--version']) expect(nanoVm(flag)).toMatchObject({ code: 0, out: `${version}\n` });
  });
});
