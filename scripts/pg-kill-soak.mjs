// The kill test of packages/store-postgres at a bigger size: real `nano-vm worker` processes on one
// PostgreSQL store, SIGKILLed at random while they drive runs and replaced, then every run checked
// from the store (finished exactly once, gapless events, chain and receipt verify, every tool call
// under a key the store recorded). Prints the counts.
//
//   npm run build && node scripts/pg-kill-soak.mjs [--runs=2000] [--kills=20] [--workers=4] [--concurrency=16]
//
// Needs PostgreSQL at 127.0.0.1:5432, database test (or $NANO_VM_TEST_PG).
import { spawnSync } from 'node:child_process';

const arg = (name, d) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d;
const runs = Number(arg('runs', 2000));
const env = {
  ...process.env,
  NANO_VM_PG_KILL_RUNS: String(runs),
  NANO_VM_PG_KILL_KILLS: arg('kills', '20'),
  NANO_VM_PG_KILL_WORKERS: arg('workers', '4'),
  NANO_VM_PG_KILL_CONCURRENCY: arg('concurrency', '16'),
  NANO_VM_PG_KILL_EVERY_MS: arg('every-ms', '700'),
  NANO_VM_PG_KILL_TIMEOUT_MS: String(Math.max(120_000, runs * 150)),
};
const r = spawnSync('npx', ['vitest', 'run', 'packages/store-postgres/test/killWorkers.test.ts'], {
  env,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
