// Takes the screenshots of docs/img/kyc-*.png from the real app (run by `npm run kyc:screenshots`
// after `npm run build`): every image is a real run of the real server in the system's Chromium.
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, openSession, runFromPage } from './browserSession.mjs';

if (!existsSync(CHROMIUM)) {
  console.error(`no screenshots: ${CHROMIUM} is missing (set CHROMIUM to a Chromium binary)`);
  process.exit(2);
}
const out = fileURLToPath(new URL('../../../docs/img/', import.meta.url));
mkdirSync(out, { recursive: true });
const s = await openSession();
const { page } = s;
const shot = async (name, target) => {
  await (target ?? page).screenshot({ path: `${out}${name}`, ...(target ? {} : { fullPage: false }) });
  console.log(`wrote docs/img/${name}`);
};
const panel = (id) => page.getByTestId(`panel-${id}`);

try {
  // 1. The main view after a clean case: diagram with the path taken, result, audit agreeing.
  await runFromPage(page, 'clean_retail');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot('kyc-overview.png');

  // 2. An injection caught at pre-flight: the injector, its detector and the refusal.
  await runFromPage(page, 'media_injection', 'tool_injection');
  await await shot('kyc-tool-injection.png', panel('result'));

  // 3. Storage tampering: the browser's verifier and the server's agree the chain is broken, and where.
  await runFromPage(page, 'sanctions_exact', 'corrupt_receipt');
  await shot('kyc-audit-corrupt.png', panel('audit'));
  await shot('kyc-corrupt-evidence.png', panel('result'));

  // 4. Four-eyes: a PEP case waits; alice then bob approve in the inbox.
  await runFromPage(page, 'domestic_pep');
  const runId = (await page.getByTestId('run-id').innerText()).trim();
  const item = page.locator(`[data-testid=inbox] li[data-run="${runId}"]`);
  await item.locator('button[data-action=approve][data-reviewer=alice]').click();
  await page.getByTestId('inbox-notice').filter({ hasText: 'alice' }).waitFor();
  await shot('kyc-inbox.png', panel('inbox'));
  await item.locator('button[data-action=approve][data-reviewer=bob]').click();
  await page.getByTestId('run-outcome').filter({ hasText: 'APPROVED' }).waitFor();
  await page.locator('[data-testid=verify-agree][data-agree=true]').waitFor();
  await shot('kyc-receipt.png', panel('receipt'));

  // 5. Three lanes: a skipped screening step, without and with governance.
  await page.locator('input[name=case][value="sanctions_exact"]').check();
  await page.locator('input[name=injector][value="skip_step"]').check();
  await page.getByTestId('run-lanes').click();
  await page.getByTestId('lane-governed-status').filter({ hasText: 'refused' }).waitFor();
  await shot('kyc-lanes.png', panel('lanes'));

  // 6. Across runs: entropy and path variance with their thresholds.
  await page.getByLabel('Seeded runs to analyse').fill('60');
  await page.getByTestId('analyse').click();
  await page.getByTestId('analytics-summary').waitFor();
  await page.waitForTimeout(300);
  await shot('kyc-analytics.png', panel('analytics'));
} finally {
  await s.close();
}
