/**
 * Where a dev-agent run stages its change: a temporary directory holding a detached, locked git
 * worktree of the repository, a HOME for the check commands, and a lock file in the repository's
 * git directory that keeps two runs apart. The repository's working tree, index and HEAD are never
 * written; a run that is killed leaves its lock and worktree behind, and the next run removes
 * them (when their process is gone) and says so.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { NanoVmError } from '@nano-vm/kernel';
import { git, gitRaw } from './git.js';

export const LOCK_FILE = 'nano-vm-dev-agent.lock';
/** The lock reason of a staging worktree starts with this, so a later run can recognize one. */
export const WORKTREE_REASON = 'nano-vm dev-agent staging';
export const TEMP_PREFIX = 'nano-vm-dev-agent-';

interface LockRecord {
  pid: number;
  host: string;
  started: string;
  temp: string;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** The repository's common git directory (shared by its worktrees), absolute. */
export function gitCommonDir(root: string): string {
  const d = git(root, ['rev-parse', '--git-common-dir']).trim();
  return isAbsolute(d) ? d : resolve(root, d);
}

/**
 * Removes what interrupted runs left (a lock whose process is gone, their staging worktrees and
 * temporary directories) and returns one line per thing removed. A lock held by a live process
 * refuses the run (E_DEV_LOCKED).
 */
export function cleanUpInterrupted(root: string): string[] {
  const notes: string[] = [];
  const lockPath = join(gitCommonDir(root), LOCK_FILE);
  if (existsSync(lockPath)) {
    let rec: LockRecord | undefined;
    try {
      rec = JSON.parse(readFileSync(lockPath, 'utf8')) as LockRecord;
    } catch {
      rec = undefined; // a torn write: its process died while writing it
    }
    if (rec && rec.host === hostname() && alive(rec.pid))
      throw new NanoVmError(
        'E_DEV_LOCKED',
        `another dev-agent run (pid ${rec.pid}, since ${rec.started}) is working on ${root}; wait for it, or remove ${lockPath} if that process is not a dev agent`,
      );
    if (rec && rec.host !== hostname())
      throw new NanoVmError(
        'E_DEV_LOCKED',
        `a dev-agent run on host ${rec.host} (pid ${rec.pid}) holds ${lockPath}; remove it once that run is over`,
      );
    if (rec?.temp && rec.temp.includes(TEMP_PREFIX) && existsSync(rec.temp)) {
      rmSync(rec.temp, { recursive: true, force: true });
      notes.push(`removed the staging directory ${rec.temp} of an interrupted run (pid ${rec.pid})`);
    }
    rmSync(lockPath, { force: true });
    notes.push(`removed the lock of an interrupted run${rec ? ` (pid ${rec.pid}, started ${rec.started})` : ''}`);
  }
  // Worktrees registered by interrupted runs (their directory may be gone already).
  const list = git(root, ['worktree', 'list', '--porcelain']);
  for (const block of list.split('\n\n')) {
    const path = /^worktree (.+)$/m.exec(block)?.[1];
    const reason = /^locked (.+)$/m.exec(block)?.[1];
    if (!path || !reason?.startsWith(WORKTREE_REASON)) continue;
    const pid = Number(/pid (\d+)/.exec(reason)?.[1]);
    if (Number.isInteger(pid) && alive(pid) && reason.includes(`host ${hostname()}`)) continue;
    removeWorktree(root, path);
    notes.push(`removed the staging worktree ${path} of an interrupted run (${reason})`);
  }
  return notes;
}

function removeWorktree(root: string, path: string): void {
  if (gitRaw(root, ['worktree', 'remove', '--force', '--force', path]).status !== 0) {
    gitRaw(root, ['worktree', 'unlock', path]);
    gitRaw(root, ['worktree', 'prune']);
  }
  rmSync(path, { recursive: true, force: true });
}

export class Workspace {
  readonly temp: string;
  readonly worktree: string;
  readonly home: string;
  readonly bin: string;
  private readonly lockPath: string;
  private staged = false;
  private closed = false;

  private constructor(
    readonly root: string,
    readonly base: string,
    temp: string,
    lockPath: string,
  ) {
    this.temp = temp;
    this.worktree = join(temp, 'stage');
    this.home = join(temp, 'home');
    this.bin = join(temp, 'bin');
    this.lockPath = lockPath;
  }

  /** Takes the repository's dev-agent lock (E_DEV_LOCKED when a live run holds it) and makes the temporary directory. */
  static open(root: string, base: string): Workspace {
    const lockPath = join(gitCommonDir(root), LOCK_FILE);
    const temp = mkdtempSync(join(tmpdir(), TEMP_PREFIX));
    let fd: number;
    try {
      fd = openSync(lockPath, 'wx');
    } catch (e) {
      rmSync(temp, { recursive: true, force: true });
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw new NanoVmError('E_DEV_LOCKED', `another dev-agent run started on ${root} just now (${lockPath})`);
      throw e;
    }
    const rec: LockRecord = { pid: process.pid, host: hostname(), started: new Date().toISOString(), temp };
    writeSync(fd, JSON.stringify(rec));
    closeSync(fd);
    const ws = new Workspace(root, base, temp, lockPath);
    mkdirSync(ws.home);
    mkdirSync(ws.bin);
    return ws;
  }

  /** A clean checkout of the base commit in the worktree (made on first use; reset for later attempts). */
  reset(): void {
    if (!this.staged) {
      git(this.root, [
        'worktree',
        'add',
        '--detach',
        '--lock',
        '--reason',
        `${WORKTREE_REASON} pid ${process.pid} host ${hostname()}`,
        this.worktree,
        this.base,
      ]);
      this.staged = true;
    } else {
      git(this.worktree, ['reset', '-q', '--hard', this.base]);
      git(this.worktree, ['clean', '-q', '-f', '-d', '-x', '-e', '/node_modules']);
    }
    // The repository's installed packages, for the checks (untracked, so not in the worktree).
    const modules = join(this.root, 'node_modules');
    const link = join(this.worktree, 'node_modules');
    if (existsSync(modules) && !existsSync(link)) symlinkSync(modules, link, 'dir');
  }

  writeTemp(name: string, text: string): string {
    const p = join(this.temp, name);
    writeFileSync(p, text);
    return p;
  }

  /** Removes the worktree, the temporary directory and the lock. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.staged) removeWorktree(this.root, this.worktree);
    } finally {
      rmSync(this.temp, { recursive: true, force: true });
      rmSync(this.lockPath, { force: true });
    }
  }
}
