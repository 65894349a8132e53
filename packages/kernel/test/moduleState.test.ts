/**
 * The kernel shares nothing mutable between runs (issue 10, item 7): the only state a module may
 * keep is memoization through src/memo.ts, keyed by immutable inputs. This scans every kernel
 * source for module-level mutable state: a top-level `let` or `var`, a `new Map/Set/WeakMap/
 * WeakSet` reachable from a top-level declaration or a static class member (not inside a
 * function, which makes a fresh one per call). A constant lookup table is allowed when its type
 * says it is read-only (`ReadonlySet`, `ReadonlyMap`), so the compiler forbids writes to it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../src/', import.meta.url).pathname;

/**
 * Files allowed to keep module-level state, each with the reason. Empty since machine.ts (its
 * timestamp cache and tool-argument names) moved onto memo.ts with the successor rewrite: adopt
 * memo.ts instead of adding a file here.
 */
const ALLOWED: Readonly<Record<string, string>> = {};

const COLLECTIONS: ReadonlySet<string> = new Set(['Map', 'Set', 'WeakMap', 'WeakSet']);

/** `line: text` of every module-level mutable thing in one source file. */
function moduleState(fileName: string, text: string): string[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const at = (n: ts.Node, what: string) =>
    found.push(`${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}: ${what}`);
  // A collection created while the module loads, not one a function creates per call.
  const collectionsIn = (n: ts.Node, readOnlyType: boolean): void => {
    if (ts.isFunctionLike(n) && !ts.isClassStaticBlockDeclaration(n)) return;
    if (ts.isNewExpression(n) && ts.isIdentifier(n.expression) && COLLECTIONS.has(n.expression.text) && !readOnlyType)
      at(n, `new ${n.expression.text}`);
    ts.forEachChild(n, (c) => collectionsIn(c, false));
  };
  const isReadOnlyType = (t: ts.TypeNode | undefined, init: ts.Expression | undefined, n: ts.Node) =>
    t !== undefined &&
    init === n &&
    ts.isTypeReferenceNode(t) &&
    ts.isIdentifier(t.typeName) &&
    (t.typeName.text === 'ReadonlySet' || t.typeName.text === 'ReadonlyMap');
  for (const st of sf.statements) {
    if (ts.isVariableStatement(st)) {
      const list = st.declarationList;
      if (!(list.flags & ts.NodeFlags.Const)) at(st, `${list.flags & ts.NodeFlags.Let ? 'let' : 'var'} at top level`);
      for (const d of list.declarations)
        if (d.initializer) collectionsIn(d.initializer, isReadOnlyType(d.type, d.initializer, d.initializer));
    } else if (ts.isClassDeclaration(st)) {
      for (const m of st.members) {
        const isStatic =
          ts.canHaveModifiers(m) && ts.getModifiers(m)?.some((x) => x.kind === ts.SyntaxKind.StaticKeyword);
        if (ts.isPropertyDeclaration(m) && isStatic && m.initializer)
          collectionsIn(m.initializer, isReadOnlyType(m.type, m.initializer, m.initializer));
        if (
          ts.isPropertyDeclaration(m) &&
          isStatic &&
          !m.modifiers?.some((x) => x.kind === ts.SyntaxKind.ReadonlyKeyword)
        )
          at(m, 'static property that is not readonly');
        if (ts.isClassStaticBlockDeclaration(m)) collectionsIn(m.body, false);
      }
    } else if (!ts.isFunctionDeclaration(st)) collectionsIn(st, false);
  }
  return found;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('module-level state in the kernel', () => {
  it('no kernel module keeps mutable state outside memo.ts, except the allow-listed files', () => {
    const offences: string[] = [];
    for (const file of sources(SRC)) {
      const name = relative(SRC, file);
      const found = moduleState(name, readFileSync(file, 'utf8'));
      if (!(name in ALLOWED)) offences.push(...found.map((f) => `${name}:${f}`));
      else if (found.length === 0) offences.push(`${name}: keeps no state any more: remove it from ALLOWED`);
    }
    expect(offences).toEqual([]);
  });

  it('the scan finds each kind of module-level state and accepts what is not', () => {
    const scan = (text: string) => moduleState('x.ts', text).map((f) => f.replace(/^\d+: /, ''));
    expect(scan('let a = 1;')).toEqual(['let at top level']);
    expect(scan('export var a = 1;')).toEqual(['var at top level']);
    expect(scan('const cache = new Map<string, string>();')).toEqual(['new Map']);
    expect(scan('export const seen = new WeakMap();')).toEqual(['new WeakMap']);
    expect(scan('const o = { byId: new Set() };')).toEqual(['new Set']);
    expect(scan('const t: Set<string> = new Set(["a"]);')).toEqual(['new Set']);
    expect(scan('class C { static cache = new WeakSet(); }')).toEqual([
      'new WeakSet',
      'static property that is not readonly',
    ]);
    expect(scan('class C { static readonly byName = new Map(); }')).toEqual(['new Map']);
    expect(scan('class C { static { const m = new Map(); } }')).toEqual(['new Map']);
    // Constant tables typed read-only, and collections made per call, are fine.
    expect(scan('const KINDS: ReadonlySet<string> = new Set(["a"]);')).toEqual([]);
    expect(scan('const BY: ReadonlyMap<string, number> = new Map([["a", 1]]);')).toEqual([]);
    expect(scan('function f() { let n = 0; const m = new Map(); return [n, m]; }')).toEqual([]);
    expect(scan('const f = () => new Map();')).toEqual([]);
    expect(scan('class C { private readonly m = new Map(); }')).toEqual([]);
    expect(scan('const split = memoByString(64, (s) => s.split("."));')).toEqual([]);
  });
});
