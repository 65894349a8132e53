/**
 * The web app's documentation holds to the code: docs/kyc.md names every seeded case and every
 * injector the engine has, every image it or the README shows exists, and every screenshot the
 * script writes is shown somewhere. (No browser needed.)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { INJECTORS } from '@nano-vm/kyc';
import { repoRoot } from './support.js';

const doc = readFileSync(`${repoRoot}docs/kyc.md`, 'utf8');
const readme = readFileSync(`${repoRoot}README.md`, 'utf8');
const cases = readdirSync(`${repoRoot}examples/kyc-aml/inputs`)
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.replace(/\.json$/, ''));

describe('docs/kyc.md', () => {
  it('describes every seeded case and every injector', () => {
    expect(cases.length).toBeGreaterThan(0);
    for (const c of cases) expect(doc, c).toContain(`| \`${c}\` |`);
    for (const i of INJECTORS) expect(doc, i.id).toContain(`| \`${i.id}\` |`);
  });

  it('shows images that exist, and every screenshot the script takes', () => {
    const shown = [...doc.matchAll(/\]\((img\/[^)]+\.png)\)/g)].map((m) => `docs/${m[1]}`);
    const inReadme = [...readme.matchAll(/\]\((docs\/img\/kyc-[^)]+\.png)\)/g)].map((m) => m[1]);
    expect(inReadme.length).toBeGreaterThan(0);
    for (const f of [...shown, ...inReadme]) expect(existsSync(`${repoRoot}${f}`), f).toBe(true);
    const script = readFileSync(`${repoRoot}packages/kyc/scripts/screenshots.mjs`, 'utf8');
    const taken = [...script.matchAll(/shot\('(kyc-[a-z-]+\.png)'/g)].map((m) => `docs/img/${m[1]}`);
    expect(taken.length).toBeGreaterThan(0);
    expect([...taken].sort()).toEqual([...new Set(shown)].sort());
  });
});
