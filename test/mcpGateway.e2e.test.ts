/**
 * End to end, the two halves of issue 12 together: an MCP client (the official SDK) runs a program
 * through the real `nano-vm mcp --stdio` whose tool steps live on ANOTHER MCP server declared in
 * the server config's `gateway` list (packages/mcp/test/fixtures/remoteServer.mjs). The remote call
 * carries the step's idempotency key in `_meta`, the trace records it as a tool step, the server's
 * policy still governs it, and the bundle verifies.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const REMOTE = join(ROOT, 'packages/mcp/test/fixtures/remoteServer.mjs');
const dir = mkdtempSync(join(tmpdir(), 'nano-vm-mcp-gateway-'));
const log = join(dir, 'calls.log');

const PROGRAM = `format: nano-vm.program/v1
id: remote_refund
input_schema:
  type: object
  required: [order_id]
  properties: { order_id: { type: string } }
steps:
  - id: lookup
    kind: tool
    tool: orders.lookup_order
    args: { order_id: input.order_id }
    next: refund
  - id: refund
    kind: tool
    tool: orders.issue_refund
    args: { order_id: input.order_id, amount: steps.lookup.output.amount }
    next: done
  - id: done
    kind: end
    outcome: REFUNDED
`;

/** The server's policy grants each remote tool only to its own step. */
const POLICY = `format: nano-vm.policy/v1
id: remote_refund_policy
version: "1"
grants:
  - { id: lookup_only, step: lookup, tools: [orders.lookup_order] }
  - { id: refund_only, step: refund, tools: [orders.issue_refund] }
`;

type Structured = Record<string, unknown>;
const result = (r: unknown): { ok: boolean; value: Structured } => {
  const res = r as CallToolResult;
  return { ok: !res.isError, value: JSON.parse((res.content[0] as { text: string }).text) as Structured };
};
const calls = (): { tool: string; meta: Record<string, unknown> }[] =>
  existsSync(log)
    ? readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { tool: string; meta: Record<string, unknown> })
    : [];

let client: Client;
beforeAll(async () => {
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  writeFileSync(
    join(dir, 'server.json'),
    JSON.stringify({
      store: `sqlite:${join(dir, 'runs.db')}`,
      policy: join(dir, 'policy.yaml'),
      stdio_principal: { name: 'local-dev', scopes: ['read', 'run', 'admin'] },
      gateway: [{ name: 'orders', command: process.execPath, args: [REMOTE], env: { REMOTE_CALL_LOG: log } }],
    }),
  );
  client = new Client({ name: 'e2e-gateway', version: '1' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'mcp', '--stdio', '--config', join(dir, 'server.json')],
      stderr: 'pipe',
    }),
  );
});
afterAll(async () => {
  await client?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('nano-vm mcp with a gateway server in its config', () => {
  it('runs a program whose tool steps are remote, with keys in _meta, and the bundle verifies', async () => {
    const run = result(
      await client.callTool({
        name: 'run_program',
        arguments: { program: { text: PROGRAM }, input: { order_id: 'o_7' }, wait: true },
      }),
    );
    expect(run.ok, JSON.stringify(run.value)).toBe(true);
    expect(run.value).toMatchObject({ status: 'completed', outcome: 'REFUNDED' });
    const runId = run.value.run_id as string;

    const exported = result(await client.callTool({ name: 'export_bundle', arguments: { run_id: runId } }));
    expect(exported.ok).toBe(true);
    const bundle = exported.value.bundle as { events: { type: string; tool?: string; idempotency_key?: string }[] };
    const started = bundle.events.filter((e) => e.type === 'step_started');
    expect(started.map((e) => e.tool)).toEqual(['orders.lookup_order', 'orders.issue_refund']);
    // The remote server saw exactly these calls, each under the key the trace recorded.
    expect(calls().map((c) => [c.tool, c.meta['nano-vm/idempotency_key']])).toEqual([
      ['lookup_order', started[0]!.idempotency_key],
      ['issue_refund', started[1]!.idempotency_key],
    ]);
    const verified = result(await client.callTool({ name: 'verify_bundle', arguments: { bundle } }));
    expect(verified.value).toMatchObject({ ok: true });
  });

  it('refuses a client-written program that calls a remote tool outside the step the policy grants it to', async () => {
    // The refund is moved to a step the policy never granted it to.
    const sneaky = PROGRAM.replace('next: refund', 'next: payout').replace('- id: refund', '- id: payout');
    const before = calls().length;
    const run = result(
      await client.callTool({
        name: 'run_program',
        arguments: { program: { text: sneaky }, input: { order_id: 'o_8' }, wait: true },
      }),
    );
    expect(run.ok).toBe(false);
    expect(JSON.stringify(run.value)).toContain('E_POLICY_GRANT');
    expect(calls().length).toBe(before);
  });
});
