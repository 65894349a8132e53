import { basename, join } from 'node:path';
import {
  checkSchema,
  describeViolations,
  firstErrorCode,
  NanoVmError,
  serializeBundle,
  type Program,
  type WaitCommand,
} from '@nano-vm/kernel';
import {
  FixedClock,
  MemoryStore,
  checkInput,
  SeededIds,
  nodeHasher,
  runProgram,
  type IdSource,
  type RunResult,
} from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { track } from '../exitGuard.js';
import { loadProgramFile, modelFromSpec, needsModel, NO_MODEL, readJson, readText } from '../inputs.js';
import { checkOutputFile, prepareOutputDir, writeBundle } from '../outputFile.js';
import { loadPolicyFile } from '../policyFile.js';
import { modelLabel, renderIssues, renderTrace } from '../render.js';
import { signerOption, writeSignature } from '../keys.js';
import { DEFAULT_STORE, openStore } from '../storeSpec.js';
import { resolveTarget, targetInputs } from '../target.js';
import { cliTelemetry } from '../telemetry.js';
import { defineCommand, GATEWAY_OPTION, parseCommandArgs, usageText } from '../commandSpec.js';
import { loadRunTools, withCleanup, type Cleanup } from '../gatewayOption.js';

export const RUN = defineCommand({
  name: 'run',
  summary:
    'Runs a program (or every input of an example directory) to a terminal state or a wait, recording its hash-chained trace in the store.',
  args: '<program file | example dir>',
  options: {
    input: {
      type: 'string',
      value: '<file.json>',
      description:
        "the run input, checked against the program's input_schema. Without it, an example directory runs each of its inputs; a program file runs on {} when its input_schema accepts {} (with a notice), and is refused (E_USAGE) when it does not",
    },
    model: {
      type: 'string',
      value: '<spec>',
      description:
        'the model: scripted:<file> | openai:<model> | anthropic:<model>, or a fallback chain <spec>,<spec>… (docs/models.md); a missing key or a bad spec is refused before any run. An example directory defaults to its model.yaml. Needed only when the program has an llm step; a run without one records the model none',
    },
    tools: {
      type: 'string',
      value: '<module>',
      description: 'an ES module exporting `tools` (docs/cli.md). An example directory defaults to its tools.mjs',
    },
    gateway: GATEWAY_OPTION,
    policy: {
      type: 'string',
      value: '<file>',
      description:
        'run under this policy (YAML or JSON, docs/policy.md): the program is pre-flighted against it and its hash pinned in the genesis event. An example directory defaults to its policy.yaml',
    },
    subject: {
      type: 'string',
      value: '<id>',
      description:
        "the data subject of every run of this invocation, for nano-vm erase (docs/privacy.md); without it, the value at the program's subject path",
    },
    deterministic: {
      type: 'boolean',
      default: false,
      description:
        'fixed clock (2026-01-01T00:00:00.000Z, +1 ms per reading) and run ids derived from program and input: identical inputs give byte-identical bundles',
    },
    out: {
      type: 'string',
      short: 'o',
      value: '<bundle.json | dir>',
      description:
        'write the bundle there, atomically. With several inputs it is a directory (created if needed) and each bundle is <program>.<case>.bundle.json. Checked before anything runs (E_FILE)',
    },
    store: {
      type: 'string',
      value: '<sqlite:path | memory: | postgres://…>',
      defaultText: 'sqlite:./.nano-vm/nano-vm.db, or $NANO_VM_STORE; memory: with --deterministic',
      description: 'where runs are kept',
    },
    json: {
      type: 'boolean',
      default: false,
      description:
        'one line of JSON per run: {run_id, case, status, outcome, head_hash, scripted_model, bundle?, signature?, key_id?, receipt}',
    },
    sign: {
      type: 'string',
      value: '<private key file>',
      description:
        'sign the bundle written with --out (required with it): the Ed25519 signature goes beside it as <bundle>.sig (docs/trace-format.md §10). A key that is not an Ed25519 private key, or that others can read, is refused (E_KEY_INVALID)',
    },
  },
  run: runCommand,
});
export const RUN_USAGE = usageText(RUN);

export function runCommand(argv: string[]): Promise<number> {
  return withCleanup((cleanup) => runWith(argv, cleanup));
}

async function runWith(argv: string[], cleanup: Cleanup): Promise<number> {
  const { values, positionals } = parseCommandArgs(RUN, argv);
  const target = positionals[0];
  if (!target || positionals.length > 1) throw new NanoVmError('E_USAGE', RUN_USAGE);
  const signer = signerOption(values.sign, values.out);

  const { layout, programFile = target, modelSpec, toolsFile, policyFile } = resolveTarget(target, values);
  const cases = targetInputs(target, layout, values.input);

  // Everything is checked before anything runs or any file is created, in this order: the
  // program file, the program (with its tools and policy), every input, the model (only when the
  // program has an llm step), the output path; then the store is opened (and created).
  readText(programFile, 'program'); // E_FILE first, before a tools module is even loaded
  const tools = await loadRunTools(toolsFile, values.gateway, cleanup);
  const policy = policyFile ? loadPolicyFile(policyFile) : undefined;
  const loaded = loadProgramFile(programFile, tools, policy);
  const errors = loaded.issues.filter((i) => i.severity === 'error');
  if (!loaded.program || errors.length)
    throw new NanoVmError(
      firstErrorCode(errors, 'E_PROGRAM_INVALID'),
      `program ${programFile} is invalid`,
      loaded.issues,
    );
  const program = loaded.program;
  const notices: string[] = [];
  const inputs = new Map(
    cases.map(([caseName, inputFile]) => {
      const input = inputFile ? readJson(inputFile, 'input') : noInput(program, programFile, notices);
      try {
        checkInput(program, input);
      } catch (e) {
        if (e instanceof NanoVmError) throw e.withMessage(`${inputFile ?? 'input'}: ${e.message}`);
        throw e;
      }
      return [caseName, input];
    }),
  );
  if (!modelSpec && needsModel(program))
    throw new NanoVmError(
      'E_MODEL_SPEC',
      `no model: program ${program.id} has llm steps; pass --model scripted:<file>, openai:<model> or anthropic:<model> (docs/models.md), or run an example directory that has model.yaml`,
    );
  // Every case's model is built first: a refused spec (unknown provider, missing key) stops here.
  const models = new Map(
    cases.map(([caseName]) => [caseName, modelSpec ? modelFromSpec(modelSpec, caseName) : NO_MODEL]),
  );
  const multi = cases.length > 1;
  if (values.out) {
    if (multi) prepareOutputDir(values.out);
    else checkOutputFile(values.out);
  }

  const ids: IdSource | undefined = values.deterministic ? new SeededIds(nodeHasher) : undefined;
  // A deterministic run has the same run id every time, so by default it is not stored (a second
  // identical run would collide with the first); pass --store to keep it anyway.
  const storeSpec = values.store ?? (values.deterministic ? 'memory:' : DEFAULT_STORE);
  const store = openStore(storeSpec);
  const inMemory = store instanceof MemoryStore;
  // What `resume` and `recover` need to continue a run of this command, as the user gave it.
  const again = continueArgs(layout ? target : undefined, values);
  if (!values.json) for (const n of notices) process.stderr.write(`${n}\n`);
  try {
    const onEvent = await cliTelemetry();

    for (const [caseName, inputFile] of cases) {
      const model = models.get(caseName)!;
      // Reported at exit if the process ends before this run is finished and reported.
      const pending = track(`a run of ${inputFile ?? 'the default input'}`);
      let result: RunResult;
      try {
        result = await runProgram({
          program,
          input: inputs.get(caseName),
          model,
          tools,
          store,
          onEvent: (e, runId) => {
            if (e.seq === 0)
              pending.update(
                `run ${runId} (input ${inputFile ?? '(none)'})`,
                inMemory
                  ? 'it was kept in memory only, so nothing of it remains'
                  : `it stays running in ${storeSpec}; continue it with: ${commandLine(['recover', ...again, '--run', runId])}`,
              );
            onEvent?.(e, runId);
          },
          ...(policy ? { policy: policy.policy } : {}),
          ...(values.subject !== undefined ? { subject: values.subject } : {}),
          ...(values.deterministic ? { clock: new FixedClock() } : {}),
          ...(ids ? { ids } : {}),
        });
      } catch (e) {
        pending.done();
        // Name the input (an example directory runs several), and say why a deterministic run's id may collide.
        if (!(e instanceof NanoVmError)) throw e;
        const hint =
          e.code === 'E_STORE_DUPLICATE_RUN'
            ? ' (a --deterministic run has a fixed id; use another store or drop --deterministic)'
            : '';
        throw e.withMessage(`${inputFile ?? 'input'}: ${e.message}${hint}`);
      }
      let outFile: string | undefined;
      let writeError: unknown;
      let sigFile: string | undefined;
      if (values.out) {
        outFile = multi
          ? join(values.out, `${basename(programFile).replace(/\.(ya?ml|json)$/, '')}.${caseName}.bundle.json`)
          : values.out;
        try {
          writeBundle(outFile, serializeBundle(result.bundle), {
            run_id: result.run_id,
            status: result.status,
            outcome: result.outcome,
            ...(inMemory ? {} : { store: storeSpec }),
          });
        } catch (e) {
          writeError = e;
          outFile = undefined;
        }
        if (signer && outFile !== undefined)
          try {
            sigFile = writeSignature(outFile, result.bundle, signer);
          } catch (e) {
            writeError = new NanoVmError(
              'E_OUTPUT_WRITE',
              `run ${result.run_id}: its bundle was written to ${outFile}, but its signature could not be written: ${(e as Error).message}`,
              { cause: e },
            );
          }
      }
      if (values.json) {
        process.stdout.write(
          JSON.stringify({
            run_id: result.run_id,
            case: caseName,
            status: result.status,
            ...(result.waiting ? { waiting: waitingInfo(result.waiting) } : {}),
            outcome: result.outcome,
            head_hash: result.head_hash,
            scripted_model: result.receipt.model.scripted,
            ...(outFile ? { bundle: outFile } : {}),
            ...(sigFile ? { signature: sigFile, key_id: signer!.key_id } : {}),
            receipt: result.receipt,
          }) + '\n',
        );
      } else {
        const r = result.receipt;
        process.stdout.write(
          [
            `run ${r.run_id}  program ${r.program_id}  input ${inputFile ?? '(none)'}`,
            `  model ${modelLabel(r)}`,
            renderTrace(result.events),
            `status ${r.status}${r.outcome ? `  outcome ${r.outcome}` : ''}  steps ${r.counts.steps}  events ${r.event_count}  head ${r.head_hash.slice(0, 16)}…${outFile ? `  bundle ${outFile}` : ''}`,
            ...(sigFile ? [`signed by ${signer!.key_id}  signature ${sigFile}`] : []),
            ...(result.waiting ? [suspendedHint(result.run_id, result.waiting, inMemory, again)] : []),
            '',
          ].join('\n'),
        );
      }
      pending.done();
      // The run is reported; its bundle's failed write stops the command (exit 1, E_OUTPUT_WRITE).
      if (writeError !== undefined) throw writeError;
    }
  } finally {
    await store.close();
  }
  if (!values.json) {
    const warnings = loaded.issues.filter((i) => i.severity === 'warning');
    if (warnings.length) process.stderr.write(`warnings:\n${renderIssues(warnings)}\n`);
  }
  return EXIT.OK;
}

/**
 * The input of a run given no --input: `{}` when the program's input_schema accepts it (with a
 * notice), else refused (E_USAGE) — a run is never started on an input the user did not give
 * and the program cannot take.
 */
function noInput(program: Program, programFile: string, notices: string[]): Record<string, never> {
  const vs = checkSchema(program.input_schema, {});
  if (vs.length)
    throw new NanoVmError(
      'E_USAGE',
      `program ${programFile} needs an input (its input_schema does not accept {}: ${describeViolations(vs)}); pass --input <file.json>`,
    );
  notices.push(`nano-vm: no --input given: running with the empty input {}`);
  return {};
}

/** The target and options a later `resume` or `recover` of this command's runs needs. */
export function continueArgs(
  exampleDir: string | undefined,
  o: {
    model?: string | undefined;
    tools?: string | undefined;
    policy?: string | undefined;
    gateway?: string | undefined;
    store?: string | undefined;
  },
): string[] {
  return [
    ...(exampleDir !== undefined ? [exampleDir] : []),
    ...(o.model !== undefined ? ['--model', o.model] : []),
    ...(o.tools !== undefined ? ['--tools', o.tools] : []),
    ...(o.policy !== undefined ? ['--policy', o.policy] : []),
    ...(o.gateway !== undefined ? ['--gateway', o.gateway] : []),
    ...(o.store !== undefined ? ['--store', o.store] : []),
  ];
}

/** A command line a POSIX shell reads back as these words (placeholders like <file.json> are left as they are). */
export function commandLine(words: string[]): string {
  return [
    'nano-vm',
    ...words.map((w) => (/^([A-Za-z0-9_./:,@=+-]+|<[a-z.]+>)$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)),
  ].join(' ');
}

/** What a suspended run waits for, for --json output. */
export function waitingInfo(w: WaitCommand): { step: string; role: string | null; deadline: string | null } {
  return {
    step: w.step,
    role: w.role ?? null,
    deadline: w.deadline_ms === undefined ? null : new Date(w.deadline_ms).toISOString(),
  };
}

export function suspendedHint(runId: string, w: WaitCommand, inMemory: boolean, again: string[]): string {
  const info = waitingInfo(w);
  return inMemory
    ? `suspended at ${w.step}: the run was kept in memory only, so it cannot be resumed; run with --store sqlite:<path> to resume it later`
    : `suspended at ${w.step}${info.role ? `, waiting for role ${info.role}` : ''}${info.deadline ? ` until ${info.deadline}` : ''}: ${commandLine(['resume', runId, ...again, '--event', '<file.json>', ...(info.role ? ['--role', info.role] : [])])}`;
}
