/**
 * The one place where the command line turns an error into an exit status and output. Commands
 * throw NanoVmErrors; the code's exit class (ERROR_CODES, docs/errors.md "Exit status") decides the
 * status, and every error prints the same way: `nano-vm: <CODE>: <message>`, its location and
 * located issues on stderr, or `{"error": {...}}` on stdout with --json.
 */
import {
  ERROR_CODES,
  formatLocation,
  isErrorCode,
  NanoVmError,
  type ErrorLocation,
  type ExitClass,
  type Issue,
} from '@nano-vm/kernel';
import { EXIT } from './exitCodes.js';
import { issueLines } from './render.js';

const STATUS: Record<ExitClass, number> = {
  refused: EXIT.REFUSED,
  failed: EXIT.FAILED,
  bug: EXIT.FAILED,
  // A warning never fails a command; one thrown anyway is a failure like any other.
  warning: EXIT.FAILED,
};

export interface ErrorReport {
  code: string;
  message: string;
  issues: Issue[];
  location?: ErrorLocation;
  exit: number;
}

/** What every command reports for `e`, and its exit status: the code's class alone decides it. */
export function errorReport(e: unknown): ErrorReport {
  if (e instanceof NanoVmError) {
    const code: string = e.code;
    // A code nano-vm does not document comes from an extension (a model adapter): the action failed.
    const exitClass: ExitClass = isErrorCode(code) ? ERROR_CODES[code] : 'failed';
    return {
      code,
      message: exitClass === 'bug' ? unexpected(e) : e.message,
      issues: e.issues,
      ...(e.location ? { location: e.location } : {}),
      exit: STATUS[exitClass],
    };
  }
  // node:util parseArgs refuses unknown options and missing values with ERR_PARSE_ARGS_* codes.
  if (e instanceof Error && String((e as Error & { code?: unknown }).code).startsWith('ERR_PARSE_ARGS'))
    return { code: 'E_USAGE', message: e.message, issues: [], exit: STATUS[ERROR_CODES.E_USAGE] };
  return { code: 'E_INTERNAL', message: unexpected(e), issues: [], exit: STATUS[ERROR_CODES.E_INTERNAL] };
}

const unexpected = (e: unknown): string =>
  `unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;

/** The error as the user reads it: one line with code and message, then where, then the issues. */
export function errorText(r: Pick<ErrorReport, 'code' | 'message' | 'issues' | 'location'>): string {
  const lines = [`nano-vm: ${r.code}: ${r.message}`];
  if (r.location) lines.push(`  at ${formatLocation(r.location)}`);
  lines.push(...issueLines(r.issues));
  return lines.join('\n') + '\n';
}

/** The `error` member of --json output. */
/** An issue as every command's --json prints it: every member present, null where it has none. */
export function issueJson(i: Issue): Record<string, unknown> {
  return {
    code: i.code,
    severity: i.severity,
    step: i.step ?? null,
    message: i.message,
    line: i.line ?? null,
    col: i.col ?? null,
    path: i.path ?? null,
  };
}

export function errorJson(r: ErrorReport): Record<string, unknown> {
  return {
    code: r.code,
    message: r.message,
    ...(r.location ? { location: r.location } : {}),
    issues: r.issues.map(issueJson),
  };
}

/** Prints the error and sets the process's exit status. */
export function exitWithError(e: unknown, json: boolean): void {
  const r = errorReport(e);
  if (json) process.stdout.write(JSON.stringify({ error: errorJson(r) }) + '\n');
  else process.stderr.write(errorText(r));
  process.exitCode = r.exit;
}
