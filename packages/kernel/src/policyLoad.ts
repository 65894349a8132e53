/**
 * Policy loader: text (YAML or JSON) -> PolicySnapshot, or issues with file:line:col, exactly as
 * programs are loaded (load.ts). Everything about the document alone is checked here
 * (E_POLICY_INVALID); how it fits a program is validatePolicy's job.
 */
import type { Issue } from './errors.js';
import { excerpt } from './excerpt.js';
import { compileGuard } from './guard/index.js';
import { locateIssues, parseSource, type LoadOptions, type SourceMap } from './load.js';
import { POLICY_FORMAT, POLICY_SCHEMA, policyRules, type PolicySnapshot } from './policy.js';
import { checkShape } from './validateShape.js';

export interface PolicyLoadResult {
  /** Present only when there are no errors. */
  policy?: PolicySnapshot;
  issues: Issue[];
  sourceMap?: SourceMap;
}

export function loadPolicy(text: string, opts: LoadOptions = {}): PolicyLoadResult {
  const parsed = parseSource(text, opts);
  if (!('value' in parsed)) return parsed;
  const result = policyFromValue(parsed.value, {
    ...(parsed.sourceMap !== undefined ? { sourceMap: parsed.sourceMap } : {}),
    ...(opts.file !== undefined ? { file: opts.file } : {}),
  });
  return { ...result, ...(parsed.sourceMap !== undefined ? { sourceMap: parsed.sourceMap } : {}) };
}

const invalid = (path: string, message: string): Issue => ({
  code: 'E_POLICY_INVALID',
  severity: 'error',
  path,
  message,
});

/** Checks an already-parsed value (a bundle's policy, a request body) as a policy document. */
export function policyFromValue(
  value: unknown,
  opts: { sourceMap?: SourceMap; file?: string } = {},
): { policy?: PolicySnapshot; issues: Issue[] } {
  const issues: Issue[] = [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    issues.push(
      invalid(
        '',
        `a policy must be a mapping with format: ${POLICY_FORMAT} and id; got ${value === null || value === undefined ? 'an empty document' : Array.isArray(value) ? 'a list' : `a ${typeof value}`}`,
      ),
    );
  } else if ((value as { format?: unknown }).format !== POLICY_FORMAT) {
    const f = (value as { format?: unknown }).format;
    issues.push(
      invalid(
        f === undefined ? '' : '/format',
        f === undefined
          ? `missing 'format: ${POLICY_FORMAT}' (is this a nano-vm policy?)`
          : `format must be '${POLICY_FORMAT}', got ${JSON.stringify(f)}`,
      ),
    );
  } else {
    for (const f of checkShape(value, POLICY_SCHEMA)) issues.push(invalid(f.path, f.message));
    if (issues.length === 0) issues.push(...ruleProblems(value as PolicySnapshot));
  }
  const located = locateIssues(issues, opts.sourceMap, opts.file);
  return located.length === 0 ? { policy: value as PolicySnapshot, issues: located } : { issues: located };
}

function ruleProblems(p: PolicySnapshot): Issue[] {
  const out: Issue[] = [];
  const seen = new Map<string, string>();
  for (const { id, path } of policyRules(p)) {
    if (id.startsWith('policy.'))
      out.push(
        invalid(path, `rule id '${id}' is reserved (ids starting with 'policy.' name the runtime's own decisions)`),
      );
    const first = seen.get(id);
    if (first !== undefined)
      out.push(
        invalid(
          path,
          `rule id '${id}' is used twice (first at ${first.slice(1)}); every decision names its rule, so ids must be unique`,
        ),
      );
    else seen.set(id, path);
  }
  p.deny?.forEach((d, i) => {
    if (d.step === undefined && d.tool === undefined && d.capability === undefined)
      out.push(
        invalid(
          `/deny/${i}`,
          `deny rule '${d.id}' names no step, tool or capability, so it would deny every tool call; name what it denies`,
        ),
      );
    if (d.when !== undefined) {
      // Syntax and the governed subset only here; types are checked against the program (validatePolicy).
      const r = compileGuard(d.when);
      if (!r.ok)
        out.push(
          invalid(
            `/deny/${i}/when`,
            `deny rule '${d.id}': ${r.error.code}: ${r.error.message} (guard column ${r.error.column}: ${excerpt(d.when, r.error.column - 1)})`,
          ),
        );
    }
  });
  return out;
}
