import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  NanoVmError,
  pureHasher,
  replayBundle,
  serializeBundle,
  verifyBundle,
  type ExternalEvent,
} from '@nano-vm/kernel';
import {
  FixedClock,
  MemoryStore,
  SeededIds,
  nodeHasher,
  resumeRun,
  runProgram,
  type ResumeResult,
  type RunResult,
} from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { loadPolicyFile } from '../policyFile.js';
import { exampleLayout, isDirectory, loadProgramFile, loadTools, modelFromSpec, readJson } from '../inputs.js';
import { prepareOutputDir, writeBundle } from '../outputFile.js';
import { renderIssues } from '../render.js';
import { readBundleFile } from '../bundleFile.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const EXAMPLES = defineCommand({
  name: 'examples',
  summary:
    'Runs every example directory under dir (default examples) on every input, then verifies and replays each bundle from its file alone.',
  args: '[dir]',
  options: {
    out: { type: 'string', default: '.nano-vm/bundles', value: '<dir>', description: 'where the bundles are written' },
    deterministic: {
      type: 'boolean',
      default: false,
      description: 'as for run: fixed clock and run ids derived from program and input',
    },
    json: { type: 'boolean', default: false, description: 'one object: {runs, failures}' },
  },
  run: examplesCommand,
});
export const EXAMPLES_USAGE = usageText(EXAMPLES);

/**
 * The main job of `npm start`: run every example program on every input, write each bundle, and
 * verify each one independently (chain and receipt recomputed with the kernel's pure hasher).
 */
export async function examplesCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(EXAMPLES, argv);
  const root = positionals[0] ?? 'examples';
  if (!isDirectory(root)) throw new NanoVmError('E_FILE', `${root} is not a directory of examples`);
  const dirs = readdirSync(root)
    .map((d) => join(root, d))
    .filter(isDirectory)
    .sort();
  prepareOutputDir(values.out);
  const rows: {
    example: string;
    case: string;
    status: string;
    outcome: string | null;
    steps: number;
    events: number;
    verified: boolean;
    replay_identical: boolean;
    head: string;
    bundle: string;
  }[] = [];
  let failures = 0;
  const log = (s: string) => values.json || process.stdout.write(s);
  log(
    `Running ${dirs.length} example programs from ${root} (model: SCRIPTED — deterministic answers from each example's model.yaml, not a real LLM)\n`,
  );
  for (const dir of dirs) {
    const layout = exampleLayout(dir);
    const tools = await loadTools(layout.toolsFile);
    const policy = layout.policyFile ? loadPolicyFile(layout.policyFile) : undefined;
    const loaded = loadProgramFile(layout.programFile, tools, policy);
    if (!loaded.program || loaded.issues.some((i) => i.severity === 'error')) {
      failures++;
      log(`✗ ${layout.name}: program invalid\n${renderIssues(loaded.issues)}\n`);
      continue;
    }
    if (!layout.modelFile) throw new NanoVmError('E_EXAMPLE_LAYOUT', `${dir} has no model.yaml`);
    const ids = values.deterministic ? new SeededIds(nodeHasher) : undefined;
    for (const [caseName, inputFile] of layout.inputs) {
      let res: RunResult | ResumeResult;
      const store = new MemoryStore();
      const model = modelFromSpec(`scripted:${layout.modelFile}`, caseName);
      let resumedWith: string | null = null;
      try {
        res = await runProgram({
          store,
          program: loaded.program,
          input: readJson(inputFile, 'input'),
          model,
          tools,
          ...(policy ? { policy: policy.policy } : {}),
          ...(values.deterministic ? { clock: new FixedClock() } : {}),
          ...(ids ? { ids } : {}),
        });
        // A run suspended at a wait step gets the example's event for this case, if it has one
        // (events/<case>.json, sent as the role the step waits for), just as `nano-vm resume` would.
        const eventFile = join(dir, 'events', `${caseName}.json`);
        if (res.waiting && existsSync(eventFile)) {
          const event: ExternalEvent = { payload: readJson(eventFile, 'event') };
          if (res.waiting.role !== undefined) event.role = res.waiting.role;
          res = await resumeRun({
            store,
            runId: res.run_id,
            event,
            model,
            tools,
            ...(values.deterministic ? { clock: new FixedClock(Date.UTC(2026, 0, 1, 1)) } : {}),
          });
          resumedWith = eventFile;
        }
      } catch (e) {
        if (!(e instanceof NanoVmError)) throw e;
        failures++;
        log(`✗ ${layout.name}/${caseName}: refused: ${e.code} ${e.message}\n`);
        continue;
      }
      const bundleFile = join(values.out, `${layout.name}.${caseName}.bundle.json`);
      const text = serializeBundle(res.bundle);
      // Atomic; a failed write stops here and says where the bundle went instead (E_OUTPUT_WRITE).
      writeBundle(bundleFile, text, { run_id: res.run_id, status: res.status, outcome: res.outcome });
      // Verify what was written, read back from the file as a stranger would (as verify reads it),
      // with the browser-safe hasher, then replay it from the file alone: no model or tool is called.
      const readBack = readBundleFile(bundleFile);
      const v = verifyBundle(readBack, pureHasher);
      const replay = replayBundle(readBack, { hasher: pureHasher });
      if (!v.ok || !replay.identical) failures++;
      rows.push({
        example: layout.name,
        case: caseName,
        status: res.status,
        outcome: res.outcome,
        steps: res.receipt.counts.steps,
        events: res.receipt.event_count,
        verified: v.ok,
        replay_identical: replay.identical,
        head: res.head_hash,
        bundle: bundleFile,
      });
      const check = !v.ok
        ? `VERIFY FAILED ${v.code}: ${v.reason}`
        : !replay.identical
          ? `REPLAY DIVERGES at seq ${replay.first_divergence?.seq}`
          : `verified + replay identical (${res.receipt.event_count} events, head ${res.head_hash.slice(0, 12)}…)`;
      const waitNote = res.waiting
        ? `  (waiting at ${res.waiting.step} for ${res.waiting.role ?? 'an event'})`
        : resumedWith
          ? `  (resumed with ${resumedWith})`
          : '';
      log(
        `${v.ok && replay.identical ? '✓' : '✗'} ${`${layout.name}/${caseName}`.padEnd(28)} ${res.status.padEnd(10)} ${(res.outcome ?? '-').padEnd(20)} path ${res.receipt.path.join('→')}  retries ${res.receipt.counts.retries} fallbacks ${res.receipt.counts.fallbacks}  ${check}${waitNote}\n`,
      );
    }
  }
  if (values.json) process.stdout.write(JSON.stringify({ runs: rows, failures }) + '\n');
  else
    log(
      `\n${rows.length} runs, ${rows.filter((r) => r.verified).length} receipts verified, ${rows.filter((r) => r.replay_identical).length} replays identical, ${failures} failure${failures === 1 ? '' : 's'}. Bundles in ${values.out}/ — try: nano-vm verify ${rows[0]?.bundle ?? '<bundle>'}\n`,
    );
  return failures ? EXIT.FAILED : EXIT.OK;
}
