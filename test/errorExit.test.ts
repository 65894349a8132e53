/** The command line maps every error to an exit status and output in one place (packages/cli/src/errorExit.ts). */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NanoVmError } from '@nano-vm/kernel';
import { ModelError, StoreError } from '@nano-vm/runtime';
import { errorJson, errorReport, errorText } from '../packages/cli/src/errorExit.js';

describe('errorReport', () => {
  it("takes the exit status from the code's class: refused 2, failed 1", () => {
    expect(errorReport(new NanoVmError('E_USAGE', 'usage: …'))).toMatchObject({ code: 'E_USAGE', exit: 2 });
    expect(errorReport(new NanoVmError('E_INPUT_INVALID', 'bad input')).exit).toBe(2);
    expect(errorReport(new StoreError('E_RESUME_CONFLICT', 'lost')).exit).toBe(1);
    expect(errorReport(new NanoVmError('E_CHAIN_HASH', 'edited')).exit).toBe(1);
  });

  it('an error thrown by the machine or by the store side exits the same for the same code', () => {
    // E_RESUME_NOT_SUSPENDED comes from resumeRun (a StoreError) or the kernel (a NanoVmError).
    expect(errorReport(new StoreError('E_RESUME_NOT_SUSPENDED', 'x')).exit).toBe(1);
    expect(errorReport(new NanoVmError('E_RESUME_NOT_SUSPENDED', 'x')).exit).toBe(1);
  });

  it('has no per-command exceptions: an unknown run exits 2 whichever command names it', () => {
    const noRun = new NanoVmError('E_STORE_NO_RUN', 'no run r');
    expect(errorReport(noRun).exit).toBe(2);
    expect(readFileSync(new URL('../packages/cli/src/errorExit.ts', import.meta.url), 'utf8')).not.toMatch(
      /COMMAND_EXITS|command\s*[!=]==/,
    );
  });

  it('a model adapter code nano-vm does not document is a failure (exit 1), kept as given', () => {
    expect(errorReport(new ModelError('E_CARD_DECLINED', 'declined'))).toMatchObject({
      code: 'E_CARD_DECLINED',
      exit: 1,
    });
  });

  it('argument errors of node:util parseArgs are E_USAGE; anything uncoded is E_INTERNAL with its stack', () => {
    const parseArgs = Object.assign(new TypeError("Unknown option '--nope'"), {
      code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION',
    });
    expect(errorReport(parseArgs)).toMatchObject({
      code: 'E_USAGE',
      message: "Unknown option '--nope'",
      exit: 2,
    });
    const bug = errorReport(new TypeError('x is undefined'));
    expect(bug).toMatchObject({ code: 'E_INTERNAL', exit: 1 });
    expect(bug.message).toMatch(/^unexpected error: TypeError: x is undefined\n\s+at /);
    // A coded bug prints its stack too.
    expect(errorReport(new NanoVmError('E_INTERNAL', 'schema broken')).message).toMatch(
      /^unexpected error: NanoVmError: schema broken\n/,
    );
  });

  it('prints code, message, location and issues; --json carries the same', () => {
    const issue = {
      code: 'E_NO_END',
      severity: 'error' as const,
      message: 'no end step',
      file: 'p.yaml',
      line: 3,
      col: 1,
    };
    const e = new NanoVmError('E_PROGRAM_INVALID', 'program p.yaml is invalid', {
      issues: [issue],
      location: { file: 'p.yaml', step: 'route' },
    });
    const r = errorReport(e);
    expect(errorText(r)).toBe(
      'nano-vm: E_PROGRAM_INVALID: program p.yaml is invalid\n  at p.yaml, step route\n  p.yaml:3:1: error E_NO_END: no end step\n',
    );
    expect(errorJson(r)).toEqual({
      code: 'E_PROGRAM_INVALID',
      message: 'program p.yaml is invalid',
      location: { file: 'p.yaml', step: 'route' },
      issues: [
        { code: 'E_NO_END', severity: 'error', step: null, message: 'no end step', line: 3, col: 1, path: null },
      ],
    });
    expect(errorJson(errorReport(new NanoVmError('E_USAGE', 'u')))).toEqual({
      code: 'E_USAGE',
      message: 'u',
      issues: [],
    });
  });
});
