/**
 * Several real `nano-vm worker` processes on one PostgreSQL store, killed with SIGKILL at random
 * while they drive runs, replaced by new ones; then every run is checked from the store: it
 * finished exactly once, its events are gapless and verify (hash chain and receipt), and every
 * tool invocation (logged by the tool itself, in an append-only file) was under a key the store
 * had recorded, no more often than the store counted. Used by killWorkers.test.ts (a modest size)
 * and scripts/pg-kill-soak.mjs's bigger runs go through the same function.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { verifyBundle } from '@nano-vm/kernel/verify';
import { nodeHasher, runResult } from '@nano-vm/runtime';
import { PostgresStore } from '../src/index.js';

export const CLI = resolve(import.meta.dirname, '../../cli/dist/main.js');

export interface SoakOptions {
  url: string;
  runs: number;
  workers: number;
  kills: number;
  concurrency: number;
  /** ms between kills (each kill is followed at once by a replacement worker). */
  killEveryMs: number;
  leaseMs: number;
  /** Tool sleep range in ms. */
  sleepMs: [number, number];
  timeoutMs: number;
  log?: (s: string) => void;
}

export interface SoakReport {
  runs: number;
  completed: number;
  killed: number;
  workersStarted: number;
  /** Runs another worker took over (recovered, or started again once a dead worker's claim expired). */
  recoveredRuns: number;
  reinvokedKeys: number;
  events: number;
  toolCalls: number;
  problems: string[];
  gracefulExitCodes: (number | null)[];
  seconds: number;
}

const PROGRAM = {
  format: 'nano-vm.program/v1',
  id: 'soak',
  input_schema: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } },
  steps: [
    { id: 'a', kind: 'tool', tool: 'work', next: 'b' },
    { id: 'b', kind: 'tool', tool: 'work', next: 'c' },
    { id: 'c', kind: 'tool', tool: 'work', next: 'done' },
    { id: 'done', kind: 'end', outcome: 'OK' },
  ],
};

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('close', (code) => res({ code, out, err }));
  });
}

export async function killSoak(o: SoakOptions): Promise<SoakReport> {
  const t0 = Date.now();
  const log = o.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'nano-vm-pg-kill-'));
  const calls = join(dir, 'calls.log');
  writeFileSync(calls, '');
  writeFileSync(join(dir, 'program.json'), JSON.stringify(PROGRAM));
  writeFileSync(join(dir, 'input.json'), JSON.stringify({ n: 1 }));
  // The tool logs its key before it sleeps and returns: a call a kill interrupts is logged too.
  writeFileSync(
    join(dir, 'tools.mjs'),
    `import { appendFileSync } from 'node:fs';
export const tools = [{
  name: 'work',
  run: async (_args, ctx) => {
    appendFileSync(${JSON.stringify(calls)}, ctx.idempotencyKey + '\\n');
    await new Promise((r) => setTimeout(r, ${o.sleepMs[0]} + Math.random() * ${o.sleepMs[1] - o.sleepMs[0]}));
    return { ok: true };
  },
}];
`,
  );
  const problems: string[] = [];
  const m = await run(['migrate', '--store', o.url]);
  if (m.code !== 0) throw new Error(`migrate failed: ${m.err}`);
  const s = await run([
    'submit',
    join(dir, 'program.json'),
    '--input',
    join(dir, 'input.json'),
    '--count',
    String(o.runs),
    '--store',
    o.url,
  ]);
  if (s.code !== 0) throw new Error(`submit failed: ${s.err}`);

  const live = new Set<ChildProcess>();
  const outputs: string[] = [];
  const outputOf = new Map<ChildProcess, number>();
  /** Whether a worker has runs in flight now (by its own report: started or recovering, not yet finished). */
  const busy = (p: ChildProcess) => {
    const out = outputs[outputOf.get(p)!] ?? '';
    const begun = (out.match(/"phase":"(started|recovering)"/g) ?? []).length;
    return begun > (out.match(/"phase":"finished"/g) ?? []).length;
  };
  let started = 0;
  const startWorker = () => {
    const p = spawn(
      process.execPath,
      [
        CLI,
        'worker',
        '--tools',
        join(dir, 'tools.mjs'),
        '--store',
        o.url,
        '--concurrency',
        String(o.concurrency),
        '--lease-ms',
        String(o.leaseMs),
        '--json',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started++;
    const i = outputs.push('') - 1;
    outputOf.set(p, i);
    p.stdout.on('data', (d: Buffer) => (outputs[i] = (outputs[i] ?? '') + String(d)));
    p.stderr.on('data', (d: Buffer) => (outputs[i] = (outputs[i] ?? '') + String(d)));
    live.add(p);
    p.on('exit', () => live.delete(p));
    return p;
  };
  for (let i = 0; i < o.workers; i++) startWorker();

  const store = await new PostgresStore(o.url).open();
  const pending = async () =>
    (
      await store.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM ${store.s}.queue)::int + (SELECT count(*) FROM ${store.s}.runs WHERE status = 'running')::int AS n`,
      )
    ).rows[0]!.n;
  let killed = 0;
  try {
    while (killed < o.kills && Date.now() - t0 < o.timeoutMs) {
      await new Promise((r) => setTimeout(r, o.killEveryMs * (0.5 + Math.random())));
      // A worker in the middle of runs (on a slow machine, workers take a while to start).
      let victims = [...live].filter(busy);
      while (!victims.length && Date.now() - t0 < o.timeoutMs && (await pending()) > 0) {
        await new Promise((r) => setTimeout(r, 20));
        victims = [...live].filter(busy);
      }
      const v = victims[Math.floor(Math.random() * victims.length)];
      if (!v) break;
      v.kill('SIGKILL');
      killed++;
      log(`killed worker pid ${v.pid} (${killed}/${o.kills}); ${await pending()} runs not finished`);
      startWorker();
    }
    // Everything finishes on the workers still alive (the killed ones' leases expire).
    while ((await pending()) > 0 && Date.now() - t0 < o.timeoutMs) await new Promise((r) => setTimeout(r, 200));
    const left = await pending();
    if (left) problems.push(`${left} runs not finished after ${o.timeoutMs} ms`);

    // Graceful stop of the rest: SIGTERM, exit 0.
    const exits = [...live].map(
      (p) => new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.on('exit', (c) => r(c)))),
    );
    for (const p of live) p.kill('SIGTERM');
    const gracefulExitCodes = await Promise.all(exits);

    // The store's account of every run.
    const runs = await store.listRuns();
    const logged = readFileSync(calls, 'utf8').split('\n').filter(Boolean);
    const byKey = new Map<string, number>();
    for (const k of logged) byKey.set(k, (byKey.get(k) ?? 0) + 1);
    let events = 0;
    let completed = 0;
    let reinvokedKeys = 0;
    const recordedKeys = new Map<string, number>();
    // Runs another worker took over: recovered after their lease expired, or started again after
    // the claim of a worker killed before it created the run had expired.
    const recovered = new Set<string>();
    const startedBy = new Map<string, number>();
    outputs.forEach((out) => {
      const mine = new Set<string>();
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const j = JSON.parse(line) as { phase?: string; run_id?: string };
          if (j.phase === 'recovering' && j.run_id) recovered.add(j.run_id);
          if (j.phase === 'started' && j.run_id) mine.add(j.run_id);
        } catch {
          // a line cut by SIGKILL
        }
      }
      for (const id of mine) startedBy.set(id, (startedBy.get(id) ?? 0) + 1);
    });
    for (const [id, n] of startedBy) if (n > 1) recovered.add(id);
    if (runs.length !== o.runs) problems.push(`${runs.length} runs stored, ${o.runs} submitted`);
    for (const r of runs) {
      const evs = await store.events(r.run_id);
      events += evs.length;
      if (r.status === 'completed' && r.outcome === 'OK') completed++;
      else problems.push(`run ${r.run_id} is ${r.status} ${r.outcome ?? ''}`);
      if (evs.some((e, i) => e.seq !== i)) problems.push(`run ${r.run_id}: seqs are not 0..${evs.length - 1}`);
      const finished = evs.filter((e) => e.type === 'run_finished').length;
      if (finished !== 1) problems.push(`run ${r.run_id} has ${finished} run_finished events`);
      // Each step's result is stored once (a re-invocation after a crash replaces an unstored one).
      for (const step of ['a', 'b', 'c']) {
        const done = evs.filter((e) => e.type === 'step_completed' && (e as { step?: string }).step === step).length;
        if (done !== 1) problems.push(`run ${r.run_id}: step ${step} completed ${done} times in the trace`);
      }
      const v = verifyBundle(runResult(r, r.status, evs).bundle, nodeHasher);
      if (!v.ok) problems.push(`run ${r.run_id} does not verify: ${v.code} ${v.reason}`);
      for (const inv of await store.invocations(r.run_id)) {
        recordedKeys.set(inv.key, inv.invocations);
        if (inv.invocations > 1) reinvokedKeys++;
      }
    }
    for (const [key, n] of byKey) {
      const recorded = recordedKeys.get(key);
      if (recorded === undefined) problems.push(`tool invoked under key ${key}, which the store never recorded`);
      else if (n > recorded) problems.push(`key ${key} invoked ${n} times, the store counted ${recorded}`);
    }
    return {
      runs: runs.length,
      completed,
      killed,
      workersStarted: started,
      recoveredRuns: recovered.size,
      reinvokedKeys,
      events,
      toolCalls: logged.length,
      problems,
      gracefulExitCodes,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    for (const p of live) p.kill('SIGKILL');
    await store.close();
  }
}
