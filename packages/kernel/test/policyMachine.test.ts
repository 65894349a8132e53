/**
 * Run-time enforcement (policyGate.ts via the machine): every step entry under a policy records a
 * policy_checked event carrying the policy hash and the rules that allowed it; a call outside its
 * grant, a denied call or a step entered out of order executes nothing, is recorded as
 * transition_rejected with its rule, and ends the run as POLICY_BLOCKED. Runs without a policy are
 * unchanged.
 */
import { describe, expect, it } from 'vitest';
import {
  BUNDLE_FORMAT,
  CompiledPolicy,
  Machine,
  computeReceipt,
  hashJson,
  policyOption,
  pureHasher,
  replayBundle,
  verifyBundle,
  type Bundle,
  type PolicySnapshot,
  type Program,
  type TraceEvent,
} from '../src/internal.js';

const program: Program = {
  format: 'nano-vm.program/v1',
  id: 'pay',
  input_schema: { type: 'object', properties: { amount: { type: 'number' } } },
  steps: [
    {
      id: 'extract',
      kind: 'llm',
      prompt: 'amount?',
      projection: [],
      output: { schema: { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } } },
      next: 'route',
    },
    { id: 'route', kind: 'condition', cases: [{ when: 'steps.extract.output.amount > 0', next: 'pay' }], else: 'done' },
    { id: 'pay', kind: 'tool', tool: 'wire_transfer', args: { amount: 'steps.extract.output.amount' }, next: 'done' },
    { id: 'done', kind: 'end', outcome: 'PAID' },
  ],
};

const base = (rest: Partial<PolicySnapshot>): PolicySnapshot => ({
  format: 'nano-vm.policy/v1',
  id: 'payments',
  thresholds: { max_amount: 1000 },
  tools: { wire_transfer: { capabilities: ['payments.write'] } },
  ...rest,
});
const granted = base({ grants: [{ id: 'pay_may_pay', step: 'pay', capabilities: ['payments.write'] }] });

/** Drive a machine synchronously; returns the events and the tool calls that were made. */
function run(policy: PolicySnapshot | null, answer: unknown, p: Program = program) {
  let t = Date.UTC(2026, 0, 1);
  const calls: unknown[] = [];
  const m = new Machine(
    p,
    {},
    {
      runId: 'r',
      hasher: pureHasher,
      clock: { now: () => t++ },
      runtimeVersion: 'test',
      model: { id: 'scripted', scripted: true },
      policyHash: hashJson(pureHasher, policy),
      ...policyOption(policy, p, pureHasher),
    },
  );
  for (;;) {
    const c = m.next();
    if (c.type === 'done') break;
    if (c.type === 'llm') m.complete({ ok: true, raw: JSON.stringify(answer) });
    else if (c.type === 'tool') {
      calls.push(c.args);
      m.complete({ ok: true, value: { ok: true } });
    } else throw new Error(`unexpected ${c.type}`);
  }
  const bundle: Bundle = {
    format: BUNDLE_FORMAT,
    program: p,
    policy,
    input: {},
    events: m.events,
    receipt: computeReceipt(m.events),
  };
  return { events: m.events, calls, bundle, result: m.result! };
}
const types = (es: TraceEvent[]) => es.map((e) => e.type);

describe('the machine under a policy', () => {
  it('records policy_checked (rules, policy hash) before every step and lets granted calls run', () => {
    const { events, calls, bundle, result } = run(granted, { amount: 10 });
    expect(result).toMatchObject({ status: 'completed', outcome: 'PAID' });
    expect(calls).toEqual([{ amount: 10 }]);
    const checks = events.filter((e) => e.type === 'policy_checked');
    expect(checks.map((e) => e.step)).toEqual(['extract', 'route', 'pay', 'done']);
    expect(checks.find((e) => e.step === 'pay')).toMatchObject({
      rules: ['pay_may_pay'],
      policy_hash: hashJson(pureHasher, granted),
    });
    expect(verifyBundle(bundle, pureHasher)).toMatchObject({ ok: true });
    expect(replayBundle(bundle, { hasher: pureHasher }).identical).toBe(true);
  });

  it('a run without a policy writes no policy events', () => {
    expect(types(run(null, { amount: 10 }).events)).not.toContain('policy_checked');
  });

  it('a call no grant covers does not execute: transition_rejected (rule, capability, granting step), then POLICY_BLOCKED', () => {
    const policy = base({ grants: [{ id: 'only_treasury', step: 'treasury', capabilities: ['payments.write'] }] });
    const { events, calls, bundle, result } = run(policy, { amount: 10 });
    expect(calls).toEqual([]);
    expect(types(events).slice(-3)).toEqual(['condition_evaluated', 'transition_rejected', 'run_finished']);
    expect(events.at(-2)).toMatchObject({
      type: 'transition_rejected',
      step: 'pay',
      requested: 'tool:wire_transfer',
      rule: 'policy.default_deny',
      capability: 'payments.write',
      granting_step: 'treasury',
      policy_hash: hashJson(pureHasher, policy),
    });
    expect(result).toMatchObject({
      status: 'failed',
      outcome: 'POLICY_BLOCKED',
      error: { code: 'E_POLICY_BLOCKED', step: 'pay' },
    });
    expect(bundle.receipt).toMatchObject({
      status: 'failed',
      outcome: 'POLICY_BLOCKED',
      counts: { blocked_actions: 1, tool_calls: 0 },
    });
    expect(bundle.receipt.rejected_transitions).toEqual([
      { seq: events.length - 2, step: 'pay', requested: 'tool:wire_transfer', rule: 'policy.default_deny' },
    ]);
    expect(verifyBundle(bundle, pureHasher)).toMatchObject({ ok: true });
  });

  it('deny overrides allow: a deny guard over the call arguments and thresholds blocks an injected amount', () => {
    const policy = {
      ...granted,
      deny: [
        {
          id: 'amount_cap',
          tool: 'wire_transfer',
          when: 'args.amount > policy.thresholds.max_amount',
          reason: 'over the transfer limit',
        },
      ],
    };
    expect(run(policy, { amount: 999 }).calls).toEqual([{ amount: 999 }]);
    const { events, calls, result } = run(policy, { amount: 50_000 });
    expect(calls).toEqual([]);
    expect(events.at(-2)).toMatchObject({
      type: 'transition_rejected',
      rule: 'amount_cap',
      reason: 'over the transfer limit',
    });
    expect(result.outcome).toBe('POLICY_BLOCKED');
  });

  it('a deny guard that cannot be evaluated denies (fails closed)', () => {
    const policy = {
      ...granted,
      deny: [{ id: 'needs_currency', tool: 'wire_transfer', when: 'args.currency != "EUR"' }],
    };
    const { events, calls } = run(policy, { amount: 5 });
    expect(calls).toEqual([]);
    expect(events.at(-2)).toMatchObject({ rule: 'needs_currency' });
    expect((events.at(-2) as { reason: string }).reason).toContain('failed to evaluate');
  });

  it('precedence is enforced at run time too: entering `after` first is rejected with the rule', () => {
    const policy = { ...granted, precedence: [{ id: 'review_before_pay', before: 'review', after: 'pay' }] };
    const withReview: Program = {
      ...program,
      steps: [
        ...program.steps,
        { id: 'review', kind: 'llm', prompt: 'x', projection: [], output: { enum: ['ok'] }, next: 'done' },
      ],
    };
    const { events, calls, result } = run(policy, { amount: 5 }, withReview);
    expect(calls).toEqual([]);
    expect(events.at(-2)).toMatchObject({
      type: 'transition_rejected',
      step: 'pay',
      requested: 'enter:pay',
      rule: 'review_before_pay',
    });
    expect(result.error?.code).toBe('E_POLICY_BLOCKED');
  });

  it('a parallel step whose child is not granted runs no child at all', () => {
    const par: Program = {
      ...program,
      steps: [
        {
          id: 'both',
          kind: 'parallel',
          children: [
            { id: 'look', kind: 'tool', tool: 'lookup' },
            { id: 'wire', kind: 'tool', tool: 'wire_transfer' },
          ],
          next: 'done',
        },
        { id: 'done', kind: 'end', outcome: 'OK' },
      ],
    };
    const policy = base({ grants: [{ id: 'g', step: 'look', tools: ['lookup'] }] });
    let t = 0;
    const m = new Machine(
      par,
      {},
      {
        runId: 'r',
        hasher: pureHasher,
        clock: { now: () => t++ },
        runtimeVersion: 't',
        model: { id: 'm', scripted: true },
        policyHash: 'h',
        policy: new CompiledPolicy(policy, 'h', par),
      },
    );
    expect(m.next()).toMatchObject({ type: 'done', event: { outcome: 'POLICY_BLOCKED', error: { step: 'both' } } });
    expect(m.events.find((e) => e.type === 'transition_rejected')).toMatchObject({
      step: 'wire',
      parent: 'both',
      rule: 'policy.default_deny',
    });
    expect(types(m.events)).not.toContain('step_started');
  });

  it('a policy change after genesis halts the run (rule policy.pinned); verify accepts the halt', () => {
    let t = 0;
    const m = new Machine(
      program,
      {},
      {
        runId: 'r',
        hasher: pureHasher,
        clock: { now: () => t++ },
        runtimeVersion: 't',
        model: { id: 'm', scripted: true },
        policyHash: hashJson(pureHasher, granted),
        ...policyOption(granted, program, pureHasher),
      },
    );
    m.next();
    m.haltOnPolicyChange('f'.repeat(64));
    expect(m.next()).toMatchObject({ type: 'done', event: { status: 'failed', outcome: 'POLICY_BLOCKED' } });
    expect(m.events.at(-2)).toMatchObject({
      type: 'transition_rejected',
      rule: 'policy.pinned',
      policy_hash: hashJson(pureHasher, granted),
      offered_policy_hash: 'f'.repeat(64),
    });
    const bundle: Bundle = {
      format: BUNDLE_FORMAT,
      program,
      policy: granted,
      input: {},
      events: m.events,
      receipt: computeReceipt(m.events),
    };
    expect(verifyBundle(bundle, pureHasher)).toMatchObject({ ok: true });
  });

  it('verify names the first event decided under another policy (E_POLICY_CHANGED)', () => {
    // A trace stitched from two runs: its first events under the granted policy, the rest under a
    // looser one that someone swapped in mid-way. The chain is re-hashed, so only the carried hash tells.
    const looser = { ...granted, id: 'looser' };
    const a = run(granted, { amount: 10 }).events;
    const b = run(looser, { amount: 10 }).events;
    const cut = a.findIndex((e) => e.type === 'policy_checked' && e.step === 'pay');
    const stitched = [...a.slice(0, cut), ...b.slice(cut)].map((e) => ({ ...e }));
    let prev = '0'.repeat(64);
    for (const e of stitched) {
      e.prev_hash = prev;
      const { hash: _h, ...rest } = e;
      e.hash = pureHasher.sha256Hex(prev + JSON.stringify(sortDeep(rest)));
      prev = e.hash;
    }
    const bundle: Bundle = {
      format: BUNDLE_FORMAT,
      program,
      policy: granted,
      input: {},
      events: stitched as TraceEvent[],
      receipt: computeReceipt(stitched as TraceEvent[]),
    };
    expect(verifyBundle(bundle, pureHasher)).toMatchObject({ ok: false, code: 'E_POLICY_CHANGED', first_bad_seq: cut });
  });
});

function sortDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortDeep);
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => [k, sortDeep(o[k])]),
  );
}
