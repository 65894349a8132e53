/**
 * Positions the cel-js AST does not record: where an infix operator or method name sits, and
 * whether a sub-expression was written in parentheses. It reads the text cel-js parsed (the
 * pre-scan's, ./celLexer.ts: every string literal there is a placeholder without backslashes), so
 * it only has to know what the CEL lexer treats as trivia (whitespace, `//` comments) and where a
 * string literal ends.
 */

function isSpace(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r';
}

export class SourceScan {
  /** For each `(` or `)` offset, the offset of its partner. */
  private readonly partner = new Map<number, number>();

  constructor(private readonly source: string) {
    const open: number[] = [];
    let i = 0;
    while (i < source.length) {
      const ch = source[i];
      if (ch === '/' && source[i + 1] === '/') {
        while (i < source.length && source[i] !== '\n') i++;
      } else if (ch === '"' || ch === "'") {
        i = this.stringEnd(i, ch);
        continue;
      } else if (ch === '(') {
        open.push(i);
      } else if (ch === ')') {
        const o = open.pop();
        if (o !== undefined) {
          this.partner.set(o, i);
          this.partner.set(i, o);
        }
      }
      i++;
    }
  }

  private stringEnd(start: number, quote: string): number {
    const s = this.source;
    const triple = s[start + 1] === quote && s[start + 2] === quote;
    let i = start + (triple ? 3 : 1);
    while (i < s.length) {
      if (s[i] === '\\') i += 2;
      else if (s[i] !== quote) i++;
      else if (!triple) return i + 1;
      else if (s[i + 1] === quote && s[i + 2] === quote) return i + 3;
      else i++;
    }
    return s.length;
  }

  /** First offset at or after `pos` that is not whitespace or comment. */
  skipTrivia(pos: number): number {
    const s = this.source;
    let i = pos;
    while (i < s.length) {
      if (isSpace(s[i])) i++;
      else if (s[i] === '/' && s[i + 1] === '/') while (i < s.length && s[i] !== '\n') i++;
      else break;
    }
    return i;
  }

  /** Offset of the first token after `pos` that is not trivia or a closing parenthesis. */
  tokenAfter(pos: number): number {
    let i = this.skipTrivia(pos);
    while (this.source[i] === ')') i = this.skipTrivia(i + 1);
    return i;
  }

  /**
   * Whether the expression spanning [start, end) is enclosed in its own parentheses. The closing
   * parenthesis must follow `end` (past trivia and other closing parentheses), and its partner
   * must lie in [lowerBound, start): a right operand passes the end of its operator as lowerBound,
   * so parentheses around the whole enclosing expression do not count.
   */
  isParenthesized(start: number, end: number, lowerBound: number): boolean {
    let i = this.skipTrivia(end);
    while (this.source[i] === ')') {
      const o = this.partner.get(i);
      if (o !== undefined && o >= lowerBound && o < start) return true;
      i = this.skipTrivia(i + 1);
    }
    return false;
  }
}
