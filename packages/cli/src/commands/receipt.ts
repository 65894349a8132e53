import { parseArgs } from 'node:util';
import { computeReceipt, NanoVmError, verifyBundle, type TraceEvent } from '@nano-vm/kernel';
import { nodeHasher } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { readBundleJson } from '../inputs.js';
import { renderReceipt } from '../render.js';

export const RECEIPT_USAGE = 'usage: nano-vm receipt <bundle.json> [--json]';

/** Prints the receipt recomputed from the bundle's events, and whether the bundle verifies. */
export async function receiptCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false } },
  });
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new NanoVmError('E_USAGE', RECEIPT_USAGE);
  const bundle = readBundleJson(file) as { events?: unknown };
  const v = verifyBundle(bundle, nodeHasher);
  let receipt;
  try {
    receipt = computeReceipt(Array.isArray(bundle?.events) ? (bundle.events as TraceEvent[]) : []);
  } catch (e) {
    throw new NanoVmError('E_NO_GENESIS', `${file}: cannot compute a receipt: ${(e as Error).message}`, { cause: e });
  }
  const verified = v.ok
    ? { valid: true }
    : { valid: false, code: v.code, first_bad_seq: v.first_bad_seq, reason: v.reason };
  if (values.json) process.stdout.write(JSON.stringify({ receipt, verified }) + '\n');
  else
    process.stdout.write(
      `${renderReceipt(receipt)}\n  verified     ${v.ok ? 'yes' : `NO — ${v.code}${v.first_bad_seq !== null ? ` at seq ${v.first_bad_seq}` : ''}: ${v.reason}`}\n`,
    );
  return v.ok ? EXIT.OK : EXIT.FAILED;
}
