/** docs/errors.md lists exactly the codes the source emits, and tests exercise each one. */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const files = (dir: string, re: RegExp): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (n === 'node_modules' || n === 'dist') return [];
    return statSync(p).isDirectory() ? files(p, re) : re.test(n) ? [p] : [];
  });

const CODE = /['"`]([EW]_[A-Z0-9_]+)['"`]/g;
const sourceFiles = files(join(ROOT, 'packages'), /\.ts$/).filter((f) => f.includes('/src/'));
const testFiles = [
  ...files(join(ROOT, 'packages'), /\.ts$/).filter((f) => f.includes('/test/')),
  ...files(join(ROOT, 'test'), /\.ts$/),
].filter((f) => !f.endsWith('errorCodes.test.ts'));
const emitted = new Set(sourceFiles.flatMap((f) => [...readFileSync(f, 'utf8').matchAll(CODE)].map((m) => m[1]!)));
const documented = new Set(
  [...readFileSync(join(ROOT, 'docs/errors.md'), 'utf8').matchAll(/^\| `([EW]_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]!),
);
const testText = testFiles.map((f) => readFileSync(f, 'utf8')).join('\n');

/** Codes no input can produce: they mark bugs, so no test can provoke them honestly. */
const UNREACHABLE_BY_DESIGN = new Set(['E_INTERNAL']);

describe('error codes', () => {
  it('every code the source can emit is documented in docs/errors.md', () => {
    expect([...emitted].filter((c) => !documented.has(c)).sort()).toEqual([]);
  });
  it('every documented code exists in the source', () => {
    expect([...documented].filter((c) => !emitted.has(c)).sort()).toEqual([]);
  });
  it('every code is exercised by a test', () => {
    expect([...documented].filter((c) => !UNREACHABLE_BY_DESIGN.has(c) && !testText.includes(c)).sort()).toEqual([]);
  });
});
