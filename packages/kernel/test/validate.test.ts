import { describe, expect, it } from 'vitest';
import type { Issue } from '../src/errors.js';
import { loadProgram } from '../src/load.js';
import type { Program } from '../src/program.js';
import {
  VALIDATION_CODES,
  validateProgram as validateProgramUnrecorded,
  type ToolDescription,
} from '../src/validate.js';

/** Codes the tests below produced; the last test checks they are exactly VALIDATION_CODES. */
const produced = new Set<string>();
const validateProgram: typeof validateProgramUnrecorded = (program, opts) => {
  const issues = validateProgramUnrecorded(program, opts);
  for (const i of issues) produced.add(i.code);
  return issues;
};

/** A valid program; line numbers below refer to this listing (line n = BASE[n - 1]). */
const BASE = [
  'format: nano-vm.program/v1', // 1
  'id: refund', // 2
  'input_schema:', // 3
  '  type: object', // 4
  '  additionalProperties: false', // 5
  '  properties:', // 6
  '    amount: { type: number }', // 7
  '    email: { type: string }', // 8
  '    customer:', // 9
  '      type: object', // 10
  '      properties:', // 11
  '        tier: { type: string }', // 12
  'sensitive: [input.email]', // 13
  'steps:', // 14
  '  - id: classify', // 15
  '    kind: llm', // 16
  '    prompt: "Amount {{input.amount}}, tier {{input.customer.tier}}"', // 17
  '    projection: [input.amount, input.customer]', // 18
  '    output: { enum: [approve, deny] }', // 19
  '    next: route', // 20
  '  - id: route', // 21
  '    kind: condition', // 22
  '    cases:', // 23
  '      - when: steps.classify.output == "approve" && input.amount <= 500', // 24
  '        next: refund', // 25
  '    else: denied', // 26
  '  - id: refund', // 27
  '    kind: tool', // 28
  '    tool: issue_refund', // 29
  '    args: { amount: input.amount, note: { value: approved } }', // 30
  '    output_schema: { type: object, additionalProperties: false, properties: { refund_id: { type: string } } }', // 31
  '    next: done', // 32
  '  - id: done', // 33
  '    kind: end', // 34
  '    outcome: REFUNDED', // 35
  '  - id: denied', // 36
  '    kind: end', // 37
  '    outcome: DENIED', // 38
  '    failure: true', // 39
];

const TOOLS: Record<string, ToolDescription> = {
  issue_refund: {
    input_schema: {
      type: 'object',
      additionalProperties: false,
      required: ['amount'],
      properties: { amount: { type: 'number' }, note: { type: 'string' } },
    },
    output_schema: { type: 'object' },
  },
};

/** BASE with lines replaced (1-based line -> new text, may span lines; null deletes the line). */
function edit(changes: Record<number, string | null>): string {
  return (
    BASE.flatMap((line, i) => {
      const change = changes[i + 1];
      return change === undefined ? [line] : change === null ? [] : [change];
    }).join('\n') + '\n'
  );
}

/** Loads (which must succeed) and validates with positions. */
function check(text: string, tools?: Record<string, ToolDescription>): Issue[] {
  const loaded = loadProgram(text, { file: 'refund.yaml' });
  expect(loaded.issues).toEqual([]);
  return validateProgram(loaded.program!, {
    sourceMap: loaded.sourceMap!,
    file: 'refund.yaml',
    ...(tools ? { tools } : {}),
  });
}

/** Code, step, path, line, col of each issue. */
function brief(issues: Issue[]) {
  return issues.map((i) => ({ code: i.code, step: i.step, path: i.path, line: i.line, col: i.col }));
}

const program = (): Program => loadProgram(edit({})).program!;

describe('validateProgram: a valid program', () => {
  it('has no issues, with or without the host tools', () => {
    expect(check(edit({}))).toEqual([]);
    expect(check(edit({}), TOOLS)).toEqual([]);
  });

  it('does not change the program', () => {
    const p = program();
    const before = JSON.stringify(p);
    validateProgram(p, { tools: TOOLS });
    expect(JSON.stringify(p)).toBe(before);
  });
});

describe('E_DUPLICATE_ID', () => {
  it('flags the second declaration', () => {
    const issues = check(edit({ 36: '  - id: done' }));
    expect(brief(issues)).toEqual([
      { code: 'E_MISSING_TARGET', step: 'route', path: '/steps/1/else', line: 26, col: 5 },
      { code: 'E_DUPLICATE_ID', step: 'done', path: '/steps/4/id', line: 36, col: 5 },
    ]);
    expect(issues[1]!.message).toBe(
      "step id 'done' is already declared at steps/3/id; ids must be unique (parallel children included)",
    );
  });

  it('flags a parallel child that reuses a step id', () => {
    const text = edit({
      32: '    next: checks',
      33: '  - id: checks\n    kind: parallel\n    children:\n      - { id: fraud, kind: tool, tool: fraud_score }\n      - { id: classify, kind: tool, tool: ledger }\n    next: done\n  - id: done',
    });
    expect(brief(check(text))).toEqual([
      { code: 'E_DUPLICATE_ID', step: 'classify', path: '/steps/3/children/1/id', line: 37, col: 11 },
    ]);
  });
});

describe('E_MISSING_TARGET', () => {
  it('checks next, with a suggestion', () => {
    const issues = check(edit({ 20: '    next: rout' }));
    expect(brief(issues)).toEqual([
      // No E_UNREACHABLE follow-ons: the fixed edge may well reach them.
      { code: 'E_MISSING_TARGET', step: 'classify', path: '/steps/0/next', line: 20, col: 5 },
    ]);
    expect(issues[0]!.message).toBe(
      "step 'classify': next names step 'rout', which does not exist (did you mean 'route'?)",
    );
    expect(issues[0]!.file).toBe('refund.yaml');
  });

  it('checks cases[].next and else', () => {
    expect(brief(check(edit({ 25: '        next: refnd', 26: '    else: nowhere' })))).toEqual([
      { code: 'E_MISSING_TARGET', step: 'route', path: '/steps/1/cases/0/next', line: 25, col: 9 },
      { code: 'E_MISSING_TARGET', step: 'route', path: '/steps/1/else', line: 26, col: 5 },
    ]);
  });

  it('still reports what no fix of a missing target can reach', () => {
    // 'orphan' has the typo, but nothing reaches 'orphan' itself: fixing it cannot make it reachable.
    const issues = check(`${edit({})}  - id: orphan\n    kind: tool\n    tool: ledger\n    next: dne\n`);
    expect(brief(issues)).toEqual([
      { code: 'E_UNREACHABLE', step: 'orphan', path: '/steps/5', line: 40, col: 5 },
      { code: 'E_MISSING_TARGET', step: 'orphan', path: '/steps/5/next', line: 43, col: 5 },
    ]);
  });

  it('checks on_exhausted and start', () => {
    const issues = check(
      edit({ 2: 'id: refund\nstart: begin', 26: '    else: denied\n    max_visits: 2\n    on_exhausted: gone' }),
    );
    expect(brief(issues)).toEqual([
      { code: 'E_MISSING_TARGET', step: undefined, path: '/start', line: 3, col: 1 },
      { code: 'E_MISSING_TARGET', step: 'route', path: '/steps/1/on_exhausted', line: 29, col: 5 },
    ]);
  });

  it('explains that a parallel child is not a target', () => {
    const text = edit({
      32: '    next: checks',
      33: '  - id: checks\n    kind: parallel\n    children:\n      - { id: fraud, kind: tool, tool: fraud_score }\n    next: fraud\n  - id: done',
    });
    const issues = check(text).filter((i) => i.code === 'E_MISSING_TARGET');
    expect(brief(issues)).toEqual([
      { code: 'E_MISSING_TARGET', step: 'checks', path: '/steps/3/next', line: 37, col: 5 },
    ]);
    expect(issues[0]!.message).toContain("'fraud' is a child of parallel step 'checks'");
  });
});

describe('E_UNREACHABLE', () => {
  it('flags a step no path from start reaches', () => {
    const issues = check(`${edit({})}  - id: orphan\n    kind: end\n    outcome: NEVER\n`);
    expect(brief(issues)).toEqual([{ code: 'E_UNREACHABLE', step: 'orphan', path: '/steps/5', line: 40, col: 5 }]);
    expect(issues[0]!.message).toBe("step 'orphan' is not reachable from the start step 'classify'");
  });

  it('follows start', () => {
    expect(brief(check(edit({ 2: 'id: refund\nstart: route' })))).toEqual([
      { code: 'E_UNREACHABLE', step: 'classify', path: '/steps/0', line: 16, col: 5 },
    ]);
  });
});

describe('E_UNBOUNDED_CYCLE', () => {
  it('flags a cycle with no max_visits', () => {
    const issues = check(edit({ 32: '    next: classify' }));
    expect(brief(issues)).toEqual([
      { code: 'E_UNBOUNDED_CYCLE', step: 'classify', path: '/steps/0', line: 15, col: 5 },
      { code: 'E_UNREACHABLE', step: 'done', path: '/steps/3', line: 33, col: 5 },
    ]);
    expect(issues[0]!.message).toBe(
      "steps 'classify', 'route', 'refund' form a cycle in which no step declares max_visits; set max_visits (and on_exhausted) on one of them",
    );
  });

  it('flags a self loop', () => {
    const issues = check(edit({ 32: '    next: refund' }));
    expect(issues.map((i) => i.code)).toEqual(['E_UNBOUNDED_CYCLE', 'E_NO_TERMINAL', 'E_UNREACHABLE']);
    expect(issues[0]!.message).toContain("step 'refund' loops to itself");
  });

  it('accepts a cycle bounded by max_visits with an exit', () => {
    expect(
      check(edit({ 20: '    next: route\n    max_visits: 3\n    on_exhausted: denied', 32: '    next: classify' })),
    ).toEqual([expect.objectContaining({ code: 'E_UNREACHABLE', step: 'done' })]);
  });

  it('flags a cycle nested in a bounded one', () => {
    // a <-> b is bounded by a's max_visits, but b <-> c never passes through a.
    const p: Program = {
      format: 'nano-vm.program/v1',
      id: 'nested',
      input_schema: true,
      steps: [
        { id: 'a', kind: 'tool', tool: 't', next: 'b', max_visits: 3, on_exhausted: 'end' },
        {
          id: 'b',
          kind: 'condition',
          cases: [
            { when: 'true', next: 'a' },
            { when: 'false', next: 'c' },
          ],
          else: 'end',
        },
        { id: 'c', kind: 'tool', tool: 't', next: 'b' },
        { id: 'end', kind: 'end', outcome: 'DONE', failure: true },
      ],
    };
    const issues = validateProgram(p);
    expect(brief(issues)).toEqual([
      { code: 'E_UNBOUNDED_CYCLE', step: 'b', path: '/steps/1', line: undefined, col: undefined },
    ]);
    expect(issues[0]!.message).toContain("steps 'b', 'c' form a cycle");
  });
});

describe('E_NO_TERMINAL', () => {
  it('flags steps from which no end is reachable', () => {
    const issues = check(edit({ 32: '    next: refund\n    max_visits: 2' }));
    expect(brief(issues)).toEqual([
      { code: 'E_NO_TERMINAL', step: 'refund', path: '/steps/2', line: 27, col: 5 },
      { code: 'E_UNREACHABLE', step: 'done', path: '/steps/3', line: 34, col: 5 },
    ]);
    expect(issues[0]!.message).toBe(
      "no end step can be reached from step 'refund', so a run that gets here can never complete",
    );
  });
});

describe('E_NO_END and W_NO_FAILURE_TERMINAL', () => {
  it('E_NO_END for a program without end steps', () => {
    const p: Program = {
      format: 'nano-vm.program/v1',
      id: 'endless',
      input_schema: true,
      steps: [{ id: 'a', kind: 'tool', tool: 't', next: 'a', max_visits: 2 }],
    };
    expect(validateProgram(p)).toEqual([
      {
        code: 'E_NO_END',
        severity: 'error',
        path: '/steps',
        message: 'the program has no end step, so no run can complete; add a step with kind: end',
      },
    ]);
  });

  it('warns when no end step is a failure outcome', () => {
    const issues = check(edit({ 39: null }));
    expect(brief(issues)).toEqual([
      { code: 'W_NO_FAILURE_TERMINAL', step: undefined, path: '/steps', line: 14, col: 1 },
    ]);
    expect(issues[0]!.severity).toBe('warning');
  });
});

describe('tools (only when the host passes its tools)', () => {
  it('E_UNKNOWN_TOOL', () => {
    const text = edit({ 29: '    tool: issue_refnd' });
    expect(check(text)).toEqual([]);
    const issues = check(text, TOOLS);
    expect(brief(issues)).toEqual([
      { code: 'E_UNKNOWN_TOOL', step: 'refund', path: '/steps/2/tool', line: 29, col: 5 },
    ]);
    expect(issues[0]!.message).toBe("step 'refund': unknown tool 'issue_refnd' (did you mean 'issue_refund'?)");
  });

  it('E_TOOL_ARGS for an argument the tool does not take and a missing required one', () => {
    const issues = check(edit({ 30: '    args: { amout: input.amount, note: { value: approved } }' }), TOOLS);
    expect(brief(issues)).toEqual([
      { code: 'E_TOOL_ARGS', step: 'refund', path: '/steps/2/args', line: 30, col: 5 },
      { code: 'E_TOOL_ARGS', step: 'refund', path: '/steps/2/args/amout', line: 30, col: 13 },
    ]);
    expect(issues.map((i) => i.message)).toEqual([
      "step 'refund': tool 'issue_refund' requires argument 'amount'",
      "step 'refund': tool 'issue_refund' takes no argument 'amout' (did you mean 'amount'?)",
    ]);
  });
});

describe('guards', () => {
  const when = (guard: string) => check(edit({ 24: `      - when: ${guard}` }));

  it('E_GUARD_SYNTAX, located inside the when string', () => {
    const issues = when('input.amount > (1');
    expect(brief(issues)).toMatchObject([
      { code: 'E_GUARD_SYNTAX', step: 'route', path: '/steps/1/cases/0/when', line: 24 },
    ]);
    expect(issues[0]!.col).toBeGreaterThanOrEqual(15);
  });

  it('E_GUARD_UNSUPPORTED, column translated for plain and quoted scalars', () => {
    // The guard's column 14 is the '+'; the scalar starts at col 15 (plain) or its quote does.
    expect(brief(when('input.amount + 1 > 2'))).toEqual([
      { code: 'E_GUARD_UNSUPPORTED', step: 'route', path: '/steps/1/cases/0/when', line: 24, col: 28 },
    ]);
    expect(brief(when('"input.amount + 1 > 2"'))).toEqual([
      { code: 'E_GUARD_UNSUPPORTED', step: 'route', path: '/steps/1/cases/0/when', line: 24, col: 29 },
    ]);
  });

  it('E_GUARD_UNKNOWN_IDENT', () => {
    const issues = when('amount > 1');
    expect(brief(issues)).toEqual([
      { code: 'E_GUARD_UNKNOWN_IDENT', step: 'route', path: '/steps/1/cases/0/when', line: 24, col: 15 },
    ]);
    expect(issues[0]!.message).toContain("unknown identifier 'amount'");
  });

  it('E_GUARD_TYPE against input_schema and step outputs', () => {
    expect(brief(when('input.amont > 1'))).toEqual([
      { code: 'E_GUARD_TYPE', step: 'route', path: '/steps/1/cases/0/when', line: 24, col: 21 },
    ]);
    expect(when('input.amount == "x"')[0]!.code).toBe('E_GUARD_TYPE');
    expect(when('steps.refund.output.refund_id == "r1"')).toEqual([]);
    expect(when('steps.refund.output.id == "r1"')[0]!.code).toBe('E_GUARD_TYPE');
    // The steps map is closed and end/condition steps have no output.
    expect(when('steps.nope.output == "x"')[0]!.code).toBe('E_GUARD_TYPE');
    expect(when('steps.done.output == "x"')[0]!.code).toBe('E_GUARD_TYPE');
  });

  it('E_GUARD_LIMIT for a guard nested too deeply', () => {
    const issues = when(`'${'!'.repeat(80)}input.customer.vip'`);
    expect(brief(issues)).toMatchObject([
      { code: 'E_GUARD_LIMIT', step: 'route', path: '/steps/1/cases/0/when', line: 24 },
    ]);
  });

  it('E_GUARD_NOT_BOOL when the guard has a known non-bool type', () => {
    const issues = when('input.amount');
    expect(brief(issues)).toEqual([
      { code: 'E_GUARD_NOT_BOOL', step: 'route', path: '/steps/1/cases/0/when', line: 24, col: 9 },
    ]);
    expect(issues[0]!.message).toBe("step 'route' case 1: the guard must be a bool, but input.amount is number");
    expect(when('input.customer.vip')).not.toContainEqual(expect.objectContaining({ code: 'E_GUARD_NOT_BOOL' }));
  });
});

describe('declared fields', () => {
  it('E_PROJECTION_UNDECLARED for an input path', () => {
    const issues = check(
      edit({
        18: '    projection: [input.amount, input.customer, input.custmer.tier]',
        17: '    prompt: "Amount {{input.amount}}"',
      }),
    );
    expect(brief(issues)).toEqual([
      { code: 'E_PROJECTION_UNDECLARED', step: 'classify', path: '/steps/0/projection/2', line: 18, col: 48 },
    ]);
    expect(issues[0]!.message).toBe(
      "step 'classify': projection 'input.custmer.tier' names no declared field: 'custmer' is not declared in the schema of input (did you mean 'customer'?)",
    );
  });

  it('E_PROJECTION_UNDECLARED below a level that declares its properties', () => {
    const issues = check(edit({ 18: '    projection: [input.amount, input.customer, input.customer.vip]' }));
    expect(issues.map((i) => [i.code, i.path])).toEqual([['E_PROJECTION_UNDECLARED', '/steps/0/projection/2']]);
    expect(issues[0]!.message).toContain("'vip' is not declared in the schema of input.customer (declared: tier)");
  });

  it('accepts any name below a level whose schema is open', () => {
    expect(
      check(
        edit({
          8: '    email: { type: string }\n    meta: { type: object }',
          18: '    projection: [input.amount, input.customer, input.meta.anything.deeper]',
        }),
      ),
    ).toEqual([]);
  });

  it('E_PROJECTION_UNDECLARED for step outputs', () => {
    const project = (path: string) => check(edit({ 18: `    projection: [input.amount, input.customer, ${path}]` }));
    expect(project('steps.refund.output.refund_id')).toEqual([]);
    expect(project('steps.refund.output.refund')[0]!.message).toContain(
      "'refund' is not declared in the schema of steps.refund.output (declared: refund_id)",
    );
    expect(project('steps.nope.output')[0]!.message).toContain("there is no step 'nope'");
    expect(project('steps.done.output')[0]!.message).toContain("step 'done' is an end step and has no output");
    expect(project('steps.route.output')[0]!.message).toContain("step 'route' is a condition step and has no output");
    expect(project('steps.classify.output.label')[0]!.message).toContain(
      'steps.classify.output is a string; it has no field',
    );
  });

  it('E_PROJECTION_UNDECLARED for a tool argument path', () => {
    const issues = check(edit({ 30: '    args: { amount: input.amont }' }));
    expect(brief(issues)).toEqual([
      { code: 'E_PROJECTION_UNDECLARED', step: 'refund', path: '/steps/2/args/amount', line: 30, col: 13 },
    ]);
    expect(issues[0]!.message).toContain("argument 'amount' reads 'input.amont'");
  });

  it('E_PROMPT_UNPROJECTED for a placeholder the projection does not cover', () => {
    const issues = check(edit({ 17: '    prompt: "Amount {{input.amount}} for {{ input.email }}"' }));
    expect(brief(issues)).toEqual([
      { code: 'E_PROMPT_UNPROJECTED', step: 'classify', path: '/steps/0/prompt', line: 17, col: 5 },
    ]);
    expect(issues[0]!.message).toBe(
      "step 'classify': the prompt uses {{input.email}}, which its projection does not cover; add 'input.email' (or a parent path) to projection",
    );
  });

  it('a placeholder below a projected path is covered', () => {
    expect(check(edit({ 17: '    prompt: "{{input.customer.tier}} {{input.customer}}"' }))).toEqual([]);
  });

  it('E_SENSITIVE_UNDECLARED', () => {
    const issues = check(edit({ 13: 'sensitive: [input.email, input.phone]' }));
    expect(brief(issues)).toEqual([
      { code: 'E_SENSITIVE_UNDECLARED', step: undefined, path: '/sensitive/1', line: 13, col: 26 },
    ]);
    expect(issues[0]!.message).toContain("sensitive path 'input.phone' is not declared in input_schema");
  });

  it('E_SUBJECT_UNDECLARED', () => {
    expect(check(edit({ 13: 'sensitive: [input.email]\nsubject: input.email' }))).toEqual([]);
    const issues = check(edit({ 13: 'sensitive: [input.email]\nsubject: input.mail' }));
    expect(brief(issues)).toEqual([
      { code: 'E_SUBJECT_UNDECLARED', step: undefined, path: '/subject', line: 14, col: 1 },
    ]);
    expect(issues[0]!.message).toContain("subject path 'input.mail' is not declared in input_schema");
  });
});

describe('declared schemas and values', () => {
  it('E_INPUT_SCHEMA for a bad keyword value', () => {
    const issues = check(edit({ 4: '  type: obj' }));
    expect(brief(issues)).toEqual([
      { code: 'E_INPUT_SCHEMA', step: undefined, path: '/input_schema/type', line: 4, col: 3 },
    ]);
  });

  it('E_INPUT_SCHEMA for a $ref that does not resolve', () => {
    const issues = check(edit({ 12: "        tier: { $ref: '#/$defs/tier' }" }));
    expect(brief(issues)).toEqual([
      {
        code: 'E_INPUT_SCHEMA',
        step: undefined,
        path: '/input_schema/properties/customer/properties/tier/$ref',
        line: 12,
        col: 17,
      },
    ]);
    expect(issues[0]!.message).toContain("$ref '#/$defs/tier' does not resolve");
  });

  it('E_BAD_OUTPUT_SCHEMA for a bad output schema', () => {
    const issues = check(edit({ 31: '    output_schema: { type: object, required: refund_id }' }));
    expect(brief(issues)).toEqual([
      { code: 'E_BAD_OUTPUT_SCHEMA', step: 'refund', path: '/steps/2/output_schema/required', line: 31, col: 36 },
    ]);
  });

  it('E_FALLBACK_TYPE when the fallback value is outside the output type', () => {
    const issues = check(edit({ 20: '    next: route\n    on_error: { action: fallback, value: maybe }' }));
    expect(brief(issues)).toEqual([
      { code: 'E_FALLBACK_TYPE', step: 'classify', path: '/steps/0/on_error/value', line: 21, col: 35 },
    ]);
    expect(
      check(
        edit({ 20: '    next: route\n    on_error: { action: retry, max_attempts: 2, then: fallback, value: deny }' }),
      ),
    ).toEqual([]);
  });
});

describe('rules the schema also enforces, for programs built in code', () => {
  it('E_BAD_ENUM, E_PARALLEL_EMPTY and E_BUDGET', () => {
    const p = program();
    p.budgets = { max_steps: 0, max_cost_usd: -1 };
    const classify = p.steps[0] as Extract<Program['steps'][number], { kind: 'llm' }>;
    classify.output = { enum: ['a', 'b', 'a'] };
    classify.max_visits = 0;
    p.steps.push({ id: 'fan', kind: 'parallel', children: [], next: 'done' });
    p.steps.push({ id: 'ask', kind: 'llm', prompt: 'p', projection: [], output: { enum: [] }, next: 'done' });
    expect(brief(validateProgram(p)).filter((i) => i.code !== 'E_UNREACHABLE')).toEqual([
      { code: 'E_BUDGET', step: undefined, path: '/budgets/max_cost_usd', line: undefined, col: undefined },
      { code: 'E_BUDGET', step: undefined, path: '/budgets/max_steps', line: undefined, col: undefined },
      { code: 'E_BUDGET', step: 'classify', path: '/steps/0/max_visits', line: undefined, col: undefined },
      { code: 'E_BAD_ENUM', step: 'classify', path: '/steps/0/output/enum/2', line: undefined, col: undefined },
      { code: 'E_PARALLEL_EMPTY', step: 'fan', path: '/steps/5/children', line: undefined, col: undefined },
      { code: 'E_BAD_ENUM', step: 'ask', path: '/steps/6/output/enum', line: undefined, col: undefined },
    ]);
  });
});

describe('output', () => {
  it('is deterministic and sorted by position', () => {
    const text = edit({ 4: '  type: obj', 20: '    next: rout', 13: 'sensitive: [input.phone]', 29: '    tool: nope' });
    const a = check(text, TOOLS);
    const b = check(text, TOOLS);
    expect(a).toEqual(b);
    const positions = a.map((i) => [i.line!, i.col!] as const);
    expect(positions).toEqual([...positions].sort((x, y) => x[0] - y[0] || x[1] - y[1]));
  });

  it('sorts by JSON pointer (indices numerically) without a source map', () => {
    const p = program();
    for (let i = 0; i < 12; i++) p.steps.push({ id: `orphan${i}`, kind: 'end', outcome: 'X' });
    const paths = validateProgram(p).map((i) => i.path);
    expect(paths).toEqual(Array.from({ length: 12 }, (_, i) => `/steps/${i + 5}`));
  });

  it('every code in VALIDATION_CODES is produced by a test above, and no other', () => {
    expect([...produced].sort()).toEqual(Object.keys(VALIDATION_CODES).sort());
  });
});
