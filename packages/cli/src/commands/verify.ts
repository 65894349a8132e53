import { parseArgs } from 'node:util';
import { NanoVmError, verifyBundle } from '@nano-vm/kernel';
import { nodeHasher } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { readBundleJson } from '../inputs.js';

export const VERIFY_USAGE = 'usage: nano-vm verify <bundle.json> [--json]';

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false } },
  });
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new NanoVmError('E_USAGE', VERIFY_USAGE);
  let bundle: unknown;
  try {
    bundle = readBundleJson(file);
  } catch (e) {
    // A bundle that is not even JSON is a verification failure, not a usage error.
    if (e instanceof NanoVmError && e.code === 'E_JSON') {
      report(values.json, { valid: false, code: 'E_BUNDLE_FORMAT', first_bad_seq: null, reason: e.message });
      return EXIT.FAILED;
    }
    throw e;
  }
  const r = verifyBundle(bundle, nodeHasher);
  if (r.ok) report(values.json, { valid: true, event_count: r.event_count, head_hash: r.head_hash }, file);
  else report(values.json, { valid: false, code: r.code, first_bad_seq: r.first_bad_seq, reason: r.reason }, file);
  return r.ok ? EXIT.OK : EXIT.FAILED;
}

function report(json: boolean, o: Record<string, unknown>, file?: string): void {
  if (json) process.stdout.write(JSON.stringify(o) + '\n');
  else if (o.valid)
    process.stdout.write(
      `${file}: valid — ${o.event_count} events, chain and receipt recomputed, head ${o.head_hash}\n`,
    );
  else
    process.stdout.write(
      `${file ?? 'bundle'}: INVALID ${o.code}${o.first_bad_seq !== null ? ` at event seq ${o.first_bad_seq}` : ''}: ${o.reason}\n`,
    );
}
