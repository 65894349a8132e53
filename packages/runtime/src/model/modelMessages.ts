/**
 * The text a provider adapter sends, built from the ModelRequest alone: the step's rendered prompt
 * and its projected view (the user message), and an instruction derived from the step's declared
 * output type (the system message). Nothing else — no run id, no input outside the projection,
 * no trace — is available here, so nothing else can reach a provider.
 */
import type { LlmOutput } from '@nano-vm/kernel';
import type { ModelRequest } from './port.js';

/** The system instruction: answer inside the declared type. */
export function outputInstruction(output: LlmOutput): string {
  if ('enum' in output)
    return `Answer with exactly one of these values and nothing else (no quotes, no punctuation, no explanation): ${output.enum.join(', ')}`;
  return `Answer with one JSON value that matches this JSON Schema, and nothing else (no prose, no code fence):\n${JSON.stringify(output.schema)}`;
}

/** The user message: the rendered prompt, then the projected data it was rendered from. */
export function userContent(req: Pick<ModelRequest, 'prompt' | 'projection'>): string {
  return `${req.prompt.trimEnd()}\n\nData (JSON):\n${JSON.stringify(req.projection)}`;
}

/**
 * Whether a schema can be sent with OpenAI's `strict: true`: every object lists all its
 * properties as required and sets additionalProperties: false. Other schemas go with
 * `strict: false` (the provider treats the schema as guidance) and the runtime's own output
 * check still decides.
 */
export function strictCompatible(schema: unknown): boolean {
  if (typeof schema !== 'object' || schema === null) return true;
  if (Array.isArray(schema)) return schema.every(strictCompatible);
  const s = schema as Record<string, unknown>;
  const isObject =
    s.type === 'object' || (Array.isArray(s.type) && s.type.includes('object')) || s.properties !== undefined;
  if (isObject) {
    if (s.additionalProperties !== false) return false;
    const props = typeof s.properties === 'object' && s.properties !== null ? Object.keys(s.properties) : [];
    const required = Array.isArray(s.required) ? s.required : [];
    if (!props.every((p) => required.includes(p))) return false;
  }
  return Object.entries(s).every(
    ([k, v]) => k === 'enum' || k === 'const' || k === 'default' || k === 'examples' || strictCompatible(v),
  );
}

/** A JSON Schema whose root is an object: the only kind OpenAI's structured output accepts. */
export function hasObjectRoot(schema: unknown): boolean {
  return typeof schema === 'object' && schema !== null && (schema as Record<string, unknown>).type === 'object';
}
