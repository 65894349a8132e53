/**
 * One list of codes, held to the docs, the source and the tests: ERROR_CODES (the kernel's table,
 * with each code's exit class) and docs/errors.md list the same codes with the same exit status, the
 * source emits exactly those codes, and a test exercises each one.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, type ExitClass } from '../packages/kernel/src/errors.js';

const ROOT = new URL('..', import.meta.url).pathname;
const TABLE_FILE = join(ROOT, 'packages/kernel/src/errors.ts');
const files = (dir: string, re: RegExp): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (n === 'node_modules' || n === 'dist') return [];
    return statSync(p).isDirectory() ? files(p, re) : re.test(n) ? [p] : [];
  });

const CODE = /['"`]([EW]_[A-Z0-9_]+)['"`]/g;
// The table itself names every code: what the source emits is read from every other file.
const sourceFiles = files(join(ROOT, 'packages'), /\.ts$/).filter((f) => f.includes('/src/') && f !== TABLE_FILE);
const testFiles = [
  ...files(join(ROOT, 'packages'), /\.ts$/).filter((f) => f.includes('/test/')),
  ...files(join(ROOT, 'test'), /\.ts$/),
].filter((f) => !f.endsWith('errorCodes.test.ts'));
const emitted = new Set(sourceFiles.flatMap((f) => [...readFileSync(f, 'utf8').matchAll(CODE)].map((m) => m[1]!)));
const table = new Set(Object.keys(ERROR_CODES));
const docRows = [
  ...readFileSync(join(ROOT, 'docs/errors.md'), 'utf8').matchAll(/^\| `([EW]_[A-Z0-9_]+)` \| ([^|]+) \|/gm),
].map((m) => ({ code: m[1]!, exit: m[2]!.trim() }));
const documented = new Set(docRows.map((r) => r.code));
const testText = testFiles.map((f) => readFileSync(f, 'utf8')).join('\n');

/** How docs/errors.md writes each exit class in its `exit` column. */
const EXIT_COLUMN: Record<ExitClass, string> = { refused: '2', failed: '1', bug: '1 + stack', warning: '—' };

/** Codes no input can produce: they mark bugs, so no test can provoke them honestly. */
const UNREACHABLE_BY_DESIGN = new Set(['E_INTERNAL']);

describe('error codes', () => {
  it('docs/errors.md lists exactly the codes of ERROR_CODES', () => {
    expect([...table].filter((c) => !documented.has(c)).sort()).toEqual([]);
    expect([...documented].filter((c) => !table.has(c)).sort()).toEqual([]);
  });
  it("every row of docs/errors.md shows its code's exit status", () => {
    const wrong = docRows
      .filter((r) => table.has(r.code) && r.exit !== EXIT_COLUMN[ERROR_CODES[r.code as keyof typeof ERROR_CODES]])
      .map((r) => `${r.code}: ${r.exit}`);
    expect(wrong).toEqual([]);
  });
  it('every code the source can emit is in ERROR_CODES', () => {
    expect([...emitted].filter((c) => !table.has(c)).sort()).toEqual([]);
  });
  it('every code of ERROR_CODES is emitted somewhere in the source', () => {
    expect([...table].filter((c) => !emitted.has(c)).sort()).toEqual([]);
  });
  it('every code is exercised by a test', () => {
    expect([...table].filter((c) => !UNREACHABLE_BY_DESIGN.has(c) && !testText.includes(c)).sort()).toEqual([]);
  });
});
