import type { Issue } from '@nano-vm/kernel';

/** An error the CLI reports with a code, a message and an exit status, never a stack trace. */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: number,
    readonly issues: Issue[] = [],
  ) {
    super(message);
    this.name = 'CliError';
  }
}
