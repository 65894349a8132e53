/**
 * The planner is itself a nano-vm program (docs/planner.md): a model drafts (`draft`, an llm step
 * whose output type is the program schema), a built-in tool checks the draft (`check`: loader,
 * validator, policy pre-flight), and a guard on `steps.check.output.ok` either accepts it or loops
 * back to `draft`, whose projection then carries the previous draft and its issues. `max_visits` on
 * `draft` bounds the attempts; `on_exhausted` ends the run as NO_VALID_DRAFT. So a planning session
 * is an ordinary run: stored, listed, exportable, verifiable and replayable like any other.
 */
import { NanoVmError, PROGRAM_FORMAT, PROGRAM_SCHEMA, type JsonSchema, type Program } from '@nano-vm/kernel';

export const PLANNER_PROGRAM_ID = 'nano-vm.planner';
export const CHECK_TOOL = 'check_program';
export const DEFAULT_PLAN_ATTEMPTS = 3;
/** More attempts than this is a prompt problem, not a budget one. */
export const MAX_PLAN_ATTEMPTS = 20;
export const DRAFTED = 'DRAFTED';
export const NO_VALID_DRAFT = 'NO_VALID_DRAFT';

const ISSUE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['code', 'severity', 'message'],
  properties: {
    code: { type: 'string' },
    severity: { enum: ['error', 'warning'] },
    message: { type: 'string' },
    step: { type: 'string' },
    path: { type: 'string', description: 'JSON pointer into the draft (or the policy, for issues about its rules).' },
  },
};

/** What the check tool returns: the verdict and every issue (errors and warnings) of the draft. */
export const CHECK_OUTPUT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['ok', 'issues'],
  properties: {
    ok: { type: 'boolean', description: 'True when the draft has no errors (warnings allowed).' },
    issues: { type: 'array', items: ISSUE_SCHEMA },
  },
};

const TOOL_DESCRIPTION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string' },
    description: { type: 'string' },
    input_schema: { description: "The tool's input JSON Schema, when it declares one." },
    output_schema: { description: "The tool's output JSON Schema, when it declares one." },
  },
};

/** The planner run's input: the operator's intent, the tools a program may call, and the policy it must satisfy. */
export const PLANNER_INPUT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['intent', 'tools'],
  properties: {
    intent: { type: 'string', minLength: 1, maxLength: 20000 },
    tools: { type: 'array', items: TOOL_DESCRIPTION_SCHEMA },
    policy: { type: 'object', description: 'A nano-vm.policy/v1 document the drafted program must satisfy.' },
  },
};

/**
 * The program schema with every `$ref` replaced by its definition (and `$schema` dropped): the
 * same constraints, but without `$ref` siblings (`{$ref, description}`), which some providers'
 * structured-output front ends refuse. The definitions are not recursive, so this terminates.
 */
export function inlinedProgramSchema(): JsonSchema {
  const defs = PROGRAM_SCHEMA.$defs as Record<string, unknown>;
  const inline = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(inline);
    if (typeof node !== 'object' || node === null) return node;
    const { $ref, ...rest } = node as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    if (typeof $ref === 'string') {
      const name = /^#\/\$defs\/(.+)$/.exec($ref)?.[1];
      // program.schema.json ships with nano-vm: an unresolvable $ref is a bug in it, never in a program.
      if (name === undefined || !Object.hasOwn(defs, name))
        throw new NanoVmError('E_INTERNAL', `program schema: unresolvable $ref ${$ref}`);
      Object.assign(out, inline(defs[name]));
    }
    for (const [k, v] of Object.entries(rest)) {
      // `enum`/`const` values and `properties` names are data, not schemas; their values still are schemas.
      out[k] = k === 'enum' || k === 'const' ? v : inline(v);
    }
    return out;
  };
  const { $schema: _schema, $defs: _defs, ...root } = PROGRAM_SCHEMA;
  return inline(root) as JsonSchema;
}

const PROMPT = `You write programs for nano-vm, a governed runtime for LLM workflows. A program is data
(format ${PROGRAM_FORMAT}): steps with explicit edges. Step kinds: llm (asks a model; it sees only its
projection and must answer inside its output type, an enum or a JSON Schema), tool (calls one of the
available tools with arguments that are state paths or {value: literal}), condition (CEL guards over
input and steps.<id>.output choose the next step), parallel, wait, end (a named outcome; failure: true
for business failures). Every edge names an existing step, every step can reach an end step, every
cycle has a step with max_visits, and paths must be declared by input_schema or by a step's output
type.

Write a program for this intent:
{{input.intent}}

Use only the tools listed in the data (input.tools), with the arguments their input schemas declare.
If the data holds input.policy, the program must satisfy it (required steps, precedence, grants).
If the data holds a previous draft (steps.draft.output) and the issues found in it
(steps.check.output.issues), fix every issue and answer with the whole corrected program.`;

const cache = new Map<number, Program>();

/** The planner meta-program for `attempts` drafts (1..MAX_PLAN_ATTEMPTS). */
export function plannerProgram(attempts: number = DEFAULT_PLAN_ATTEMPTS): Program {
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > MAX_PLAN_ATTEMPTS)
    throw new RangeError(`attempts must be an integer from 1 to ${MAX_PLAN_ATTEMPTS}, got ${attempts}`);
  let program = cache.get(attempts);
  if (program) return program;
  program = {
    format: PROGRAM_FORMAT,
    id: PLANNER_PROGRAM_ID,
    version: '1',
    description: `Draft a nano-vm program from an intent and the available tools; check it (loader, validator, policy); feed the issues back; at most ${attempts} drafts.`,
    input_schema: PLANNER_INPUT_SCHEMA,
    // Each attempt enters draft, check and accept; one more step for the end.
    budgets: { max_steps: 3 * attempts + 2 },
    steps: [
      {
        id: 'draft',
        kind: 'llm',
        description: 'The model drafts a program (or a corrected one, given the previous draft and its issues).',
        prompt: PROMPT,
        projection: ['input.intent', 'input.tools', 'input.policy', 'steps.draft.output', 'steps.check.output.issues'],
        output: { schema: inlinedProgramSchema() },
        // A draft that does not fit the program schema never reaches the state, so it cannot be fed back; it is asked for again.
        on_error: { action: 'retry', max_attempts: 2 },
        timeout_ms: 600_000,
        max_visits: attempts,
        on_exhausted: 'no_valid_draft',
        next: 'check',
      },
      {
        id: 'check',
        kind: 'tool',
        description: 'Load and validate the draft against the tools, and pre-flight it against the policy.',
        tool: CHECK_TOOL,
        args: { program: 'steps.draft.output', tools: 'input.tools', policy: 'input.policy' },
        output_schema: CHECK_OUTPUT_SCHEMA,
        next: 'accept',
      },
      {
        id: 'accept',
        kind: 'condition',
        cases: [{ when: 'steps.check.output.ok', next: 'drafted' }],
        else: 'draft',
      },
      { id: 'drafted', kind: 'end', outcome: DRAFTED },
      { id: 'no_valid_draft', kind: 'end', outcome: NO_VALID_DRAFT, failure: true },
    ],
  };
  cache.set(attempts, program);
  return program;
}
