/**
 * Signed receipts end to end with the real CLI (docs/trace-format.md §10): keygen, run --sign,
 * verify --key / --keys, and the attack the chain alone cannot catch — a bundle whose policy or
 * input was swapped and every hash recomputed.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { serializeBundle, type Bundle } from '@nano-vm/kernel';
import { rechain } from './support/independent.js';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
let dir: string;

function nanoVm(...args: string[]): {
  code: number;
  out: string;
  err: string;
  json: <T = Record<string, unknown>>() => T;
} {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NANO_VM_STORE: `sqlite:${join(dir, 'e2e.db')}` },
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: <T>() => JSON.parse(r.stdout) as T };
}

interface VerifyOutput {
  valid: boolean;
  code?: string;
  reason?: string;
  head_hash?: string;
  signature?: { file: string; key_id: string | null; checked: boolean };
}

/** What an attacker with the kernel does: edit, then recompute every commitment, the chain and the receipt. */

const errorCode = (r: { out: string }): string => (JSON.parse(r.out) as { error: { code: string } }).error.code;

let keyA: { key_id: string; private_key: string; public_key: string };
let bundle: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-sign-'));
  const k = nanoVm('keygen', '--out', join(dir, 'a'), '--json');
  expect(k.code).toBe(0);
  keyA = k.json();
  bundle = join(dir, 'kyc.clean.json');
  const r = nanoVm(
    'run',
    'examples/kyc',
    '--input',
    'examples/kyc/inputs/clean.json',
    '--deterministic',
    '--out',
    bundle,
    '--sign',
    keyA.private_key,
    '--json',
  );
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(r.json()).toMatchObject({ bundle, signature: `${bundle}.sig`, key_id: keyA.key_id });
});

describe('nano-vm keygen', () => {
  it('writes an Ed25519 key pair: private key mode 0600, key id = ed25519:SHA-256 of the public key', () => {
    expect(keyA.private_key).toBe(join(dir, 'a.key'));
    expect(keyA.public_key).toBe(join(dir, 'a.pub'));
    expect(statSync(keyA.private_key).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyA.private_key, 'utf8')).toMatch(
      /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/,
    );
    expect(readFileSync(keyA.public_key, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(keyA.key_id).toMatch(/^ed25519:[0-9a-f]{64}$/);
  });

  it('refuses to overwrite either key file, and leaves them as they were', () => {
    const before = readFileSync(keyA.private_key, 'utf8');
    const r = nanoVm('keygen', '--out', join(dir, 'a'), '--json');
    expect(r.code).toBe(2);
    expect(errorCode(r)).toBe('E_KEY_EXISTS');
    expect(readFileSync(keyA.private_key, 'utf8')).toBe(before);
    writeFileSync(join(dir, 'half.pub'), 'x');
    const half = nanoVm('keygen', '--out', join(dir, 'half'));
    expect(half.code).toBe(2);
    expect(half.err).toContain('E_KEY_EXISTS');
    expect(() => statSync(join(dir, 'half.key'))).toThrow();
  });

  it('into a directory, names the files by key id', () => {
    const d = join(dir, 'keys');
    mkdirSync(d);
    const r = nanoVm('keygen', '--out', d, '--json');
    expect(r.code).toBe(0);
    const k = r.json<{ key_id: string; public_key: string }>();
    expect(k.public_key).toBe(join(d, `nano-vm-${k.key_id.slice(8, 24)}.pub`));
  });
});

describe('run --sign, verify --key', () => {
  it('a signed bundle verifies against its key; without a key, verify says who signed it but not that it was checked', () => {
    const ok = nanoVm('verify', bundle, '--key', keyA.public_key, '--json');
    expect(ok.code).toBe(0);
    expect(ok.json<VerifyOutput>()).toMatchObject({
      valid: true,
      signature: { key_id: keyA.key_id, checked: true },
    });
    const plain = nanoVm('verify', bundle, '--json');
    expect(plain.code).toBe(0);
    expect(plain.json<VerifyOutput>().signature).toEqual({
      file: `${bundle}.sig`,
      key_id: keyA.key_id,
      checked: false,
    });
    expect(nanoVm('verify', bundle).out).toContain(
      `signed by key ${keyA.key_id} (${bundle}.sig): not checked against a trusted key`,
    );
  });

  it('a deterministic signed run writes the same signature bytes every time (Ed25519 is deterministic)', () => {
    const again = join(dir, 'again.json');
    const r = nanoVm(
      'run',
      'examples/kyc',
      '--input',
      'examples/kyc/inputs/clean.json',
      '--deterministic',
      '--out',
      again,
      '--sign',
      keyA.private_key,
    );
    expect(r.code).toBe(0);
    expect(r.out).toContain(`signed by ${keyA.key_id}`);
    expect(readFileSync(`${again}.sig`, 'utf8')).toBe(readFileSync(`${bundle}.sig`, 'utf8'));
  });

  it('the re-chain attack: verifies without a key (the chain is consistent), fails with --key', () => {
    const original = JSON.parse(readFileSync(bundle, 'utf8')) as Bundle;
    const attacks: [string, (b: Bundle) => void][] = [
      ['policy', (b) => void ((b.policy as { deny: unknown[] }).deny = [])],
      ['input', (b) => void ((b.input as { expected_monthly_volume_usd: number }).expected_monthly_volume_usd = 1)],
    ];
    for (const [what, edit] of attacks) {
      const forged = join(dir, `forged-${what}.json`);
      writeFileSync(forged, serializeBundle(rechain(original, edit)));
      copyFileSync(`${bundle}.sig`, `${forged}.sig`);
      const plain = nanoVm('verify', forged, '--json');
      expect([what, plain.code, plain.json<VerifyOutput>().valid]).toEqual([what, 0, true]);
      const keyed = nanoVm('verify', forged, '--key', keyA.public_key, '--json');
      expect([what, keyed.code, keyed.json<VerifyOutput>().code]).toEqual([what, 1, 'E_SIGNATURE_MISMATCH']);
      expect(keyed.json<VerifyOutput>().reason).toContain(`${what}_hash`);
    }
  });

  it('an unsigned bundle, an altered signature, a wrong key: each fails with its own code', () => {
    const unsigned = join(dir, 'unsigned.json');
    copyFileSync(bundle, unsigned);
    const missing = nanoVm('verify', unsigned, '--key', keyA.public_key, '--json');
    expect([missing.code, missing.json<VerifyOutput>().code]).toEqual([1, 'E_SIGNATURE_MISSING']);

    const altered = join(dir, 'altered.json');
    copyFileSync(bundle, altered);
    const sig = JSON.parse(readFileSync(`${bundle}.sig`, 'utf8')) as { signature: string };
    sig.signature = (sig.signature[0] === '0' ? '1' : '0') + sig.signature.slice(1);
    writeFileSync(`${altered}.sig`, JSON.stringify(sig));
    const invalid = nanoVm('verify', altered, '--key', keyA.public_key, '--json');
    expect([invalid.code, invalid.json<VerifyOutput>().code]).toEqual([1, 'E_SIGNATURE_INVALID']);
    writeFileSync(`${altered}.sig`, 'not json');
    expect(nanoVm('verify', altered, '--key', keyA.public_key, '--json').json<VerifyOutput>().code).toBe(
      'E_SIGNATURE_INVALID',
    );

    const other = nanoVm('keygen', '--out', join(dir, 'other'), '--json').json<{ public_key: string }>();
    const wrong = nanoVm('verify', bundle, '--key', other.public_key, '--json');
    expect([wrong.code, wrong.json<VerifyOutput>().code]).toEqual([1, 'E_SIGNATURE_UNTRUSTED']);

    // A trusted key directory: untrusted until A's public key is put in it.
    const trusted = join(dir, 'trusted');
    mkdirSync(trusted);
    copyFileSync(other.public_key, join(trusted, 'other.pub'));
    expect(nanoVm('verify', bundle, '--keys', trusted, '--json').json<VerifyOutput>().code).toBe(
      'E_SIGNATURE_UNTRUSTED',
    );
    copyFileSync(keyA.public_key, join(trusted, 'a.pub'));
    const rotated = nanoVm('verify', bundle, '--keys', trusted, '--json');
    expect([rotated.code, rotated.json<VerifyOutput>().valid]).toEqual([0, true]);
    // --sig names the signature file when it is not beside the bundle.
    expect(nanoVm('verify', unsigned, '--key', keyA.public_key, '--sig', `${bundle}.sig`).code).toBe(0);
  });

  it('key files that are not usable keys are refused with E_KEY_INVALID (exit 2) before anything runs', () => {
    const garbage = join(dir, 'garbage.pub');
    writeFileSync(garbage, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK user@host\n');
    const cases: [string[], string][] = [
      [['verify', bundle, '--key', garbage], 'E_KEY_INVALID'],
      [['verify', bundle, '--key', keyA.private_key], 'E_KEY_INVALID'],
      [['verify', bundle, '--key', join(dir, 'nosuch.pub')], 'E_FILE'],
      [['verify', bundle, '--keys', join(dir, 'nosuch')], 'E_FILE'],
      [['verify', bundle, '--sig', join(dir, 'nosuch.sig')], 'E_FILE'],
    ];
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    cases.push([['verify', bundle, '--keys', empty], 'E_KEY_INVALID']);
    const outFile = join(dir, 'refused.json');
    const run = [
      'run',
      'examples/kyc',
      '--input',
      'examples/kyc/inputs/clean.json',
      '--deterministic',
      '--out',
      outFile,
    ];
    cases.push([[...run, '--sign', keyA.public_key], 'E_KEY_INVALID']);
    cases.push([[...run, '--sign', garbage], 'E_KEY_INVALID']);
    const open = join(dir, 'open.key');
    copyFileSync(keyA.private_key, open);
    chmodSync(open, 0o644);
    cases.push([[...run, '--sign', open], 'E_KEY_INVALID']);
    cases.push([[...run.slice(0, -2), '--sign', keyA.private_key], 'E_USAGE']);
    for (const [args, code] of cases) {
      const r = nanoVm(...args, '--json');
      expect([args.join(' '), r.code, errorCode(r)]).toEqual([args.join(' '), 2, code]);
    }
    expect(() => statSync(outFile)).toThrow();
    expect(nanoVm(...run, '--sign', open).err).toContain('chmod 600');
  });
  it('a bundle changed after signing by erasure is re-signed by export --sign (and resume takes --sign too)', () => {
    const store = `sqlite:${join(dir, 'erase.db')}`;
    const first = join(dir, 'stored.json');
    const r = nanoVm(
      'run',
      'examples/kyc',
      '--input',
      'examples/kyc/inputs/clean.json',
      '--store',
      store,
      '--out',
      first,
      '--sign',
      keyA.private_key,
      '--json',
    );
    expect(r.code).toBe(0);
    const runId = r.json<{ run_id: string }>().run_id;
    // Erasure appends an event (here the policy's legal hold refuses it: erasure_refused): a new head.
    nanoVm('erase', '--subject', 'ingrid.larsen@example.com', '--store', store);
    const later = join(dir, 'later.json');
    const ex = nanoVm('export', runId, '-o', later, '--store', store, '--sign', keyA.private_key);
    expect(ex.code).toBe(0);
    expect(ex.err).toContain(`signed by ${keyA.key_id}: ${later}.sig`);
    expect(nanoVm('verify', later, '--key', keyA.public_key).code).toBe(0);
    // The first signature is about the head before erasure.
    copyFileSync(`${first}.sig`, `${later}.sig`);
    const stale = nanoVm('verify', later, '--key', keyA.public_key, '--json');
    expect([stale.code, stale.json<VerifyOutput>().code]).toEqual([1, 'E_SIGNATURE_MISMATCH']);
    expect(stale.json<VerifyOutput>().reason).toContain('head_hash');
    // export and resume refuse --sign without a file to sign, before touching the store.
    for (const args of [
      ['export', runId, '--store', store, '--sign', keyA.private_key, '--json'],
      ['resume', runId, 'examples/kyc', '--event', 'x.json', '--store', store, '--sign', keyA.private_key, '--json'],
    ]) {
      const refused = nanoVm(...args);
      expect([args[0], refused.code, errorCode(refused)]).toEqual([args[0], 2, 'E_USAGE']);
    }
  });
});
