/**
 * Key files for signed receipts (docs/trace-format.md §10): the private key `run --sign` reads,
 * the trusted public keys `verify --key` / `--keys` read, and where a bundle's signature lives.
 * Every failure is coded: E_FILE (cannot read), E_KEY_INVALID (not a usable key).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NanoVmError, parsePublicKeyPem, type TrustedKey } from '@nano-vm/kernel';
import { nodeHasher, serializeSignature, signBundle, signingKeyFromPem, type SigningKey } from '@nano-vm/runtime';
import { readText } from './inputs.js';
import { writeFileAtomic } from './outputFile.js';

/** A bundle's detached signature: `<bundle file>.sig`. */
export const signatureFile = (bundleFile: string): string => `${bundleFile}.sig`;

/**
 * The private key of `run --sign`. Like ssh, a key file that others can read is refused: whoever
 * can read it can sign bundles in your name.
 */
export function readSigningKey(file: string): SigningKey {
  const text = readText(file, 'private key');
  if (process.platform !== 'win32') {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077)
      throw new NanoVmError(
        'E_KEY_INVALID',
        `private key ${file} is readable by others (mode 0${mode.toString(8)}); make it private: chmod 600 ${file}`,
      );
  }
  return signingKeyFromPem(text, `private key ${file}`);
}

/**
 * The key of a command's `--sign` option, read before the command does anything (a key that
 * cannot sign refuses the command, not a finished run). The signature is written beside the
 * bundle, so `--sign` needs `--out`.
 */
export function signerOption(sign: string | undefined, out: string | undefined): SigningKey | undefined {
  if (sign === undefined) return undefined;
  if (!out)
    throw new NanoVmError('E_USAGE', '--sign needs --out: the signature is written beside the bundle, as <bundle>.sig');
  return readSigningKey(sign);
}

/** Signs the bundle just written to `bundleFile` and writes `<bundleFile>.sig`; returns its path. */
export function writeSignature(
  bundleFile: string,
  bundle: Parameters<typeof signBundle>[0],
  signer: SigningKey,
): string {
  const file = signatureFile(bundleFile);
  writeFileAtomic(file, serializeSignature(signBundle(bundle, signer, nodeHasher)));
  return file;
}

/** The trusted keys of `verify`: each `--key` file, and every `*.pub` file of each `--keys` directory. */
export function readTrustedKeys(files: readonly string[], dirs: readonly string[]): TrustedKey[] {
  const keys = files.map((f) => parsePublicKeyPem(readText(f, 'public key'), f));
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.pub'));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new NanoVmError(
        'E_FILE',
        `cannot read the trusted key directory ${dir}: ${code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : (e as Error).message}`,
      );
    }
    if (names.length === 0)
      throw new NanoVmError('E_KEY_INVALID', `the trusted key directory ${dir} holds no public key (*.pub)`);
    for (const n of names.sort()) {
      const f = join(dir, n);
      keys.push(parsePublicKeyPem(readText(f, 'public key'), f));
    }
  }
  return keys;
}
