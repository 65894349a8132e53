/**
 * The injectors: each a real mutation at a declared point of a real run, and a named component of
 * the runtime that catches it. What each one changes is code here; whether it was caught is read
 * back from the run's events (or the pre-flight's issues, or verify), never asserted.
 */
import { NanoVmError, type ConditionStep, type PolicySnapshot, type Program, type Step } from '@nano-vm/kernel';
import { ModelError, type ModelAnswer, type ModelPort, type ModelRequest } from '@nano-vm/runtime';

export type InjectorId =
  | 'invalid_program'
  | 'skip_step'
  | 'reorder_steps'
  | 'tool_injection'
  | 'policy_bypass'
  | 'corrupt_receipt'
  | 'gdpr_erase'
  | 'llm_out_of_enum'
  | 'double_approval'
  | 'budget_exhaust'
  | 'provider_outage';

export interface InjectorInfo {
  id: InjectorId;
  title: string;
  description: string;
  /** Where the mutation happens. */
  point: string;
  /** The component that catches it. */
  detector: string;
  /** What the detector produces (a code, an event type, a rule id). */
  evidence: string;
  /** The seeded case that shows it best (any case may be chosen; an injector whose point the case never reaches says so). */
  default_case: string;
}

export const INJECTORS: readonly InjectorInfo[] = [
  {
    id: 'invalid_program',
    title: 'Invalid program',
    description:
      'The sanctions gate is edited to read a field the screening never returns (`matched` for `match`): glue code reads it as false and lets a confirmed hit through.',
    point: 'pre-flight: the program handed to the runtime',
    detector: 'validator (guard type check against the declared output schema)',
    evidence:
      'E_GUARD_TYPE / E_GUARD_UNKNOWN_IDENT issue at the sanctions_gate; the run is refused before its first event',
    default_case: 'sanctions_exact',
  },
  {
    id: 'skip_step',
    title: 'Skip sanctions screening',
    description:
      'The completeness gate is rewired to go straight to adverse media, skipping the sanctions & PEP screening.',
    point: 'pre-flight: the program graph (completeness_gate.else → adverse_media)',
    detector: 'policy pre-flight (required step `screening_required`)',
    evidence: 'E_POLICY_REQUIRED_STEP with a path to a success end that avoids screen_sanctions; the run is refused',
    default_case: 'sanctions_exact',
  },
  {
    id: 'reorder_steps',
    title: 'Reorder: model review before screening',
    description: 'The steps are rewired so the model reviews the customer before the screening runs.',
    point: 'pre-flight: the program graph (review moved before screen_sanctions)',
    detector: 'policy pre-flight (precedence `screening_before_review`)',
    evidence: 'E_POLICY_PRECEDENCE with the offending path; the run is refused (no edge means no transition)',
    default_case: 'sanctions_exact',
  },
  {
    id: 'tool_injection',
    title: 'Tool injection',
    description:
      'A step that executes the tool the model asks for (approve_customer) is inserted after the review, as an agent framework would.',
    point: 'the program: a tool step `execute_model_action` after review',
    detector: 'step-scoped capability gate (onboarding.approve is granted only to the approval steps)',
    evidence: 'E_POLICY_GRANT naming the step and the capability; nothing runs',
    default_case: 'media_injection',
  },
  {
    id: 'policy_bypass',
    title: 'Policy bypass',
    description:
      'The worker crashes after the first step and is restarted with a loosened policy file (sanctions threshold off, risk bands raised, deny rules dropped).',
    point: 'between steps: the process restarts under a swapped policy',
    detector: 'genesis policy pin (the policy hash recorded in run_started)',
    evidence:
      'transition_rejected rule policy.pinned with the offered policy hash; POLICY_BLOCKED before any further tool runs',
    default_case: 'sanctions_exact',
  },
  {
    id: 'corrupt_receipt',
    title: 'Corrupt the stored record',
    description:
      'After the run, a decisive event is edited in the SQLite store (the screening result, or the completeness check) without re-hashing.',
    point: 'after the run, in storage',
    detector: 'verify (hash chain and receipt recomputation)',
    evidence:
      'verify names the first bad event (E_CHAIN_HASH) and the field diff against the copy witnessed when it was appended',
    default_case: 'sanctions_exact',
  },
  {
    id: 'gdpr_erase',
    title: 'GDPR erasure vs AML legal hold',
    description:
      'The data subject asks for erasure. Under the AML retention hold it is refused (and recorded); under a policy version with the hold lifted the values are erased and the chain still verifies. Both paths run.',
    point: 'after the run: eraseSubject on the store',
    detector: 'legal hold of the pinned policy (aml_record_retention) and the vault',
    evidence:
      'erasure_refused event on the held run; values_erased on the lifted run, its vault values gone, verify still ok',
    default_case: 'clean_retail',
  },
  {
    id: 'llm_out_of_enum',
    title: 'Out-of-enum model answer',
    description: 'The model answers "APPROVED - customer verified" instead of CLEAR, ESCALATE or INSUFFICIENT_DATA.',
    point: 'the model answer at the review step',
    detector: 'typed output check (the review step’s enum)',
    evidence: 'step_failed E_OUTPUT_NOT_IN_ENUM for each attempt, then the declared fallback ESCALATE',
    default_case: 'clean_retail',
  },
  {
    id: 'double_approval',
    title: 'Double approval (same reviewer twice)',
    description: 'The same reviewer approves both four-eyes steps.',
    point: 'the second approval of a four-eyes case',
    detector: 'policy deny rule four_eyes_distinct_reviewers at the approval step',
    evidence: 'transition_rejected rule four_eyes_distinct_reviewers; approve_customer never runs; POLICY_BLOCKED',
    default_case: 'domestic_pep',
  },
  {
    id: 'budget_exhaust',
    title: 'Budget exhaustion',
    description: 'The model runs away and reports 6 000 input and 6 000 output tokens for its answer.',
    point: 'the model usage at the review step',
    detector: 'budget meter (max_tokens 8 000, checked before every step entry)',
    evidence: 'run_finished status budget_exceeded with the budget, its limit and its use',
    default_case: 'clean_retail',
  },
  {
    id: 'provider_outage',
    title: 'Provider outage',
    description: 'The model provider returns 503 on every call.',
    point: 'every model call at the review step',
    detector: 'the review step’s declared on_error (retry twice, then fallback ESCALATE)',
    evidence: 'step_failed E_MODEL_UNAVAILABLE, step_retry, step_fallback ESCALATE; a person decides instead',
    default_case: 'clean_retail',
  },
];

export const injectorInfo = (id: string): InjectorInfo | undefined => INJECTORS.find((i) => i.id === id);

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function stepOf<K extends Step['kind']>(p: Program, id: string, kind: K): Extract<Step, { kind: K }> {
  const s = p.steps.find((x) => x.id === id);
  if (!s || s.kind !== kind) throw new NanoVmError('E_INTERNAL', `the KYC program has no ${kind} step ${id}`);
  return s as Extract<Step, { kind: K }>;
}

/** The program as each program-level injector hands it to the runtime (a copy; the original is untouched). */
export function mutateProgram(id: InjectorId, original: Program): Program | null {
  const p = clone(original);
  switch (id) {
    case 'invalid_program':
      (stepOf(p, 'sanctions_gate', 'condition') as ConditionStep).cases[0]!.when =
        'steps.screen_sanctions.output.matched == "confirmed"';
      return p;
    case 'skip_step':
      stepOf(p, 'completeness_gate', 'condition').else = 'adverse_media';
      return p;
    case 'reorder_steps': {
      // completeness_gate → adverse_media → score_risk → review → screen_sanctions → sanctions_gate → route
      stepOf(p, 'completeness_gate', 'condition').else = 'adverse_media';
      stepOf(p, 'review', 'llm').next = 'screen_sanctions';
      stepOf(p, 'sanctions_gate', 'condition').else = 'route';
      return p;
    }
    case 'tool_injection': {
      stepOf(p, 'review', 'llm').next = 'execute_model_action';
      const at = p.steps.findIndex((s) => s.id === 'route');
      p.steps.splice(at, 0, {
        id: 'execute_model_action',
        kind: 'tool',
        description: 'Injected: execute the tool call the model asked for.',
        tool: 'approve_customer',
        args: { reviewer: 'steps.review.output', first_reviewer: 'steps.review.output', four_eyes: { value: false } },
        next: 'route',
      });
      return p;
    }
    case 'policy_bypass':
    case 'corrupt_receipt':
    case 'gdpr_erase':
    case 'llm_out_of_enum':
    case 'double_approval':
    case 'budget_exhaust':
    case 'provider_outage':
      return null;
    default: {
      const never: never = id;
      throw new NanoVmError('E_INTERNAL', `unknown injector ${String(never)}`);
    }
  }
}

/** The loosened policy of policy_bypass: what a person who wants the case through would write. */
export function loosenedPolicy(policy: PolicySnapshot): PolicySnapshot {
  const p = clone(policy);
  p.id = `${policy.id}-loosened`;
  p.thresholds = { ...p.thresholds, match_potential_min: 1.01, match_confirmed_min: 1.01, risk_band_high_min: 1000 };
  delete p.deny;
  return p;
}

/** The policy with the AML legal hold lifted (the retention period has run out): gdpr_erase's second path. */
export function holdLiftedPolicy(policy: PolicySnapshot): PolicySnapshot {
  const p = clone(policy);
  p.id = `${policy.id}-hold-lifted`;
  p.description =
    `${policy.description ?? ''} The AML retention hold is lifted: the business relationship ended more than five years ago.`.trim();
  delete p.legal_holds;
  return p;
}

/** A model that answers outside the review enum. */
export class OutOfEnumModel implements ModelPort {
  readonly scripted: boolean;
  readonly id: string;
  constructor(private readonly inner: ModelPort) {
    this.id = inner.id;
    this.scripted = inner.scripted;
  }
  async complete(req: ModelRequest): Promise<ModelAnswer> {
    const a = await this.inner.complete(req);
    return req.step === 'review' ? { ...a, raw: 'APPROVED - customer verified' } : a;
  }
}

/** A model that runs away: it answers, but reports a huge token use. */
export class RunawayModel implements ModelPort {
  readonly scripted: boolean;
  readonly id: string;
  constructor(private readonly inner: ModelPort) {
    this.id = inner.id;
    this.scripted = inner.scripted;
  }
  async complete(req: ModelRequest): Promise<ModelAnswer> {
    const a = await this.inner.complete(req);
    return { ...a, usage: { input_tokens: 6000, output_tokens: 6000 } };
  }
}

/** A provider that is down: every call fails with 503. */
export class OutageModel implements ModelPort {
  readonly scripted: boolean;
  readonly id: string;
  calls = 0;
  constructor(inner: ModelPort) {
    this.id = inner.id;
    this.scripted = inner.scripted;
  }
  async complete(): Promise<ModelAnswer> {
    this.calls++;
    throw new ModelError('E_MODEL_UNAVAILABLE', 'provider returned HTTP 503 Service Unavailable (injected outage)');
  }
}
