/**
 * The public API of every package, pinned: each entry point's export list (name, and whether it is
 * a value or only a type) is compared with test/fixtures/public-api/. A change to the public API
 * therefore changes a fixture, and shows in review; update one deliberately with
 * `npx vitest run test/publicApi.test.ts -u`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(new URL('.', import.meta.url).pathname, '..');

interface Entry {
  pkg: string;
  subpath: string;
  file: string;
}

/** Every entry point package.json exports, with its source file (the `source` condition). */
function entries(pkg: string): Entry[] {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'packages', pkg, 'package.json'), 'utf8')) as {
    exports: Record<string, string | { source?: string }>;
  };
  return Object.entries(manifest.exports).flatMap(([subpath, target]) =>
    typeof target === 'object' && target.source
      ? [{ pkg, subpath, file: join(ROOT, 'packages', pkg, target.source) }]
      : [],
  );
}

const ALL = ['kernel', 'runtime', 'cli', 'store-postgres'].flatMap(entries);

function exportList(program: ts.Program, file: string): string {
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file);
  if (!source) throw new Error(`${file} is not in the program`);
  const module = checker.getSymbolAtLocation(source);
  if (!module) return '';
  return checker
    .getExportsOfModule(module)
    .map((e) => {
      const target = e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e;
      return `${e.name} ${target.flags & ts.SymbolFlags.Value ? 'value' : 'type'}`;
    })
    .sort()
    .join('\n');
}

describe('public API', () => {
  const program = ts.createProgram(
    ALL.map((e) => e.file),
    {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      skipLibCheck: true,
      noEmit: true,
      customConditions: ['source'],
    },
  );

  it('exports the entry points it documents, and no internal module', () => {
    expect(ALL.map((e) => `@nano-vm/${e.pkg}${e.subpath.slice(1)}`)).toEqual([
      '@nano-vm/kernel',
      '@nano-vm/kernel/verify',
      '@nano-vm/kernel/guard',
      '@nano-vm/kernel/replay',
      '@nano-vm/kernel/analyze',
      '@nano-vm/runtime',
      '@nano-vm/cli',
      '@nano-vm/store-postgres',
    ]);
    for (const e of ALL) expect(e.file).not.toMatch(/internal\.ts$/);
  });

  for (const e of ALL) {
    const name = `${e.pkg}${e.subpath === '.' ? '' : e.subpath.slice(1).replace('/', '-')}`;
    it(`@nano-vm/${e.pkg}${e.subpath.slice(1)} exports exactly the pinned names`, async () => {
      await expect(exportList(program, e.file) + '\n').toMatchFileSnapshot(`fixtures/public-api/${name}.txt`);
    });
  }

  it('hides internals: none of the kernel helpers that used to leak is public', () => {
    const kernel = exportList(program, ALL[0]!.file).split('\n');
    for (const internal of ['sortKeys', 'quote', 'splitPath', 'readPath', 'eventText', 'stateView'])
      expect(kernel).not.toContain(`${internal} value`);
  });
});
