#!/usr/bin/env node
import { NanoVmError } from '@nano-vm/kernel';
import { RUNTIME_VERSION } from '@nano-vm/runtime';
import { analyzeCommand, ANALYZE_USAGE } from './commands/analyze.js';
import { eraseCommand, ERASE_USAGE } from './commands/erase.js';
import { examplesCommand, EXAMPLES_USAGE } from './commands/examples.js';
import { exprCommand, EXPR_USAGE } from './commands/expr.js';
import { graphCommand, GRAPH_USAGE } from './commands/graph.js';
import { keygenCommand, KEYGEN_USAGE } from './commands/keygen.js';
import { pathsCommand, PATHS_USAGE } from './commands/paths.js';
import { planCommand, PLAN_USAGE } from './commands/plan.js';
import { receiptCommand, RECEIPT_USAGE } from './commands/receipt.js';
import { recoverCommand, RECOVER_USAGE } from './commands/recover.js';
import { replayCommand, REPLAY_USAGE } from './commands/replay.js';
import { resumeCommand, RESUME_USAGE } from './commands/resume.js';
import { runCommand, RUN_USAGE } from './commands/run.js';
import { exportCommand, EXPORT_USAGE, runsCommand, RUNS_USAGE } from './commands/runs.js';
import { validateCommand, VALIDATE_USAGE } from './commands/validate.js';
import { verifyCommand, VERIFY_USAGE } from './commands/verify.js';
import { exitWithError } from './errorExit.js';
import { EXIT } from './exitCodes.js';
import { installExitGuard, track } from './exitGuard.js';

/** Every command with its usage line, in the order `--help` lists them. */
const COMMANDS: Record<string, [run: (argv: string[]) => Promise<number>, usage: string]> = {
  run: [runCommand, RUN_USAGE],
  validate: [validateCommand, VALIDATE_USAGE],
  verify: [verifyCommand, VERIFY_USAGE],
  receipt: [receiptCommand, RECEIPT_USAGE],
  expr: [exprCommand, EXPR_USAGE],
  erase: [eraseCommand, ERASE_USAGE],
  examples: [examplesCommand, EXAMPLES_USAGE],
  replay: [replayCommand, REPLAY_USAGE],
  runs: [runsCommand, RUNS_USAGE],
  export: [exportCommand, EXPORT_USAGE],
  recover: [recoverCommand, RECOVER_USAGE],
  resume: [resumeCommand, RESUME_USAGE],
  analyze: [analyzeCommand, ANALYZE_USAGE],
  plan: [planCommand, PLAN_USAGE],
  paths: [pathsCommand, PATHS_USAGE],
  graph: [graphCommand, GRAPH_USAGE],
  keygen: [keygenCommand, KEYGEN_USAGE],
};

const HELP = `nano-vm ${RUNTIME_VERSION} — governed execution runtime for LLM workflows

${Object.values(COMMANDS)
  .map(([, usage]) => usage)
  .join('\n')}

Exit codes: 0 ok (run: reached a terminal state), 1 invalid/failed check, 2 refused (bad program, input or arguments).
Docs: docs/cli.md, docs/dsl.md, docs/guards.md, docs/trace-format.md, docs/policy.md, docs/privacy.md, docs/models.md, docs/analyzer.md, docs/planner.md
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(HELP);
    return cmd ? EXIT.OK : EXIT.REFUSED;
  }
  if (cmd === '--version' || cmd === 'version') {
    process.stdout.write(`${RUNTIME_VERSION}\n`);
    return EXIT.OK;
  }
  if (!Object.hasOwn(COMMANDS, cmd)) throw new NanoVmError('E_USAGE', `unknown command "${cmd}"\n\n${HELP}`);
  const [run, usage] = COMMANDS[cmd]!;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    return EXIT.OK;
  }
  return run(rest);
}

/**
 * A reader that goes away (`nano-vm run … | head -c 100`) closes stdout: writes then fail with
 * EPIPE. That is the reader's choice, not an error of the command: later output is dropped
 * quietly and the command still finishes its work (a run is not left halfway), with its own exit
 * status. Without a listener the 'error' event would crash the process with a stack.
 */
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') process.exitCode ||= EXIT.FAILED;
  });

const args = process.argv.slice(2);
installExitGuard(args.includes('--json'));
const command = track(`the command "nano-vm ${args.join(' ')}"`, undefined, true);
main(args)
  .then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => exitWithError(e, args[0], args.includes('--json')),
  )
  .finally(() => command.done());
