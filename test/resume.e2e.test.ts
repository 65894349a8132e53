/**
 * End to end: a run suspends at a wait step in one process and is resumed by `nano-vm resume` in
 * later processes (the real, built CLI on a real SQLite file): validation of the event, the role,
 * idempotency, two resumes racing in two processes, export/verify/replay of the result.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const EXAMPLE = 'examples/approval';
let dir: string;

function nanoVm(db: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args, '--store', `sqlite:${join(dir, db)}`], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) };
}

function nanoVmAsync(db: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args, '--store', `sqlite:${join(dir, db)}`], { cwd: ROOT });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

const event = (name: string, payload: unknown) => {
  const f = join(dir, `${name}.json`);
  writeFileSync(f, JSON.stringify(payload));
  return f;
};

/** A fresh suspended run of the approval example in its own database; returns its id. */
function suspended(db: string): string {
  const r = nanoVm(db, 'run', EXAMPLE, '--input', `${EXAMPLE}/inputs/waiting.json`, '--json');
  expect(r.code).toBe(0);
  const j = r.json();
  expect(j).toMatchObject({
    status: 'suspended',
    outcome: null,
    waiting: { step: 'approval', role: 'payments_approver', deadline: expect.any(String) },
    receipt: { status: 'suspended' },
  });
  return j.run_id;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-resume-'));
});

describe('nano-vm run: wait steps', () => {
  it('prints how to resume a suspended run, and lists it as suspended', () => {
    const r = nanoVm('list.db', 'run', EXAMPLE, '--input', `${EXAMPLE}/inputs/waiting.json`);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/⏸ approval .*waiting for an event from role payments_approver/);
    expect(r.out).toMatch(
      /nano-vm resume run-[0-9a-f-]+ examples\/approval --store \S+ --event <file\.json> --role payments_approver/,
    );
    const runs = nanoVm('list.db', 'runs', '--status', 'suspended', '--json').json();
    expect(runs.runs).toHaveLength(1);
  });
});

describe('nano-vm resume', () => {
  it('continues the run with a valid event from the declared role; the exported bundle verifies and replays', () => {
    const id = suspended('ok.db');
    const r = nanoVm(
      'ok.db',
      'resume',
      id,
      EXAMPLE,
      '--event',
      event('approve', { decision: 'approve', approver: 'b.ng' }),
      '--role',
      'payments_approver',
      '--event-id',
      'hook-1',
      '--json',
    );
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({
      run_id: id,
      resume: 'resumed',
      status: 'completed',
      outcome: 'PAID',
      receipt: { path: ['triage', 'route', 'approval', 'decision', 'pay', 'paid'] },
    });
    const bundle = join(dir, 'ok.bundle.json');
    expect(nanoVm('ok.db', 'export', id, '-o', bundle).code).toBe(0);
    expect(spawnSync(process.execPath, [CLI, 'verify', bundle], { encoding: 'utf8' }).status).toBe(0);
    const replay = spawnSync(process.execPath, [CLI, 'replay', bundle, '--json'], { encoding: 'utf8' });
    expect(replay.status).toBe(0);
    expect(JSON.parse(replay.stdout)).toMatchObject({ identical: true });
  });

  it('refuses a wrong role or an invalid payload (exit 2) and leaves the run suspended', () => {
    const id = suspended('refuse.db');
    const wrongRole = nanoVm(
      'refuse.db',
      'resume',
      id,
      EXAMPLE,
      '--event',
      event('a2', { decision: 'approve', approver: 'x' }),
      '--role',
      'intern',
      '--json',
    );
    expect(wrongRole.code).toBe(2);
    expect(wrongRole.json().error.code).toBe('E_RESUME_ROLE');
    const invalid = nanoVm(
      'refuse.db',
      'resume',
      id,
      EXAMPLE,
      '--event',
      event('bad', { decision: 'maybe', approver: 'x' }),
      '--role',
      'payments_approver',
      '--json',
    );
    expect(invalid.code).toBe(2);
    expect(invalid.json().error).toMatchObject({
      code: 'E_RESUME_EVENT_INVALID',
      issues: [{ code: 'E_RESUME_EVENT_INVALID', path: '/decision' }],
    });
    const notJson = join(dir, 'broken.json');
    writeFileSync(notJson, '{"decision": ');
    expect(nanoVm('refuse.db', 'resume', id, EXAMPLE, '--event', notJson).code).toBe(2);
    expect(
      nanoVm('refuse.db', 'runs', '--status', 'suspended', '--json')
        .json()
        .runs.map((x: { run_id: string }) => x.run_id),
    ).toEqual([id]);
    expect(nanoVm('refuse.db', 'resume', 'run-unknown', EXAMPLE, '--event', notJson).code).toBe(2);
  });

  it('is idempotent: the same event again exits 0 and changes nothing; another event is refused with exit 1', () => {
    const id = suspended('idem.db');
    const ev = event('idem', { decision: 'reject', approver: 'b.ng' });
    const first = nanoVm('idem.db', 'resume', id, EXAMPLE, '--event', ev, '--role', 'payments_approver', '--json');
    expect(first.json()).toMatchObject({ resume: 'resumed', status: 'completed', outcome: 'REJECTED' });
    const again = nanoVm('idem.db', 'resume', id, EXAMPLE, '--event', ev, '--role', 'payments_approver', '--json');
    expect(again.code).toBe(0);
    expect(again.json()).toMatchObject({
      resume: 'duplicate',
      status: 'completed',
      outcome: 'REJECTED',
      head_hash: first.json().head_hash,
    });
    const other = nanoVm(
      'idem.db',
      'resume',
      id,
      EXAMPLE,
      '--event',
      event('other', { decision: 'approve', approver: 'b.ng' }),
      '--role',
      'payments_approver',
      '--json',
    );
    expect(other.code).toBe(1);
    expect(other.json().error.code).toBe('E_RESUME_CONFLICT');
  });

  it('an event after the wait deadline is not taken (exit 1, E_WAIT_EXPIRED): the run takes its timeout edge', async () => {
    const prog = join(dir, 'short-wait.yaml');
    writeFileSync(
      prog,
      [
        'format: nano-vm.program/v1',
        'id: short_wait',
        'input_schema: { type: object }',
        'steps:',
        '  - { id: approval, kind: wait, event: { type: object }, timeout_ms: 1, on_timeout: expired, next: done }',
        '  - { id: done, kind: end, outcome: DONE }',
        '  - { id: expired, kind: end, outcome: EXPIRED, failure: true }',
      ].join('\n'),
    );
    const model = join(dir, 'empty-model.yaml');
    writeFileSync(model, 'answers: {}\n');
    const run = nanoVm('expired.db', 'run', prog, '--model', `scripted:${model}`, '--json');
    expect(run.json()).toMatchObject({ status: 'suspended' });
    await new Promise((res) => setTimeout(res, 20));
    const late = nanoVm(
      'expired.db',
      'resume',
      run.json().run_id,
      '--model',
      `scripted:${model}`,
      '--event',
      event('late', {}),
      '--json',
    );
    expect(late.code).toBe(1);
    expect(late.json().error.code).toBe('E_WAIT_EXPIRED');
    expect(nanoVm('expired.db', 'runs', '--json').json().runs).toMatchObject([
      { status: 'completed', outcome: 'EXPIRED' },
    ]);
  });

  it('two processes resuming at once with different events: exactly one is taken, the other loses cleanly', async () => {
    const id = suspended('race.db');
    const a = event('race-a', { decision: 'approve', approver: 'a' });
    const b = event('race-b', { decision: 'reject', approver: 'b' });
    const results = await Promise.all(
      [a, b].map((f) =>
        nanoVmAsync('race.db', 'resume', id, EXAMPLE, '--event', f, '--role', 'payments_approver', '--json'),
      ),
    );
    const won = results.filter((r) => r.code === 0);
    const lost = results.filter((r) => r.code !== 0);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.code).toBe(1);
    expect(JSON.parse(lost[0]!.out).error.code).toBe('E_RESUME_CONFLICT');
    const bundle = join(dir, 'race.bundle.json');
    expect(nanoVm('race.db', 'export', id, '-o', bundle).code).toBe(0);
    const trace = JSON.parse(
      spawnSync(process.execPath, [CLI, 'verify', bundle, '--json'], { encoding: 'utf8' }).stdout,
    );
    expect(trace.valid).toBe(true);
    const exported = JSON.parse(readFileSync(bundle, 'utf8'));
    expect(exported.events.filter((e: { type: string }) => e.type === 'run_resumed')).toHaveLength(1);
    expect(exported.events.filter((e: { type: string }) => e.type === 'run_finished')).toHaveLength(1);
  });
});
