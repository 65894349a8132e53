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
 * `maxChars` (counted as JSON.stringify would write it, without escapes). Iterative: the value
 * may be arbitrarily deep. `what` names the value in the message.
 */
export function checkValueLimits(
  value: unknown,
  what: string,
  maxDepth: number = MAX_JSON_DEPTH,
  maxChars: number = MAX_VALUE_CHARS,
): void {
  let chars = 0;
  const stack: Array<{ v: unknown; depth: number; path: () => string }> = [{ v: value, depth: 0, path: () => '' }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (typeof v === 'string') chars += v.length + 2;
    else if (typeof v === 'number') chars += 24;
    else if (v !== null && typeof v === 'object') {
      if (depth >= maxDepth)
        throw new LimitError(
          'E_TOO_DEEP',
          `${what} is nested deeper than ${maxDepth} levels (at ${path() || '/'}; docs/limits.md)`,
          { path: path() },
        );
      chars += 2;
      if (Array.isArray(v)) {
        for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], depth: depth + 1, path: () => `${path()}/${i}` });
        chars += v.length;
      } else {
        const keys = Object.keys(v);
        for (let i = keys.length - 1; i >= 0; i--) {
          const k = keys[i]!;
          chars += k.length + 4;
          stack.push({
            v: (v as Record<string, unknown>)[k],
            depth: depth + 1,
            path: () => `${path()}/${escapePointer(k)}`,
          });
        }
      }
    } else chars += 5;
    if (chars > maxChars)
      throw new LimitError('E_TOO_LARGE', `${what} is larger than ${maxChars} characters of JSON (docs/limits.md)`);
  }
}
