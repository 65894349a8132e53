/** A small real-HTTP client for the simulator tests: a real server on an ephemeral port, a real SQLite file in a temp dir. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer, type ServerOptions } from '@nano-vm/kyc';

export const tempDir = (name: string): string => mkdtempSync(join(tmpdir(), `nano-vm-kyc-${name}-`));

export async function start(storeFile: string, extra: Partial<ServerOptions> = {}): Promise<RunningServer> {
  return startServer({ store: storeFile, port: 0, ...extra });
}

export interface Reply<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export async function call<T = unknown>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply<T>> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const r = await fetch(base + path, init);
  const text = await r.text();
  let parsed: unknown = undefined;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: r.status, headers: r.headers, body: parsed as T, text };
}
