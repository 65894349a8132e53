/**
 * The guard pre-scan: reads a guard with CEL's own lexical rules (cel-spec CEL.g4 and
 * doc/langdef.md) before cel-js parses it, because cel-js 8.0.0 reads some text differently (see
 * docs/guards.md, "Differences from CEL"). It
 *
 * - refuses what CEL refuses but cel-js accepts (a raw string whose backslash would escape the
 *   closing quote in cel-js, `0X1F`, a reserved word after `.`, a trailing comma in a call, a
 *   conditional in the middle branch of another, a number run into a name);
 * - decodes every string literal itself, as CEL does, and hands cel-js a same-length placeholder
 *   (`"   "`), so cel-js never decodes a string and every offset stays the same;
 * - gives cel-js what it cannot lex but CEL accepts in a form it can: form feed as whitespace, a
 *   float written `.5` as a placeholder whose value is decoded here;
 * - refuses guards too long, or with unary runs too deep for cel-js's recursive parser, before
 *   it recurses (E_GUARD_LIMIT), iteratively.
 *
 * Bytes literals are outside the subset: refused here with E_GUARD_UNSUPPORTED.
 */
import { guardError } from './errorCodes.js';
import type { GuardError } from './types.js';

/** Longest guard source, in UTF-16 code units. */
export const MAX_GUARD_LENGTH = 65_536;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Reserved words: never an identifier, a selector or a function name (langdef.md, IDENT). */
const RESERVED: ReadonlySet<string> = new Set([
  'true',
  'false',
  'null',
  'in',
  'as',
  'break',
  'const',
  'continue',
  'else',
  'for',
  'function',
  'if',
  'import',
  'let',
  'loop',
  'package',
  'namespace',
  'return',
  'var',
  'void',
  'while',
]);

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '"': '"',
  "'": "'",
  '\\': '\\',
  '?': '?',
  '`': '`',
};

type TokenKind = 'ident' | 'number' | 'string' | 'punct';

interface Token {
  kind: TokenKind;
  start: number;
  end: number;
  /** Identifier name or punctuation text. */
  text: string;
}

export interface Prescan {
  /** The source as cel-js should parse it: same length, same offsets. */
  readonly text: string;
  /** Decoded literal values by start offset, for the placeholders in `text`. */
  readonly literals: ReadonlyMap<number, string | number>;
}

export type PrescanResult = { ok: true; scan: Prescan } | { ok: false; error: GuardError };

class Refusal {
  constructor(readonly error: GuardError) {}
}

const syntax = (message: string, offset: number): Refusal =>
  new Refusal(guardError('E_GUARD_SYNTAX', message, offset + 1));

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isHex = (c: string | undefined): boolean => c !== undefined && /^[0-9a-fA-F]$/.test(c);
const isIdentStart = (c: string | undefined): boolean => c !== undefined && /^[A-Za-z_]$/.test(c);
const isIdentPart = (c: string | undefined): boolean => c !== undefined && /^[A-Za-z0-9_]$/.test(c);

/** Two- then one-character operators and punctuation, as CEL.g4 lexes them. */
const PUNCT2 = ['==', '!=', '<=', '>=', '&&', '||'];
const PUNCT1 = '<>[]{}().,-!?:+*/%';

export function prescanGuard(source: string): PrescanResult {
  try {
    return { ok: true, scan: new Scanner(source).run() };
  } catch (e) {
    if (e instanceof Refusal) return { ok: false, error: e.error };
    throw e;
  }
}

class Scanner {
  private readonly out: string[];
  private readonly literals = new Map<number, string | number>();
  private readonly tokens: Token[] = [];

  constructor(private readonly s: string) {
    this.out = [];
  }

  run(): Prescan {
    const s = this.s;
    if (s.length > MAX_GUARD_LENGTH) {
      throw new Refusal(
        guardError('E_GUARD_LIMIT', `guard is ${s.length} characters long (at most ${MAX_GUARD_LENGTH})`, 1),
      );
    }
    const lone = LONE_SURROGATE.exec(s);
    if (lone !== null) throw syntax('a lone surrogate is not a Unicode character (CEL text is Unicode)', lone.index);
    let i = 0;
    let copied = 0;
    const replace = (start: number, end: number, text: string): void => {
      this.out.push(s.slice(copied, start), text);
      copied = end;
    };
    while (i < s.length) {
      const c = s[i]!;
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
        i++;
      } else if (c === '\f') {
        // CEL whitespace that cel-js does not know.
        replace(i, i + 1, ' ');
        i++;
      } else if (c === '/' && s[i + 1] === '/') {
        while (i < s.length && s[i] !== '\n') i++;
      } else if (c === '"' || c === "'") {
        const end = this.string(i, i, false);
        replace(i, end, placeholder(end - i));
        i = end;
      } else if ((c === 'r' || c === 'R') && (s[i + 1] === '"' || s[i + 1] === "'")) {
        const end = this.string(i, i + 1, true);
        replace(i, end, placeholder(end - i));
        i = end;
      } else if ((c === 'b' || c === 'B') && bytesQuote(s, i + 1) !== undefined) {
        // Lexed first, so that a malformed one is a syntax error as in CEL.
        const quote = bytesQuote(s, i + 1)!;
        this.string(i, quote, quote > i + 1);
        throw new Refusal(guardError('E_GUARD_UNSUPPORTED', 'a bytes literal is not in the guard subset', i + 1));
      } else if (isDigit(c) || (c === '.' && isDigit(s[i + 1]))) {
        const { end, value } = this.number(i);
        if (c === '.') {
          // CEL's `.5`; cel-js reads `.` as a selection.
          this.literals.set(i, value);
          replace(i, end, placeholder(end - i));
        }
        this.tokens.push({ kind: 'number', start: i, end, text: s.slice(i, end) });
        i = end;
      } else if (isIdentStart(c)) {
        let end = i + 1;
        while (isIdentPart(s[end])) end++;
        this.tokens.push({ kind: 'ident', start: i, end, text: s.slice(i, end) });
        i = end;
      } else {
        const two = s.slice(i, i + 2);
        const text = PUNCT2.includes(two) ? two : PUNCT1.includes(c) ? c : undefined;
        if (text === undefined) {
          const cp = s.codePointAt(i)!;
          throw syntax(`unexpected character ${JSON.stringify(String.fromCodePoint(cp))}`, i);
        }
        this.tokens.push({ kind: 'punct', start: i, end: i + text.length, text });
        i += text.length;
      }
    }
    this.out.push(s.slice(copied));
    this.grammar();
    return { text: this.out.join(''), literals: this.literals };
  }

  /**
   * A string literal starting at `start` (its prefix, if any) with the quote at `quote`. Decodes it
   * into `literals` and returns its end.
   */
  private string(start: number, quote: number, raw: boolean): number {
    const s = this.s;
    const q = s[quote]!;
    const triple = s[quote + 1] === q && s[quote + 2] === q;
    let i = quote + (triple ? 3 : 1);
    let value = '';
    for (;;) {
      if (i >= s.length) throw syntax(`unterminated ${triple ? 'triple-quoted ' : ''}string`, start);
      const c = s[i]!;
      if (triple ? c === q && s[i + 1] === q && s[i + 2] === q : c === q) {
        i += triple ? 3 : 1;
        break;
      }
      if (!triple && (c === '\n' || c === '\r')) throw syntax('a newline inside a quoted string', i);
      if (c === '\\' && !raw) {
        const { text, end } = this.escape(i);
        value += text;
        i = end;
        continue;
      }
      value += c;
      i++;
    }
    this.literals.set(start, value);
    this.tokens.push({ kind: 'string', start, end: i, text: '' });
    return i;
  }

  /** The escape sequence at `i` (a backslash), as CEL decodes it in a string literal. */
  private escape(i: number): { text: string; end: number } {
    const s = this.s;
    const c = s[i + 1];
    if (c !== undefined && SIMPLE_ESCAPES[c] !== undefined) return { text: SIMPLE_ESCAPES[c]!, end: i + 2 };
    const hex = (n: number): number => {
      const digits = s.slice(i + 2, i + 2 + n);
      if (digits.length !== n || ![...digits].every(isHex)) {
        throw syntax(`the escape \\${c} needs ${n} hexadecimal digits`, i);
      }
      return parseInt(digits, 16);
    };
    const codePoint = (cp: number, n: number): { text: string; end: number } => {
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        throw syntax(`the escape \\${s.slice(i + 1, i + 2 + n)} is not a Unicode code point`, i);
      }
      return { text: String.fromCodePoint(cp), end: i + 2 + n };
    };
    if (c === 'x' || c === 'X') return codePoint(hex(2), 2);
    if (c === 'u') return codePoint(hex(4), 4);
    if (c === 'U') return codePoint(hex(8), 8);
    if (c !== undefined && c >= '0' && c <= '3' && /^[0-7]{2}$/.test(s.slice(i + 2, i + 4))) {
      return { text: String.fromCodePoint(parseInt(s.slice(i + 1, i + 4), 8)), end: i + 4 };
    }
    const shown =
      c === undefined ? 'at the end of the guard' : c === '\n' || c === '\r' ? 'before a newline' : `\\${c}`;
    throw syntax(`invalid escape sequence ${shown} (octal escapes are \\000 to \\377)`, i);
  }

  /** A number literal at `i`, as CEL.g4 lexes it (longest match). */
  private number(i: number): { end: number; value: number } {
    const s = this.s;
    let end = i;
    if (s[i] === '0' && s[i + 1] === 'x' && isHex(s[i + 2])) {
      end = i + 2;
      while (isHex(s[end])) end++;
      if (s[end] === 'u' || s[end] === 'U') end++;
      return { end, value: NaN };
    }
    while (isDigit(s[end])) end++;
    let float = false;
    if (s[end] === '.' && isDigit(s[end + 1])) {
      end++;
      while (isDigit(s[end])) end++;
      float = true;
    }
    if (
      (s[end] === 'e' || s[end] === 'E') &&
      (isDigit(s[end + 1]) || (/[+-]/.test(s[end + 1] ?? '') && isDigit(s[end + 2])))
    ) {
      end += 2;
      while (isDigit(s[end])) end++;
      float = true;
    }
    if (!float && (s[end] === 'u' || s[end] === 'U')) end++;
    const value = Number(s.slice(i, end).replace(/[uU]$/, ''));
    if (float && !Number.isFinite(value)) throw syntax(`the number ${s.slice(i, end)} is out of range`, i);
    return { end, value };
  }

  /** Grammar rules of CEL that cel-js does not enforce, checked on the token list. */
  private grammar(): void {
    const t = this.tokens;
    /** Per open bracket: the bracket, and how many `?` of a conditional await their `:`. */
    const levels: Array<{ open: string; pendingTernary: boolean }> = [{ open: '', pendingTernary: false }];
    let unaryRun = 0;
    for (let k = 0; k < t.length; k++) {
      const tok = t[k]!;
      const prev = t[k - 1];
      const next = t[k + 1];
      const level = levels[levels.length - 1]!;
      if (tok.kind === 'ident') {
        if (prev?.kind === 'number' && prev.end === tok.start && tok.text !== 'in') {
          throw syntax(
            prev.text.startsWith('0') && /^[xX]/.test(tok.text)
              ? `'${prev.text}${tok.text}' is not a number (hexadecimal literals start with 0x, lower-case)`
              : `a number cannot be followed directly by the name '${tok.text}'`,
            prev.start,
          );
        }
        const afterDot = prev?.kind === 'punct' && prev.text === '.';
        if (afterDot && RESERVED.has(tok.text)) {
          throw syntax(`'${tok.text}' is a reserved word in CEL and cannot be a field name`, tok.start);
        }
      }
      if (tok.kind === 'punct') {
        const p = tok.text;
        if (p === '!' || (p === '-' && !(prev !== undefined && endsOperand(prev)))) {
          unaryRun++;
          if (unaryRun > MAX_UNARY_RUN) {
            throw new Refusal(
              guardError(
                'E_GUARD_LIMIT',
                `more than ${MAX_UNARY_RUN} unary operators ('!', '-') in a row`,
                tok.start + 1,
              ),
            );
          }
          continue;
        }
        if (p === '(' || p === '[' || p === '{') levels.push({ open: p, pendingTernary: false });
        else if (p === ')' || p === ']' || p === '}') {
          if (levels.length > 1) levels.pop();
        } else if (p === ',' && next?.kind === 'punct' && next.text === ')') {
          throw syntax('a trailing comma is not allowed in an argument list', tok.start);
        } else if (p === '?' && isTernary(prev)) {
          if (level.pendingTernary) {
            throw syntax(
              'a conditional in the middle branch of another conditional must be parenthesized: a ? (b ? c : d) : e',
              tok.start,
            );
          }
          level.pendingTernary = true;
        } else if (p === ':' && level.pendingTernary) {
          level.pendingTernary = false;
        }
      }
      unaryRun = 0;
    }
  }
}

/** Unary runs deeper than this overflow cel-js's recursive parser on long runs; CEL needs 32. */
export const MAX_UNARY_RUN = 64;

/** Whether `tok` can end an operand (so a `-` after it is binary). */
function endsOperand(tok: Token): boolean {
  if (tok.kind === 'ident') return tok.text !== 'in';
  if (tok.kind !== 'punct') return true;
  return tok.text === ')' || tok.text === ']' || tok.text === '}';
}

/** A `?` is a conditional unless it marks optional syntax (`.?`, `[?`, `{?`, `, ?`, `(?`). */
function isTernary(prev: Token | undefined): boolean {
  if (prev === undefined) return true;
  if (prev.kind !== 'punct') return true;
  return !['.', '[', '{', ',', '('].includes(prev.text);
}

/** After a `b` prefix at `i - 1`: the offset of the quote of a (raw) string literal, if one starts. */
function bytesQuote(s: string, i: number): number | undefined {
  if (s[i] === '"' || s[i] === "'") return i;
  if ((s[i] === 'r' || s[i] === 'R') && (s[i + 1] === '"' || s[i + 1] === "'")) return i + 1;
  return undefined;
}

function placeholder(length: number): string {
  return '"' + ' '.repeat(length - 2) + '"';
}
