/**
 * `nano-vm dev-agent` end to end: the real, built CLI with real git, tsc and node --test on the
 * fixture repository (docs/dev-agent.md). It commits the demo's third patch with a signed bundle
 * note that `dev-agent audit --key` verifies; it is killed with SIGKILL while staging and while a
 * check runs, and the repository is byte-identical afterwards, with what the killed run left
 * (worktree, lock, temporary directory) removed by the next run, which says so.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ESCAPE_SCRIPT,
  FIX_SCRIPT,
  TASK,
  fingerprint,
  fixtureRepo,
  gitIn,
  scratchDir,
  removeFixtures,
  stagingDirs,
} from '../packages/dev-agent/test/support/fixtureRepo.js';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const TMP = scratchDir();
// The agent's environment holds provider keys; the checks must not see them.
const ENV = { ...process.env, TMPDIR: TMP, OPENAI_API_KEY: 'sk-e2e-must-not-leak', ANTHROPIC_API_KEY: 'sk-ant-e2e' };

const cli = (args: string[], env: NodeJS.ProcessEnv = ENV) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};
const agentArgs = (repo: string, script: string, extra: string[] = []) => [
  'dev-agent',
  '--repo',
  repo,
  '--task',
  TASK,
  '--model',
  `scripted:${script}`,
  ...extra,
];

/** Polls until `file` exists (the killed process's marker). */
async function waitFor(file: string, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!existsSync(file)) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${file}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

afterAll(removeFixtures);

describe('nano-vm dev-agent (the real CLI)', () => {
  it('commits the demo’s third patch with a signed bundle note; audit --key verifies it; no provider key reaches the checks', () => {
    const repo = fixtureRepo();
    const before = fingerprint(repo);
    const keys = mkdtempSync(join(tmpdir(), 'dev-agent-keys-'));
    expect(cli(['keygen', '--out', join(keys, 'signer')]).code).toBe(0);
    expect(cli(['keygen', '--out', join(keys, 'other')]).code).toBe(0);
    const out = join(keys, 'run.bundle.json');
    const r = cli(
      agentArgs(repo, FIX_SCRIPT, [
        '--check',
        'tsc --noEmit',
        '--test',
        'test -z "$OPENAI_API_KEY$ANTHROPIC_API_KEY" && tsc && node --test test/price.test.mjs',
        '--sign',
        join(keys, 'signer.key'),
        '--out',
        out,
        '--json',
      ]),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({
      status: 'completed',
      outcome: 'COMMITTED',
      noted: true,
      scripted_model: true,
      blocked: [],
    });
    expect(summary.attempts.map((a: { failed: string | null }) => a.failed)).toEqual(['typecheck', 'test', null]);
    const { branch, sha } = summary.commit;
    expect(fingerprint(repo)).toEqual(before);
    expect(stagingDirs(TMP)).toEqual([]);
    expect(cli(['verify', out, '--key', join(keys, 'signer.pub')]).code).toBe(0);

    const audit = cli(['dev-agent', 'audit', `main..${branch}`, '--repo', repo, '--key', join(keys, 'signer.pub')]);
    expect(audit.code).toBe(0);
    expect(audit.stdout).toContain(`${sha.slice(0, 12)}  VERIFIED`);
    expect(audit.stdout).toContain('signed by');
    const wrongKey = cli([
      'dev-agent',
      'audit',
      `main..${branch}`,
      '--repo',
      repo,
      '--key',
      join(keys, 'other.pub'),
      '--json',
    ]);
    expect(wrongKey.code).toBe(1);
    expect(JSON.parse(wrongKey.stdout).commits[0]).toMatchObject({
      verdict: 'failed',
      problems: [expect.stringMatching(/^E_SIGNATURE/)],
    });
    expect(wrongKey.stderr).toContain('E_DEV_AUDIT_FAILED');
    // The whole history: the fixture's own commit has no bundle, and that is not a failure.
    const all = cli(['dev-agent', 'audit', branch, '--repo', repo]);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/no bundle[\s\S]*VERIFIED/);
  });

  it('refuses before anything runs: dirty tree, not a repository, missing tool, a store inside the repository', () => {
    const repo = fixtureRepo();
    const before = fingerprint(repo);
    const missing = cli(agentArgs(repo, FIX_SCRIPT, ['--check', 'no-such-typechecker --strict']));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('E_DEV_CHECK_TOOL_MISSING');
    const inside = cli(agentArgs(repo, FIX_SCRIPT, ['--store', `sqlite:${join(repo, 'runs.db')}`]));
    expect(inside.code).toBe(2);
    expect(inside.stderr).toContain('E_USAGE');
    expect(fingerprint(repo)).toEqual(before);
    const plain = mkdtempSync(join(tmpdir(), 'not-a-repo-'));
    const notRepo = cli(agentArgs(plain, FIX_SCRIPT));
    expect(notRepo.code).toBe(2);
    expect(notRepo.stderr).toContain('E_DEV_NOT_A_REPO');
    gitIn(repo, 'rm', '-q', '--cached', 'package.json');
    const dirty = cli(agentArgs(repo, FIX_SCRIPT));
    expect(dirty.code).toBe(2);
    expect(dirty.stderr).toContain('E_DEV_DIRTY_TREE');
  });

  it.each([
    [
      'while staging',
      (marker: string) => ({ env: { NANO_VM_DEV_AGENT_PAUSE_WHILE_STAGING: marker }, args: ['--check', 'true'] }),
    ],
    ['while a check runs', (marker: string) => ({ env: {}, args: ['--check', `touch ${marker} && sleep 5`] })],
  ])(
    'killed with SIGKILL %s: the repository is byte-identical, and the next run removes what was left and says so',
    async (_when, setup) => {
      const repo = fixtureRepo();
      const before = fingerprint(repo);
      const marker = join(mkdtempSync(join(tmpdir(), 'dev-agent-marker-')), 'reached');
      const { env, args } = setup(marker);
      const child = spawn(process.execPath, [CLI, ...agentArgs(repo, FIX_SCRIPT, [...args, '--test', 'true'])], {
        env: { ...ENV, ...env },
        stdio: 'ignore',
      });
      const exited = new Promise((r) => child.on('exit', r));
      await waitFor(marker);
      child.kill('SIGKILL');
      await exited;

      // What the killed run left: its lock, its registered worktree and temporary directory. The
      // tracked tree, the index, the working tree, HEAD and the refs are as they were.
      const after = fingerprint(repo);
      expect({ ...after, worktrees: [], lock: false }).toEqual(before);
      expect(after.lock).toBe(true);
      expect(after.worktrees).toHaveLength(1);
      const lock = JSON.parse(readFileSync(join(repo, '.git', 'nano-vm-dev-agent.lock'), 'utf8'));
      expect(lock.pid).toBe(child.pid);
      expect(existsSync(lock.temp)).toBe(true);

      // The next run (one the policy blocks at once) cleans up first and says what it removed.
      const next = cli(agentArgs(repo, ESCAPE_SCRIPT));
      expect(next.code).toBe(1);
      expect(next.stderr).toMatch(/cleaned up: removed the staging directory .* of an interrupted run \(pid \d+\)/);
      expect(next.stderr).toMatch(/cleaned up: removed the lock of an interrupted run/);
      expect(fingerprint(repo)).toEqual(before);
      expect(existsSync(lock.temp)).toBe(false);
      expect(gitIn(repo, 'worktree', 'list', '--porcelain').match(/^worktree /gm)).toHaveLength(1);
      expect(stagingDirs(TMP)).toEqual([]);
    },
  );

  it('stopped with SIGTERM while a check runs: it ends the check’s process group and removes its workspace itself', async () => {
    const repo = fixtureRepo();
    const before = fingerprint(repo);
    const dir = mkdtempSync(join(tmpdir(), 'dev-agent-marker-'));
    const marker = join(dir, 'reached');
    const pidFile = join(dir, 'check.pid');
    const child = spawn(
      process.execPath,
      [
        CLI,
        ...agentArgs(repo, FIX_SCRIPT, [
          '--check',
          `echo $$ > ${pidFile} && touch ${marker} && sleep 30`,
          '--test',
          'true',
        ]),
      ],
      { env: ENV, stdio: 'ignore' },
    );
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)));
    await waitFor(marker);
    child.kill('SIGTERM');
    expect(await exited).toBe('SIGTERM');
    expect(fingerprint(repo)).toEqual(before);
    expect(stagingDirs(TMP)).toEqual([]);
    const checkPid = Number(readFileSync(pidFile, 'utf8'));
    const gone = async (): Promise<boolean> => {
      for (let i = 0; i < 40; i++) {
        try {
          process.kill(checkPid, 0);
        } catch {
          return true;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      return false;
    };
    expect(await gone()).toBe(true);
  });
});
