/**
 * Fake provider servers on 127.0.0.1 that speak the real wire formats: OpenAI chat completions
 * (`POST /v1/chat/completions`, `Authorization: Bearer`, `{error:{message,type,param,code}}`) and
 * Anthropic Messages (`POST /v1/messages`, `x-api-key` + `anthropic-version`,
 * `{type:"error",error:{type,message}}`). A test decides each reply; the server checks the path
 * and the credentials itself, as the real API would, and records every request it saw.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { loadProgram, type Program } from '@nano-vm/kernel';
import { toolsFromModule, type ToolRegistry } from '../src/internal.js';

export type Reply =
  | { status?: number; headers?: Record<string, string>; json?: unknown; text?: string }
  /** Never answer: the request stays open until the client goes away. */
  | { hang: true };

/** The request body fields the tests read; both wire formats carry `model` and `messages`. */
export interface ChatRequestBody {
  model?: string;
  messages: { role: string; content: string }[];
  /** Anthropic only. */
  system?: string;
  /** Required by Anthropic; optional for OpenAI. */
  max_tokens?: number;
  /** OpenAI only: structured output for a step with an object schema. */
  response_format?: { type: string; json_schema: { name: string; strict: boolean; schema: Record<string, unknown> } };
}

export interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /**
   * The parsed JSON request body. The clients under test always send JSON; a body that is not
   * JSON is kept as its text (so it fails the tests' expectations instead of the server).
   */
  body: ChatRequestBody;
  /** Resolves when the connection closes; `beforeReply` says whether it closed before a reply was sent. */
  closed: Promise<{ beforeReply: boolean }>;
}

export interface FakeServer {
  /** http://127.0.0.1:<port> */
  origin: string;
  seen: Seen[];
  close(): Promise<void>;
}

export type Respond = (seen: Seen, n: number) => Reply | Promise<Reply>;

async function start(check: (s: Seen) => Reply | undefined, respond: Respond): Promise<FakeServer> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    const answer = async (): Promise<void> => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      const closed = new Promise<{ beforeReply: boolean }>((resolve) =>
        res.on('close', () => resolve({ beforeReply: !res.writableEnded })),
      );
      const s: Seen = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: body as ChatRequestBody,
        closed,
      };
      seen.push(s);
      const reply = check(s) ?? (await respond(s, seen.length));
      if ('hang' in reply) return;
      const payload = reply.text ?? JSON.stringify(reply.json ?? {});
      res.writeHead(reply.status ?? 200, {
        'content-type': reply.text !== undefined ? 'text/plain' : 'application/json',
        ...reply.headers,
      });
      res.end(payload);
    };
    // The handler's promise is discarded on purpose: a throw in it still surfaces as an unhandled
    // rejection, which fails the test run.
    req.on('end', () => void answer());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// --- OpenAI chat completions ---------------------------------------------------------------

export const openaiError = (
  status: number,
  message: string,
  type: string,
  code: string | null = null,
  headers?: Record<string, string>,
): Reply => ({
  status,
  json: { error: { message, type, param: null, code } },
  ...(headers ? { headers } : {}),
});

export function openaiCompletion(
  content: string,
  usage: Record<string, unknown> = { prompt_tokens: 57, completion_tokens: 1, total_tokens: 58 },
  model = 'gpt-test-2025-01-01',
): Reply {
  return {
    json: {
      id: 'chatcmpl-test',
      object: 'chat.completion',
      created: 1767225600,
      model,
      choices: [
        { index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' },
      ],
      usage,
      system_fingerprint: 'fp_test',
    },
  };
}

/** An OpenAI-compatible server. Requests without `Bearer <apiKey>` get the real 401 body; `null`: a local server that needs no key. */
export function fakeOpenAi(respond: Respond, apiKey: string | null = 'sk-test'): Promise<FakeServer> {
  return start((s) => {
    if (s.method !== 'POST' || s.path !== '/v1/chat/completions')
      return openaiError(404, `Invalid URL (${s.method} ${s.path})`, 'invalid_request_error');
    if (apiKey !== null && s.headers.authorization !== `Bearer ${apiKey}`)
      return openaiError(
        401,
        'Incorrect API key provided: sk-wr***ng. You can find your API key at https://platform.openai.com/account/api-keys.',
        'invalid_request_error',
        'invalid_api_key',
      );
    return undefined;
  }, respond);
}

// --- Anthropic Messages ----------------------------------------------------------------------

export const anthropicError = (
  status: number,
  type: string,
  message: string,
  headers?: Record<string, string>,
): Reply => ({
  status,
  json: { type: 'error', error: { type, message }, request_id: 'req_test' },
  ...(headers ? { headers } : {}),
});

export function anthropicMessage(
  text: string,
  usage: Record<string, unknown> = {
    input_tokens: 40,
    output_tokens: 1,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  },
  model = 'claude-test-20250101',
): Reply {
  return {
    json: {
      id: 'msg_test',
      type: 'message',
      role: 'assistant',
      model,
      content: [{ type: 'text', text }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage,
    },
  };
}

/** An Anthropic Messages server: checks the path, `x-api-key`, `anthropic-version` and `max_tokens` like the real API. */
export function fakeAnthropic(respond: Respond, apiKey = 'sk-ant-test'): Promise<FakeServer> {
  return start((s) => {
    if (s.method !== 'POST' || s.path !== '/v1/messages') return anthropicError(404, 'not_found_error', 'Not Found');
    if (s.headers['x-api-key'] !== apiKey) return anthropicError(401, 'authentication_error', 'invalid x-api-key');
    if (s.headers['anthropic-version'] !== '2023-06-01')
      return anthropicError(400, 'invalid_request_error', 'anthropic-version: header is required');
    if (typeof s.body?.max_tokens !== 'number')
      return anthropicError(400, 'invalid_request_error', 'max_tokens: Field required');
    return undefined;
  }, respond);
}

/** A port nothing listens on: bind, note the port, close. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The text of the user message a request carried (either wire format). */
export function userText(body: ChatRequestBody): string {
  return body.messages
    .filter((m) => m.role === 'user')
    .map((m) => m.content)
    .join('\n');
}

/** Which refund/kyc step a request is for, from its prompt. */
export function stepOf(body: ChatRequestBody): string {
  const t = userText(body);
  if (t.includes('Classify this refund request')) return 'classify';
  if (t.includes('reviewing a KYC application')) return 'review';
  return 'unknown';
}

/** The refund example's program and tools, as the CLI would load them. */
export async function refundExample(): Promise<{
  program: Program;
  tools: ToolRegistry;
  input: (name: string) => unknown;
}> {
  const root = new URL('../../../examples/refund/', import.meta.url);
  const loaded = loadProgram(readFileSync(new URL('program.yaml', root), 'utf8'));
  if (!loaded.program) throw new Error('examples/refund/program.yaml does not load');
  const tools = toolsFromModule(
    (await import(new URL('tools.mjs', root).href)) as Record<string, unknown>,
    'tools.mjs',
  );
  return {
    program: loaded.program,
    tools,
    input: (name) => JSON.parse(readFileSync(new URL(`inputs/${name}.json`, root), 'utf8')),
  };
}
