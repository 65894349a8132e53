/**
 * Every command of `nano-vm`, in the order help and docs/cli.md list them. Adding a command is one
 * entry here (its spec, defineCommand in its own module): parsing, help, usage and the docs
 * reference all read it.
 */
import { ANALYZE } from './commands/analyze.js';
import { DEV_AGENT } from './commands/devAgent.js';
import { AUDIT } from './commands/audit.js';
import { ERASE } from './commands/erase.js';
import { EXAMPLES } from './commands/examples.js';
import { EXPR } from './commands/expr.js';
import { GRAPH } from './commands/graph.js';
import { IMPORT } from './commands/import.js';
import { KEYGEN } from './commands/keygen.js';
import { KYC } from './commands/kyc.js';
import { MCP } from './commands/mcp.js';
import { MIGRATE } from './commands/migrate.js';
import { PATHS } from './commands/paths.js';
import { PLAN } from './commands/plan.js';
import { RECEIPT } from './commands/receipt.js';
import { RECOVER } from './commands/recover.js';
import { REPLAY } from './commands/replay.js';
import { RESUME } from './commands/resume.js';
import { RUN } from './commands/run.js';
import { SUBMIT } from './commands/submit.js';
import { EXPORT, RUNS } from './commands/runs.js';
import { VALIDATE } from './commands/validate.js';
import { VERIFY } from './commands/verify.js';
import { WORKER } from './commands/worker.js';
import { WORKERS } from './commands/workers.js';
import type { CommandSpec } from './commandSpec.js';

export const COMMANDS: readonly CommandSpec[] = [
  RUN,
  VALIDATE,
  VERIFY,
  RECEIPT,
  EXPR,
  ERASE,
  EXAMPLES,
  REPLAY,
  RUNS,
  EXPORT,
  RECOVER,
  RESUME,
  ANALYZE,
  PLAN,
  PATHS,
  GRAPH,
  KEYGEN,
  DEV_AGENT,
  KYC,
  IMPORT,
  MCP,
  AUDIT,
  MIGRATE,
  SUBMIT,
  WORKER,
  WORKERS,
];

export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}
