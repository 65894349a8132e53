/**
 * Pre-flight validator. Every run calls validateProgram and refuses a program with any error, so
 * what it accepts is what the machine may execute: every edge has a target, every step can reach
 * an end, every cycle is bounded, every guard type-checks, every prompt sees only declared fields.
 */
import type { Issue } from './errors.js';
import { guardTree } from './guard/compile.js';
import { excerpt } from './excerpt.js';
import { compileGuard, formatGuardType, guardTypeFromJsonSchema } from './guard/index.js';
import { inferGuardType } from './guard/typecheck.js';
import type { CompiledGuard, GuardCompileResult, GuardType, GuardTypeEnv } from './guard/index.js';
import { locateInScalar, locateIssues } from './load.js';
import type { SourceMap } from './load.js';
import { outputSchemaOf } from './program.js';
import type { JsonValue, OnError, Program } from './program.js';
import { checkSchema, describeViolations } from './schemaCheck.js';
import { checkGraph, indexSteps } from './validateGraph.js';
import { checkPaths, effectSteps, type EffectAt } from './validatePaths.js';
import { schemaProblems } from './validateSchemas.js';
import { closest, escapePointer } from './validateShape.js';

export interface ToolDescription {
  input_schema?: unknown;
  output_schema?: unknown;
}

export interface ValidateOptions {
  /** The host's tools; when given, unknown tools and arguments the tool does not accept are errors. */
  tools?: Record<string, ToolDescription>;
  /** From loadProgram: gives issues line/col. */
  sourceMap?: SourceMap;
  file?: string;
  /** More identifiers guards may read, with their types (e.g. `policy` under a policy: docs/policy.md). */
  guardGlobals?: GuardTypeEnv;
}

/** Every code validateProgram reports, with its meaning (docs/dsl.md lists the same). */
export const VALIDATION_CODES: Readonly<Record<string, string>> = {
  E_DUPLICATE_ID: 'Two steps (parallel children included) have the same id.',
  E_MISSING_TARGET:
    'An edge (start, next, cases[].next, else, on_exhausted) names a step that does not exist (or a parallel child).',
  E_NO_END: 'The program has no end step.',
  E_UNREACHABLE: 'A step cannot be reached from the start step.',
  E_UNBOUNDED_CYCLE:
    'A cycle in which no step declares max_visits (checked on every cycle, including cycles nested in larger ones), or a cycle of on_exhausted edges alone.',
  E_NO_TERMINAL: 'No end step can be reached from a (reachable) step.',
  W_NO_FAILURE_TERMINAL: 'Warning: no end step has failure: true.',
  E_UNKNOWN_TOOL: 'A tool step names a tool the host does not provide (checked only when the host passes its tools).',
  E_TOOL_ARGS:
    "A tool step passes an argument the tool's input_schema does not declare (when it is closed) or omits a required one (checked only when the host passes its tools).",
  E_GUARD_SYNTAX: 'A `when` guard is not valid CEL syntax.',
  E_GUARD_UNSUPPORTED: 'A `when` guard uses CEL outside the governed subset.',
  E_GUARD_LIMIT: 'A `when` guard is too large or too deeply nested.',
  E_GUARD_UNKNOWN_IDENT: 'A `when` guard uses an identifier other than input, steps and bound variables.',
  E_GUARD_TYPE:
    'A `when` guard is ill-typed against the declared schemas (e.g. a field that is not declared, a string compared with a number).',
  E_GUARD_NOT_BOOL: 'A `when` guard has a known type that is not bool.',
  E_PROJECTION_UNDECLARED:
    'A projection path or tool argument path names no declared field (input_schema, or the output of an existing step that has one).',
  E_PROMPT_UNPROJECTED: "A `{{path}}` placeholder in a prompt is not covered by the step's projection.",
  E_SENSITIVE_UNDECLARED: 'A sensitive path is not an input path declared in input_schema.',
  E_SUBJECT_UNDECLARED: 'The subject path is not an input path declared in input_schema.',
  E_BAD_ENUM: 'An llm output enum is empty or has duplicates.',
  E_INPUT_SCHEMA: 'input_schema is not a usable JSON Schema (wrong keyword types, bad pattern, unresolvable $ref).',
  E_BAD_OUTPUT_SCHEMA: 'An llm output.schema or tool output_schema is not a usable JSON Schema.',
  E_FALLBACK_TYPE: "An on_error fallback value does not satisfy the step's output type.",
  E_PARALLEL_EMPTY: 'A parallel step has no children.',
  E_BUDGET:
    'A budget or bound (budgets.*, max_visits, max_attempts, timeout_ms, max_concurrency) is not a positive number.',
};

export function validateProgram(program: Program, opts: ValidateOptions = {}): Issue[] {
  const out: Issue[] = [];
  const index = indexSteps(program, out);
  checkGraph(program, index, out);
  const effects = effectSteps(program.steps);
  checkBounds(program, effects, out);
  checkEnums(effects, out);
  checkSchemas(program, effects, out);
  checkPaths(program, index, effects, out);
  if (opts.tools !== undefined) checkTools(effects, opts.tools, out);
  checkGuards(program, out, opts.sourceMap, opts.guardGlobals);
  return locateIssues(out, opts.sourceMap, opts.file);
}

/**
 * The type environment guards are checked against: `input` and a closed map of the steps that
 * have an output. With `only`, steps outside it are typed `dyn` (cheaper for huge programs; a
 * guard can only use the steps it names).
 */
export function guardEnvOf(program: Program, only?: ReadonlySet<string>): GuardTypeEnv {
  const typed = new Map<string, GuardType>();
  for (const step of program.steps) {
    if (step.kind === 'end' || step.kind === 'condition' || typed.has(step.id)) continue;
    typed.set(
      step.id,
      only === undefined || only.has(step.id)
        ? { kind: 'map', fields: { output: guardTypeFromJsonSchema(outputSchemaOf(step)) }, open: false }
        : UNTYPED_STEP,
    );
  }
  // fromEntries defines own properties, so a step named `__proto__` stays a field.
  return {
    input: guardTypeFromJsonSchema(program.input_schema),
    steps: { kind: 'map', fields: Object.fromEntries(typed), open: false },
  };
}

const UNTYPED_STEP: GuardType = Object.freeze({
  kind: 'map',
  fields: Object.freeze({ output: Object.freeze({ kind: 'dyn' }) }),
  open: false,
}) as GuardType;

/** `steps.<id>` and `steps["<id>"]` in a guard's text. */
const STEP_REFERENCE = /\bsteps\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(?:"([^"]*)"|'([^']*)')\s*\])/g;

function checkGuards(
  program: Program,
  out: Issue[],
  sourceMap: SourceMap | undefined,
  globals: GuardTypeEnv | undefined,
): void {
  if (!program.steps.some((s) => s.kind === 'condition')) return;
  const named = new Set<string>();
  for (const step of program.steps) {
    if (step.kind !== 'condition') continue;
    for (const c of step.cases) for (const m of c.when.matchAll(STEP_REFERENCE)) named.add(m[1] ?? m[2] ?? m[3]!);
  }
  const env = globals === undefined ? guardEnvOf(program, named) : { ...guardEnvOf(program, named), ...globals };
  // A program's guards share one environment, so equal sources compile to equal results.
  const compiled = new Map<string, { result: GuardCompileResult; type?: GuardType | undefined }>();
  program.steps.forEach((step, i) => {
    if (step.kind !== 'condition') return;
    step.cases.forEach((c, k) => {
      let entry = compiled.get(c.when);
      if (entry === undefined) {
        const result = compileGuard(c.when, env);
        entry = { result, type: result.ok ? resultType(result.guard, env) : undefined };
        compiled.set(c.when, entry);
      }
      const path = `/steps/${i}/cases/${k}/when`;
      let issue: Issue | undefined;
      if (!entry.result.ok) {
        const { code, message, column } = entry.result.error;
        issue = {
          code,
          severity: 'error',
          step: step.id,
          path,
          message: `step '${step.id}' case ${k + 1}: ${message} (guard column ${column}: ${excerpt(c.when, column - 1)})`,
        };
        const at = sourceMap !== undefined ? locateInScalar(sourceMap, path, column) : undefined;
        if (at !== undefined) {
          issue.line = at.line;
          issue.col = at.col;
        }
      } else if (entry.type !== undefined && !mayBeBool(entry.type)) {
        issue = {
          code: 'E_GUARD_NOT_BOOL',
          severity: 'error',
          step: step.id,
          path,
          message: `step '${step.id}' case ${k + 1}: the guard must be a bool, but ${excerpt(c.when)} is ${formatGuardType(entry.type)}`,
        };
      }
      if (issue !== undefined) out.push(issue);
    });
  });
}

/** Root node kinds whose value the guard checker already requires to be a bool. */
const BOOL_ROOTS: ReadonlySet<string> = new Set([
  'compare',
  'in',
  'and',
  'or',
  'not',
  'has',
  'stringTest',
  'quantifier',
]);

/**
 * The guard's result type. CompiledGuard (guard/types.ts) does not carry it, so this asks the
 * guard module's own checker (the same inference compileGuard ran) rather than guessing.
 */
function resultType(guard: CompiledGuard, env: GuardTypeEnv): GuardType | undefined {
  const tree = guardTree(guard);
  if (!tree.ok) return undefined;
  return BOOL_ROOTS.has(tree.root.kind) ? { kind: 'bool' } : inferGuardType(tree.root, env);
}

function mayBeBool(t: GuardType): boolean {
  if (t.kind === 'bool' || t.kind === 'dyn') return true;
  return t.kind === 'union' && t.of.some(mayBeBool);
}

function checkBounds(program: Program, effects: readonly EffectAt[], out: Issue[]): void {
  const positive = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v > 0;
  const bad = (path: string, v: unknown, step?: string): void => {
    const issue: Issue = {
      code: 'E_BUDGET',
      severity: 'error',
      path,
      message: `${path.slice(1)} must be a positive number, got ${JSON.stringify(v)}`,
    };
    if (step !== undefined) issue.step = step;
    out.push(issue);
  };
  for (const [name, v] of Object.entries(program.budgets ?? {})) if (!positive(v)) bad(`/budgets/${name}`, v);
  program.steps.forEach((step, i) => {
    if (step.max_visits !== undefined && !positive(step.max_visits))
      bad(`/steps/${i}/max_visits`, step.max_visits, step.id);
    if (step.kind === 'parallel' && step.max_concurrency !== undefined && !positive(step.max_concurrency))
      bad(`/steps/${i}/max_concurrency`, step.max_concurrency, step.id);
    if (step.kind === 'parallel' && step.children.length === 0) {
      out.push({
        code: 'E_PARALLEL_EMPTY',
        severity: 'error',
        step: step.id,
        path: `/steps/${i}/children`,
        message: `parallel step '${step.id}' has no children`,
      });
    }
  });
  for (const { step, path } of effects) {
    if (step.timeout_ms !== undefined && !positive(step.timeout_ms))
      bad(`${path}/timeout_ms`, step.timeout_ms, step.id);
    if (step.on_error?.action === 'retry' && !positive(step.on_error.max_attempts))
      bad(`${path}/on_error/max_attempts`, step.on_error.max_attempts, step.id);
  }
}

function checkEnums(effects: readonly EffectAt[], out: Issue[]): void {
  for (const { step, path } of effects) {
    if (step.kind !== 'llm' || !('enum' in step.output)) continue;
    const values = step.output.enum;
    if (values.length === 0) {
      out.push({
        code: 'E_BAD_ENUM',
        severity: 'error',
        step: step.id,
        path: `${path}/output/enum`,
        message: `step '${step.id}': output enum is empty, so no answer could ever be accepted`,
      });
    }
    const seen = new Set<string>();
    values.forEach((v, j) => {
      if (seen.has(v))
        out.push({
          code: 'E_BAD_ENUM',
          severity: 'error',
          step: step.id,
          path: `${path}/output/enum/${j}`,
          message: `step '${step.id}': output enum lists '${v}' twice`,
        });
      seen.add(v);
    });
  }
}

function checkSchemas(program: Program, effects: readonly EffectAt[], out: Issue[]): void {
  for (const p of schemaProblems(program.input_schema)) {
    out.push({
      code: 'E_INPUT_SCHEMA',
      severity: 'error',
      path: `/input_schema${p.path}`,
      message: `input_schema${p.path}: ${p.message}`,
    });
  }
  program.steps.forEach((step, i) => {
    if (step.kind !== 'wait') return;
    for (const p of schemaProblems(step.event)) {
      out.push({
        code: 'E_BAD_OUTPUT_SCHEMA',
        severity: 'error',
        step: step.id,
        path: `/steps/${i}/event${p.path}`,
        message: `step '${step.id}': event${p.path}: ${p.message}`,
      });
    }
  });
  for (const { step, path } of effects) {
    const declared =
      step.kind === 'llm'
        ? 'schema' in step.output
          ? { schema: step.output.schema, at: `${path}/output/schema` }
          : undefined
        : step.output_schema !== undefined
          ? { schema: step.output_schema, at: `${path}/output_schema` }
          : undefined;
    let usable = true;
    if (declared !== undefined) {
      for (const p of schemaProblems(declared.schema)) {
        usable = false;
        out.push({
          code: 'E_BAD_OUTPUT_SCHEMA',
          severity: 'error',
          step: step.id,
          path: `${declared.at}${p.path}`,
          message: `step '${step.id}': ${declared.at.slice(path.length + 1)}${p.path}: ${p.message}`,
        });
      }
    }
    const fallback = fallbackOf(step.on_error);
    if (usable && fallback !== undefined) {
      let problems: string;
      try {
        problems = describeViolations(checkSchema(outputSchemaOf(step), fallback));
      } catch (e) {
        problems = e instanceof Error ? e.message : String(e);
      }
      if (problems !== '') {
        out.push({
          code: 'E_FALLBACK_TYPE',
          severity: 'error',
          step: step.id,
          path: `${path}/on_error/value`,
          message: `step '${step.id}': the fallback value does not satisfy the step's output type: ${problems}`,
        });
      }
    }
  }
}

function fallbackOf(onError: OnError | undefined): JsonValue | undefined {
  if (onError?.action === 'fallback') return onError.value;
  if (onError?.action === 'retry' && onError.then === 'fallback') return onError.value;
  return undefined;
}

function checkTools(effects: readonly EffectAt[], tools: Record<string, ToolDescription>, out: Issue[]): void {
  const names = Object.keys(tools);
  for (const { step, path } of effects) {
    if (step.kind !== 'tool') continue;
    if (!Object.hasOwn(tools, step.tool)) {
      const guess = closest(step.tool, names);
      const hint =
        guess !== undefined
          ? ` (did you mean '${guess}'?)`
          : names.length > 0
            ? ` (available: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''})`
            : ' (no tools are registered)';
      out.push({
        code: 'E_UNKNOWN_TOOL',
        severity: 'error',
        step: step.id,
        path: `${path}/tool`,
        message: `step '${step.id}': unknown tool '${step.tool}'${hint}`,
      });
      continue;
    }
    const schema = tools[step.tool]!.input_schema;
    if (typeof schema !== 'object' || schema === null) continue;
    const { properties, required, additionalProperties } = schema as {
      properties?: unknown;
      required?: unknown;
      additionalProperties?: unknown;
    };
    const declared = typeof properties === 'object' && properties !== null ? Object.keys(properties) : [];
    const args = step.args ?? {};
    if (additionalProperties === false) {
      for (const name of Object.keys(args)) {
        if (declared.includes(name)) continue;
        const guess = closest(name, declared);
        out.push({
          code: 'E_TOOL_ARGS',
          severity: 'error',
          step: step.id,
          path: `${path}/args/${escapePointer(name)}`,
          message: `step '${step.id}': tool '${step.tool}' takes no argument '${name}'${guess !== undefined ? ` (did you mean '${guess}'?)` : ` (it takes: ${declared.join(', ') || 'none'})`}`,
        });
      }
    }
    if (Array.isArray(required)) {
      for (const name of required) {
        if (typeof name === 'string' && !Object.hasOwn(args, name)) {
          out.push({
            code: 'E_TOOL_ARGS',
            severity: 'error',
            step: step.id,
            path: step.args !== undefined ? `${path}/args` : path,
            message: `step '${step.id}': tool '${step.tool}' requires argument '${name}'`,
          });
        }
      }
    }
  }
}
