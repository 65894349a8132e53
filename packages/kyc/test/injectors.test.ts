/**
 * Every injector over real HTTP: a real mutation of a real run, caught by the named component, with
 * the evidence read from the run's events (or the pre-flight's issues, or verify) — and the three
 * comparison lanes for each, where the ungoverned lane shows what the same mutation does unchecked.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyBundle, type Bundle } from '@nano-vm/kernel';
import { nodeHasher } from '@nano-vm/runtime';
import type { LanesResult, RunningServer, RunView } from '@nano-vm/kyc';
import { call, start, tempDir } from './httpClient.js';

const ROOT = new URL('../../..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');

let dir: string;
let server: RunningServer;
let base: string;

beforeAll(async () => {
  dir = tempDir('injectors');
  server = await start(join(dir, 'kyc.db'));
  base = server.url;
});
afterAll(async () => {
  await server?.close();
});

const fire = async (injector: string, kase: string) => {
  const r = await call<RunView>(base, 'POST', '/api/runs', { case: kase, injector });
  expect(r.status, r.text).toBe(201);
  return r.body;
};
const codes = (v: RunView) => v.detector!.evidence.map((e) => e.code).filter(Boolean);
const kinds = (v: RunView) => v.events.map((e) => e.kind);

/** What each injector must show on its default case; every value is read from the response. */
const EXPECT: Record<string, { kase: string; check: (v: RunView) => void | Promise<void> }> = {
  invalid_program: {
    kase: 'sanctions_exact',
    check: (v) => {
      expect(v).toMatchObject({ status: 'refused', events: [], preflight: { ok: false, code: 'E_PROGRAM_INVALID' } });
      expect(codes(v)).toContain('E_GUARD_TYPE');
      // Without the pre-flight, the machine fails the run at the gate instead of reading the typo as false.
      expect(codes(v)).toContain('E_GUARD_RUNTIME');
      expect(v.rejected).toContainEqual(
        expect.objectContaining({ source: 'preflight', code: 'E_GUARD_TYPE', path: '/steps/3/cases/0/when' }),
      );
    },
  },
  skip_step: {
    kase: 'sanctions_exact',
    check: (v) => {
      expect(v.status).toBe('refused');
      expect(codes(v)[0]).toBe('E_POLICY_REQUIRED_STEP');
      expect(v.detector!.evidence[0]!.detail).toContain("without 'screen_sanctions'");
    },
  },
  reorder_steps: {
    kase: 'sanctions_exact',
    check: (v) => {
      expect(v.status).toBe('refused');
      expect(codes(v)).toContain('E_POLICY_PRECEDENCE');
      expect(String(v.detector!.evidence[0]!.detail)).toContain("rule 'screening_before_review'");
    },
  },
  tool_injection: {
    kase: 'media_injection',
    check: (v) => {
      expect(v.status).toBe('refused');
      expect(codes(v)[0]).toBe('E_POLICY_GRANT');
      expect(String(v.detector!.evidence[0]!.detail)).toContain("capability 'onboarding.approve'");
      // The machine's own gate refuses it too when the recorded run is replayed against the injected program.
      expect(v.rejected).toContainEqual(
        expect.objectContaining({
          source: 'counterfactual',
          step: 'execute_model_action',
          requested: 'tool:approve_customer',
          rule: 'policy.default_deny',
          granting_step: 'record_approval',
        }),
      );
    },
  },
  policy_bypass: {
    kase: 'sanctions_exact',
    check: (v) => {
      expect(v).toMatchObject({ status: 'failed', outcome: 'POLICY_BLOCKED', verify: { ok: true } });
      const rej = v.rejected.find((r) => r.source === 'trace');
      expect(rej).toMatchObject({ rule: 'policy.pinned', policy_hash: v.policy_hash });
      expect((rej as { offered_policy_hash: string }).offered_policy_hash).not.toBe(v.policy_hash);
      // Nothing ran under the swapped policy: the screening that had been started before the crash
      // is never re-invoked, so no screening result exists.
      expect(rej).toMatchObject({ step: 'screen_sanctions' });
      expect(v.events.filter((e) => e.kind === 'step_completed').map((e) => e.step)).toEqual(['collect_customer']);
    },
  },
  corrupt_receipt: {
    kase: 'sanctions_exact',
    check: async (v) => {
      expect(v.verify).toMatchObject({ ok: false, code: 'E_CHAIN_HASH', first_bad_seq: v.tampered!.seq });
      const diff = v.detector!.evidence.find((e) => e.what.startsWith('field diff'))!.detail;
      expect(diff).toEqual([{ path: '/output/match', witnessed: 'confirmed', stored: 'none' }]);
      // The CLI's verify on the downloaded bundle names the same event.
      const f = join(dir, 'corrupt.bundle.json');
      writeFileSync(f, (await call(base, 'GET', `/api/runs/${v.run_id}/bundle`)).text);
      const r = spawnSync(process.execPath, [CLI, 'verify', f, '--json'], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({
        valid: false,
        code: 'E_CHAIN_HASH',
        first_bad_seq: v.tampered!.seq,
      });
      const server = (await call(base, 'GET', `/api/runs/${v.run_id}/verify`)).body;
      expect(server).toEqual(v.verify);
    },
  },
  gdpr_erase: {
    kase: 'clean_retail',
    check: async (v) => {
      expect(v).toMatchObject({ status: 'completed', outcome: 'APPROVED', verify: { ok: true } });
      expect(kinds(v).at(-1)).toBe('erasure_refused');
      expect(v.events.at(-1)!.body).toMatchObject({ hold: 'aml_record_retention' });
      const lifted = v.related.find((r) => r.role === 'hold_lifted')!;
      expect(lifted.events.at(-1)).toMatchObject({ kind: 'values_erased' });
      expect(lifted.verify).toMatchObject({ ok: true });
      const b = JSON.parse((await call(base, 'GET', `/api/runs/${lifted.run_id}/bundle`)).text) as Bundle;
      expect(verifyBundle(b, nodeHasher)).toMatchObject({ ok: true });
      expect(b.policy).not.toHaveProperty('legal_holds');
      expect(v.counters.erasures_refused).toBe(1);
    },
  },
  llm_out_of_enum: {
    kase: 'clean_retail',
    check: (v) => {
      expect(v.status).toBe('suspended');
      expect(v.waiting!.step).toBe('single_approval');
      expect(codes(v)).toEqual(['E_OUTPUT_NOT_IN_ENUM', 'E_OUTPUT_NOT_IN_ENUM']);
      expect(v.counters).toMatchObject({ rejected_outputs: 2, fallbacks: 1, retries: 1 });
    },
  },
  double_approval: {
    kase: 'domestic_pep',
    check: (v) => {
      expect(v).toMatchObject({ status: 'failed', outcome: 'POLICY_BLOCKED', verify: { ok: true } });
      expect(v.rejected).toEqual([
        expect.objectContaining({
          source: 'trace',
          rule: 'four_eyes_distinct_reviewers',
          requested: 'tool:approve_customer',
          step: 'record_four_eyes_approval',
        }),
      ]);
      expect(v.human_receipt!.reviewers.map((r) => r.reviewer)).toEqual(['alice', 'alice']);
      expect(v.counters.approve_customer_calls).toBe(0);
    },
  },
  budget_exhaust: {
    kase: 'clean_retail',
    check: (v) => {
      expect(v.status).toBe('budget_exceeded');
      expect(v.receipt!.budget).toEqual({ name: 'max_tokens', limit: 8000, used: 12000 });
      expect(v.counters.approve_customer_calls).toBe(0);
    },
  },
  provider_outage: {
    kase: 'clean_retail',
    check: (v) => {
      expect(v.status).toBe('suspended');
      expect(codes(v)).toEqual(['E_MODEL_UNAVAILABLE', 'E_MODEL_UNAVAILABLE']);
      expect(kinds(v)).toEqual(expect.arrayContaining(['step_retry', 'step_fallback']));
      expect(v.human_receipt!.review).toMatchObject({ answer: 'ESCALATE', fallback: true });
    },
  },
};

describe('every injector is caught by its named component', () => {
  it('the injector list is the eleven of issue 13', async () => {
    const meta = (await call<{ injectors: { id: string; default_case: string }[] }>(base, 'GET', '/api/meta')).body;
    expect(meta.injectors.map((i) => i.id).sort()).toEqual(Object.keys(EXPECT).sort());
    for (const i of meta.injectors) expect(i.default_case).toBe(EXPECT[i.id]!.kase);
  });

  it.each(Object.entries(EXPECT))('%s', async (id, { kase, check }) => {
    const v = await fire(id, kase);
    expect(v.injector).toBe(id);
    expect(v.detector).toMatchObject({ injector: id, reached: true, caught: true });
    expect(v.detector!.summary).toMatch(/^caught by /);
    expect(v.detector!.evidence.length).toBeGreaterThan(0);
    await check(v);
  });

  it('an injector whose point the case never reaches says so (and claims no catch)', async () => {
    const v = await fire('llm_out_of_enum', 'sanctions_exact');
    expect(v.detector).toMatchObject({ reached: false, caught: false });
    expect(v.detector!.summary).toMatch(/^not reached/);
    expect(v.counters.model_calls).toBe(0);
  });
});

describe('comparison lanes', () => {
  const lanes = async (injector: string | undefined, kase: string) => {
    const r = await call<LanesResult>(base, 'POST', '/api/runs', {
      case: kase,
      ...(injector && { injector }),
      lanes: true,
    });
    expect(r.status, r.text).toBe(201);
    return r.body;
  };

  it('skip_step: ungoverned approves a sanctioned customer without screening; governed refuses the program', async () => {
    const l = await lanes('skip_step', 'sanctions_exact');
    expect(l.baseline).toMatchObject({ status: 'completed', outcome: 'POLICY_BLOCKED' });
    expect(l.ungoverned).toMatchObject({ status: 'completed', outcome: 'APPROVED' });
    expect(l.ungoverned.path).not.toContain('screen_sanctions');
    expect(l.ungoverned.damage).toContain('approved without screening');
    expect(l.governed).toMatchObject({ status: 'refused', path: [] });
    expect(l.first_divergence.ungoverned_vs_baseline).toEqual({
      index: 2,
      baseline: 'screen_sanctions',
      other: 'adverse_media',
    });
  });

  it('the prompt-injection case: ungoverned calls approve_customer because the answer asked; governed never does', async () => {
    const l = await lanes(undefined, 'media_injection');
    expect(l.ungoverned.tool_calls).toContainEqual(
      expect.objectContaining({ tool: 'approve_customer', requested_by_model: true }),
    );
    expect(l.ungoverned.outcome).toBe('APPROVED');
    expect(l.governed).toMatchObject({ status: 'suspended' });
    expect(l.governed.counters.approve_customer_calls).toBe(0);
    expect(l.ungoverned.pii_sent_to_model).toEqual(['full_name', 'date_of_birth', 'email', 'document_number']);
  });

  it.each(Object.entries(EXPECT))(
    '%s: three lanes, the governed one caught, the ungoverned one damaged',
    async (id, { kase }) => {
      const l = await lanes(id, kase);
      expect(l.governed.detector).toMatchObject({ caught: true });
      expect(l.baseline.detector).toBeNull();
      expect(l.ungoverned.damage.length).toBeGreaterThan(0);
      const runs = (await call<{ runs: { run_id: string; lane: string }[] }>(base, 'GET', '/api/runs')).body.runs;
      expect(runs.find((r) => r.run_id === l.baseline.run_id)!.lane).toBe('baseline');
      expect(runs.find((r) => r.run_id === l.governed.run_id)!.lane).toBe('governed');
    },
  );
});
