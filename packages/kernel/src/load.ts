/**
 * Program loader: text (YAML or JSON) -> typed Program, or issues with file:line:col.
 *
 * YAML 1.2 (core schema) also reads JSON. Positions are kept in a SourceMap keyed by JSON pointer,
 * so issues found later (by validateProgram) can be located in the same file.
 */
import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, Scalar } from 'yaml';
import type { Document } from 'yaml';
import type { Issue } from './errors.js';
import { clipMessage } from './excerpt.js';
import { PROGRAM_FORMAT } from './program.js';
import type { Program } from './program.js';
import { checkProgramShape, escapePointer } from './validateShape.js';
import { JsonTextError, parseJsonText } from './jsonText.js';
import { yamlNestingBeyond } from './yamlNesting.js';
import { MAX_PROGRAM_BYTES } from './limits.js';

/** 1-based line and column. */
export interface SourcePosition {
  line: number;
  col: number;
}

/** Where a value starts; for an object member also where its key starts. */
export interface SourceNode extends SourcePosition {
  key?: SourcePosition;
  /** How a string scalar is written: columns inside single-line plain/quoted scalars can be translated. */
  style?: 'plain' | 'quoted' | 'block';
}

/** JSON pointer (e.g. `/steps/2/next`) -> position in the source text. */
export type SourceMap = ReadonlyMap<string, SourceNode>;

export interface LoadOptions {
  /** Shown in issues (`file:line:col`); a `.json` name selects the JSON format. */
  file?: string;
  format?: 'yaml' | 'json';
}

export interface LoadResult {
  /** Present only when there are no errors. */
  program?: Program;
  issues: Issue[];
  sourceMap?: SourceMap;
}

/** Codes the loader reports (besides the few validator codes the schema already enforces). */
export const LOAD_CODES: Readonly<Record<string, string>> = {
  E_PARSE:
    'The text is not well-formed YAML/JSON, has duplicate keys, unknown tags or aliases, too many alias expansions, non-JSON values (.inf, .nan, binary) or nesting deeper than 128 levels.',
  E_FORMAT: '`format` is missing or is not nano-vm.program/v1.',
  E_SCHEMA:
    'The program does not match program.schema.json: wrong type, unknown or missing property, bad step kind, bad id or path syntax.',
  E_TOO_LARGE: 'The text is longer than 4 MiB (docs/limits.md).',
};

/** Alias expansions allowed per document (YAML "billion laughs" defence). */
const MAX_ALIAS_COUNT = 50;
/** Deeper documents are refused: later stages (schemas, guards, hashing) walk values recursively. */
const MAX_DEPTH = 128;
/** What the pre-scans let through to the YAML library: it over-estimates, the exact check follows. */
const PRE_SCAN_DEPTH = 2 * MAX_DEPTH;

/** 1-based line of string index `index`. */
function countLines(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/** Index where JSON text nests deeper than `limit`, or -1 (other errors are the YAML reader's to report). */
function jsonDepthBeyond(text: string, limit: number): number {
  try {
    parseJsonText(text, { maxDepth: limit });
  } catch (e) {
    if (e instanceof JsonTextError && e.problem === 'depth') return e.index;
  }
  return -1;
}

export function loadProgram(text: string, opts: LoadOptions = {}): LoadResult {
  const parsed = parseSource(text, opts);
  if (!('value' in parsed)) return parsed;
  const result = programFromValue(parsed.value, {
    ...(parsed.sourceMap !== undefined ? { sourceMap: parsed.sourceMap } : {}),
    ...(opts.file !== undefined ? { file: opts.file } : {}),
  });
  return { ...result, sourceMap: parsed.sourceMap };
}

/**
 * Text (YAML 1.2 or JSON) -> a JSON value and its source map, or E_PARSE issues. Shared by every
 * document nano-vm reads from files (programs, policies), so all report positions the same way.
 */
export function parseSource(
  text: string,
  opts: LoadOptions = {},
): { value?: unknown; issues: Issue[]; sourceMap?: SourceMap } {
  const format = opts.format ?? (opts.file?.toLowerCase().endsWith('.json') ? 'json' : 'yaml');
  const lineCounter = new LineCounter();
  const parseIssue = (message: string, offset: number, path?: string): Issue => {
    const { line, col } = lineCounter.linePos(offset);
    // Parser messages may quote the text (a whole line of a binary file): keep them short.
    const issue: Issue = { code: 'E_PARSE', severity: 'error', message: clipMessage(message), line, col };
    if (path !== undefined) issue.path = path;
    if (opts.file !== undefined) issue.file = opts.file;
    return issue;
  };

  // Parsing YAML costs many times the text's size in time and memory: refuse what no program needs.
  if (text.length > MAX_PROGRAM_BYTES) {
    const issue: Issue = {
      code: 'E_TOO_LARGE',
      severity: 'error',
      message: `the document is longer than ${MAX_PROGRAM_BYTES} characters (docs/limits.md)`,
    };
    if (opts.file !== undefined) issue.file = opts.file;
    return { issues: [issue] };
  }
  // The YAML library composes recursively: text nested far deeper than MAX_DEPTH is refused here,
  // in one linear pass, before it can overflow the stack there (docs/limits.md).
  const deepAt = format === 'json' ? jsonDepthBeyond(text, PRE_SCAN_DEPTH) : yamlNestingBeyond(text, PRE_SCAN_DEPTH);
  if (deepAt >= 0) {
    // The line counter fills while the YAML library parses: count the lines here.
    const line = countLines(text, deepAt);
    const issue: Issue = {
      code: 'E_PARSE',
      severity: 'error',
      message: `the document is nested deeper than ${MAX_DEPTH} levels`,
      line,
      col: deepAt - text.lastIndexOf('\n', deepAt - 1),
    };
    if (opts.file !== undefined) issue.file = opts.file;
    return { issues: [issue] };
  }

  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: true,
      strict: true,
      version: '1.2',
      schema: format === 'json' ? 'json' : 'core',
      merge: false,
    });
  } catch (e) {
    return { issues: [parseIssue(`cannot parse: ${e instanceof Error ? e.message : String(e)}`, 0)] };
  }
  const syntax = [...doc.errors, ...doc.warnings].map((e) => {
    const message =
      e.code === 'DUPLICATE_KEY' ? `duplicate key '${keyAt(text, e.pos[0])}' (keys must be unique)` : e.message;
    return parseIssue(message, e.pos[0]);
  });
  if (syntax.length > 0) return { issues: capParseIssues(sortIssues(syntax)) };

  const { sourceMap, aliases, issues: treeIssues } = mapDocument(doc, lineCounter, parseIssue);
  if (treeIssues.length > 0) return { issues: sortIssues(treeIssues), sourceMap };

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    const message =
      e instanceof ReferenceError && /alias count/i.test(e.message)
        ? `too many alias expansions (more than ${MAX_ALIAS_COUNT}); write the values out instead`
        : `cannot read the document: ${e instanceof Error ? e.message : String(e)}`;
    return { issues: [parseIssue(message, aliases[0] ?? 0)], sourceMap };
  }

  const jsonIssues = nonJsonValues(value);
  if (jsonIssues.length > 0) return { issues: locateIssues(jsonIssues, sourceMap, opts.file), sourceMap };

  return { value, issues: [], sourceMap };
}

/**
 * Checks an already-parsed value (e.g. a JSON body) as a program: format, then structure.
 * Returns the typed program only when there are no errors.
 */
export function programFromValue(
  value: unknown,
  opts: { sourceMap?: SourceMap; file?: string } = {},
): { program?: Program; issues: Issue[] } {
  let issues: Issue[];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const got =
      value === null || value === undefined
        ? 'an empty document'
        : Array.isArray(value)
          ? 'a list'
          : `a ${typeof value}`;
    issues = [
      {
        code: 'E_SCHEMA',
        severity: 'error',
        path: '',
        message: `a program must be a mapping with format, id, input_schema and steps; got ${got}`,
      },
    ];
  } else if (!Object.hasOwn(value, 'format')) {
    issues = [
      {
        code: 'E_FORMAT',
        severity: 'error',
        path: '',
        message: `missing 'format: ${PROGRAM_FORMAT}' (is this a nano-vm program?)`,
      },
    ];
  } else if ((value as { format: unknown }).format !== PROGRAM_FORMAT) {
    const format = (value as { format: unknown }).format;
    const got = typeof format === 'string' ? `'${format}'` : JSON.stringify(format);
    issues = [
      {
        code: 'E_FORMAT',
        severity: 'error',
        path: '/format',
        message: `format must be '${PROGRAM_FORMAT}', got ${got}`,
      },
    ];
  } else {
    issues = checkProgramShape(value);
  }
  issues = locateIssues(issues, opts.sourceMap, opts.file);
  const ok = !issues.some((i) => i.severity === 'error');
  return ok ? { program: value as Program, issues } : { issues };
}

/**
 * Position of a JSON pointer: the key of an object member, else the value; a pointer that is not
 * in the map (e.g. a missing property) falls back to its nearest mapped ancestor.
 */
export function locate(sourceMap: SourceMap, pointer: string): SourcePosition | undefined {
  let p = pointer;
  for (;;) {
    const node = sourceMap.get(p);
    if (node !== undefined) {
      const at = node.key ?? node;
      return { line: at.line, col: at.col };
    }
    if (p === '') return undefined;
    p = p.slice(0, p.lastIndexOf('/'));
  }
}

/**
 * Position of a 1-based column inside the string at `pointer` (e.g. a guard error inside a
 * `when:`). Exact for single-line plain scalars, close for quoted ones (escapes are not counted);
 * for block and multi-line scalars it is the start of the value.
 */
export function locateInScalar(sourceMap: SourceMap, pointer: string, column: number): SourcePosition | undefined {
  const node = sourceMap.get(pointer);
  if (node === undefined) return locate(sourceMap, pointer);
  if (node.style === 'plain') return { line: node.line, col: node.col + column - 1 };
  if (node.style === 'quoted') return { line: node.line, col: node.col + column };
  return { line: node.line, col: node.col };
}

/** Fills line/col (from the source map) and file, and sorts; returns a new array. */
export function locateIssues(issues: readonly Issue[], sourceMap?: SourceMap, file?: string): Issue[] {
  const placed = issues.map((issue) => {
    const out = { ...issue };
    if (sourceMap !== undefined && out.path !== undefined && out.line === undefined) {
      const at = locate(sourceMap, out.path);
      if (at !== undefined) {
        out.line = at.line;
        out.col = at.col;
      }
    }
    if (file !== undefined && out.file === undefined) out.file = file;
    return out;
  });
  return sortIssues(placed);
}

/**
 * Deterministic order: by position in the file when known, then by JSON pointer (array indices
 * numerically; issues without a pointer first); ties keep the order of discovery (stable sort).
 */
/** Syntax errors reported for one document; past this the text is likely not YAML or JSON at all. */
export const MAX_PARSE_ISSUES = 20;

function capParseIssues(issues: Issue[]): Issue[] {
  if (issues.length <= MAX_PARSE_ISSUES) return issues;
  const last = issues[MAX_PARSE_ISSUES - 1]!;
  const rest = issues.length - MAX_PARSE_ISSUES;
  const more: Issue = {
    code: 'E_PARSE',
    severity: 'error',
    message: `… ${rest} more syntax error${rest === 1 ? '' : 's'} after line ${last.line ?? 1} (is this a YAML or JSON file?)`,
  };
  if (last.file !== undefined) more.file = last.file;
  return [...issues.slice(0, MAX_PARSE_ISSUES), more];
}

export function sortIssues(issues: Issue[]): Issue[] {
  const keyed = issues.map((issue) => ({
    issue,
    segments: issue.path === undefined ? undefined : issue.path.split('/').slice(1),
  }));
  keyed.sort((a, b) => {
    const byPosition =
      (a.issue.line ?? Infinity) - (b.issue.line ?? Infinity) || (a.issue.col ?? Infinity) - (b.issue.col ?? Infinity);
    if (byPosition !== 0 && !Number.isNaN(byPosition)) return byPosition;
    if (a.segments === undefined || b.segments === undefined)
      return a.segments === b.segments ? 0 : a.segments === undefined ? -1 : 1;
    return comparePointers(a.segments, b.segments);
  });
  return keyed.map((k) => k.issue);
}

function comparePointers(a: string[], b: string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    const xn = /^\d+$/.test(x);
    const yn = /^\d+$/.test(y);
    if (xn && yn) return Number(x) - Number(y);
    if (xn !== yn) return xn ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** The key written at `offset` (for messages). */
function keyAt(text: string, offset: number): string {
  const m = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^:,{}[\]\n]*?)\s*:/.exec(text.slice(offset, offset + 200));
  return m?.[1]?.trim() ?? text.slice(offset, offset + 1);
}

interface MappedDocument {
  sourceMap: Map<string, SourceNode>;
  /** Offsets of alias nodes, in document order. */
  aliases: number[];
  issues: Issue[];
}

/** Walks the YAML tree (iteratively: documents may be deep) and records every node's position. */
function mapDocument(
  doc: Document.Parsed,
  lc: LineCounter,
  parseIssue: (message: string, offset: number, path?: string) => Issue,
): MappedDocument {
  const sourceMap = new Map<string, SourceNode>();
  const aliases: number[] = [];
  const issues: Issue[] = [];
  const stack: Array<{ node: unknown; ptr: string; key?: SourcePosition }> = [{ node: doc.contents, ptr: '' }];
  while (stack.length > 0) {
    const { node, ptr, key } = stack.pop()!;
    if (!isNode(node) || node.range === undefined || node.range === null) {
      if (key !== undefined) sourceMap.set(ptr, { line: key.line, col: key.col, key });
      continue;
    }
    const start = node.range[0];
    const entry: SourceNode = lc.linePos(start);
    if (key !== undefined) entry.key = key;
    if (isScalar(node) && typeof node.value === 'string') entry.style = scalarStyle(node, lc);
    sourceMap.set(ptr, entry);
    if (isAlias(node)) {
      aliases.push(start);
      if (node.resolve(doc) === undefined)
        issues.push(
          parseIssue(`unknown alias *${node.source} (define the anchor &${node.source} before using it)`, start, ptr),
        );
    } else if (isMap(node)) {
      for (let i = node.items.length - 1; i >= 0; i--) {
        const pair = node.items[i]!;
        const k = pair.key;
        const keyAt = isNode(k) && k.range ? lc.linePos(k.range[0]) : entry;
        if (!isScalar(k) || (typeof k.value !== 'string' && typeof k.value !== 'number')) {
          issues.push(parseIssue('mapping keys must be strings', isNode(k) && k.range ? k.range[0] : start, ptr));
          continue;
        }
        stack.push({
          node: pair.value,
          ptr: `${ptr}/${escapePointer(String(k.value))}`,
          key: { line: keyAt.line, col: keyAt.col },
        });
      }
    } else if (isSeq(node)) {
      for (let i = node.items.length - 1; i >= 0; i--) stack.push({ node: node.items[i], ptr: `${ptr}/${i}` });
    }
  }
  aliases.sort((a, b) => a - b);
  return { sourceMap, aliases, issues };
}

function scalarStyle(node: Scalar, lc: LineCounter): SourceNode['style'] {
  const [start, end] = node.range!;
  if (lc.linePos(start).line !== lc.linePos(Math.max(start, end - 1)).line) return 'block';
  if (node.type === Scalar.PLAIN) return 'plain';
  if (node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE) return 'quoted';
  return 'block';
}

/** Values JSON cannot carry (and over-deep nesting), found iteratively. */
function nonJsonValues(root: unknown): Issue[] {
  const issues: Issue[] = [];
  const stack: Array<{ v: unknown; ptr: string; depth: number }> = [{ v: root, ptr: '', depth: 0 }];
  while (stack.length > 0) {
    const { v, ptr, depth } = stack.pop()!;
    const at = ptr === '' ? 'the document' : ptr.slice(1);
    if (depth > MAX_DEPTH) {
      issues.push({
        code: 'E_PARSE',
        severity: 'error',
        path: ptr,
        message: `${at} is nested deeper than ${MAX_DEPTH} levels`,
      });
      continue;
    }
    if (v === null || typeof v === 'string' || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v))
        issues.push({
          code: 'E_PARSE',
          severity: 'error',
          path: ptr,
          message: `${at}: ${String(v)} is not a JSON number`,
        });
      continue;
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], ptr: `${ptr}/${i}`, depth: depth + 1 });
      continue;
    }
    const proto: unknown = typeof v === 'object' ? Object.getPrototypeOf(v) : undefined;
    if (proto === Object.prototype || proto === null) {
      const entries = Object.entries(v as object);
      for (let i = entries.length - 1; i >= 0; i--)
        stack.push({ v: entries[i]![1], ptr: `${ptr}/${escapePointer(entries[i]![0])}`, depth: depth + 1 });
      continue;
    }
    issues.push({
      code: 'E_PARSE',
      severity: 'error',
      path: ptr,
      message: `${at} is not a JSON value (binary and other tagged values are not allowed)`,
    });
  }
  return issues;
}
