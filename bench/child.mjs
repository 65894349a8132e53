// One workload for one peer in this process; the JSON result is the last line on stdout, progress
// goes to stderr. run.mjs starts one of these per (round, workload, peer). Run it directly to look
// at or profile a single measurement:
//
//   node --expose-gc bench/child.mjs w10k nano-vm
//   node --expose-gc bench/child.mjs long nano-vm --ns=1000,100000
//   node --expose-gc --cpu-prof --cpu-prof-dir=bench/.profiles bench/child.mjs w10k nano-vm
//
//   peers: nano-vm, and the anchors' peers (bare, bare-hash; xstate, langgraph, langgraph-mem,
//          langgraph-loop, langgraph-mem-loop once `node bench/setup-peers.mjs` has installed them)
//   --anchors=<dir>   the anchors folder to load drivers and peers from (default: see common.mjs)
//   --standalone      use bench/standalone.mjs drivers (what run.mjs does when there are no anchors)
//   --runtime=<file>  the @nano-vm/runtime entry point to load (run.mjs passes its snapshot of the
//                     build; default: packages/runtime/dist/index.js)
import { distFingerprint, locateAnchors, loadDrivers, loadNanoVm, NANO, RUNTIME } from './common.mjs';

const [workload, peerName, ...rest] = process.argv.slice(2);
if (!['w10k', 'chain22', 'long'].includes(workload) || !peerName) {
  console.error('usage: node --expose-gc bench/child.mjs <w10k|chain22|long> <peer> [--ns=250,1000] [--anchors=<dir>|--standalone] [--runtime=<index.js>]');
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
  else throw new Error(`unknown option ${a}`);
}

const drivers = await loadDrivers(dir);
let peer, build;
if (peerName === NANO) {
  build = distFingerprint(runtime); // before loading, so it names the code this process runs
  peer = await loadNanoVm(drivers.lib, runtime);
}
else if (drivers.PEERS[peerName]) peer = await drivers.PEERS[peerName].load();
else throw new Error(`unknown peer ${peerName}${drivers.standalone ? ' (no anchors: only nano-vm can run)' : `; known: ${[NANO, ...Object.keys(drivers.PEERS)].join(', ')}`}`);

const result = await drivers.WORKLOADS[workload](peer, opts);
result.driver = drivers.standalone ? 'standalone' : 'anchors';
if (build) Object.assign(result, { build, tally: peer.tally }); // nano-vm: dist fingerprint; every run's status (outcome or error code)
console.log(JSON.stringify(result));
