import { computeReceipt, NanoVmError, type TraceEvent } from '@nano-vm/kernel';
import { readBundleChecked } from '../bundleFile.js';
import { EXIT } from '../exitCodes.js';
import { renderReceipt } from '../render.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const RECEIPT = defineCommand({
  name: 'receipt',
  summary:
    "Prints the receipt recomputed from a bundle's events and whether the bundle verifies (exit 1 when it does not).",
  args: '<bundle.json>',
  options: {
    json: { type: 'boolean', default: false, description: 'one object: {receipt, verified}' },
  },
  run: receiptCommand,
});
export const RECEIPT_USAGE = usageText(RECEIPT);

/** Prints the receipt recomputed from the bundle's events, and whether the bundle verifies. */
export async function receiptCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(RECEIPT, argv);
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new NanoVmError('E_USAGE', RECEIPT_USAGE);
  const { bundle, verified: v } = readBundleChecked(file);
  let receipt;
  try {
    receipt = computeReceipt(Array.isArray(bundle.events) ? (bundle.events as TraceEvent[]) : []);
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
