// MCP server throughput (issue 12): `run_program` calls per second on the refund example over
// Streamable HTTP, at concurrency 1 and 16, with p50/p95 latency per call — next to the same runs
// through the CLI (`nano-vm run … --json`, one process per run, as a shell script would) at the
// same concurrencies, in the same sitting. One server process (`nano-vm mcp --http`, a SQLite store
// with group commit), one SDK client session per concurrent caller; every call waits for its run to
// finish (wait: true), so a call's latency is a whole governed run: validate, model (scripted),
// guard, tool, every event durable in SQLite, the receipt.
//
//   npm run build && node bench/mcp.mjs [--seconds=5] [--cli-runs=32]
//
// Prints a markdown table and writes bench/results/mcp-<ts>.json/.md.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { gitState, writeResults } from './common.mjs';

const run = promisify(execFile);
const log = (...a) => console.error(...a);
const arg = (name, d) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d;
const seconds = Number(arg('seconds', 5));
const cliRuns = Number(arg('cli-runs', 32));
const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const EX = join(ROOT, 'examples/refund');
const scratch = mkdtempSync(join(os.tmpdir(), 'nano-vm-bench-mcp-'));
const TOKEN = 'bench-token-' + createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 16);
const input = JSON.parse(readFileSync(join(EX, 'inputs/approve.json'), 'utf8'));
const programText = readFileSync(join(EX, 'program.yaml'), 'utf8');

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const summary = (label, latencies, elapsedMs) => ({
  label,
  calls: latencies.length,
  per_s: (latencies.length * 1000) / elapsedMs,
  p50_ms: pct(latencies, 50),
  p95_ms: pct(latencies, 95),
});

async function startServer() {
  const cfg = join(scratch, 'mcp.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      store: `sqlite:${join(scratch, 'mcp.db')}`,
      model: `scripted:${join(EX, 'model.yaml')}`,
      tools: join(EX, 'tools.mjs'),
      principals: [
        {
          name: 'bench',
          token_sha256: createHash('sha256').update(TOKEN).digest('hex'),
          scopes: ['read', 'run', 'admin'],
        },
      ],
      limits: { rate_per_minute: 10_000_000 },
    }),
  );
  const proc = spawn(process.execPath, [CLI, 'mcp', '--http', '--port', '0', '--config', cfg], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = await new Promise((res, rej) => {
    let err = '';
    proc.stderr.on('data', (c) => {
      err += c;
      const m = /listening on (\S+)/.exec(err);
      if (m) res(new URL(m[1]));
    });
    proc.once('exit', (code) => rej(new Error(`server exited ${code}: ${err}`)));
  });
  return { proc, url };
}

async function mcpRound(url, concurrency) {
  const clients = await Promise.all(
    Array.from({ length: concurrency }, async () => {
      const c = new Client({ name: 'bench', version: '1' });
      await c.connect(
        new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: `Bearer ${TOKEN}` } } }),
      );
      return c;
    }),
  );
  const call = async (c) => {
    const t = performance.now();
    const r = await c.callTool({ name: 'run_program', arguments: { program: { name: 'refund' }, input } });
    if (r.isError || r.structuredContent.status !== 'completed') throw new Error(JSON.stringify(r.content));
    return performance.now() - t;
  };
  // Warm-up: a few calls per client (JIT, SQLite page cache, the program's compiled form).
  for (let i = 0; i < 3; i++) await Promise.all(clients.map(call));
  const latencies = [];
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    clients.map(async (c) => {
      while (performance.now() < deadline) latencies.push(await call(c));
    }),
  );
  const elapsed = performance.now() - start;
  await Promise.all(clients.map((c) => c.close()));
  return summary(`MCP HTTP run_program, concurrency ${concurrency}`, latencies, elapsed);
}

async function cliRound(concurrency) {
  const store = `sqlite:${join(scratch, `cli-${concurrency}.db`)}`;
  const inputFile = join(EX, 'inputs/approve.json');
  const args = [
    CLI,
    'run',
    join(EX, 'program.yaml'),
    '--input',
    inputFile,
    '--model',
    `scripted:${join(EX, 'model.yaml')}`,
    '--tools',
    join(EX, 'tools.mjs'),
    '--store',
    store,
    '--json',
  ];
  const once = async () => {
    const t = performance.now();
    const { stdout } = await run(process.execPath, args);
    if (JSON.parse(stdout).status !== 'completed') throw new Error(stdout);
    return performance.now() - t;
  };
  await once();
  const latencies = [];
  let left = cliRuns;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) latencies.push(await once());
    }),
  );
  return summary(
    `CLI nano-vm run (a process per run), concurrency ${concurrency}`,
    latencies,
    performance.now() - start,
  );
}

const { proc, url } = await startServer();
try {
  const setup = new Client({ name: 'bench-setup', version: '1' });
  await setup.connect(
    new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: `Bearer ${TOKEN}` } } }),
  );
  await setup.callTool({ name: 'put_program', arguments: { text: programText } });
  await setup.close();

  const rows = [];
  for (const c of [1, 16]) {
    log(`MCP concurrency ${c} (${seconds} s)…`);
    rows.push(await mcpRound(url, c));
    log(`CLI concurrency ${c} (${cliRuns} runs)…`);
    rows.push(await cliRound(c));
  }
  const table = [
    '| what | calls | per second | p50 ms | p95 ms |',
    '|---|---:|---:|---:|---:|',
    ...rows.map(
      (r) => `| ${r.label} | ${r.calls} | ${r.per_s.toFixed(1)} | ${r.p50_ms.toFixed(1)} | ${r.p95_ms.toFixed(1)} |`,
    ),
  ].join('\n');
  console.log(table);
  const meta = {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    node: process.version,
    loadavg: os.loadavg(),
    git: gitState(),
  };
  writeResults(
    'mcp-',
    `# MCP server throughput\n\n${table}\n\n\`\`\`json\n${JSON.stringify(meta, null, 2)}\n\`\`\`\n`,
    { meta, seconds, cliRuns, rows },
  );
} finally {
  proc.kill('SIGTERM');
  rmSync(scratch, { recursive: true, force: true });
}
