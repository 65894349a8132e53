/**
 * Reading a bundle file, the same way in every command (verify, receipt, replay, analyze): a file
 * that cannot be read is E_FILE (exit 2); a file that is not a bundle — not JSON (a truncated
 * download), or not a nano-vm.bundle/v1 object with its six members — is E_BUNDLE_FORMAT, the code
 * `verify` reports for it, with that code's exit status (docs/errors.md).
 */
import {
  BUNDLE_FORMAT,
  JsonTextError,
  MAX_BUNDLE_BYTES,
  MAX_DOCUMENT_DEPTH,
  NanoVmError,
  parseJsonText,
  verifyBundle,
  type Bundle,
  type VerifyResult,
} from '@nano-vm/kernel';
import { nodeHasher } from '@nano-vm/runtime';
import { readText, type ReadLimits } from './inputs.js';

/** A bundle file's text: up to the bundle size limit, UTF-8 (docs/limits.md). */
export const BUNDLE_TEXT: ReadLimits = { maxBytes: MAX_BUNDLE_BYTES, notUtf8: 'E_BUNDLE_FORMAT' };

/** Where a bundle (of any version) names its format; a program or an input never has this text. */
const BUNDLE_FORMAT_MEMBER = /"format"\s*:\s*"nano-vm\.bundle\//;

/** Whether `text` is meant as a bundle: it names the bundle format (even if it is cut short). */
export function isBundleText(text: string): boolean {
  return BUNDLE_FORMAT_MEMBER.test(text);
}

/** The file's bundle, checked for the format only (not the chain): E_FILE or E_BUNDLE_FORMAT otherwise. */
export function readBundleFile(file: string, text: string = readText(file, 'bundle', BUNDLE_TEXT)): Bundle {
  let doc: unknown;
  try {
    // Strict: a member name given twice (two `outcome`s a lenient reader would pick between) is
    // refused, and so is nesting past the document limit (docs/limits.md).
    doc = parseJsonText(text, { maxDepth: MAX_DOCUMENT_DEPTH });
  } catch (e) {
    if (!(e instanceof JsonTextError)) throw e;
    if (e.code !== 'E_JSON')
      throw new NanoVmError(e.code, `bundle ${file}: ${e.message} (docs/limits.md)`, { location: { file } });
    throw new NanoVmError('E_BUNDLE_FORMAT', `${file} is not a bundle: not valid JSON (${e.message})`, {
      location: { file },
    });
  }
  const v = verifyBundle(doc, nodeHasher);
  if (!v.ok && v.code === 'E_BUNDLE_FORMAT')
    throw new NanoVmError('E_BUNDLE_FORMAT', `${file} is not a ${BUNDLE_FORMAT} bundle: ${v.reason}`, {
      location: { file },
    });
  return doc as Bundle;
}

/** The file's bundle and its verification. */
export function readBundleChecked(file: string, text?: string): { bundle: Bundle; verified: VerifyResult } {
  const bundle = readBundleFile(file, text);
  return { bundle, verified: verifyBundle(bundle, nodeHasher) };
}

/**
 * The file's bundle, which must verify: a command that trusts its recorded answers or metrics
 * (replay, analyze) refuses one that does not, with its verify code.
 */
export function readVerifiedBundle(file: string, text?: string): Bundle {
  const { bundle, verified: v } = readBundleChecked(file, text);
  if (!v.ok)
    throw new NanoVmError(
      v.code,
      `${file} does not verify${v.first_bad_seq !== null ? ` (event seq ${v.first_bad_seq})` : ''}: ${v.reason}`,
      { location: { file, ...(v.first_bad_seq !== null ? { seq: v.first_bad_seq } : {}) } },
    );
  return bundle;
}
