/**
 * CEL conformance for the guard subset: texts from cel-spec's simple conformance tests
 * (tests/simple/testdata/{basic,parse,plumbing}.textproto) and the grammar in doc/langdef.md /
 * CEL.g4, re-typed as data. Each text either means what CEL says (`value`) or is refused with a
 * coded error and a column (`refused`) — never evaluated to something else. Texts CEL accepts but
 * the subset leaves out are refused too; docs/guards.md lists them.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { compileGuard, evaluateGuard } from '../src/guard/index.js';

type Case =
  | { text: string; value: unknown; vars?: Record<string, unknown>; note?: string }
  | { text: string; refused: 'E_GUARD_SYNTAX' | 'E_GUARD_UNSUPPORTED' | 'E_GUARD_LIMIT'; note?: string };

const bs = '\\';
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

const CASES: Case[] = [
  // basic.textproto: self-evaluating forms
  { text: '0', value: 0 },
  { text: '0.0', value: 0 },
  { text: '0e+0', value: 0 },
  { text: "''", value: '' },
  { text: '""', value: '' },
  { text: 'r""', value: '' },
  { text: 'false', value: false },
  { text: 'null', value: null },
  { text: '[]', value: [] },
  { text: '17', value: 17 },
  { text: '-2.3e+1', value: -23 },
  { text: '"!"', value: '!' },
  { text: `'${bs}''`, value: "'" },
  { text: '[-1]', value: [-1] },
  { text: 'true', value: true },
  { text: '0u', refused: 'E_GUARD_UNSUPPORTED', note: 'uint is outside the subset' },
  { text: 'b""', refused: 'E_GUARD_UNSUPPORTED', note: 'bytes are outside the subset' },
  { text: '{}', refused: 'E_GUARD_UNSUPPORTED', note: 'map literals are outside the subset' },
  {
    text: '-9223372036854775808',
    refused: 'E_GUARD_UNSUPPORTED',
    note: 'CEL int64 minimum; not exactly a JSON number',
  },
  // parse.textproto: nesting and repetition
  { text: 'a[a[a[a[a[a[a[a[a[a[a[a[0]]]]]]]]]]]]', vars: { a: [0] }, value: 0 },
  { text: 'size([[[[[[[[[[[[0]]]]]]]]]]]])', value: 1 },
  { text: '('.repeat(32) + '7' + ')'.repeat(32), value: 7 },
  {
    text:
      range(24)
        .map(() => 'true ? true : ')
        .join('') + 'false',
    value: true,
  },
  { text: [...range(32).map(() => 'false'), 'true'].join(' || '), value: true },
  { text: [...range(32).map(() => 'true'), 'false'].join(' && '), value: false },
  { text: '!'.repeat(32) + 'true', value: true },
  { text: '-'.repeat(32) + '19', value: 19 },
  { text: `[${range(32).join(', ')}][17]`, value: 17 },
  { text: "[[[[[[[[[[[['foo']]]]]]]]]]]]" + '[0]'.repeat(12), value: 'foo' },
  // parse.textproto: string literals
  { text: "'hello'", value: 'hello' },
  { text: '"hello"', value: 'hello' },
  { text: "'''hello'''", value: 'hello' },
  { text: '"""hello"""', value: 'hello' },
  { text: `' ${bs}${bs} ${bs}? ${bs}" ${bs}' ${bs}\` '`, value: ` ${bs} ? " ' \` ` },
  { text: `""" ${bs}${bs} ${bs}? ${bs}" ${bs}' ${bs}\` """`, value: ` ${bs} ? " ' \` ` },
  { text: `''' ? " ' \` '''`, value: ` ? " ' \` ` },
  { text: `' ${bs}a ${bs}b ${bs}f ${bs}t ${bs}v '`, value: ' \x07 \b \f \t \v ' },
  { text: "' \x07 \b \f \t \v '", value: ' \x07 \b \f \t \v ' },
  { text: `' ${bs}n '`, value: ' \n ' },
  { text: "''' \n '''", value: ' \n ' },
  { text: '""" \r\n """', value: ' \r\n ' },
  { text: `' ${bs}r${bs}n '`, value: ' \r\n ' },
  { text: `' ${bs}000 ${bs}012 ${bs}177 '`, value: ' \x00 \x0A \x7F ' },
  { text: `' ${bs}x00 ${bs}x0A ${bs}X7F '`, value: ' \x00 \x0A \x7F ' },
  { text: `' ${bs}u0000 ${bs}u000A ${bs}u0100 ${bs}uFFFB '`, value: ' \x00 \x0A \u0100 \uFFFB ' },
  { text: `' ${bs}U0000007F ${bs}U00010000 ${bs}U0001F62C '`, value: ' \x7F \u{10000} \u{1F62C} ' },
  { text: `' ${bs}x4a ${bs}x4B ${bs}X4c ${bs}X4D ${bs}u01aB ${bs}U000001aB '`, value: ' J K L M \u01ab \u01ab ' },
  { text: `' ${bs}U00088888 '`, value: ' \u{88888} ' },
  {
    text: `r' ${bs}${bs} ${bs}? ${bs}" ${bs}\` ${bs}a ${bs}n ${bs}000 ${bs}x00 ${bs}u0000 '`,
    value: ` ${bs}${bs} ${bs}? ${bs}" ${bs}\` ${bs}a ${bs}n ${bs}000 ${bs}x00 ${bs}u0000 `,
  },
  {
    text: `R""" ${bs}${bs} ${bs}? ${bs}' ${bs}a ${bs}U00000000 """`,
    value: ` ${bs}${bs} ${bs}? ${bs}' ${bs}a ${bs}U00000000 `,
  },
  // langdef.md: string literal examples
  { text: `'""' == "${bs}"${bs}""`, value: true },
  { text: `'''x''x''' == "x''x"`, value: true },
  { text: `"${bs}${bs}" == r"${bs}"`, value: true },
  { text: `r"${bs}${bs}" == "${bs}${bs}${bs}${bs}"`, value: true },
  { text: `"${bs}303${bs}277" == "\u00c3\u00bf"`, value: true },
  { text: `"${bs}377" == "\u00ff" && "${bs}xFF" == "\u00ff"`, value: true },
  // Raw strings end at the first matching quote (CEL.g4: RAW '"' ~('"'|'\n'|'\r')* '"').
  { text: `r"${bs}" == "${bs}${bs}"`, value: true, note: 'cel-js 8.0.0: the backslash escapes the quote' },
  { text: `r'${bs}' == '${bs}${bs}'`, value: true },
  { text: `R"""${bs}""" == "${bs}${bs}"`, value: true },
  { text: `r"a${bs}"b"`, refused: 'E_GUARD_SYNTAX', note: 'cel-js 8.0.0 reads one string a\\"b' },
  { text: `r'''a${bs}''''`, refused: 'E_GUARD_SYNTAX' },
  { text: `r"a${bs}\nb"`, refused: 'E_GUARD_SYNTAX', note: 'no newline in a single-quoted raw string' },
  // Escapes CEL refuses
  { text: `"${bs}400"`, refused: 'E_GUARD_SYNTAX' },
  { text: `"${bs}8"`, refused: 'E_GUARD_SYNTAX' },
  { text: `"${bs}xZ0"`, refused: 'E_GUARD_SYNTAX' },
  { text: `"${bs}uD800"`, refused: 'E_GUARD_SYNTAX' },
  { text: `"${bs}U00110000"`, refused: 'E_GUARD_SYNTAX' },
  { text: `"a${bs}\nb"`, refused: 'E_GUARD_SYNTAX' },
  { text: '"a\nb"', refused: 'E_GUARD_SYNTAX' },
  { text: '"abc', refused: 'E_GUARD_SYNTAX' },
  { text: '"""abc""', refused: 'E_GUARD_SYNTAX' },
  // Numbers
  { text: '0x10 == 16', value: true },
  { text: '0xFF == 255 && 0xff == 255', value: true },
  { text: '0X10 == 16', refused: 'E_GUARD_SYNTAX', note: "CEL.g4: '0x' only; cel-js 8.0.0 accepts 0X" },
  { text: '1e3 == 1000.0 && 1E3 == 1000 && 2.5e-1 == 0.25', value: true },
  { text: '.5 == 0.5', value: true, note: "CEL.g4 NUM_FLOAT: '.' DIGIT+; cel-js 8.0.0 refuses it" },
  { text: '-.5', value: -0.5 },
  { text: '1u == 1u', refused: 'E_GUARD_UNSUPPORTED' },
  { text: '9223372036854775808', refused: 'E_GUARD_UNSUPPORTED' },
  { text: '1e400', refused: 'E_GUARD_SYNTAX' },
  { text: '1abc', refused: 'E_GUARD_SYNTAX' },
  { text: '1 in [1]', value: true },
  // Whitespace and comments (langdef WHITESPACE ::= [\t\n\f\r ]+; COMMENT ::= '//' ~NEWLINE*)
  { text: '1\f==\f1', value: true, note: 'form feed is CEL whitespace; cel-js 8.0.0 refuses it' },
  { text: '1 ==\t\r\n1 // the end', value: true },
  { text: '// first\ntrue', value: true },
  { text: '1 == 1\v', refused: 'E_GUARD_SYNTAX' },
  { text: '1 /* c */ == 1', refused: 'E_GUARD_SYNTAX', note: 'no block comments: `/ *` is two operators' },
  { text: `b"a${bs}"`, refused: 'E_GUARD_SYNTAX', note: 'an unterminated bytes literal' },
  // Reserved words (langdef: IDENT excludes RESERVED, also after '.')
  ...['as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if', 'import', 'let', 'loop', 'package']
    .concat(['namespace', 'return', 'var', 'void', 'while'])
    .flatMap((w): Case[] => [
      { text: w, refused: 'E_GUARD_SYNTAX' },
      { text: `x.${w}`, refused: 'E_GUARD_SYNTAX', note: 'cel-js 8.0.0 accepts a reserved word as a field' },
      { text: `${w}(1)`, refused: 'E_GUARD_SYNTAX' },
    ]),
  { text: 'x.true', refused: 'E_GUARD_SYNTAX' },
  { text: 'x.in', refused: 'E_GUARD_SYNTAX' },
  { text: 'x.null', refused: 'E_GUARD_SYNTAX' },
  // Grammar
  { text: 'true ? 1 : false ? 2 : 3', value: 1 },
  { text: 'false ? 1 : false ? 2 : 3', value: 3 },
  { text: 'true ? (true ? 1 : 2) : 3', value: 1 },
  {
    text: 'true ? true ? 1 : 2 : 3',
    refused: 'E_GUARD_SYNTAX',
    note: 'Expr = ConditionalOr ["?" ConditionalOr ":" Expr]',
  },
  { text: '[1, 2,] == [1, 2]', value: true, note: "CEL.g4: '[' listInit? ','? ']'" },
  { text: 'size([1],)', refused: 'E_GUARD_SYNTAX', note: 'ExprList has no trailing comma' },
  { text: '[1].exists(x, x == 1,)', refused: 'E_GUARD_SYNTAX' },
  { text: '!(1 in [1])', value: false },
  { text: '"abc".startsWith("a")', value: true },
  { text: '.x', refused: 'E_GUARD_SYNTAX', note: 'root-scope name; see docs/guards.md' },
  { text: 'x.`y`', refused: 'E_GUARD_SYNTAX' },
  { text: '()', refused: 'E_GUARD_SYNTAX' },
  { text: '1 ==', refused: 'E_GUARD_SYNTAX' },
  { text: '!-x', refused: 'E_GUARD_UNSUPPORTED' },
  { text: '"\uD800" == ""', refused: 'E_GUARD_SYNTAX', note: 'a lone surrogate in the text' },
  // Limits
  { text: '!'.repeat(10_000) + 'true', refused: 'E_GUARD_LIMIT' },
  { text: '-'.repeat(10_000) + '1', refused: 'E_GUARD_LIMIT' },
  { text: 'true || ' + '"' + 'x'.repeat(70_000) + '" == ""', refused: 'E_GUARD_LIMIT' },
];

describe('CEL conformance of the guard subset', () => {
  test.each(CASES.map((c) => [c.text.length > 60 ? `${c.text.slice(0, 57)}...` : c.text, c] as const))(
    '%j',
    (_name, c) => {
      const compiled = compileGuard(c.text);
      if ('refused' in c) {
        expect(compiled.ok ? 'compiled' : compiled.error.code).toBe(c.refused);
        if (!compiled.ok) {
          expect(compiled.error.column).toBeGreaterThanOrEqual(1);
          expect(compiled.error.column).toBeLessThanOrEqual(c.text.length + 1);
          expect(compiled.error.message.length).toBeLessThan(300);
        }
        return;
      }
      if (!compiled.ok)
        throw new Error(`refused: ${compiled.error.code} at ${compiled.error.column}: ${compiled.error.message}`);
      const r = evaluateGuard(compiled.guard, { x: { a: 1 }, ...(c.vars ?? {}) });
      expect(r.ok ? r.value : r.error).toEqual(c.value);
    },
  );
});

describe('the pre-scan on arbitrary text', () => {
  const pieces = [
    ...['"', "'", bs, 'r', 'R', 'b', '0', '1', 'x', 'X', 'e', 'u', '.', ' ', '\n', '\f', '\r', '/', '?', ':'],
    ...[',', '!', '-', '(', ')', '[', ']', '{', '}', '==', '&&', 'in', 'if', 'true', 'size', 'exists'],
    ...['"""', "'''", `${bs}u00e9`, `${bs}377`, '\uD83D', '\uDE00'],
  ];
  test('compiling is total: a guard or a coded error with a column inside the text', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 30 }), (parts) => {
        const text = parts.join('');
        const r = compileGuard(text);
        if (!r.ok) {
          expect(r.error.code).toMatch(/^E_GUARD_/);
          expect(r.error.column).toBeGreaterThanOrEqual(1);
          expect(r.error.column).toBeLessThanOrEqual(text.length + 1);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
