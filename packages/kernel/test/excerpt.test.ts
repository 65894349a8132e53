import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clipMessage, excerpt, EXCERPT_WIDTH, MAX_MESSAGE_LENGTH } from '../src/excerpt.js';
import { MAX_PARSE_ISSUES, parseSource } from '../src/load.js';

/** No lone surrogate (String.prototype.isWellFormed is ES2024, beyond the test lib). */
const wellFormed = (s: string): boolean =>
  !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

describe('excerpt', () => {
  it('keeps short text, cuts long text around the offset with ellipses', () => {
    expect(excerpt('a == b', 3)).toBe('a == b');
    const long = 'x'.repeat(1000) + 'HERE' + 'y'.repeat(1000);
    const e = excerpt(long, 1000);
    expect(e).toContain('HERE');
    expect(e.startsWith('…') && e.endsWith('…')).toBe(true);
    expect(e.length).toBe(EXCERPT_WIDTH + 2);
    expect(excerpt(long, 0).startsWith('xxx')).toBe(true);
    expect(excerpt(long, long.length).endsWith('yyy')).toBe(true);
  });

  it('is bounded and never splits a surrogate pair', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 400 }), fc.nat(500), (text, at) => {
        const e = excerpt(text, at);
        expect(e.length).toBeLessThanOrEqual(EXCERPT_WIDTH + 2);
        expect(wellFormed(e)).toBe(wellFormed(text));
        const c = clipMessage(text, 50);
        expect(c.length).toBeLessThanOrEqual(50);
        expect(wellFormed(c)).toBe(wellFormed(text));
      }),
    );
  });
});

describe('parse errors of a file that is not YAML or JSON', () => {
  it('are few and short', () => {
    let text = '';
    for (let i = 0; i < 5000; i++) text += String.fromCharCode(32 + ((i * 7919) % 95)) + (i % 97 === 0 ? '\n' : '');
    for (const file of ['x.json', 'x.yaml']) {
      const { issues } = parseSource(text + '\n: : [ {', { file });
      expect(issues.length).toBeGreaterThan(0);
      expect(issues.length).toBeLessThanOrEqual(MAX_PARSE_ISSUES + 1);
      for (const i of issues) expect(i.message.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    }
  });
});
