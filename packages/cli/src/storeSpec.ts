import { MemoryStore, SqliteStore, type Store } from '@nano-vm/runtime';
import { CliError } from './cliError.js';
import { EXIT } from './exitCodes.js';

/** `--store` when none is given: $NANO_VM_STORE, else the embedded SQLite file under ./.nano-vm/. */
export const DEFAULT_STORE = process.env.NANO_VM_STORE || 'sqlite:./.nano-vm/nano-vm.db';

/** `sqlite:<path>` or `memory:`. */
export function openStore(spec: string): Store & { close?: () => void } {
  if (spec === 'memory:') return new MemoryStore();
  const m = /^sqlite:(.+)$/.exec(spec);
  if (!m) throw new CliError('E_STORE_SPEC', `store "${spec}" must be sqlite:<path> or memory:`, EXIT.REFUSED);
  try {
    return new SqliteStore(m[1]!);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new CliError(
      code?.startsWith('E_') ? code : 'E_STORE_OPEN',
      `cannot open store ${m[1]}: ${(e as Error).message}`,
      EXIT.REFUSED,
    );
  }
}

/** Opens the store for `use` and closes it however `use` ends. */
export async function withStore<T>(spec: string, use: (store: Store) => T | Promise<T>): Promise<T> {
  const store = openStore(spec);
  try {
    return await use(store);
  } finally {
    store.close?.();
  }
}
