import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { canonicalJson } from './canonicalJson.js';

/**
 * SHA-256 over the UTF-8 bytes of a string, hex encoded. Injected so that Node hosts can use
 * node:crypto while the kernel stays pure and runs in a browser (the default is a pure-JS SHA-256).
 */
export interface Hasher {
  sha256Hex(text: string): string;
}

export const pureHasher: Hasher = {
  sha256Hex: (text) => bytesToHex(sha256(utf8ToBytes(text))),
};

/** Hash of a JSON value: SHA-256 of its RFC 8785 canonical form. */
export function hashJson(hasher: Hasher, value: unknown): string {
  return hasher.sha256Hex(canonicalJson(value));
}

export const ZERO_HASH = '0'.repeat(64);
