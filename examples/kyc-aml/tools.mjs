// Tools of the KYC/AML program (examples/kyc-aml). Deterministic simulations with realistic shapes
// over pinned, ILLUSTRATIVE fixtures: a screening list and an adverse-media corpus (each with a
// version and the SHA-256 of its file, recorded in every run's trace), fuzzy name matching, and a
// risk score whose weights, bands and country lists are read from the policy's thresholds.
// A deployment would call a screening provider, a media service and a scoring service here.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const here = (f) => new URL(f, import.meta.url);

/** A pinned fixture: its parsed content, version and the SHA-256 of its bytes. */
export function loadFixture(file) {
  const bytes = readFileSync(here(file));
  const doc = JSON.parse(bytes.toString('utf8'));
  return { doc, version: doc.version, hash: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

/** Lower case, accents removed, punctuation to spaces, tokens sorted (word order does not matter). */
export function normaliseName(s) {
  return s
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z ]+/g, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .sort()
    .join(' ');
}

/** Jaro-Winkler similarity (0..1) — the usual measure for name screening. */
export function jaroWinkler(a, b) {
  if (a === b) return 1;
  if (!a.length || !b.length) return 0;
  const range = Math.max(0, Math.floor(Math.max(a.length, b.length) / 2) - 1);
  const am = new Array(a.length).fill(false);
  const bm = new Array(b.length).fill(false);
  let matches = 0;
  for (let i = 0; i < a.length; i++) {
    for (let j = Math.max(0, i - range); j < Math.min(b.length, i + range + 1); j++) {
      if (bm[j] || a[i] !== b[j]) continue;
      am[i] = bm[j] = true;
      matches++;
      break;
    }
  }
  if (!matches) return 0;
  let t = 0;
  for (let i = 0, k = 0; i < a.length; i++) {
    if (!am[i]) continue;
    while (!bm[k]) k++;
    if (a[i] !== b[k]) t++;
    k++;
  }
  const jaro = (matches / a.length + matches / b.length + (matches - t / 2) / matches) / 3;
  let prefix = 0;
  while (prefix < 4 && a[prefix] === b[prefix]) prefix++;
  return jaro + prefix * 0.1 * (1 - jaro);
}

const round = (x) => Math.round(x * 1000) / 1000;
const num = (t, k) => {
  const v = t[k];
  if (typeof v !== 'number') throw new Error(`policy threshold ${k} must be a number`);
  return v;
};
const list = (t, k) =>
  new Set(
    String(t[k] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** The tools, configured by the policy in force (its thresholds hold the weights and bands). */
export function createTools(policy) {
  const t = policy?.thresholds ?? {};
  const screening = loadFixture('./fixtures/sanctions-pep.json');
  const media = loadFixture('./fixtures/adverse-media.json');
  const policyLabel = `${policy?.id ?? 'none'}@${policy?.version ?? '?'}`;
  return [
    {
      name: 'collect_customer',
      description: 'Collect the customer record and check its completeness (identity document present and unexpired).',
      input_schema: { type: 'object', required: ['customer'], properties: { customer: { type: 'object' } } },
      run: async ({ customer }) => {
        const missing = [];
        if (!customer.document_type) missing.push('document_type');
        if (!customer.document_number || String(customer.document_number).length < 6) missing.push('document_number');
        if (!customer.document_expiry) missing.push('document_expiry');
        return { complete: missing.length === 0, missing };
      },
    },
    {
      name: 'screen_sanctions_pep',
      description: 'Screen a name against the pinned sanctions and PEP list with fuzzy matching.',
      input_schema: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'date_of_birth', 'nationality'],
        properties: { name: { type: 'string' }, date_of_birth: { type: 'string' }, nationality: { type: 'string' } },
      },
      run: async ({ name, date_of_birth }) => {
        const n = normaliseName(name);
        let best = { score: 0, entry: null };
        let pep = { score: 0, entry: null };
        for (const entry of screening.doc.entries) {
          const score = Math.max(...[entry.name, ...entry.aliases].map((x) => jaroWinkler(n, normaliseName(x))));
          const slot = entry.category === 'pep' ? pep : best;
          if (score > slot.score) ((slot.score = score), (slot.entry = entry));
        }
        const potentialMin = num(t, 'match_potential_min');
        const confirmedMin = num(t, 'match_confirmed_min');
        const dobMatch = best.entry ? best.entry.date_of_birth === date_of_birth : false;
        // A name at the confirmed similarity is a confirmed hit only with the same date of birth.
        const match =
          best.score >= confirmedMin && dobMatch ? 'confirmed' : best.score >= potentialMin ? 'potential' : 'none';
        const isPep = pep.score >= confirmedMin;
        return {
          list_version: screening.version,
          list_hash: screening.hash,
          match,
          score: round(best.score),
          matched_id: match === 'none' ? '' : best.entry.id,
          matched_list: match === 'none' ? '' : best.entry.list,
          dob_match: match === 'none' ? false : dobMatch,
          pep: isPep,
          pep_id: isPep ? pep.entry.id : '',
        };
      },
    },
    {
      name: 'search_adverse_media',
      description: 'Search the pinned adverse-media corpus for articles about a name.',
      input_schema: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
      run: async ({ name }) => {
        const n = normaliseName(name);
        const found = media.doc.articles.filter((a) => jaroWinkler(n, normaliseName(a.subject)) >= 0.95);
        const order = ['none', 'low', 'medium', 'high'];
        const max = found.reduce((m, a) => (order.indexOf(a.severity) > order.indexOf(m) ? a.severity : m), 'none');
        return {
          corpus_version: media.version,
          corpus_hash: media.hash,
          hits: found.length,
          max_severity: max,
          articles: found.map(({ id, source, severity, headline, excerpt }) => ({
            id,
            source,
            severity,
            headline,
            excerpt,
          })),
        };
      },
    },
    {
      name: 'score_risk',
      description: 'Deterministic risk score from the policy weights: each factor with its rule id and points.',
      input_schema: {
        type: 'object',
        additionalProperties: false,
        required: [
          'nationality',
          'residence_country',
          'pep_declared',
          'pep_listed',
          'match',
          'media_severity',
          'account',
        ],
        properties: {
          nationality: { type: 'string' },
          residence_country: { type: 'string' },
          pep_declared: { type: 'boolean' },
          pep_listed: { type: 'boolean' },
          match: { type: 'string' },
          media_severity: { type: 'string' },
          account: { type: 'object' },
        },
      },
      run: async (a) => {
        const factors = [];
        const add = (rule, weight, detail) => factors.push({ rule: `risk.${rule}`, points: num(t, weight), detail });
        add('base', 'risk_base_points', 'every customer');
        const high = list(t, 'risk_countries_high');
        const medium = list(t, 'risk_countries_medium');
        if (high.has(a.residence_country))
          add('residence_high', 'risk_weight_residence_high', `resides in ${a.residence_country}`);
        else if (medium.has(a.residence_country))
          add('residence_medium', 'risk_weight_residence_medium', `resides in ${a.residence_country}`);
        if (high.has(a.nationality))
          add('nationality_high', 'risk_weight_nationality_high', `national of ${a.nationality}`);
        if (a.pep_declared || a.pep_listed)
          add('pep', 'risk_weight_pep', a.pep_listed ? 'on the PEP list' : 'declared a political exposure');
        if (a.match === 'potential') add('potential_match', 'risk_weight_potential_match', 'potential sanctions match');
        if (a.media_severity === 'high') add('media_high', 'risk_weight_media_high', 'high-severity adverse media');
        else if (a.media_severity === 'medium')
          add('media_medium', 'risk_weight_media_medium', 'medium-severity adverse media');
        else if (a.media_severity === 'low') add('media_low', 'risk_weight_media_low', 'low-severity adverse media');
        const volume = a.account.expected_monthly_volume_eur;
        if (volume > num(t, 'risk_volume_very_high_eur'))
          add('volume_very_high', 'risk_weight_volume_very_high', `expects ${volume} EUR a month`);
        else if (volume > num(t, 'risk_volume_high_eur'))
          add('volume_high', 'risk_weight_volume_high', `expects ${volume} EUR a month`);
        if (a.account.product === 'business_current')
          add('business_product', 'risk_weight_business_product', 'business account');
        if (a.account.source_of_funds === 'other')
          add('source_other', 'risk_weight_source_other', 'source of funds: other');
        const score = factors.reduce((s, f) => s + f.points, 0);
        const band =
          score >= num(t, 'risk_band_high_min') ? 'HIGH' : score >= num(t, 'risk_band_medium_min') ? 'MEDIUM' : 'LOW';
        return { score, band, factors, policy: policyLabel };
      },
    },
    {
      name: 'approve_customer',
      description: 'Record the onboarding approval (the only tool that approves a customer).',
      input_schema: {
        type: 'object',
        additionalProperties: false,
        required: ['reviewer', 'first_reviewer', 'four_eyes'],
        properties: {
          reviewer: { type: 'string' },
          first_reviewer: { type: 'string' },
          four_eyes: { type: 'boolean' },
        },
      },
      run: async ({ reviewer, first_reviewer, four_eyes }, ctx) => ({
        approval_id: `apr_${String(ctx?.idempotencyKey ?? '').slice(0, 12)}`,
        reviewers: four_eyes ? [first_reviewer, reviewer] : [reviewer],
      }),
    },
  ];
}

/** For `nano-vm run examples/kyc-aml`: the tools under the policy beside this file. */
export const tools = createTools(parse(readFileSync(here('./policy.yaml'), 'utf8')));
