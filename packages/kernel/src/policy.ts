/**
 * The policy model (`nano-vm.policy/v1`, docs/policy.md): a snapshot of rules a program runs
 * under. It is data, like a program; its hash is pinned in the run's genesis event and carried by
 * every policy decision in the trace. `policy.schema.json` is the machine-readable form of these
 * types, written from POLICY_SCHEMA by `npm run build` (a test keeps the two identical).
 */

export const POLICY_FORMAT = 'nano-vm.policy/v1';

/** A step id named by a rule must exist in the program (checked by validatePolicy). */
export interface RequiredStepRule {
  id: string;
  step: string;
  description?: string;
}

/** `before` must have been entered before `after` is entered, on every path. */
export interface PrecedenceRule {
  id: string;
  before: string;
  after: string;
  description?: string;
}

/**
 * What a step may do. A tool call is allowed when the step holds every capability the tool
 * declares (`tools.<name>.capabilities`) and, for a tool that declares none, a grant names the
 * tool itself. So a capability held by one step only (e.g. `approval.write` in
 * `human_approval`) confines every tool that needs it to that step.
 */
export interface GrantRule {
  id: string;
  step: string;
  tools?: string[];
  capabilities?: string[];
  description?: string;
}

/**
 * Deny overrides allow: a tool call matching a deny rule is rejected whatever the grants say.
 * A rule matches on every field it sets (step, tool, a capability the tool needs) and, with
 * `when`, only when that guard (the program's CEL subset, over input, steps, policy and the
 * call's `args`) is true.
 */
export interface DenyRule {
  id: string;
  step?: string;
  tool?: string;
  capability?: string;
  when?: string;
  reason?: string;
}

/** Erasure of personal data in runs of `programs` (every program when absent) is refused. */
export interface LegalHold {
  id: string;
  reason: string;
  programs?: string[];
}

export type ThresholdValue = number | string | boolean;

export interface PolicySnapshot {
  format: typeof POLICY_FORMAT;
  id: string;
  version?: string;
  description?: string;
  /** When set, the program's hash (SHA-256 of its canonical JSON) must equal it. */
  program_hash?: string;
  required_steps?: RequiredStepRule[];
  precedence?: PrecedenceRule[];
  /** Capabilities each tool needs. */
  tools?: Record<string, { capabilities: string[] }>;
  grants?: GrantRule[];
  deny?: DenyRule[];
  /** Values the program's guards read as `policy.thresholds.<name>`. */
  thresholds?: Record<string, ThresholdValue>;
  legal_holds?: LegalHold[];
}

/**
 * Rule ids the runtime itself decides with (a policy may not declare them): a tool call no grant
 * covers, and a run whose policy changed after genesis.
 */
export const DEFAULT_DENY_RULE = 'policy.default_deny';
export const POLICY_PINNED_RULE = 'policy.pinned';

/** The outcome and error code of a run that a policy stopped. */
export const POLICY_BLOCKED_OUTCOME = 'POLICY_BLOCKED';
export const POLICY_BLOCKED_CODE = 'E_POLICY_BLOCKED';

/** The legal hold that covers runs of `programId`, or null. */
export function legalHoldFor(policy: PolicySnapshot | null | undefined, programId: string): LegalHold | null {
  for (const hold of policy?.legal_holds ?? [])
    if (hold.programs === undefined || hold.programs.includes(programId)) return hold;
  return null;
}

/** Every rule with its id and where it sits in the document (for duplicate-id checks and messages). */
export function policyRules(policy: PolicySnapshot): Array<{ id: string; path: string }> {
  const out: Array<{ id: string; path: string }> = [];
  const add = (list: Array<{ id: string }> | undefined, name: string) =>
    list?.forEach((r, i) => out.push({ id: r.id, path: `/${name}/${i}/id` }));
  add(policy.required_steps, 'required_steps');
  add(policy.precedence, 'precedence');
  add(policy.grants, 'grants');
  add(policy.deny, 'deny');
  add(policy.legal_holds, 'legal_holds');
  return out;
}

const ruleId = {
  type: 'string',
  pattern: '^[A-Za-z_][A-Za-z0-9_.:-]*$',
  maxLength: 128,
  description:
    'Rule id, unique in the policy; recorded with every decision the rule makes. Ids starting with `policy.` are reserved.',
};
const stepRef = {
  type: 'string',
  pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
  maxLength: 128,
  description: 'A step id of the program.',
};
const name = { type: 'string', minLength: 1, maxLength: 256, description: 'A tool or capability name.' };
const names = (description: string) => ({ type: 'array', items: name, uniqueItems: true, description });
const description = { type: 'string', description: 'What the rule is for (free text).' };

/** JSON Schema (2020-12) of the policy format; `packages/kernel/policy.schema.json` is the same document. */
export const POLICY_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'nano-vm policy (nano-vm.policy/v1)',
  description:
    'Rules a nano-vm program runs under: required steps, precedence, step-scoped grants, deny rules, thresholds, legal holds. See docs/policy.md.',
  type: 'object',
  additionalProperties: false,
  required: ['format', 'id'],
  properties: {
    format: { const: POLICY_FORMAT, description: 'Policy format and version.' },
    id: { type: 'string', minLength: 1, maxLength: 256, description: 'Policy id, stable across versions.' },
    version: { type: 'string', description: 'Version label, e.g. "3".' },
    description: { type: 'string', description: 'What the policy is for.' },
    program_hash: {
      type: 'string',
      pattern: '^[0-9a-f]{64}$',
      description: 'Pins the program: SHA-256 (hex) of its canonical JSON, as in run_started.program_hash.',
    },
    required_steps: {
      type: 'array',
      description: 'Steps every successful run must pass through.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'step'],
        properties: { id: ruleId, step: stepRef, description },
      },
    },
    precedence: {
      type: 'array',
      description: 'Ordering constraints: `before` is entered before `after`, on every path.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'before', 'after'],
        properties: { id: ruleId, before: stepRef, after: stepRef, description },
      },
    },
    tools: {
      type: 'object',
      description: 'Capabilities each tool needs, by tool name.',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['capabilities'],
        properties: { capabilities: names('Capabilities a step must hold to call the tool.') },
      },
    },
    grants: {
      type: 'array',
      description: 'Step-scoped grants: the tools a step may call and the capabilities it holds.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'step'],
        properties: {
          id: ruleId,
          step: stepRef,
          tools: names('Tools the step may call.'),
          capabilities: names('Capabilities the step holds.'),
          description,
        },
      },
    },
    deny: {
      type: 'array',
      description: 'Deny rules; deny overrides allow.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id'],
        properties: {
          id: ruleId,
          step: stepRef,
          tool: name,
          capability: name,
          when: {
            type: 'string',
            minLength: 1,
            description:
              'Guard (CEL subset) over input, steps, policy and args; the rule applies only when it is true.',
          },
          reason: { type: 'string', description: 'Recorded in the transition_rejected event.' },
        },
      },
    },
    thresholds: {
      type: 'object',
      description: 'Named values guards read as policy.thresholds.<name>.',
      additionalProperties: { type: ['number', 'string', 'boolean'], description: 'A threshold value.' },
    },
    legal_holds: {
      type: 'array',
      description: 'Legal holds: erasure of personal data in runs of these programs is refused.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'reason'],
        properties: {
          id: ruleId,
          reason: { type: 'string', minLength: 1, description: 'Why erasure is refused (recorded with the refusal).' },
          programs: names('Program ids the hold covers; every program when absent.'),
        },
      },
    },
  },
} as const;
