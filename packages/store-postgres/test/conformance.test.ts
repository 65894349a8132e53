import { afterAll, describe, vi } from 'vitest';
import { storeConformance } from '../../runtime/test/storeConformance.js';
import { PostgresStore } from '../src/index.js';
import { schemas, unreachable, urlFor } from './pgTestServer.js';

// The suite drives runs through the runtime's source (its internal.ts), and recover/resume tell a
// store's refusals apart with `instanceof StoreError`: the store must see that same module, not
// the runtime's build that '@nano-vm/runtime' resolves to here.
vi.mock('@nano-vm/runtime', () => import('../../runtime/src/index.js'));

const db = schemas('conf');
afterAll(() => db.dropAll());

describe.skipIf(unreachable !== null)('PostgreSQL', () => {
  storeConformance('postgres', {
    make: () => new PostgresStore(urlFor(db.next()), { migrate: true }).open(),
    reopen: (s) => new PostgresStore((s as PostgresStore).url).open(),
  });
});
