// What the MCP server's status triggers cost the workers (docs/mcp.md "On PostgreSQL, with
// workers"): runs submitted in one batch, driven by one in-process worker, on a schema with only
// the store's tables and on one where an MCP server's migration added its triggers (a NOTIFY per
// run status change). Rounds alternate the two, so a busy machine affects both alike.
//
//   npm run build && node bench/mcp-postgres.mjs [--n=2000] [--rounds=3] [--conc=64] [--steps=3]
//
// Needs PostgreSQL at 127.0.0.1:5432 (database test, or $NANO_VM_TEST_PG); works in schemas of
// its own and drops them.
import pg from 'pg';
import { loadProgram } from '@nano-vm/kernel';
import { ToolRegistry } from '@nano-vm/runtime';
import { PostgresStore, startWorker, submitRuns } from '@nano-vm/store-postgres';
import { PostgresServerState } from '@nano-vm/mcp';

const arg = (name, d) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d);
const N = arg('n', 2000);
const ROUNDS = arg('rounds', 3);
const CONC = arg('conc', 64);
const STEPS = arg('steps', 3);
const URL_DB = process.env.NANO_VM_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

const tools = new ToolRegistry();
tools.register({ name: 'echo', run: (args) => ({ ok: true, args }) });
const steps = Array.from({ length: STEPS }, (_, i) => ({
  id: `s${i}`,
  kind: 'tool',
  tool: 'echo',
  args: { i: { value: i } },
  next: i + 1 < STEPS ? `s${i + 1}` : 'done',
}));
const loaded = loadProgram(
  JSON.stringify({
    format: 'nano-vm.program/v1',
    id: 'bench-mcp-pg',
    version: '1',
    input_schema: { type: 'object' },
    steps: [...steps, { id: 'done', kind: 'end', outcome: 'OK' }],
  }),
  { format: 'json' },
);
if (!loaded.program) throw new Error(JSON.stringify(loaded.issues));
const program = loaded.program;
const NONE = { id: 'none', scripted: false, complete: () => Promise.reject(new Error('no model')) };

async function once(schema, withMcp) {
  const store = new PostgresStore(`${URL_DB}?schema=${schema}`, { migrate: true });
  await store.open();
  if (withMcp) await PostgresServerState.open(store, { migrate: true });
  await submitRuns(
    store,
    Array.from({ length: N }, () => ({ program, input: {} })),
  );
  let done = 0;
  let finish;
  const all = new Promise((r) => (finish = r));
  const t0 = performance.now();
  const w = await startWorker({
    store,
    model: NONE,
    tools,
    concurrency: CONC,
    onRun: (r) => {
      if (r.phase === 'finished' && ++done === N) finish();
    },
  });
  await all;
  const ms = performance.now() - t0;
  await w.stop();
  await store.close();
  return (N / ms) * 1000;
}

const admin = new pg.Client({ connectionString: URL_DB });
await admin.connect();
const made = [];
const rates = { store: [], mcp: [] };
try {
  for (let r = 0; r < ROUNDS; r++)
    for (const withMcp of r % 2 ? [true, false] : [false, true]) {
      const schema = `bench_mcppg_${process.pid}_${made.length}`;
      made.push(schema);
      const rate = await once(schema, withMcp);
      rates[withMcp ? 'mcp' : 'store'].push(rate);
      console.error(`round ${r + 1} ${withMcp ? 'with MCP triggers' : 'store only      '}: ${rate.toFixed(0)} runs/s`);
    }
} finally {
  for (const s of made) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await admin.end();
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  JSON.stringify({
    n: N,
    steps: STEPS,
    concurrency: CONC,
    rounds: ROUNDS,
    runs_per_s: { store_only: Math.round(median(rates.store)), with_mcp_triggers: Math.round(median(rates.mcp)) },
    ratio: +(median(rates.mcp) / median(rates.store)).toFixed(3),
  }),
);
