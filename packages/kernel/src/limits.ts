/**
 * Limits on what nano-vm reads (docs/limits.md): every program, policy, input, model answer, tool
 * output, external event, bundle and stored event is held to them where it enters, so nothing
 * later (hashing, schema checks, guards, replay) can be driven into a stack overflow or an
 * unbounded parse.
 */
import { NanoVmError } from './errors.js';
import { escapePointer } from './validateShape.js';

/** Nesting of a value: inputs, answers, tool outputs, event payloads, programs and policies. */
export const MAX_JSON_DEPTH = 128;
/** Nesting of a document that carries values a few levels down: bundles and stored events. */
export const MAX_DOCUMENT_DEPTH = MAX_JSON_DEPTH + 32;
/** Characters of a value's JSON text: inputs, answers, tool outputs, event payloads. */
export const MAX_VALUE_CHARS = 16 * 1024 * 1024;
/** Bytes of a program or policy file (parsing YAML costs far more than its size in memory). */
export const MAX_PROGRAM_BYTES = 4 * 1024 * 1024;
/** Bytes of a bundle file. */
export const MAX_BUNDLE_BYTES = 256 * 1024 * 1024;

/** A value or text beyond a limit: E_TOO_DEEP or E_TOO_LARGE, located by a JSON pointer or a byte offset. */
export class LimitError extends NanoVmError {
  constructor(code: 'E_TOO_DEEP' | 'E_TOO_LARGE', message: string, at: { path?: string; offset?: number } = {}) {
    super(code, message, at.path !== undefined ? { location: { path: at.path } } : {});
  }
}

/**
 * Refuses a value nested deeper than `maxDepth` or whose JSON text would be longer than
 * `maxChars` (estimated: strings and names at their length, numbers at 24 characters). Iterative:
 * the value may be arbitrarily deep. `what` names the value in the message. It runs on every
 * tool output and input, so the walk allocates nothing per node; the path of a too deep member is
 * found by a second walk, only then.
 */
export function checkValueLimits(
  value: unknown,
  what: string,
  maxDepth: number = MAX_JSON_DEPTH,
  maxChars: number = MAX_VALUE_CHARS,
): void {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'string' && value.length + 2 > maxChars) tooLarge(what, maxChars);
    return;
  }
  let chars = 0;
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const v = values.pop();
    const depth = depths.pop()!;
    if (typeof v === 'string') chars += v.length + 2;
    else if (typeof v === 'number') chars += 24;
    else if (v !== null && typeof v === 'object') {
      if (depth >= maxDepth) {
        const path = pathDeeperThan(value, maxDepth);
        throw new LimitError(
          'E_TOO_DEEP',
          `${what} is nested deeper than ${maxDepth} levels (at ${path || '/'}; docs/limits.md)`,
          { path },
        );
      }
      chars += 2;
      if (Array.isArray(v)) {
        chars += v.length;
        for (let i = v.length - 1; i >= 0; i--) {
          values.push(v[i]);
          depths.push(depth + 1);
        }
      } else
        for (const k in v)
          if (Object.hasOwn(v, k)) {
            chars += k.length + 4;
            values.push((v as Record<string, unknown>)[k]);
            depths.push(depth + 1);
          }
    } else chars += 5;
    if (chars > maxChars) tooLarge(what, maxChars);
  }
}

function tooLarge(what: string, maxChars: number): never {
  throw new LimitError('E_TOO_LARGE', `${what} is larger than ${maxChars} characters of JSON (docs/limits.md)`);
}

/** JSON pointer of the first object or array at depth `maxDepth` (called only when there is one). */
function pathDeeperThan(value: unknown, maxDepth: number): string {
  const stack: Array<{ v: unknown; depth: number; path: string }> = [{ v: value, depth: 0, path: '' }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= maxDepth) return path;
    const keys = Array.isArray(v) ? v.map((_, i) => String(i)) : Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--)
      stack.push({
        v: (v as Record<string, unknown>)[keys[i]!],
        depth: depth + 1,
        path: `${path}/${escapePointer(keys[i]!)}`,
      });
  }
  return '';
}
