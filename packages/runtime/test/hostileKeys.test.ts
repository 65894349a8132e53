/**
 * Issue 11 item 3: `__proto__`, `constructor` and `prototype` are ordinary data everywhere — in
 * inputs, tool outputs, model answers, step ids and projections — never walked into and never a
 * crash. Runs complete, verify and replay identically, and Object.prototype stays clean.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { replayBundle, serializeBundle, verifyBundle, type Program } from '@nano-vm/kernel';
import { MemoryStore, nodeHasher, runProgram, type ModelPort } from '../src/internal.js';
import { det, tools } from './fixtures.js';

const polluted = () => ({}) as Record<string, unknown>;

afterEach(() => {
  // A failing test must not leave the prototype polluted for the next one.
  for (const k of ['polluted', 'x', 'output']) delete (Object.prototype as Record<string, unknown>)[k];
});

const model = (raw: string): ModelPort => ({
  id: 'm',
  scripted: true,
  complete: async () => ({ raw, model: 'm', usage: { input_tokens: 1, output_tokens: 1 } }),
});

function program(extra: Partial<Program>, steps: Program['steps']): Program {
  return {
    format: 'nano-vm.program/v1',
    id: 'hostile',
    input_schema: {
      type: 'object',
      properties: { data: { type: 'object' }, email: { type: 'string' } },
    },
    steps,
    ...extra,
  };
}

const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

async function runAndCheck(p: Program, input: unknown, m: ModelPort, toolResult: unknown) {
  let seenPolluted: unknown = 'unset';
  const reg = tools([
    {
      name: 'echo',
      run: async () => {
        seenPolluted = polluted()['polluted'];
        return toolResult;
      },
    },
  ]);
  const r = await runProgram({ program: p, input, model: m, tools: reg, store: new MemoryStore(), ...det() });
  const bundle = JSON.parse(serializeBundle(r.bundle));
  expect(verifyBundle(bundle, nodeHasher).ok).toBe(true);
  const replay = replayBundle(bundle, { hasher: nodeHasher });
  expect(replay.identical, JSON.stringify(replay.first_divergence)).toBe(true);
  expect(polluted()['polluted']).toBeUndefined();
  return { r, seenPolluted };
}

describe('__proto__, constructor and prototype are data', () => {
  it('a projection path through __proto__ reads the member and pollutes nothing', async () => {
    const p = program(
      {
        input_schema: {
          type: 'object',
          properties: {
            // Parsed, so that `__proto__` is a member (in a literal it would set the prototype).
            data: json(
              '{"type":"object","properties":{"__proto__":{"type":"object","properties":{"polluted":{"type":"string"}}}}}',
            ),
          },
        },
      },
      [
        {
          id: 'ask',
          kind: 'llm',
          prompt: 'look {{input.data.__proto__.polluted}}',
          projection: ['input.data.__proto__.polluted'],
          output: { enum: ['a', 'b'] },
          next: 't',
        },
        { id: 't', kind: 'tool', tool: 'echo', next: 'done' },
        { id: 'done', kind: 'end', outcome: 'OK' },
      ],
    );
    const requests: string[] = [];
    const m: ModelPort = {
      id: 'm',
      scripted: true,
      complete: async (req) => {
        requests.push(req.prompt);
        return { raw: 'a', model: 'm', usage: { input_tokens: 1, output_tokens: 1 } };
      },
    };
    const { r, seenPolluted } = await runAndCheck(p, json('{"data":{"__proto__":{"polluted":"x"}}}'), m, 1);
    expect(r.status).toBe('completed');
    expect(requests).toEqual(['look x']);
    expect(seenPolluted).toBeUndefined();
  });

  it('a __proto__ key beside a sensitive value in a tool output is kept as data when redacted', async () => {
    const p = program({ sensitive: ['input.email'] }, [
      { id: 't', kind: 'tool', tool: 'echo', args: { e: 'input.email' }, next: 'done' },
      { id: 'done', kind: 'end', outcome: 'OK' },
    ]);
    const out = json('{"__proto__":{"polluted":"x"},"who":"someone@example.com","constructor":{"prototype":1}}');
    const { r } = await runAndCheck(p, { email: 'someone@example.com' }, model('a'), out);
    expect(r.status).toBe('completed');
    const done = r.events.find((e) => e.type === 'step_completed')!;
    const output = (done as { output: Record<string, unknown> }).output;
    expect(Object.keys(output).sort()).toEqual(['__proto__', 'constructor', 'who']);
    expect(Object.getPrototypeOf(output)).toBe(Object.prototype);
    expect(output['who']).not.toBe('someone@example.com');
  });

  it('a sensitive path under a projected object with a __proto__ key is masked, the key kept', async () => {
    const p = program(
      {
        input_schema: {
          type: 'object',
          properties: { data: { type: 'object', properties: { email: { type: 'string' } } } },
        },
        sensitive: ['input.data.email'],
      },
      [
        {
          id: 'ask',
          kind: 'llm',
          prompt: 'look {{input.data}}',
          projection: ['input.data'],
          output: { enum: ['a', 'b'] },
          next: 'done',
        },
        { id: 'done', kind: 'end', outcome: 'OK' },
      ],
    );
    const prompts: string[] = [];
    const m: ModelPort = {
      id: 'm',
      scripted: true,
      complete: async (req) => {
        prompts.push(req.prompt);
        return { raw: 'a', model: 'm', usage: { input_tokens: 1, output_tokens: 1 } };
      },
    };
    const input = json('{"data":{"__proto__":{"polluted":"x"},"email":"a@b.example"}}');
    const { r } = await runAndCheck(p, input, m, 1);
    expect(r.status).toBe('completed');
    expect(prompts[0]).toContain('"__proto__":{"polluted":"x"}');
    expect(prompts[0]).not.toContain('a@b.example');
  });

  it('a JSON model answer with __proto__ and constructor members is data', async () => {
    const p = program({}, [
      {
        id: 'ask',
        kind: 'llm',
        prompt: 'go',
        projection: [],
        output: { schema: { type: 'object' } },
        next: 'c',
      },
      {
        id: 'c',
        kind: 'condition',
        cases: [{ when: "steps.ask.output.__proto__.polluted == 'x'", next: 'done' }],
        else: 'no',
      },
      { id: 'done', kind: 'end', outcome: 'OK' },
      { id: 'no', kind: 'end', outcome: 'NO' },
    ]);
    const { r } = await runAndCheck(p, {}, model('{"__proto__":{"polluted":"x"},"constructor":1}'), 1);
    expect(r.outcome).toBe('OK');
  });

  it.each(['__proto__', 'constructor', 'prototype'])('a step named %s runs, and its output is read', async (id) => {
    const p = program({}, [
      { id, kind: 'tool', tool: 'echo', output_schema: { type: 'object' }, next: 'c' },
      {
        id: 'c',
        kind: 'condition',
        cases: [{ when: `steps.${id}.output.v == 1`, next: 'done' }],
        else: 'no',
      },
      { id: 'done', kind: 'end', outcome: 'OK' },
      { id: 'no', kind: 'end', outcome: 'NO' },
    ]);
    const { r } = await runAndCheck(p, {}, model('a'), { v: 1 });
    expect(r.status).toBe('completed');
    expect(r.outcome).toBe('OK');
  });
});
