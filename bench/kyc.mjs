// The KYC simulator's latency as a person sees it: the time from the request (a click) to the
// response carrying the run's settled status (ended, waiting for approval, or refused), over real
// HTTP against a real server with a real SQLite store in a temp dir. Medians of --rounds per case,
// per injector (on its default case), for lanes, and for the analytics of 60 seeded runs.
//
//   npm run build && node bench/kyc.mjs [--rounds=20]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '@nano-vm/kyc';

const rounds = Number(process.argv.find((a) => a.startsWith('--rounds='))?.slice(9) ?? 20);
const server = await startServer({ store: join(mkdtempSync(join(tmpdir(), 'nano-vm-kyc-bench-')), 'kyc.db'), port: 0 });
const post = async (path, body) => {
  const t = performance.now();
  const r = await fetch(server.url + path, {
    method: body ? 'POST' : 'GET',
    headers: { 'content-type': 'application/json' },
    ...(body && { body: JSON.stringify(body) }),
  });
  const j = await r.json();
  return { ms: performance.now() - t, status: j.status ?? j.governed?.status ?? (j.analysis ? 'analyzed' : r.status) };
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const meta = await (await fetch(`${server.url}/api/meta`)).json();
const rows = [];
const measure = async (label, path, body) => {
  const times = [];
  let status = '';
  const at = (i) => (typeof path === 'function' ? path(i) : path);
  await post(at(-1), body); // warm-up
  for (let i = 0; i < rounds; i++) ({ ms: times[i], status } = await post(at(i), body));
  rows.push({ label, status, median_ms: median(times).toFixed(1), max_ms: Math.max(...times).toFixed(1) });
};
for (const c of meta.cases) await measure(`case ${c.id}`, '/api/runs', { case: c.id });
for (const i of meta.injectors)
  await measure(`injector ${i.id} (${i.default_case})`, '/api/runs', { case: i.default_case, injector: i.id });
await measure('lanes media_injection', '/api/runs', { case: 'media_injection', lanes: true });
// A new seed each round: the server keeps an analysis it has computed.
await measure('analytics runs=60 (a new seed each)', (i) => `/api/analytics?runs=60&seed=${i + 2}`);
await server.close();
console.log(`| request | settled status | median ms | max ms |\n|---|---|---:|---:|`);
for (const r of rows) console.log(`| ${r.label} | ${r.status} | ${r.median_ms} | ${r.max_ms} |`);
console.log(`\n${rounds} rounds each, node ${process.version}; the machine may be busy: compare on a quiet one.`);
