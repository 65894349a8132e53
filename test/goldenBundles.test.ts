/**
 * The formats are frozen (docs/trace-format.md §8–9): every bundle committed under
 * test/fixtures/golden/ must verify and replay to its recorded head hash with today's code, running
 * the examples today must write the newest golden bundle of each case again, and a verifier must
 * refuse, with a code, what it cannot read. Spawns the built CLI (`npm test` builds first).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeReceipt, pureHasher, replayBundle, serializeBundle, verifyBundle, type Bundle } from '@nano-vm/kernel';
import { describe, expect, it } from 'vitest';
import { jcs, sha } from './support/independent.js';

const ROOT = new URL('..', import.meta.url).pathname;
const GOLDEN = join(ROOT, 'test/fixtures/golden');
const CLI = join(ROOT, 'packages/cli/dist/main.js');

/** Sets are directories named by the day they were added: sorted, the last is the newest. */
const SETS = readdirSync(GOLDEN)
  .filter((d) => statSync(join(GOLDEN, d)).isDirectory())
  .sort();
const GOLDEN_FILES = SETS.flatMap((set) =>
  readdirSync(join(GOLDEN, set))
    .filter((f) => f.endsWith('.bundle.json'))
    .sort()
    .map((name) => ({ set, name, text: readFileSync(join(GOLDEN, set, name), 'utf8') })),
);
const golden = (set: string, name: string): Bundle => JSON.parse(readFileSync(join(GOLDEN, set, name), 'utf8'));

// The chain rule of docs/trace-format.md §2–3, written here from the document, to build bundles
// that are consistent (every hash right) but hold something a v1 verifier must refuse.
/** Re-commits the genesis to the bundle's program, policy and input, re-hashes the chain and recomputes the receipt. */
function reseal(b: Bundle): Bundle {
  const g = b.events[0]!;
  if (g.type === 'run_started') {
    g.program_hash = sha(jcs(b.program));
    g.policy_hash = sha(jcs(b.policy));
    g.input_hash = sha(jcs(b.input));
  }
  let prev = '0'.repeat(64);
  for (const e of b.events) {
    const { hash: _old, ...rest } = { ...e, prev_hash: prev };
    e.prev_hash = prev;
    e.hash = prev = sha(prev + jcs(rest));
  }
  b.receipt = computeReceipt(b.events);
  return b;
}

/** What must stay identical across runtime versions: everything but runtime_version and the hashes it changes. */
function versionFree(b: Bundle): unknown {
  return {
    ...b,
    events: b.events.map(({ hash: _h, prev_hash: _p, ...e }) =>
      e.type === 'run_started' ? { ...e, runtime_version: undefined } : e,
    ),
    receipt: { ...b.receipt, runtime_version: undefined, head_hash: undefined },
  };
}

describe('golden bundles', () => {
  it('there is a set, and it holds bundles', () => {
    expect(SETS.length).toBeGreaterThan(0);
    expect(GOLDEN_FILES.length).toBeGreaterThan(0);
  });

  for (const { set, name, text } of GOLDEN_FILES)
    it(`${set}/${name} verifies, replays to its head hash and re-serializes to the same bytes`, () => {
      const b = JSON.parse(text) as Bundle;
      expect(verifyBundle(b, pureHasher)).toEqual({
        ok: true,
        event_count: b.events.length,
        head_hash: b.receipt.head_hash,
      });
      const r = replayBundle(b, { hasher: pureHasher });
      expect(r.first_divergence).toBeNull();
      expect(r.missing).toBeNull();
      expect(r.identical).toBe(true);
      expect(r.head_hash).toBe(b.receipt.head_hash);
      expect(r.receipt).toEqual(b.receipt);
      expect(serializeBundle(b)).toBe(text);
    });

  it('running the examples today writes the newest golden bundle of every case again', () => {
    const out = mkdtempSync(join(tmpdir(), 'nano-vm-golden-'));
    const r = spawnSync(process.execPath, [CLI, 'examples', '--deterministic', '--out', out, '--json'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const fresh = readdirSync(out).filter((f) => f.endsWith('.bundle.json'));
    expect(fresh.length).toBeGreaterThan(0);
    for (const name of fresh) {
      const newest = [...SETS].reverse().find((set) => GOLDEN_FILES.some((g) => g.set === set && g.name === name));
      expect(
        newest,
        `no golden bundle for ${name}: an example or case is new or changed; add a set (test/fixtures/golden/README.md)`,
      ).toBeDefined();
      const text = readFileSync(join(out, name), 'utf8');
      const now = JSON.parse(text) as Bundle;
      const then = golden(newest!, name);
      expect(versionFree(now), `${name} differs from ${newest}/${name}`).toEqual(versionFree(then));
      const version = (b: Bundle) => b.receipt.runtime_version;
      // Same runtime version: byte for byte (the runtime version is in the genesis, so every hash follows it).
      if (version(now) === version(then))
        expect(text, `${name} differs from ${newest}/${name}`).toBe(readFileSync(join(GOLDEN, newest!, name), 'utf8'));
    }
  });

  it('the cross-version comparison ignores only the runtime version and the hashes that follow it', () => {
    const base = golden(SETS[0]!, 'refund.approve.bundle.json');
    const later = golden(SETS[0]!, 'refund.approve.bundle.json');
    const g = later.events[0]!;
    if (g.type === 'run_started') g.runtime_version = 'nano-vm/99.0.0';
    reseal(later);
    expect(verifyBundle(later, pureHasher).ok).toBe(true);
    expect(later.receipt.head_hash).not.toBe(base.receipt.head_hash);
    expect(versionFree(later)).toEqual(versionFree(base));
    const changed = golden(SETS[0]!, 'refund.approve.bundle.json');
    (changed.events[1] as { ts: string }).ts = '2026-01-01T00:00:09.000Z';
    expect(versionFree(reseal(changed))).not.toEqual(versionFree(base));
  });
});

describe('a v1 verifier refuses, with a code, what it cannot read', () => {
  const SET = () => SETS[0]!;
  const withPolicy = () => golden(SET(), 'kyc.clean.bundle.json');
  const withoutPolicy = () => golden(SET(), 'refund.approve.bundle.json');

  it('another bundle format: E_BUNDLE_FORMAT, saying which version it reads', () => {
    expect(verifyBundle({ ...withoutPolicy(), format: 'nano-vm.bundle/v2' }, pureHasher)).toMatchObject({
      ok: false,
      code: 'E_BUNDLE_FORMAT',
      first_bad_seq: null,
      reason: expect.stringMatching(/reads nano-vm\.bundle\/v1; "nano-vm\.bundle\/v2" is another version/),
    });
    expect(verifyBundle({ ...withoutPolicy(), format: 'a-bundle' }, pureHasher)).toMatchObject({
      ok: false,
      code: 'E_BUNDLE_FORMAT',
    });
    const { format: _f, ...noFormat } = withoutPolicy();
    expect(verifyBundle(noFormat, pureHasher)).toMatchObject({ ok: false, code: 'E_BUNDLE_FORMAT' });
  });

  it('a program or policy of another format inside a consistent bundle: E_BUNDLE_FORMAT', () => {
    const p = withoutPolicy();
    p.program = { ...p.program, format: 'nano-vm.program/v2' as never };
    expect(verifyBundle(reseal(p), pureHasher)).toMatchObject({
      ok: false,
      code: 'E_BUNDLE_FORMAT',
      reason: expect.stringContaining('"nano-vm.program/v2"'),
    });
    const q = withPolicy();
    q.policy = { ...(q.policy as object), format: 'nano-vm.policy/v2' };
    expect(verifyBundle(reseal(q), pureHasher)).toMatchObject({
      ok: false,
      code: 'E_BUNDLE_FORMAT',
      reason: expect.stringContaining('"nano-vm.policy/v2"'),
    });
    // The same edits without re-committing the genesis read as tampering.
    const t = withoutPolicy();
    t.program = { ...t.program, format: 'nano-vm.program/v2' as never };
    expect(verifyBundle(t, pureHasher)).toMatchObject({ ok: false, code: 'E_GENESIS_PROGRAM' });
    const u = withPolicy();
    u.policy = { ...(u.policy as object), format: 'nano-vm.policy/v2' };
    expect(verifyBundle(u, pureHasher)).toMatchObject({ ok: false, code: 'E_GENESIS_POLICY' });
  });

  it('another receipt format, or a receipt member it does not know: E_RECEIPT_MISMATCH naming it', () => {
    const b = withoutPolicy();
    b.receipt = { ...b.receipt, format: 'nano-vm.receipt/v2' as never };
    expect(verifyBundle(b, pureHasher)).toMatchObject({
      ok: false,
      code: 'E_RECEIPT_MISMATCH',
      reason: expect.stringContaining('/format'),
    });
    const c = withoutPolicy();
    c.receipt = { ...c.receipt, signals: [] } as never;
    expect(verifyBundle(c, pureHasher)).toMatchObject({
      ok: false,
      code: 'E_RECEIPT_MISMATCH',
      reason: expect.stringContaining('/signals'),
    });
  });

  it('an event type it does not know, even with every hash right: E_EVENT_SHAPE at that event', () => {
    const b = withoutPolicy();
    const at = b.events.length - 1;
    const unknown = { seq: at, type: 'step_paused', ts: b.events[at]!.ts, step: 'classify', prev_hash: '', hash: '' };
    b.events.splice(at, 0, unknown as never);
    b.events.forEach((e, i) => (e.seq = i));
    expect(verifyBundle(reseal(b), pureHasher)).toMatchObject({
      ok: false,
      code: 'E_EVENT_SHAPE',
      first_bad_seq: at,
      reason: expect.stringContaining('"step_paused"'),
    });
  });

  it('a member of a known event it does not know: verify accepts it (it is hashed), replay reports it', () => {
    const b = withoutPolicy();
    const at = b.events.findIndex((e) => e.type === 'step_completed');
    (b.events[at] as unknown as Record<string, unknown>).confidence = 0.9;
    reseal(b);
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: true });
    const r = replayBundle(b, { hasher: pureHasher });
    expect(r.identical).toBe(false);
    expect(r.first_divergence).toMatchObject({ seq: at, field: '/confidence' });
  });
});
