/**
 * The gateway as a library: openGateway against the SDK-built fixture server over stdio, driven
 * by the runtime's public runProgram. What the CLI tests cannot see from outside: that remote data
 * never reaches a prototype, what the tool definitions look like, that close() and an aborted open
 * leave no server behind, and each config refusal.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NanoVmError, type Program } from '@nano-vm/kernel';
import { MemoryStore, ModelError, runProgram, ToolRegistry, type ModelPort } from '@nano-vm/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGateway, parseGatewayFile, parseGatewayServers, type Gateway } from '../src/index.js';

const FIXTURE = join(new URL('.', import.meta.url).pathname, 'fixtures/remoteServer.mjs');
const SERVER = { name: 'orders', command: process.execPath, args: [FIXTURE] };
let gw: Gateway;
/** These programs have no llm step. */
const NO_MODEL: ModelPort = {
  id: 'none',
  scripted: false,
  complete: () => Promise.reject(new ModelError('E_MODEL_SPEC', 'no model')),
};

beforeAll(async () => {
  gw = await openGateway([SERVER]);
});
afterAll(async () => {
  await gw.close();
});

function oneCall(tool: string): Program {
  return {
    format: 'nano-vm.program/v1',
    id: 'one_call',
    input_schema: { type: 'object' },
    steps: [
      { id: 'call', kind: 'tool', tool, next: 'done' },
      { id: 'done', kind: 'end', outcome: 'OK' },
    ],
  } as Program;
}

describe('openGateway', () => {
  it("offers every remote tool as <server>.<tool> with the remote's schemas", () => {
    const lookup = gw.tools.find((t) => t.name === 'orders.lookup_order')!;
    expect(gw.tools.map((t) => t.name)).toContain('orders.issue_refund');
    expect(lookup.description).toBe('Looks an order up by id.');
    expect(lookup.input_schema).toMatchObject({ type: 'object', properties: { order_id: { type: 'string' } } });
    expect(lookup.output_schema).toMatchObject({ properties: { amount: { type: 'number' } } });
  });

  it('members named __proto__ and constructor in a remote result stay data and pollute nothing', async () => {
    const r = await runProgram({
      program: oneCall('orders.proto'),
      input: {},
      model: NO_MODEL,
      tools: new ToolRegistry(gw.tools),
      store: new MemoryStore(),
    });
    expect(r.status).toBe('completed');
    const done = r.events.find((e) => e.type === 'step_completed') as unknown as { output: { data: object } };
    expect(Object.keys(done.output.data).sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(done.output.data)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('close() stops the server: a later call is E_GATEWAY_UNAVAILABLE at once, and close() again is harmless', async () => {
    const own = await openGateway([SERVER]);
    await own.close();
    await own.close();
    const r2 = await runProgram({
      program: oneCall('orders.proto'),
      input: {},
      model: NO_MODEL,
      tools: new ToolRegistry(own.tools),
      store: new MemoryStore(),
    });
    expect(r2.receipt.error).toMatchObject({ code: 'E_GATEWAY_UNAVAILABLE' });
    expect(r2.receipt.error!.message).toContain('the gateway closed it');
  });

  it('takes ${env:NAME} in env (and headers) from the environment when it opens; an unset one is E_GATEWAY_CONFIG', async () => {
    const log = join(mkdtempSync(join(tmpdir(), 'gw-env-')), 'calls.log');
    process.env.GATEWAY_TEST_LOG = log;
    const config = {
      ...SERVER,
      env: { REMOTE_CALL_LOG: '${env:GATEWAY_TEST_LOG}' },
    };
    expect(parseGatewayServers([config])[0]!.env).toEqual(config.env);
    const own = await openGateway([config]);
    try {
      await runProgram({
        program: oneCall('orders.proto'),
        input: {},
        model: NO_MODEL,
        tools: new ToolRegistry(own.tools),
        store: new MemoryStore(),
      });
    } finally {
      await own.close();
    }
    expect(readFileSync(log, 'utf8')).toContain('"tool":"proto"');
    await expect(openGateway([{ ...SERVER, env: { K: '${env:GATEWAY_TEST_UNSET_VAR}' } }])).rejects.toThrow(
      /GATEWAY_TEST_UNSET_VAR, which is not set/,
    );
  });

  it('an open aborted by its signal starts nothing and throws E_GATEWAY_CONNECT', async () => {
    const ac = new AbortController();
    ac.abort(new Error('operator cancelled'));
    await expect(openGateway([SERVER], { signal: ac.signal })).rejects.toMatchObject({ code: 'E_GATEWAY_CONNECT' });
  });
});

describe('gateway config', () => {
  const refused = (value: unknown) => {
    try {
      parseGatewayServers(value, 'gw.yaml');
    } catch (e) {
      expect(e).toBeInstanceOf(NanoVmError);
      expect((e as NanoVmError).code).toBe('E_GATEWAY_CONFIG');
      return (e as Error).message;
    }
    throw new Error('accepted');
  };

  it('accepts a list or { servers: [...] }', () => {
    expect(parseGatewayServers({ servers: [{ name: 'a', url: 'http://127.0.0.1:1/mcp' }] })).toEqual([
      { name: 'a', url: 'http://127.0.0.1:1/mcp' },
    ]);
    expect(parseGatewayFile('[{"name":"a","command":"x","tools":["t"]}]', 'gw.json')).toEqual([
      { name: 'a', command: 'x', tools: ['t'] },
    ]);
  });

  it('refuses every malformed entry with its place', () => {
    expect(refused({ name: 'a' })).toContain('expected a list of servers');
    expect(refused([{ name: 'a' }])).toContain('exactly one of command');
    expect(refused([{ name: 'a', command: 'x', url: 'http://h/' }])).toContain('exactly one of command');
    expect(refused([{ name: 'a', url: 'file:///etc/passwd' }])).toContain('http: or https:');
    expect(
      refused([
        { name: 'a', command: 'x' },
        { name: 'a', command: 'y' },
      ]),
    ).toContain('given twice');
    expect(refused([{ name: 'a', command: 'x', tools: ['bad name'] }])).toContain('not a tool name');
    expect(refused([{ name: 'a', command: 'x', timeout_ms: 0 }])).toContain('timeout_ms');
    expect(refused([{ name: 'a', command: 'x', headers: {} }])).toContain('url server only');
    expect(refused([{ name: 'a', command: 'x', comand: 'y' }])).toContain("unknown property 'comand'");
    expect(refused([{ name: 'a', command: 'x', env: { K: 1 } }])).toContain('K must be a string');
  });

  it('refuses a file that is not strict YAML/JSON', () => {
    expect(() => parseGatewayFile('[{"name":"a","name":"b"}]', 'gw.json')).toThrow(
      /E_GATEWAY_CONFIG|not a readable JSON/,
    );
    expect(() => parseGatewayFile('- name: a\n  name: b\n', 'gw.yaml')).toThrow(/not a readable YAML/);
  });
});
