/**
 * End to end: spawn the real, built CLI (`packages/cli/dist/main.js`) the way a user would.
 * `npm test` builds first (pretest).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Receipt } from '@nano-vm/kernel';
import type { RunRecord } from '@nano-vm/runtime';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
let dir: string;

// The shapes the commands print with --json, as far as these tests read them.
interface IssueOutput {
  code: string;
  severity: string;
  step: string | null;
  message: string;
  line: number | null;
  col: number | null;
  path: string | null;
}
interface ErrorOutput {
  error: { code: string; message: string; issues: IssueOutput[] };
}
interface ValidateOutput {
  valid: boolean;
  issues: IssueOutput[];
}
interface ExamplesOutput {
  runs: {
    example: string;
    case: string;
    status: string;
    outcome: string | null;
    verified: boolean;
    replay_identical: boolean;
  }[];
  failures: number;
}
interface ExprOutput {
  value: unknown;
  explain: { expr: string; value: unknown }[];
}
interface RunsOutput {
  runs: Omit<RunRecord, 'program' | 'policy' | 'input'>[];
}

/** `json<T>()`: stdout parsed as the shape the command prints with `--json`. */
function nanoVm(...args: string[]): { code: number; out: string; err: string; json: <T = unknown>() => T } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NANO_VM_STORE: `sqlite:${join(dir, 'e2e.db')}` },
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: <T>() => JSON.parse(r.stdout) as T };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-e2e-'));
});

describe('nano-vm run', () => {
  it('runs an example directory end to end, one JSON object per input', () => {
    const r = nanoVm('run', 'examples/kyc', '--json', '--deterministic');
    expect(r.code).toBe(0);
    const runs = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(runs.map((x) => [x.case, x.status, x.outcome])).toEqual([
      ['clean', 'completed', 'APPROVED'],
      ['high_risk', 'completed', 'REJECTED_HIGH_RISK'],
      ['injection', 'completed', 'ESCALATED_TO_HUMAN'],
      ['missing_documents', 'completed', 'INSUFFICIENT_DATA'],
      ['pep_review', 'completed', 'ESCALATED_TO_HUMAN'],
      ['sanctioned', 'completed', 'POLICY_BLOCKED'],
    ]);
    for (const x of runs) {
      expect(x.run_id).toMatch(/^run-/);
      expect(x.head_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(x.scripted_model).toBe(true);
      expect(x.receipt.head_hash).toBe(x.head_hash);
    }
  });

  it('labels the scripted model in human output', () => {
    const r = nanoVm('run', 'examples/refund', '--input', 'examples/refund/inputs/approve.json');
    expect(r.code).toBe(0);
    expect(r.out).toContain('SCRIPTED model');
    expect(r.out).toMatch(/status completed\s+outcome SUCCESS/);
  });

  it('--deterministic gives byte-identical bundles for identical inputs (golden head hash)', () => {
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    for (const out of [a, b])
      expect(
        nanoVm(
          'run',
          'examples/refund',
          '--input',
          'examples/refund/inputs/injection.json',
          '--deterministic',
          '--out',
          out,
        ).code,
      ).toBe(0);
    const bytes = readFileSync(a);
    expect(readFileSync(b).equals(bytes)).toBe(true);
    // Pinned: changes only when the program, the event format or runtime semantics change.
    // If you changed one on purpose, update the hash and say why in the commit.
    expect(JSON.parse(bytes.toString()).receipt.head_hash).toBe(GOLDEN_REFUND_INJECTION);
  });

  it('exits 2 with located error codes for an invalid program', () => {
    const p = join(dir, 'bad.yaml');
    writeFileSync(
      p,
      'format: nano-vm.program/v1\nid: bad\ninput_schema: {type: object}\nsteps:\n  - id: a\n    kind: tool\n    tool: t\n    next: nowhere\n',
    );
    const r = nanoVm('run', p, '--model', 'scripted:examples/refund/model.yaml', '--json');
    expect(r.code).toBe(2);
    const codes = r.json<ErrorOutput>().error.issues.map((i: { code: string }) => i.code);
    expect(codes).toContain('E_MISSING_TARGET');
    const miss = r.json<ErrorOutput>().error.issues.find((i: { code: string }) => i.code === 'E_MISSING_TARGET');
    expect(miss).toMatchObject({ step: 'a', line: 8 });
  });

  it('exits 2 for input that violates the input schema', () => {
    const p = join(dir, 'bad-input.json');
    writeFileSync(
      p,
      JSON.stringify({ order_id: 'nope', amount: -1, reason: 'x', customer: { email: 'e', tier: 'standard' } }),
    );
    const r = nanoVm('run', 'examples/refund', '--input', p, '--json');
    expect(r.code).toBe(2);
    expect(r.json<ErrorOutput>().error.code).toBe('E_INPUT_INVALID');
  });

  it('exits 2 with a code for a missing model, bad model spec or unreadable input', () => {
    const refundFile = ['examples/refund/program.yaml', '--tools', 'examples/refund/tools.mjs'];
    const refundInput = ['--input', 'examples/refund/inputs/approve.json'];
    expect(nanoVm('run', ...refundFile, ...refundInput, '--json').json<ErrorOutput>().error.code).toBe('E_MODEL_SPEC');
    expect(nanoVm('run', 'examples/refund', '--model', 'gpt:4', '--json').json<ErrorOutput>().error.code).toBe(
      'E_MODEL_SPEC',
    );
    const r = nanoVm('run', 'examples/refund', '--input', join(dir, 'missing.json'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/E_FILE/);
    expect(r.err).not.toMatch(/at .*\.js:\d+/); // no stack trace
    expect(nanoVm('run').code).toBe(2);
    expect(nanoVm('run', 'examples/refund', '--bogus').code).toBe(2);
  });
});

describe('refusals carry stable codes (exit 2, no stack traces)', () => {
  const refused = (args: string[], code: string) => {
    const r = nanoVm(...args, '--json');
    expect(r.code, r.out + r.err).toBe(2);
    expect(r.json<ErrorOutput>().error.code).toBe(code);
    expect(r.out).not.toMatch(/\n\s+at /);
  };

  it('--help prints the usage and exits 0', () => {
    const r = nanoVm('run', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^usage: nano-vm run/);
    expect(nanoVm('--help').out).toMatch(/^  verify +Recomputes/m);
  });

  it('bad arguments: E_USAGE', () => {
    refused(['frobnicate'], 'E_USAGE');
    refused(['run', 'examples/refund', '--bogus'], 'E_USAGE');
    refused(['verify'], 'E_USAGE');
  });

  it('unparseable JSON input or --vars: E_JSON', () => {
    const p = join(dir, 'broken-input.json');
    writeFileSync(p, '{"order_id": ');
    refused(['run', 'examples/refund', '--input', p], 'E_JSON');
    refused(['expr', 'x', '--vars', '{nope'], 'E_JSON');
  });

  it('a directory without a program: E_EXAMPLE_LAYOUT', () => {
    refused(['run', dir], 'E_EXAMPLE_LAYOUT');
  });

  it('a malformed model script: E_SCRIPT_FORMAT', () => {
    const m = join(dir, 'model.yaml');
    writeFileSync(m, 'answers:\n  classify:\n    - { rwa: approve }\n');
    refused(['run', 'examples/refund', '--model', `scripted:${m}`], 'E_SCRIPT_FORMAT');
  });

  it('a tools module that is missing, broken or exports bad definitions: E_TOOLS_MODULE / E_TOOL_DEFINITION', () => {
    refused(['run', 'examples/refund', '--tools', join(dir, 'nope.mjs')], 'E_TOOLS_MODULE');
    const broken = join(dir, 'broken.mjs');
    writeFileSync(broken, 'export const tools = ;');
    refused(['run', 'examples/refund', '--tools', broken], 'E_TOOLS_MODULE');
    const empty = join(dir, 'empty.mjs');
    writeFileSync(empty, 'export const x = 1;');
    refused(['run', 'examples/refund', '--tools', empty], 'E_TOOLS_MODULE');
    const bad = join(dir, 'bad-def.mjs');
    writeFileSync(bad, 'export const tools = [{ name: "issue_refund" }];');
    refused(['run', 'examples/refund', '--tools', bad], 'E_TOOL_DEFINITION');
  });
});

describe('nano-vm validate', () => {
  it('exit 0 for a valid program, 1 with located issues for an invalid one', () => {
    expect(nanoVm('validate', 'examples/refund').code).toBe(0);
    const p = join(dir, 'cycle.yaml');
    writeFileSync(
      p,
      [
        'format: nano-vm.program/v1',
        'id: cyc',
        'input_schema: {type: object}',
        'steps:',
        '  - id: a',
        '    kind: condition',
        '    cases:',
        '      - when: "input.x > 1"',
        '        next: b',
        '    else: a',
        '  - id: b',
        '    kind: end',
        '    outcome: OK',
        '',
      ].join('\n'),
    );
    const r = nanoVm('validate', p, '--json');
    expect(r.code).toBe(1);
    const out = r.json<ValidateOutput>();
    expect(out.valid).toBe(false);
    for (const i of out.issues)
      expect(Object.keys(i).sort()).toEqual(['code', 'col', 'line', 'message', 'path', 'severity', 'step']);
    expect(out.issues.map((i: { code: string }) => i.code)).toContain('E_UNBOUNDED_CYCLE');
  });
});

describe('nano-vm verify and receipt', () => {
  it('a fresh bundle verifies; a tampered one names the first bad event', () => {
    const f = join(dir, 'kyc.json');
    expect(nanoVm('run', 'examples/kyc', '--input', 'examples/kyc/inputs/injection.json', '--out', f).code).toBe(0);
    const ok = nanoVm('verify', f, '--json');
    expect(ok.code).toBe(0);
    expect(ok.json()).toMatchObject({ valid: true });

    const bundle = JSON.parse(readFileSync(f, 'utf8'));
    const idx = bundle.events.findIndex((e: { type: string }) => e.type === 'step_completed');
    bundle.events[idx].output = { hit: false, lists: [], score: 0.01 }; // the recorded score was 0
    const t = join(dir, 'tampered.json');
    writeFileSync(t, JSON.stringify(bundle));
    const bad = nanoVm('verify', t, '--json');
    expect(bad.code).toBe(1);
    expect(bad.json()).toMatchObject({ valid: false, code: 'E_CHAIN_HASH', first_bad_seq: idx });
    expect(nanoVm('verify', t).out).toContain(`at event seq ${idx}`);

    const r = nanoVm('receipt', f, '--json');
    expect(r.code).toBe(0);
    expect(r.json<{ receipt: Receipt }>().receipt).toMatchObject({
      status: 'completed',
      outcome: 'ESCALATED_TO_HUMAN',
      counts: { fallbacks: 1, retries: 1 },
    });
    expect(nanoVm('receipt', f).out).toContain('path');
  });

  it('a file that is not JSON fails verification rather than crashing', () => {
    const t = join(dir, 'garbage.json');
    writeFileSync(t, '{"format": "nano-vm.bundle/v1", "events": [');
    const r = nanoVm('verify', t, '--json');
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ valid: false, code: 'E_BUNDLE_FORMAT' });
  });
});

describe('nano-vm expr', () => {
  it('evaluates a guard with explain', () => {
    const r = nanoVm(
      'expr',
      'input.amount <= 500 && "gold" in input.tiers',
      '--vars',
      '{"input":{"amount":12,"tiers":["gold"]}}',
      '--json',
    );
    expect(r.code).toBe(0);
    expect(r.json<ExprOutput>().value).toBe(true);
    expect(r.json<ExprOutput>().explain.length).toBeGreaterThan(0);
  });

  it('rejects what is outside the subset with a code and a column', () => {
    const r = nanoVm('expr', 'input.amount * 2 > 10', '--json');
    expect(r.code).toBe(1);
    expect(r.json()).toEqual({ error: { code: 'E_GUARD_UNSUPPORTED', message: expect.any(String), column: 14 } });
  });
});

describe('npm start main job', () => {
  it('nano-vm examples runs and verifies every example', () => {
    const r = nanoVm('examples', 'examples', '--out', join(dir, 'bundles'), '--json');
    expect(r.code).toBe(0);
    const out = r.json<ExamplesOutput>();
    expect(out.failures).toBe(0);
    expect(out.runs.length).toBe(19);
    // The approval example's large payments suspend at the human approval and are resumed with
    // the example's events/<case>.json; the one without an event stays suspended.
    expect(
      out.runs
        .filter((x: { example: string }) => x.example === 'approval')
        .map((x: { case: string; status: string; outcome: string | null }) => [x.case, x.status, x.outcome]),
    ).toEqual([
      ['large_approved', 'completed', 'PAID'],
      ['large_rejected', 'completed', 'REJECTED'],
      ['small', 'completed', 'PAID'],
      ['waiting', 'suspended', null],
    ]);
    expect(
      out.runs.every((x: { verified: boolean; replay_identical: boolean }) => x.verified && x.replay_identical),
    ).toBe(true);
  });
});

describe('stores: run --store, runs, export', () => {
  it('runs land in the SQLite store; runs lists them; export gives a bundle that verifies and replays', () => {
    const db = `sqlite:${join(dir, 'runs.db')}`;
    expect(nanoVm('run', 'examples/refund', '--store', db).code).toBe(0);
    const listed = nanoVm('runs', '--store', db, '--json').json<RunsOutput>().runs;
    expect(listed.map((r) => r.outcome)).toEqual(['SUCCESS', 'REJECTED', 'NEEDS_HUMAN_REVIEW']);
    expect(nanoVm('runs', '--store', db, '--status', 'completed', '--json').json<RunsOutput>().runs).toHaveLength(3);
    expect(nanoVm('runs', '--store', db, '--status', 'failed', '--json').json<RunsOutput>().runs).toHaveLength(0);
    const out = join(dir, 'exported.json');
    expect(nanoVm('export', listed[2]!.run_id, '--store', db, '-o', out).code).toBe(0);
    expect(nanoVm('verify', out, '--json').json()).toMatchObject({ valid: true, head_hash: listed[2]!.head_hash });
    expect(nanoVm('replay', out, '--json').json()).toMatchObject({ identical: true });
    expect(nanoVm('export', 'run-nope', '--store', db, '--json').json<ErrorOutput>().error.code).toBe('E_STORE_NO_RUN');
  });

  it('a bad store spec or an unopenable store is refused with a code', () => {
    const r1 = nanoVm('runs', '--store', 'postgres://x', '--json');
    expect([r1.code, r1.json<ErrorOutput>().error.code]).toEqual([2, 'E_STORE_SPEC']);
    const r2 = nanoVm('runs', '--store', `sqlite:${dir}`, '--json');
    expect([r2.code, r2.json<ErrorOutput>().error.code]).toEqual([2, 'E_STORE_OPEN']);
  });
});

describe('crash recovery: SIGKILL in the middle of a tool call, then nano-vm recover', () => {
  it('the killed run is finished with the tool re-invoked under its original idempotency key', () => {
    const ex = join(dir, 'crashy');
    mkdirSync(join(ex, 'inputs'), { recursive: true });
    writeFileSync(
      join(ex, 'program.yaml'),
      [
        'format: nano-vm.program/v1',
        'id: crashy',
        'input_schema: { type: object, properties: { amount: { type: number } } }',
        'steps:',
        '  - id: decide',
        '    kind: llm',
        '    prompt: "charge {{input.amount}}?"',
        '    projection: [input.amount]',
        '    output: { enum: [charge, skip] }',
        '    next: charge',
        '  - id: charge',
        '    kind: tool',
        '    tool: charge',
        '    args: { amount: input.amount }',
        '    next: done',
        '  - id: done',
        '    kind: end',
        '    outcome: CHARGED',
        '',
      ].join('\n'),
    );
    writeFileSync(join(ex, 'inputs', 'one.json'), '{"amount": 7}');
    writeFileSync(join(ex, 'model.yaml'), 'answers: { decide: [charge] }\n');
    // The first call records its idempotency key and kills its own process with SIGKILL; a call
    // after that (recovery) records the key again and succeeds.
    writeFileSync(
      join(ex, 'tools.mjs'),
      `import { appendFileSync, existsSync } from 'node:fs';
const log = ${JSON.stringify(join(dir, 'charge.log'))};
export const tools = [{ name: 'charge', run: async (args, ctx) => {
  const first = !existsSync(log);
  appendFileSync(log, ctx.idempotencyKey + '\\n');
  if (first) process.kill(process.pid, 'SIGKILL');
  return { charged: args.amount };
} }];
`,
    );
    const db = `sqlite:${join(dir, 'crash.db')}`;
    const killed = nanoVm('run', ex, '--store', db);
    expect(killed.code).not.toBe(0); // killed by the signal, not an orderly exit
    const running = nanoVm('runs', '--store', db, '--status', 'running', '--json').json<RunsOutput>().runs;
    expect(running).toHaveLength(1);
    const runId = running[0]!.run_id;

    const rec = nanoVm('recover', ex, '--store', db, '--json');
    expect(rec.code).toBe(0);
    expect(rec.json()).toMatchObject({
      run_id: runId,
      recovered: true,
      status: 'completed',
      outcome: 'CHARGED',
      reinvoked: [`${runId}/charge/1`],
    });
    expect(readFileSync(join(dir, 'charge.log'), 'utf8').trim().split('\n')).toEqual([
      `${runId}/charge/1`,
      `${runId}/charge/1`,
    ]);
    const out = join(dir, 'crashy.bundle.json');
    expect(nanoVm('export', runId, '--store', db, '-o', out).code).toBe(0);
    expect(nanoVm('verify', out, '--json').json()).toMatchObject({ valid: true });
    expect(nanoVm('replay', out, '--json').json()).toMatchObject({ identical: true });
    expect(nanoVm('recover', ex, '--store', db, '--json').out.trim()).toBe(''); // nothing left to recover
  });
});

describe('nano-vm replay', () => {
  it('replays a bundle identically (exit 0) and reports a counterfactual under another program', () => {
    const f = join(dir, 'approve.json');
    expect(nanoVm('run', 'examples/refund', '--input', 'examples/refund/inputs/approve.json', '--out', f).code).toBe(0);
    const same = nanoVm('replay', f, '--json');
    expect(same.code).toBe(0);
    expect(same.json()).toMatchObject({ identical: true, counterfactual: false, first_divergence: null });

    const strict = join(dir, 'strict.yaml');
    writeFileSync(
      strict,
      readFileSync(join(ROOT, 'examples/refund/program.yaml'), 'utf8').replace(
        'input.amount <= 500',
        'input.amount <= 100',
      ),
    );
    const cf = nanoVm('replay', f, '--program', strict, '--json');
    expect(cf.code).toBe(0);
    expect(cf.json()).toMatchObject({
      counterfactual: true,
      outcome: 'NEEDS_HUMAN_REVIEW',
      recorded_outcome: 'SUCCESS',
      path: ['classify', 'decide', 'manual_review'],
    });
  });

  it('a counterfactual that needs a result nobody recorded exits 1 and names the step', () => {
    const f = join(dir, 'injection.json');
    expect(nanoVm('run', 'examples/refund', '--input', 'examples/refund/inputs/injection.json', '--out', f).code).toBe(
      0,
    );
    const lax = join(dir, 'lax.yaml');
    writeFileSync(
      lax,
      readFileSync(join(ROOT, 'examples/refund/program.yaml'), 'utf8').replace(
        'steps.classify.output == "approve" && input.amount <= 500',
        'steps.classify.output == "approve"',
      ),
    );
    const r = nanoVm('replay', f, '--program', lax);
    expect(r.code).toBe(1);
    expect(r.out).toContain("step 'issue_refund' needs a tool result (#1) that was never recorded");
  });

  it('refuses to replay a bundle that does not verify (its recorded answers cannot be trusted)', () => {
    const f = join(dir, 'approve2.json');
    expect(nanoVm('run', 'examples/refund', '--input', 'examples/refund/inputs/approve.json', '--out', f).code).toBe(0);
    const tampered = JSON.parse(readFileSync(f, 'utf8'));
    tampered.events[1].raw = 'deny';
    const t = join(dir, 'tampered-replay.json');
    writeFileSync(t, JSON.stringify(tampered));
    const bad = nanoVm('replay', t, '--json');
    expect(bad.code).toBe(1);
    expect(bad.json<ErrorOutput>().error.code).toBe('E_CHAIN_HASH'); // not replayed: the recorded answers are not trustworthy
  });
});

const GOLDEN_REFUND_INJECTION = '186fccd796916be1050560a5e3749f191d82ee4c177b8c1f184308a227eb5b11';
