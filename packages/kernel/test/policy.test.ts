/**
 * Policies (docs/policy.md): the loader, policy.schema.json, legal holds, and the pre-flight
 * checks of a program against a policy — with property tests of the precedence, required-step and
 * grant decisions against brute-force definitions.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CompiledPolicy,
  DEFAULT_DENY_RULE,
  POLICY_SCHEMA,
  hashJson,
  legalHoldFor,
  loadPolicy,
  policyFromValue,
  policyGuardGlobals,
  pureHasher,
  validatePolicy,
  validateProgram,
  type PolicySnapshot,
  type Program,
  type Step,
} from '../src/internal.js';

const P = (rest: Partial<PolicySnapshot> = {}): PolicySnapshot => ({ format: 'nano-vm.policy/v1', id: 'p', ...rest });

/** screen → gate → (review → approve | blocked); screen is a tool, review an llm, pay a tool. */
const kyc: Program = {
  format: 'nano-vm.program/v1',
  id: 'kyc',
  input_schema: { type: 'object', properties: { risk: { type: 'number' } } },
  steps: [
    { id: 'screen', kind: 'tool', tool: 'sanctions_screen', next: 'gate' },
    { id: 'gate', kind: 'condition', cases: [{ when: 'input.risk > 50', next: 'blocked' }], else: 'review' },
    { id: 'review', kind: 'llm', prompt: 'ok?', projection: [], output: { enum: ['yes', 'no'] }, next: 'decide' },
    {
      id: 'decide',
      kind: 'condition',
      cases: [{ when: 'steps.review.output == "yes"', next: 'pay' }],
      else: 'blocked',
    },
    { id: 'pay', kind: 'tool', tool: 'wire_transfer', next: 'approved' },
    { id: 'approved', kind: 'end', outcome: 'APPROVED' },
    { id: 'blocked', kind: 'end', outcome: 'BLOCKED', failure: true },
  ],
};
const codes = (issues: { code: string }[]) => issues.map((i) => i.code);

describe('loadPolicy', () => {
  it('loads a valid policy', () => {
    const r = loadPolicy('format: nano-vm.policy/v1\nid: p\nthresholds: { risk_max: 0.7 }\n', { file: 'p.yaml' });
    expect(r.issues).toEqual([]);
    expect(r.policy?.thresholds).toEqual({ risk_max: 0.7 });
  });

  it('reports problems as E_POLICY_INVALID at file:line:col, with suggestions', () => {
    const r = loadPolicy('format: nano-vm.policy/v1\nid: p\ngrants:\n  - id: g\n    step: s\n    tool: [x]\n', {
      file: 'p.yaml',
    });
    expect(r.policy).toBeUndefined();
    expect(r.issues[0]).toMatchObject({ code: 'E_POLICY_INVALID', file: 'p.yaml', line: 6, col: 5 });
    expect(r.issues[0]!.message).toContain("did you mean 'tools'");
  });

  it('keeps E_PARSE for text that is not YAML, located', () => {
    const r = loadPolicy('format: nano-vm.policy/v1\nid: p\nid: q\n', { file: 'p.yaml' });
    expect(r.issues[0]).toMatchObject({ code: 'E_PARSE', line: 3 });
  });

  it.each([
    ['a wrong format', { format: 'nano-vm.program/v1', id: 'p' }, /format must be/],
    [
      'a duplicate rule id',
      P({ required_steps: [{ id: 'r', step: 'a' }], precedence: [{ id: 'r', before: 'a', after: 'b' }] }),
      /used twice/,
    ],
    ['a reserved rule id', P({ grants: [{ id: 'policy.mine', step: 'a' }] }), /reserved/],
    ['a deny rule that names nothing', P({ deny: [{ id: 'd' }] }), /names no step, tool or capability/],
    [
      'a deny guard that is not CEL of the subset',
      P({ deny: [{ id: 'd', tool: 't', when: 'args.a + 1 > 2' }] }),
      /E_GUARD_UNSUPPORTED/,
    ],
    ['a threshold that is not a scalar', { ...P(), thresholds: { x: [1] } }, /thresholds\/x/],
    ['a list', [], /got a list/],
  ])('refuses %s', (_what, value, message) => {
    const r = policyFromValue(value);
    expect(r.policy).toBeUndefined();
    expect(codes(r.issues)).toContain('E_POLICY_INVALID');
    expect(r.issues.map((i) => `${i.path} ${i.message}`).join('\n')).toMatch(message);
  });
});

describe('policy.schema.json', () => {
  it('is exactly POLICY_SCHEMA', () => {
    expect(JSON.parse(readFileSync(new URL('../policy.schema.json', import.meta.url), 'utf8'))).toEqual(POLICY_SCHEMA);
  });
  it('accepts the example policy', () => {
    const r = loadPolicy(readFileSync(new URL('../../../examples/kyc/policy.yaml', import.meta.url), 'utf8'));
    expect(r.issues).toEqual([]);
  });
});

describe('legalHoldFor', () => {
  const policy = P({
    legal_holds: [
      { id: 'aml', reason: 'AML retention', programs: ['kyc'] },
      { id: 'all', reason: 'litigation' },
    ],
  });
  it('returns the first hold covering the program, a hold without programs covering every program', () => {
    expect(legalHoldFor(policy, 'kyc')).toMatchObject({ id: 'aml' });
    expect(legalHoldFor(policy, 'refund')).toMatchObject({ id: 'all', reason: 'litigation' });
    expect(legalHoldFor(P({ legal_holds: [{ id: 'aml', reason: 'x', programs: ['kyc'] }] }), 'refund')).toBeNull();
    expect(legalHoldFor(null, 'kyc')).toBeNull();
  });
});

describe('validatePolicy (pre-flight)', () => {
  it('accepts a program that satisfies every rule', () => {
    const policy = P({
      required_steps: [{ id: 'must_screen', step: 'screen' }],
      precedence: [{ id: 'screen_first', before: 'screen', after: 'review' }],
      tools: { wire_transfer: { capabilities: ['payments.write'] } },
      grants: [
        { id: 'g_screen', step: 'screen', tools: ['sanctions_screen'] },
        { id: 'g_pay', step: 'pay', capabilities: ['payments.write'] },
      ],
    });
    expect(validatePolicy(kyc, policy)).toEqual([]);
  });

  it('E_POLICY_REQUIRED_STEP: missing, or a success end reachable around it (with the path)', () => {
    const missing = validatePolicy(kyc, P({ required_steps: [{ id: 'r', step: 'human_approval' }] }));
    expect(missing).toMatchObject([{ code: 'E_POLICY_REQUIRED_STEP', path: '/required_steps/0/step' }]);
    const around = validatePolicy({ ...kyc, start: 'gate' }, P({ required_steps: [{ id: 'r', step: 'screen' }] }));
    expect(around[0]).toMatchObject({ code: 'E_POLICY_REQUIRED_STEP' });
    expect(around[0]!.message).toContain('gate → review → decide → pay → approved');
    // Only success ends count: `blocked` (failure: true) may be reached without review.
    expect(validatePolicy(kyc, P({ required_steps: [{ id: 'r', step: 'review' }] }))).toEqual([]);
  });

  it('E_POLICY_PRECEDENCE: a path reaches `after` without `before`; E_POLICY_UNKNOWN_STEP for unknown steps', () => {
    const r = validatePolicy(kyc, P({ precedence: [{ id: 'review_first', before: 'review', after: 'screen' }] }));
    expect(r).toMatchObject([{ code: 'E_POLICY_PRECEDENCE', path: '/precedence/0' }]);
    expect(r[0]!.message).toContain("'screen' can be reached before 'review': screen");
    expect(
      codes(
        validatePolicy(
          kyc,
          P({ precedence: [{ id: 'x', before: 'nope', after: 'review' }], grants: [{ id: 'g', step: 'ghost' }] }),
        ),
      ),
    ).toEqual(['E_POLICY_UNKNOWN_STEP', 'E_POLICY_UNKNOWN_STEP', 'E_POLICY_GRANT', 'E_POLICY_GRANT']);
  });

  it('E_POLICY_PRECEDENCE for two children of one parallel step', () => {
    const par: Program = {
      ...kyc,
      steps: [
        {
          id: 'both',
          kind: 'parallel',
          children: [
            { id: 'a', kind: 'tool', tool: 't' },
            { id: 'b', kind: 'tool', tool: 't' },
          ],
          next: 'done',
        },
        { id: 'done', kind: 'end', outcome: 'OK' },
      ],
    };
    expect(validatePolicy(par, P({ precedence: [{ id: 'a_first', before: 'a', after: 'b' }] }))[0]!.message).toContain(
      'run in the same step',
    );
  });

  it('E_POLICY_GRANT: ungranted tool, missing capability, static deny; located at the step', () => {
    const policy = P({
      tools: { wire_transfer: { capabilities: ['payments.write'] } },
      grants: [
        { id: 'g_pay', step: 'pay', tools: ['wire_transfer'] },
        { id: 'g_review', step: 'review', capabilities: ['payments.write'] },
      ],
    });
    const r = validatePolicy(kyc, policy);
    expect(r.map((i) => [i.code, i.step])).toEqual([
      ['E_POLICY_GRANT', 'screen'],
      ['E_POLICY_GRANT', 'pay'],
    ]);
    expect(r[0]!.message).toContain("no grant lets step 'screen' call tool 'sanctions_screen'");
    expect(r[1]!.message).toContain("does not hold capability 'payments.write'");
    expect(r[1]!.message).toContain("granted to step 'review'");
    const denied = validatePolicy(kyc, P({ deny: [{ id: 'no_wires', tool: 'wire_transfer', reason: 'frozen' }] }));
    expect(denied).toMatchObject([{ code: 'E_POLICY_GRANT', step: 'pay', path: '/steps/4/tool' }]);
    expect(denied[0]!.message).toContain("denied by rule 'no_wires': frozen");
  });

  it('tools are not governed by a policy without grants', () => {
    expect(validatePolicy(kyc, P({ precedence: [{ id: 's', before: 'screen', after: 'pay' }] }))).toEqual([]);
  });

  it('E_POLICY_PROGRAM_HASH: a pinned program hash must match', () => {
    const h = hashJson(pureHasher, kyc);
    expect(validatePolicy(kyc, P({ program_hash: h }), { programHash: h })).toEqual([]);
    expect(validatePolicy(kyc, P({ program_hash: '0'.repeat(64) }), { programHash: h })).toMatchObject([
      { code: 'E_POLICY_PROGRAM_HASH', path: '/program_hash' },
    ]);
  });

  it('E_POLICY_THRESHOLD: guards (and deny guards) may read only declared thresholds, typed by their values', () => {
    const reads: Program = {
      ...kyc,
      steps: kyc.steps.map((s) =>
        s.id === 'gate' ? { ...s, cases: [{ when: 'input.risk > policy.thresholds.risk_max', next: 'blocked' }] } : s,
      ) as Step[],
    };
    const declared = P({ thresholds: { risk_max: 50 } });
    expect(validatePolicy(reads, declared)).toEqual([]);
    expect(validateProgram(reads, { guardGlobals: policyGuardGlobals(declared) })).toEqual([]);
    expect(codes(validateProgram(reads))).toEqual(['E_GUARD_UNKNOWN_IDENT']);
    expect(validatePolicy(reads, P({ thresholds: { other: 1 } }))).toMatchObject([
      { code: 'E_POLICY_THRESHOLD', step: 'gate', path: '/steps/1/cases/0/when' },
    ]);
    expect(
      codes(validateProgram(reads, { guardGlobals: policyGuardGlobals(P({ thresholds: { risk_max: 'high' } })) })),
    ).toEqual(['E_GUARD_TYPE']);
    const deny = P({
      thresholds: { cap: 10 },
      deny: [
        { id: 'd', tool: 'wire_transfer', when: 'args.amount > policy.thresholds.limit' },
        { id: 'e', tool: 'wire_transfer', when: 'steps.review.output > 3' },
      ],
    });
    expect(codes(validatePolicy(kyc, deny))).toEqual(['E_POLICY_THRESHOLD', 'E_GUARD_TYPE']);
  });

  it('checks a 100k-step program in one pass per rule (iterative, no stack overflow)', () => {
    const n = 100_000;
    const steps: Step[] = [];
    for (let i = 0; i < n; i++)
      steps.push({ id: `s${i}`, kind: 'tool', tool: 't', next: i + 1 < n ? `s${i + 1}` : 'done' });
    steps.push({ id: 'done', kind: 'end', outcome: 'OK' });
    const big: Program = { format: 'nano-vm.program/v1', id: 'big', input_schema: true, steps };
    const policy = P({
      required_steps: [{ id: 'r', step: `s${n - 1}` }],
      precedence: [
        { id: 'o', before: 's10', after: `s${n - 5}` },
        { id: 'bad', before: `s${n - 1}`, after: 's1' },
      ],
    });
    expect(validatePolicy(big, policy).map((i) => i.path)).toEqual(['/precedence/1']);
  });
});

// ---- properties --------------------------------------------------------------------------------

/** Random acyclic programs: step i may go to later steps; the last two are a success and a failure end. */
const dagProgram = fc.integer({ min: 3, max: 8 }).chain((n) =>
  fc
    .tuple(
      fc.constant(n),
      fc.array(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 2 }), {
        minLength: n,
        maxLength: n,
      }),
    )
    .map(([k, outs]) => {
      const steps: Step[] = [];
      for (let i = 0; i < k; i++) {
        const targets = [...new Set(outs[i]!.map((d) => Math.min(i + d, k + 1)))].map((t) =>
          t === k ? 'ok' : t === k + 1 ? 'fail' : `s${t}`,
        );
        steps.push(
          targets.length === 1
            ? { id: `s${i}`, kind: 'tool', tool: 't', next: targets[0]! }
            : { id: `s${i}`, kind: 'condition', cases: [{ when: 'true', next: targets[0]! }], else: targets[1]! },
        );
      }
      steps.push({ id: 'ok', kind: 'end', outcome: 'OK' }, { id: 'fail', kind: 'end', outcome: 'FAIL', failure: true });
      return { format: 'nano-vm.program/v1', id: 'dag', input_schema: true, steps } as Program;
    }),
);

/** Every path from the start to an end step, by brute force. */
function allPaths(p: Program): string[][] {
  const byId = new Map(p.steps.map((s) => [s.id, s]));
  const out: string[][] = [];
  const stack: string[][] = [['s0']];
  while (stack.length) {
    const path = stack.pop()!;
    const s = byId.get(path[path.length - 1]!)!;
    if (s.kind === 'end') out.push(path);
    else
      for (const t of s.kind === 'condition' ? [...s.cases.map((c) => c.next), s.else] : [(s as { next: string }).next])
        stack.push([...path, t]);
  }
  return out;
}

describe('properties', () => {
  it('precedence holds exactly when every path that enters `after` entered `before` first', () => {
    fc.assert(
      fc.property(dagProgram, fc.nat(), fc.nat(), (p, a, b) => {
        const ids = p.steps.map((s) => s.id);
        const before = ids[a % ids.length]!;
        const after = ids[b % ids.length]!;
        fc.pre(before !== after);
        const violated = validatePolicy(p, P({ precedence: [{ id: 'r', before, after }] })).length > 0;
        const brute = allPaths(p).some(
          (path) => path.includes(after) && !path.slice(0, path.indexOf(after)).includes(before),
        );
        expect(violated).toBe(brute);
      }),
    );
  });

  it('a required step is reported exactly when some path to a success end avoids it', () => {
    fc.assert(
      fc.property(dagProgram, fc.nat(), (p, k) => {
        const step = p.steps[k % p.steps.length]!.id;
        const violated = validatePolicy(p, P({ required_steps: [{ id: 'r', step }] })).length > 0;
        const brute = allPaths(p).some((path) => path[path.length - 1] === 'ok' && !path.includes(step));
        expect(violated).toBe(brute);
      }),
    );
  });

  const capability = fc.constantFrom('a', 'b', 'c');
  it('a tool call is granted exactly when the step holds every capability the tool needs and, for a tool needing none, a grant names it; deny overrides', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(capability, { maxLength: 2 }),
        fc.array(
          fc.record({
            step: fc.constantFrom('s', 'other'),
            tools: fc.subarray(['t', 'u']),
            capabilities: fc.uniqueArray(capability, { maxLength: 3 }),
          }),
          { maxLength: 4 },
        ),
        fc.boolean(),
        (needs, grants, deny) => {
          const policy = P({
            tools: needs.length ? { t: { capabilities: needs } } : {},
            grants: grants.map((g, i) => ({ id: `g${i}`, ...g })),
            ...(deny ? { deny: [{ id: 'd', step: 's', tool: 't' }] } : {}),
          });
          const cp = new CompiledPolicy(policy, 'h', kyc);
          const d = cp.decideToolCall('s', undefined, 't', { input: {}, steps: {} }, () => ({}));
          const mine = grants.filter((g) => g.step === 's');
          const held = new Set(mine.flatMap((g) => g.capabilities));
          const expected =
            !deny && needs.every((c) => held.has(c)) && (needs.length > 0 || mine.some((g) => g.tools.includes('t')));
          expect(d.ok).toBe(expected);
          if (!d.ok) expect(d.rejection.rule).toBe(deny ? 'd' : DEFAULT_DENY_RULE);
          else expect(d.rules.length).toBeGreaterThan(0);
        },
      ),
    );
  });
});
