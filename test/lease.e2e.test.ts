/**
 * Leases and a locked store, with real processes (issue 11, items 4 and 6): `recover` beside a live
 * `run`, two `recover`s at once over several crashed runs, and `run` while another process holds the
 * SQLite write lock. Tool invocations are counted through a side-effect file.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
let dir: string;

interface Ran {
  code: number;
  out: string;
  err: string;
}

function nanoVm(...args: string[]): Ran {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Starts `nano-vm <args>` in the background; `done` settles when it exits. */
function start(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Ran> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<Ran>((res) => child.on('close', (code) => res({ code: code ?? -1, out, err })));
  return { child, done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond` holds (polling), or fails after `ms`. */
async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await sleep(25);
  }
}

const lines = (file: string): string[] =>
  existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : [];

/**
 * An example directory: an llm step, then tool `work`, then the end. The tool appends
 * `<key> <pid> <what>` to `log`: `crash` (and SIGKILLs its process) when CRASH=1 is set, else
 * `call`; it then waits until `gate` exists (when one is named; 10 s at most) or for `sleepMs`.
 */
function example(name: string, opts: { log: string; gate?: string; sleepMs?: number; inputs?: number }): string {
  const ex = join(dir, name);
  mkdirSync(join(ex, 'inputs'), { recursive: true });
  writeFileSync(
    join(ex, 'program.yaml'),
    [
      'format: nano-vm.program/v1',
      `id: ${name}`,
      'input_schema: { type: object, properties: { n: { type: number } } }',
      'steps:',
      '  - { id: decide, kind: llm, prompt: "n={{input.n}}", projection: [input.n], output: { enum: [go] }, next: work }',
      '  - { id: work, kind: tool, tool: work, args: { n: input.n }, timeout_ms: 60000, next: done }',
      '  - { id: done, kind: end, outcome: DONE }',
      '',
    ].join('\n'),
  );
  for (let i = 0; i < (opts.inputs ?? 1); i++)
    writeFileSync(join(ex, 'inputs', `i${i}.json`), JSON.stringify({ n: i }));
  writeFileSync(join(ex, 'model.yaml'), 'answers: { decide: [go] }\n');
  writeFileSync(
    join(ex, 'tools.mjs'),
    `import { appendFileSync, existsSync } from 'node:fs';
const log = ${JSON.stringify(opts.log)};
const gate = ${JSON.stringify(opts.gate ?? null)};
export const tools = [{ name: 'work', run: async (args, ctx) => {
  if (process.env.CRASH === '1') {
    appendFileSync(log, ctx.idempotencyKey + ' ' + process.pid + ' crash\\n');
    process.kill(process.pid, 'SIGKILL');
  }
  appendFileSync(log, ctx.idempotencyKey + ' ' + process.pid + ' call\\n');
  // A missing gate is waited for at most 10 s, so a run that nobody opens the gate for still ends.
  if (gate) for (let i = 0; i < 500 && !existsSync(gate); i++) await new Promise((r) => setTimeout(r, 20));
  else await new Promise((r) => setTimeout(r, ${opts.sleepMs ?? 0}));
  return { n: args.n };
} }];
`,
  );
  return ex;
}

/**
 * A child process that opens `db` with better-sqlite3, takes the write lock (`BEGIN IMMEDIATE`)
 * and holds it for `ms` or until it is killed; `locked` settles once it holds the lock.
 */
function lockStore(db: string, ms: number): { child: ChildProcess; locked: Promise<void>; done: Promise<void> } {
  const script = `const Database = require('better-sqlite3');
const db = new Database(${JSON.stringify(db)});
db.exec('BEGIN IMMEDIATE');
process.stdout.write('locked\\n');
setTimeout(() => { db.exec('COMMIT'); db.close(); }, ${ms});`;
  const child = spawn(process.execPath, ['-e', script], { cwd: join(ROOT, 'packages/runtime') });
  const locked = new Promise<void>((res, rej) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && res());
    child.on('exit', (code) => rej(new Error(`lock holder exited ${code}`)));
  });
  const done = new Promise<void>((res) => child.on('exit', () => res()));
  return { child, locked, done };
}

interface RecoverLine {
  run_id: string;
  recovered: boolean;
  status?: string;
  reinvoked?: string[];
  skipped?: string;
  lease?: { owner: string; expires_at: string };
  error?: { code: string };
}
const jsonLines = (out: string): RecoverLine[] =>
  out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RecoverLine);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-lease-'));
});

describe('leases: recover never drives a run another process is driving', () => {
  it('recover beside a live run inside a long tool call skips it as leased; the tool is invoked once', async () => {
    const log = join(dir, 'live.log');
    const gate = join(dir, 'live.gate');
    const ex = example('live', { log, gate });
    const db = `sqlite:${join(dir, 'live.db')}`;
    const run = start(['run', ex, '--store', db, '--json']);
    await until(() => lines(log).length === 1); // the run is inside its tool call
    const rec = nanoVm('recover', ex, '--store', db, '--json');
    const runId = jsonLines(rec.out)[0]?.run_id ?? '';
    // Named with --run, the leased run is reported the same way and fails the command.
    const named = nanoVm('recover', ex, '--store', db, '--run', runId, '--lease-ms', '5000', '--json');
    const badLease = nanoVm('recover', ex, '--store', db, '--lease-ms', '5', '--json');
    writeFileSync(gate, '');
    const ran = await run.done;
    expect(rec.err).toBe('');
    expect(rec.code).toBe(0);
    const [line] = jsonLines(rec.out);
    expect(line).toMatchObject({ recovered: false, skipped: 'leased' });
    expect(line!.lease!.owner).toContain(`:${run.child.pid}:`);
    expect([named.code, jsonLines(named.out)]).toEqual([
      1,
      [expect.objectContaining({ run_id: runId, skipped: 'leased' })],
    ]);
    expect([badLease.code, JSON.parse(badLease.out).error.code]).toEqual([2, 'E_USAGE']);
    expect(ran.code).toBe(0);
    expect(JSON.parse(ran.out)).toMatchObject({ run_id: line!.run_id, status: 'completed', outcome: 'DONE' });
    expect(lines(log)).toHaveLength(1);
    expect(nanoVm('recover', ex, '--store', db, '--json').out.trim()).toBe(''); // nothing left
  }, 60_000);

  it('two concurrent recovers over several crashed runs invoke every pending tool exactly once', async () => {
    const log = join(dir, 'crashed.log');
    const N = 4;
    const ex = example('crashed', { log, sleepMs: 300, inputs: N });
    const db = `sqlite:${join(dir, 'crashed.db')}`;
    for (let i = 0; i < N; i++) {
      const killed = start(['run', ex, '--input', join(ex, 'inputs', `i${i}.json`), '--store', db], { CRASH: '1' });
      expect((await killed.done).code).not.toBe(0);
    }
    const crashKeys = lines(log).map((l) => l.split(' ')[0]!);
    expect(crashKeys).toHaveLength(N);
    const [a, b] = [start(['recover', ex, '--store', db, '--json']), start(['recover', ex, '--store', db, '--json'])];
    const [ra, rb] = [await a.done, await b.done];
    expect([ra.code, ra.err, rb.code, rb.err]).toEqual([0, '', 0, '']);
    const reports = [...jsonLines(ra.out), ...jsonLines(rb.out)];
    const recovered = reports.filter((r) => r.recovered);
    expect(recovered.map((r) => r.run_id).sort()).toHaveLength(N);
    expect(new Set(recovered.map((r) => r.run_id)).size).toBe(N);
    expect(recovered.every((r) => r.status === 'completed')).toBe(true);
    // Every other report is a skip: leased by the other recover, or finished by it meanwhile.
    expect(reports.filter((r) => !r.recovered).every((r) => r.skipped === 'leased' || r.skipped === 'finished')).toBe(
      true,
    );
    const calls = lines(log)
      .filter((l) => l.endsWith(' call'))
      .map((l) => l.split(' ')[0]!);
    expect(calls.sort()).toEqual(crashKeys.sort());
  }, 120_000);
});

describe('a locked store', () => {
  it('a write lock held for a while is waited out: the run completes and its tool is invoked once', async () => {
    const log = join(dir, 'brief.log');
    const gate = join(dir, 'brief.gate');
    const ex = example('brief', { log, gate });
    const dbFile = join(dir, 'brief.db');
    const run = start(['run', ex, '--store', `sqlite:${dbFile}`, '--json']);
    await until(() => lines(log).length === 1);
    const lock = lockStore(dbFile, 7000); // longer than a 5 s busy timeout, shorter than the retries
    await lock.locked;
    writeFileSync(gate, '');
    const ran = await run.done;
    await lock.done;
    expect([ran.code, ran.err]).toEqual([0, '']);
    expect(JSON.parse(ran.out)).toMatchObject({ status: 'completed', outcome: 'DONE' });
    expect(lines(log)).toHaveLength(1);
  }, 60_000);

  it('a lock held throughout: run fails with E_STORE_BUSY; a result that cannot be stored names the run and recover, which finishes it', async () => {
    const log = join(dir, 'locked.log');
    const gate = join(dir, 'locked.gate');
    const ex = example('locked', { log, gate });
    const dbFile = join(dir, 'locked.db');
    const db = `sqlite:${dbFile}`;
    // A run inside its tool call when another process takes the write lock and keeps it.
    const midRun = start(['run', ex, '--store', db, '--json']);
    await until(() => lines(log).length === 1);
    const lock = lockStore(dbFile, 120_000);
    await lock.locked;
    // Meanwhile a new run cannot even start; the one inside its tool call returns from it.
    const fresh = start(['run', ex, '--store', db, '--json']);
    writeFileSync(gate, '');
    const [mid, before] = [await midRun.done, await fresh.done];
    expect([before.code, JSON.parse(before.out).error.code, before.err]).toEqual([1, 'E_STORE_BUSY', '']);
    const runId = lines(log)[0]!.split('/')[0]!;
    const err = JSON.parse(mid.out).error as { code: string; message: string };
    expect([mid.code, err.code, mid.err]).toEqual([1, 'E_STORE_BUSY', '']);
    expect(err.message).toContain(`run ${runId}`);
    expect(err.message).toContain('nano-vm recover');
    lock.child.kill('SIGTERM');
    await lock.done;
    // The failed run left its lease released: recover finishes it at once, re-invoking the tool
    // whose result could not be stored, under the same idempotency key.
    const rec = nanoVm('recover', ex, '--store', db, '--json');
    expect([rec.code, rec.err]).toEqual([0, '']);
    expect(jsonLines(rec.out)).toEqual([
      expect.objectContaining({ run_id: runId, recovered: true, status: 'completed', reinvoked: [`${runId}/work/1`] }),
    ]);
    expect(lines(log).map((l) => l.split(' ')[0])).toEqual([`${runId}/work/1`, `${runId}/work/1`]);
  }, 120_000);
});
