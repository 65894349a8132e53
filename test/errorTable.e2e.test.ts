/**
 * One failure, one code, one exit status, whatever the command: every command that reads a bundle
 * or names a run is run (the real CLI, a real SQLite file) on the same bad bundle and the same
 * unknown run id, and must report the same code with the exit status ERROR_CODES (and so
 * docs/errors.md, test/errorCodes.test.ts) gives that code.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode } from '../packages/kernel/src/errors.js';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const EXIT_OF = { refused: 2, failed: 1, bug: 1, warning: 1 } as const;
const exitOf = (code: ErrorCode): number => EXIT_OF[ERROR_CODES[code]];

let dir: string;
let db: string;

function nanoVm(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NANO_VM_STORE: `sqlite:${db}` },
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** The code a command reported with --json: its `{"error": …}`, or verify's own report. */
function reportedCode(out: string): string | undefined {
  const last = out.trim().split('\n').at(-1) ?? '';
  try {
    const j = JSON.parse(last) as { error?: { code?: string }; code?: string };
    return j.error?.code ?? j.code;
  } catch {
    return undefined;
  }
}

const files: Record<string, string> = {};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-errtable-'));
  db = join(dir, 'runs.db');
  const bundle = join(dir, 'good.bundle.json');
  const r = nanoVm('run', 'examples/refund', '--input', 'examples/refund/inputs/approve.json', '-o', bundle);
  expect(r.code, r.err).toBe(0);
  const text = readFileSync(bundle, 'utf8');
  files.truncated = join(dir, 'truncated.bundle.json');
  writeFileSync(files.truncated, text.slice(0, Math.floor(text.length / 2)));
  files.membersMissing = join(dir, 'members-missing.bundle.json');
  writeFileSync(files.membersMissing, JSON.stringify({ format: 'nano-vm.bundle/v1', events: [] }));
});

const BUNDLE_READERS: [name: string, args: (file: string) => string[]][] = [
  ['verify', (f) => ['verify', f]],
  ['receipt', (f) => ['receipt', f]],
  ['replay', (f) => ['replay', f]],
  ['analyze', (f) => ['analyze', f]],
];

describe('the same bad bundle gets the same code and exit status in every command that reads one', () => {
  for (const kind of ['truncated', 'membersMissing'] as const)
    it.each(BUNDLE_READERS)(`${kind}: %s reports E_BUNDLE_FORMAT with its table exit`, (_name, args) => {
      const r = nanoVm(...args(files[kind]!), '--json');
      expect({ code: reportedCode(r.out), exit: r.code }).toEqual({
        code: 'E_BUNDLE_FORMAT',
        exit: exitOf('E_BUNDLE_FORMAT'),
      });
    });

  it.each(BUNDLE_READERS)('truncated, text output: %s names E_BUNDLE_FORMAT and exits the same', (_name, args) => {
    const r = nanoVm(...args(files.truncated!));
    expect(r.code).toBe(exitOf('E_BUNDLE_FORMAT'));
    expect(r.out + r.err).toMatch(/(nano-vm: |INVALID )E_BUNDLE_FORMAT/);
    expect(r.out + r.err).not.toMatch(/\.js:\d+:\d+\)?\n/); // no stack
  });

  it.each(BUNDLE_READERS)('a missing file: %s reports E_FILE with its table exit', (_name, args) => {
    const r = nanoVm(...args(join(dir, 'nosuch.bundle.json')), '--json');
    expect({ code: reportedCode(r.out), exit: r.code }).toEqual({ code: 'E_FILE', exit: exitOf('E_FILE') });
  });
});

const RUN_ID_READERS: [name: string, args: (id: string) => string[]][] = [
  ['export', (id) => ['export', id]],
  ['resume', (id) => ['resume', id, 'examples/approval', '--event', 'examples/approval/inputs/waiting.json']],
  ['analyze', (id) => ['analyze', id]],
  ['recover', (id) => ['recover', 'examples/approval', '--run', id]],
];

describe('an unknown run id gets the same code and exit status in every command that names a run', () => {
  it.each(RUN_ID_READERS)('%s reports E_STORE_NO_RUN with its table exit', (_name, args) => {
    const r = nanoVm(...args('run-nosuch'), '--json');
    expect({ code: reportedCode(r.out), exit: r.code }).toEqual({
      code: 'E_STORE_NO_RUN',
      exit: exitOf('E_STORE_NO_RUN'),
    });
  });
});

describe('a scripted model written for another program', () => {
  it('is refused before the run with E_SCRIPT_UNKNOWN_STEP and its table exit', () => {
    const r = nanoVm(
      'run',
      'examples/refund/program.yaml',
      '--tools',
      'examples/refund/tools.mjs',
      '--input',
      'examples/refund/inputs/approve.json',
      '--model',
      'scripted:examples/kyc/model.yaml',
      '--json',
    );
    expect({ code: reportedCode(r.out), exit: r.code }).toEqual({
      code: 'E_SCRIPT_UNKNOWN_STEP',
      exit: exitOf('E_SCRIPT_UNKNOWN_STEP'),
    });
    expect(r.out).toContain('answers.review');
  });
});
