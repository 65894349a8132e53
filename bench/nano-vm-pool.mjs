// The nano-vm-pool peer: the W-10K and W-CHAIN22 programs of bench/nano-vm.mjs run through the
// runtime's RunPool, i.e. on worker threads (one per core by default), driven by the same anchors'
// drivers as every other peer. It is reported as its own row, next to the single-thread nano-vm.
//
// What differs from the single-thread peer (bench/README.md, "Fairness"):
//   - each worker builds the program, the tool registry and the mock model once, at pool start-up
//     (before any timing), instead of once per timed run; the pre-flight validation and program
//     hash are therefore outside the timings (they are cached per program object in both peers);
//   - a run's result comes back to the driver as a RunSummary (status, outcome, head hash, event
//     count, error), not the full trace: the trace stays in the worker's store;
//   - each worker keeps its runs in a MemoryStore that it replaces every `rotate` runs (one timed
//     run's share), like the single-thread peer starts a fresh store per timed run.
// Every run is still a full runProgram() with the same governance, hash chain and receipt.
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';

/**
 * Starts the pool for `workload` ('w10k' | 'chain22'); resolves to a peer with the anchor peers'
 * interface plus `close()`. `runtime`: the @nano-vm/runtime entry point; `libUrl`/`libExport`:
 * where the workers import the anchors' mocks from.
 */
export async function startNanoVmPool({
  runtime,
  libUrl,
  libExport,
  workload,
  workers = availableParallelism(),
  rotate,
}) {
  const rt = await import(pathToFileURL(runtime).href);
  const setup = new URL('./nano-vm-pool-setup.mjs', import.meta.url);
  setup.searchParams.set('runtime', pathToFileURL(runtime).href);
  setup.searchParams.set('lib', libUrl);
  if (libExport) setup.searchParams.set('export', libExport);
  setup.searchParams.set('workload', workload);
  setup.searchParams.set('rotate', String(rotate ?? Math.ceil(10_000 / workers)));
  const pool = await rt.RunPool.start({ module: setup, workers });

  const tally = {};
  const run = async (input) => {
    const s = await pool.run(input);
    const k = s.status === 'completed' ? `completed:${s.outcome}` : `${s.status}:${s.error?.code ?? '?'}`;
    tally[k] = (tally[k] ?? 0) + 1;
    return { status: s.status === 'completed' ? 'OK' : 'FAILED', result: s };
  };
  const unsupported = () => {
    throw new Error(`nano-vm-pool was started for ${workload}`);
  };
  return {
    name: 'nano-vm-pool',
    workers,
    tally,
    // The program lives in the workers (built at start-up): a "fresh runner" is the same pool.
    w10k: () => (workload === 'w10k' ? run : unsupported()),
    chain22: () => (workload === 'chain22' ? () => run({}) : unsupported()),
    long: unsupported,
    close: () => pool.close(),
  };
}
