// RunPool setup module of the nano-vm-pool peer (bench/nano-vm-pool.mjs), imported by every worker
// thread. Its query string names the runtime to load, the anchors' mocks, the workload and how
// many runs a store keeps before it is replaced.
import { makeNanoVm } from './nano-vm.mjs';

const q = new URL(import.meta.url).searchParams;

export async function setup() {
  const [rt, libModule] = await Promise.all([import(q.get('runtime')), import(q.get('lib'))]);
  const lib = q.get('export') ? libModule[q.get('export')] : libModule;
  const peer = makeNanoVm(lib, rt);
  const run = peer[q.get('workload')]();
  return {
    program: run.program,
    tools: run.tools,
    model: peer.model,
    store: new RotatingStore(rt.MemoryStore, Number(q.get('rotate'))),
  };
}

/**
 * A MemoryStore replaced by a fresh one every `every` runs, so a worker holds about as many runs
 * as the single-thread peer's store (one per timed run) instead of every run of the process. Runs
 * in flight at a swap finish in the store they started in. Only what runProgram calls on a new
 * run is implemented.
 */
class RotatingStore {
  constructor(MemoryStore, every) {
    this.MemoryStore = MemoryStore;
    this.every = every;
    this.current = new MemoryStore();
    this.created = 0;
    this.storeOf = new Map();
  }

  createRun(run, vault) {
    if (this.created++ === this.every) {
      this.current = new this.MemoryStore();
      this.created = 1;
    }
    this.storeOf.set(run.run_id, this.current);
    return this.current.createRun(run, vault);
  }

  append(runId, events) {
    return this.storeOf.get(runId).append(runId, events);
  }

  finish(runId, status, outcome) {
    const s = this.storeOf.get(runId);
    this.storeOf.delete(runId);
    return s.finish(runId, status, outcome);
  }
}
