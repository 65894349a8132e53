/**
 * The approval inbox across a restart of the real `nano-vm kyc` process with a SQLite store in a
 * temp dir: a four-eyes case waits, the server stops, a new server on the same file lists it again,
 * and two distinct reviewers approve it from the page; the approved run's receipt names both and
 * its bundle verifies in the browser and with `nano-vm verify`. The same reviewer twice is refused
 * by the policy's four-eyes rule (a rejected transition) and the run ends POLICY_BLOCKED.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, SKIP, cliVerify, downloadBundle, launch, openApp, runFromPage } from './support.js';

interface Proc {
  url: string;
  child: ChildProcess;
}

/** `nano-vm kyc --port 0 --store sqlite:<db>`, resolved with the URL it prints. */
function startCli(db: string): Promise<Proc> {
  const child = spawn(process.execPath, [CLI, 'kyc', '--port', '0', '--store', `sqlite:${db}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) resolve({ url: m[1]!, child });
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => reject(new Error(`nano-vm kyc exited with ${code}: ${err}`)));
  });
}

function stop(p: Proc | undefined): Promise<void> {
  if (!p || p.child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.child.once('exit', () => resolve());
    p.child.kill('SIGTERM');
  });
}

describe.skipIf(SKIP !== null)('KYC simulator in Chromium: the approval inbox survives a restart', () => {
  let dir: string;
  let server: Proc | undefined;
  let browser: Browser;

  beforeAll(async () => {
    dir = mkdtempSync(`${tmpdir()}/kyc-restart-`);
    browser = await launch();
  });

  afterAll(async () => {
    await browser?.close();
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
  });

  const item = (page: Page, runId: string) => page.locator(`[data-testid=inbox] li[data-run="${runId}"]`);

  it('a four-eyes case waits, the server restarts, alice then bob approve it', async () => {
    server = await startCli(`${dir}/kyc.db`);
    let { page } = await openApp(browser, server.url);
    const shown = await runFromPage(page, 'domestic_pep');
    expect(shown.status).toBe('suspended');
    await item(page, shown.runId).waitFor();
    await page.close();

    await stop(server);
    server = await startCli(`${dir}/kyc.db`);
    let errors: string[];
    ({ page, errors } = await openApp(browser, server.url));
    const waiting = item(page, shown.runId);
    await waiting.waitFor();
    expect(await waiting.innerText()).toMatch(/four-eyes/);
    expect(await waiting.innerText()).toMatch(/first_approval/);

    await waiting.locator('button[data-action=approve][data-reviewer=alice]').click();
    await page.getByTestId('inbox-notice').filter({ hasText: 'alice' }).waitFor();
    // Still waiting, now for the second pair of eyes.
    await expect.poll(() => waiting.innerText()).toMatch(/second_approval/);
    expect(await waiting.innerText()).toMatch(/alice \(approve\)/);

    await waiting.locator('button[data-action=approve][data-reviewer=bob]').click();
    await page.getByTestId('run-outcome').filter({ hasText: 'APPROVED' }).waitFor();
    await waiting.waitFor({ state: 'detached' });
    const reviewers = await page.getByTestId('receipt-reviewers').innerText();
    expect(reviewers).toMatch(/alice/);
    expect(reviewers).toMatch(/bob/);

    await page.locator('[data-testid=verify-agree][data-agree=true]').waitFor();
    const head = await page.getByTestId('verify-browser').getAttribute('data-head');
    const cli = cliVerify(await downloadBundle(page, dir));
    expect(cli.valid).toBe(true);
    expect(cli.head_hash).toBe(head);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the same reviewer twice: four-eyes refuses the approval tool and the run ends POLICY_BLOCKED', async () => {
    const { page } = await openApp(browser, server!.url);
    const shown = await runFromPage(page, 'fuzzy_match');
    const waiting = item(page, shown.runId);
    await waiting.locator('button[data-action=approve][data-reviewer=alice]').click();
    await expect.poll(() => waiting.innerText()).toMatch(/second_approval/);
    await waiting.locator('button[data-action=approve][data-reviewer=alice]').click();
    await page.getByTestId('run-outcome').filter({ hasText: 'POLICY_BLOCKED' }).waitFor();
    expect(await page.getByTestId('rejected').innerText()).toContain('four_eyes_distinct_reviewers');
    expect(await page.getByTestId('inbox-notice').innerText()).toMatch(/POLICY_BLOCKED/);
    await page.locator('[data-testid=verify-agree][data-agree=true]').waitFor();
    expect(cliVerify(await downloadBundle(page, dir)).valid).toBe(true);
  });
});
