// Time from a click on Run to the final status on the page, per seeded case, in the system's
// Chromium against the real server (in this process, SQLite store in a temp dir). A measurement,
// not a test: `npm run kyc:click-times [-- --repeat N]` after `npm run build`. The first pass warms
// the server and the page; the figures are from the next N passes (median, min, max).
import { existsSync } from 'node:fs';
import { CHROMIUM, openSession, runFromPage } from './browserSession.mjs';

if (!existsSync(CHROMIUM)) {
  console.error(`no measurement: ${CHROMIUM} is missing (set CHROMIUM to a Chromium binary)`);
  process.exit(2);
}
const i = process.argv.indexOf('--repeat');
const repeat = i > 0 ? Math.max(1, Number(process.argv[i + 1]) || 5) : 5;

const s = await openSession();
try {
  const cases = JSON.parse(await (await fetch(`${s.url}/api/meta`)).text()).cases.map((c) => c.id);
  for (const c of cases) await runFromPage(s.page, c); // warm-up
  console.log(`click → final status on the page (ms), ${repeat} runs per case after one warm-up pass`);
  console.log('case               median      min      max');
  for (const c of cases) {
    const ms = [];
    for (let k = 0; k < repeat; k++) ms.push(await runFromPage(s.page, c));
    ms.sort((a, b) => a - b);
    const f = (v) => v.toFixed(0).padStart(8);
    console.log(`${c.padEnd(16)} ${f(ms[Math.floor(ms.length / 2)])} ${f(ms[0])} ${f(ms[ms.length - 1])}`);
  }
} finally {
  await s.close();
}
