/**
 * An llm-nano-vm v0.8 `condition` string -> a guard in nano-vm's CEL subset (docs/guards.md), or
 * the reason it cannot be translated. The v0.8 grammar (its ASTEngine) splits on ` and ` then
 * ` or ` outside quotes (left to right, no precedence beyond that, no parentheses), then on the
 * first binary operator of `not in`, `==`, `!=`, `>=`, `<=`, `>`, `<`, ` in `, `contains`; an atom
 * is `$var`, a quoted string, `True`/`False`/`None`, a number, or else a bare word.
 */

/** A translated guard with the notes a reader of the import should see, or why it could not be. */
export type Translated = { ok: true; cel: string; notes: string[] } | { ok: false; reason: string };

/** Resolves a v0.8 variable (without `$`) to a CEL path of the converted program, or undefined. */
export type ResolveVar = (name: string) => string | undefined;

type Atom =
  | { kind: 'var'; cel: string; quoted: boolean }
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'bool'; value: boolean }
  | { kind: 'null' };

const BINARY = ['not in', '==', '!=', '>=', '<=', '>', '<', ' in ', 'contains'] as const;
const VAR = /^\$([A-Za-z_]\w*(?:\.\w+)*)$/;
const MAX_CONDITION_CHARS = 2000;

export function translateCondition(text: string, resolve: ResolveVar): Translated {
  if (text.length > MAX_CONDITION_CHARS) return { ok: false, reason: `longer than ${MAX_CONDITION_CHARS} characters` };
  const notes: string[] = [];
  try {
    return { ok: true, cel: expr(text.trim(), resolve, notes, 0), notes };
  } catch (e) {
    if (e instanceof Untranslatable) return { ok: false, reason: e.message };
    throw e;
  }
}

class Untranslatable extends Error {}

function expr(s: string, resolve: ResolveVar, notes: string[], depth: number): string {
  if (depth > 32) throw new Untranslatable('nested too deeply');
  for (const [op, cel] of [
    [' and ', '&&'],
    [' or ', '||'],
  ] as const) {
    const i = outsideQuotes(s, op);
    if (i !== -1)
      return `(${expr(s.slice(0, i).trim(), resolve, notes, depth + 1)} ${cel} ${expr(s.slice(i + op.length).trim(), resolve, notes, depth + 1)})`;
  }
  for (const op of BINARY) {
    const i = outsideQuotes(s, op);
    if (i === -1) continue;
    const left = atom(s.slice(0, i).trim(), resolve, notes);
    const right = atom(s.slice(i + op.length).trim(), resolve, notes);
    return binary(op.trim(), left, right, notes);
  }
  const a = atom(s, resolve, notes);
  if (a.kind === 'bool') return String(a.value);
  if (a.kind === 'var') {
    notes.push(`the bare variable ${s} is read as \`${a.cel} == true\` (v0.8 took any truthy value)`);
    return `${a.cel} == true`;
  }
  throw new Untranslatable(`'${s}' is not a comparison`);
}

function binary(op: string, l: Atom, r: Atom, notes: string[]): string {
  if (op === '>=' || op === '<=')
    throw new Untranslatable(
      `v0.8 refuses the operator '${op}' (its ASTEngine allows ==, !=, >, <, in, not in, contains)`,
    );
  const L = cel(l);
  const R = cel(r);
  switch (op) {
    case '==':
    case '!=':
    case '>':
    case '<':
      return `${L} ${op} ${R}`;
    case 'in':
    case 'not in': {
      if (r.kind !== 'var' && r.kind !== 'string')
        throw new Untranslatable(`'${op}' needs a string or a variable on its right`);
      if (l.kind !== 'string')
        notes.push(`'${op}' is read as substring containment (${R}.contains(${L})); v0.8 also allowed list membership`);
      return `${op === 'not in' ? '!' : ''}${R}.contains(${L})`;
    }
    case 'contains':
      notes.push(
        `'X contains Y' is read as X containing Y; v0.8's ASTEngine evaluated it as 'X in Y' (the reverse) — check the converted guard`,
      );
      return `${L}.contains(${R})`;
    default:
      throw new Untranslatable(`unknown operator '${op}'`);
  }
}

function cel(a: Atom): string {
  switch (a.kind) {
    case 'var':
      return a.cel;
    case 'string':
      return JSON.stringify(a.value);
    case 'number':
      return Number.isInteger(a.value) ? `${a.value}` : String(a.value);
    case 'bool':
      return String(a.value);
    case 'null':
      return 'null';
    default: {
      const never: never = a;
      return never;
    }
  }
}

function atom(s: string, resolve: ResolveVar, notes: string[]): Atom {
  const quoted = s.length >= 2 && ((s[0] === "'" && s.endsWith("'")) || (s[0] === '"' && s.endsWith('"')));
  const inner = quoted ? s.slice(1, -1) : s;
  const v = VAR.exec(inner);
  if (v) {
    const path = resolve(v[1]!);
    if (path === undefined) throw new Untranslatable(`the variable $${v[1]} names nothing the program has`);
    if (quoted)
      notes.push(
        `${s} is read as the variable $${v[1]} (as the v0.8 README writes it); v0.8's ASTEngine compared with the literal text`,
      );
    return { kind: 'var', cel: path, quoted };
  }
  if (quoted) {
    if (inner.includes('$')) throw new Untranslatable(`the string ${s} interpolates a variable inside other text`);
    return { kind: 'string', value: inner };
  }
  if (s === 'True' || s === 'False') return { kind: 'bool', value: s === 'True' };
  if (s === 'None') return { kind: 'null' };
  if (/^-?\d+(\.\d+)?$/.test(s)) return { kind: 'number', value: Number(s) };
  throw new Untranslatable(`'${s}' is not a variable, a quoted string, a number or True/False/None`);
}

/** Index of `op` in `s` outside single or double quotes, or -1 (v0.8's own scan). */
function outsideQuotes(s: string, op: string): number {
  let single = false;
  let double = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === "'" && !double) single = !single;
    else if (ch === '"' && !single) double = !double;
    if (!single && !double && s.startsWith(op, i)) return i;
  }
  return -1;
}
