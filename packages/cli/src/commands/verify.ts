import { existsSync } from 'node:fs';
import { NanoVmError, parseJsonText, readSignature, verifyBundle, verifySignedBundle } from '@nano-vm/kernel';
import { nodeHasher } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { readBundleFile } from '../bundleFile.js';
import { readText } from '../inputs.js';
import { readTrustedKeys, signatureFile } from '../keys.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const VERIFY = defineCommand({
  name: 'verify',
  summary:
    "Recomputes a bundle's hash chain, genesis commitments and receipt: exit 0 when it verifies, 1 with the first bad event and why.",
  args: '<bundle.json>',
  options: {
    key: {
      type: 'string',
      multiple: true,
      value: '<public key file>',
      description:
        'a trusted public key (.pub from nano-vm keygen; PEM), repeatable: the bundle must then carry a valid signature by a trusted key',
    },
    keys: {
      type: 'string',
      multiple: true,
      value: '<dir>',
      description: 'every *.pub file in the directory is a trusted key (other files are ignored); repeatable',
    },
    sig: {
      type: 'string',
      value: '<file>',
      defaultText: '<bundle.json>.sig when it exists',
      description: 'the signature document',
    },
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
  // Trusted keys are read first: a bad key file refuses the command (E_KEY_INVALID, exit 2).
  const trusted = readTrustedKeys(values.key ?? [], values.keys ?? []);
  const checkSignature = values.key !== undefined || values.keys !== undefined;
  let bundle: unknown;
  try {
    bundle = readBundleFile(file);
  } catch (e) {
    // A file that is not a bundle at all (not JSON, not the format) is a verification failure like
    // any other, reported as one; the other bundle readers report the same code as their error.
    if (!(e instanceof NanoVmError) || e.code !== 'E_BUNDLE_FORMAT') throw e;
    report(values.json, { valid: false, code: 'E_BUNDLE_FORMAT', first_bad_seq: null, reason: e.message }, file);
    return EXIT.FAILED;
  }
  // The detached signature: --sig names it (it must exist), else <bundle>.sig when there is one.
  const sigFile = values.sig ?? signatureFile(file);
  const signature = values.sig !== undefined || existsSync(sigFile) ? readSignatureFile(sigFile) : undefined;

  if (checkSignature) {
    const r = verifySignedBundle(bundle, signature, trusted, nodeHasher);
    if (r.ok)
      report(
        values.json,
        {
          valid: true,
          event_count: r.event_count,
          head_hash: r.head_hash,
          signature: { file: sigFile, key_id: r.key_id, checked: true },
        },
        file,
      );
    else
      report(
        values.json,
        {
          valid: false,
          code: r.code,
          first_bad_seq: r.first_bad_seq,
          reason: r.code === 'E_SIGNATURE_MISSING' ? `${r.reason}: no ${sigFile}` : r.reason,
          ...(r.key_id !== undefined ? { key_id: r.key_id } : {}),
        },
        file,
      );
    return r.ok ? EXIT.OK : EXIT.FAILED;
  }

  const r = verifyBundle(bundle, nodeHasher);
  // Without a trusted key the signature is only reported: who signed, not whether to believe it.
  const info =
    signature === undefined
      ? {}
      : {
          signature: ((s) =>
            s.ok
              ? { file: sigFile, key_id: s.signature.statement.key_id, checked: false }
              : { file: sigFile, key_id: null, checked: false, unreadable: s.reason })(readSignature(signature)),
        };
  if (r.ok) report(values.json, { valid: true, event_count: r.event_count, head_hash: r.head_hash, ...info }, file);
  else
    report(
      values.json,
      { valid: false, code: r.code, first_bad_seq: r.first_bad_seq, reason: r.reason, ...info },
      file,
    );
  return r.ok ? EXIT.OK : EXIT.FAILED;
}

/** The signature document, or its text when it is not JSON (verification then reports it invalid). */
function readSignatureFile(sigFile: string): unknown {
  const text = readText(sigFile, 'signature');
  try {
    // Strict, as bundles are read: a member given twice makes it no signature document at all.
    return parseJsonText(text);
  } catch {
    return text;
  }
}

interface SignatureInfo {
  file: string;
  key_id: string | null;
  checked: boolean;
  unreadable?: string;
}

function report(json: boolean, o: Record<string, unknown>, file?: string): void {
  if (json) {
    process.stdout.write(JSON.stringify(o) + '\n');
    return;
  }
  const sig = o.signature as SignatureInfo | undefined;
  const sigLine = !sig
    ? ''
    : sig.checked
      ? `\n  signed by trusted key ${sig.key_id} (${sig.file})`
      : sig.key_id
        ? `\n  signed by key ${sig.key_id} (${sig.file}): not checked against a trusted key (pass --key or --keys)`
        : `\n  signature ${sig.file} is unreadable (${sig.unreadable}): not checked`;
  if (o.valid)
    process.stdout.write(
      `${file}: valid — ${o.event_count} events, chain and receipt recomputed, head ${o.head_hash}${sigLine}\n`,
    );
  else
    process.stdout.write(
      `${file ?? 'bundle'}: INVALID ${o.code}${o.first_bad_seq !== null ? ` at event seq ${o.first_bad_seq}` : ''}: ${o.reason}${sigLine}\n`,
    );
}
