/**
 * Shared pieces of the simulator's browser tests: the system's Chromium through playwright-core,
 * the page's controls driven as a person drives them (click a case, an injector, Run), what the
 * page shows read back from it, and the real CLI's `nano-vm verify` on a downloaded bundle.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
export const CLI = `${repoRoot}packages/cli/dist/main.js`;
export const WEB_DIST = `${repoRoot}packages/kyc/web-dist/verify.js`;

/** Why the browser tests cannot run here, or null when they can. */
export function skipReason(): string | null {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing: the KYC browser tests need the system's Chromium`;
  if (!existsSync(CLI)) return `${CLI} is missing: run npm run build first`;
  if (!existsSync(WEB_DIST)) return `${WEB_DIST} is missing: run npm run build (scripts/buildWeb.mjs) first`;
  return null;
}

export const SKIP = skipReason();
if (SKIP) console.warn(`KYC browser tests skipped: ${SKIP}`);

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
    ],
  });
}

/** A page on the app with its uncaught errors collected (a test asserts there are none). */
export async function openApp(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1440, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.getByRole('heading', { name: 'KYC Governance Simulator' }).waitFor();
  await page.locator('[data-testid=stream-state]', { hasText: 'live' }).waitFor();
  return { page, errors };
}

export interface Shown {
  runId: string;
  status: string;
  outcome: string;
  detector: string;
  counters: Record<string, string>;
  evidence: string;
  rejectedRows: number;
  browser: { ok: string; code: string; head: string; firstBad: string };
  agree: string;
  clickToFinalMs: number;
}

/** Picks a case and an injector by their labels' radios, presses Run, waits for the final status and the audit. */
export async function runFromPage(page: Page, caseId: string, injector = ''): Promise<Shown> {
  await page.locator(`input[name=case][value="${caseId}"]`).check();
  await page.locator(`input[name=injector][value="${injector}"]`).check();
  // Each press of Run is numbered on the page, so a stale status of the previous run never passes for this one's.
  const t0 = Date.now();
  await pressRun(page, () => page.getByTestId('run').click());
  const clickToFinalMs = Date.now() - t0;
  await page.locator('[data-testid=verify-agree]:not([data-agree=""])').waitFor();
  return readShown(page, clickToFinalMs);
}

/** Presses Run (by `press`) and waits for this press's final status. */
export async function pressRun(page: Page, press: () => Promise<void>): Promise<void> {
  const previous = Number(await page.getByTestId('run').getAttribute('data-presses'));
  await press();
  await page.locator(`[data-testid=run-status][data-final=true][data-run-no="${previous + 1}"]`).waitFor();
}

export async function readShown(page: Page, clickToFinalMs = 0): Promise<Shown> {
  const text = async (id: string): Promise<string> => (await page.getByTestId(id).innerText()).trim();
  const counters: Record<string, string> = {};
  for (const el of await page.locator('[data-testid=counters] [data-counter]').all()) {
    const k = await el.getAttribute('data-counter');
    if (k) counters[k] = (await el.locator('dd').innerText()).trim();
  }
  const vb = page.getByTestId('verify-browser');
  const audited = (await vb.count()) > 0;
  const attr = async (name: string): Promise<string> => (audited ? ((await vb.getAttribute(name)) ?? '') : '');
  return {
    runId: await text('run-id'),
    status: await text('run-status'),
    outcome: await text('run-outcome'),
    detector: await text('detector'),
    counters,
    evidence: await text('evidence'),
    rejectedRows: await page.locator('[data-testid=rejected] > li').count(),
    browser: {
      ok: await attr('data-ok'),
      code: await attr('data-code'),
      head: await attr('data-head'),
      firstBad: await attr('data-first-bad'),
    },
    agree: (await page.getByTestId('verify-agree').getAttribute('data-agree')) ?? '',
    clickToFinalMs,
  };
}

/** Clicks the page's download link, saves the bundle, returns its path. */
export async function downloadBundle(page: Page, dir: string): Promise<string> {
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('bundle-download').click()]);
  const file = `${dir}/${download.suggestedFilename()}`;
  await download.saveAs(file);
  return file;
}

export interface CliVerdict {
  valid: boolean;
  code?: string;
  first_bad_seq?: number | null;
  head_hash?: string;
  event_count?: number;
  exit: number | null;
}

/** The real CLI: `nano-vm verify <file> --json`. */
export function cliVerify(file: string): CliVerdict {
  const r = spawnSync(process.execPath, [CLI, 'verify', file, '--json'], { encoding: 'utf8' });
  const out = JSON.parse(r.stdout) as Omit<CliVerdict, 'exit'>;
  return { ...out, exit: r.status };
}

export interface Kyc {
  /** With a trailing slash. */
  url: string;
  close(): Promise<void>;
}

/** The real server, in this process, on a free port, with a SQLite store in `dir`. */
export async function startKyc(dir: string): Promise<Kyc> {
  const { startServer } = await import('@nano-vm/kyc');
  const s = await startServer({ store: `${dir}/kyc.db`, port: 0 });
  return { url: `${s.url}/`, close: () => s.close() };
}
