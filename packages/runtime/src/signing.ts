/**
 * Signing bundles (docs/trace-format.md §10): the host half of signed receipts. Key generation
 * needs randomness and signing needs the private key, so both live here; verification is the
 * kernel's pure `verifySignedBundle`. Ed25519 via node:crypto (OpenSSL); the kernel verifies with
 * @noble/curves, and the tests hold the two to each other.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import {
  keyIdOf,
  NanoVmError,
  parsePrivateKeyPem,
  privateKeyPem,
  signingStatement,
  statementBytes,
  verifyBundle,
  SIGNATURE_ALGORITHM,
  SIGNATURE_FORMAT,
  type Hasher,
  type SignatureDocument,
} from '@nano-vm/kernel';
import { nodeHasher } from './nodeHasher.js';

export interface SigningKeyPair {
  /** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). */
  privatePem: string;
  /** SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`). */
  publicPem: string;
  key_id: string;
}

/** A fresh Ed25519 key pair. */
export function generateSigningKey(): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    key_id: keyIdOf(new Uint8Array(spki.subarray(spki.length - 32))),
  };
}

/** A private key read from its PEM text, ready to sign; throws E_KEY_INVALID when it is not one. */
export interface SigningKey {
  key_id: string;
  sign(message: Uint8Array): Uint8Array;
}

export function signingKeyFromPem(text: string, source = 'key'): SigningKey {
  // The kernel checks the encoding (an Ed25519 PKCS#8 key and nothing else); OpenSSL reads the
  // canonical re-encoding of the seed it found.
  const key = createPrivateKey(privateKeyPem(parsePrivateKeyPem(text, source)));
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return {
    key_id: keyIdOf(new Uint8Array(spki.subarray(spki.length - 32))),
    sign: (message) => new Uint8Array(sign(null, message, key)),
  };
}

/**
 * The detached signature of a bundle: Ed25519 over JCS of its statement (run id, genesis hashes,
 * head hash, receipt hash, key id). A bundle that does not verify is not signed (its code).
 */
export function signBundle(
  bundle: { events: readonly { hash: string }[]; receipt: unknown },
  key: SigningKey,
  hasher: Hasher = nodeHasher,
): SignatureDocument {
  const v = verifyBundle(bundle, hasher);
  if (!v.ok) throw new NanoVmError(v.code, `will not sign a bundle that does not verify: ${v.reason}`);
  const statement = signingStatement(bundle, key.key_id, hasher);
  return {
    format: SIGNATURE_FORMAT,
    algorithm: SIGNATURE_ALGORITHM,
    statement,
    signature: Buffer.from(key.sign(statementBytes(statement))).toString('hex'),
  };
}

/** The `.sig` file's text: two-space indented JSON and a newline, like a bundle. */
export function serializeSignature(doc: SignatureDocument): string {
  return JSON.stringify(doc, null, 2) + '\n';
}
