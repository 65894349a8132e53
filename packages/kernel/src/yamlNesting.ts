/**
 * A linear pre-scan of YAML text for nesting, before the YAML library sees it: the library's
 * composer is recursive, so text nested a few thousand levels deep (`[[[[…`, or ever deeper
 * indentation) would overflow the stack or exhaust memory inside it. The scan over-estimates the
 * nesting — indentation levels, compact `- ` entries and flow brackets outside quoted scalars,
 * comments and block scalars — so text it lets through is no deeper than it says; the exact
 * check (MAX_DEPTH in load.ts) runs on the parsed value.
 */

/** Index in `text` where the estimated nesting first exceeds `limit`, or -1. */
export function yamlNestingBeyond(text: string, limit: number): number {
  const indents: number[] = [];
  let flow = 0;
  let quote: '"' | "'" | null = null;
  let blockScalarIndent = -1;
  let lineStart = 0;
  while (lineStart <= text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) lineEnd = text.length;
    let i = lineStart;
    while (i < lineEnd && (text[i] === ' ' || text[i] === '\t')) i++;
    const indent = i - lineStart;
    const blank = i >= lineEnd || text[i] === '\r' || (text[i] === '#' && quote === null);
    if (blockScalarIndent >= 0 && (blank || indent > blockScalarIndent)) {
      lineStart = lineEnd + 1;
      continue;
    }
    blockScalarIndent = -1;
    if (blank && quote === null) {
      lineStart = lineEnd + 1;
      continue;
    }
    let depth = flow;
    if (quote === null && flow === 0) {
      while (indents.length > 0 && indents[indents.length - 1]! >= indent) indents.pop();
      indents.push(indent);
      // Compact nested entries on one line: `- - - x`, `? - x`.
      while ((text[i] === '-' || text[i] === '?') && (text[i + 1] === ' ' || i + 1 === lineEnd)) {
        depth++;
        i += 2;
        while (i < lineEnd && text[i] === ' ') i++;
      }
    }
    depth += indents.length;
    if (depth > limit) return i;
    let prev = ' ';
    let lastSignificant = '';
    for (; i < lineEnd; i++) {
      const c = text[i]!;
      if (quote !== null) {
        if (quote === '"' && c === '\\') i++;
        else if (c === quote) {
          if (quote === "'" && text[i + 1] === "'") i++;
          else quote = null;
        }
        prev = c;
        continue;
      }
      if (c === '#' && (prev === ' ' || prev === '\t')) break;
      if ((c === '"' || c === "'") && quoteMayStart(prev, lastSignificant)) quote = c;
      else if (c === '[' || c === '{') {
        flow++;
        if (flow + indents.length > limit) return i;
      } else if ((c === ']' || c === '}') && flow > 0) flow--;
      prev = c;
      if (c !== ' ' && c !== '\t') lastSignificant = c;
    }
    // A block scalar (`key: |`, `- >-`, …): its more indented lines are text, not structure.
    if (quote === null && flow === 0 && /(^|[\s:-])[|>][-+0-9]*\s*(#.*)?\r?$/.test(text.slice(lineStart, lineEnd)))
      blockScalarIndent = indent;
    lineStart = lineEnd + 1;
  }
  return -1;
}

/**
 * Where a quoted scalar can start: after an indicator or separator (`[`, `{`, `,`, `: `, `- `,
 * `? `) or at the start of a line's content. Anywhere else a quote is part of a plain scalar.
 */
function quoteMayStart(prev: string, lastSignificant: string): boolean {
  if (prev === '[' || prev === '{' || prev === ',') return true;
  if (prev !== ' ' && prev !== '\t') return false;
  return lastSignificant === '' || ':-?[{,'.includes(lastSignificant);
}
