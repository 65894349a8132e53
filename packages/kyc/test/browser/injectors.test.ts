/**
 * Every injector, fired from the page on its default case against the real server in Chromium:
 * the page names the detector and shows it caught the mutation, the final status, the refusal or
 * rejected transition, and the evidence; for every run that left a trace, the page's in-browser
 * verdict equals `nano-vm verify` on the bundle downloaded from the page (a valid run and the
 * corrupted one alike). The three lanes are checked on two injectors.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SKIP, cliVerify, downloadBundle, launch, openApp, runFromPage, startKyc, type Kyc } from './support.js';

interface Want {
  status: string;
  outcome?: string;
  /** Pre-flight refusal: the code the validator gives. */
  preflight?: RegExp;
  /** A rejected-transition rule shown in the evidence table. */
  rule?: string;
  verify?: { ok: boolean; code?: string };
  counter?: [string, (n: number) => boolean];
  evidence?: RegExp;
}

const EXPECTED: Record<string, Want> = {
  invalid_program: { status: 'refused', preflight: /E_GUARD_/ },
  skip_step: { status: 'refused', preflight: /E_POLICY_REQUIRED_STEP/ },
  reorder_steps: { status: 'refused', preflight: /E_POLICY_PRECEDENCE/ },
  tool_injection: { status: 'refused', preflight: /E_POLICY_GRANT/ },
  policy_bypass: { status: 'failed', outcome: 'POLICY_BLOCKED', rule: 'policy.pinned', verify: { ok: true } },
  corrupt_receipt: { status: 'completed', verify: { ok: false, code: 'E_CHAIN_HASH' }, evidence: /E_CHAIN_HASH/ },
  gdpr_erase: {
    status: 'completed',
    outcome: 'APPROVED',
    verify: { ok: true },
    evidence: /erasure_refused|values_erased/,
  },
  llm_out_of_enum: {
    status: 'suspended',
    verify: { ok: true },
    counter: ['rejected_outputs', (n) => n > 0],
    evidence: /E_OUTPUT_NOT_IN_ENUM/,
  },
  double_approval: {
    status: 'failed',
    outcome: 'POLICY_BLOCKED',
    rule: 'four_eyes_distinct_reviewers',
    verify: { ok: true },
  },
  budget_exhaust: { status: 'budget_exceeded', verify: { ok: true } },
  provider_outage: {
    status: 'suspended',
    verify: { ok: true },
    counter: ['fallbacks', (n) => n === 1],
    evidence: /E_MODEL_UNAVAILABLE/,
  },
};

interface InjectorMeta {
  id: string;
  detector: string;
  default_case: string;
}

describe.skipIf(SKIP !== null)('KYC simulator in Chromium: injectors', () => {
  let kyc: Kyc;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let dir: string;
  let injectors: InjectorMeta[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(`${tmpdir()}/kyc-injectors-`);
    kyc = await startKyc(dir);
    injectors = ((await (await fetch(`${kyc.url}api/meta`)).json()) as { injectors: InjectorMeta[] }).injectors;
    browser = await launch();
    ({ page, errors } = await openApp(browser, kyc.url));
  });

  afterAll(async () => {
    await browser?.close();
    await kyc?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('offers exactly the injectors this test knows', () => {
    expect(injectors.map((i) => i.id).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [id, want] of Object.entries(EXPECTED)) {
    it(`${id}: caught by its detector, with the status and evidence on the page`, async () => {
      const inj = injectors.find((i) => i.id === id)!;
      const shown = await runFromPage(page, inj.default_case, id);
      expect(shown.status).toBe(want.status);
      if (want.outcome) expect(shown.outcome).toBe(want.outcome);
      expect(shown.detector).toBe(inj.detector);
      expect(await page.getByTestId('caught').innerText()).toBe('caught');

      if (want.preflight) {
        const pf = page.getByTestId('preflight');
        expect(await pf.getAttribute('data-ok')).toBe('false');
        expect(await pf.innerText()).toMatch(want.preflight);
        expect(shown.rejectedRows).toBeGreaterThan(0);
        expect(shown.agree).toBe('none'); // nothing stored, nothing to verify
        expect(await page.getByTestId('bundle-download').count()).toBe(0);
        return;
      }
      if (want.rule) expect(await page.getByTestId('rejected').innerText()).toContain(want.rule);
      if (want.evidence) expect(shown.evidence).toMatch(want.evidence);
      if (want.counter) expect(want.counter[1](Number(shown.counters[want.counter[0]]))).toBe(true);

      const cli = cliVerify(await downloadBundle(page, dir));
      expect(shown.agree).toBe('true');
      expect(cli.valid).toBe(want.verify!.ok);
      expect(shown.browser.ok).toBe(String(want.verify!.ok));
      if (cli.valid) {
        expect(cli.exit).toBe(0);
        expect(shown.browser.head).toBe(cli.head_hash);
      } else {
        expect(cli.exit).toBe(1);
        expect(cli.code).toBe(want.verify!.code);
        expect(shown.browser.code).toBe(cli.code);
        expect(shown.browser.firstBad).toBe(String(cli.first_bad_seq));
      }
    });
  }

  it('three lanes for tool_injection: the naive executor calls approve_customer, the governed lane is refused', async () => {
    await page.locator('input[name=case][value="media_injection"]').check();
    await page.locator('input[name=injector][value="tool_injection"]').check();
    await page.getByTestId('run-lanes').click();
    await page.getByTestId('lane-governed-status').filter({ hasNotText: '—' }).waitFor();
    expect(await page.getByTestId('lane-governed-status').innerText()).toBe('refused');
    expect(await page.getByTestId('lane-ungoverned').getByTestId('damage').innerText()).toMatch(/approve_customer/);
    expect(await page.getByTestId('divergence').getAttribute('data-index')).toMatch(/^\d+$/);
  });

  it('three lanes for skip_step: the ungoverned lane skips screening and approves a sanctioned customer', async () => {
    await page.locator('input[name=case][value="sanctions_exact"]').check();
    await page.locator('input[name=injector][value="skip_step"]').check();
    await page.getByTestId('run-lanes').click();
    await page.getByTestId('lane-baseline-outcome').filter({ hasText: 'POLICY_BLOCKED' }).waitFor();
    expect(await page.getByTestId('lane-ungoverned-leaves').innerText()).toMatch(
      /adverse_media instead of screen_sanctions/,
    );
    expect(await page.getByTestId('lane-ungoverned-outcome').innerText()).toBe('APPROVED');
    expect(await page.getByTestId('lane-governed-nopath').innerText()).toMatch(/refused at pre-flight/);
    expect(await page.getByTestId('lane-governed-status').innerText()).toBe('refused');
    expect(errors).toEqual([]);
  });
});
