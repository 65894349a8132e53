/**
 * eventText writes the chain's event text member by member; it must be exactly the generic RFC 8785
 * encoder's text for every event the builders can make, whatever the strings and values inside.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/canonicalJson.js';
import * as ev from '../src/eventBodies.js';
import type { TraceEvent } from '../src/events.js';
import { eventText } from '../src/eventText.js';

const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
// Strings that need escaping (quotes, backslashes, controls, lone surrogates) as well as plain ones.
const str = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('a"b', 'c\\d', '\u0000', '\ud800', 'é€😀', ''),
);
const json = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<never>;
const int = fc.integer({ min: 0, max: 1_000_000 });
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const usage = fc.record({ input_tokens: int, output_tokens: int });
const facts = fc.record({
  raw: opt(str),
  model: opt(str),
  usage: opt(usage),
  cost_usd: opt(fc.double({ min: 0, max: 10, noNaN: true })),
  fallbacks: opt(fc.array(fc.record({ model: str, code: str, message: str }), { minLength: 1, maxLength: 3 })),
  visit: opt(int),
  projection_hash: opt(hex),
});
const error = fc.record({ code: str, message: str });
const chainFields = fc.record({
  seq: int,
  ts: fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }).map((d) => d.toISOString()),
  prev_hash: hex,
});

const bodies: fc.Arbitrary<TraceEvent> = fc.oneof(
  fc
    .record({
      run_id: str,
      program_id: str,
      program_hash: hex,
      policy_hash: hex,
      input_hash: hex,
      runtime_version: str,
      model: fc.record({ id: str, scripted: fc.boolean() }),
    })
    .map((f) => ev.runStarted(f)),
  fc
    .record({
      step: str,
      kind: fc.constantFrom('tool' as const, 'parallel' as const),
      parent: opt(str),
      visit: int,
      attempt: int,
      tool: opt(str),
      args: opt(fc.dictionary(fc.string(), json)),
      idempotency_key: opt(str),
    })
    .map((f) => ev.stepStarted(f as never)),
  fc
    .tuple(
      fc.record({
        step: str,
        kind: fc.constantFrom('llm' as const, 'tool' as const, 'parallel' as const),
        parent: opt(str),
        attempt: int,
        output: json,
        changed: fc.boolean(),
        next: opt(str),
      }),
      facts,
    )
    .map(([f, c]) => ev.stepCompleted(f, c as never)),
  fc
    .tuple(
      fc.record({
        step: str,
        kind: fc.constantFrom('llm' as const, 'tool' as const),
        parent: opt(str),
        attempt: int,
        error,
        rejected_output: opt(json),
      }),
      facts,
    )
    .map(([f, c]) => ev.stepFailed(f, c as never)),
  fc.record({ step: str, parent: opt(str), attempt: int, max_attempts: int }).map((f) => ev.stepRetry(f)),
  fc
    .record({ step: str, parent: opt(str), output: json, changed: fc.boolean(), next: opt(str) })
    .map((f) => ev.stepFallback(f)),
  fc
    .record({
      step: str,
      visit: int,
      chosen: fc.integer({ min: -1, max: 3 }),
      next: str,
      guards: fc.array(
        fc.record({
          case: int,
          cost: int,
          explain: fc.array(fc.record({ expr: str, value: json })),
          expr: str,
          value: json,
          error: opt(error),
        }),
        { maxLength: 3 },
      ),
    })
    .map((f) => ev.conditionEvaluated({ ...f, guards: f.guards.map((g) => ev.guardResult(g as never)) })),
  fc.record({ step: str, max_visits: int, next: opt(str) }).map((f) => ev.visitsExhausted(f)),
  fc
    .record({
      status: fc.constantFrom('completed' as const, 'failed' as const, 'budget_exceeded' as const, 'stalled' as const),
      outcome: opt(str),
      step: opt(str),
      error: opt(fc.record({ code: str, message: str, step: opt(str) })),
      budget: opt(fc.record({ name: str, limit: int, used: int })),
    })
    .map((f) => ev.runFinished(f as never)),
);

describe('eventText', () => {
  it('is the generic RFC 8785 text of every builder-made event (without hash)', () => {
    fc.assert(
      fc.property(bodies, chainFields, (body, c) => {
        const e = Object.assign(body, c);
        const { hash: _h, ...rest } = e;
        expect(eventText(e)).toBe(canonicalJson(rest));
      }),
      { numRuns: 3000 },
    );
  });

  it('writes guards from a stored trace (parsed JSON, other shapes) exactly like the generic encoder', () => {
    // members in canonical order, each possibly missing, of odd types, or with an extra member
    const explain = fc.oneof(
      fc.array(fc.record({ expr: fc.oneof(str, int), value: json }, { requiredKeys: ['expr'] })),
      json,
    );
    const guard = fc.oneof(
      fc.record(
        { case: fc.oneof(int, str), cost: int, error, explain, expr: fc.oneof(str, int), value: json },
        { requiredKeys: [] },
      ),
      fc.record({ case: int, cost: int, error, explain, expr: str, value: json }),
      fc.record({ case: int, cost: int, error, explain, expr: str, value: json, zzz: json }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.oneof(guard, json as fc.Arbitrary<unknown>), { maxLength: 3 }),
        chainFields,
        (guards, c) => {
          const e = Object.assign(
            ev.conditionEvaluated({
              step: 's',
              visit: 1,
              guards: JSON.parse(JSON.stringify(guards)) as never,
              chosen: 0,
              next: 'n',
            }),
            c,
          );
          const { hash: _h, ...rest } = e;
          expect(eventText(e)).toBe(canonicalJson(rest));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('uses the caller-supplied output text for step_completed', () => {
    const e = Object.assign(
      ev.stepCompleted({ step: 's', kind: 'tool', attempt: 1, output: { b: 1, a: 2 }, changed: true }),
      { seq: 1, ts: '2026-01-01T00:00:00.000Z', prev_hash: '0'.repeat(64) },
    );
    expect(eventText(e, canonicalJson(e.output))).toBe(eventText(e));
    expect(eventText(e)).toContain('"output":{"a":2,"b":1}');
  });

  it('refuses a number JSON cannot carry instead of writing it', () => {
    const e = Object.assign(ev.stepRetry({ step: 's', attempt: Number.NaN, max_attempts: 2 }), {
      seq: 1,
      ts: '2026-01-01T00:00:00.000Z',
      prev_hash: '0'.repeat(64),
    });
    expect(() => eventText(e)).toThrow(/not valid JSON/);
  });
});
