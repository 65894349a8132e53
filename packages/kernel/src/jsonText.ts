/**
 * A strict JSON text reader (RFC 8259) for everything nano-vm reads as JSON from outside: bundles,
 * stored events, model answers, input and event files. Unlike JSON.parse it refuses duplicate
 * member names (a reader keeping the first would see another document than one keeping the last),
 * refuses nesting deeper than a limit, keeps `__proto__` an ordinary member, reports where it
 * stopped as a UTF-8 byte offset, and is iterative, so no text can overflow the stack.
 */
import { setMember } from './dataMember.js';
import { NanoVmError } from './errors.js';
import { MAX_JSON_DEPTH } from './limits.js';

export type JsonTextProblem = 'syntax' | 'duplicate' | 'depth' | 'size';

/**
 * Why a text was refused. Code E_TOO_DEEP / E_TOO_LARGE for a limit, else E_JSON (callers that have
 * a code of their own for "not JSON" — E_BUNDLE_FORMAT, E_OUTPUT_MALFORMED — use it instead).
 */
export class JsonTextError extends NanoVmError<'E_JSON' | 'E_TOO_DEEP' | 'E_TOO_LARGE'> {
  constructor(
    readonly problem: JsonTextProblem,
    /** Byte offset (UTF-8) in the text where reading stopped. */
    readonly offset: number,
    readonly detail: string,
    /** The same place as a string index (UTF-16 code units). */
    readonly index: number = offset,
  ) {
    super(
      problem === 'depth' ? 'E_TOO_DEEP' : problem === 'size' ? 'E_TOO_LARGE' : 'E_JSON',
      `${detail} at byte ${offset}`,
    );
  }
}

export interface JsonTextLimits {
  /** Deepest nesting of arrays and objects (default MAX_JSON_DEPTH). */
  maxDepth?: number;
  /** Longest text, in characters. */
  maxChars?: number;
}

type Frame = { array: unknown[] } | { object: Record<string, unknown>; names: Set<string>; name: string };

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/** The JSON value of `text`, or a JsonTextError. */
export function parseJsonText(text: string, limits: JsonTextLimits = {}): unknown {
  const maxDepth = limits.maxDepth ?? MAX_JSON_DEPTH;
  const fail = (problem: JsonTextProblem, at: number, detail: string): never => {
    throw new JsonTextError(problem, utf8Offset(text, at), detail, at);
  };
  if (limits.maxChars !== undefined && text.length > limits.maxChars)
    fail('size', limits.maxChars, `text longer than ${limits.maxChars} characters`);
  const n = text.length;
  let i = 0;
  const stack: Frame[] = [];
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return;
    }
  };
  const expected = (what: string): never =>
    fail(
      'syntax',
      i,
      i >= n ? `unexpected end of text, expected ${what}` : `expected ${what}, found ${describe(text, i)}`,
    );

  /** A string starting at the quote at `i`; leaves `i` after its closing quote. */
  const readString = (): string => {
    const start = i;
    let escaped = false;
    i++;
    for (;;) {
      if (i >= n) fail('syntax', start, 'unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail('syntax', i, 'control character in a string (escape it)');
      if (c === 0x5c) {
        escaped = true;
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('syntax', i, 'bad \\u escape');
          i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) fail('syntax', i, 'bad escape');
        i += 2;
        continue;
      }
      i++;
    }
    i++;
    return escaped ? (JSON.parse(text.slice(start, i)) as string) : text.slice(start + 1, i - 1);
  };

  /** Adds a finished value to the open container (or returns it when there is none). */
  let result: unknown;
  let done = false;
  const attach = (v: unknown) => {
    const top = stack[stack.length - 1];
    if (top === undefined) {
      result = v;
      done = true;
    } else if ('array' in top) top.array.push(v);
    else setMember(top.object, top.name, v);
  };

  ws();
  // Each turn reads one value (or opens a container), then the separators after it.
  for (;;) {
    const c = text[i];
    let value: unknown;
    let opened = false;
    if (c === '{' || c === '[') {
      if (stack.length >= maxDepth) fail('depth', i, `nested deeper than ${maxDepth} levels`);
      i++;
      ws();
      if (c === '[') {
        const array: unknown[] = [];
        if (text[i] === ']') {
          i++;
          value = array;
        } else {
          stack.push({ array });
          opened = true;
        }
      } else {
        const object: Record<string, unknown> = {};
        if (text[i] === '}') {
          i++;
          value = object;
        } else {
          stack.push({ object, names: new Set(), name: '' });
          opened = true;
          readName();
        }
      }
    } else if (c === '"') value = readString();
    else if (c === 't' && text.startsWith('true', i)) ((value = true), (i += 4));
    else if (c === 'f' && text.startsWith('false', i)) ((value = false), (i += 5));
    else if (c === 'n' && text.startsWith('null', i)) ((value = null), (i += 4));
    else {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (m === null) expected('a JSON value');
      value = Number(m![0]);
      if (!Number.isFinite(value)) fail('syntax', i, 'number out of range');
      i += m![0].length;
    }
    if (opened) {
      ws();
      continue;
    }
    attach(value);
    // Close every container that ends here, then expect the next member or element.
    for (;;) {
      ws();
      if (done) {
        if (i < n) fail('syntax', i, `unexpected ${describe(text, i)} after the JSON value`);
        return result;
      }
      const top = stack[stack.length - 1]!;
      const isArray = 'array' in top;
      if (text[i] === ',') {
        i++;
        ws();
        if (!isArray) readName();
        break;
      }
      if (text[i] === (isArray ? ']' : '}')) {
        i++;
        stack.pop();
        attach(isArray ? top.array : top.object);
        continue;
      }
      expected(isArray ? "',' or ']'" : "',' or '}'");
    }
    ws();
  }

  /** A member name and its colon; refuses a name the object already has. */
  function readName(): void {
    const top = stack[stack.length - 1] as Extract<Frame, { object: unknown }>;
    if (text[i] !== '"') expected('a member name in double quotes');
    const at = i;
    const name = readString();
    if (top.names.has(name)) fail('duplicate', at, `duplicate member name ${JSON.stringify(name)}`);
    top.names.add(name);
    top.name = name;
    ws();
    if (text[i] !== ':') expected("':'");
    i++;
    ws();
  }
}

/** The character at `i` for a message. */
function describe(text: string, i: number): string {
  return JSON.stringify(text.slice(i, i + 1));
}

/** UTF-8 byte offset of UTF-16 index `index` in `text`. */
function utf8Offset(text: string, index: number): number {
  let bytes = 0;
  const end = Math.min(index, text.length);
  for (let k = 0; k < end; k++) {
    const c = text.charCodeAt(k);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && k + 1 < end) {
      bytes += 4;
      k++;
    } else bytes += 3;
  }
  return bytes;
}

// The WHATWG decoder (Node and browsers); the kernel's type library has no DOM.
declare const TextDecoder: new (
  label: string,
  options: { fatal: boolean; ignoreBOM: boolean },
) => { decode(bytes: Uint8Array): string };

/**
 * `bytes` as UTF-8 text; malformed UTF-8 is refused (E_JSON-family callers choose the code) with
 * the byte offset of the first bad sequence, instead of being read as U+FFFD. A leading BOM is
 * dropped.
 */
export function decodeUtf8(bytes: Uint8Array): { text: string } | { badOffset: number } {
  try {
    return { text: new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes) };
  } catch {
    return { badOffset: firstBadUtf8(bytes) };
  }
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence. */
function firstBadUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    let need: number;
    let min: number;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) ((need = 1), (min = 0x80));
    else if (c >= 0xe0 && c <= 0xef) ((need = 2), (min = 0x800));
    else if (c >= 0xf0 && c <= 0xf4) ((need = 3), (min = 0x10000));
    else return i;
    let cp = c & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const x = b[i + k];
      if (x === undefined || (x & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (x & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return b.length;
}
