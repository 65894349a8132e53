// The audit panel's check, re-done in this page with the kernel's own verifier
// (@nano-vm/kernel/verify, bundled by scripts/buildWeb.mjs): the bundle is fetched as the
// download link serves it, its chain, genesis commitments and receipt recomputed here, and the
// result set beside the server's own verdict. A bundle file with its detached signature and a
// trusted public key can be checked here too (verifyFiles), as `nano-vm verify --key` does.
import { parsePublicKeyPem, pureHasher, verifyBundle, verifySignedBundle } from '/assets/verify.js';

/** The verdict of the kernel's verifier on a run's bundle, as fetched from the download link. */
export function verifyInBrowser(bundle) {
  const started = performance.now();
  return { ...verifyBundle(bundle, pureHasher), ms: performance.now() - started };
}

/** The fields both sides report; they agree when every one is equal. */
export function compareVerdicts(browser, server) {
  const fields = ['ok', 'code', 'first_bad_seq', 'head_hash', 'event_count'];
  const norm = (v) => {
    if (!v) return {};
    const ok = v.ok ?? v.valid;
    return {
      ok,
      code: ok ? null : (v.code ?? null),
      first_bad_seq: ok ? null : (v.first_bad_seq ?? null),
      head_hash: ok ? (v.head_hash ?? null) : null,
      event_count: ok ? (v.event_count ?? null) : null,
    };
  };
  const a = norm(browser);
  const b = norm(server);
  const differing = fields.filter((f) => a[f] !== b[f] && !(b[f] === null && f !== 'ok' && f !== 'code'));
  return { agree: differing.length === 0, differing };
}

/**
 * A bundle file (and optionally its .sig and a trusted .pub) chosen by the user, verified here as
 * `nano-vm verify <bundle> [--key <pub>]` does: with a key, the signature must be present and valid.
 */
export async function verifyFiles(bundleFile, sigFile, keyFile) {
  let bundle;
  try {
    bundle = JSON.parse(await bundleFile.text());
  } catch (e) {
    return { ok: false, code: 'E_BUNDLE_FORMAT', first_bad_seq: null, reason: `the file is not JSON: ${e.message}` };
  }
  let signature;
  if (sigFile) {
    try {
      signature = JSON.parse(await sigFile.text());
    } catch {
      signature = null; // not a signature document: the verifier says E_SIGNATURE_INVALID
    }
  }
  if (!keyFile) {
    const r = verifyBundle(bundle, pureHasher);
    return { ...r, signature_checked: false };
  }
  let key;
  try {
    key = parsePublicKeyPem(await keyFile.text(), keyFile.name);
  } catch (e) {
    return { ok: false, code: 'E_KEY_INVALID', first_bad_seq: null, reason: e.message };
  }
  const r = verifySignedBundle(bundle, signature, [key], pureHasher);
  return { ...r, signature_checked: true };
}
