/**
 * docs/architecture.md names files to read and to touch; every path it names in backticks must
 * exist, and every relative link must resolve, so the document cannot rot silently when a file
 * moves. A path with a placeholder (`packages/cli/src/commands/<name>.ts`) must have an existing
 * directory before its placeholder.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const DOC = 'docs/architecture.md';

/** The repository paths a markdown text names in backticks (code fences aside), and what each must be. */
function namedPaths(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '');
  const out = new Set<string>();
  for (const [, span] of prose.matchAll(/`([^`\n]+)`/g)) {
    const s = span!;
    // Package names (`@nano-vm/kernel/verify`) and anything with spaces (code, commands) are not paths.
    if (s.startsWith('@') || /\s/.test(s)) continue;
    if (s.includes('/') || /^[\w.-]+\.(md|ts|mjs|json|yaml)$/.test(s)) out.add(s);
  }
  return [...out];
}

/** The named paths that do not exist under `root`. */
function missingPaths(root: string, paths: readonly string[]): string[] {
  return paths.filter((p) => {
    const placeholder = p.search(/[<*]/);
    const checked = placeholder === -1 ? p : dirname(p.slice(0, placeholder) + 'x');
    return !existsSync(join(root, checked));
  });
}

/** Relative markdown link targets (no scheme, no pure anchors), resolved from the document's folder. */
function relativeLinks(markdown: string, docDir: string): string[] {
  return [...markdown.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!.split('#')[0]!)
    .filter((t) => t !== '' && !/^[a-z]+:/.test(t))
    .map((t) => join(docDir, t));
}

describe(DOC, () => {
  const text = readFileSync(join(ROOT, DOC), 'utf8');

  it('names only files and folders that exist', () => {
    const paths = namedPaths(text);
    expect(paths.length).toBeGreaterThan(40);
    expect(missingPaths(ROOT, paths)).toEqual([]);
  });

  it('links only to files that exist', () => {
    const links = relativeLinks(text, 'docs');
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((l) => !existsSync(join(ROOT, l)))).toEqual([]);
  });

  it('is linked from the README', () => {
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain('(docs/architecture.md)');
  });

  it('the checks catch a moved file, a bad placeholder folder and a dead link', () => {
    const doc =
      'See `packages/kernel/src/nope.ts`, `packages/nope/<name>.ts`, `packages/cli/src/commands/<name>.ts`, `README.md`, `Store`, `@nano-vm/kernel/verify` and [x](nope.md).';
    expect(namedPaths(doc)).toEqual([
      'packages/kernel/src/nope.ts',
      'packages/nope/<name>.ts',
      'packages/cli/src/commands/<name>.ts',
      'README.md',
    ]);
    expect(missingPaths(ROOT, namedPaths(doc))).toEqual(['packages/kernel/src/nope.ts', 'packages/nope/<name>.ts']);
    expect(relativeLinks(doc, 'docs')).toEqual(['docs/nope.md']);
  });
});
