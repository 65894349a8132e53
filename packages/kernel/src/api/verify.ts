/**
 * `@nano-vm/kernel/verify`: what an offline verifier needs and nothing else — check a bundle's
 * hash chain and receipt, its signature against trusted keys, and re-serialize it byte for byte.
 * Pure: it runs in a browser (the simulator's UI verifies with it).
 */
export { verifyBundle, type VerifyCode, type VerifyResult } from '../verifyBundle.js';
export { serializeBundle, type Bundle } from '../bundle.js';
export { computeReceipt, ReceiptError, type Receipt } from '../receipt.js';
export { hashJson, pureHasher, ZERO_HASH, type Hasher } from '../hash.js';
export { eventHash } from '../chain.js';
export { canonicalJson } from '../canonicalJson.js';
export { BUNDLE_FORMAT, RECEIPT_FORMAT, TRACE_FORMAT, type TraceEvent } from '../events.js';
export {
  keyIdOf,
  parsePublicKeyPem,
  readSignature,
  signingStatement,
  statementBytes,
  verifySignedBundle,
  SIGNATURE_ALGORITHM,
  SIGNATURE_FORMAT,
  STATEMENT_FORMAT,
  type SignatureCode,
  type SignatureDocument,
  type SignedStatement,
  type SignedVerifyResult,
  type TrustedKey,
} from '../signature.js';
