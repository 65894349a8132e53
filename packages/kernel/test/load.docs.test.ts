/** Every ```yaml program block in docs/dsl.md loads and validates, and its code table is the code list. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LOAD_CODES, loadProgram } from '../src/load.js';
import { VALIDATION_CODES, validateProgram } from '../src/validate.js';

const doc = readFileSync(new URL('../../../docs/dsl.md', import.meta.url), 'utf8');

/** The body and starting line of every ```yaml program fence. */
function programBlocks(markdown: string): Array<{ text: string; line: number }> {
  const blocks: Array<{ text: string; line: number }> = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```yaml program') continue;
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`unclosed block at docs/dsl.md:${i + 1}`);
    blocks.push({ text: lines.slice(i + 1, end).join('\n'), line: i + 2 });
    i = end;
  }
  return blocks;
}

describe('docs/dsl.md', () => {
  const blocks = programBlocks(doc);

  it('has at least two complete example programs', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(2);
  });

  it.each(blocks.map((b) => [b.line, b.text] as const))(
    'the program at line %i loads and validates without issues',
    (line, text) => {
      const loaded = loadProgram(text, { file: `docs/dsl.md@${line}` });
      expect(loaded.issues).toEqual([]);
      expect(validateProgram(loaded.program!, { sourceMap: loaded.sourceMap!, file: `docs/dsl.md@${line}` })).toEqual(
        [],
      );
    },
  );

  it('lists exactly the loader and validator codes, with their severities', () => {
    const rows = [...doc.matchAll(/^\| `([EW]_[A-Z_]+)` \| (error|warning) \|/gm)].map((m) => [m[1]!, m[2]!] as const);
    const codes = [...Object.keys(LOAD_CODES), ...Object.keys(VALIDATION_CODES)];
    expect(rows.map(([code]) => code).sort()).toEqual(codes.sort());
    for (const [code, severity] of rows) expect(severity, code).toBe(code.startsWith('W_') ? 'warning' : 'error');
  });
});
