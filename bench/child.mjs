// One workload for one peer in this process; the JSON result is the last line on stdout, progress
// goes to stderr. run.mjs starts one of these per (round, workload, peer). Run it directly to look
// at or profile a single measurement:
//
//   node --expose-gc bench/child.mjs w10k nano-vm
//   node --expose-gc bench/child.mjs long nano-vm --ns=1000,100000
//   node --expose-gc --cpu-prof --cpu-prof-dir=bench/.profiles bench/child.mjs w10k nano-vm
//
//   node --expose-gc bench/child.mjs w10k nano-vm-pool --workers=2
//
//   peers: nano-vm, nano-vm-pool (nano-vm through RunPool on worker threads; w10k and chain22 only),
//          and the anchors' peers (bare, bare-hash; xstate, langgraph, langgraph-mem,
//          langgraph-loop, langgraph-mem-loop once `node bench/setup-peers.mjs` has installed them)
//   --anchors=<dir>   the anchors folder to load drivers and peers from (default: see common.mjs)
//   --standalone      use bench/standalone.mjs drivers (what run.mjs does when there are no anchors)
//   --runtime=<file>  the @nano-vm/runtime entry point to load (run.mjs passes its snapshot of the
//                     build; default: packages/runtime/dist/index.js)
//   --workers=N       nano-vm-pool's worker threads (default: the number of cores)
import {
  distFingerprint,
  locateAnchors,
  loadDrivers,
  loadNanoVm,
  loadNanoVmPool,
  NANO,
  NANO_POOL,
  NANO_POOL_WORKLOADS,
  RUNTIME,
} from './common.mjs';

const [workload, peerName, ...rest] = process.argv.slice(2);
if (!['w10k', 'chain22', 'long'].includes(workload) || !peerName) {
  console.error(
    'usage: node --expose-gc bench/child.mjs <w10k|chain22|long> <peer> [--ns=250,1000] [--anchors=<dir>|--standalone] [--runtime=<index.js>] [--workers=N]',
  );
  process.exit(2);
}
const opts = {};
let dir = locateAnchors().dir;
let runtime = RUNTIME;
for (const a of rest) {
  if (a.startsWith('--runtime=')) runtime = a.slice(10);
  else if (a.startsWith('--ns=')) opts.ns = a.slice(5).split(',').map(Number);
  else if (a.startsWith('--anchors=')) dir = a.slice(10);
  else if (a === '--standalone') dir = null;
  else if (a.startsWith('--workers=')) opts.workers = Number(a.slice(10));
  else throw new Error(`unknown option ${a}`);
}

const drivers = await loadDrivers(dir);
let peer, build;
if (peerName === NANO) {
  build = distFingerprint(runtime); // before loading, so it names the code this process runs
  peer = await loadNanoVm(drivers.lib, runtime);
} else if (peerName === NANO_POOL) {
  if (!NANO_POOL_WORKLOADS.includes(workload))
    throw new Error(`${NANO_POOL} runs ${NANO_POOL_WORKLOADS.join(' and ')} only`);
  build = distFingerprint(runtime);
  peer = await loadNanoVmPool(drivers, workload, runtime, opts.workers);
} else if (drivers.PEERS[peerName]) peer = await drivers.PEERS[peerName].load();
else
  throw new Error(
    `unknown peer ${peerName}${drivers.standalone ? ' (no anchors: only nano-vm can run)' : `; known: ${[NANO, NANO_POOL, ...Object.keys(drivers.PEERS)].join(', ')}`}`,
  );

const { workers: _pool, ...driverOpts } = opts;
const result = await drivers.WORKLOADS[workload](peer, driverOpts);
result.driver = drivers.standalone ? 'standalone' : 'anchors';
if (build) Object.assign(result, { build, tally: peer.tally }); // nano-vm: dist fingerprint; every run's status (outcome or error code)
if (peer.workers) result.workers = peer.workers;
await peer.close?.();
console.log(JSON.stringify(result));
