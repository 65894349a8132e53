/**
 * From a model spec to a ModelPort: `openai:<model>`, `anthropic:<model>`, `scripted:<file>`, or a
 * fallback chain `a,b,...` of real providers. Configuration comes from the environment given (not
 * read here from process.env, so hosts and tests pass their own) and every problem with it — an
 * unknown provider, a missing API key, a bad URL or number, an unreadable price table — is a
 * ModelError thrown now, before any run starts. docs/models.md is the reference.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import {
  ANTHROPIC_DEFAULT_BASE_URL,
  ANTHROPIC_DEFAULT_MAX_TOKENS,
  AnthropicMessagesModel,
} from './anthropicMessages.js';
import { FallbackChainModel } from './fallbackChain.js';
import { OPENAI_DEFAULT_BASE_URL, OpenAiChatModel } from './openaiChat.js';
import { ModelError, type ModelPort } from './port.js';
import { loadPriceTable, type PriceTable } from './priceTable.js';
import { defaultHttpDeps, type HttpDeps } from './providerHttp.js';
import type { RetryPolicy, Sleep } from './retryPolicy.js';
import { parseModelScript, ScriptedModel } from './scripted.js';

export const MODEL_PROVIDERS = ['openai', 'anthropic', 'scripted'] as const;

export interface ModelSpecOptions {
  /** The scripted model's per-input overrides (`cases:` in the script). */
  caseName?: string;
  /** Where OPENAI_*, ANTHROPIC_* and NANO_VM_* settings are read; the CLI passes process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  fetch?: typeof fetch;
  sleep?: Sleep;
  random?: () => number;
  now?: () => number;
  /** Overrides the retry policy (and the NANO_VM_MODEL_* settings). */
  retry?: Partial<RetryPolicy>;
  /** Overrides NANO_VM_PRICES. */
  prices?: PriceTable;
}

export function modelFromSpec(spec: string, opts: ModelSpecOptions = {}): ModelPort {
  const env = opts.env ?? {};
  const parts = spec.split(',').map((s) => s.trim());
  // A scripted model is never part of a chain, so a script whose path has a comma is read as one file when it exists.
  const script = spec.trim().startsWith('scripted:') ? spec.trim().slice('scripted:'.length) : undefined;
  if (script !== undefined && (parts.length === 1 || existsSync(script)))
    return scriptedFromFile(script, opts.caseName);
  if (parts.some((p) => p === ''))
    throw new ModelError(
      'E_MODEL_SPEC',
      `model spec "${spec}" has an empty entry; a fallback chain is <provider>:<model>,<provider>:<model>`,
    );

  const deps = httpDeps(env, opts);
  const prices = opts.prices ?? (env.NANO_VM_PRICES ? loadPriceTable(env.NANO_VM_PRICES) : undefined);
  const models = parts.map((p) => providerModel(p, env, deps, prices));
  return models.length === 1 ? models[0]! : new FallbackChainModel(models);
}

function providerModel(
  spec: string,
  env: Readonly<Record<string, string | undefined>>,
  deps: HttpDeps,
  prices: PriceTable | undefined,
): ModelPort {
  const m = /^([a-z][a-z0-9-]*):(\S+)$/.exec(spec);
  if (!m)
    throw new ModelError(
      'E_MODEL_SPEC',
      `model spec "${spec}" must look like openai:<model>, anthropic:<model> or scripted:<file>`,
    );
  const [, provider, model] = m as unknown as [string, string, string];
  switch (provider) {
    case 'openai': {
      const explicitBase = nonEmpty(env.OPENAI_BASE_URL);
      const apiKey = nonEmpty(env.OPENAI_API_KEY);
      // Local OpenAI-compatible servers (Ollama, llama.cpp, vLLM) need no key; api.openai.com does.
      if (!apiKey && !explicitBase)
        throw new ModelError(
          'E_MODEL_KEY_MISSING',
          `${spec}: OPENAI_API_KEY is not set (set it, or point OPENAI_BASE_URL at an OpenAI-compatible server that needs no key)`,
        );
      const baseUrl = httpUrl(explicitBase ?? OPENAI_DEFAULT_BASE_URL, 'OPENAI_BASE_URL');
      return new OpenAiChatModel({
        model,
        baseUrl,
        ...(apiKey ? { apiKey } : {}),
        ...(prices ? { prices } : {}),
        deps,
      });
    }
    case 'anthropic': {
      const apiKey = nonEmpty(env.ANTHROPIC_API_KEY);
      if (!apiKey) throw new ModelError('E_MODEL_KEY_MISSING', `${spec}: ANTHROPIC_API_KEY is not set`);
      const baseUrl = httpUrl(nonEmpty(env.ANTHROPIC_BASE_URL) ?? ANTHROPIC_DEFAULT_BASE_URL, 'ANTHROPIC_BASE_URL');
      const maxTokens = positiveInt(env, 'ANTHROPIC_MAX_TOKENS') ?? ANTHROPIC_DEFAULT_MAX_TOKENS;
      return new AnthropicMessagesModel({ model, baseUrl, apiKey, maxTokens, ...(prices ? { prices } : {}), deps });
    }
    case 'scripted':
      // A chain that mixes scripted and real answers would make the receipt's `scripted` flag wrong either way.
      throw new ModelError('E_MODEL_SPEC', `${spec}: the scripted model cannot be part of a fallback chain`);
    default:
      throw new ModelError(
        'E_MODEL_SPEC',
        `unknown model provider "${provider}" in "${spec}" (available: ${MODEL_PROVIDERS.join(', ')})`,
      );
  }
}

function scriptedFromFile(file: string, caseName: string | undefined): ModelPort {
  if (file === '') throw new ModelError('E_MODEL_SPEC', 'model spec "scripted:" names no file; it is scripted:<file>');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ModelError(
      'E_FILE',
      `cannot read model script ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  try {
    return new ScriptedModel(parseModelScript(text, basename(file)), caseName);
  } catch (e) {
    throw new ModelError('E_SCRIPT_FORMAT', `${file}: ${(e as Error).message}`);
  }
}

function httpDeps(env: Readonly<Record<string, string | undefined>>, opts: ModelSpecOptions): HttpDeps {
  const d = defaultHttpDeps();
  const maxAttempts = positiveInt(env, 'NANO_VM_MODEL_MAX_ATTEMPTS');
  const attemptTimeoutMs = positiveInt(env, 'NANO_VM_MODEL_ATTEMPT_TIMEOUT_MS');
  return {
    fetch: opts.fetch ?? d.fetch,
    sleep: opts.sleep ?? d.sleep,
    random: opts.random ?? d.random,
    now: opts.now ?? d.now,
    policy: {
      ...d.policy,
      ...(maxAttempts ? { maxAttempts } : {}),
      ...(attemptTimeoutMs ? { attemptTimeoutMs } : {}),
      ...opts.retry,
    },
  };
}

const nonEmpty = (v: string | undefined): string | undefined =>
  v !== undefined && v.trim() !== '' ? v.trim() : undefined;

function httpUrl(value: string, name: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ModelError('E_MODEL_SPEC', `${name}="${value}" is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new ModelError('E_MODEL_SPEC', `${name}="${value}" must be an http(s) URL`);
  return value;
}

function positiveInt(env: Readonly<Record<string, string | undefined>>, name: string): number | undefined {
  const v = nonEmpty(env[name]);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1)
    throw new ModelError('E_MODEL_SPEC', `${name}="${v}" must be a positive integer`);
  return Number(v);
}
