/**
 * Runs persist in the SQLite store: a case waiting for four-eyes approval survives a server restart
 * (the first server is a real `nano-vm kyc` process, stopped with SIGINT; the second opens the same
 * file) and is approved after it; `nano-vm kyc` starts, serves and stops on a signal.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { InboxItem, RunView } from '@nano-vm/kyc';
import { call, start, tempDir } from './httpClient.js';

const ROOT = new URL('../../..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');

/** A real `nano-vm kyc` process on an ephemeral port. */
async function spawnKyc(db: string): Promise<{ url: string; out: () => string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'kyc', '--port', '0', '--store', `sqlite:${db}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  const exit = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no URL printed: ${out}`)), 20_000);
    child.stdout.on('data', (d: string) => {
      out += d;
      const m = /on (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
  });
  return {
    url,
    out: () => out,
    stop: () => {
      child.kill('SIGINT');
      return exit;
    },
  };
}

describe('a waiting case survives a restart', () => {
  it('fuzzy match: first approval, restart, the inbox still lists it, second approval by another reviewer approves it', async () => {
    const dir = tempDir('restart');
    const db = join(dir, 'kyc.db');
    const first = await spawnKyc(db);
    const v = (await call<RunView>(first.url, 'POST', '/api/runs', { case: 'fuzzy_match' })).body;
    expect(v.status).toBe('suspended');
    await call(first.url, 'POST', `/api/runs/${v.run_id}/approve`, { reviewer: 'alice', decision: 'approve' });
    expect(await first.stop()).toBe(0);

    const second = await start(db);
    try {
      const inbox = (await call<{ waiting: InboxItem[] }>(second.url, 'GET', '/api/inbox')).body.waiting;
      expect(inbox).toEqual([
        expect.objectContaining({
          run_id: v.run_id,
          case: 'fuzzy_match',
          step: 'second_approval',
          excluded_reviewer: 'alice',
          approvals_given: [{ reviewer: 'alice', decision: 'approve', step: 'first_approval' }],
        }),
      ]);
      const done = (
        await call<RunView>(second.url, 'POST', `/api/runs/${v.run_id}/approve`, {
          reviewer: 'bob',
          decision: 'approve',
        })
      ).body;
      expect(done).toMatchObject({
        status: 'completed',
        outcome: 'APPROVED',
        case: 'fuzzy_match',
        verify: { ok: true },
      });
      expect(done.human_receipt!.reviewers.map((r) => [r.step, r.reviewer])).toEqual([
        ['first_approval', 'alice'],
        ['second_approval', 'bob'],
      ]);
      // One unbroken chain across both processes, checked by the CLI from the exported bundle.
      const f = join(dir, 'restarted.bundle.json');
      writeFileSync(f, (await call(second.url, 'GET', `/api/runs/${v.run_id}/bundle`)).text);
      const r = spawnSync(process.execPath, [CLI, 'verify', f, '--json'], { encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ valid: true, head_hash: done.human_receipt!.head_hash });
      expect((await call<{ waiting: InboxItem[] }>(second.url, 'GET', '/api/inbox')).body.waiting).toEqual([]);
    } finally {
      await second.close();
    }
  });
});

describe('nano-vm kyc', () => {
  it('starts on the given port, answers /api/meta, and exits 0 on SIGINT', async () => {
    const kyc = await spawnKyc(join(tempDir('cli'), 'kyc.db'));
    expect(kyc.out()).toContain('illustrative fixtures');
    const meta = await call<{ program: { id: string }; model: { scripted: boolean } }>(kyc.url, 'GET', '/api/meta');
    expect(meta.body).toMatchObject({ program: { id: 'kyc-aml' }, model: { scripted: true } });
    expect(await kyc.stop()).toBe(0);
  });

  it('refuses a bad port or store before starting (exit 2)', () => {
    for (const args of [
      ['--port', 'eighty'],
      ['--store', 'postgres://x'],
      ['--model', 'gpt:4'],
    ]) {
      const r = spawnSync(process.execPath, [CLI, 'kyc', ...args], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
    }
  });
});
