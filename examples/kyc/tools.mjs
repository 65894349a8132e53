// Tools for the KYC example: a sanctions screen against a small fixed list and a deterministic
// risk model. Both are simulations with realistic shapes; a deployment would call a screening
// provider and a scoring service here.
const SANCTIONS = [
  { name: 'viktor petrov', lists: ['OFAC-SDN'] },
  { name: 'hassan al-rashid', lists: ['UN-1267', 'EU-CFSP'] },
];
const HIGH_RISK_COUNTRIES = new Set(['IR', 'KP', 'SY', 'MM']);
const MEDIUM_RISK_COUNTRIES = new Set(['AE', 'PA', 'TR', 'NG']);

const norm = (s) =>
  s
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z\- ]/g, '')
    .replace(/\s+/g, ' ')
    .trim();

/** Similarity of two names on shared tokens: 1 for the same tokens, 0 for none. */
function similarity(a, b) {
  const ta = new Set(norm(a).split(' '));
  const tb = new Set(norm(b).split(' '));
  let shared = 0;
  for (const t of ta) if (tb.has(t)) shared++;
  return shared / Math.max(ta.size, tb.size);
}

export const tools = [
  {
    name: 'sanctions_screen',
    description: 'Screen a name against sanctions lists.',
    input_schema: {
      type: 'object',
      required: ['name', 'country'],
      properties: { name: { type: 'string' }, country: { type: 'string' } },
    },
    run: async ({ name }) => {
      let best = 0;
      let lists = [];
      for (const entry of SANCTIONS) {
        const s = similarity(name, entry.name);
        if (s > best) {
          best = s;
          lists = entry.lists;
        }
      }
      return { hit: best === 1, lists: best >= 0.5 ? lists : [], score: Math.round(best * 100) / 100 };
    },
  },
  {
    name: 'risk_score',
    description: 'Score onboarding risk from country, PEP status and expected volume.',
    input_schema: {
      type: 'object',
      required: ['country', 'pep', 'volume'],
      properties: { country: { type: 'string' }, pep: { type: 'boolean' }, volume: { type: 'number' } },
    },
    run: async ({ country, pep, volume }) => {
      const factors = [];
      let score = 10;
      if (HIGH_RISK_COUNTRIES.has(country)) ((score += 60), factors.push('high_risk_country'));
      else if (MEDIUM_RISK_COUNTRIES.has(country)) ((score += 25), factors.push('medium_risk_country'));
      if (pep) ((score += 30), factors.push('pep'));
      if (volume > 250000) ((score += 25), factors.push('very_high_volume'));
      else if (volume > 50000) ((score += 10), factors.push('high_volume'));
      score = Math.min(100, score);
      return { score, band: score >= 60 ? 'high' : score >= 30 ? 'medium' : 'low', factors };
    },
  },
];
