/**
 * Files the CLI writes (bundles): checked before anything runs, written atomically, and a run's
 * record is never lost because its file could not be written (issue 11, item 5).
 */
import {
  accessSync,
  closeSync,
  constants,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NanoVmError } from '@nano-vm/kernel';

const reason = (e: unknown): string => {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such directory';
  if (code === 'ENOTDIR') return 'a part of the path is a file, not a directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EROFS') return 'read-only file system';
  return (e as Error).message;
};

const statOrNull = (p: string): Stats | null => {
  try {
    return statSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
};

/**
 * Refuses (E_FILE, before anything runs) an output file that cannot be written: its directory is
 * missing or is not a directory (the path runs below a regular file), it is itself a directory,
 * or there is no permission to write it. A device or pipe (`/dev/stdout`) is accepted as it is.
 */
export function checkOutputFile(file: string, what = 'bundle'): void {
  const fail = (why: string) => new NanoVmError('E_FILE', `cannot write the ${what} to ${file}: ${why}`);
  let st: Stats | null;
  try {
    st = statOrNull(file);
  } catch (e) {
    throw fail(reason(e));
  }
  if (st?.isDirectory()) throw fail('it is a directory');
  const dir = dirname(resolve(file));
  let dst: Stats | null;
  try {
    dst = statOrNull(dir);
  } catch (e) {
    throw fail(reason(e));
  }
  if (!dst) throw fail(`directory ${dirname(file)} does not exist`);
  if (!dst.isDirectory()) throw fail(`${dirname(file)} is not a directory`);
  try {
    // A regular file is replaced by a rename in its directory: the directory must be writable.
    accessSync(st && !st.isFile() ? file : dir, constants.W_OK);
  } catch (e) {
    throw fail(reason(e));
  }
}

/** Creates the output directory if needed (E_FILE, before anything runs, when it cannot be). */
export function prepareOutputDir(dir: string, what = 'bundles'): void {
  try {
    mkdirSync(dir, { recursive: true });
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new NanoVmError(
      'E_FILE',
      `cannot write the ${what} to directory ${dir}: ${code === 'EEXIST' || code === 'ENOTDIR' ? `${dir} or a directory above it is a file` : reason(e)}`,
    );
  }
}

/**
 * Writes `text` to `file` atomically: a temporary file in the same directory, flushed to disk,
 * then renamed over `file`, so a reader sees the old file or the whole new one, never a part. A
 * target that exists and is not a regular file (a device, a pipe) is written directly. Throws the
 * file system's error; nothing is left behind.
 */
export function writeFileAtomic(file: string, text: string): void {
  const st = statOrNull(file);
  const direct = st !== null && !st.isFile();
  const tmp = direct
    ? file
    : join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, direct ? 'w' : 'wx', st ? st.mode & 0o777 : 0o666);
    const buf = Buffer.from(text, 'utf8');
    for (let at = 0; at < buf.length;) at += writeSync(fd, buf, at);
    if (!direct) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    if (!direct) renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    if (!direct)
      try {
        unlinkSync(tmp);
      } catch {
        // never created
      }
    throw e;
  }
}

/** Where a run is kept, for the message when its bundle cannot be written. */
export interface RunWhereabouts {
  run_id: string;
  status: string;
  outcome: string | null;
  /** The `--store` spec of a persistent store holding the run; absent for an in-memory store. */
  store?: string;
}

/**
 * Writes a run's bundle to `file`. When that fails (the disk filled, the directory went away
 * after the check), the run is not lost: the error (E_OUTPUT_WRITE, exit 1) says where it is and
 * how to export it — from its store, or, for a run kept in memory only, from a copy saved in the
 * temporary directory (or, when even that fails, printed on stderr).
 */
export function writeBundle(file: string, text: string, run: RunWhereabouts): void {
  try {
    writeFileAtomic(file, text);
    return;
  } catch (e) {
    const head = `run ${run.run_id} ended ${run.status}${run.outcome ? ` ${run.outcome}` : ''}, but its bundle could not be written to ${file}: ${reason(e)}`;
    if (run.store !== undefined)
      throw new NanoVmError(
        'E_OUTPUT_WRITE',
        `${head}. The run is kept in ${run.store}: export it with nano-vm export ${run.run_id} --store ${run.store} -o <file>`,
        { cause: e },
      );
    const rescue = join(tmpdir(), `nano-vm-${run.run_id}.bundle.json`);
    try {
      writeFileAtomic(rescue, text);
    } catch {
      process.stderr.write(text);
      throw new NanoVmError(
        'E_OUTPUT_WRITE',
        `${head}. The run was kept in memory only and ${rescue} could not be written either, so its bundle was printed on stderr above`,
        { cause: e },
      );
    }
    throw new NanoVmError(
      'E_OUTPUT_WRITE',
      `${head}. The run was kept in memory only, so its bundle was saved to ${rescue} instead`,
      { cause: e },
    );
  }
}
