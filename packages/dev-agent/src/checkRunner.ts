/**
 * Running a check or test command in the staged worktree: through `/bin/sh -c` (the operator wrote
 * the command; the model cannot change it), in its own process group so a timeout or an abort ends
 * everything it started, with a clean environment (no provider keys or other secrets of the
 * agent's own environment) and with its output captured up to a bound.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { NanoVmError } from '@nano-vm/kernel';

export interface CheckResult {
  command: string;
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  duration_ms: number;
  /** The captured output (stdout and stderr interleaved): its start and its end when it was longer than the bound. */
  output: string;
  output_bytes: number;
  truncated: boolean;
}

export interface CheckEnvironment {
  /** Directories searched first for commands (e.g. the repository's node_modules/.bin, a tsc shim). */
  pathPrefix: readonly string[];
  /** HOME and TMPDIR of the commands: a directory of the agent's own. */
  home: string;
}

/** Variables a command gets, whatever the agent's environment holds. Nothing else passes. */
export function cleanEnvironment(env: CheckEnvironment, parentPath = process.env.PATH ?? ''): Record<string, string> {
  return {
    PATH: [...env.pathPrefix, ...parentPath.split(delimiter).filter(Boolean)].join(delimiter),
    HOME: env.home,
    TMPDIR: env.home,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    CI: '1',
    NO_COLOR: '1',
    FORCE_COLOR: '0',
    NODE_OPTIONS: '',
  };
}

export const DEFAULT_CHECK_TIMEOUT_MS = 300_000;
export const DEFAULT_OUTPUT_LIMIT = 64 * 1024;

/**
 * The programs a command line starts: the first word of each simple command (after `&&`, `||`,
 * `;`, `|`), skipping `VAR=value` assignments. Shell syntax beyond that is the operator's business;
 * this is for the up-front "is the tool installed" check.
 */
export function commandPrograms(command: string): string[] {
  const programs: string[] = [];
  for (const part of command.split(/&&|\|\||[;|]/)) {
    const words = part.trim().split(/\s+/).filter(Boolean);
    const first = words.find((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w));
    if (first !== undefined && !['(', ')', '!', 'exec', 'env', 'time'].includes(first))
      programs.push(first.replace(/^['"]|['"]$/g, ''));
  }
  return programs;
}

const SHELL_BUILTINS = new Set(['cd', 'echo', 'true', 'false', 'test', '[', 'exit', 'export', 'set', 'printf', ':']);

/** Where `program` would be found on `path`, or null (a builtin resolves to itself). */
export function resolveProgram(program: string, path: string, cwd: string): string | null {
  if (SHELL_BUILTINS.has(program)) return program;
  const executable = (p: string): boolean => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (program.includes('/')) {
    const p = isAbsolute(program) ? program : join(cwd, program);
    return executable(p) ? p : null;
  }
  for (const dir of path.split(delimiter).filter(Boolean))
    if (executable(join(dir, program))) return join(dir, program);
  return null;
}

/** Refuses (E_DEV_CHECK_TOOL_MISSING) a command whose programs are not installed, before anything runs. */
export function requireCommandTools(
  commands: readonly string[],
  env: Record<string, string>,
  cwd: string,
  provided: readonly string[] = [],
): void {
  for (const command of commands)
    for (const program of commandPrograms(command))
      if (!provided.includes(program) && resolveProgram(program, env.PATH ?? '', cwd) === null)
        throw new NanoVmError(
          'E_DEV_CHECK_TOOL_MISSING',
          `check command "${command}": '${program}' is not installed (not found on the PATH the checks run with: ${env.PATH})`,
        );
}

/** Process groups of the commands running now, so an interrupted agent can end them (they do not get the terminal's signals). */
const running = new Set<number>();

/** SIGKILLs every check command still running (with everything it started). */
export function killRunningChecks(): void {
  for (const pgid of running) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  running.clear();
}

/** Runs one command; never throws for the command's own failure (that is the result). */
export function runCheck(
  command: string,
  opts: { cwd: string; env: Record<string, string>; timeoutMs: number; outputLimit: number; signal?: AbortSignal },
): Promise<CheckResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: opts.cwd,
      env: opts.env,
      detached: true, // its own process group: a timeout kills whatever it started
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid !== undefined) running.add(child.pid);
    const half = Math.floor(opts.outputLimit / 2);
    let head = Buffer.alloc(0);
    const tail: Buffer[] = [];
    let tailBytes = 0;
    let total = 0;
    const take = (chunk: Buffer): void => {
      total += chunk.length;
      if (head.length < half) {
        const room = half - head.length;
        head = Buffer.concat([head, chunk.subarray(0, room)]);
        chunk = chunk.subarray(room);
      }
      if (chunk.length === 0) return;
      tail.push(chunk);
      tailBytes += chunk.length;
      while (tail.length > 1 && tailBytes - tail[0]!.length >= half) tailBytes -= tail.shift()!.length;
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    let timedOut = false;
    const killGroup = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, opts.timeoutMs);
    const onAbort = (): void => killGroup();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (child.pid !== undefined) running.delete(child.pid);
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      killGroup(); // anything it left running in the background
      let tailBuf = Buffer.concat(tail);
      const truncated = total > head.length + tailBuf.length || total > opts.outputLimit;
      if (tailBuf.length > half) tailBuf = tailBuf.subarray(tailBuf.length - half);
      const output = truncated
        ? `${head.toString('utf8')}\n… [${total - head.length - tailBuf.length} bytes omitted] …\n${tailBuf.toString('utf8')}`
        : Buffer.concat([head, tailBuf]).toString('utf8');
      resolve({
        command,
        exit_code: code,
        signal: signal,
        timed_out: timedOut,
        duration_ms: Math.round(performance.now() - started),
        output,
        output_bytes: total,
        truncated,
      });
    });
  });
}
