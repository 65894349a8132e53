/**
 * Signed receipts (docs/trace-format.md §10): an Ed25519 signature over a canonical statement
 * of what a bundle commits to, kept in a detached `<bundle>.sig` document so that the frozen
 * `nano-vm.bundle/v1` format is unchanged. The chain proves a bundle is internally consistent;
 * only a signature by a key the reader trusts proves who produced it.
 *
 * Pure: verification and key decoding need no I/O. Signing needs the private key and lives in the
 * host (runtime `signBundle`).
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { canonicalJson } from './canonicalJson.js';
import { NanoVmError } from './errors.js';
import { hashJson, type Hasher } from './hash.js';
import { verifyBundle, type VerifyCode } from './verifyBundle.js';

export const SIGNATURE_FORMAT = 'nano-vm.signature/v1';
export const STATEMENT_FORMAT = 'nano-vm.statement/v1';
export const SIGNATURE_ALGORITHM = 'Ed25519';

/** What a signature signs: `JCS(statement)` as UTF-8 bytes. */
export interface SignedStatement {
  format: typeof STATEMENT_FORMAT;
  run_id: string;
  program_hash: string;
  policy_hash: string;
  input_hash: string;
  head_hash: string;
  /** SHA256(JCS(receipt)). */
  receipt_hash: string;
  key_id: string;
}

/** The detached `<bundle>.sig` document. */
export interface SignatureDocument {
  format: typeof SIGNATURE_FORMAT;
  algorithm: typeof SIGNATURE_ALGORITHM;
  statement: SignedStatement;
  /** 64 signature bytes, 128 lowercase hex digits. */
  signature: string;
}

/** A public key the reader trusts. `source` names where it came from (a file), for messages. */
export interface TrustedKey {
  key_id: string;
  public_key: Uint8Array;
  source?: string;
}

export type SignatureCode =
  'E_SIGNATURE_MISSING' | 'E_SIGNATURE_INVALID' | 'E_SIGNATURE_UNTRUSTED' | 'E_SIGNATURE_MISMATCH';

export type SignedVerifyResult =
  | { ok: true; event_count: number; head_hash: string; key_id: string }
  | { ok: false; code: VerifyCode | SignatureCode; first_bad_seq: number | null; reason: string; key_id?: string };

/** The statement fields that come from the bundle, in the order a mismatch is reported. */
const BUNDLE_FIELDS = ['run_id', 'program_hash', 'policy_hash', 'input_hash', 'head_hash', 'receipt_hash'] as const;
const STATEMENT_KEYS = ['format', ...BUNDLE_FIELDS, 'key_id'];
const SIGNATURE_KEYS = ['format', 'algorithm', 'statement', 'signature'];
const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
const KEY_ID = /^ed25519:[0-9a-f]{64}$/;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `ed25519:` + SHA-256 (hex) of the 32 raw public key bytes. */
export function keyIdOf(publicKey: Uint8Array): string {
  return `ed25519:${bytesToHex(sha256(publicKey))}`;
}

/**
 * The statement a signature over `bundle` makes. The bundle must have passed verifyBundle: the
 * genesis hashes are then those of its program, policy and input.
 */
export function signingStatement(
  bundle: { events: readonly { hash: string }[]; receipt: unknown },
  keyId: string,
  hasher: Hasher,
): SignedStatement {
  const g = bundle.events[0] as unknown as Record<string, string>;
  return {
    format: STATEMENT_FORMAT,
    run_id: g.run_id!,
    program_hash: g.program_hash!,
    policy_hash: g.policy_hash!,
    input_hash: g.input_hash!,
    head_hash: bundle.events[bundle.events.length - 1]!.hash,
    receipt_hash: hashJson(hasher, bundle.receipt),
    key_id: keyId,
  };
}

/** The bytes an Ed25519 signature covers. */
export function statementBytes(statement: SignedStatement): Uint8Array {
  return utf8ToBytes(canonicalJson(statement));
}

/** The signature document's shape, or why it is not one. */
export function readSignature(
  doc: unknown,
): { ok: true; signature: SignatureDocument } | { ok: false; reason: string } {
  const no = (reason: string) => ({ ok: false as const, reason });
  if (!isObj(doc)) return no('a signature must be a JSON object');
  if (doc.format !== SIGNATURE_FORMAT)
    return no(`format must be "${SIGNATURE_FORMAT}", got ${JSON.stringify(doc.format)}`);
  for (const k of Object.keys(doc)) if (!SIGNATURE_KEYS.includes(k)) return no(`unknown member "${k}"`);
  if (doc.algorithm !== SIGNATURE_ALGORITHM)
    return no(`algorithm must be "${SIGNATURE_ALGORITHM}", got ${JSON.stringify(doc.algorithm)}`);
  if (typeof doc.signature !== 'string' || !HEX128.test(doc.signature))
    return no('signature must be 128 lowercase hex digits (64 bytes)');
  const s = doc.statement;
  if (!isObj(s)) return no('statement must be an object');
  for (const k of STATEMENT_KEYS) if (typeof s[k] !== 'string') return no(`statement.${k} must be a string`);
  for (const k of Object.keys(s)) if (!STATEMENT_KEYS.includes(k)) return no(`unknown member "statement.${k}"`);
  if (s.format !== STATEMENT_FORMAT)
    return no(`statement.format must be "${STATEMENT_FORMAT}", got ${JSON.stringify(s.format)}`);
  if (!KEY_ID.test(s.key_id as string)) return no('statement.key_id must be "ed25519:" and 64 lowercase hex digits');
  for (const k of BUNDLE_FIELDS.slice(1))
    if (!HEX64.test(s[k] as string)) return no(`statement.${k} must be 64 lowercase hex digits`);
  return { ok: true, signature: doc as unknown as SignatureDocument };
}

/**
 * verifyBundle, then the signature against the trusted keys. `signature` is the parsed `.sig`
 * document, or undefined when there is none. Checks, in order: the chain (verifyBundle's codes);
 * a signature exists (E_SIGNATURE_MISSING) and is a signature document (E_SIGNATURE_INVALID); its
 * key is one of `trusted` (E_SIGNATURE_UNTRUSTED); the Ed25519 signature over JCS(statement)
 * holds under that key (E_SIGNATURE_INVALID); the statement is this bundle's
 * (E_SIGNATURE_MISMATCH, naming the first field that differs).
 */
export function verifySignedBundle(
  bundle: unknown,
  signature: unknown,
  trusted: readonly TrustedKey[],
  hasher: Hasher,
): SignedVerifyResult {
  const chain = verifyBundle(bundle, hasher);
  if (!chain.ok) return chain;
  const bad = (code: SignatureCode, reason: string, key_id?: string): SignedVerifyResult => ({
    ok: false,
    code,
    first_bad_seq: null,
    reason,
    ...(key_id !== undefined ? { key_id } : {}),
  });
  if (signature === undefined) return bad('E_SIGNATURE_MISSING', 'the bundle is not signed (no signature)');
  const read = readSignature(signature);
  if (!read.ok) return bad('E_SIGNATURE_INVALID', `not a ${SIGNATURE_FORMAT} document: ${read.reason}`);
  const { statement } = read.signature;
  const keyId = statement.key_id;
  const key = trusted.find((k) => k.key_id === keyId);
  if (!key)
    return bad(
      'E_SIGNATURE_UNTRUSTED',
      `signed by key ${keyId}, which is not a trusted key (trusted: ${trusted.map((k) => k.key_id).join(', ') || 'none'})`,
      keyId,
    );
  let valid: boolean;
  try {
    valid = ed25519.verify(hexToBytes(read.signature.signature), statementBytes(statement), key.public_key, {
      zip215: false,
    });
  } catch {
    valid = false;
  }
  if (!valid)
    return bad(
      'E_SIGNATURE_INVALID',
      `the signature does not verify under key ${keyId}${key.source ? ` (${key.source})` : ''}: the signature or the signed statement was altered`,
      keyId,
    );
  const b = bundle as { events: { hash: string }[]; receipt: unknown };
  const expected = signingStatement(b, keyId, hasher);
  for (const f of BUNDLE_FIELDS)
    if (expected[f] !== statement[f])
      return bad(
        'E_SIGNATURE_MISMATCH',
        `key ${keyId} signed ${f} ${statement[f]}, but this bundle's ${f} is ${expected[f]}: this is not the bundle that was signed`,
        keyId,
      );
  return { ok: true, event_count: chain.event_count, head_hash: chain.head_hash, key_id: keyId };
}

// --- Key files: PEM (RFC 7468) of the standard DER encodings (RFC 8410), as openssl writes them ---

/** SubjectPublicKeyInfo of an Ed25519 key, up to the 32 key bytes. */
const SPKI_PREFIX = hexToBytes('302a300506032b6570032100');
/** PKCS#8 PrivateKeyInfo v1 of an Ed25519 key, up to the 32 seed bytes. */
const PKCS8_PREFIX = hexToBytes('302e020100300506032b657004220420');

/** Raw Ed25519 public key bytes from a `PUBLIC KEY` PEM, with its key id; throws E_KEY_INVALID. */
export function parsePublicKeyPem(text: string, source = 'key'): TrustedKey {
  const der = pemBody(text, 'PUBLIC KEY', source);
  const raw = afterPrefix(der, SPKI_PREFIX, 32);
  if (!raw) throw keyError(source, 'is not an Ed25519 public key (SubjectPublicKeyInfo, RFC 8410)');
  return { key_id: keyIdOf(raw), public_key: raw, source };
}

/** The 32-byte Ed25519 seed from a `PRIVATE KEY` PEM (PKCS#8 v1); throws E_KEY_INVALID. */
export function parsePrivateKeyPem(text: string, source = 'key'): Uint8Array {
  const der = pemBody(text, 'PRIVATE KEY', source);
  const seed = afterPrefix(der, PKCS8_PREFIX, 32);
  if (!seed) throw keyError(source, 'is not an Ed25519 private key (PKCS#8, RFC 8410)');
  return seed;
}

/** PEM text of a raw Ed25519 public key. */
export function publicKeyPem(raw: Uint8Array): string {
  return pem('PUBLIC KEY', new Uint8Array([...SPKI_PREFIX, ...raw]));
}

/** PEM text of a raw Ed25519 seed (PKCS#8 v1). */
export function privateKeyPem(seed: Uint8Array): string {
  return pem('PRIVATE KEY', new Uint8Array([...PKCS8_PREFIX, ...seed]));
}

const keyError = (source: string, what: string): NanoVmError => new NanoVmError('E_KEY_INVALID', `${source} ${what}`);

function afterPrefix(der: Uint8Array, prefix: Uint8Array, n: number): Uint8Array | null {
  if (der.length !== prefix.length + n) return null;
  for (let i = 0; i < prefix.length; i++) if (der[i] !== prefix[i]) return null;
  return der.slice(prefix.length);
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;

function pemBody(text: string, label: string, source: string): Uint8Array {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  if (blocks.length === 0)
    throw keyError(source, `is not a PEM key file (no "-----BEGIN ${label}-----" line; docs/trace-format.md §10)`);
  if (blocks.length > 1) throw keyError(source, `holds ${blocks.length} PEM blocks; a key file holds one`);
  const [, begin, body, end] = blocks[0]!;
  if (begin !== end) throw keyError(source, `has BEGIN ${begin} but END ${end}`);
  if (begin !== label) {
    const hint =
      begin === 'PRIVATE KEY'
        ? ': this is a private key; give its public key (.pub)'
        : begin === 'PUBLIC KEY'
          ? ': this is a public key; signing needs the private key (.key)'
          : begin === 'ENCRYPTED PRIVATE KEY'
            ? ': encrypted keys are not read; decrypt it (openssl pkey -in <file>)'
            : '';
    throw keyError(source, `is a ${begin} PEM, not a ${label}${hint}`);
  }
  const bytes = base64Decode(body!.replace(/\s+/g, ''));
  if (!bytes) throw keyError(source, `has a ${label} block that is not valid base64`);
  return bytes;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function pem(label: string, der: Uint8Array): string {
  const b64 = base64Encode(der);
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function base64Encode(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]!;
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63]! : '=';
    out += i + 2 < bytes.length ? B64[n & 63]! : '=';
  }
  return out;
}

/** Strict base64 (standard alphabet, padded); null when the text is not its canonical encoding. */
function base64Decode(s: string): Uint8Array | null {
  if (s.length === 0 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = s[i + j]!;
      n = (n << 6) | (c === '=' ? 0 : B64.indexOf(c));
    }
    if (o < out.length) out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return base64Encode(out) === s ? out : null;
}
