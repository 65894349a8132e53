import { NanoVmError } from '@nano-vm/kernel';
import { EXIT } from '../exitCodes.js';
import { DEFAULT_STORE, isPostgresSpec, openPostgresStore } from '../storeSpec.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const AUDIT = defineCommand({
  name: 'audit',
  summary:
    "Prints the MCP server's audit log (every call: principal, tool, hash of the arguments, result) and verifies its hash chain.",
  args: '',
  options: {
    store: {
      type: 'string',
      default: DEFAULT_STORE,
      value: '<sqlite:path|postgres://…>',
      defaultText: 'sqlite:./.nano-vm/nano-vm.db, or $NANO_VM_STORE',
      description: 'the store the server kept its log in',
    },
    json: { type: 'boolean', default: false, description: 'one object: {ok, entries, first_bad?}' },
  },
  run: auditCommand,
});
export const AUDIT_USAGE = usageText(AUDIT);

/** Exit 0: the chain verifies. Exit 1: an entry was changed or removed (E_AUDIT_BROKEN, naming it). */
export async function auditCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(AUDIT, argv);
  if (positionals.length) throw new NanoVmError('E_USAGE', AUDIT_USAGE);
  const entries = isPostgresSpec(values.store) ? await postgresAudit(values.store) : await sqliteAudit(values.store);
  const { verifyAuditLog } = await import('@nano-vm/mcp');
  const bad = verifyAuditLog(entries);
  if (values.json)
    process.stdout.write(JSON.stringify({ ok: bad === null, entries, ...(bad ? { first_bad: bad } : {}) }) + '\n');
  else {
    for (const e of entries)
      process.stdout.write(
        `${String(e.seq).padStart(6)}  ${e.ts}  ${e.principal.padEnd(16)} ${e.tool.padEnd(16)} ${e.result.padEnd(24)} ${e.run_id ?? '-'}  args ${e.args_hash.slice(0, 12) || '-'}\n`,
      );
    process.stdout.write(
      bad
        ? ''
        : `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}; the chain verifies (head ${entries.length ? entries[entries.length - 1]!.hash.slice(0, 16) + '…' : 'empty'})\n`,
    );
  }
  if (bad) throw new NanoVmError('E_AUDIT_BROKEN', `the audit log is broken at entry ${bad.seq}: ${bad.reason}`);
  return EXIT.OK;
}

async function sqliteAudit(spec: string): Promise<import('@nano-vm/mcp').AuditEntry[]> {
  const m = /^sqlite:(.+)$/.exec(spec);
  if (!m)
    throw new NanoVmError(
      'E_STORE_SPEC',
      `audit reads a SQLite (sqlite:<path>) or PostgreSQL (postgres://…) store, not "${spec}"`,
    );
  const { existsSync } = await import('node:fs');
  if (!existsSync(m[1]!)) throw new NanoVmError('E_STORE_MISSING', `no store ${spec}: the file ${m[1]} does not exist`);
  const { SqliteServerState } = await import('@nano-vm/mcp');
  const state = new SqliteServerState(m[1]!, { create: false });
  return state.auditLog().finally(() => state.close());
}

/** The log the MCP servers on this schema keep (read only: nothing is migrated). */
async function postgresAudit(spec: string): Promise<import('@nano-vm/mcp').AuditEntry[]> {
  const store = await openPostgresStore(spec);
  try {
    const { PostgresServerState } = await import('@nano-vm/mcp');
    const state = await PostgresServerState.open(store, { migrate: false });
    return await state.auditLog();
  } finally {
    await store.close();
  }
}
