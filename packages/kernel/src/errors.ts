/**
 * Errors are values with stable codes. Every code is documented in docs/errors.md; a test checks
 * that the list there and ERROR_CODES agree.
 */
export type Severity = 'error' | 'warning';

export interface Issue {
  code: string;
  severity: Severity;
  message: string;
  /** Step id the issue is about, when there is one. */
  step?: string;
  /** JSON pointer into the program document (e.g. `/steps/2/next`). */
  path?: string;
  /** 1-based line and column in the source file, when the program came from text. */
  line?: number;
  col?: number;
  file?: string;
}

/** Thrown only at API edges that cannot return a value (CLI argument handling, bundle IO). */
export class NanoVmError extends Error {
  readonly code: string;
  readonly issues: Issue[];
  constructor(code: string, message: string, issues: Issue[] = []) {
    super(message);
    this.name = 'NanoVmError';
    this.code = code;
    this.issues = issues;
  }
}

export function formatIssue(i: Issue): string {
  const where = i.file
    ? `${i.file}${i.line ? `:${i.line}:${i.col ?? 1}` : ''}`
    : i.line
      ? `${i.line}:${i.col ?? 1}`
      : '';
  const step = i.step ? ` [step ${i.step}]` : '';
  return `${where ? where + ': ' : ''}${i.severity} ${i.code}${step}: ${i.message}`;
}
