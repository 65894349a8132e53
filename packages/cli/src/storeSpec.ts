import { NanoVmError } from '@nano-vm/kernel';
import { MemoryStore, SqliteStore, type Store } from '@nano-vm/runtime';

/** `--store` when none is given: $NANO_VM_STORE, else the embedded SQLite file under ./.nano-vm/. */
export const DEFAULT_STORE = process.env.NANO_VM_STORE || 'sqlite:./.nano-vm/nano-vm.db';

/** `sqlite:<path>` or `memory:`. */
export function openStore(spec: string): Store {
  if (spec === 'memory:') return new MemoryStore();
  const m = /^sqlite:(.+)$/.exec(spec);
  if (!m) throw new NanoVmError('E_STORE_SPEC', `store "${spec}" must be sqlite:<path> or memory:`);
  try {
    return new SqliteStore(m[1]!);
  } catch (e) {
    // A file the store refuses (a newer schema, a corrupt file) keeps the store's own code.
    const code = e instanceof NanoVmError ? e.code : 'E_STORE_OPEN';
    throw new NanoVmError(code, `cannot open store ${m[1]}: ${(e as Error).message}`, { cause: e });
  }
}

/** Opens the store for `use` and closes it however `use` ends. */
export async function withStore<T>(spec: string, use: (store: Store) => T | Promise<T>): Promise<T> {
  const store = openStore(spec);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}
