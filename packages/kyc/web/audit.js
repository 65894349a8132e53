// The audit panel's check, re-done in this page with the kernel's own verifier
// (@nano-vm/kernel/verify, bundled by scripts/buildWeb.mjs): the bundle is fetched as the
// download link serves it, its chain and receipt recomputed here, its signature checked against the
// operator's public key when the server signs, and the result set beside the server's own verdict.
import {
  parsePublicKeyPem,
  pureHasher,
  verifyBundle,
  verifySignedBundle,
} from '/assets/verify.js';

/** The verdict of the kernel's verifier on a bundle (and its signature, when one and a key are given). */
export function verifyInBrowser(bundle, signature, publicKeyPem) {
  const started = performance.now();
  let result;
  if (signature !== undefined && publicKeyPem) {
    let key;
    try {
      key = parsePublicKeyPem(publicKeyPem, 'the server');
    } catch (e) {
      return { ok: false, code: 'E_KEY_INVALID', first_bad_seq: null, reason: e.message, ms: 0 };
    }
    result = verifySignedBundle(bundle, signature, [key], pureHasher);
  } else {
    result = verifyBundle(bundle, pureHasher);
  }
  return { ...result, signature_checked: signature !== undefined && !!publicKeyPem, ms: performance.now() - started };
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
