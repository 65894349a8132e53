#!/usr/bin/env node
import { formatIssue } from '@nano-vm/kernel';
import { RUNTIME_VERSION } from '@nano-vm/runtime';
import { CliError } from './cliError.js';
import { analyzeCommand, ANALYZE_USAGE } from './commands/analyze.js';
import { eraseCommand, ERASE_USAGE } from './commands/erase.js';
import { examplesCommand, EXAMPLES_USAGE } from './commands/examples.js';
import { exprCommand, EXPR_USAGE } from './commands/expr.js';
import { planCommand, PLAN_USAGE } from './commands/plan.js';
import { receiptCommand, RECEIPT_USAGE } from './commands/receipt.js';
import { recoverCommand, RECOVER_USAGE } from './commands/recover.js';
import { replayCommand, REPLAY_USAGE } from './commands/replay.js';
import { resumeCommand, RESUME_USAGE } from './commands/resume.js';
import { runCommand, RUN_USAGE } from './commands/run.js';
import { exportCommand, EXPORT_USAGE, runsCommand, RUNS_USAGE } from './commands/runs.js';
import { validateCommand, VALIDATE_USAGE } from './commands/validate.js';
import { verifyCommand, VERIFY_USAGE } from './commands/verify.js';
import { EXIT } from './exitCodes.js';

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  run: runCommand,
  validate: validateCommand,
  verify: verifyCommand,
  receipt: receiptCommand,
  expr: exprCommand,
  erase: eraseCommand,
  examples: examplesCommand,
  replay: replayCommand,
  runs: runsCommand,
  export: exportCommand,
  recover: recoverCommand,
  resume: resumeCommand,
  analyze: analyzeCommand,
  plan: planCommand,
};

const USAGES: Record<string, string> = {
  run: RUN_USAGE,
  validate: VALIDATE_USAGE,
  verify: VERIFY_USAGE,
  receipt: RECEIPT_USAGE,
  expr: EXPR_USAGE,
  erase: ERASE_USAGE,
  examples: EXAMPLES_USAGE,
  replay: REPLAY_USAGE,
  runs: RUNS_USAGE,
  export: EXPORT_USAGE,
  recover: RECOVER_USAGE,
  resume: RESUME_USAGE,
  analyze: ANALYZE_USAGE,
  plan: PLAN_USAGE,
};

const HELP = `nano-vm ${RUNTIME_VERSION} — governed execution runtime for LLM workflows

${RUN_USAGE}
${VALIDATE_USAGE}
${VERIFY_USAGE}
${RECEIPT_USAGE}
${EXPR_USAGE}
${ERASE_USAGE}
${EXAMPLES_USAGE}
${REPLAY_USAGE}
${RUNS_USAGE}
${EXPORT_USAGE}
${RECOVER_USAGE}
${RESUME_USAGE}
${ANALYZE_USAGE}
${PLAN_USAGE}

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
  const run = COMMANDS[cmd];
  if (!run) throw new CliError('E_USAGE', `unknown command "${cmd}"\n\n${HELP}`, EXIT.REFUSED);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${USAGES[cmd]}\n`);
    return EXIT.OK;
  }
  return run(rest);
}

const json = process.argv.includes('--json');
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    let err: CliError;
    if (e instanceof CliError) err = e;
    else if (e instanceof Error && String((e as Error & { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) err = new CliError('E_USAGE', e.message, EXIT.REFUSED);
    else err = new CliError('E_INTERNAL', `unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, EXIT.FAILED);
    if (json) process.stdout.write(JSON.stringify({ error: { code: err.code, message: err.message, issues: err.issues.map((i) => ({ code: i.code, severity: i.severity, step: i.step ?? null, message: i.message, line: i.line ?? null, col: i.col ?? null, path: i.path ?? null })) } }) + '\n');
    else {
      process.stderr.write(`nano-vm: ${err.code}: ${err.message}\n`);
      for (const i of err.issues) process.stderr.write(`  ${formatIssue(i)}\n`);
    }
    process.exitCode = err.exitCode;
  },
);
