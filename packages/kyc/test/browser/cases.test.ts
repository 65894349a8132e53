/**
 * Every seeded case, clicked in the real page in Chromium against the real server: what the page
 * shows (status, outcome, counters, evidence, receipt, inbox) is checked against the bundle the
 * page offers for download, and the page's in-browser verification against `nano-vm verify` run
 * by the real CLI on that file. Click-to-final-status times are logged (not asserted).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeReceipt, type Bundle } from '@nano-vm/kernel';
import { rechain } from '../../../../test/support/independent.js';
import {
  CLI,
  SKIP,
  cliVerify,
  downloadBundle,
  launch,
  openApp,
  pressRun,
  runFromPage,
  startKyc,
  type Kyc,
} from './support.js';

/** What the issue asks of each case (examples/kyc-aml/inputs); `null` outcome: the run waits. */
const EXPECTED: Record<
  string,
  { status: string; outcome: string | null; modelCalls?: number; fourEyes?: boolean; rejectedOutputs?: boolean }
> = {
  clean_retail: { status: 'completed', outcome: 'APPROVED' },
  sanctions_exact: { status: 'completed', outcome: 'POLICY_BLOCKED', modelCalls: 0 },
  fuzzy_match: { status: 'suspended', outcome: null, fourEyes: true },
  domestic_pep: { status: 'suspended', outcome: null, fourEyes: true },
  missing_id: { status: 'completed', outcome: 'INSUFFICIENT_DATA', modelCalls: 0 },
  media_injection: { status: 'suspended', outcome: null, rejectedOutputs: true },
};

describe.skipIf(SKIP !== null)('KYC simulator in Chromium: seeded cases', () => {
  let kyc: Kyc;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let dir: string;
  const times: Record<string, number> = {};

  beforeAll(async () => {
    dir = mkdtempSync(`${tmpdir()}/kyc-cases-`);
    kyc = await startKyc(dir);
    browser = await launch();
    ({ page, errors } = await openApp(browser, kyc.url));
  });

  afterAll(async () => {
    if (Object.keys(times).length) console.log(`click → final status (ms): ${JSON.stringify(times)}`);
    await browser?.close();
    await kyc?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists exactly the seeded cases this test knows, and badges the scripted model and the fixtures', async () => {
    const meta = (await (await fetch(`${kyc.url}api/meta`)).json()) as { cases: { id: string }[] };
    expect(meta.cases.map((c) => c.id).sort()).toEqual(Object.keys(EXPECTED).sort());
    expect(await page.locator('input[name=case]').count()).toBe(meta.cases.length + 1);
    await expect.poll(() => page.getByTestId('badge-model').innerText()).toMatch(/scripted/i);
    expect(await page.getByTestId('badge-fixtures').innerText()).toMatch(/illustrative/i);
    expect(await page.getByTestId('policy-hash').innerText()).toMatch(/^[0-9a-f]{64}$/);
  });

  for (const [caseId, want] of Object.entries(EXPECTED)) {
    it(`${caseId}: the page shows the run, its counters match the bundle, and the browser's verification matches nano-vm verify`, async () => {
      const shown = await runFromPage(page, caseId);
      times[caseId] = shown.clickToFinalMs;
      expect(shown.status).toBe(want.status);
      expect(shown.outcome).toBe(want.outcome ?? '—');

      // The bundle the page offers: the counters shown are the trace's.
      const file = await downloadBundle(page, dir);
      const bundle = JSON.parse(readFileSync(file, 'utf8')) as Bundle;
      const receipt = computeReceipt(bundle.events);
      expect(receipt.run_id).toBe(shown.runId);
      expect(Number(shown.counters.events)).toBe(bundle.events.length);
      expect(Number(shown.counters.model_calls)).toBe(receipt.counts.model_calls);
      expect(Number(shown.counters.tool_calls)).toBe(receipt.counts.tool_calls);
      expect(Number(shown.counters.blocked_actions)).toBe(receipt.counts.blocked_actions);
      if (want.modelCalls !== undefined) expect(Number(shown.counters.model_calls)).toBe(want.modelCalls);
      if (want.rejectedOutputs) expect(Number(shown.counters.rejected_outputs)).toBeGreaterThan(0);

      // In the browser and in the CLI: the same verdict on the same file.
      const cli = cliVerify(file);
      expect(cli.valid).toBe(true);
      expect(cli.exit).toBe(0);
      expect(shown.browser.ok).toBe('true');
      expect(shown.browser.head).toBe(cli.head_hash);
      expect(shown.browser.head).toBe(receipt.head_hash);
      expect(shown.agree).toBe('true');

      // The human receipt is the trace's: its head hash and decision.
      const hr = page.getByTestId('human-receipt');
      expect(await hr.getByTestId('receipt-decision').innerText()).toBe(want.outcome ?? 'PENDING_APPROVAL');
      expect(await hr.locator('code.hash').last().getAttribute('title')).toBe(receipt.head_hash);

      // The diagram shows the end step reached, or the step the run waits at.
      const last = receipt.path[receipt.path.length - 1]!;
      await expect
        .poll(() => page.locator(`[data-testid=diagram] [data-step="${last}"]`).getAttribute('data-state'))
        .toBe(want.status === 'suspended' ? 'waiting' : 'reached');

      if (want.status === 'suspended') {
        const item = page.locator(`[data-testid=inbox] li[data-run="${shown.runId}"]`);
        await item.waitFor();
        if (want.fourEyes) expect(await item.innerText()).toMatch(/four-eyes/);
      }
      // Every trace event of the run came through the live stream, with its hash.
      await page
        .locator('[data-testid=stream] li', { hasText: receipt.head_hash.slice(0, 12) })
        .first()
        .waitFor();
    });
  }

  it('a bundle exported and signed by the CLI verifies in the page with its signature, as nano-vm verify --key says', async () => {
    const shown = await runFromPage(page, 'clean_retail');
    const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    expect(cli('keygen', '--out', `${dir}/operator`).status).toBe(0);
    expect(cli('keygen', '--out', `${dir}/stranger`).status).toBe(0);
    const file = `${dir}/signed.bundle.json`;
    const exported = cli(
      'export',
      shown.runId,
      '--store',
      `sqlite:${dir}/kyc.db`,
      '--out',
      file,
      '--sign',
      `${dir}/operator.key`,
    );
    expect(exported.status, exported.stderr).toBe(0);

    const check = async (bundle: string, key: string) => {
      const details = page.locator('details.file-verify');
      if ((await details.getAttribute('open')) === null) await details.locator('summary').click();
      await page.getByLabel('Bundle (.json)').setInputFiles(bundle);
      await page.getByLabel('Signature (.sig, optional)').setInputFiles(`${file}.sig`);
      await page.getByLabel('Trusted public key (.pub, optional)').setInputFiles(key);
      const previous = (await page.getByTestId('file-verify').count())
        ? await page.getByTestId('file-verify').innerText()
        : '';
      await page.getByTestId('file-verify-run').click();
      await expect
        .poll(async () =>
          (await page.getByTestId('file-verify').count())
            ? await page.getByTestId('file-verify').innerText()
            : previous,
        )
        .not.toBe(previous);
      const el = page.getByTestId('file-verify');
      const verdict = JSON.parse(cli('verify', bundle, '--key', key, '--sig', `${file}.sig`, '--json').stdout) as {
        valid: boolean;
        code?: string;
        signature?: { key_id: string };
      };
      return {
        ok: await el.getAttribute('data-ok'),
        code: await el.getAttribute('data-code'),
        text: await el.innerText(),
        cli: verdict,
      };
    };

    const good = await check(file, `${dir}/operator.pub`);
    expect(good.ok).toBe('true');
    expect(good.cli.valid).toBe(true);
    expect(good.text).toContain(good.cli.signature!.key_id);

    const stranger = await check(file, `${dir}/stranger.pub`);
    expect(stranger.ok).toBe('false');
    expect(stranger.cli.valid).toBe(false);
    expect(stranger.code).toBe('E_SIGNATURE_UNTRUSTED');
    expect(stranger.cli.code).toBe('E_SIGNATURE_UNTRUSTED');

    // The outcome edited and everything re-chained: the chain holds, the signature does not.
    const edited = `${dir}/edited.bundle.json`;
    writeFileSync(
      edited,
      JSON.stringify(
        rechain(JSON.parse(readFileSync(file, 'utf8')) as Bundle, (b) => {
          const last = b.events[b.events.length - 1] as unknown as Record<string, unknown>;
          last.outcome = 'REJECTED';
        }),
      ),
    );
    const rechained = await check(edited, `${dir}/operator.pub`);
    expect(rechained.ok).toBe('false');
    expect(rechained.code).toBe(rechained.cli.code);
    expect(rechained.code).toBe('E_SIGNATURE_MISMATCH');
  });

  it('a custom case that does not fit the input schema is refused with its path, and nothing is stored', async () => {
    const count = async () => ((await (await fetch(`${kyc.url}api/runs`)).json()) as { runs: unknown[] }).runs.length;
    const before = await count();
    await page.locator('input[name=case][value="__custom"]').check();
    await page.locator('input[name=injector][value=""]').check();
    await page.getByLabel('Applicant input (JSON)').fill('{"customer": {"full_name": 42}, "account": {}}');
    await page.getByTestId('run').click();
    const err = page.getByTestId('run-error');
    await err.waitFor();
    expect(await err.innerText()).toMatch(/E_INPUT_INVALID/);
    const after = await count();
    expect(after).toBe(before);
  });

  it('is driven by the keyboard alone: arrow keys pick a case, Space presses Run', async () => {
    await page.locator('input[name=case]').first().focus();
    await page.keyboard.press('ArrowDown'); // the second seeded case
    const second = await page.locator('input[name=case]').nth(1).getAttribute('value');
    expect(await page.locator('input[name=case]:checked').getAttribute('value')).toBe(second);
    await page.getByTestId('run').focus();
    await pressRun(page, () => page.keyboard.press('Space'));
    expect(await page.getByTestId('run-outcome').innerText()).not.toBe('');
    expect(errors).toEqual([]);
  });
});
