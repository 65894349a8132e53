/** Worker side of RunPool: runs its batches with the setup module's program, tools and model. */
import { parentPort, workerData } from 'node:worker_threads';
import { NanoVmError, type Program } from '@nano-vm/kernel';
import { runProgram } from './executor.js';
import type { ModelPort } from './model/port.js';
import { MemoryStore } from './store/memoryStore.js';
import type { Store } from './store/store.js';
import type { ToolRegistry } from './toolRegistry.js';
import { packSummaries, type RunSummary } from './runPool.js';

interface Setup {
  program: Program;
  tools: ToolRegistry;
  model: ModelPort;
  store?: Store;
  /** The policy every run of the pool is under (docs/policy.md). */
  policy?: unknown;
}

const port = parentPort!;
const { moduleUrl } = workerData as { moduleUrl: string };

async function summarize(setup: Setup & { store: Store }, input: unknown): Promise<RunSummary> {
  try {
    const r = await runProgram({
      program: setup.program,
      input,
      model: setup.model,
      tools: setup.tools,
      store: setup.store,
      ...(setup.policy !== undefined ? { policy: setup.policy } : {}),
    });
    return {
      run_id: r.run_id,
      status: r.status,
      outcome: r.outcome,
      head_hash: r.head_hash,
      event_count: r.events.length,
      error: r.receipt.error ? { code: r.receipt.error.code, message: r.receipt.error.message } : null,
    };
  } catch (e) {
    if (!(e instanceof NanoVmError)) throw e;
    return {
      run_id: null,
      status: 'refused',
      outcome: null,
      head_hash: null,
      event_count: 0,
      error: { code: e.code, message: e.message },
    };
  }
}

try {
  const mod = (await import(moduleUrl)) as { setup?: () => Setup | Promise<Setup> };
  if (typeof mod.setup !== 'function')
    throw new NanoVmError('E_RUN_POOL_SETUP', `${moduleUrl} does not export a setup() function`);
  const s = await mod.setup();
  const setup = { ...s, store: s.store ?? new MemoryStore() };
  // Not awaited by the port: a batch that throws (a bug, not a refused run) is an unhandled rejection and ends the worker.
  port.on('message', (msg: { type: 'run'; ids: number[]; inputs: unknown[] }) => {
    void Promise.all(msg.inputs.map((input) => summarize(setup, input))).then((summaries) =>
      port.postMessage({ type: 'results', results: packSummaries(msg.ids, summaries) }),
    );
  });
  port.postMessage({ type: 'ready' });
} catch (e) {
  port.postMessage({ type: 'setup_failed', message: e instanceof Error ? e.message : String(e) });
}
