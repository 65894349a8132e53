import { NanoVmError, type VerifyResult } from '@nano-vm/kernel';
import { readBundleChecked } from '../bundleFile.js';
import { EXIT } from '../exitCodes.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const VERIFY = defineCommand({
  name: 'verify',
  summary:
    "Recomputes a bundle's hash chain, genesis commitments and receipt: exit 0 when it verifies, 1 with the first bad event and why.",
  args: '<bundle.json>',
  options: {
    json: {
      type: 'boolean',
      default: false,
      description: 'one object: {valid, event_count, head_hash} or {valid, code, first_bad_seq, reason}',
    },
  },
  run: verifyCommand,
});
export const VERIFY_USAGE = usageText(VERIFY);

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(VERIFY, argv);
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new NanoVmError('E_USAGE', VERIFY_USAGE);
  let r: VerifyResult;
  try {
    r = readBundleChecked(file).verified;
  } catch (e) {
    // A file that is not a bundle at all is a verification failure like any other, reported as one.
    if (!(e instanceof NanoVmError) || e.code !== 'E_BUNDLE_FORMAT') throw e;
    r = { ok: false, code: 'E_BUNDLE_FORMAT', first_bad_seq: null, reason: e.message };
  }
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
