import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../src/index.js';
import { CLI } from './killWorkers.js';
import { schemas, unreachable, urlFor } from './pgTestServer.js';

const db = schemas('wcli');
afterAll(() => db.dropAll());

const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

/** A worker process whose JSON lines are collected; `line(pred)` waits for one. */
function worker(args: string[]) {
  const p = spawn(process.execPath, [CLI, 'worker', '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  const waiters: [(l: Record<string, unknown>) => boolean, (l: Record<string, unknown>) => void][] = [];
  let buf = '';
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err += d));
  p.stdout.on('data', (d: Buffer) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const l = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
      buf = buf.slice(i + 1);
      lines.push(l);
      for (const w of [...waiters]) if (w[0](l)) (waiters.splice(waiters.indexOf(w), 1), w[1](l));
    }
  });
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  return {
    p,
    lines,
    exited,
    stderr: () => err,
    line: (pred: (l: Record<string, unknown>) => boolean, ms = 15_000) =>
      new Promise<Record<string, unknown>>((res, rej) => {
        const hit = lines.find(pred);
        if (hit) return res(hit);
        const t = setTimeout(() => rej(new Error(`no such line in ${ms} ms: ${JSON.stringify(lines)} ${err}`)), ms);
        waiters.push([pred, (l) => (clearTimeout(t), res(l))]);
      }),
  };
}

describe.skipIf(unreachable !== null)('nano-vm worker, submit, workers (the real CLI)', () => {
  it('a worker wakes on a submission; SIGTERM releases what it cannot finish in time, and another worker finishes it with the same idempotency key', async () => {
    const url = urlFor(db.next());
    const dir = mkdtempSync(join(tmpdir(), 'nano-vm-pg-worker-'));
    const calls = join(dir, 'calls.log');
    writeFileSync(calls, '');
    writeFileSync(
      join(dir, 'program.json'),
      JSON.stringify({
        format: 'nano-vm.program/v1',
        id: 'slow',
        input_schema: {},
        steps: [
          { id: 'pay', kind: 'tool', tool: 'pay', next: 'done' },
          { id: 'done', kind: 'end', outcome: 'PAID' },
        ],
      }),
    );
    const tools = (ms: number) =>
      `import { appendFileSync } from 'node:fs';
export const tools = [{ name: 'pay', run: async (_a, ctx) => { appendFileSync(${JSON.stringify(calls)}, ctx.idempotencyKey + '\\n'); await new Promise((r) => setTimeout(r, ${ms})); return { ok: true }; } }];`;
    writeFileSync(join(dir, 'slow.mjs'), tools(60_000));
    writeFileSync(join(dir, 'fast.mjs'), tools(1));

    // Not migrated: the worker says what to do; --migrate does it.
    const refused = cli(['worker', '--store', url, '--tools', join(dir, 'fast.mjs')]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('nano-vm migrate');
    const a = worker(['--store', url, '--tools', join(dir, 'slow.mjs'), '--drain-ms', '300', '--migrate']);
    await a.line((l) => l.started === true);
    // Submitted after the worker went idle: the notification wakes it.
    const sub = cli(['submit', join(dir, 'program.json'), '--store', url, '--json']);
    expect(sub.status).toBe(0);
    const { run_id } = JSON.parse(sub.stdout) as { run_id: string };
    await a.line((l) => l.run_id === run_id && l.phase === 'started');
    await new Promise((r) => setTimeout(r, 300)); // the tool is running
    const held = JSON.parse(cli(['workers', '--store', url, '--json']).stdout) as {
      workers: { runs: { run_id: string }[]; state: string }[];
    };
    expect(held.workers).toMatchObject([{ state: 'running', runs: [{ run_id }] }]);

    a.p.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(await a.line((l) => l.stopped === true)).toMatchObject({ released: [run_id] });
    const store = await new PostgresStore(url).open();
    expect(await store.getRun(run_id)).toMatchObject({ status: 'running' });

    const b = worker(['--store', url, '--tools', join(dir, 'fast.mjs')]);
    expect(await b.line((l) => l.run_id === run_id && l.phase === 'finished')).toMatchObject({
      status: 'completed',
      outcome: 'PAID',
      reinvoked: [`${run_id}/pay/1`],
    });
    expect(readFileSync(calls, 'utf8').trim().split('\n')).toEqual([`${run_id}/pay/1`, `${run_id}/pay/1`]);
    expect(await store.invocations(run_id)).toMatchObject([{ key: `${run_id}/pay/1`, invocations: 2 }]);
    const listing = cli(['workers', '--store', url, '--all']).stdout;
    expect(listing).toMatch(/stopped, pid \d+/);
    expect(listing).toContain('0 submitted runs waiting, 0 running runs without a live lease');
    b.p.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    await store.close();
  }, 40_000);
});
