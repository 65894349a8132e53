/**
 * `nano-vm plan "<intent>" --tools <module>`: a model drafts a program; the planner meta-program
 * checks it and feeds its issues back (docs/planner.md). The file is written only when the draft
 * passes — and it is checked once more here, read back from its own text exactly as
 * `nano-vm validate` would read it, before it is written. The drafted program is never run.
 */
import { writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { NanoVmError, type Issue, type Program } from '@nano-vm/kernel';
import {
  DEFAULT_PLAN_ATTEMPTS,
  FixedClock,
  MAX_PLAN_ATTEMPTS,
  SeededIds,
  nodeHasher,
  planProgram,
  programText,
  type DraftIssue,
  type PlanResult,
} from '@nano-vm/runtime';
import { errorText } from '../errorExit.js';
import { EXIT } from '../exitCodes.js';
import { checkProgramText, loadTools, modelFromSpec } from '../inputs.js';
import { loadPolicyFile } from '../policyFile.js';
import { modelLabel, renderIssues, renderTrace } from '../render.js';
import { DEFAULT_STORE, openStore } from '../storeSpec.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const PLAN = defineCommand({
  name: 'plan',
  summary:
    'A model drafts a program for the intent from the given tools; each draft is checked as validate checks it and its issues are fed back (docs/planner.md).',
  args: '"<intent>"',
  options: {
    tools: {
      type: 'string',
      value: '<module>',
      required: true,
      description: 'the tools the drafted program may call (a tools module, as for run; none is called)',
    },
    policy: {
      type: 'string',
      value: '<file>',
      description: "the drafted program must also pass this policy's pre-flight; the model is shown the policy",
    },
    model: {
      type: 'string',
      value: '<spec>',
      required: true,
      description:
        'the model that drafts (scripted:<file> answers from answers.draft, openai:<model>, anthropic:<model>, a chain)',
    },
    attempts: {
      type: 'string',
      value: 'N',
      defaultText: String(DEFAULT_PLAN_ATTEMPTS),
      description: `how many drafts the model may make, 1 to ${MAX_PLAN_ATTEMPTS}`,
    },
    out: {
      type: 'string',
      short: 'o',
      value: '<program.yaml>',
      description:
        'write the program there (YAML, or JSON for a .json name), only when a draft passes. Without it the program goes to stdout and the summary to stderr',
    },
    store: {
      type: 'string',
      value: '<sqlite:path | memory: | postgres://…>',
      defaultText: 'as for run',
      description: 'where the planner run is kept',
    },
    deterministic: { type: 'boolean', default: false, description: 'as for run: fixed clock and seeded run ids' },
    json: {
      type: 'boolean',
      default: false,
      description:
        'one object: {run_id, head_hash, status, outcome, drafts, attempts, scripted_model, written, program, issues, error?}',
    },
  },
  run: planCommand,
});
export const PLAN_USAGE = usageText(PLAN);

export async function planCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(PLAN, argv);
  const intent = positionals[0]?.trim();
  if (!intent || positionals.length > 1)
    throw new NanoVmError('E_USAGE', `${PLAN_USAGE}\n(give the intent as one quoted argument)`);
  if (!values.tools)
    throw new NanoVmError(
      'E_USAGE',
      `--tools <module> is required: the planner drafts programs for the tools it is given\n${PLAN_USAGE}`,
    );
  const attempts = values.attempts === undefined ? DEFAULT_PLAN_ATTEMPTS : Number(values.attempts);
  if (!/^\d+$/.test(values.attempts ?? '1') || attempts < 1 || attempts > MAX_PLAN_ATTEMPTS)
    throw new NanoVmError(
      'E_USAGE',
      `--attempts must be an integer from 1 to ${MAX_PLAN_ATTEMPTS}, got "${values.attempts}"`,
    );
  const format = values.out !== undefined && extname(values.out).toLowerCase() === '.json' ? 'json' : 'yaml';
  if (!values.model)
    throw new NanoVmError(
      'E_MODEL_SPEC',
      'no model: pass --model scripted:<file>, openai:<model> or anthropic:<model>',
    );

  const tools = await loadTools(values.tools);
  const policy = values.policy ? loadPolicyFile(values.policy) : undefined;
  const model = modelFromSpec(values.model);
  const store = openStore(values.store ?? (values.deterministic ? 'memory:' : DEFAULT_STORE));

  let plan: PlanResult;
  try {
    plan = await planProgram({
      intent,
      tools,
      ...(policy ? { policy: policy.policy } : {}),
      model,
      attempts,
      store,
      ...(values.deterministic ? { clock: new FixedClock(), ids: new SeededIds(nodeHasher) } : {}),
    });
  } catch (e) {
    // Say that planning failed (e.g. a tools module whose schemas are not JSON: the planner's input
    // carries them), and why a deterministic plan's fixed run id may collide.
    if (!(e instanceof NanoVmError)) throw e;
    throw e.withMessage(
      e.code === 'E_STORE_DUPLICATE_RUN'
        ? `${e.message} (a --deterministic plan has a fixed run id; use another store or drop --deterministic)`
        : `cannot plan: ${e.message}`,
    );
  } finally {
    await store.close();
  }

  const { run } = plan;
  let written: { file: string | null; text: string; program: Program; warnings: Issue[] } | undefined;
  let failure: { code: string; message: string; issues: Issue[] } | undefined;
  if (plan.program) {
    const text = programText(plan.program, {
      format,
      header: [
        `Drafted by nano-vm plan: planner run ${run.run_id}, head ${run.head_hash}`,
        `Intent: ${intent.replace(/\s+/g, ' ').slice(0, 200)}`,
      ],
    });
    // Read back as `nano-vm validate --tools … --policy …` would read the written file.
    const issues = checkProgramText(text, values.out ?? 'program.yaml', format, tools, policy).issues;
    if (issues.some((i) => i.severity === 'error'))
      failure = {
        code: 'E_NO_VALID_DRAFT',
        message: 'the accepted draft does not pass when read back from its text (please report this)',
        issues,
      };
    else {
      if (values.out) writeFileSync(values.out, text);
      written = { file: values.out ?? null, text, program: plan.program, warnings: issues };
    }
  } else if (run.status === 'completed') {
    failure = {
      code: 'E_NO_VALID_DRAFT',
      message: `no valid draft within ${attempts} attempt${attempts > 1 ? 's' : ''}; the last draft's issues:`,
      issues: (plan.lastCheck?.issues ?? []).map(asIssue),
    };
  } else {
    const error =
      run.events.at(-1)?.type === 'run_finished'
        ? (run.events.at(-1) as { error?: { code: string; message: string } }).error
        : undefined;
    failure = {
      code: error?.code ?? 'E_NO_VALID_DRAFT',
      message: `the planner run ended ${run.status}${error ? `: ${error.message}` : ''}`,
      issues: [],
    };
  }

  const summary = {
    run_id: run.run_id,
    head_hash: run.head_hash,
    status: run.status,
    outcome: run.outcome,
    drafts: plan.drafts,
    attempts,
    scripted_model: run.receipt.model.scripted,
  };
  if (values.json) {
    process.stdout.write(
      JSON.stringify({
        ...summary,
        written: written?.file ?? null,
        program: written?.program ?? null,
        issues: (failure?.issues ?? written?.warnings ?? []).map((i) => ({
          code: i.code,
          severity: i.severity,
          step: i.step ?? null,
          message: i.message,
          path: i.path ?? null,
        })),
        ...(failure ? { error: { code: failure.code, message: failure.message } } : {}),
      }) + '\n',
    );
  } else {
    const lines = [
      `plan run ${run.run_id}  program ${run.receipt.program_id}  model ${modelLabel(run.receipt)}`,
      renderTrace(run.events),
      `status ${run.status}${run.outcome ? `  outcome ${run.outcome}` : ''}  drafts ${plan.drafts} of ${attempts}  head ${run.head_hash}`,
    ];
    if (written?.file)
      lines.push(
        `wrote ${written.file} (program ${written.program.id}, ${written.program.steps.length} steps); it has not been run`,
      );
    // Without -o the program goes to stdout after the summary, which then goes to stderr.
    if (written && !written.file) process.stderr.write(lines.join('\n') + '\n');
    else process.stdout.write(lines.join('\n') + '\n');
    if (written && !written.file) process.stdout.write(written.text);
    if (written?.warnings.length) process.stderr.write(`warnings:\n${renderIssues(written.warnings)}\n`);
    if (failure) process.stderr.write(errorText(failure));
  }
  return failure ? EXIT.FAILED : EXIT.OK;
}

function asIssue(i: DraftIssue): Issue {
  return {
    code: i.code,
    severity: i.severity,
    message: i.message,
    ...(i.step !== undefined ? { step: i.step } : {}),
    ...(i.path !== undefined ? { path: i.path } : {}),
  };
}
