/**
 * The server's own state, on every implementation (one conformance suite, as the run stores have):
 * the program catalogue, idempotency claims and the audit chain. Plus the config file and the rate
 * limiter.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadProgram, type Program } from '@nano-vm/kernel';
import {
  loadServerConfig,
  MemoryServerState,
  parseServerConfig,
  principalForToken,
  RateLimiter,
  sha256Hex,
  SqliteServerState,
  verifyAuditLog,
  MCP_SCHEMA_VERSION,
  PostgresServerState,
  runsChannel,
  type ServerState,
} from '../src/index.js';
import { PostgresStore, submitRun } from '@nano-vm/store-postgres';
import { randomSalt, runProgram, ToolRegistry } from '@nano-vm/runtime';
import { schemas, unreachable, urlFor } from '../../store-postgres/test/pgTestServer.js';

const dir = mkdtempSync(join(tmpdir(), 'nano-vm-mcp-state-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const program = (id: string, version: string): Program =>
  loadProgram(
    JSON.stringify({
      format: 'nano-vm.program/v1',
      id,
      version,
      input_schema: { type: 'object' },
      steps: [{ id: 'done', kind: 'end', outcome: 'OK' }],
    }),
    { format: 'json' },
  ).program!;

function conformance(name: string, make: () => ServerState | Promise<ServerState>, skip: string | null = null): void {
  describe.skipIf(skip !== null)(`ServerState: ${name}`, () => {
    it('stores programs by name with versions, deduplicated by hash, and deletes without touching other names', async () => {
      const s = await make();
      const ts = '2026-01-01T00:00:00.000Z';
      const a = await s.putProgram({ name: 'p', hash: 'a'.repeat(64), program: program('p', '1'), principal: 'x', ts });
      expect(a).toMatchObject({ created: true, stored: { version: 1 } });
      const again = await s.putProgram({
        name: 'p',
        hash: 'a'.repeat(64),
        program: program('p', '1'),
        principal: 'y',
        ts,
      });
      expect(again).toMatchObject({ created: false, stored: { version: 1, principal: 'x' } });
      await s.putProgram({ name: 'p', hash: 'b'.repeat(64), program: program('p', '2'), principal: 'x', ts });
      await s.putProgram({ name: 'q', hash: 'a'.repeat(64), program: program('p', '1'), principal: 'x', ts });
      expect((await s.getProgram({ name: 'p' }))?.version).toBe(2);
      expect((await s.getProgram({ name: 'p', version: 1 }))?.hash).toBe('a'.repeat(64));
      expect((await s.getProgram({ hash: 'b'.repeat(64) }))?.name).toBe('p');

      const page1 = await s.listPrograms({ limit: 2 });
      expect(page1.items.map((p) => `${p.name}@${p.version}`)).toEqual(['p@1', 'p@2']);
      const page2 = await s.listPrograms({ limit: 2, after: page1.next_cursor! });
      expect(page2.items.map((p) => `${p.name}@${p.version}`)).toEqual(['q@1']);
      expect(page2.next_cursor).toBe(null);

      expect(await s.deleteProgram('p', 2)).toBe(1);
      expect((await s.getProgram({ name: 'p' }))?.version).toBe(1);
      expect(await s.deleteProgram('p')).toBe(1);
      expect(await s.getProgram({ name: 'p' })).toBeUndefined();
      expect((await s.getProgram({ hash: 'a'.repeat(64) }))?.name).toBe('q');
      // A new version after deletion never reuses a number.
      const after = await s.putProgram({
        name: 'p',
        hash: 'c'.repeat(64),
        program: program('p', '3'),
        principal: 'x',
        ts,
      });
      expect(after.stored.version).toBe(3);
      await s.close();
    });

    it('claims an idempotency key once per principal', async () => {
      const s = await make();
      const rec = { principal: 'a', key: 'k', request_hash: 'h1', run_id: 'r1', created_at: '' };
      const claims = await Promise.all([s.claimIdempotency(rec), s.claimIdempotency({ ...rec, run_id: 'r2' })]);
      expect(claims.filter((c) => c.claimed)).toHaveLength(1);
      const lost = claims.find((c) => !c.claimed) as { existing: { run_id: string } };
      expect(lost.existing.run_id).toBe('r1');
      expect((await s.claimIdempotency({ ...rec, principal: 'b', run_id: 'r3' })).claimed).toBe(true);
      // Released only by the run it is bound to.
      await s.releaseIdempotency('a', 'k', 'r2');
      expect((await s.claimIdempotency({ ...rec, run_id: 'r4' })).claimed).toBe(false);
      await s.releaseIdempotency('a', 'k', 'r1');
      expect((await s.claimIdempotency({ ...rec, run_id: 'r4' })).claimed).toBe(true);
      await s.close();
    });

    it('chains the audit log; a changed or removed entry is found', async () => {
      const s = await make();
      for (let i = 0; i < 4; i++)
        await s.appendAudit({
          ts: `t${i}`,
          principal: 'a',
          tool: 'get_run',
          args_hash: 'x',
          result: 'ok',
          run_id: i ? `r${i}` : null,
        });
      const log = await s.auditLog();
      expect(log.map((e) => e.seq)).toEqual([0, 1, 2, 3]);
      expect(verifyAuditLog(log)).toBe(null);
      expect(verifyAuditLog([...log.slice(0, 1), ...log.slice(2)])).toMatchObject({ seq: 2 });
      expect(verifyAuditLog(log.map((e) => (e.seq === 2 ? { ...e, result: 'E_X' } : e)))).toMatchObject({ seq: 2 });
      await s.close();
    });
  });
}

let n = 0;
conformance('memory', () => new MemoryServerState());
conformance('sqlite', () => new SqliteServerState(join(dir, `state-${n++}.db`)));

// PostgreSQL: each case in a schema of its own (the store's migrations, then the MCP tables).
const pgSchemas = schemas('mcpstate');
const pgStores: PostgresStore[] = [];
afterAll(async () => {
  await Promise.all(pgStores.map((s) => s.close()));
  await pgSchemas.dropAll();
});
async function pgState(schema = pgSchemas.next()): Promise<PostgresServerState> {
  const store = new PostgresStore(urlFor(schema), { migrate: true });
  pgStores.push(store);
  await store.open();
  const state = await PostgresServerState.open(store, { migrate: true });
  // Closing the state closes its store too: the cases do not hold connections until the file ends
  // (the database is shared with other test files).
  const close = state.close.bind(state);
  state.close = async () => {
    await close();
    await store.close();
  };
  return state;
}
conformance('postgres', () => pgState(), unreachable);

describe.skipIf(unreachable !== null)('ServerState: postgres, several servers on one schema', () => {
  it('migrates once when servers start together, and refuses a reader before any server ran', async () => {
    const schema = pgSchemas.next();
    const store = new PostgresStore(urlFor(schema), { migrate: true });
    pgStores.push(store);
    await store.open();
    await expect(PostgresServerState.open(store, { migrate: false })).rejects.toMatchObject({
      code: 'E_STORE_SCHEMA',
    });
    const applied = await Promise.all([0, 1, 2].map(() => migrateOnce(schema)));
    expect(applied.map((a) => a.length).sort()).toEqual([0, 0, MCP_SCHEMA_VERSION]);
    await expect(PostgresServerState.open(store, { migrate: false })).resolves.toBeInstanceOf(PostgresServerState);
  });

  it('of many servers claiming one key at once exactly one wins; the audit chain stays one chain', async () => {
    const schema = pgSchemas.next();
    const servers = await Promise.all([0, 1, 2, 3].map(() => pgState(schema)));
    const rec = { principal: 'a', key: 'race', request_hash: 'h', created_at: '' };
    const claims = await Promise.all(
      servers.flatMap((s, i) => [0, 1].map((j) => s.claimIdempotency({ ...rec, run_id: `r${i}-${j}` }))),
    );
    const won = claims.filter((c) => c.claimed);
    expect(won).toHaveLength(1);
    const bound = new Set(claims.flatMap((c) => (c.claimed ? [] : [c.existing.run_id])));
    expect(bound.size).toBe(1);
    await Promise.all(
      servers.flatMap((s, i) =>
        [0, 1, 2, 3, 4].map((j) =>
          s.appendAudit({
            ts: `t${j}`,
            principal: `p${i}`,
            tool: 'get_run',
            args_hash: 'x',
            result: 'ok',
            run_id: null,
          }),
        ),
      ),
    );
    const log = await servers[2]!.auditLog();
    expect(log).toHaveLength(20);
    expect(verifyAuditLog(log)).toBe(null);
    await Promise.all(servers.map((s) => s.close()));
  });
});

describe.skipIf(unreachable !== null)('RunWatch: status changes of runs from PostgreSQL', () => {
  it('hears submissions and status changes, and reconnects when its connection is killed', async () => {
    const schema = pgSchemas.next();
    await pgState(schema);
    const store = pgStores[pgStores.length - 1]!;
    const { RunWatch } = await import('../src/postgresState.js');
    const watch = await RunWatch.open(store);
    const heard: string[] = [];
    let next: ((c: string) => void) | undefined;
    watch.on((c) => {
      heard.push(`${c.status} ${c.run_id}`);
      next?.(`${c.status} ${c.run_id}`);
    });
    const hear = (want: string) =>
      new Promise<void>((res, rej) => {
        if (heard.includes(want)) return res();
        const t = setTimeout(() => rej(new Error(`did not hear ${want}; heard ${JSON.stringify(heard)}`)), 8000);
        next = (c) => c === want && (clearTimeout(t), res());
      });
    try {
      await submitRun(store, { program: program('w', '1'), input: {}, runId: 'run-w1' });
      await hear('queued run-w1');
      // Run as a worker runs it (its creation deletes the submission).
      await runProgram({
        program: program('w', '1'),
        input: {},
        model: { id: 'none', scripted: false, complete: () => Promise.reject(new Error('no model')) },
        tools: new ToolRegistry(),
        store,
        ids: { runId: () => 'run-w1', salt: randomSalt },
      });
      await hear('running run-w1');
      await hear('completed run-w1');
      const killed = await store.query<{ n: number }>(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE query = $1`,
        [`LISTEN "${runsChannel(schema)}"`],
      );
      expect(killed.rows[0]!.n).toBe(1);
      await hear('reconnected *');
      await submitRun(store, { program: program('w', '1'), input: {}, runId: 'run-w2' });
      await hear('queued run-w2');
    } finally {
      await watch.close();
    }
  });
});

async function migrateOnce(schema: string): Promise<number[]> {
  const store = new PostgresStore(urlFor(schema));
  pgStores.push(store);
  await store.open();
  const { migrateMcp } = await import('../src/postgresState.js');
  return (await migrateMcp(store)).applied;
}

describe('server config', () => {
  it('reads principals by token hash or from the environment, and resolves paths against the file', () => {
    const file = join(dir, 'cfg.json');
    writeFileSync(
      file,
      JSON.stringify({
        store: 'sqlite:runs.db',
        tools: 'tools.mjs',
        principals: [
          { name: 'a', token_sha256: sha256Hex('secret-a'), scopes: ['read', 'approve:payments_approver'] },
          { name: 'b', token_env: 'B_TOKEN', scopes: ['run'] },
        ],
        gateway: [{ name: 'fs', command: 'node', args: ['server.mjs'] }],
      }),
    );
    const cfg = loadServerConfig(file, { B_TOKEN: 'secret-b' });
    expect(cfg.store).toBe(`sqlite:${join(dir, 'runs.db')}`);
    expect(cfg.tools).toBe(join(dir, 'tools.mjs'));
    expect(principalForToken('secret-b', cfg.principals)?.name).toBe('b');
    expect(principalForToken('secret-a', cfg.principals)?.scopes).toContain('approve:payments_approver');
    expect(principalForToken('secret-c', cfg.principals)).toBeUndefined();
    expect(cfg.gateway).toEqual([{ name: 'fs', command: 'node', args: ['server.mjs'] }]);
    expect(cfg.http).toMatchObject({ host: '127.0.0.1', port: 8765 });
  });

  it.each([
    [{ principals: [{ name: 'a', scopes: ['read'] }] }, 'needs token_sha256 or token_env'],
    [{ principals: [{ name: 'a', token_sha256: 'abc' }] }, '64 hex digits'],
    [{ principals: [{ name: 'a', token_env: 'NOPE_UNSET' }] }, 'is not set'],
    [{ principals: [{ name: 'a', token_sha256: 'a'.repeat(64), scopes: ['root'] }] }, 'unknown scope'],
    [{ limits: { max_request_bytes: -1 } }, 'positive integer'],
    [{ colour: 'blue' }, 'unknown member'],
    [{ gateway: [{ name: 'x' }] }, 'exactly one of command'],
  ])('refuses %j with E_MCP_CONFIG', (value, message) => {
    expect(() => parseServerConfig(value, 'cfg.json', {})).toThrow(
      expect.objectContaining({ code: 'E_MCP_CONFIG', message: expect.stringContaining(message) }),
    );
  });

  it('refuses a file that is not JSON', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{ store: ');
    expect(() => loadServerConfig(file)).toThrow(expect.objectContaining({ code: 'E_MCP_CONFIG' }));
  });
});

describe('rate limiter', () => {
  it('allows a minute’s calls in a burst, then refills over time, per principal', () => {
    let now = 0;
    const r = new RateLimiter(3, () => now);
    expect([r.take('a'), r.take('a'), r.take('a'), r.take('a')]).toEqual([true, true, true, false]);
    expect(r.take('b')).toBe(true);
    expect(r.retryAfter('a')).toBe(20);
    now += 20_000;
    expect(r.take('a')).toBe(true);
    expect(r.take('a')).toBe(false);
  });
});
