// One nano-vm worker process for bench/postgres.mjs: `startWorker` of @nano-vm/store-postgres on
// the store given, with the anchors' mock model and mock tools (lib.mjs) registered under the
// W-10K program's tool names — the tools every W-10K peer calls. `--sleep-ms=N` makes each tool
// sleep N ms first (the I/O-bound workload). Prints `ready` once listening, runs until SIGTERM,
// then prints one JSON line: its counters, CPU time and the store's group-commit statistics.
//
//   node bench/pg-worker.mjs <postgres://…?schema=…> <anchors lib.mjs> --concurrency=N [--sleep-ms=N]
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { REPO } from './common.mjs';

const [url, libPath, ...rest] = process.argv.slice(2);
const arg = (name, d) => rest.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d;
const rt = await import(pathToFileURL(join(REPO, 'packages/runtime/dist/index.js')).href);
const pgs = await import(pathToFileURL(join(REPO, 'packages/store-postgres/dist/index.js')).href);
const lib = await import(pathToFileURL(libPath).href);
const sleepMs = Number(arg('sleep-ms', 0));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const impl = (fn) => async (args) => {
  if (sleepMs) await sleep(sleepMs);
  return fn(args);
};
const tools = new rt.ToolRegistry([
  { name: 'mock_processor', run: impl((a) => lib.TOOLS.mock_processor(a)) },
  { name: 'mock_finalize', run: impl((a) => lib.TOOLS.mock_finalize(a)) },
  { name: 'fail_tool', run: impl(() => lib.callTool(lib.FAIL_TOOL, {})) },
]);
const model = {
  id: 'bench-mock',
  scripted: true,
  complete: async (req) => {
    await lib.mockModel(req.prompt);
    return { raw: 'normal', model: 'bench-mock' };
  },
};
const store = await new pgs.PostgresStore(url, {
  poolSize: Number(arg('pool', 4)),
  writers: Number(arg('writers', 2)),
}).open();
const worker = await pgs.startWorker({ store, model, tools, concurrency: Number(arg('concurrency', 50)) });
const cpu0 = process.cpuUsage();
console.log('ready');
process.once('SIGTERM', async () => {
  await worker.stop();
  const cpu = process.cpuUsage(cpu0);
  await store.close();
  console.log(JSON.stringify({ ...worker.stats, cpuMs: (cpu.user + cpu.system) / 1000, commits: store.stats }));
  process.exit(0);
});
