/** Every ```cel example in docs/guards.md runs, and the documented error codes are the emitted ones. */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import {
  GUARD_ERROR_CODES,
  compileGuard,
  evaluateGuard,
  guardTypeFromJsonSchema,
  type GuardTypeEnv,
} from '../src/guard/index.js';

const doc = readFileSync(new URL('../../../docs/guards.md', import.meta.url), 'utf8');

interface Example {
  source: string;
  vars: Record<string, unknown>;
  env?: GuardTypeEnv;
  maxCost?: number;
  expected: string;
  explain?: unknown;
}

function parseExample(block: string): Example {
  const code = block.split('\n').filter((l) => !l.startsWith('//'));
  const directive = (name: string): string | undefined =>
    block
      .split('\n')
      .find((l) => l.startsWith(`// ${name}`))
      ?.slice(`// ${name}`.length)
      .trim();
  const env = directive('env:');
  const maxCost = directive('maxCost:');
  const explain = directive('explain:');
  const expected = directive('=>');
  if (expected === undefined) throw new Error(`example without "// =>": ${block}`);
  return {
    source: code.join('\n').trim(),
    vars: JSON.parse(directive('vars:') ?? '{}') as Record<string, unknown>,
    ...(env && {
      env: Object.fromEntries(
        Object.entries(JSON.parse(env) as object).map(([k, s]) => [k, guardTypeFromJsonSchema(s)]),
      ),
    }),
    ...(maxCost && { maxCost: Number(maxCost) }),
    ...(explain && { explain: JSON.parse(explain) as unknown }),
    expected,
  };
}

const examples = [...doc.matchAll(/```cel\n([\s\S]*?)```/g)].map((m) => parseExample(m[1]!));

describe('docs/guards.md examples', () => {
  test('there are examples for every kind of outcome', () => {
    expect(examples.length).toBeGreaterThan(40);
    for (const kind of [/^compile error/, /^error/, /^true$/, /^false$/, /^"/]) {
      expect(examples.some((e) => kind.test(e.expected))).toBe(true);
    }
  });

  test.each(examples.map((e) => [e.source, e] as const))('%s', (_source, ex) => {
    const compiled = compileGuard(ex.source, ex.env);
    const compileError = /^compile error (\S+) at (\d+)$/.exec(ex.expected);
    if (compileError) {
      expect(compiled.ok ? 'compiled' : { code: compiled.error.code, column: compiled.error.column }).toEqual({
        code: compileError[1],
        column: Number(compileError[2]),
      });
      return;
    }
    if (!compiled.ok) throw new Error(`${compiled.error.code} at ${compiled.error.column}: ${compiled.error.message}`);
    const result = evaluateGuard(
      compiled.guard,
      ex.vars,
      ex.maxCost === undefined ? undefined : { maxCost: ex.maxCost },
    );
    const evalError = /^error (\S+) at (\d+)$/.exec(ex.expected);
    if (evalError) {
      expect(result.ok ? result.value : { code: result.error.code, column: result.error.column }).toEqual({
        code: evalError[1],
        column: Number(evalError[2]),
      });
      return;
    }
    if (!result.ok) throw new Error(`${result.error.code} at ${result.error.column}: ${result.error.message}`);
    expect(result.value).toEqual(JSON.parse(ex.expected));
    if (ex.explain !== undefined) expect(result.explain).toEqual(ex.explain);
  });
});

describe('docs/guards.md error codes', () => {
  test('the table lists exactly GUARD_ERROR_CODES, with the same meanings', () => {
    const section = doc.slice(doc.indexOf('## Error codes'), doc.indexOf('## Examples'));
    const rows = [...section.matchAll(/^\| `(E_[A-Z_]+)` \| (.*) \|$/gm)].map((m) => ({ code: m[1], meaning: m[2] }));
    expect(rows).toEqual(GUARD_ERROR_CODES.map(({ code, meaning }) => ({ code, meaning })));
  });

  test('every documented code is emitted by some example', () => {
    const shown = new Set(examples.map((e) => /(E_[A-Z_]+)/.exec(e.expected)?.[1]));
    for (const { code } of GUARD_ERROR_CODES) if (code !== 'E_GUARD_LIMIT') expect(shown).toContain(code);
  });
});
