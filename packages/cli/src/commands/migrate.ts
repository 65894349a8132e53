import { NanoVmError } from '@nano-vm/kernel';
import { EXIT } from '../exitCodes.js';
import { openPostgresStore } from '../storeSpec.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

const PG_STORE = {
  type: 'string',
  value: '<postgres://…>',
  description:
    'the PostgreSQL store: postgres://[user[:password]@]host[:port]/database[?schema=name] (schema nano_vm by default; docs/stores.md "PostgreSQL"). Default: $NANO_VM_STORE',
} as const;

/** `--store` of the PostgreSQL commands: $NANO_VM_STORE when it names a PostgreSQL store. */
export function pgStoreOption(value: string | undefined, usage: string): string {
  const spec = value ?? process.env.NANO_VM_STORE;
  if (!spec) throw new NanoVmError('E_USAGE', `--store postgres://… is required\n${usage}`);
  return spec;
}

export { PG_STORE };

export const MIGRATE = defineCommand({
  name: 'migrate',
  summary:
    "Brings a PostgreSQL store's schema to this nano-vm's version: applies the versioned migrations it lacks, in one transaction (creating the schema the first time).",
  args: '',
  options: {
    store: PG_STORE,
    json: {
      type: 'boolean',
      default: false,
      description: 'one object: {schema, from, to, applied: [{version, name}]}',
    },
  },
  run: migrateCommand,
});
export const MIGRATE_USAGE = usageText(MIGRATE);

export async function migrateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(MIGRATE, argv);
  if (positionals.length) throw new NanoVmError('E_USAGE', MIGRATE_USAGE);
  const spec = pgStoreOption(values.store, MIGRATE_USAGE);
  const { PostgresStore, redactUrl } = await import('@nano-vm/store-postgres');
  if (!/^postgres(ql)?:\/\//.test(spec)) await openPostgresStore(spec); // E_STORE_SPEC, with the reason
  const store = new PostgresStore(spec);
  try {
    const r = await store.migrate();
    if (values.json) process.stdout.write(JSON.stringify({ schema: store.schema, ...r }) + '\n');
    else if (!r.applied.length)
      process.stdout.write(`schema ${store.schema} at ${redactUrl(spec)} is at store schema ${r.to}: nothing to do\n`);
    else
      process.stdout.write(
        `schema ${store.schema} at ${redactUrl(spec)}: store schema ${r.from} → ${r.to}\n` +
          r.applied.map((m) => `  applied ${m.version}: ${m.name}\n`).join(''),
      );
    return EXIT.OK;
  } finally {
    await store.close();
  }
}
