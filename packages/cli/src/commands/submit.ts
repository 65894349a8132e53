import { firstErrorCode, NanoVmError, type Program } from '@nano-vm/kernel';
import { checkInput } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { loadProgramFile, loadTools, readJson } from '../inputs.js';
import { loadPolicyFile } from '../policyFile.js';
import { openPostgresStore } from '../storeSpec.js';
import { resolveTarget, targetInputs } from '../target.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';
import { PG_STORE, pgStoreOption } from './migrate.js';

export const SUBMIT = defineCommand({
  name: 'submit',
  summary:
    'Enqueues runs of a program (or of every input of an example directory) in a PostgreSQL store, for `nano-vm worker` processes to run; prints their run ids.',
  args: '<program file | example dir>',
  options: {
    input: {
      type: 'string',
      value: '<file.json>',
      description:
        "the run input, checked against the program's limits now. Without it, an example directory submits each of its inputs",
    },
    policy: {
      type: 'string',
      value: '<file>',
      description:
        'the policy the runs are governed by (pinned at their genesis). An example directory defaults to its policy.yaml',
    },
    tools: {
      type: 'string',
      value: '<module>',
      description:
        "pre-flight the program against these tools before submitting (the workers' tools are what runs). An example directory defaults to its tools.mjs",
    },
    count: {
      type: 'string',
      value: '<n>',
      defaultText: '1',
      description: 'submit each input this many times (one transaction; at most 100000)',
    },
    store: PG_STORE,
    json: { type: 'boolean', default: false, description: 'one line per run: {run_id, case}' },
  },
  run: submitCommand,
});
export const SUBMIT_USAGE = usageText(SUBMIT);

export async function submitCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(SUBMIT, argv);
  const target = positionals[0];
  if (!target || positionals.length > 1) throw new NanoVmError('E_USAGE', SUBMIT_USAGE);
  const count = values.count === undefined ? 1 : Number(values.count);
  if (!Number.isInteger(count) || count < 1 || count > 100_000)
    throw new NanoVmError('E_USAGE', `--count must be a whole number from 1 to 100000\n${SUBMIT_USAGE}`);
  const spec = pgStoreOption(values.store, SUBMIT_USAGE);
  const { layout, programFile = target, toolsFile, policyFile } = resolveTarget(target, values);
  const cases = targetInputs(target, layout, values.input);
  // Checked before anything is enqueued: the program (with the tools and policy when given), every input.
  const tools = toolsFile ? await loadTools(toolsFile) : undefined;
  const policy = policyFile ? loadPolicyFile(policyFile) : undefined;
  const loaded = loadProgramFile(programFile, tools, policy);
  const errors = loaded.issues.filter((i) => i.severity === 'error' && (tools || i.code !== 'E_UNKNOWN_TOOL'));
  if (!loaded.program || errors.length)
    throw new NanoVmError(
      firstErrorCode(errors, 'E_PROGRAM_INVALID'),
      `program ${programFile} is invalid`,
      loaded.issues,
    );
  const program: Program = loaded.program;
  const subs = cases.map(([caseName, file]) => {
    const input = file ? readJson(file, 'input') : {};
    try {
      checkInput(program, input);
    } catch (e) {
      if (e instanceof NanoVmError) throw e.withMessage(`${file ?? 'input'}: ${e.message}`);
      throw e;
    }
    return { caseName, input };
  });
  const { submitRuns } = await import('@nano-vm/store-postgres');
  const store = await openPostgresStore(spec);
  try {
    const all = subs.flatMap((s) => Array.from({ length: count }, () => s));
    const ids = await submitRuns(
      store,
      all.map((s) => ({ program, input: s.input, ...(policy ? { policy: policy.policy } : {}) })),
    );
    ids.forEach((id, i) =>
      process.stdout.write(
        values.json ? JSON.stringify({ run_id: id, case: all[i]!.caseName }) + '\n' : `submitted ${id}\n`,
      ),
    );
    return EXIT.OK;
  } finally {
    await store.close();
  }
}
