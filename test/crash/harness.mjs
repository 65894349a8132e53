// Crash harness (issue 3): kill `nano-vm run` and `nano-vm resume` with SIGKILL at random moments,
// recover, repeat; then check that no event was lost, no step ran twice except tools re-invoked with
// their original idempotency key after a crash, every wait was resumed exactly once, and every chain
// verifies and replays. Not part of `npm test` (it takes minutes); run with
// `npm run build && node test/crash/harness.mjs [rounds=20] [seed=1]`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pureHasher, replayBundle, verifyBundle } from '../../packages/kernel/dist/index.js';
import {
  ScriptedModel,
  SqliteStore,
  ToolRegistry,
  parseModelScript,
  resumeRun,
  runResult,
} from '../../packages/runtime/dist/index.js';
import { pathToFileURL } from 'node:url';

const ROOT = new URL('../../', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const rounds = Number(process.argv[2] ?? 20);
let seed = Number(process.argv[3] ?? 1) >>> 0;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;

const dir = mkdtempSync(join(tmpdir(), 'nano-vm-crash-'));
const ex = join(dir, 'example');
const log = join(dir, 'tools.log');
const db = join(dir, 'runs.db');
mkdirSync(join(ex, 'inputs'), { recursive: true });
writeFileSync(
  join(ex, 'program.yaml'),
  `format: nano-vm.program/v1
id: crash-harness
input_schema: { type: object, required: [n], properties: { n: { type: number } } }
steps:
  - { id: decide, kind: llm, prompt: "n={{input.n}}", projection: [input.n], output: { enum: [go] }, next: a }
  - { id: a, kind: tool, tool: work, args: { n: input.n }, next: approval }
  - { id: approval, kind: wait, role: ops, event: { type: object, required: [ok], properties: { ok: { type: boolean } } }, next: b }
  - { id: b, kind: tool, tool: work, args: { n: input.n }, next: c }
  - { id: c, kind: tool, tool: work, args: { n: input.n }, next: done }
  - { id: done, kind: end, outcome: DONE }
`,
);
writeFileSync(join(ex, 'model.yaml'), 'answers: { decide: [go] }\n');
writeFileSync(
  join(ex, 'tools.mjs'),
  `import { appendFileSync } from 'node:fs';
export const tools = [{ name: 'work', run: async (args, ctx) => {
  appendFileSync(${JSON.stringify(log)}, ctx.idempotencyKey + ' ' + process.pid + ' start\\n');
  await new Promise((r) => setTimeout(r, 1 + (args.n * 7) % 5));
  appendFileSync(${JSON.stringify(log)}, ctx.idempotencyKey + ' ' + process.pid + ' end\\n');
  return { n: args.n };
} }];
`,
);
for (let i = 0; i < 30; i++) writeFileSync(join(ex, 'inputs', `i${i}.json`), JSON.stringify({ n: i }));

writeFileSync(join(dir, 'approve.json'), JSON.stringify({ ok: true }));
const cli = (...args) => spawnSync(process.execPath, [CLI, ...args, '--store', `sqlite:${db}`], { encoding: 'utf8' });
const suspendedRuns = () => JSON.parse(cli('runs', '--status', 'suspended', '--json').stdout).runs.map((r) => r.run_id);
const resumeArgs = (id) => ['resume', id, ex, '--event', join(dir, 'approve.json'), '--role', 'ops'];
let kills = 0,
  recoveredRuns = 0,
  recoverCalls = 0,
  resumeKills = 0,
  resumes = 0;
const killedPids = new Set();
/** Starts `nano-vm <args>` and SIGKILLs it after `delay` ms unless it exits first; true when killed. */
async function killAfter(args, delay) {
  const child = spawn(process.execPath, [CLI, ...args, '--store', `sqlite:${db}`], { stdio: 'ignore' });
  const exited = new Promise((res) => child.on('exit', (code, sig) => res(sig)));
  const timer = setTimeout(() => child.kill('SIGKILL'), delay);
  const killed = (await exited) === 'SIGKILL';
  clearTimeout(timer);
  if (killed) killedPids.add(String(child.pid));
  return killed;
}
/** `nano-vm recover`: finishes interrupted runs; returns how many it recovered. */
function recover() {
  const rec = cli('recover', ex, '--json');
  recoverCalls++;
  if (rec.status !== 0) throw new Error(`recover failed: ${rec.stdout}${rec.stderr}`);
  const n = rec.stdout.trim() ? rec.stdout.trim().split('\n').length : 0;
  recoveredRuns += n;
  return n;
}
const t0 = Date.now();
for (let r = 0; r < rounds; r++) {
  const delay = 60 + Math.floor(rnd() * 300);
  const killed = await killAfter(['run', ex], delay);
  if (killed) kills++;
  const recovered = recover();
  // Resume one suspended run, killing the resume at a random moment; recover finishes it if its
  // event was stored, and a later round resumes it again if not.
  const waiting = suspendedRuns();
  let resumeNote = 'no run waiting';
  if (waiting.length) {
    const delay2 = 120 + Math.floor(rnd() * 200);
    const killed2 = await killAfter(resumeArgs(waiting[Math.floor(rnd() * waiting.length)]), delay2);
    resumes++;
    if (killed2) resumeKills++;
    recover();
    resumeNote = `resume ${killed2 ? `killed after ${delay2} ms` : 'finished'}`;
  }
  process.stderr.write(
    `round ${r + 1}/${rounds}: ${killed ? `killed after ${delay} ms` : 'finished before the kill'}, recovered ${recovered}; ${resumeNote}\n`,
  );
}
// Every run still waiting gets its event, without kills, in this process (the same resumeRun the
// CLI calls; spawning a CLI per run would take minutes).
{
  const { tools: defs } = await import(pathToFileURL(join(ex, 'tools.mjs')).href);
  const store = new SqliteStore(db);
  const model = new ScriptedModel(parseModelScript(readFileSync(join(ex, 'model.yaml'), 'utf8'), 'harness'));
  for (const run of await store.listRuns({ status: 'suspended' })) {
    const r = await resumeRun({
      store,
      runId: run.run_id,
      event: { payload: { ok: true }, role: 'ops' },
      model,
      tools: new ToolRegistry(defs),
    });
    if (r.status !== 'completed') throw new Error(`resume ${run.run_id} ended ${r.status}`);
  }
  await store.close();
}

// Checks.
const store = new SqliteStore(db);
const runs = await store.listRuns();
const notDone = runs.filter((r) => r.status !== 'completed');
let events = 0,
  badChains = 0,
  badReplays = 0,
  badResumes = 0;
/** The store's idempotency-key table: invocations it recorded per key (write-ahead, before each call). */
const recorded = new Map();
for (const run of runs) {
  for (const inv of await store.invocations(run.run_id)) recorded.set(inv.key, inv.invocations);
  const evs = await store.events(run.run_id);
  events += evs.length;
  const bundle = JSON.parse(JSON.stringify(runResult(run, run.status, evs).bundle));
  if (!verifyBundle(bundle, pureHasher).ok) badChains++;
  if (!replayBundle(bundle, { hasher: pureHasher }).identical) badReplays++;
  if (evs.filter((e) => e.type === 'step_started').length !== 3) badChains++;
  if (evs.filter((e) => e.type === 'run_resumed').length !== 1) badResumes++;
}
await store.close();
// Tool invocations per idempotency key: more than one only when the process of every earlier
// invocation was killed (its result may have been computed, but was never recorded).
const lines = existsSync(log)
  ? readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
  : [];
const byKey = new Map();
for (const [key, pid, what] of lines) if (what === 'start') (byKey.get(key) ?? byKey.set(key, []).get(key)).push(pid);
const ended = new Set(lines.filter((l) => l[2] === 'end').map((l) => `${l[0]} ${l[1]}`));
let reinvoked = 0,
  illegal = 0,
  finishedBeforeKill = 0,
  unrecorded = 0,
  recordedNotStarted = 0;
// Every call the tool saw must have been recorded by the store first; the store may have recorded
// one more than the tool saw when a kill came between the record and the call.
for (const [key, n] of recorded) {
  const started = byKey.get(key)?.length ?? 0;
  if (started > n) unrecorded++;
  recordedNotStarted += n - Math.min(n, started);
}
for (const [key, pids] of byKey) {
  if (!recorded.has(key)) unrecorded++;
  if (pids.length > 1) reinvoked += pids.length - 1;
  for (const pid of pids.slice(0, -1)) {
    if (!killedPids.has(pid)) illegal++;
    else if (ended.has(`${key} ${pid}`)) finishedBeforeKill++; // killed between the tool's return and the commit of its result
  }
}
const summary = {
  rounds,
  kills,
  resumes_started: resumes,
  resume_kills: resumeKills,
  runs_not_resumed_exactly_once: badResumes,
  recover_calls: recoverCalls,
  runs: runs.length,
  runs_recovered: recoveredRuns,
  runs_not_completed: notDone.length,
  events,
  bad_chains: badChains,
  bad_replays: badReplays,
  tool_keys: byKey.size,
  tool_reinvocations_after_crash: reinvoked,
  of_which_tool_had_returned_before_the_kill: finishedBeforeKill,
  tool_reinvocations_without_crash: illegal,
  store_recorded_invocations: [...recorded.values()].reduce((a, b) => a + b, 0),
  tool_calls_not_recorded_by_store: unrecorded,
  recorded_invocations_killed_before_the_call: recordedNotStarted,
  seconds: Math.round((Date.now() - t0) / 1000),
};
console.log(JSON.stringify(summary, null, 2));
process.exitCode = notDone.length || badChains || badReplays || badResumes || illegal || unrecorded ? 1 : 0;
