/**
 * Sensitive values in the kernel (docs/privacy.md): commitments, the redactor the machine writes
 * events through, the erasure events' place in a verified chain, and the receipt's erasure summary.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BUNDLE_FORMAT,
  Machine,
  Redactor,
  TraceChain,
  commitValue,
  computeReceipt,
  isCommitment,
  pureHasher,
  replaceAtPaths,
  sensitiveLeaves,
  subjectKey,
  verifyBundle,
  type Bundle,
  type JsonValue,
  type Program,
  type TraceEvent,
} from '../src/internal.js';

const salt = 'a'.repeat(32);
const c = (v: string | number) => commitValue(pureHasher, salt, v);

describe('commitments', () => {
  it('are vault:sha256 over salt and canonical value; subjects are stored as their hash', () => {
    expect(c('Ana')).toBe(`vault:sha256:${pureHasher.sha256Hex(`${salt}"Ana"`)}`);
    expect(isCommitment(c('Ana'))).toBe(true);
    expect(isCommitment('vault:sha256:xyz')).toBe(false);
    expect(commitValue(pureHasher, 'b'.repeat(32), 'Ana')).not.toBe(c('Ana'));
    expect(subjectKey(pureHasher, 'ana@example.com')).toBe(`sha256:${pureHasher.sha256Hex('ana@example.com')}`);
  });

  it('sensitive paths expand to their leaves; the redacted input keeps its shape', () => {
    const input = { person: { name: 'Ana', tags: ['x', 'y'], age: 40, vip: true }, other: 1 };
    const leaves = sensitiveLeaves(input, ['input.person', 'input.missing']);
    expect(leaves).toEqual([
      { path: 'input.person.age', value: 40 },
      { path: 'input.person.name', value: 'Ana' },
      { path: 'input.person.tags.0', value: 'x' },
      { path: 'input.person.tags.1', value: 'y' },
      { path: 'input.person.vip', value: true },
    ]);
    const redacted = replaceAtPaths(input, new Map(leaves.map((l) => [l.path, `C(${l.path})`])));
    expect(redacted).toEqual({
      person: {
        name: 'C(input.person.name)',
        tags: ['C(input.person.tags.0)', 'C(input.person.tags.1)'],
        age: 'C(input.person.age)',
        vip: 'C(input.person.vip)',
      },
      other: 1,
    });
    expect(input.person.name).toBe('Ana');
  });
});

describe('Redactor', () => {
  const r = new Redactor([
    { path: 'input.name', commitment: c('Ana Díaz'), value: 'Ana Díaz' },
    { path: 'input.vip', commitment: c(1), value: true },
    { path: 'input.id', commitment: c(77), value: 77 },
    { path: 'input.gone', commitment: c('erased') },
  ]);

  it('replaces values by value (whole and inside strings) and leaves everything else as the same object', () => {
    expect(r.value({ a: 'Ana Díaz', b: ['hi Ana Díaz!', 77], c: true })).toEqual({
      a: c('Ana Díaz'),
      b: [`hi ${c('Ana Díaz')}!`, c(77)],
      c: true,
    });
    const clean = { a: 'Bob', n: [1, 2] };
    expect(r.value(clean)).toBe(clean);
    expect(r.text('a cut-off Ana Dí…')).toBe(`a cut-off ${c('Ana Díaz')}…`);
  });

  it('replaces booleans only where it knows their path', () => {
    expect(r.at('input.vip', true)).toBe(c(1));
    expect(r.at('input', { vip: true, name: 'Ana Díaz', other: true })).toEqual({
      vip: c(1),
      name: c('Ana Díaz'),
      other: true,
    });
    expect(
      r.explain([
        { expr: 'input.vip', value: true },
        { expr: 'input.vip == true', value: true },
      ]),
    ).toEqual([
      { expr: 'input.vip', value: c(1) },
      { expr: 'input.vip == true', value: true },
    ]);
  });

  it('reveals what it redacted, for hosts that hold the vault', () => {
    const v = { said: 'hello Ana Díaz', id: 77, list: ['Ana Díaz'] };
    expect(r.reveal(r.value(v))).toEqual(v);
    expect(r.revealResult({ ok: false, error: { code: 'E_TOOL_ERROR', message: r.text('no Ana Díaz') } })).toEqual({
      ok: false,
      error: { code: 'E_TOOL_ERROR', message: 'no Ana Díaz' },
    });
  });
});

describe('Redactor: keys, letter case, numbers inside text (issue 11)', () => {
  const email = 'Ingrid.Larsen@Example.com';
  const r = new Redactor([
    { path: 'input.email', commitment: c(email), value: email },
    { path: 'input.pin', commitment: c(424242), value: 424242 },
    { path: 'input.code', commitment: c('ab'), value: 'ab' },
  ]);

  it('catches a sensitive string in any letter case, whole and inside text', () => {
    expect(r.value('INGRID.LARSEN@EXAMPLE.COM')).toBe(c(email));
    expect(r.value('mail ingrid.larsen@example.com now')).toBe(`mail ${c(email)} now`);
    expect(r.text('A cut-off INGRID.LARS…')).toBe(`A cut-off ${c(email)}…`);
    // A cut-off copy in the middle of a message, clipped with '…' or '...' (outputCheck's clip).
    expect(r.text('answer "mail ingrid.lars..." is not one of a, b')).toBe(
      `answer "mail ${c(email)}..." is not one of a, b`,
    );
    expect(r.text('body: Ingrid.Larsen@Exa… (truncated)')).toBe(`body: ${c(email)}… (truncated)`);
    // Too short a prefix (under 4 characters) stays, and a commitment before a cut is left alone.
    expect(r.text('Ing... and more')).toBe('Ing... and more');
    expect(r.text(`${c(email)}...`)).toBe(`${c(email)}...`);
    // The full upper-case form too: toUpperCase() makes 'SS' of 'ß'.
    const street = new Redactor([{ path: 'input.s', commitment: c('Straße 5'), value: 'Straße 5' }]);
    expect(street.value('at STRASSE 5')).toBe(`at ${c('Straße 5')}`);
    // Short strings (under 4 characters) are replaced as whole values only, in their own case:
    // a short value in any case would take every "no" or "ok" of an output.
    expect(r.value('ab')).toBe(c('ab'));
    expect(r.value('AB')).toBe('AB');
    expect(r.value('tab')).toBe('tab');
    expect(r.value({ ab: 1 })).toEqual({ [c('ab')]: 1 });
  });

  it('catches a sensitive number inside a string, and a number whose digits hold it', () => {
    expect(r.value('pin=424242')).toBe(`pin=${c(424242)}`);
    expect(r.value('424242')).toBe(c(424242));
    expect(r.value(14242420)).toBe(c(424242));
    expect(r.value(4242)).toBe(4242);
  });

  it('catches a sensitive value used as an object key; keys that redact alike get #2, #3', () => {
    const out = r.value({ [email]: 'x', [email.toUpperCase()]: 'y', ['pin=424242']: 1, plain: 2 }) as Record<
      string,
      JsonValue
    >;
    // 'INGRID…' sorts before 'Ingrid…' (code units): it gets the bare commitment, whatever the insertion order.
    expect(out).toEqual({ [`${c(email)}#2`]: 'x', [c(email)]: 'y', [`pin=${c(424242)}`]: 1, plain: 2 });
    expect(r.value({ [email.toUpperCase()]: 'y', [email]: 'x' })).toEqual({ [c(email)]: 'y', [`${c(email)}#2`]: 'x' });
    // A key that already is the placeholder keeps its name; the redacted one moves aside.
    expect(r.value({ [c(email)]: 1, [email]: 2 })).toEqual({ [c(email)]: 1, [`${c(email)}#2`]: 2 });
    expect(r.at('steps.x.output', { [email]: { deep: `to ${email}` } })).toEqual({
      [c(email)]: { deep: `to ${c(email)}` },
    });
  });

  it('a raw JSON answer whose keys would merge once redacted is recorded as the redacted answer', () => {
    const raw = `{"k":1,"${email.toUpperCase()}":1,"${email}":2}`;
    const out = r.raw(raw);
    expect(out.toLowerCase()).not.toContain(email.toLowerCase());
    expect(JSON.parse(out)).toEqual(r.value(JSON.parse(raw) as JsonValue));
    expect(Object.keys(JSON.parse(out))).toHaveLength(3);
    // A short sensitive value, which text leaves in place, leaves the raw answer too.
    expect(JSON.parse(r.raw('{"c":"ab"}'))).toEqual({ c: c('ab') });
    // Without a collision the text keeps its form.
    expect(r.raw(`{ "a": "to ${email}" }`)).toBe(`{ "a": "to ${c(email)}" }`);
    expect(r.raw(out)).toBe(out);
  });

  it('catches the JSON-escaped form of a string in raw JSON text', () => {
    const q = new Redactor([{ path: 'input.n', commitment: c('say "hi"'), value: 'say "hi"' }]);
    expect(q.text(JSON.stringify({ a: 'say "HI" there' }))).toBe(`{"a":"${c('say "hi"')} there"}`);
    // Revealed for a replay that holds the vault, the raw answer is JSON again.
    const raw = q.raw(JSON.stringify({ a: 'say "hi" there' }));
    const revealed = q.revealResult({ ok: true, raw });
    expect(JSON.parse(revealed.raw!)).toEqual({ a: 'say "hi" there' });
    expect(q.raw(revealed.raw!)).toBe(raw);
  });

  it('leaves a commitment already in the text alone (no number inside its hex is replaced)', () => {
    const hex = pureHasher.sha256Hex('x');
    const q = new Redactor([{ path: 'input.d', commitment: c(hex.slice(10, 16)), value: hex.slice(10, 16) }]);
    const s = `see vault:sha256:${hex}`;
    expect(q.text(s)).toBe(s);
  });

  it('reveals keys and numbers inside text again', () => {
    const v = { [email]: `pin=424242 for ${email}` };
    expect(r.reveal(r.value(v))).toEqual(v);
  });
});

/** Keys and strings built from the sensitive values and noise, in random case. */
const SECRETS = ['Ingrid.Larsen@Example.com', 'Nørgaard Ærø', 'NO8841207'];
const PIN = 90817263;
const pieceArb = fc.oneof(
  fc.constantFrom(...SECRETS, String(PIN), 'pin=', ' ', 'x', '@', '…'),
  fc.string({ maxLength: 4 }),
  // A clipped copy: a prefix of a secret, then an ellipsis or three dots.
  fc
    .tuple(fc.constantFrom(...SECRETS, String(PIN)), fc.nat(), fc.constantFrom('…', '...'))
    .map(([s, n, mark]) => s.slice(0, 4 + (n % (s.length - 4))) + mark),
);
/** The clipped forms of a secret that must not survive: each prefix of 4+ characters before a cut mark. */
const clipped = (s: string): string[] =>
  Array.from({ length: s.length - 4 }, (_, i) => s.slice(0, 4 + i).toLowerCase()).flatMap((p) => [`${p}…`, `${p}...`]);
const caseArb = fc.constantFrom<(s: string) => string>(
  (s) => s,
  (s) => s.toUpperCase(),
  (s) => s.toLowerCase(),
);
const textArb = fc.array(fc.tuple(pieceArb, caseArb), { maxLength: 6 }).map((ps) => ps.map(([p, f]) => f(p)).join(''));
const jsonArb: fc.Arbitrary<JsonValue> = fc.letrec<{ v: JsonValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    textArb,
    fc.constantFrom<JsonValue>(PIN, PIN * 10 + 1, 7, true, null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.array(fc.tuple(textArb, tie('v')), { maxLength: 4 }).map((es) => Object.fromEntries(es) as JsonValue),
  ),
})).v;

describe('Redactor properties (fast-check)', () => {
  const sealed = [
    ...SECRETS.map((s, i) => ({ path: `input.s${i}`, commitment: c(s), value: s as JsonValue })),
    { path: 'input.pin', commitment: c(PIN), value: PIN as JsonValue },
  ];
  const r = new Redactor(sealed);
  const withoutCommitments = (s: string) => s.replace(/vault:sha256:[0-9a-f]{64}/g, '|');

  it('no sensitive value survives in any letter case, as a key, a value or inside text', () => {
    fc.assert(
      fc.property(jsonArb, (v) => {
        const out = r.value(v);
        const text = withoutCommitments(JSON.stringify(out)).toLowerCase();
        const raw = withoutCommitments(r.raw(JSON.stringify(v))).toLowerCase();
        for (const s of [...SECRETS, String(PIN)]) {
          expect(text).not.toContain(s.toLowerCase());
          expect(raw).not.toContain(s.toLowerCase());
          for (const cut of clipped(s)) expect(text).not.toContain(cut);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('any sensitive string (regex syntax, unicode, quotes) is caught whole, inside text and as a key', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
        fc.string({ maxLength: 6 }),
        (secret, noise) => {
          const q = new Redactor([{ path: 'input.s', commitment: c(secret), value: secret }]);
          expect(q.value(secret)).toBe(c(secret));
          if (secret.length >= 4) expect(q.value(secret.toUpperCase())).toBe(c(secret));
          const out = q.value({ [`${noise}${secret}${noise}`]: `${noise}${secret}` });
          if (secret.length >= 4)
            expect(withoutCommitments(JSON.stringify(out))).not.toContain(JSON.stringify(secret).slice(1, -1));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is idempotent, keeps the number of keys, and reveal then redact gives the same events', () => {
    fc.assert(
      fc.property(jsonArb, (v) => {
        const out = r.value(v);
        expect(r.value(out)).toEqual(out);
        expect(r.value(r.reveal(out))).toEqual(out);
        // A replay parses the recorded raw answer: it must give the recorded output.
        const rec = r.raw(JSON.stringify(v));
        expect(JSON.parse(rec)).toEqual(out);
        // A replay that holds the vault reveals it and records it again: the same raw answer.
        expect(r.raw(r.revealResult({ ok: true, raw: rec }).raw!)).toBe(rec);
        const count = (x: JsonValue): number =>
          x === null || typeof x !== 'object'
            ? 0
            : Array.isArray(x)
              ? x.reduce<number>((n, e) => n + count(e), 0)
              : Object.keys(x).length + Object.values(x).reduce<number>((n, e) => n + count(e), 0);
        expect(count(out)).toBe(count(v));
      }),
      { numRuns: 400 },
    );
  });
});

const program: Program = {
  format: 'nano-vm.program/v1',
  id: 'p',
  input_schema: { type: 'object', properties: { name: { type: 'string' } } },
  sensitive: ['input.name'],
  steps: [
    { id: 'c', kind: 'condition', cases: [{ when: 'input.name.startsWith("Ana")', next: 'done' }], else: 'done' },
    { id: 'done', kind: 'end', outcome: 'OK' },
  ],
};

function erasedBundle(): Bundle {
  let t = 0;
  const redacted = { name: c('Ana Díaz') };
  const m = new Machine(
    program,
    { name: 'Ana Díaz' },
    {
      runId: 'r',
      hasher: pureHasher,
      clock: { now: () => t++ },
      runtimeVersion: 't',
      model: { id: 'm', scripted: true },
      inputHash: pureHasher.sha256Hex(JSON.stringify(redacted)),
      redact: new Redactor([{ path: 'input.name', commitment: c('Ana Díaz'), value: 'Ana Díaz' }]),
    },
  );
  m.next();
  const chain = new TraceChain(pureHasher, { events: m.events });
  chain.append(
    {
      type: 'values_erased',
      subject: 'sha256:x',
      paths: ['input.name'],
      commitments: [c('Ana Díaz')],
    } as unknown as TraceEvent,
    '2026-02-01T00:00:00.000Z',
  );
  chain.append(
    {
      type: 'erasure_refused',
      subject: 'sha256:y',
      hold: 'h1',
      reason: 'kept',
      paths: ['input.name'],
    } as unknown as TraceEvent,
    '2026-02-01T00:00:00.001Z',
  );
  const events = JSON.parse(JSON.stringify(chain.events)) as TraceEvent[];
  return { format: BUNDLE_FORMAT, program, policy: null, input: redacted, events, receipt: computeReceipt(events) };
}

describe('erasure events in a chain', () => {
  it('the machine writes the guard explanation with commitments; erasure events after run_finished verify and show in the receipt', () => {
    const b = erasedBundle();
    expect(JSON.stringify(b)).not.toContain('Ana Díaz');
    expect(b.events[1]).toMatchObject({
      type: 'condition_evaluated',
      guards: [{ explain: expect.arrayContaining([{ expr: 'input.name', value: c('Ana Díaz') }]) }],
    });
    expect(verifyBundle(b, pureHasher)).toMatchObject({ ok: true, event_count: 5 });
    expect(b.receipt).toMatchObject({
      status: 'completed',
      outcome: 'OK',
      finished_at: b.events[2]!.ts,
      head_hash: b.events[4]!.hash,
      erasure: { erased_paths: ['input.name'], refused: [{ seq: 4, hold: 'h1' }] },
    });
    expect(computeReceipt(b.events.slice(0, 3)).erasure).toBeUndefined();
  });

  it('an erasure event before run_finished, or a run event after it, is E_EVENT_SHAPE', () => {
    const b = erasedBundle();
    const early = new TraceChain(pureHasher, { events: b.events.slice(0, 2) });
    early.append(
      { type: 'values_erased', subject: 's', paths: [], commitments: [] } as unknown as TraceEvent,
      b.events[2]!.ts,
    );
    const e1 = JSON.parse(JSON.stringify(early.events)) as TraceEvent[];
    expect(verifyBundle({ ...b, events: e1, receipt: computeReceipt(e1) }, pureHasher)).toMatchObject({
      ok: false,
      code: 'E_EVENT_SHAPE',
      first_bad_seq: 2,
    });
    const late = new TraceChain(pureHasher, { events: b.events.slice(0, 4) });
    late.append(
      { type: 'step_retry', step: 'c', attempt: 2, max_attempts: 2 } as unknown as TraceEvent,
      b.events[3]!.ts,
    );
    const e2 = JSON.parse(JSON.stringify(late.events)) as TraceEvent[];
    expect(verifyBundle({ ...b, events: e2, receipt: computeReceipt(e2) }, pureHasher)).toMatchObject({
      ok: false,
      code: 'E_EVENT_SHAPE',
      first_bad_seq: 4,
    });
  });
});
