/**
 * Signed receipts (docs/trace-format.md §10): the statement, its Ed25519 signature, and what
 * verifySignedBundle refuses. Keys here are fixed seeds (Ed25519 signing is deterministic).
 */
import { createHash, createPublicKey, generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  hashJson,
  keyIdOf,
  NanoVmError,
  parsePrivateKeyPem,
  parsePublicKeyPem,
  privateKeyPem,
  publicKeyPem,
  pureHasher,
  signingStatement,
  statementBytes,
  verifyBundle,
  verifySignedBundle,
  type Bundle,
  type SignatureDocument,
  type SignedStatement,
  type TrustedKey,
} from '../src/internal.js';
import { jcs, rechain, sha } from '../../../test/support/independent.js';

const GOLDEN = new URL('../../../test/fixtures/golden/2026-12-02/', import.meta.url).pathname;
const golden = (name: string): Bundle => JSON.parse(readFileSync(`${GOLDEN}${name}.bundle.json`, 'utf8')) as Bundle;
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

const seed = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const trustedOf = (s: Uint8Array): TrustedKey => {
  const public_key = ed25519.getPublicKey(s);
  return { key_id: keyIdOf(public_key), public_key };
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** What the runtime's signBundle does, with the kernel's pure pieces and noble's signer. */
function signedBy(s: Uint8Array, bundle: Bundle, edit?: (st: SignedStatement) => void): SignatureDocument {
  const statement = signingStatement(bundle, trustedOf(s).key_id, pureHasher);
  edit?.(statement);
  return {
    format: 'nano-vm.signature/v1',
    algorithm: 'Ed25519',
    statement,
    signature: hex(ed25519.sign(statementBytes(statement), s)),
  };
}

/**
 * The attack the chain cannot see: swap the policy (or the input), then recompute every hash the
 * way an attacker with the kernel would (genesis commitments, every policy_hash, the chain, the
 * receipt).
 */

const A = seed(1);
const B = seed(2);
const kyc = golden('kyc.clean');

describe('signed receipts (kernel)', () => {
  it('a bundle signed by a trusted key verifies, with its key id', () => {
    const r = verifySignedBundle(kyc, signedBy(A, kyc), [trustedOf(B), trustedOf(A)], pureHasher);
    expect(r).toEqual({
      ok: true,
      event_count: kyc.events.length,
      head_hash: kyc.receipt.head_hash,
      key_id: trustedOf(A).key_id,
    });
  });

  it('the statement commits to run id, genesis hashes, head hash, receipt hash and key id', () => {
    const st = signingStatement(kyc, 'ed25519:' + 'a'.repeat(64), pureHasher);
    expect(st).toEqual({
      format: 'nano-vm.statement/v1',
      run_id: kyc.receipt.run_id,
      program_hash: kyc.receipt.program_hash,
      policy_hash: kyc.receipt.policy_hash,
      input_hash: kyc.receipt.input_hash,
      head_hash: kyc.receipt.head_hash,
      receipt_hash: hashJson(pureHasher, kyc.receipt),
      key_id: 'ed25519:' + 'a'.repeat(64),
    });
    // The signed bytes are the statement's JCS text.
    expect(Buffer.from(statementBytes(st)).toString('utf8')).toMatch(
      /^\{"format":"nano-vm.statement\/v1","head_hash":/,
    );
  });

  it('no signature, a signature by an untrusted key, and no trusted key at all each fail with their code', () => {
    expect(verifySignedBundle(kyc, undefined, [trustedOf(A)], pureHasher)).toMatchObject({
      ok: false,
      code: 'E_SIGNATURE_MISSING',
    });
    expect(verifySignedBundle(kyc, signedBy(B, kyc), [trustedOf(A)], pureHasher)).toMatchObject({
      ok: false,
      code: 'E_SIGNATURE_UNTRUSTED',
      key_id: trustedOf(B).key_id,
    });
    expect(verifySignedBundle(kyc, signedBy(A, kyc), [], pureHasher)).toMatchObject({
      code: 'E_SIGNATURE_UNTRUSTED',
    });
  });

  it('a bundle that does not verify fails with the chain code first, signed or not', () => {
    const bad = clone(kyc);
    (bad.events[3] as unknown as Record<string, unknown>).step = 'x';
    expect(verifySignedBundle(bad, signedBy(A, kyc), [trustedOf(A)], pureHasher)).toMatchObject({
      code: 'E_CHAIN_HASH',
      first_bad_seq: 3,
    });
  });

  it('tampering with any member of the signed statement, or the signature bytes, fails: never ok', () => {
    const good = signedBy(A, kyc);
    const fields = ['format', 'run_id', 'program_hash', 'policy_hash', 'input_hash', 'head_hash', 'receipt_hash'];
    for (const f of fields) {
      const sig = clone(good);
      const v = (sig.statement as unknown as Record<string, string>)[f]!;
      (sig.statement as unknown as Record<string, string>)[f] = v.slice(0, -1) + (v.endsWith('0') ? '1' : '0');
      const r = verifySignedBundle(kyc, sig, [trustedOf(A)], pureHasher);
      // A changed format is no longer a statement; any other change breaks the signature.
      expect([f, r.ok ? 'ok' : r.code]).toEqual([f, 'E_SIGNATURE_INVALID']);
    }
    // The key id names another trusted key: the signature does not hold under it.
    const other = clone(good);
    other.statement.key_id = trustedOf(B).key_id;
    expect(verifySignedBundle(kyc, other, [trustedOf(A), trustedOf(B)], pureHasher)).toMatchObject({
      code: 'E_SIGNATURE_INVALID',
    });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 127 }), fc.integer({ min: 1, max: 15 }), (i, x) => {
        const sig = clone(good);
        const d = (parseInt(sig.signature[i]!, 16) ^ x).toString(16);
        sig.signature = sig.signature.slice(0, i) + d + sig.signature.slice(i + 1);
        const r = verifySignedBundle(kyc, sig, [trustedOf(A)], pureHasher);
        return !r.ok && r.code === 'E_SIGNATURE_INVALID';
      }),
      { numRuns: 60 },
    );
  });

  it("a trusted key's genuine signature over another bundle's statement fails as a mismatch naming the field", () => {
    for (const f of ['run_id', 'program_hash', 'policy_hash', 'input_hash', 'head_hash', 'receipt_hash'] as const) {
      const sig = signedBy(A, kyc, (st) => {
        st[f] = f === 'run_id' ? 'run-other' : 'f'.repeat(64);
      });
      const r = verifySignedBundle(kyc, sig, [trustedOf(A)], pureHasher);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe('E_SIGNATURE_MISMATCH');
        expect(r.reason).toContain(`signed ${f} `);
      }
    }
  });

  it('a re-chained bundle (policy or input swapped, every hash recomputed) verifies unsigned, but not against its signature', () => {
    const sig = signedBy(A, kyc);
    const attacks: [string, (b: Bundle) => void][] = [
      [
        'policy: the deny rule removed',
        (b) => {
          (b.policy as { deny: unknown[] }).deny = [];
        },
      ],
      ['policy: none at all', (b) => (b.policy = null)],
      [
        'input: another country',
        (b) => {
          (b.input as { applicant: { country: string } }).applicant.country = 'XX';
        },
      ],
    ];
    for (const [what, edit] of attacks) {
      const forged = rechain(kyc, edit);
      // The chain alone cannot tell (docs/trace-format.md §6): it is consistent.
      expect([what, verifyBundle(forged, pureHasher).ok]).toEqual([what, true]);
      const r = verifySignedBundle(forged, sig, [trustedOf(A)], pureHasher);
      expect([what, r.ok ? 'ok' : r.code]).toEqual([what, 'E_SIGNATURE_MISMATCH']);
      // Editing the signed statement to match the forgery breaks the signature instead.
      const edited = clone(sig);
      edited.statement = signingStatement(forged, sig.statement.key_id, pureHasher);
      const r2 = verifySignedBundle(forged, edited, [trustedOf(A)], pureHasher);
      expect([what, r2.ok ? 'ok' : r2.code]).toEqual([what, 'E_SIGNATURE_INVALID']);
      // Only the private key makes a forgery pass.
      expect(verifySignedBundle(forged, signedBy(A, forged), [trustedOf(A)], pureHasher).ok).toBe(true);
    }
  });

  it('a document that is not a signature is invalid, with the reason', () => {
    const good = signedBy(A, kyc);
    const cases: [unknown, RegExp][] = [
      ['not json', /JSON object/],
      [{ ...good, format: 'nano-vm.signature/v2' }, /format must be/],
      [{ ...good, algorithm: 'RSA' }, /algorithm must be "Ed25519"/],
      [{ ...good, extra: 1 }, /unknown member "extra"/],
      [{ ...good, signature: good.signature.toUpperCase() }, /128 lowercase hex/],
      [{ ...good, statement: { ...good.statement, head_hash: 1 } }, /statement.head_hash must be a string/],
      [{ ...good, statement: { ...good.statement, more: 'x' } }, /unknown member "statement.more"/],
      [{ ...good, statement: { ...good.statement, key_id: 'k1' } }, /key_id must be/],
    ];
    for (const [doc, reason] of cases) {
      const r = verifySignedBundle(kyc, doc, [trustedOf(A)], pureHasher);
      expect(r).toMatchObject({ ok: false, code: 'E_SIGNATURE_INVALID' });
      if (!r.ok) expect(r.reason).toMatch(reason);
    }
  });
});

describe('docs/trace-format.md §10, implemented independently', () => {
  // From the document alone: node:crypto's Ed25519, SHA-256 and a JCS of the tests' own (test/support).

  it('a signature the kernel accepts verifies there, and its statement is the bundle recomputed by the document', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32);
    const keyId = `ed25519:${sha(raw)}`;
    const statement = {
      format: 'nano-vm.statement/v1',
      run_id: kyc.events[0]!.type === 'run_started' ? kyc.events[0]!.run_id : '',
      program_hash: sha(jcs(kyc.program)),
      policy_hash: sha(jcs(kyc.policy)),
      input_hash: sha(jcs(kyc.input)),
      head_hash: kyc.events[kyc.events.length - 1]!.hash,
      receipt_hash: sha(jcs(kyc.receipt)),
      key_id: keyId,
    };
    const doc = {
      format: 'nano-vm.signature/v1',
      algorithm: 'Ed25519',
      statement,
      signature: nodeSign(null, Buffer.from(jcs(statement), 'utf8'), privateKey).toString('hex'),
    };
    const trusted = parsePublicKeyPem(pem);
    expect(trusted.key_id).toBe(keyId);
    expect(verifySignedBundle(kyc, doc, [trusted], pureHasher)).toMatchObject({ ok: true });
    expect(signingStatement(kyc, keyId, pureHasher)).toEqual(statement);
    // And the other way: what the kernel checks, the independent verifier checks too.
    expect(
      nodeVerify(
        null,
        Buffer.from(jcs(doc.statement), 'utf8'),
        createPublicKey(pem),
        Buffer.from(doc.signature, 'hex'),
      ),
    ).toBe(true);
  });
});

describe('key files', () => {
  it('round-trip through PEM, and read the keys node:crypto (OpenSSL) writes; its signatures verify here', () => {
    const pub = ed25519.getPublicKey(A);
    expect(parsePublicKeyPem(publicKeyPem(pub)).public_key).toEqual(pub);
    expect(parsePrivateKeyPem(privateKeyPem(A))).toEqual(A);

    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const privPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const trusted = parsePublicKeyPem(pubPem, 'k.pub');
    expect(ed25519.getPublicKey(parsePrivateKeyPem(privPem))).toEqual(trusted.public_key);
    // Our PEM writer writes what OpenSSL writes.
    expect(publicKeyPem(trusted.public_key)).toBe(pubPem);
    expect(privateKeyPem(parsePrivateKeyPem(privPem))).toBe(privPem);

    const statement = signingStatement(kyc, trusted.key_id, pureHasher);
    const doc: SignatureDocument = {
      format: 'nano-vm.signature/v1',
      algorithm: 'Ed25519',
      statement,
      signature: nodeSign(null, statementBytes(statement), privateKey).toString('hex'),
    };
    expect(verifySignedBundle(kyc, doc, [trusted], pureHasher)).toMatchObject({ ok: true, key_id: trusted.key_id });
  });

  it('the key id is ed25519: and the SHA-256 of the 32 raw public key bytes', () => {
    const pub = ed25519.getPublicKey(A);
    // Independent of the kernel: node:crypto's SHA-256 of the raw bytes.
    expect(keyIdOf(pub)).toBe(`ed25519:${createHash('sha256').update(pub).digest('hex')}`);
  });

  it('refuses what is not an Ed25519 key of the right kind with E_KEY_INVALID and why', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pubPem = publicKeyPem(ed25519.getPublicKey(A));
    const cases: [() => unknown, RegExp][] = [
      [() => parsePublicKeyPem('hello'), /not a PEM key file/],
      [() => parsePublicKeyPem(privateKeyPem(A)), /this is a private key; give its public key/],
      [() => parsePrivateKeyPem(pubPem), /this is a public key; signing needs the private key/],
      [() => parsePublicKeyPem(pubPem + pubPem), /holds 2 PEM blocks/],
      [() => parsePublicKeyPem(pubPem.replace('MCow', 'MC*w')), /not valid base64/],
      [() => parsePublicKeyPem(pubPem.replace('END PUBLIC', 'END PRIVATE')), /BEGIN PUBLIC KEY but END PRIVATE KEY/],
      [() => parsePublicKeyPem(rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()), /not an Ed25519/],
      [() => parsePublicKeyPem(ec.publicKey.export({ type: 'spki', format: 'pem' }).toString()), /not an Ed25519/],
      [() => parsePrivateKeyPem(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()), /not an Ed25519/],
      [
        () =>
          parsePrivateKeyPem(
            rsa.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }).toString(),
          ),
        /encrypted keys are not read/,
      ],
    ];
    for (const [f, why] of cases) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NanoVmError);
      expect((err as NanoVmError).code).toBe('E_KEY_INVALID');
      expect((err as Error).message).toMatch(why);
    }
  });
});
