/**
 * The kernel/host boundary (DESIGN.md §2) and the no-code-loading rule (§3), enforced on the source.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mts|js|mjs|cjs)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Bare module specifiers the kernel may import: pure libraries that also run in a browser. */
const KERNEL_ALLOWED = [
  /^@cfworker\/json-schema$/,
  /^@marcbachmann\/cel-js$/,
  /^@noble\/hashes\/[a-z0-9]+\.js$/,
  /^@noble\/curves\/ed25519\.js$/,
  /^yaml$/,
];

const IMPORT =
  /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]|require\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

export function importsOf(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]!);
}

/** Ambient I/O, clock and randomness the kernel must not touch (time and ids are injected). */
const KERNEL_FORBIDDEN_GLOBALS: [RegExp, string][] = [
  [/\bDate\.now\s*\(/, 'Date.now()'],
  [/\bnew Date\(\s*\)/, 'new Date() without an argument'],
  [/\bMath\.random\s*\(/, 'Math.random()'],
  [/\bperformance\.now\s*\(/, 'performance.now()'],
  [/\bprocess\./, 'process'],
  [/\bfetch\s*\(/, 'fetch()'],
  [/\bsetTimeout\s*\(|\bsetInterval\s*\(/, 'timers'],
  [/\bcrypto\.(getRandomValues|randomUUID)/, 'crypto randomness'],
  [/\bXMLHttpRequest\b|\bWebSocket\b|\blocalStorage\b/, 'browser I/O'],
];

const CODE_LOADING: [RegExp, string][] = [
  [/(?<![\w.])eval\s*\(/, 'eval('],
  [/\bnew\s+Function\s*\(/, 'new Function('],
  [/['"](node:)?vm['"]/, 'the vm module'],
];

export function kernelViolations(file: string, text: string): string[] {
  const v: string[] = [];
  for (const spec of importsOf(text)) {
    if (spec.startsWith('.')) continue;
    if (!KERNEL_ALLOWED.some((re) => re.test(spec))) v.push(`${file}: imports "${spec}"`);
  }
  for (const [re, what] of KERNEL_FORBIDDEN_GLOBALS) if (re.test(text)) v.push(`${file}: uses ${what}`);
  return v;
}

export function codeLoadingViolations(file: string, text: string): string[] {
  return CODE_LOADING.filter(([re]) => re.test(text)).map(([, what]) => `${file}: uses ${what}`);
}

describe('kernel purity', () => {
  it('packages/kernel imports nothing with I/O and reads no clock or randomness', () => {
    const files = sourceFiles(join(ROOT, 'packages/kernel/src'));
    expect(files.length).toBeGreaterThan(5);
    const violations = files.flatMap((f) => kernelViolations(relative(ROOT, f), readFileSync(f, 'utf8')));
    expect(violations).toEqual([]);
  });

  it('the checker itself catches what it must catch', () => {
    expect(kernelViolations('x.ts', `import { readFileSync } from 'node:fs';`)).toHaveLength(1);
    expect(kernelViolations('x.ts', `import x from "fs"`)).toHaveLength(1);
    expect(kernelViolations('x.ts', `const t = Date.now();`)).toHaveLength(1);
    expect(kernelViolations('x.ts', `const r = Math.random();`)).toHaveLength(1);
    expect(kernelViolations('x.ts', `const m = await import('node:net');`)).toHaveLength(1);
    expect(kernelViolations('x.ts', `import { a } from './a.js'; new Date(5).toISOString();`)).toEqual([]);
    expect(codeLoadingViolations('x.ts', `const f = new Function('return 1')`)).toHaveLength(1);
    expect(codeLoadingViolations('x.ts', `eval("1")`)).toHaveLength(1);
    expect(codeLoadingViolations('x.ts', `import vm from 'node:vm'`)).toHaveLength(1);
    expect(codeLoadingViolations('x.ts', `evaluateGuard(g); retrieval(x)`)).toEqual([]);
  });
});

describe('no code loading anywhere', () => {
  it('no eval, new Function or node:vm in any package, bench, example or test-harness source', () => {
    const files = ['packages', 'bench', 'examples', 'test/crash']
      .flatMap((d) => sourceFiles(join(ROOT, d)))
      .filter((f) => !f.includes('/test/') || f.includes('/test/crash/'))
      .filter((f) => !f.includes('/bench/.'));
    const violations = files.flatMap((f) => codeLoadingViolations(relative(ROOT, f), readFileSync(f, 'utf8')));
    expect(violations).toEqual([]);
  });

  it('no runtime dependency of the kernel generates code (they interpret)', () => {
    for (const dep of ['@cfworker/json-schema', '@marcbachmann/cel-js', 'yaml']) {
      const dir = join(ROOT, 'node_modules', dep);
      const files = sourceFiles(dir).filter((f) => !f.includes('/bin/'));
      const hits = files.flatMap((f) => codeLoadingViolations(relative(ROOT, f), readFileSync(f, 'utf8')));
      expect(hits, dep).toEqual([]);
    }
  });
});
