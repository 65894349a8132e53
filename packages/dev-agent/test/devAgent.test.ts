/**
 * The dev agent end to end through its API, with real git, real tsc (nano-vm's own TypeScript, the
 * fixture installs nothing) and a real test runner (node --test). The three-attempt demo runs once
 * and several cases read its result.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadPolicy,
  replayBundle,
  verifyBundle,
  type Bundle,
  type StepCompletedEvent,
  type TraceEvent,
} from '@nano-vm/kernel';
import { nodeHasher, parseModelScript, ScriptedModel } from '@nano-vm/runtime';
import { auditRange, devAgentPolicy, runDevAgent, type DevAgentResult } from '@nano-vm/dev-agent';
import {
  CHECKS,
  ESCAPE_SCRIPT,
  FIX_SCRIPT,
  TASK,
  TESTS,
  fingerprint,
  fixtureRepo,
  gitIn,
  scratchDir,
  removeFixtures,
  stagingDirs,
  type Fingerprint,
} from './support/fixtureRepo.js';

// The agent's temporary directories go here, so a test can see that none is left behind.
const TMP = scratchDir();
process.env.TMPDIR = TMP;

const scripted = (file: string) => new ScriptedModel(parseModelScript(readFileSync(file, 'utf8'), file), file);
const inline = (yaml: string) => new ScriptedModel(parseModelScript(yaml, 'inline.yaml'), 'inline');
const outputs = (events: readonly TraceEvent[], step: string) =>
  events
    .filter((e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === step)
    .map((e) => e.output as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any

/** A script whose only patch is `edits` (or `diff`): what the agent does with it before any check. */
const onePatch = (patch: object) =>
  inline(
    `answers:\n  plan: [{ json: { summary: s, read: [] } }]\n  propose: [{ json: ${JSON.stringify({ message: 'm', ...patch })} }]\n`,
  );

/** Byte-identical (and no worktree, lock, temporary directory or, unless it committed, branch left). */
function expectUntouched(root: string, before: Fingerprint, committed = false): void {
  expect(fingerprint(root)).toEqual(before);
  expect(before.worktrees).toEqual([]);
  expect(before.lock).toBe(false);
  if (!committed) expect(gitIn(root, 'branch', '--list', 'nano-vm/*')).toBe('');
  expect(stagingDirs(TMP)).toEqual([]);
}

afterAll(removeFixtures);

describe('the three-attempt demo: type error, failing test, passing patch', () => {
  let repo: string;
  let before: Fingerprint;
  let result: DevAgentResult;
  beforeAll(async () => {
    repo = fixtureRepo();
    before = fingerprint(repo);
    result = await runDevAgent({ repo, task: TASK, model: scripted(FIX_SCRIPT), checks: CHECKS, tests: TESTS });
  }, 120_000);

  it('commits the third patch on a new branch, with the run id and trace head in the message', () => {
    expect(result.run.status).toBe('completed');
    expect(result.run.outcome).toBe('COMMITTED');
    expect(result.attempts.map((a) => a.failed)).toEqual(['typecheck', 'test', null]);
    const { sha, branch } = result.commit!;
    expect(gitIn(repo, 'rev-parse', branch).trim()).toBe(sha);
    expect(gitIn(repo, 'rev-parse', `${sha}^`).trim()).toBe(before.head);
    const message = gitIn(repo, 'log', '-1', '--format=%B', sha);
    expect(message).toContain(`Nano-VM-Run: ${result.run.run_id}`);
    const head = /Nano-VM-Trace-Head: (\w+)/.exec(message)![1];
    expect(result.run.events.some((e) => e.hash === head)).toBe(true);
    expect(gitIn(repo, 'show', `${sha}:src/price.ts`)).toContain('Math.round(price * (100 - percent)) / 100');
  });

  it('leaves the working tree, the index, HEAD and every other ref exactly as they were', () => {
    expectUntouched(repo, before, true);
    expect(
      gitIn(repo, 'for-each-ref', '--format=%(refname)', 'refs/heads/nano-vm', 'refs/notes').trim().split('\n'),
    ).toEqual([`refs/heads/${result.commit!.branch}`, 'refs/notes/nano-vm']);
  });

  it('records all three attempts, with the checkers’ output fed back to the model', () => {
    const ev = result.run.events;
    expect(outputs(ev, 'stage').map((o) => o.attempt)).toEqual([1, 2, 3]);
    const fed = outputs(ev, 'feedback');
    expect(fed.map((f) => [f.attempt, f.failed])).toEqual([
      [1, 'typecheck'],
      [2, 'test'],
    ]);
    expect(fed[0]!.output).toMatch(/src\/price\.ts\(3,\d+\): error TS2322/);
    expect(fed[1]!.output).toMatch(/not ok 2 - discounts are rounded to cents[\s\S]*16\.9915 !== 16\.99/);
    // The model saw that feedback: its second and third prompts were rendered from views holding it.
    const proposals = ev.filter((e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === 'propose');
    expect(proposals).toHaveLength(3);
    expect(new Set(proposals.map((p) => p.projection_hash)).size).toBe(3);
    const checks = outputs(ev, 'typecheck');
    expect(checks.map((c) => c.ok)).toEqual([false, true, true]);
    expect(checks[0]!.results[0]).toMatchObject({ command: 'tsc --noEmit', exit_code: 2, timed_out: false });
    expect(outputs(ev, 'test').map((c) => c.ok)).toEqual([false, true]);
  });

  it('attaches the bundle as a note that verifies, and audit vouches for the commit', () => {
    const note = gitIn(repo, 'notes', '--ref=nano-vm', 'show', result.commit!.sha);
    const v = verifyBundle(JSON.parse(note), nodeHasher);
    expect(v).toMatchObject({ ok: true, head_hash: result.run.head_hash });
    const report = auditRange(repo, `main..${result.commit!.branch}`);
    expect(report.ok).toBe(true);
    expect(report.commits).toEqual([
      expect.objectContaining({ commit: result.commit!.sha, bundle: true, verdict: 'verified', problems: [] }),
    ]);
    expect(auditRange(repo, 'main').commits).toEqual([expect.objectContaining({ bundle: false, verdict: 'none' })]);
  });

  it('replays identically from the note, and a counterfactual policy protecting src/ would have blocked it', () => {
    const bundle = JSON.parse(gitIn(repo, 'notes', '--ref=nano-vm', 'show', result.commit!.sha)) as Bundle;
    expect(replayBundle(bundle, { hasher: nodeHasher })).toMatchObject({ identical: true, outcome: 'COMMITTED' });
    const { policy } = loadPolicy(
      [
        'format: nano-vm.policy/v1',
        'id: stricter',
        'deny:',
        '  - id: src_frozen',
        '    step: stage',
        `    when: 'args.paths.exists(p, p.path.startsWith("src/"))'`,
      ].join('\n'),
    );
    const counterfactual = replayBundle(bundle, { hasher: nodeHasher, policy: devAgentPolicy(policy!) });
    expect(counterfactual).toMatchObject({ identical: false, counterfactual: true, outcome: 'POLICY_BLOCKED' });
  });
});

describe('audit', () => {
  it('fails a bundle that does not vouch for its commit: another diff, an edited trace', async () => {
    const repo = fixtureRepo();
    const r = await runDevAgent({
      repo,
      task: TASK,
      // A message posing as another run: the agent drops such lines and writes the trailers itself.
      model: onePatch({
        message: 'Add notes\n\nNano-VM-Run: run-forged',
        edits: [{ path: 'NOTES.md', action: 'write', content: 'hello\n' }],
      }),
      checks: ['true'],
      tests: ['true'],
    });
    expect(r.run.outcome).toBe('COMMITTED');
    const sha = r.commit!.sha;
    expect(gitIn(repo, 'log', '-1', '--format=%B', sha)).not.toContain('forged');
    expect(auditRange(repo, `main..${sha}`).ok).toBe(true);
    const note = gitIn(repo, 'notes', '--ref=nano-vm', 'show', sha);
    // The same note on another commit (same parent, another change): the staged diff is not its diff.
    gitIn(repo, 'checkout', '-q', '-b', 'other');
    writeFileSync(join(repo, 'NOTES.md'), 'something else\n');
    gitIn(repo, 'add', '-A');
    gitIn(repo, 'commit', '-q', '-m', 'not the agent');
    const other = gitIn(repo, 'rev-parse', 'HEAD').trim();
    const notePath = join(mkdtempSync(join(tmpdir(), 'note-')), 'b.json');
    writeFileSync(notePath, note);
    gitIn(repo, 'notes', '--ref=nano-vm', 'add', '-F', notePath, other);
    const a = auditRange(repo, `main..${other}`);
    expect(a.ok).toBe(false);
    expect(a.commits[0]!.problems.join('\n')).toMatch(/not this commit[\s\S]*not the commit's diff/);
    // An edited trace: the chain no longer verifies.
    writeFileSync(notePath, note.replace('hello\\n', 'HELLO\\n'));
    gitIn(repo, 'notes', '--ref=nano-vm', 'add', '-f', '-F', notePath, sha);
    const b = auditRange(repo, `main..${sha}`);
    expect(b.commits[0]).toMatchObject({ verdict: 'failed' });
    expect(b.commits[0]!.problems[0]).toMatch(/^E_/);
    expect(() => auditRange(repo, '--all')).toThrow(expect.objectContaining({ code: 'E_USAGE' }));
  });
});

describe('the path allow-list: blocked actions, nothing written', () => {
  let repo: string;
  let before: Fingerprint;
  beforeAll(() => {
    repo = fixtureRepo((dir) => {
      mkdirSync(join(dir, 'src', 'payments'));
      writeFileSync(join(dir, 'src', 'payments', 'ledger.ts'), 'export const ledger = 1;\n');
      symlinkSync(tmpdir(), join(dir, 'linked'));
    });
    before = fingerprint(repo);
  });

  it('refuses a patch writing to ../outside and .git/config (the escape demo script)', async () => {
    const outside = join(dirname(repo), 'outside');
    const r = await runDevAgent({ repo, task: TASK, model: scripted(ESCAPE_SCRIPT), checks: CHECKS, tests: TESTS });
    expect(r.run).toMatchObject({ status: 'failed', outcome: 'POLICY_BLOCKED' });
    expect(r.blocked).toEqual([
      expect.objectContaining({ rule: 'dev_agent.path_outside_repo', requested: 'tool:stage_patch' }),
    ]);
    expect(r.run.receipt.counts.blocked_actions).toBe(1);
    const vet = outputs(r.run.events, 'vet')[0]!;
    expect(vet.paths.map((p: { path: string; verdict: string }) => [p.path, p.verdict])).toEqual([
      ['src/price.ts', 'ok'],
      ['../outside', 'outside'],
      ['.git/config', 'git_dir'],
    ]);
    // The plan asked to read them too: refused, and not shown to the model.
    const read = outputs(r.run.events, 'read')[0]!;
    expect(read.files.map((f: { path: string }) => f.path)).toEqual(['src/price.ts']);
    expect(read.refused.map((f: { path: string }) => f.path)).toEqual(['.git/config', '../outside']);
    expect(outputs(r.run.events, 'stage')).toEqual([]);
    expect(existsSync(outside)).toBe(false);
    expectUntouched(repo, before);
  });

  it.each([
    [{ edits: [{ path: '.git/config', action: 'write', content: 'x' }] }, 'dev_agent.path_git_dir'],
    [{ edits: [{ path: '.github/workflows/ci.yml', action: 'write', content: 'x' }] }, 'dev_agent.path_ci_config'],
    [{ edits: [{ path: 'linked/evil.ts', action: 'write', content: 'x' }] }, 'dev_agent.path_symlink'],
    [
      { diff: 'diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc/passwd\n' },
      'dev_agent.path_symlink',
    ],
    [{ diff: '--- a/../../x\n+++ b/../../x\n@@ -0,0 +1 @@\n+x\n' }, 'dev_agent.path_outside_repo'],
    [{ edits: [{ path: '/etc/passwd', action: 'write', content: 'x' }] }, 'dev_agent.path_outside_repo'],
  ])('blocks %j by %s', async (patch, rule) => {
    const r = await runDevAgent({ repo, task: TASK, model: onePatch(patch), checks: CHECKS, tests: TESTS });
    expect(r.run.outcome).toBe('POLICY_BLOCKED');
    expect(r.blocked.map((b) => b.rule)).toEqual([rule]);
    expectUntouched(repo, before);
  });

  it("blocks a path the operator's policy protects", async () => {
    const { policy } = loadPolicy(
      [
        'format: nano-vm.policy/v1',
        'id: payments-team',
        'deny:',
        '  - id: payments.ledger_is_protected',
        '    step: stage',
        `    when: 'args.paths.exists(p, p.path.startsWith("src/payments/"))'`,
        '    reason: the ledger changes only through review',
      ].join('\n'),
    );
    const model = onePatch({
      edits: [{ path: 'src/payments/ledger.ts', action: 'write', content: 'export const ledger = 2;\n' }],
    });
    const r = await runDevAgent({ repo, task: TASK, model, checks: CHECKS, tests: TESTS, policy: policy! });
    expect(r.blocked).toEqual([expect.objectContaining({ rule: 'payments.ledger_is_protected' })]);
    expect(r.run.bundle.policy).toMatchObject({ id: 'nano-vm.dev-agent+payments-team' });
    expectUntouched(repo, before);
  });
});

describe('rollback', () => {
  it('discards the staged copy when no attempt passes, and the repository is as it was', async () => {
    const repo = fixtureRepo();
    const before = fingerprint(repo);
    const r = await runDevAgent({
      repo,
      task: TASK,
      model: onePatch({
        edits: [{ path: 'src/price.ts', action: 'write', content: 'export const x: number = "no";\n' }],
      }),
      checks: CHECKS,
      tests: TESTS,
      maxAttempts: 2,
    });
    expect(r.run).toMatchObject({ status: 'completed', outcome: 'NO_PASSING_PATCH' });
    expect(r.attempts.map((a) => a.failed)).toEqual(['typecheck', 'typecheck']);
    expect(outputs(r.run.events, 'rollback')).toEqual([{ discarded: true }]);
    expect(r.commit).toBeUndefined();
    expectUntouched(repo, before);
  });

  it('feeds a patch that does not apply or changes nothing back, and a command that times out', async () => {
    const repo = fixtureRepo();
    const before = fingerprint(repo);
    const model = inline(
      [
        'answers:',
        '  plan: [{ json: { summary: s, read: [] } }]',
        '  propose:',
        `    - { json: { message: m, diff: "--- a/src/price.ts\\n+++ b/src/price.ts\\n@@ -1,1 +1,1 @@\\n-no such line\\n+x\\n" } }`,
        '    - { json: { message: m, edits: [{ path: src/nothing.ts, action: delete }] } }',
        '    - { json: { message: m, edits: [{ path: build/price.js, action: write, content: "export {}" }] } }',
        '    - { json: { message: m, edits: [{ path: README.md, action: write, content: "hi" }] } }',
      ].join('\n'),
    );
    const r = await runDevAgent({
      repo,
      task: TASK,
      model,
      checks: ['sleep 20'],
      tests: ['true'],
      limits: { checkTimeoutMs: 300 },
      maxAttempts: 4,
    });
    expect(r.run.outcome).toBe('NO_PASSING_PATCH');
    const fed = outputs(r.run.events, 'feedback');
    expect(fed.map((f) => f.failed)).toEqual(['stage', 'stage', 'stage', 'typecheck']);
    expect(fed[0]!.output).toMatch(/does not apply/);
    expect(fed[1]!.output).toMatch(/no such file/);
    expect(fed[2]!.output).toMatch(/writes files git ignores .*: build\/price\.js/);
    expect(fed[3]!.output).toMatch(/sleep 20 timed out/);
    expect(outputs(r.run.events, 'typecheck')[0]!.results[0]).toMatchObject({ timed_out: true, signal: 'SIGKILL' });
    expectUntouched(repo, before);
  });
});

describe('refused before anything runs', () => {
  it('a dirty working tree (E_DEV_DIRTY_TREE), a non-git directory (E_DEV_NOT_A_REPO), a missing check tool (E_DEV_CHECK_TOOL_MISSING), a live lock (E_DEV_LOCKED)', async () => {
    const model = scripted(FIX_SCRIPT);
    const repo = fixtureRepo();
    writeFileSync(join(repo, 'src', 'price.ts'), '// edited\n', { flag: 'a' });
    const dirty = fingerprint(repo);
    await expect(runDevAgent({ repo, task: TASK, model, checks: CHECKS, tests: TESTS })).rejects.toMatchObject({
      code: 'E_DEV_DIRTY_TREE',
      message: expect.stringContaining('src/price.ts'),
    });
    expect(fingerprint(repo)).toEqual(dirty);
    gitIn(repo, 'checkout', '-q', 'src/price.ts');
    writeFileSync(join(repo, 'untracked.txt'), 'x');
    await expect(runDevAgent({ repo, task: TASK, model, checks: CHECKS, tests: TESTS })).rejects.toMatchObject({
      code: 'E_DEV_DIRTY_TREE',
    });

    const plain = mkdtempSync(join(tmpdir(), 'not-a-repo-'));
    await expect(runDevAgent({ repo: plain, task: TASK, model, checks: CHECKS, tests: TESTS })).rejects.toMatchObject({
      code: 'E_DEV_NOT_A_REPO',
    });
    await expect(runDevAgent({ repo: join(plain, 'missing'), task: TASK, model })).rejects.toMatchObject({
      code: 'E_DEV_NOT_A_REPO',
    });

    const clean = fixtureRepo();
    const before = fingerprint(clean);
    await expect(
      runDevAgent({ repo: clean, task: TASK, model, checks: ['eslint-that-is-not-installed .'], tests: TESTS }),
    ).rejects.toMatchObject({
      code: 'E_DEV_CHECK_TOOL_MISSING',
      message: expect.stringContaining('eslint-that-is-not-installed'),
    });
    expectUntouched(clean, before);

    writeFileSync(
      join(clean, '.git', 'nano-vm-dev-agent.lock'),
      JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname(), started: 'now', temp: '' }),
    );
    await expect(runDevAgent({ repo: clean, task: TASK, model, checks: CHECKS, tests: TESTS })).rejects.toMatchObject({
      code: 'E_DEV_LOCKED',
    });
  });
});
