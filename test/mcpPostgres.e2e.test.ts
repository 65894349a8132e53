/**
 * End to end on PostgreSQL: two real `nano-vm mcp --http` servers on one postgres:// store and
 * one real `nano-vm worker`, driven by the official MCP SDK client. run_program enqueues for the
 * worker (wait true and false), one idempotency key raced across both servers gives one run, a
 * run suspended by the worker is approved by a second principal on the other server, subscribers
 * hear of runs the worker finished, and `nano-vm audit` verifies the shared audit log. Skips
 * with the reason printed when PostgreSQL is not reachable.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ResourceUpdatedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schemas, unreachable, urlFor } from '../packages/store-postgres/test/pgTestServer.js';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const ex = (p: string): string => join(ROOT, 'examples', p);
const json = (p: string): unknown => JSON.parse(readFileSync(ex(p), 'utf8'));
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

type Structured = Record<string, unknown>;
const ok = (r: unknown): Structured => {
  const res = r as CallToolResult;
  if (res.isError) throw new Error(`tool failed: ${JSON.stringify(res.content)}`);
  return res.structuredContent as Structured;
};
const fails = (r: unknown): { code: string; message: string } => {
  const res = r as CallToolResult;
  expect(res.isError).toBe(true);
  return (JSON.parse((res.content[0] as { text: string }).text) as { error: { code: string; message: string } }).error;
};

const TOKENS = { alice: 'tok-alice-pg-0123456789', bob: 'tok-bob-pg-0123456789' };

/** A process whose stderr (or stdout) announces it is ready with a line matching `ready`. */
function start(
  args: string[],
  ready: RegExp,
  stream: 'stdout' | 'stderr',
): Promise<{ p: ChildProcess; m: RegExpExecArray }> {
  const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((res, rej) => {
    let out = '';
    let err = '';
    p.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    p[stream]!.on('data', (c: Buffer) => {
      if (stream === 'stdout') out += c.toString();
      const m = ready.exec(stream === 'stdout' ? out : err);
      if (m) res({ p, m });
    });
    p.once('exit', (code) => rej(new Error(`${args[0]} exited ${code}: ${err}`)));
  });
}

describe.skipIf(unreachable !== null)('nano-vm mcp on PostgreSQL, with a worker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nano-vm-mcp-pg-'));
  const names = schemas('mcppg');
  const store = urlFor(names.next());
  const procs: ChildProcess[] = [];
  const clients: Client[] = [];
  let worker: ChildProcess;
  const urls: URL[] = [];

  const connect = async (server: 0 | 1, who: keyof typeof TOKENS): Promise<Client> => {
    const c = new Client({ name: `e2e-${who}`, version: '1' });
    await c.connect(
      new StreamableHTTPClientTransport(urls[server]!, {
        requestInit: { headers: { authorization: `Bearer ${TOKENS[who]}` } },
      }),
    );
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    const migrated = cli(['migrate', '--store', store]);
    expect(migrated.status, migrated.stderr).toBe(0);
    // The servers have one tool more than the worker: a run that calls it is refused by the worker.
    writeFileSync(
      join(dir, 'tools.mjs'),
      `import { tools as base } from ${JSON.stringify(ex('approval/tools.mjs'))};\n` +
        `export const tools = [...base, { name: 'server_only', run: () => ({ ok: true }) }];\n`,
    );
    // Server 1 waits for a worker at most 1.5 s (the last test finds the limit with no worker left).
    for (const [i, waitMs] of [30_000, 1500].entries()) {
      const cfg = join(dir, `server${i}.json`);
      writeFileSync(
        cfg,
        JSON.stringify({
          store,
          model: `scripted:${ex('approval/model.yaml')}`,
          tools: join(dir, 'tools.mjs'),
          principals: [
            { name: 'alice', token_sha256: sha(TOKENS.alice), scopes: ['read', 'run'] },
            { name: 'bob', token_sha256: sha(TOKENS.bob), scopes: ['read', 'approve:payments_approver'] },
          ],
          limits: { wait_ms: waitMs },
        }),
      );
    }
    const servers = await Promise.all(
      [0, 1].map((i) =>
        start(
          ['mcp', '--http', '--port', '0', '--config', join(dir, `server${i}.json`)],
          /listening on (\S+)/,
          'stderr',
        ),
      ),
    );
    for (const s of servers) (procs.push(s.p), urls.push(new URL(s.m[1]!)));
    worker = (await start(['worker', ex('approval'), '--store', store, '--json'], /"started"/, 'stdout')).p;
    procs.push(worker);
  }, 30_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((res) => {
            if (p.exitCode !== null) return res();
            p.once('exit', () => res());
            p.kill('SIGTERM');
          }),
      ),
    );
    await names.dropAll();
    rmSync(dir, { recursive: true, force: true });
  });

  const program = { text: readFileSync(ex('approval/program.yaml'), 'utf8') };
  const small = json('approval/inputs/small.json');

  it('run_program with wait true returns when the worker has finished the run, with its receipt and progress', async () => {
    const alice = await connect(0, 'alice');
    const progress: string[] = [];
    const run = ok(
      await alice.callTool({ name: 'run_program', arguments: { program, input: small } }, undefined, {
        onprogress: (p) => progress.push(String(p.message)),
      }),
    );
    expect(run).toMatchObject({ status: 'completed', outcome: 'PAID', started_by: 'alice', replayed: false });
    expect(run.receipt).toMatchObject({ status: 'completed', outcome: 'PAID' });
    expect(progress[0]).toBe('queued for a worker');
    expect(progress[progress.length - 1]).toBe('finished completed');
    // The other server sees the same run, from the same store.
    const bob = await connect(1, 'bob');
    expect(ok(await bob.callTool({ name: 'get_run', arguments: { run_id: run.run_id } }))).toMatchObject({
      status: 'completed',
      head_hash: run.head_hash,
      started_by: 'alice',
    });
  });

  it('run_program with wait false returns the run id at once; a subscriber hears when the worker finishes it', async () => {
    const alice = await connect(0, 'alice');
    // The worker is paused, so the run is certainly still queued when alice subscribes.
    worker.kill('SIGSTOP');
    let finished: Promise<void>;
    let runId: string;
    try {
      const started = ok(
        await alice.callTool({ name: 'run_program', arguments: { program, input: small, wait: false } }),
      );
      expect(started).toMatchObject({ status: 'queued', started_by: 'alice', event_count: 0 });
      runId = started.run_id as string;
      finished = new Promise<void>((res) =>
        alice.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
          if (n.params.uri !== `nano-vm://runs/${runId}`) return;
          const s = ok(await alice.callTool({ name: 'get_run', arguments: { run_id: runId } }));
          if (s.status === 'completed') res();
        }),
      );
      await alice.subscribeResource({ uri: `nano-vm://runs/${runId}` });
    } finally {
      worker.kill('SIGCONT');
    }
    await finished;
    expect(ok(await alice.callTool({ name: 'get_receipt', arguments: { run_id: runId } })).receipt).toMatchObject({
      outcome: 'PAID',
    });
  });

  it('one idempotency key raced across two servers gives one run', async () => {
    const onA = await connect(0, 'alice');
    const onB = await connect(1, 'alice');
    const args = { program, input: small, idempotency_key: 'pg-race', wait: false };
    const rs = (
      await Promise.all([onA, onB, onA, onB].map((c) => c.callTool({ name: 'run_program', arguments: args })))
    ).map(ok);
    expect(new Set(rs.map((r) => r.run_id)).size).toBe(1);
    expect(rs.filter((r) => !r.replayed)).toHaveLength(1);
    // The run the key names finishes once, by the worker; a later call with the key waits for it.
    const again = ok(await onA.callTool({ name: 'run_program', arguments: { ...args, wait: true } }));
    expect(again).toMatchObject({ run_id: rs[0]!.run_id, status: 'completed', replayed: true });
    const runs = ok(await onB.callTool({ name: 'list_runs', arguments: { limit: 100 } })).runs as { run_id: string }[];
    expect(runs.filter((r) => r.run_id === rs[0]!.run_id)).toHaveLength(1);
  });

  it('a run the worker suspended is approved by a second principal on the other server', async () => {
    const alice = await connect(0, 'alice');
    const bob = await connect(1, 'bob');
    const run = ok(
      await alice.callTool({
        name: 'run_program',
        arguments: { program, input: json('approval/inputs/waiting.json') },
      }),
    );
    expect(run).toMatchObject({ status: 'suspended', waiting: { step: 'approval', role: 'payments_approver' } });
    const runId = run.run_id as string;
    // Alice, on the server that started it, hears when the run resumed elsewhere finishes.
    const finished = new Promise<void>((res) =>
      alice.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
        if (n.params.uri !== `nano-vm://runs/${runId}`) return;
        const s = ok(await alice.callTool({ name: 'get_run', arguments: { run_id: runId } }));
        if (s.status === 'completed') res();
      }),
    );
    await alice.subscribeResource({ uri: `nano-vm://runs/${runId}` });
    const approval = { run_id: runId, event: { decision: 'approve', approver: 'bob@example.com' } };
    expect(fails(await alice.callTool({ name: 'resume_run', arguments: approval })).code).toBe('E_MCP_FORBIDDEN');
    const done = ok(await bob.callTool({ name: 'resume_run', arguments: approval }));
    expect(done).toMatchObject({ status: 'completed', outcome: 'PAID', started_by: 'alice', replayed: false });
    await finished;
    const trace = ok(await bob.callTool({ name: 'get_trace', arguments: { run_id: runId } }));
    expect(JSON.stringify(trace)).toContain('"principal":"bob"');
  });

  it('a submission needing a tool only the server has stays queued for a worker that has it (the worker skips it)', async () => {
    const alice = await connect(0, 'alice');
    const text = JSON.stringify({
      format: 'nano-vm.program/v1',
      id: 'server-only-tool',
      version: '1',
      input_schema: { type: 'object' },
      steps: [
        { id: 'call', kind: 'tool', tool: 'server_only', args: {}, next: 'done' },
        { id: 'done', kind: 'end', outcome: 'OK' },
      ],
    });
    // The server's pre-flight accepts it (the server has the tool); the worker lacks it, so it
    // leaves the submission queued for another worker instead of refusing it for everyone.
    const queued = ok(
      await alice.callTool({ name: 'run_program', arguments: { program: { text }, input: {}, wait: false } }),
    );
    expect(queued).toMatchObject({ status: 'queued' });
    await new Promise((res) => setTimeout(res, 1500));
    expect(ok(await alice.callTool({ name: 'get_run', arguments: { run_id: queued.run_id } }))).toMatchObject({
      status: 'queued',
    });
  });

  it('without a worker, wait true ends at the server’s limit naming the run, which stays queued', async () => {
    await new Promise<void>((res) => {
      worker.once('exit', () => res());
      worker.kill('SIGTERM');
    });
    const alice = await connect(1, 'alice');
    const err = fails(await alice.callTool({ name: 'run_program', arguments: { program, input: small } }));
    expect(err.code).toBe('E_MCP_WAIT_LIMIT');
    const runId = /run (run-[0-9a-f-]+)/.exec(err.message)?.[1];
    expect(err.message).toContain('no worker has started it');
    expect(ok(await alice.callTool({ name: 'get_run', arguments: { run_id: runId } }))).toMatchObject({
      status: 'queued',
      started_by: 'alice',
    });
  });

  it('nano-vm audit verifies the one audit log both servers wrote', () => {
    const r = cli(['audit', '--store', store, '--json']);
    expect(r.status, r.stderr + r.stdout.slice(-2000)).toBe(0);
    const log = JSON.parse(r.stdout) as { ok: boolean; entries: { tool: string; principal: string }[] };
    expect(log.ok).toBe(true);
    expect(log.entries.filter((e) => e.tool === 'run_program').length, r.stdout).toBeGreaterThanOrEqual(8);
    expect(log.entries.some((e) => e.tool === 'resume_run' && e.principal === 'bob')).toBe(true);
    const text = cli(['audit', '--store', store]);
    expect(text.stdout).toMatch(/entries; the chain verifies/);
  });
});
