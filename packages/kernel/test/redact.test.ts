/**
 * Sensitive values in the kernel (docs/privacy.md): commitments, the redactor the machine writes
 * events through, the erasure events' place in a verified chain, and the receipt's erasure summary.
 */
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
