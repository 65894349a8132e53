/**
 * JSON Schema (2020-12) of the program DSL v1. `packages/kernel/program.schema.json` is the same
 * document for editors (`# yaml-language-server: $schema=...`), written from this value by
 * `npm run build` (packages/kernel/scripts/writeSchemas.mjs); a test keeps the two identical.
 * It lives here as a TS value so the kernel needs no JSON import and runs unchanged in a browser.
 *
 * The schema is the structural contract only. Graph rules (targets, reachability, cycles),
 * declared-field rules (projections, guards) and tool rules are the validator's job (validate.ts).
 */

const stepId = {
  type: 'string',
  pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
  maxLength: 128,
  description:
    'A step id: letters, digits and _, not starting with a digit, so guards can name it (steps.<id>.output).',
};

const statePath = {
  type: 'string',
  pattern: '^(input|steps\\.[A-Za-z_][A-Za-z0-9_]*\\.output)(\\.[^.\\s{}]+)*$',
  description: 'A path into the run state: `input`, `input.<field>...` or `steps.<id>.output...`.',
};

const inputPath = {
  type: 'string',
  pattern: '^input(\\.[^.\\s{}]+)*$',
  description: 'A path into the run input: `input` or `input.<field>...`.',
};

const stepCommon = {
  id: {
    $ref: '#/$defs/stepId',
    description: 'Unique id of the step (unique across the program, parallel children included).',
  },
  description: { type: 'string', description: 'What the step is for (free text, shown in traces and docs).' },
};

const visits = {
  max_visits: {
    type: 'integer',
    minimum: 1,
    description:
      'Upper bound on how often a run may enter this step. Every cycle needs at least one step with max_visits.',
  },
  on_exhausted: {
    $ref: '#/$defs/stepId',
    description: 'Step to go to when max_visits is exhausted; without it the run fails with E_MAX_VISITS.',
  },
};

const effectCommon = {
  timeout_ms: {
    type: 'integer',
    minimum: 1,
    description: 'Time limit for one attempt of the effect, in milliseconds.',
  },
  on_error: {
    $ref: '#/$defs/onError',
    description: 'What happens when the effect fails, times out or returns an invalid output (default: fail).',
  },
};

const llmFields = {
  ...stepCommon,
  kind: { const: 'llm', description: 'An llm step asks a model and checks its answer against `output`.' },
  prompt: {
    type: 'string',
    minLength: 1,
    description: 'Prompt template. `{{path}}` placeholders may only name paths covered by `projection`.',
  },
  projection: {
    type: 'array',
    items: { $ref: '#/$defs/statePath' },
    uniqueItems: true,
    description: 'State paths the model may see. Nothing else from the state reaches the prompt.',
  },
  output: { $ref: '#/$defs/llmOutput', description: 'The declared answer type: an enum of strings or a JSON Schema.' },
  ...effectCommon,
};

const toolFields = {
  ...stepCommon,
  kind: { const: 'tool', description: "A tool step calls a tool from the host's registry." },
  tool: { type: 'string', minLength: 1, description: "Name of the tool in the host's tool registry." },
  args: {
    type: 'object',
    description: 'Arguments: name -> state path (string) or `{ value: <literal> }`.',
    additionalProperties: { $ref: '#/$defs/toolArg' },
  },
  output_schema: {
    $ref: '#/$defs/jsonSchema',
    description: 'JSON Schema the tool result must satisfy; guards are typed by it.',
  },
  ...effectCommon,
};

const next = { $ref: '#/$defs/stepId', description: 'The step that follows.' };

export const PROGRAM_SCHEMA: Record<string, unknown> = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'nano-vm program (nano-vm.program/v1)',
  description:
    'A nano-vm program: steps with explicit edges, an input schema, budgets and declared projections. Reference: docs/dsl.md.',
  type: 'object',
  additionalProperties: false,
  required: ['format', 'id', 'input_schema', 'steps'],
  properties: {
    format: { const: 'nano-vm.program/v1', description: 'DSL format and version. Must be nano-vm.program/v1.' },
    id: { type: 'string', minLength: 1, maxLength: 256, description: 'Program id (stable across versions).' },
    version: { type: 'string', description: 'Program version label, e.g. 1.2.0.' },
    description: { type: 'string', description: 'What the program does.' },
    input_schema: {
      $ref: '#/$defs/jsonSchema',
      description: 'JSON Schema of the run input. Guards, projections and sensitive paths are checked against it.',
    },
    sensitive: {
      type: 'array',
      items: { $ref: '#/$defs/inputPath' },
      uniqueItems: true,
      description: 'Input paths whose values are masked in every prompt (e.g. input.customer.email).',
    },
    subject: {
      $ref: '#/$defs/inputPath',
      description:
        "Input path whose value names the data subject of a run (e.g. input.customer.email); `nano-vm erase --subject` erases that subject's sensitive values.",
    },
    budgets: {
      $ref: '#/$defs/budgets',
      description: 'Run budgets; exceeding one ends the run with status budget_exceeded.',
    },
    start: { $ref: '#/$defs/stepId', description: 'First step; defaults to the first step in `steps`.' },
    steps: {
      type: 'array',
      minItems: 1,
      items: { $ref: '#/$defs/step' },
      description: 'The steps. Control flow follows only the edges they declare.',
    },
  },
  $defs: {
    stepId,
    statePath,
    inputPath,
    jsonSchema: {
      type: ['object', 'boolean'],
      description: 'A JSON Schema (2020-12), as an object or a boolean.',
    },
    jsonValue: { description: 'Any JSON value.' },
    budgets: {
      type: 'object',
      additionalProperties: false,
      description: 'Limits on one run. Every budget must be positive.',
      properties: {
        max_steps: {
          type: 'integer',
          minimum: 1,
          description: 'Most steps a run may enter (parallel children not counted).',
        },
        max_tokens: { type: 'integer', minimum: 1, description: 'Most model tokens (input + output) a run may use.' },
        max_cost_usd: {
          type: 'number',
          exclusiveMinimum: 0,
          description: 'Most model cost in US dollars a run may use.',
        },
        max_wall_ms: {
          type: 'integer',
          minimum: 1,
          description: 'Most wall-clock time a run may take, in milliseconds.',
        },
        max_stalled_steps: {
          type: 'integer',
          minimum: 1,
          description:
            'Most consecutive effect steps whose output leaves the state unchanged; then the run ends as stalled.',
        },
      },
    },
    onError: {
      description:
        "What happens when a step's effect fails (error, timeout, invalid output); `action` selects the shape.",
      oneOf: [{ $ref: '#/$defs/onErrorFail' }, { $ref: '#/$defs/onErrorRetry' }, { $ref: '#/$defs/onErrorFallback' }],
    },
    onErrorFail: {
      type: 'object',
      additionalProperties: false,
      required: ['action'],
      description: 'Fail the run (status failed).',
      properties: { action: { const: 'fail', description: 'Fail the run.' } },
    },
    onErrorRetry: {
      type: 'object',
      additionalProperties: false,
      required: ['action', 'max_attempts'],
      description: 'Retry the effect up to max_attempts times in all, then fail or fall back.',
      properties: {
        action: { const: 'retry', description: 'Retry the effect.' },
        max_attempts: {
          type: 'integer',
          minimum: 1,
          maximum: 100,
          description: 'Attempts in all, the first included.',
        },
        then: {
          enum: ['fail', 'fallback'],
          description: 'What happens after the last failed attempt (default: fail).',
        },
        value: {
          $ref: '#/$defs/jsonValue',
          description: "The fallback output when then is fallback. It must satisfy the step's output type.",
        },
      },
      if: { properties: { then: { const: 'fallback' } }, required: ['then'] },
      then: { required: ['value'] },
    },
    onErrorFallback: {
      type: 'object',
      additionalProperties: false,
      required: ['action', 'value'],
      description: "Use a declared value as the step's output.",
      properties: {
        action: { const: 'fallback', description: 'Use the declared value.' },
        value: { $ref: '#/$defs/jsonValue', description: "The output to use. It must satisfy the step's output type." },
      },
    },
    llmOutput: {
      description: 'The answer type of an llm step: `enum` (one of these strings) or `schema` (a JSON Schema).',
      oneOf: [
        {
          type: 'object',
          additionalProperties: false,
          required: ['enum'],
          properties: {
            enum: {
              type: 'array',
              items: { type: 'string' },
              minItems: 1,
              uniqueItems: true,
              description: 'The answer must be exactly one of these strings.',
            },
          },
        },
        {
          type: 'object',
          additionalProperties: false,
          required: ['schema'],
          properties: {
            schema: { $ref: '#/$defs/jsonSchema', description: 'The answer must satisfy this JSON Schema.' },
          },
        },
      ],
    },
    toolArg: {
      description: 'A state path, or a literal `{ value: ... }`.',
      oneOf: [
        { $ref: '#/$defs/statePath' },
        {
          type: 'object',
          additionalProperties: false,
          required: ['value'],
          properties: { value: { $ref: '#/$defs/jsonValue', description: 'A literal argument value.' } },
        },
      ],
    },
    step: {
      description: 'A step; `kind` (llm, tool, condition, parallel, wait, end) selects its shape.',
      oneOf: [
        { $ref: '#/$defs/llmStep' },
        { $ref: '#/$defs/toolStep' },
        { $ref: '#/$defs/conditionStep' },
        { $ref: '#/$defs/parallelStep' },
        { $ref: '#/$defs/waitStep' },
        { $ref: '#/$defs/endStep' },
      ],
    },
    llmStep: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'kind', 'prompt', 'projection', 'output', 'next'],
      dependentRequired: { on_exhausted: ['max_visits'] },
      description: 'Asks a model. It sees only `projection`, answers inside `output`, then the run goes to `next`.',
      properties: { ...llmFields, next, ...visits },
    },
    toolStep: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'kind', 'tool', 'next'],
      dependentRequired: { on_exhausted: ['max_visits'] },
      description: 'Calls a tool with `args`, checks the result against `output_schema`, then goes to `next`.',
      properties: { ...toolFields, next, ...visits },
    },
    conditionStep: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'kind', 'cases', 'else'],
      dependentRequired: { on_exhausted: ['max_visits'] },
      description: 'Branches on guards: the first case whose `when` holds decides; otherwise `else`.',
      properties: {
        ...stepCommon,
        kind: { const: 'condition', description: 'A condition step branches on guards; it has no output.' },
        cases: {
          type: 'array',
          minItems: 1,
          description: 'Evaluated in order; the first true guard decides.',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['when', 'next'],
            description: 'A guarded edge.',
            properties: {
              when: {
                type: 'string',
                minLength: 1,
                description: 'Guard expression (CEL subset, docs/guards.md); must be bool.',
              },
              next: { $ref: '#/$defs/stepId', description: 'The step to go to when the guard holds.' },
            },
          },
        },
        else: { $ref: '#/$defs/stepId', description: 'The step to go to when no case holds.' },
        ...visits,
      },
    },
    parallelStep: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'kind', 'children', 'next'],
      dependentRequired: { on_exhausted: ['max_visits'] },
      description: 'Runs llm/tool children concurrently; its output is { <child id>: <child output> }.',
      properties: {
        ...stepCommon,
        kind: { const: 'parallel', description: 'A parallel step runs its children concurrently.' },
        children: {
          type: 'array',
          minItems: 1,
          items: { $ref: '#/$defs/parallelChild' },
          description: 'llm or tool steps without `next`; the trace records them in this order.',
        },
        max_concurrency: { type: 'integer', minimum: 1, description: 'Most children running at once (default: all).' },
        next,
        ...visits,
      },
    },
    parallelChild: {
      description:
        'A child of a parallel step: an llm or tool step (by `kind`) without next, max_visits or on_exhausted.',
      oneOf: [{ $ref: '#/$defs/llmChild' }, { $ref: '#/$defs/toolChild' }],
    },
    llmChild: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'kind', 'prompt', 'projection', 'output'],
      description: 'An llm child of a parallel step.',
      properties: llmFields,
    },
    toolChild: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'kind', 'tool'],
      description: 'A tool child of a parallel step.',
      properties: toolFields,
    },
    waitStep: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'kind', 'event', 'next'],
      dependentRequired: { on_exhausted: ['max_visits'], on_timeout: ['timeout_ms'] },
      description:
        'Suspends the run until an external event arrives (human approval, webhook); the event payload, checked against `event`, becomes the step output.',
      properties: {
        ...stepCommon,
        kind: { const: 'wait', description: 'A wait step suspends the run until `nano-vm resume` delivers an event.' },
        event: {
          $ref: '#/$defs/jsonSchema',
          description: 'JSON Schema of the event payload; guards on steps.<id>.output are typed by it.',
        },
        role: {
          type: 'string',
          minLength: 1,
          description: 'The role that may send the event; a resume by another role is refused.',
        },
        timeout_ms: {
          type: 'integer',
          minimum: 1,
          description: 'How long the run may wait, from its suspension, in milliseconds.',
        },
        on_timeout: {
          $ref: '#/$defs/stepId',
          description: 'Where the run goes when the wait times out (without it the run fails with E_WAIT_TIMEOUT).',
        },
        next,
        ...visits,
      },
    },
    endStep: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'kind', 'outcome'],
      description: 'Ends the run as completed with a named outcome.',
      properties: {
        ...stepCommon,
        kind: { const: 'end', description: 'An end step finishes the run with status completed.' },
        outcome: {
          type: 'string',
          minLength: 1,
          description: 'Named outcome, e.g. SUCCESS, REJECTED, POLICY_BLOCKED.',
        },
        failure: {
          type: 'boolean',
          description: 'Marks a failure outcome (a business failure; the run still completes).',
        },
      },
    },
  },
};
