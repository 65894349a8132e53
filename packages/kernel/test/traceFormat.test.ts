/**
 * docs/trace-format.md is normative. This file contains an independent verifier written from the
 * document alone (node:crypto, its own canonicalizer) and checks it agrees with verifyBundle,
 * plus the property that changing any byte of a bundle is caught.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BUNDLE_FORMAT,
  Machine,
  computeReceipt,
  pureHasher,
  serializeBundle,
  verifyBundle,
  type Bundle,
  type Program,
  type TraceEvent,
} from '../src/internal.js';
import { jcs, sha } from '../../../test/support/independent.js';

// ---- the independent implementation, from docs/trace-format.md only --------------------------
const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
function independentVerify(b: unknown): { ok: boolean; seq?: number | null } {
  const keys = ['events', 'format', 'input', 'policy', 'program', 'receipt'];
  if (
    !isRecord(b) ||
    b.format !== 'nano-vm.bundle/v1' ||
    jcs(Object.keys(b).sort()) !== jcs(keys) ||
    !Array.isArray(b.events) ||
    b.events.length === 0
  )
    return { ok: false, seq: null };
  const events: unknown[] = b.events;
  let prev = '0'.repeat(64);
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    if (!isRecord(e) || (i === 0) !== (e.type === 'run_started') || e.seq !== i || e.prev_hash !== prev)
      return { ok: false, seq: i };
    const { hash, ...rest } = e;
    if (typeof hash !== 'string' || sha(prev + jcs(rest)) !== hash) return { ok: false, seq: i };
    prev = hash;
  }
  // The loop above has checked every event is an object.
  const g = events[0] as Record<string, unknown>;
  if (
    sha(jcs(b.program)) !== g.program_hash ||
    sha(jcs(b.policy)) !== g.policy_hash ||
    sha(jcs(b.input)) !== g.input_hash
  )
    return { ok: false, seq: 0 };
  // The chain is intact, so these are the events the run wrote.
  if (jcs(computeReceipt(events as TraceEvent[])) !== jcs(b.receipt)) return { ok: false, seq: null };
  return { ok: true };
}
// ------------------------------------------------------------------------------------------------

const program: Program = {
  format: 'nano-vm.program/v1',
  id: 'doc',
  input_schema: { type: 'object', properties: { n: { type: 'number' }, note: { type: 'string' } } },
  steps: [
    {
      id: 'ask',
      kind: 'llm',
      prompt: 'n is {{input.n}}',
      projection: ['input.n'],
      output: { enum: ['big', 'small'] },
      on_error: { action: 'retry', max_attempts: 2 },
      next: 'route',
    },
    {
      id: 'route',
      kind: 'condition',
      cases: [{ when: 'steps.ask.output == "big" && input.n > 10', next: 'act' }],
      else: 'done',
    },
    { id: 'act', kind: 'tool', tool: 'act', args: { n: 'input.n' }, next: 'done' },
    { id: 'done', kind: 'end', outcome: 'SUCCESS' },
  ],
};

/** A run driven synchronously through the kernel alone, with a fixed clock. */
function makeBundle(input: { n: number; note?: string }, answers: string[]): Bundle {
  let t = Date.UTC(2026, 0, 1);
  const m = new Machine(program, input, {
    runId: 'run-doc',
    hasher: pureHasher,
    clock: { now: () => t++ },
    runtimeVersion: 'test',
    model: { id: 'scripted:doc', scripted: true },
  });
  let call = 0;
  for (;;) {
    const c = m.next();
    if (c.type === 'done') break;
    if (c.type === 'llm')
      m.complete({
        ok: true,
        raw: answers[Math.min(call++, answers.length - 1)]!,
        model: 'scripted:doc',
        usage: { input_tokens: 5, output_tokens: 1 },
        cost_usd: 0.001,
      });
    else if (c.type === 'tool') m.complete({ ok: true, value: { acted: c.args.n } });
  }
  return { format: BUNDLE_FORMAT, program, policy: null, input, events: m.events, receipt: computeReceipt(m.events) };
}

describe('trace format v1', () => {
  it('the worked example in §3 hashes as documented', () => {
    const zeros = '0'.repeat(64);
    const e = { seq: 0, ts: '2026-01-01T00:00:00.000Z', prev_hash: zeros, type: 'x' };
    expect(jcs(e)).toBe(`{"prev_hash":"${zeros}","seq":0,"ts":"2026-01-01T00:00:00.000Z","type":"x"}`);
    expect(pureHasher.sha256Hex(zeros + jcs(e))).toBe(sha(zeros + jcs(e)));
  });

  it('every event carries seq, type, ts, prev_hash and hash', () => {
    const b = makeBundle({ n: 20 }, ['maybe', 'big']);
    for (const e of b.events) for (const k of ['seq', 'type', 'ts', 'prev_hash', 'hash']) expect(e).toHaveProperty(k);
    expect(b.events.map((e) => e.type)).toEqual([
      'run_started',
      'step_failed',
      'step_retry',
      'step_completed',
      'condition_evaluated',
      'step_started',
      'step_completed',
      'run_finished',
    ]);
  });

  it('the independent verifier and verifyBundle accept the same bundles', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -5, max: 50 }),
        fc.string(),
        fc.constantFrom('big', 'small', 'nope'),
        (n, note, a) => {
          const b = JSON.parse(serializeBundle(makeBundle({ n, note }, [a, 'small'])));
          expect(independentVerify(b)).toEqual({ ok: true });
          expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: true });
        },
      ),
      { numRuns: 50 },
    );
  });

  it('changing any byte of a bundle is caught, and both verifiers name the same event', () => {
    const text = serializeBundle(makeBundle({ n: 20, note: 'hello' }, ['big']));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: text.length - 1 }), fc.integer({ min: 1, max: 94 }), (pos, delta) => {
        const code = text.charCodeAt(pos);
        const replaced = String.fromCharCode(32 + ((code - 32 + delta) % 95));
        if (replaced === text[pos]) return;
        const tampered = text.slice(0, pos) + replaced + text.slice(pos + 1);
        let parsed: unknown;
        try {
          parsed = JSON.parse(tampered);
        } catch {
          return; // not JSON any more: `nano-vm verify` reports E_BUNDLE_FORMAT
        }
        if (jcs(parsed) === jcs(JSON.parse(text))) return; // whitespace or indentation change only
        const r = verifyBundle(parsed, pureHasher);
        expect(r.ok).toBe(false);
        expect(independentVerify(parsed).ok).toBe(false);
        if (!r.ok && r.first_bad_seq !== null) expect(independentVerify(parsed).seq).toBe(r.first_bad_seq);
      }),
      { numRuns: 1500 },
    );
  });

  it('names the first bad event and the reason for each kind of tampering', () => {
    const fresh = () => JSON.parse(serializeBundle(makeBundle({ n: 20 }, ['big'])));
    let b = fresh();
    b.events[1].output = 'small';
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: false, code: 'E_CHAIN_HASH', first_bad_seq: 1 });
    b = fresh();
    b.events.splice(2, 1);
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: false, code: 'E_CHAIN_SEQ', first_bad_seq: 2 });
    b = fresh();
    [b.events[2], b.events[3]] = [b.events[3], b.events[2]];
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: false, first_bad_seq: 2 });
    b = fresh();
    b.events[4].prev_hash = b.events[2].hash;
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: false, code: 'E_CHAIN_PREV', first_bad_seq: 4 });
    b = fresh();
    b.input.n = 21;
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: false, code: 'E_GENESIS_INPUT', first_bad_seq: 0 });
    b = fresh();
    b.program.steps[1].cases[0].when = 'true';
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: false, code: 'E_GENESIS_PROGRAM' });
    b = fresh();
    b.policy = { allow: 'everything' };
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: false, code: 'E_GENESIS_POLICY' });
    b = fresh();
    b.receipt.outcome = 'APPROVED';
    expect(verifyBundle(b, pureHasher)).toMatchObject({
      ok: false,
      code: 'E_RECEIPT_MISMATCH',
      reason: expect.stringContaining('/outcome'),
    });
    b = fresh();
    b.events[1].type = 'made_up';
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: false, code: 'E_EVENT_SHAPE', first_bad_seq: 1 });
    b = fresh();
    b.events.shift();
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: false, code: 'E_NO_GENESIS' });
    expect(verifyBundle({ ...fresh(), format: 'other' }, pureHasher)).toMatchObject({
      ok: false,
      code: 'E_BUNDLE_FORMAT',
    });
    expect(verifyBundle([], pureHasher)).toMatchObject({ ok: false, code: 'E_BUNDLE_FORMAT' });
  });

  it('the receipt follows §5', () => {
    const r = makeBundle({ n: 20 }, ['nope', 'big']).receipt;
    expect(r).toMatchObject({
      status: 'completed',
      outcome: 'SUCCESS',
      path: ['ask', 'route', 'act', 'done'],
      counts: { steps: 3, model_calls: 2, tool_calls: 1, retries: 1, failures: 1, fallbacks: 0, blocked_actions: 0 },
      model: { id: 'scripted:doc', scripted: true, input_tokens: 10, output_tokens: 2, cost_usd: 0.002 },
      event_count: 8,
      finished_at: expect.stringMatching(/^2026-01-01T00:00:00\.\d{3}Z$/),
    });
  });
});

describe('timestamps', () => {
  it('event ts is the ISO form of each clock reading, across second, day and year boundaries', () => {
    const readings = [
      Date.UTC(2026, 11, 31, 23, 59, 59, 998),
      Date.UTC(2026, 11, 31, 23, 59, 59, 999),
      Date.UTC(2027, 0, 1),
      Date.UTC(2027, 0, 1, 0, 0, 0, 7),
      Date.UTC(2027, 0, 1, 0, 0, 0, 42),
      Date.UTC(2027, 0, 1, 0, 0, 1, 100),
      0,
      -1,
    ];
    const seen: number[] = [];
    let i = 0;
    const clock = {
      now: () => {
        const t = readings[Math.min(i++, readings.length - 1)]!;
        seen.push(t);
        return t;
      },
    };
    const m = new Machine(
      program,
      { n: 1 },
      { runId: 'r', hasher: pureHasher, clock, runtimeVersion: 't', model: { id: 'm', scripted: true } },
    );
    for (let k = 0; k < 6; k++) {
      const c = m.next();
      if (c.type === 'done') break;
      if (c.type === 'llm') m.complete({ ok: true, raw: 'nope' });
    }
    for (const e of m.events) expect(seen.map((t) => new Date(t).toISOString())).toContain(e.ts);
    expect(m.events[0]!.ts).toBe(new Date(seen[0]!).toISOString()); // one reading per event, genesis first
  });
});
