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

/** A PostgreSQL store URL (docs/stores.md "PostgreSQL"). */
export const isPostgresSpec = (spec: string): boolean => /^postgres(ql)?:\/\//.test(spec);

/** `sqlite:<path>`, `memory:` or `postgres://…`. */
export function openStore(spec: string, mode: StoreMode = 'create'): Store {
  if (isPostgresSpec(spec)) {
    checkPostgresSpec(spec);
    return lazyPostgresStore(spec);
  }
  const m = /^sqlite:(.+)$/.exec(spec);
  if (spec !== 'memory:' && !m)
    throw new NanoVmError(
      'E_STORE_SPEC',
      `store "${spec}" must be sqlite:<path>, memory: or postgres://[user@]host[:port]/database[?schema=name]`,
    );
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

/**
 * The PostgreSQL store itself (for migrate, worker, submit, workers), loaded on demand so that
 * commands on other stores never load the driver. `migrate`: apply pending migrations first.
 */
export async function openPostgresStore(
  spec: string,
  opts: { migrate?: boolean; poolSize?: number } = {},
): Promise<import('@nano-vm/store-postgres').PostgresStore> {
  if (!isPostgresSpec(spec))
    throw new NanoVmError(
      'E_STORE_SPEC',
      `store "${spec}" must be postgres://[user@]host[:port]/database[?schema=name]`,
    );
  const { PostgresStore } = await import('@nano-vm/store-postgres');
  const store = new PostgresStore(spec, opts);
  try {
    return await store.open();
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** What can be checked of a PostgreSQL URL without loading the driver: a host and a database. */
function checkPostgresSpec(spec: string): void {
  let u: URL | undefined;
  try {
    u = new URL(spec);
  } catch {
    u = undefined;
  }
  if (!u?.hostname || u.pathname.length <= 1)
    throw new NanoVmError(
      'E_STORE_SPEC',
      `store "${spec.replace(/^(\w+:\/\/[^:/@]*):[^@/]*@/, '$1:***@')}" must name a host and a database: postgres://[user@]host[:port]/database[?schema=name]`,
    );
}

/**
 * A `Store` on PostgreSQL for the commands every store serves (run, runs, export, resume,
 * recover, erase, analyze): each call waits for the driver to load and the schema check, the
 * first time only. Opening stays synchronous, as for the other stores.
 */
function lazyPostgresStore(spec: string): Store {
  let opened: Promise<Store> | undefined;
  let closed = false;
  const get = (): Promise<Store> =>
    (opened ??= import('@nano-vm/store-postgres').then((m) => new m.PostgresStore(spec).open()));
  const forward =
    <K extends Exclude<keyof Store, 'close'>>(name: K) =>
    async (...args: Parameters<NonNullable<Store[K]>>): Promise<Awaited<ReturnType<NonNullable<Store[K]>>>> => {
      if (closed) throw new NanoVmError('E_STORE_CLOSED', 'the store is closed');
      const s = await get();
      return (s[name] as (...a: unknown[]) => Promise<Awaited<ReturnType<NonNullable<Store[K]>>>>).apply(s, args);
    };
  return {
    createRun: forward('createRun'),
    append: forward('append'),
    finish: forward('finish'),
    writeRun: forward('writeRun'),
    getRun: forward('getRun'),
    events: forward('events'),
    listRuns: forward('listRuns'),
    subjectSecret: forward('subjectSecret'),
    vault: forward('vault'),
    vaultBySubject: forward('vaultBySubject'),
    eraseValues: forward('eraseValues'),
    flushErased: forward('flushErased'),
    invocations: forward('invocations'),
    reinvoked: forward('reinvoked'),
    acquireLease: forward('acquireLease'),
    renewLease: forward('renewLease'),
    releaseLease: forward('releaseLease'),
    close: async () => {
      if (closed) return;
      closed = true;
      if (opened) await (await opened.catch(() => undefined))?.close();
    },
  };
}
