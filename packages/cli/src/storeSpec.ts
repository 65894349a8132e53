import { NanoVmError } from '@nano-vm/kernel';
import { MemoryStore, SqliteStore, type Store } from '@nano-vm/runtime';

/** `--store` when none is given: $NANO_VM_STORE, else the embedded SQLite file under ./.nano-vm/. */
export const DEFAULT_STORE = process.env.NANO_VM_STORE || 'sqlite:./.nano-vm/nano-vm.db';

/**
 * How a command opens its store: `create` (the default) makes the file (and its directory) when
 * it is missing — what `run` and `plan` do once their pre-flight passed; `existing` opens only a
 * file that is there, for commands that read or continue stored runs (`runs`, `export`, `resume`,
 * `recover`, `erase`, `analyze`, `replay --store`): a missing file is E_STORE_MISSING and nothing
 * is created.
 */
export type StoreMode = 'create' | 'existing';

/** `sqlite:<path>` or `memory:`. */
export function openStore(spec: string, mode: StoreMode = 'create'): Store {
  const m = /^sqlite:(.+)$/.exec(spec);
  if (spec !== 'memory:' && !m)
    throw new NanoVmError('E_STORE_SPEC', `store "${spec}" must be sqlite:<path> or memory:`);
  if (!m) return new MemoryStore();
  try {
    return new SqliteStore(m[1]!, { mustExist: mode === 'existing' });
  } catch (e) {
    if (e instanceof NanoVmError && e.code === 'E_STORE_MISSING')
      throw e.withMessage(
        `no store ${spec}: the file ${m[1]} does not exist (nothing has been run with this store; pass --store sqlite:<path> to name another)`,
      );
    // A file the store refuses (a newer schema, a corrupt file) keeps the store's own code.
    const code = e instanceof NanoVmError ? e.code : 'E_STORE_OPEN';
    throw new NanoVmError(code, `cannot open store ${m[1]}: ${(e as Error).message}`, { cause: e });
  }
}

/** Opens the store for `use` and closes it however `use` ends. */
export async function withStore<T>(
  spec: string,
  use: (store: Store) => T | Promise<T>,
  mode: StoreMode = 'create',
): Promise<T> {
  const store = openStore(spec, mode);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}
