import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnvironment, commandPrograms, runCheck } from '@nano-vm/dev-agent';
import { requireCommandTools } from '../src/checkRunner.js';

const home = mkdtempSync(join(tmpdir(), 'check-home-'));
const env = cleanEnvironment({ pathPrefix: [], home });
const opts = { cwd: home, env, timeoutMs: 10_000, outputLimit: 4096 };

describe('check commands', () => {
  it('run with a clean environment: no provider key of the agent reaches them', async () => {
    process.env.OPENAI_API_KEY = 'sk-test-must-not-leak';
    process.env.ANTHROPIC_API_KEY = 'sk-ant-must-not-leak';
    try {
      const r = await runCheck('env', { ...opts, env: cleanEnvironment({ pathPrefix: [], home }) });
      expect(r.exit_code).toBe(0);
      expect(r.output).not.toContain('must-not-leak');
      expect(r.output).not.toContain('OPENAI_API_KEY');
      expect(r.output).toContain(`HOME=${home}`);
      const names = r.output
        .trim()
        .split('\n')
        .map((l) => l.split('=')[0])
        .filter((n) => n !== 'PWD' && n !== 'SHLVL' && n !== '_');
      expect(names.sort()).toEqual(Object.keys(env).sort());
    } finally {
      delete process.env.OPENAI_API_KEY;
      delete process.env.ANTHROPIC_API_KEY;
    }
  });

  it('are killed with everything they started when they exceed the timeout', async () => {
    const t0 = Date.now();
    const r = await runCheck('echo started; sleep 30 & sleep 30; echo never', { ...opts, timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.timed_out).toBe(true);
    expect(r.exit_code).toBeNull();
    expect(r.signal).toBe('SIGKILL');
    expect(r.output).toBe('started\n');
  });

  it('keep the start and the end of a long output, and say how much was cut', async () => {
    const r = await runCheck(`node -e "for (let i = 0; i < 5000; i++) console.log('line ' + i)"`, opts);
    expect(r.exit_code).toBe(0);
    expect(r.truncated).toBe(true);
    expect(r.output_bytes).toBeGreaterThan(40_000);
    expect(r.output.startsWith('line 0\n')).toBe(true);
    expect(r.output.trimEnd().endsWith('line 4999')).toBe(true);
    expect(r.output).toMatch(/… \[\d+ bytes omitted\] …/);
    expect(r.output.length).toBeLessThan(4096 + 100);
  });

  it('report a failing command as a result, with its exit code and output', async () => {
    const r = await runCheck('echo oops >&2; exit 3', opts);
    expect(r).toMatchObject({ exit_code: 3, timed_out: false, truncated: false, output: 'oops\n' });
  });

  it('name the programs they start, and refuse one that is not installed before anything runs', () => {
    expect(commandPrograms('tsc --noEmit')).toEqual(['tsc']);
    expect(commandPrograms('CI=1 tsc && node --test x | tee out; npm test')).toEqual(['tsc', 'node', 'tee', 'npm']);
    expect(() => requireCommandTools(['node -v', 'no-such-checker-xyz --all'], env, home)).toThrow(
      expect.objectContaining({
        code: 'E_DEV_CHECK_TOOL_MISSING',
        message: expect.stringContaining("'no-such-checker-xyz'"),
      }),
    );
    expect(() => requireCommandTools(['tsc'], env, home, ['tsc'])).not.toThrow();
  });
});

describe('git', () => {
  it('a git command that fails is E_DEV_GIT with git’s own message', async () => {
    const { git } = await import('../src/git.js');
    const dir = mkdtempSync(join(tmpdir(), 'git-'));
    git(dir, ['init', '-q']);
    expect(() => git(dir, ['rev-parse', '--verify', 'no-such-revision'])).toThrow(
      expect.objectContaining({
        code: 'E_DEV_GIT',
        message: expect.stringContaining('git rev-parse --verify no-such-revision failed'),
      }),
    );
  });
});
