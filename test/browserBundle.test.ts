/**
 * The kernel runs in browsers (the KYC simulator's UI verifies bundles with it): bundling it for
 * the browser platform must succeed with no Node built-in reachable — from our code or from any of
 * its dependencies — and the bundle must verify a real bundle when evaluated as a browser would.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;

describe('kernel in the browser', () => {
  it('bundles for platform=browser with no Node built-ins, and the bundle runs and verifies a program', async () => {
    const result = await build({
      entryPoints: [`${ROOT}packages/kernel/src/index.ts`],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
      metafile: true,
    });
    expect(result.errors).toEqual([]);
    const inputs = Object.keys(result.metafile!.inputs);
    expect(
      inputs.filter((p) => p.startsWith('node:') || /^(fs|path|crypto|os|net|http|vm|child_process)$/.test(p)),
    ).toEqual([]);
    const text = result.outputFiles![0]!.text;
    expect(text).not.toMatch(/\bfrom\s+["']node:|require\(["'](node:)?(fs|crypto|vm|net)["']\)/);

    // The browser bundle itself loads a program, runs it through the machine and verifies the result.
    const file = join(mkdtempSync(join(tmpdir(), 'nano-vm-browser-')), 'kernel.browser.mjs');
    writeFileSync(file, text);
    const k = await import(pathToFileURL(file).href);
    const { program } = k.loadProgram(readFileSync(`${ROOT}examples/refund/program.yaml`, 'utf8'));
    const input = { order_id: 'ord_1', amount: 20, reason: 'broken', customer: { email: 'e@x', tier: 'gold' } };
    const m = new k.Machine(program, input, {
      runId: 'r',
      hasher: k.pureHasher,
      clock: { now: () => 0 },
      runtimeVersion: 'browser',
      model: { id: 'm', scripted: true },
    });
    for (let c = m.next(); c.type !== 'done'; c = m.next())
      m.complete(
        c.type === 'llm' ? { ok: true, raw: 'approve' } : { ok: true, value: { refund_id: 'rf', status: 'issued' } },
      );
    const bundle = {
      format: 'nano-vm.bundle/v1',
      program,
      policy: null,
      input,
      events: m.events,
      receipt: k.computeReceipt(m.events),
    };
    expect(k.verifyBundle(JSON.parse(JSON.stringify(bundle)), k.pureHasher)).toMatchObject({ ok: true });
    expect(bundle.receipt.outcome).toBe('SUCCESS');

    // Signed receipts (docs/trace-format.md §10): a signature made by the host (node:crypto, as
    // `run --sign` does) verifies in the browser bundle against the PEM public key; a re-signed
    // statement by another key, or a changed receipt, does not.
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const trusted = k.parsePublicKeyPem(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'k.pub');
    const statement = k.signingStatement(bundle, trusted.key_id, k.pureHasher);
    const signature = {
      format: 'nano-vm.signature/v1',
      algorithm: 'Ed25519',
      statement,
      signature: sign(null, k.statementBytes(statement), privateKey).toString('hex'),
    };
    const doc = JSON.parse(JSON.stringify(signature));
    expect(k.verifySignedBundle(JSON.parse(JSON.stringify(bundle)), doc, [trusted], k.pureHasher)).toMatchObject({
      ok: true,
      key_id: trusted.key_id,
    });
    expect(k.verifySignedBundle(bundle, undefined, [trusted], k.pureHasher)).toMatchObject({
      code: 'E_SIGNATURE_MISSING',
    });
    const forged = { ...doc, statement: { ...doc.statement, head_hash: '0'.repeat(64) } };
    expect(k.verifySignedBundle(bundle, forged, [trusted], k.pureHasher)).toMatchObject({
      code: 'E_SIGNATURE_INVALID',
    });
  });

  it('@nano-vm/kernel/verify alone bundles for the browser, smaller than the whole kernel, and verifies a golden bundle', async () => {
    const bundleOf = async (entry: string) =>
      build({
        entryPoints: [entry],
        bundle: true,
        platform: 'browser',
        format: 'esm',
        write: false,
        logLevel: 'silent',
      });
    const verify = await bundleOf(`${ROOT}packages/kernel/src/api/verify.ts`);
    const whole = await bundleOf(`${ROOT}packages/kernel/src/index.ts`);
    const text = verify.outputFiles![0]!.text;
    expect(text.length).toBeLessThan(whole.outputFiles![0]!.text.length);
    const file = join(mkdtempSync(join(tmpdir(), 'nano-vm-browser-')), 'verify.browser.mjs');
    writeFileSync(file, text);
    const v = await import(pathToFileURL(file).href);
    // The verifier entry holds no way to run a program.
    expect(v.Machine).toBeUndefined();
    expect(v.loadProgram).toBeUndefined();
    const golden = `${ROOT}test/fixtures/golden/2026-12-02`;
    const name = readdirSync(golden).find((f) => f.endsWith('.json'))!;
    const bundle: unknown = JSON.parse(readFileSync(join(golden, name), 'utf8'));
    expect(v.verifyBundle(bundle, v.pureHasher)).toMatchObject({ ok: true });
    expect(v.serializeBundle(bundle)).toBe(readFileSync(join(golden, name), 'utf8'));
  });
});
