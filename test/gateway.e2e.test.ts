/**
 * End to end: the governed gateway through the real, built CLI (`nano-vm run|resume --gateway`)
 * against a real MCP server written with the official SDK (packages/mcp/test/fixtures/
 * remoteServer.mjs) over stdio and over Streamable HTTP. A remote tool must be granted, checked,
 * timed out and recorded exactly as a local tool: the strongest check is that a deterministic run
 * through the gateway writes the same bundle, byte for byte, as the same run with a local tools
 * module that returns the same values.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const FIXTURE = join(ROOT, 'packages/mcp/test/fixtures/remoteServer.mjs');
let dir: string;
let http: ChildProcess | undefined;
let httpUrl: string;

function nanoVm(...args: string[]) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
  return {
    code: r.status ?? -1,
    out: r.stdout,
    err: r.stderr,
    ms: Date.now() - started,
    json: () => JSON.parse(r.stdout.trim().split('\n').pop()!),
  };
}

function file(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

/** A gateway file for the fixture over stdio, logging its calls to `log`. */
function stdioGateway(name: string, log: string, extra = ''): string {
  return file(
    name,
    `- name: orders\n  command: ${JSON.stringify(process.execPath)}\n  args: [${JSON.stringify(FIXTURE)}]\n  env: { REMOTE_CALL_LOG: ${JSON.stringify(log)} }\n${extra}`,
  );
}

const calls = (log: string): { tool: string; args: unknown; meta: Record<string, unknown> }[] =>
  existsSync(log)
    ? readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];

const REFUND = `format: nano-vm.program/v1
id: remote_refund
input_schema:
  type: object
  required: [order_id]
  properties: { order_id: { type: string } }
steps:
  - id: lookup
    kind: tool
    tool: orders.lookup_order
    args: { order_id: input.order_id }
    next: refund
  - id: refund
    kind: tool
    tool: orders.issue_refund
    args: { order_id: input.order_id, amount: steps.lookup.output.amount }
    next: done
  - id: done
    kind: end
    outcome: REFUNDED
`;

/** The same two tools as local tools (same names, schemas and results), for the byte-for-byte comparison. */
const LOCAL_TOOLS = `export const tools = [
  {
    name: 'orders.lookup_order',
    input_schema: { type: 'object', properties: { order_id: { type: 'string' } }, required: ['order_id'] },
    run: (a) => ({ order_id: a.order_id, amount: 42.5, status: 'paid' }),
  },
  {
    name: 'orders.issue_refund',
    input_schema: { type: 'object', properties: { order_id: { type: 'string' }, amount: { type: 'number' } }, required: ['order_id', 'amount'] },
    run: (a, ctx) => ({ refund_id: 'rf_' + a.order_id, idempotency_key: ctx.idempotencyKey }),
  },
];
`;

/** A program whose only tool step calls `tool` (with `args` YAML), under a step timeout. */
const oneCall = (tool: string, args = '{}', extra = '') => `format: nano-vm.program/v1
id: remote_${tool.replace(/\W/g, '_')}
input_schema: { type: object }
steps:
  - id: call
    kind: tool
    tool: ${tool}
    args: ${args}
    timeout_ms: 3000
${extra}    next: done
  - id: done
    kind: end
    outcome: OK
`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-gateway-'));
  file('in.json', '{"order_id":"o_1"}');
  file('empty.json', '{}');
  http = spawn(process.execPath, [FIXTURE, '--http'], { stdio: ['ignore', 'pipe', 'inherit'] });
  httpUrl = await new Promise<string>((resolve, reject) => {
    let out = '';
    http!.stdout!.on('data', (d) => {
      out += d;
      const m = /listening (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    http!.on('exit', (c) => reject(new Error(`HTTP fixture exited with ${c}`)));
  });
});

afterAll(() => {
  http?.kill();
});

describe('nano-vm run --gateway: a remote tool is a tool like any other', () => {
  it('over stdio: the run completes, the key arrives in _meta, and the bundle is byte-identical to a local-tools run', () => {
    const log = join(dir, 'stdio.log');
    const gw = stdioGateway('stdio.yaml', log);
    const program = file('refund.yaml', REFUND);
    const remote = nanoVm(
      'run',
      program,
      '--gateway',
      gw,
      '--input',
      'in.json',
      '--deterministic',
      '--out',
      'remote.json',
      '--json',
    );
    expect(remote.err).toBe('');
    expect(remote.code).toBe(0);
    expect(remote.json()).toMatchObject({ status: 'completed', outcome: 'REFUNDED' });

    const bundle = JSON.parse(readFileSync(join(dir, 'remote.json'), 'utf8'));
    const started = bundle.events.filter((e: { type: string }) => e.type === 'step_started');
    expect(started.map((e: { tool: string }) => e.tool)).toEqual(['orders.lookup_order', 'orders.issue_refund']);
    // Every call carried its step visit's idempotency key in _meta, as recorded in the trace.
    const seen = calls(log);
    expect(seen.map((c) => c.tool)).toEqual(['lookup_order', 'issue_refund']);
    expect(seen.map((c) => c.meta['nano-vm/idempotency_key'])).toEqual(
      started.map((e: { idempotency_key: string }) => e.idempotency_key),
    );
    expect(seen[1]!.args).toEqual({ order_id: 'o_1', amount: 42.5 });
    const refunded = bundle.events.find(
      (e: { type: string; step: string }) => e.type === 'step_completed' && e.step === 'refund',
    );
    expect(refunded.output.idempotency_key).toBe(started[1].idempotency_key);

    const tools = file('tools.mjs', LOCAL_TOOLS);
    const local = nanoVm(
      'run',
      program,
      '--tools',
      tools,
      '--input',
      'in.json',
      '--deterministic',
      '--out',
      'local.json',
      '--json',
    );
    expect(local.code).toBe(0);
    expect(readFileSync(join(dir, 'remote.json'), 'utf8')).toBe(readFileSync(join(dir, 'local.json'), 'utf8'));
    expect(nanoVm('verify', 'remote.json').code).toBe(0);
  });

  it('over Streamable HTTP: the same run, the same bundle', () => {
    const gw = file('http.yaml', `- name: orders\n  url: ${httpUrl}\n  timeout_ms: 10000\n`);
    const program = file('refund.yaml', REFUND);
    const r = nanoVm(
      'run',
      program,
      '--gateway',
      gw,
      '--input',
      'in.json',
      '--deterministic',
      '--out',
      'http.json',
      '--json',
    );
    expect(r.err).toBe('');
    expect(r.json()).toMatchObject({ status: 'completed', outcome: 'REFUNDED' });
    if (!existsSync(join(dir, 'local.json'))) return; // the stdio case wrote the reference
    expect(readFileSync(join(dir, 'http.json'), 'utf8')).toBe(readFileSync(join(dir, 'local.json'), 'utf8'));
  });

  it('an HTTP response longer than a run accepts is cut off (E_TOO_LARGE), not read into memory', () => {
    const gw = file('http-huge.yaml', `- name: orders\n  url: ${httpUrl}\n`);
    const r = nanoVm(
      'run',
      file('huge.yaml', oneCall('orders.huge')),
      '--gateway',
      gw,
      '--input',
      'empty.json',
      '--store',
      'memory:',
      '--json',
    );
    expect(r.json().receipt.error).toMatchObject({ code: 'E_TOO_LARGE', step: 'call' });
  });

  it('a remote tool no grant covers is refused by the policy before anything is called', () => {
    const log = join(dir, 'policy.log');
    const gw = stdioGateway('policy-gw.yaml', log);
    const policy = file(
      'policy.yaml',
      `format: nano-vm.policy/v1\nid: refunds\ngrants:\n  - { id: lookup_reads, step: lookup, tools: [orders.lookup_order] }\n`,
    );
    const r = nanoVm(
      'run',
      file('refund.yaml', REFUND),
      '--gateway',
      gw,
      '--policy',
      policy,
      '--input',
      'in.json',
      '--store',
      'memory:',
    );
    expect(r.code).toBe(2);
    expect(r.err).toContain('E_POLICY_GRANT');
    expect(r.err).toContain('orders.issue_refund');
    expect(calls(log)).toEqual([]);
  });

  it('validate --gateway checks tool names and arguments against the remote tools', () => {
    const gw = stdioGateway('validate.yaml', join(dir, 'validate.log'));
    const typo = file('typo.yaml', REFUND.replace('tool: orders.issue_refund', 'tool: orders.issue_refnd'));
    const r = nanoVm('validate', typo, '--gateway', gw);
    expect(r.code).toBe(1);
    expect(r.out).toContain("unknown tool 'orders.issue_refnd' (did you mean 'orders.issue_refund'?)");
    expect(nanoVm('validate', file('refund.yaml', REFUND), '--gateway', gw).code).toBe(0);
    expect(calls(join(dir, 'validate.log'))).toEqual([]);
  });

  it("a tool outside the server's allow-list does not exist for the program (E_UNKNOWN_TOOL)", () => {
    const gw = stdioGateway('allow.yaml', join(dir, 'allow.log'), '  tools: [lookup_order]\n');
    const r = nanoVm('run', file('refund.yaml', REFUND), '--gateway', gw, '--input', 'in.json', '--store', 'memory:');
    expect(r.code).toBe(2);
    expect(r.err).toContain('E_UNKNOWN_TOOL');
    expect(r.err).toContain('orders.issue_refund');
  });

  it('an allow-list naming a tool the server lacks is refused (E_GATEWAY_CONFIG), with what it offers', () => {
    const gw = stdioGateway('allow-bad.yaml', join(dir, 'allow-bad.log'), '  tools: [lookup_order, wire_money]\n');
    const r = nanoVm('run', file('refund.yaml', REFUND), '--gateway', gw, '--input', 'in.json', '--store', 'memory:');
    expect(r.code).toBe(2);
    expect(r.err).toContain('E_GATEWAY_CONFIG');
    expect(r.err).toMatch(/offers no tool 'wire_money'.*lookup_order/);
  });
});

describe('nano-vm run --gateway: a remote server that misbehaves fails the step, never the runtime', () => {
  const gateway = () => stdioGateway('faults.yaml', join(dir, 'faults.log'));
  const run = (program: string) =>
    nanoVm(
      'run',
      file('fault.yaml', program),
      '--gateway',
      gateway(),
      '--input',
      'empty.json',
      '--store',
      'memory:',
      '--json',
    );

  it("a result that breaks the tool's declared outputSchema is rejected (E_TOOL_OUTPUT_SCHEMA)", () => {
    const r = run(oneCall('orders.bad_quote', '{ order_id: { value: o_1 } }'));
    expect(r.json()).toMatchObject({
      status: 'failed',
      receipt: { error: { code: 'E_TOOL_OUTPUT_SCHEMA', step: 'call' } },
    });
    expect(r.json().receipt.error.message).toContain('/price');
  });

  it("a result that breaks the step's output_schema is rejected as for a local tool", () => {
    const r = run(
      oneCall(
        'orders.lookup_order',
        '{ order_id: { value: o_1 } }',
        '    output_schema: { type: object, properties: { amount: { type: number, maximum: 10 } } }\n',
      ),
    );
    expect(r.json()).toMatchObject({ status: 'failed', receipt: { error: { code: 'E_TOOL_OUTPUT_SCHEMA' } } });
  });

  it('a remote tool that hangs times out at the step deadline; the run fails and the command ends', () => {
    const r = run(oneCall('orders.hang'));
    const j = r.json();
    expect(j.status).toBe('failed');
    expect(j.status).not.toBe('completed');
    expect(j.receipt.error).toMatchObject({ code: 'E_TIMEOUT', step: 'call' });
    expect(r.ms).toBeLessThan(20_000);
  });

  it('a server that dies mid-call gives E_GATEWAY_UNAVAILABLE with its last stderr', () => {
    const r = run(oneCall('orders.crash'));
    const j = r.json();
    expect(j.status).toBe('failed');
    expect(j.receipt.error.code).toBe('E_GATEWAY_UNAVAILABLE');
    expect(j.receipt.error.message).toContain("MCP server 'orders'");
    expect(j.receipt.error.message).toContain('crashing on purpose');
  });

  it('a remote isError result is an ordinary tool error, and on_error retry applies to it', () => {
    const r = run(
      oneCall('orders.refuse', '{ order_id: { value: o_404 } }', '    on_error: { action: retry, max_attempts: 2 }\n'),
    );
    const j = r.json();
    expect(j.receipt.error).toMatchObject({ code: 'E_TOOL_ERROR' });
    expect(j.receipt.error.message).toContain('order o_404 not found');
    expect(j.receipt.counts.tool_calls).toBe(2);
  });

  it('a non-text content block cannot enter the state (E_GATEWAY_RESULT)', () => {
    expect(run(oneCall('orders.picture')).json().receipt.error.code).toBe('E_GATEWAY_RESULT');
  });

  it('plain text results enter as a string', () => {
    const r = nanoVm(
      'run',
      file('note.yaml', oneCall('orders.note', '{ order_id: { value: o_7 } }')),
      '--gateway',
      gateway(),
      '--input',
      'empty.json',
      '--deterministic',
      '--out',
      'note.json',
    );
    expect(r.code).toBe(0);
    const bundle = JSON.parse(readFileSync(join(dir, 'note.json'), 'utf8'));
    expect(bundle.events.find((e: { type: string }) => e.type === 'step_completed').output).toBe(
      'order o_7 looks fine',
    );
  });

  it('a server that cannot be started is refused before any run (E_GATEWAY_CONNECT)', () => {
    const gw = file(
      'nostart.yaml',
      `- name: ghost\n  command: ${JSON.stringify(join(dir, 'no-such-server'))}\n  timeout_ms: 5000\n`,
    );
    const r = nanoVm('run', file('refund.yaml', REFUND), '--gateway', gw, '--input', 'in.json', '--store', 'memory:');
    expect(r.code).toBe(1);
    expect(r.err).toContain('E_GATEWAY_CONNECT');
    expect(r.err).toContain("MCP server 'ghost'");
  });

  it('a gateway file that is not a server list is refused (E_GATEWAY_CONFIG)', () => {
    const gw = file('bad.yaml', '- name: two.dots\n  command: node\n');
    const r = nanoVm('run', file('refund.yaml', REFUND), '--gateway', gw, '--input', 'in.json', '--store', 'memory:');
    expect(r.code).toBe(2);
    expect(r.err).toContain('E_GATEWAY_CONFIG');
    expect(r.err).toContain('no dots');
  });
});

describe('nano-vm resume --gateway: a suspended run continues with the same remote tools', () => {
  it('suspends before the remote refund, then resume calls it with the recorded key', () => {
    const log = join(dir, 'resume.log');
    const gw = stdioGateway('resume.yaml', log);
    const program = file(
      'approve.yaml',
      `format: nano-vm.program/v1
id: remote_approval
input_schema: { type: object, required: [order_id], properties: { order_id: { type: string } } }
steps:
  - id: approve
    kind: wait
    event: { type: object, required: [ok], properties: { ok: { type: boolean } } }
    next: refund
  - id: refund
    kind: tool
    tool: orders.issue_refund
    args: { order_id: input.order_id, amount: { value: 5 } }
    next: done
  - id: done
    kind: end
    outcome: REFUNDED
`,
    );
    const store = `sqlite:${join(dir, 'resume.db')}`;
    const first = nanoVm('run', program, '--gateway', gw, '--input', 'in.json', '--store', store, '--json');
    expect(first.json()).toMatchObject({ status: 'suspended' });
    const runId = first.json().run_id;
    expect(calls(log)).toEqual([]);
    const ev = file('ok.json', '{"ok":true}');
    const second = nanoVm('resume', runId, '--gateway', gw, '--event', ev, '--store', store, '--json');
    expect(second.err).toBe('');
    expect(second.json()).toMatchObject({ status: 'completed', outcome: 'REFUNDED' });
    const seen = calls(log);
    expect(seen.map((c) => c.tool)).toEqual(['issue_refund']);
    expect(seen[0]!.meta['nano-vm/idempotency_key']).toBe(`${runId}/refund/1`);
  });
});
