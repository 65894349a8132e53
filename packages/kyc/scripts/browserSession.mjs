// What the screenshot and timing scripts share: the real server (in this process, from the built
// package, with a SQLite store in a temp dir) and the system's Chromium driving the real page.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export async function openSession({ width = 1440, height = 1000 } = {}) {
  const { startServer } = await import('../dist/index.js');
  const dir = mkdtempSync(`${tmpdir()}/kyc-session-`);
  const server = await startServer({ store: `${dir}/kyc.db`, port: 0 });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
    ],
  });
  const page = await browser.newPage({ viewport: { width, height }, deviceScaleFactor: 1 });
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${server.url}/`);
  await page.locator('[data-testid=stream-state]', { hasText: 'live' }).waitFor();
  return {
    page,
    url: server.url,
    async close() {
      await browser.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Picks a case and an injector, presses Run, waits for this press's final status and the audit; returns ms from the click. */
export async function runFromPage(page, caseId, injector = '') {
  await page.locator(`input[name=case][value="${caseId}"]`).check();
  await page.locator(`input[name=injector][value="${injector}"]`).check();
  const previous = Number(await page.getByTestId('run').getAttribute('data-presses'));
  const t0 = performance.now();
  await page.getByTestId('run').click();
  await page.locator(`[data-testid=run-status][data-final=true][data-run-no="${previous + 1}"]`).waitFor();
  const ms = performance.now() - t0;
  await page.locator('[data-testid=verify-agree]:not([data-agree=""])').waitFor();
  return ms;
}
