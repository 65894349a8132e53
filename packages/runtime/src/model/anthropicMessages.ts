/**
 * Anthropic Messages API (`POST {base}/v1/messages`, `anthropic-version: 2023-06-01`),
 * non-streaming. The output type is constrained by the system instruction (enum values, or the
 * JSON Schema itself); the runtime's output check decides.
 */
import { outputInstruction, userContent } from './modelMessages.js';
import { ModelError, type ModelAnswer, type ModelPort, type ModelRequest } from './port.js';
import type { PriceTable } from './priceTable.js';
import { endpointUrl, isObj, postWithRetries, providerAnswer, type HttpDeps } from './providerHttp.js';

export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';
export const ANTHROPIC_VERSION = '2023-06-01';
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 1024;

export interface AnthropicMessagesOptions {
  model: string;
  /** e.g. https://api.anthropic.com (the adapter appends /v1/messages). */
  baseUrl: string;
  apiKey: string;
  /** The API requires an upper bound on the answer's length. */
  maxTokens: number;
  prices?: PriceTable;
  deps: HttpDeps;
}

export class AnthropicMessagesModel implements ModelPort {
  readonly scripted = false;
  readonly id: string;

  constructor(private readonly opts: AnthropicMessagesOptions) {
    this.id = `anthropic:${opts.model}`;
  }

  requestBody(req: Pick<ModelRequest, 'prompt' | 'projection' | 'output'>): Record<string, unknown> {
    return {
      model: this.opts.model,
      max_tokens: this.opts.maxTokens,
      system: outputInstruction(req.output),
      messages: [{ role: 'user', content: userContent(req) }],
    };
  }

  async complete(req: ModelRequest): Promise<ModelAnswer> {
    const { body } = await postWithRetries(
      {
        label: this.id,
        url: endpointUrl(this.opts.baseUrl, '/v1/messages'),
        headers: { 'x-api-key': this.opts.apiKey, 'anthropic-version': ANTHROPIC_VERSION },
        body: this.requestBody(req),
        signal: req.signal,
        keyEnv: 'ANTHROPIC_API_KEY',
        baseUrlEnv: 'ANTHROPIC_BASE_URL',
      },
      this.opts.deps,
    );
    if (!isObj(body) || !Array.isArray(body.content))
      throw new ModelError('E_MODEL_RESPONSE_MALFORMED', `${this.id}: the response is not a message: no content array`);
    // The answer is the text blocks in order (an empty answer is recorded as such and rejected by the output check).
    const raw = body.content
      .filter((b): b is Record<string, unknown> => isObj(b) && b.type === 'text')
      .map((b) => (typeof b.text === 'string' ? b.text : ''))
      .join('');

    const u = isObj(body.usage) ? body.usage : {};
    // input_tokens excludes prompt-cache reads and writes; the model read all of them.
    const cached =
      (typeof u.cache_creation_input_tokens === 'number' ? u.cache_creation_input_tokens : 0) +
      (typeof u.cache_read_input_tokens === 'number' ? u.cache_read_input_tokens : 0);
    const usage =
      typeof u.input_tokens === 'number' && typeof u.output_tokens === 'number'
        ? { input_tokens: u.input_tokens + cached, output_tokens: u.output_tokens }
        : undefined;
    return providerAnswer('anthropic', this.opts, { raw, model: body.model, usage });
  }
}
