import { type Bundle, type VaultEntry } from '@nano-vm/kernel';
import { vaultEntries } from '@nano-vm/runtime';
import { withStore } from './storeSpec.js';

/**
 * `replay --store`: the live vault rows of the bundle's run, so the replay puts the sensitive values
 * back and re-derives every decision (docs/privacy.md#replay). A run the store does not know, or
 * whose values were erased, gives no rows: those inputs stay sealed.
 */
export async function vaultFromStore(spec: string, bundle: Bundle): Promise<VaultEntry[]> {
  const runId = (bundle.events[0] as { run_id?: unknown } | undefined)?.run_id;
  if (typeof runId !== 'string') return [];
  return withStore(spec, (store) => vaultEntries(store, runId), 'existing');
}
