/**
 * One MCP server behind the gateway, as an MCP client of the official SDK: started over stdio or
 * reached over Streamable HTTP, its tool list read once at open, its liveness followed so that a
 * call to a server that has gone is refused at once with what it last said on stderr.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike, Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ListToolsResultSchema, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { jsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/types.js';
import { checkSchema, describeViolations, MAX_VALUE_CHARS, NanoVmError } from '@nano-vm/kernel';
import { RUNTIME_VERSION } from '@nano-vm/runtime';
import type { GatewayServerConfig } from './config.js';

/** Connecting and listing tools, when the server sets no timeout_ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** How much of a stdio server's stderr is kept for error messages. */
const STDERR_TAIL_CHARS = 2000;
/** At most this many pages of tools/list: a server that pages for ever is not waited for. */
const MAX_TOOL_PAGES = 50;
/** The most one message (stdio) or one HTTP response body may hold: the largest value a run accepts, and a little more. */
export const MAX_MESSAGE_BYTES = MAX_VALUE_CHARS + 1024 * 1024;

/** A remote server sent more than MAX_MESSAGE_BYTES in one response. */
export class MessageTooLarge extends Error {
  override readonly name = 'MessageTooLarge';
}

/**
 * fetch, with every response body cut off past MAX_MESSAGE_BYTES: the SDK reads a JSON response
 * whole, so without a cap a hostile HTTP server could fill the memory with one answer.
 */
const cappedFetch: FetchLike = async (url, init) => {
  const res = await fetch(url, init);
  if (!res.body) return res;
  let seen = 0;
  const body = res.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        seen += chunk.byteLength;
        if (seen > MAX_MESSAGE_BYTES)
          ctl.error(new MessageTooLarge(`the server's response is longer than ${MAX_MESSAGE_BYTES} bytes`));
        else ctl.enqueue(chunk);
      },
    }),
  );
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
};

/**
 * The SDK validates only what this client never asks for (elicitation), but builds a validator
 * anyway: let it be the kernel's checker, so no schema from a remote server is ever compiled to code.
 */
const KERNEL_VALIDATOR: jsonSchemaValidator = {
  getValidator<T>(schema: unknown) {
    return (input: unknown) => {
      const vs = checkSchema(schema as never, input);
      return vs.length
        ? { valid: false as const, data: undefined, errorMessage: describeViolations(vs) }
        : { valid: true as const, data: input as T, errorMessage: undefined };
    };
  },
};

export class ServerConnection {
  readonly client: Client;
  /** Why the connection ended, once it has. */
  closedBecause: string | undefined;
  #stderr = '';
  #closing = false;
  #lastError: string | undefined;

  private constructor(
    readonly config: GatewayServerConfig,
    private readonly transport: Transport,
  ) {
    this.client = new Client(
      { name: 'nano-vm-gateway', version: RUNTIME_VERSION },
      { capabilities: {}, jsonSchemaValidator: KERNEL_VALIDATOR },
    );
    this.client.onerror = (e) => {
      this.#lastError = e.message;
    };
    this.client.onclose = () => {
      this.closedBecause ??= this.#closing
        ? 'the gateway closed it'
        : `the connection closed${this.#lastError !== undefined ? ` after: ${this.#lastError}` : ''}`;
    };
  }

  /** Starts or reaches the server and completes the MCP handshake (E_GATEWAY_CONNECT otherwise). */
  static async open(config: GatewayServerConfig, signal?: AbortSignal): Promise<ServerConnection> {
    let transport: Transport;
    if (config.command !== undefined) {
      const stdio = new StdioClientTransport({
        command: config.command,
        ...(config.args ? { args: config.args } : {}),
        ...(config.env ? { env: { ...config.env } } : {}),
        ...(config.cwd !== undefined ? { cwd: config.cwd } : {}),
        stderr: 'pipe',
        maxBufferSize: MAX_MESSAGE_BYTES,
      });
      transport = stdio;
      const conn = new ServerConnection(config, transport);
      stdio.stderr?.on('data', (chunk: Buffer) => conn.#keepStderr(chunk.toString('utf8')));
      return conn.#connect(signal);
    }
    transport = new StreamableHTTPClientTransport(new URL(config.url!), {
      fetch: cappedFetch,
      ...(config.headers ? { requestInit: { headers: { ...config.headers } } } : {}),
    });
    return new ServerConnection(config, transport).#connect(signal);
  }

  async #connect(signal: AbortSignal | undefined): Promise<ServerConnection> {
    const timeout = this.config.timeout_ms ?? DEFAULT_CONNECT_TIMEOUT_MS;
    try {
      await this.client.connect(this.transport, { timeout, ...(signal ? { signal } : {}) });
    } catch (e) {
      await this.close();
      throw new NanoVmError(
        'E_GATEWAY_CONNECT',
        `MCP server '${this.config.name}' (${this.describe()}) could not be connected: ${(e as Error).message}${this.stderrNote()}`,
        { cause: e },
      );
    }
    return this;
  }

  /** Every tool the server lists (following its cursor), as the SDK parsed them. */
  async listTools(signal?: AbortSignal): Promise<Tool[]> {
    const timeout = this.config.timeout_ms ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const tools: Tool[] = [];
    let cursor: string | undefined;
    try {
      for (let page = 0; page < MAX_TOOL_PAGES; page++) {
        const r = await this.client.request(
          { method: 'tools/list', ...(cursor !== undefined ? { params: { cursor } } : {}) },
          ListToolsResultSchema,
          { timeout, ...(signal ? { signal } : {}) },
        );
        tools.push(...r.tools);
        if (r.nextCursor === undefined || r.nextCursor === cursor) return tools;
        cursor = r.nextCursor;
      }
    } catch (e) {
      throw new NanoVmError(
        'E_GATEWAY_CONNECT',
        `MCP server '${this.config.name}' (${this.describe()}) did not list its tools: ${(e as Error).message}${this.stderrNote()}`,
        { cause: e },
      );
    }
    return tools;
  }

  /** `stdio: <command>` or the URL without its query (which may carry a secret). */
  describe(): string {
    if (this.config.command !== undefined) return `stdio: ${this.config.command}`;
    const u = new URL(this.config.url!);
    return `${u.origin}${u.pathname}`;
  }

  /** The server's last stderr lines, for a message, or nothing. */
  stderrNote(): string {
    const t = this.#stderr.trim();
    return t ? `; its stderr ended with: ${t}` : '';
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    if (this.transport instanceof StreamableHTTPClientTransport && this.transport.sessionId !== undefined)
      // Best effort: a server that is already gone has no session to end.
      await this.transport.terminateSession().catch(() => undefined);
    await this.client.close().catch(() => undefined);
  }

  #keepStderr(text: string): void {
    this.#stderr = (this.#stderr + text).slice(-STDERR_TAIL_CHARS);
  }
}
