/**
 * End to end: the real `nano-vm mcp` (the built CLI), driven by the official MCP SDK client over
 * stdio and over Streamable HTTP, with real SQLite files. Stdio serves the refund example, HTTP the
 * approval example (a server has one model, and each example has its own scripted one).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ResourceUpdatedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const ex = (p: string): string => join(ROOT, 'examples', p);
const json = (p: string): unknown => JSON.parse(readFileSync(ex(p), 'utf8'));
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

const dir = mkdtempSync(join(tmpdir(), 'nano-vm-mcp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Structured = Record<string, unknown>;
const ok = (r: unknown): Structured => {
  const res = r as CallToolResult;
  if (res.isError) throw new Error(`tool failed: ${JSON.stringify(res.content)}`);
  expect(JSON.parse((res.content[0] as { text: string }).text)).toEqual(res.structuredContent);
  return res.structuredContent as Structured;
};
const fails = (r: unknown): { code: string; message: string } => {
  const res = r as CallToolResult;
  expect(res.isError).toBe(true);
  return (JSON.parse((res.content[0] as { text: string }).text) as { error: { code: string; message: string } }).error;
};

describe('nano-vm mcp --stdio (refund example)', () => {
  const db = join(dir, 'stdio.db');
  const cfg = join(dir, 'stdio.json');
  let client: Client;
  const refund = readFileSync(ex('refund/program.yaml'), 'utf8');
  const input = json('refund/inputs/approve.json');

  beforeAll(async () => {
    writeFileSync(
      cfg,
      JSON.stringify({
        store: `sqlite:${db}`,
        model: `scripted:${ex('refund/model.yaml')}`,
        tools: ex('refund/tools.mjs'),
        stdio_principal: { name: 'local-dev', scopes: ['read', 'run', 'admin'] },
      }),
    );
    client = new Client({ name: 'e2e', version: '1' });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'mcp', '--stdio', '--config', cfg],
        stderr: 'pipe',
      }),
    );
  });
  afterAll(async () => {
    await client?.close();
  });

  it('lists every tool with an input and an output schema', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(
      [
        'analyze_runs',
        'delete_program',
        'erase_subject',
        'export_bundle',
        'get_program',
        'get_receipt',
        'get_run',
        'get_trace',
        'list_programs',
        'list_runs',
        'program_graph',
        'program_paths',
        'put_program',
        'replay_run',
        'resume_run',
        'run_program',
        'validate_program',
        'verify_bundle',
      ].sort(),
    );
    for (const t of tools) {
      expect(t.inputSchema.type).toBe('object');
      expect(t.outputSchema?.type).toBe('object');
    }
  });

  it('validates a program and reports a broken one with codes and locations', async () => {
    expect(
      ok(await client.callTool({ name: 'validate_program', arguments: { program: { text: refund } } })),
    ).toMatchObject({
      valid: true,
      program_id: 'refund',
    });
    const broken = refund.replace('next: decide', 'next: nowhere');
    const v = ok(await client.callTool({ name: 'validate_program', arguments: { program: { text: broken } } }));
    expect(v.valid).toBe(false);
    expect(v.issues).toEqual(
      expect.arrayContaining([expect.objectContaining({ code: 'E_MISSING_TARGET', line: expect.any(Number) })]),
    );
  });

  it('stores programs by hash with versions, runs one with progress, and proves the run', async () => {
    const put = ok(await client.callTool({ name: 'put_program', arguments: { text: refund } }));
    expect(put).toMatchObject({ name: 'refund', version: 1, created: true });
    expect(ok(await client.callTool({ name: 'put_program', arguments: { text: refund } }))).toMatchObject({
      version: 1,
      created: false,
    });
    const v2 = refund.replace('version: "1"', 'version: "2"');
    expect(ok(await client.callTool({ name: 'put_program', arguments: { text: v2 } }))).toMatchObject({
      version: 2,
      created: true,
    });

    const progress: string[] = [];
    const run = ok(
      await client.callTool(
        { name: 'run_program', arguments: { program: { name: 'refund', version: 1 }, input } },
        undefined,
        {
          onprogress: (p) => progress.push(String(p.message)),
        },
      ),
    );
    expect(run).toMatchObject({
      status: 'completed',
      outcome: 'SUCCESS',
      started_by: 'local-dev',
      replayed: false,
      program_hash: put.hash,
    });
    expect(progress).toContain('step classify answered');
    expect(progress).toContain('step issue_refund started');
    expect(progress[progress.length - 1]).toMatch(/^finished completed/);

    const runId = run.run_id as string;
    const { bundle } = ok(await client.callTool({ name: 'export_bundle', arguments: { run_id: runId } })) as {
      bundle: Structured;
    };
    expect(ok(await client.callTool({ name: 'verify_bundle', arguments: { bundle } }))).toMatchObject({
      ok: true,
      head_hash: run.head_hash,
    });
    // The CLI verifies the same bytes offline.
    const file = join(dir, 'refund.bundle.json');
    writeFileSync(file, JSON.stringify(bundle));
    expect(spawnSync(process.execPath, [CLI, 'verify', file]).status).toBe(0);

    // Tampering with one event is caught, and named.
    const tampered = structuredClone(bundle) as { events: { seq: number; type: string; output?: unknown }[] };
    const answer = tampered.events.find((e) => e.type === 'step_completed')!;
    answer.output = 'deny';
    const bad = ok(await client.callTool({ name: 'verify_bundle', arguments: { bundle: tampered } }));
    expect(bad).toMatchObject({ ok: false, first_bad_seq: answer.seq });
    expect(bad.code).toMatch(/^E_/);

    expect(ok(await client.callTool({ name: 'replay_run', arguments: { run_id: runId } }))).toMatchObject({
      identical: true,
      outcome: 'SUCCESS',
    });
    // Counterfactual: the same recorded answers under a stricter program.
    const strict = refund.replace(/input\.amount <= 500/g, 'input.amount <= 50');
    expect(strict).not.toBe(refund);
    const cf = ok(
      await client.callTool({ name: 'replay_run', arguments: { run_id: runId, program: { text: strict } } }),
    );
    expect(cf).toMatchObject({ counterfactual: true, identical: false, recorded_outcome: 'SUCCESS' });
    expect(cf.outcome).not.toBe('SUCCESS');

    const receipt = ok(await client.callTool({ name: 'get_receipt', arguments: { run_id: runId } }))
      .receipt as Structured;
    expect(receipt.head_hash).toBe(run.head_hash);
    const trace = ok(await client.callTool({ name: 'get_trace', arguments: { run_id: runId, limit: 2 } }));
    expect((trace.events as unknown[]).length).toBe(2);
    const rest = ok(
      await client.callTool({
        name: 'get_trace',
        arguments: { run_id: runId, after_seq: trace.next_after_seq, limit: 1000 },
      }),
    );
    expect(2 + (rest.events as unknown[]).length).toBe(trace.event_count);
    expect(rest.next_after_seq).toBe(null);

    // Resources: the receipt by URI is the same document.
    const res = await client.readResource({ uri: `nano-vm://runs/${runId}/receipt` });
    expect(JSON.parse((res.contents[0] as { text: string }).text)).toEqual(receipt);
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((t) => t.uriTemplate)).toContain('nano-vm://runs/{run_id}/bundle');

    // Deleting the program leaves its runs whole.
    expect(ok(await client.callTool({ name: 'delete_program', arguments: { name: 'refund' } }))).toEqual({
      deleted: 2,
    });
    expect(fails(await client.callTool({ name: 'get_program', arguments: { name: 'refund' } })).code).toBe(
      'E_MCP_NO_PROGRAM',
    );
    const again = ok(await client.callTool({ name: 'export_bundle', arguments: { run_id: runId } })) as {
      bundle: unknown;
    };
    expect(ok(await client.callTool({ name: 'verify_bundle', arguments: { bundle: again.bundle } })).ok).toBe(true);
  });

  it('returns at once with wait false, and the run finishes', async () => {
    const r = ok(
      await client.callTool({ name: 'run_program', arguments: { program: { text: refund }, input, wait: false } }),
    );
    expect(r.run_id).toMatch(/^run-/);
    let status = r.status;
    for (let i = 0; i < 100 && status === 'running'; i++) {
      await new Promise((res) => setTimeout(res, 50));
      status = ok(await client.callTool({ name: 'get_run', arguments: { run_id: r.run_id } })).status;
    }
    expect(status).toBe('completed');
  });

  it('binds an idempotency key to the request: a retry replays, another request is refused, a race gives one run', async () => {
    const args = { program: { text: refund }, input, idempotency_key: 'order-1001' };
    const first = ok(await client.callTool({ name: 'run_program', arguments: args }));
    const retry = ok(await client.callTool({ name: 'run_program', arguments: args }));
    expect(retry).toMatchObject({ run_id: first.run_id, replayed: true, head_hash: first.head_hash });
    const other = { ...args, input: { ...(input as object), amount: 99 } };
    const mismatch = fails(await client.callTool({ name: 'run_program', arguments: other }));
    expect(mismatch.code).toBe('E_IDEMPOTENCY_MISMATCH');

    const race = { ...args, idempotency_key: 'race-1' };
    const results = (
      await Promise.all(Array.from({ length: 8 }, () => client.callTool({ name: 'run_program', arguments: race })))
    ).map(ok);
    expect(new Set(results.map((r) => r.run_id)).size).toBe(1);
    expect(results.filter((r) => r.replayed === false)).toHaveLength(1);
    expect(results.every((r) => r.status === 'completed')).toBe(true);
  });

  it('refuses bad arguments and unknown runs as tool errors, and survives a malformed line', async () => {
    expect(fails(await client.callTool({ name: 'run_program', arguments: { program: { text: refund } } })).code).toBe(
      'E_MCP_ARGS',
    );
    expect(fails(await client.callTool({ name: 'get_run', arguments: { run_id: 'run-nope' } })).code).toBe(
      'E_STORE_NO_RUN',
    );
    expect(
      fails(
        await client.callTool({
          name: 'run_program',
          arguments: { program: { text: refund }, input: { order_id: 1 } },
        }),
      ).code,
    ).toBe('E_INPUT_INVALID');
    // The stdio principal has no erase scope.
    expect(fails(await client.callTool({ name: 'erase_subject', arguments: { subject: 'x' } })).code).toBe(
      'E_MCP_FORBIDDEN',
    );
  });

  it('writes every call to a hash-chained audit log that nano-vm audit verifies and that detects tampering', async () => {
    const r = spawnSync(process.execPath, [CLI, 'audit', '--store', `sqlite:${db}`, '--json'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const log = JSON.parse(r.stdout) as { ok: boolean; entries: { tool: string; result: string; principal: string }[] };
    expect(log.ok).toBe(true);
    expect(log.entries.some((e) => e.tool === 'run_program' && e.result === 'ok' && e.principal === 'local-dev')).toBe(
      true,
    );
    expect(log.entries.some((e) => e.tool === 'run_program' && e.result === 'E_IDEMPOTENCY_MISMATCH')).toBe(true);
    // Someone with write access to the file rewrites one entry.
    const copy = join(dir, 'audit-copy.db');
    const Database = (await import('better-sqlite3')).default;
    const live = new Database(db, { readonly: true });
    live.exec(`VACUUM INTO '${copy}'`);
    live.close();
    const d = new Database(copy);
    d.prepare("UPDATE mcp_audit SET result = 'ok' WHERE result = 'E_IDEMPOTENCY_MISMATCH'").run();
    d.close();
    const broken = spawnSync(process.execPath, [CLI, 'audit', '--store', `sqlite:${copy}`], { encoding: 'utf8' });
    expect(broken.status).toBe(1);
    expect(broken.stderr).toContain('E_AUDIT_BROKEN');
  });
});

// ---------------------------------------------------------------------------------------------

const TOKENS = {
  alice: 'tok-alice-0123456789',
  bob: 'tok-bob-0123456789',
  carol: 'tok-carol-0123456789',
  reader: 'tok-reader-0123456789',
  nobody: 'tok-nobody-0123456789',
  hammer: 'tok-hammer-0123456789',
};

describe('nano-vm mcp --http (approval example)', () => {
  const db = join(dir, 'http.db');
  const cfg = join(dir, 'http.json');
  let proc: ChildProcess;
  let url: URL;
  const clients: Client[] = [];

  const connect = async (who: keyof typeof TOKENS | null, token?: string): Promise<Client> => {
    const c = new Client({ name: `e2e-${who}`, version: '1' });
    const t = token ?? (who ? TOKENS[who] : undefined);
    await c.connect(
      new StreamableHTTPClientTransport(url, t ? { requestInit: { headers: { authorization: `Bearer ${t}` } } } : {}),
    );
    clients.push(c);
    return c;
  };

  /** A raw HTTP request (node:http, so Host can be set as an attacker would). */
  const raw = (
    body: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> =>
    new Promise((res, rej) => {
      const req = request(
        url,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
        },
        (r) => {
          let text = '';
          r.on('data', (c: Buffer) => (text += c.toString()));
          r.on('end', () => res({ status: r.statusCode ?? 0, headers: r.headers, body: text }));
        },
      );
      req.on('error', rej);
      req.end(body);
    });
  const init = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  });

  beforeAll(async () => {
    writeFileSync(
      cfg,
      JSON.stringify({
        store: `sqlite:${db}`,
        model: `scripted:${ex('approval/model.yaml')}`,
        tools: ex('approval/tools.mjs'),
        principals: [
          { name: 'alice', token_sha256: sha(TOKENS.alice), scopes: ['read', 'run'] },
          { name: 'bob', token_sha256: sha(TOKENS.bob), scopes: ['read', 'approve:payments_approver'] },
          { name: 'carol', token_env: 'CAROL_TOKEN', scopes: ['read', 'run', 'approve:payments_approver', 'admin'] },
          { name: 'reader', token_sha256: sha(TOKENS.reader), scopes: ['read'] },
          { name: 'nobody', token_sha256: sha(TOKENS.nobody), scopes: [] },
          { name: 'hammer', token_sha256: sha(TOKENS.hammer), scopes: ['read'] },
        ],
        limits: { max_request_bytes: 65536, rate_per_minute: 200 },
      }),
    );
    proc = spawn(process.execPath, [CLI, 'mcp', '--http', '--port', '0', '--config', cfg], {
      env: { ...process.env, CAROL_TOKEN: TOKENS.carol },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    url = await new Promise<URL>((res, rej) => {
      let err = '';
      proc.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
        const m = /listening on (\S+)/.exec(err);
        if (m) res(new URL(m[1]!));
      });
      proc.once('exit', (code) => rej(new Error(`server exited ${code}: ${err}`)));
    });
  });
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    proc?.kill('SIGTERM');
  });

  const payment = json('approval/inputs/waiting.json');
  const program = { text: readFileSync(ex('approval/program.yaml'), 'utf8') };

  it('suspends at the wait and is approved by a second principal, whose name the trace records', async () => {
    const alice = await connect('alice');
    const bob = await connect('bob');
    const run = ok(await alice.callTool({ name: 'run_program', arguments: { program, input: payment } }));
    expect(run).toMatchObject({
      status: 'suspended',
      started_by: 'alice',
      waiting: { step: 'approval', role: 'payments_approver' },
    });
    const runId = run.run_id as string;

    // Bob subscribes to the run and hears when it finishes.
    const updated = new Promise<string>((res) =>
      bob.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => res(n.params.uri)),
    );
    await bob.subscribeResource({ uri: `nano-vm://runs/${runId}` });

    // Alice may run but not approve.
    const approval = { run_id: runId, event: { decision: 'approve', approver: 'bob@example.com' } };
    expect(fails(await alice.callTool({ name: 'resume_run', arguments: approval })).code).toBe('E_MCP_FORBIDDEN');
    const done = ok(await bob.callTool({ name: 'resume_run', arguments: approval }));
    expect(done).toMatchObject({ status: 'completed', outcome: 'PAID', replayed: false });
    expect(await updated).toBe(`nano-vm://runs/${runId}`);
    // Bob's client retries (the answer was lost): the same event is not taken twice.
    expect(ok(await bob.callTool({ name: 'resume_run', arguments: approval }))).toMatchObject({
      outcome: 'PAID',
      replayed: true,
      head_hash: done.head_hash,
    });
    const other = { ...approval, event: { decision: 'reject', approver: 'bob@example.com' } };
    expect(fails(await bob.callTool({ name: 'resume_run', arguments: other })).code).toBe('E_RESUME_NOT_SUSPENDED');

    const trace = ok(await bob.callTool({ name: 'get_trace', arguments: { run_id: runId } }));
    const resumed = (trace.events as { type: string; principal?: string; role?: string }[]).find(
      (e) => e.type === 'run_resumed',
    );
    expect(resumed).toMatchObject({ principal: 'bob', role: 'payments_approver' });
    const { bundle } = ok(await bob.callTool({ name: 'export_bundle', arguments: { run_id: runId } }));
    expect(ok(await bob.callTool({ name: 'verify_bundle', arguments: { bundle } })).ok).toBe(true);
    expect(ok(await bob.callTool({ name: 'replay_run', arguments: { bundle } })).identical).toBe(true);
  });

  it('refuses four-eyes violations: the principal that started a run may not approve it', async () => {
    const carol = await connect('carol');
    const run = ok(await carol.callTool({ name: 'run_program', arguments: { program, input: payment } }));
    const approval = { run_id: run.run_id, event: { decision: 'approve', approver: 'carol' } };
    const refused = fails(await carol.callTool({ name: 'resume_run', arguments: approval }));
    expect(refused.code).toBe('E_FOUR_EYES');
    expect(ok(await carol.callTool({ name: 'get_run', arguments: { run_id: run.run_id } })).status).toBe('suspended');
    const bob = await connect('bob');
    expect(ok(await bob.callTool({ name: 'resume_run', arguments: approval })).outcome).toBe('PAID');
  });

  it('lists runs with filters and cursor pagination', async () => {
    const alice = await connect('alice');
    for (let i = 0; i < 3; i++)
      ok(
        await alice.callTool({
          name: 'run_program',
          arguments: { program, input: json('approval/inputs/small.json') },
        }),
      );
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Structured = ok(
        await alice.callTool({
          name: 'list_runs',
          arguments: { started_by: 'alice', limit: 2, ...(cursor ? { cursor } : {}) },
        }),
      );
      seen.push(...(page.runs as { run_id: string }[]).map((r) => r.run_id));
      cursor = page.next_cursor as string | null;
    } while (cursor);
    expect(seen.length).toBeGreaterThanOrEqual(4);
    expect(new Set(seen).size).toBe(seen.length);
    const suspended = ok(
      await alice.callTool({ name: 'list_runs', arguments: { status: 'completed', started_by: 'carol' } }),
    );
    expect((suspended.runs as unknown[]).length).toBe(1);
  });

  it('answers a missing or unknown token with 401 and WWW-Authenticate, a missing scope with 403', async () => {
    const none = await raw(init, {});
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer realm="nano-vm"/);
    const wrong = await raw(init, { authorization: 'Bearer not-a-token' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers['www-authenticate']).toContain('error="invalid_token"');
    await expect(connect(null)).rejects.toMatchObject({ code: 401 });

    const nobody = await raw(init, { authorization: `Bearer ${TOKENS.nobody}` });
    expect(nobody.status).toBe(403);
    expect(nobody.headers['www-authenticate']).toContain('insufficient_scope');
    const reader = await connect('reader');
    await expect(
      reader.callTool({ name: 'run_program', arguments: { program, input: payment } }),
    ).rejects.toMatchObject({
      code: 403,
    });
    await expect(reader.callTool({ name: 'erase_subject', arguments: { subject: 'x' } })).rejects.toMatchObject({
      code: 403,
    });
    // Reading is allowed.
    expect(ok(await reader.callTool({ name: 'list_programs', arguments: {} }))).toHaveProperty('programs');
  });

  it('refuses a foreign Host or Origin (DNS rebinding) and another principal’s session', async () => {
    const auth = { authorization: `Bearer ${TOKENS.alice}` };
    expect((await raw(init, { ...auth, host: `evil.example:${url.port}` })).status).toBe(403);
    expect((await raw(init, { ...auth, origin: 'http://evil.example' })).status).toBe(403);
    expect((await raw(init, { ...auth, origin: `http://localhost:${url.port}` })).status).toBe(200);

    const opened = await raw(init, auth);
    const sid = opened.headers['mcp-session-id'] as string;
    expect(sid).toBeTruthy();
    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    expect(
      (
        await raw(list, {
          authorization: `Bearer ${TOKENS.bob}`,
          'mcp-session-id': sid,
          'mcp-protocol-version': '2025-06-18',
        })
      ).status,
    ).toBe(403);
  });

  it('answers an oversize request with 413 and malformed JSON with a parse error, and stays up', async () => {
    const auth = { authorization: `Bearer ${TOKENS.alice}` };
    const big = await raw(
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { pad: 'x'.repeat(100_000) } }),
      auth,
    );
    expect(big.status).toBe(413);
    const junk = await raw('{"jsonrpc": "2.0", "id": 1, "method": ', auth);
    expect(junk.status).toBe(400);
    expect(JSON.parse(junk.body)).toMatchObject({ error: { code: -32700 } });
    const notRpc = await raw('{"hello": "world"}', auth);
    expect(notRpc.status).toBe(400);
    // A too-large argument inside a session is refused too, and the server goes on.
    const alice = await connect('alice');
    await expect(
      alice.callTool({ name: 'validate_program', arguments: { program: { text: 'x'.repeat(100_000) } } }),
    ).rejects.toMatchObject({ code: 413 });
    expect((await alice.listTools()).tools.length).toBe(18);
  });

  it('gives one run to concurrent calls with one idempotency key across sessions of a principal', async () => {
    const a1 = await connect('alice');
    const a2 = await connect('alice');
    const args = { program, input: json('approval/inputs/small.json'), idempotency_key: 'pay-race' };
    const rs = (
      await Promise.all([a1, a2, a1, a2].map((c) => c.callTool({ name: 'run_program', arguments: args })))
    ).map(ok);
    expect(new Set(rs.map((r) => r.run_id)).size).toBe(1);
    expect(rs.filter((r) => !r.replayed)).toHaveLength(1);
    // Another principal's key space is its own.
    const carol = await connect('carol');
    const theirs = ok(await carol.callTool({ name: 'run_program', arguments: args }));
    expect(theirs.run_id).not.toBe(rs[0]!.run_id);
  });

  it('refuses the same principal approving twice in one run (four-eyes across waits)', async () => {
    const twoWaits = {
      text: JSON.stringify({
        format: 'nano-vm.program/v1',
        id: 'two-approvals',
        version: '1',
        input_schema: { type: 'object' },
        steps: [
          { id: 'first', kind: 'wait', role: 'payments_approver', event: { type: 'object' }, next: 'second' },
          { id: 'second', kind: 'wait', role: 'payments_approver', event: { type: 'object' }, next: 'done' },
          { id: 'done', kind: 'end', outcome: 'APPROVED_TWICE' },
        ],
      }),
    };
    const alice = await connect('alice');
    const bob = await connect('bob');
    const carol = await connect('carol');
    const run = ok(await alice.callTool({ name: 'run_program', arguments: { program: twoWaits, input: {} } }));
    expect(run.waiting).toMatchObject({ step: 'first' });
    expect(
      ok(await bob.callTool({ name: 'resume_run', arguments: { run_id: run.run_id, event: { ok: true } } })).waiting,
    ).toMatchObject({
      step: 'second',
    });
    expect(
      fails(await bob.callTool({ name: 'resume_run', arguments: { run_id: run.run_id, event: { ok: true } } })).code,
    ).toBe('E_FOUR_EYES');
    const done = ok(
      await carol.callTool({ name: 'resume_run', arguments: { run_id: run.run_id, event: { ok: true } } }),
    );
    expect(done).toMatchObject({ status: 'completed', outcome: 'APPROVED_TWICE' });
    const trace = ok(await carol.callTool({ name: 'get_trace', arguments: { run_id: run.run_id } }));
    expect(
      (trace.events as { type: string; principal?: string }[])
        .filter((e) => e.type === 'run_resumed')
        .map((e) => e.principal),
    ).toEqual(['bob', 'carol']);
  });

  it('reports progress over HTTP and notifies a subscriber when a run started with wait false finishes', async () => {
    const alice = await connect('alice');
    const progress: string[] = [];
    const waited = ok(
      await alice.callTool(
        { name: 'run_program', arguments: { program, input: json('approval/inputs/small.json') } },
        undefined,
        {
          onprogress: (p) => progress.push(String(p.message)),
        },
      ),
    );
    expect(waited).toMatchObject({ status: 'completed', outcome: 'PAID' });
    expect(progress).toEqual([
      'step triage answered',
      'step route decided',
      'step pay started',
      'finished completed PAID',
    ]);

    const started = ok(
      await alice.callTool({ name: 'run_program', arguments: { program, input: payment, wait: false } }),
    );
    expect(['running', 'suspended']).toContain(started.status);
    const suspended = new Promise<void>((res) =>
      alice.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
        if (n.params.uri === `nano-vm://runs/${started.run_id}`) res();
      }),
    );
    await alice.subscribeResource({ uri: `nano-vm://runs/${started.run_id}` });
    let status = ok(await alice.callTool({ name: 'get_run', arguments: { run_id: started.run_id } })).status;
    if (status === 'running') {
      await suspended;
      status = ok(await alice.callTool({ name: 'get_run', arguments: { run_id: started.run_id } })).status;
    }
    expect(status).toBe('suspended');
    const res = await alice.readResource({ uri: `nano-vm://runs/${started.run_id}` });
    expect(JSON.parse((res.contents[0] as { text: string }).text)).toMatchObject({ status: 'suspended' });
  });

  it('analyzes runs, lists paths and draws the graph of a stored program, and erases a subject only with the scope', async () => {
    const carol = await connect('carol');
    ok(await carol.callTool({ name: 'put_program', arguments: { text: program.text } }));
    const analysis = ok(await carol.callTool({ name: 'analyze_runs', arguments: { program_id: 'payment-approval' } }));
    expect(analysis.format).toBe('nano-vm.analysis/v1');
    expect((analysis.runs as unknown[]).length).toBeGreaterThan(0);
    const paths = ok(
      await carol.callTool({ name: 'program_paths', arguments: { program: { name: 'payment-approval' } } }),
    );
    expect((paths.paths as unknown[]).length).toBeGreaterThan(1);
    const graph = ok(
      await carol.callTool({
        name: 'program_graph',
        arguments: { program: { name: 'payment-approval' }, format: 'dot' },
      }),
    );
    expect(graph.graph).toMatch(/^digraph/);
    await expect(carol.callTool({ name: 'erase_subject', arguments: { subject: 'x' } })).rejects.toMatchObject({
      code: 403,
    });
  });

  it('limits each principal’s request rate (429 with Retry-After), without touching the others', async () => {
    const list = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    // The bucket holds a minute's calls (200) and refills at 3.3 a second: send until refused.
    let passed = 0;
    let limited: Awaited<ReturnType<typeof raw>> | undefined;
    for (let i = 0; i < 1000 && !limited; i++) {
      const r = await raw(list, { authorization: `Bearer ${TOKENS.hammer}` });
      if (r.status === 429) limited = r;
      else passed++;
    }
    expect(limited).toBeDefined();
    expect(passed).toBeGreaterThanOrEqual(200);
    expect(Number(limited!.headers['retry-after'])).toBeGreaterThan(0);
    expect((await raw(init, { authorization: `Bearer ${TOKENS.reader}` })).status).toBe(200);
  });
});

describe('nano-vm mcp --stdio with malformed input', () => {
  it('skips a line that is not JSON-RPC and answers the next request', async () => {
    const proc = spawn(process.execPath, [CLI, 'mcp', '--stdio', '--store', 'memory:'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.stdin.write('this is not json\n');
    proc.stdin.write('{"jsonrpc":"2.0","id":7,"method":"no/such/method"}\n');
    proc.stdin.write(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 8,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      }) + '\n',
    );
    for (let i = 0; i < 100 && !out.includes('"id":8'); i++) await new Promise((res) => setTimeout(res, 50));
    proc.stdin.end();
    const replies = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: number; error?: { code: number }; result?: { protocolVersion: string } });
    expect(replies.find((r) => r.id === 7)?.error?.code).toBe(-32601);
    expect(replies.find((r) => r.id === 8)?.result?.protocolVersion).toBe('2025-11-25');
    const code = await new Promise<number | null>((res) => proc.once('exit', res));
    expect(code).toBe(0);
  });
});
