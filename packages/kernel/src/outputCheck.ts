/**
 * The typed output check: the only gate between an effect's raw result and the run state. A model
 * answer must be one of the declared enum values or JSON inside the declared schema; a tool result
 * must be JSON inside the tool step's output_schema.
 */
import { canonicalForm } from './canonicalJson.js';
import type { EffectResult } from './command.js';
import type { ErrorInfo } from './events.js';
import type { JsonSchema, JsonValue, LlmOutput, LlmStep, ParallelChild, ToolStep } from './program.js';
import { parseJsonText, type JsonTextError } from './jsonText.js';
import { checkValueLimits, MAX_VALUE_CHARS, type LimitError } from './limits.js';
import { checkSchema, describeViolations } from './schemaCheck.js';

/** `canonical`: the output's RFC 8785 text, which the check computes anyway (the event reuses it). */
export type Checked = { ok: true; output: JsonValue; canonical: string } | { ok: false; error: ErrorInfo };

/** The typed output check: the only gate between an effect's raw result and the state. */
export function checkEffectResult(step: LlmStep | ToolStep | ParallelChild, result: EffectResult): Checked {
  if (!result.ok) return { ok: false, error: result.error };
  if (step.kind === 'llm') return checkModelAnswer(step.output, result.raw ?? '');
  let value: unknown = result.value;
  if (value === undefined) value = null;
  // Tool results enter the state in canonical member order (a copy when they were not), so the
  // tool cannot change them afterwards and every later encoding is native.
  let form: { text: string; value: JsonValue };
  try {
    checkValueLimits(value, `tool '${step.tool}' output`);
  } catch (e) {
    return { ok: false, error: { code: (e as LimitError).code, message: (e as Error).message } };
  }
  try {
    form = canonicalForm(value as JsonValue);
  } catch (e) {
    return {
      ok: false,
      error: {
        code: 'E_TOOL_OUTPUT_NOT_JSON',
        message: `tool '${step.tool}' returned a value that is not JSON: ${(e as Error).message}`,
      },
    };
  }
  const vs = checkSchema(step.output_schema, value);
  if (vs.length)
    return {
      ok: false,
      error: {
        code: 'E_TOOL_OUTPUT_SCHEMA',
        message: `tool '${step.tool}' output violates its declared schema: ${describeViolations(vs)}`,
      },
    };
  return { ok: true, output: form.value, canonical: form.text };
}

/** A model answer must be one of the declared enum values, or JSON inside the declared schema. */
export function checkModelAnswer(output: LlmOutput, raw: string): Checked {
  if (raw.length > MAX_VALUE_CHARS)
    return {
      ok: false,
      error: { code: 'E_TOO_LARGE', message: `answer is longer than ${MAX_VALUE_CHARS} characters (docs/limits.md)` },
    };
  if ('enum' in output) {
    const answer = raw.trim();
    if (output.enum.includes(answer)) return { ok: true, output: answer, canonical: JSON.stringify(answer) };
    return {
      ok: false,
      error: {
        code: 'E_OUTPUT_NOT_IN_ENUM',
        message: `answer ${JSON.stringify(clip(answer))} is not one of ${output.enum.join(', ')}`,
      },
    };
  }
  let parsed: unknown;
  try {
    // Strict: an answer with a member named twice means two things to two readers.
    parsed = parseJsonText(stripFence(raw));
  } catch (e) {
    // Without the byte offset: the answer is recorded with sensitive values as their (longer)
    // commitments, so an offset in the real answer is not one in the recorded answer, and a replay
    // that checks the recorded answer again must write the same message.
    const err = e as JsonTextError;
    if (err.code !== 'E_JSON') return { ok: false, error: { code: err.code, message: `answer ${err.detail}` } };
    return {
      ok: false,
      error: { code: 'E_OUTPUT_MALFORMED', message: `answer is not valid JSON (${err.detail})` },
    };
  }
  const vs = checkSchema(output.schema as JsonSchema, parsed);
  if (vs.length)
    return {
      ok: false,
      error: { code: 'E_OUTPUT_SCHEMA', message: `answer violates the declared schema: ${describeViolations(vs)}` },
    };
  const form = canonicalForm(parsed as JsonValue);
  return { ok: true, output: form.value, canonical: form.text };
}

/** Models often wrap JSON in a ```json fence; accept exactly that wrapper and nothing looser. */
export function stripFence(raw: string): string {
  const m = /^\s*```(?:json)?\s*\n([\s\S]*?)\n\s*```\s*$/.exec(raw);
  return m ? m[1]! : raw;
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
