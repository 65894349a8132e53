/**
 * OpenAI-compatible chat completions (`POST {base}/chat/completions`), non-streaming. Works with
 * OpenAI, OpenRouter, vLLM, llama.cpp server and Ollama (`/v1` endpoints).
 *
 * A step with an object-rooted JSON Schema output asks for structured output
 * (`response_format: {type: "json_schema", json_schema: {name, strict, schema}}`); enum steps and
 * other schemas are constrained by the system instruction only (OpenAI's structured output needs an
 * object root, and wrapping an enum in an object would change the raw answer the trace records).
 * Either way the runtime's output check decides, never the provider.
 */
import { hasObjectRoot, outputInstruction, strictCompatible, userContent } from './modelMessages.js';
import { ModelError, type ModelAnswer, type ModelPort, type ModelRequest } from './port.js';
import type { PriceTable } from './priceTable.js';
import { endpointUrl, isObj, postWithRetries, providerAnswer, type HttpDeps } from './providerHttp.js';

export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';

export interface OpenAiChatOptions {
  model: string;
  /** e.g. https://api.openai.com/v1, http://localhost:11434/v1 (no trailing /chat/completions). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer`; local servers usually need none. */
  apiKey?: string;
  prices?: PriceTable;
  deps: HttpDeps;
}

export class OpenAiChatModel implements ModelPort {
  readonly scripted = false;
  readonly id: string;

  constructor(private readonly opts: OpenAiChatOptions) {
    this.id = `openai:${opts.model}`;
  }

  /** The request body for a call; exposed so the shape is documented by tests. */
  requestBody(req: Pick<ModelRequest, 'step' | 'prompt' | 'projection' | 'output'>): Record<string, unknown> {
    const body: Record<string, unknown> = {
      model: this.opts.model,
      messages: [
        { role: 'system', content: outputInstruction(req.output) },
        { role: 'user', content: userContent(req) },
      ],
    };
    if ('schema' in req.output && hasObjectRoot(req.output.schema))
      body.response_format = {
        type: 'json_schema',
        json_schema: {
          name: schemaName(req.step),
          strict: strictCompatible(req.output.schema),
          schema: req.output.schema,
        },
      };
    return body;
  }

  async complete(req: ModelRequest): Promise<ModelAnswer> {
    const { body } = await postWithRetries(
      {
        label: this.id,
        url: endpointUrl(this.opts.baseUrl, '/chat/completions'),
        headers: this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {},
        body: this.requestBody(req),
        signal: req.signal,
        keyEnv: 'OPENAI_API_KEY',
        baseUrlEnv: 'OPENAI_BASE_URL',
      },
      this.opts.deps,
    );
    const malformed = (what: string) =>
      new ModelError('E_MODEL_RESPONSE_MALFORMED', `${this.id}: the response is not a chat completion: ${what}`);
    if (!isObj(body) || !Array.isArray(body.choices) || body.choices.length === 0) throw malformed('no choices');
    const choice = body.choices[0] as unknown;
    const message = isObj(choice) ? choice.message : undefined;
    if (!isObj(message)) throw malformed('choices[0] has no message');
    // A refusal is the model's answer too: it is recorded raw and rejected by the output check.
    const raw =
      typeof message.content === 'string'
        ? message.content
        : typeof message.refusal === 'string'
          ? message.refusal
          : undefined;
    if (raw === undefined) throw malformed('choices[0].message has no text content');

    const u = isObj(body.usage) ? body.usage : {};
    const usage =
      typeof u.prompt_tokens === 'number' && typeof u.completion_tokens === 'number'
        ? { input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens }
        : undefined;
    // OpenRouter reports what the call cost (in credits, which are USD); it is preferred to any table.
    const cost = typeof u.cost === 'number' && Number.isFinite(u.cost) && u.cost >= 0 ? u.cost : undefined;
    return providerAnswer('openai', this.opts, { raw, model: body.model, usage, cost });
  }
}

/** json_schema.name allows [A-Za-z0-9_-]{1,64}. */
function schemaName(step: string): string {
  return step.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || 'output';
}
