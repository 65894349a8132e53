/**
 * A sensitive input value that also appears elsewhere in the input (an undeclared field, a key,
 * another letter case) is stored as its commitment when the input is sealed, as events write it:
 * the bundle holds no copy, and a replay without the vault re-derives the run identically (before,
 * the live projection was redacted and the replayed one was not: a false projection_hash divergence).
 */
import { describe, expect, it } from 'vitest';
import { replayBundle, serializeBundle, parseJsonText, verifyBundle, type Program } from '@nano-vm/kernel';
import { FixedClock, MemoryStore, SeededIds, ToolRegistry, nodeHasher, runProgram } from '@nano-vm/runtime';

const EMAIL = 'Ann.Lee@example.com';
const PROGRAM: Program = {
  format: 'nano-vm.program/v1',
  id: 'dup',
  input_schema: { type: 'object', properties: { data: {}, email: { type: 'string' } } },
  sensitive: ['input.email'],
  steps: [
    {
      id: 'ask',
      kind: 'llm',
      prompt: 'look at {{input.data}} for {{input.email}}',
      projection: ['input.data', 'input.email'],
      output: { schema: {} },
      on_error: { action: 'fallback', value: {} },
      next: 't',
    },
    {
      id: 't',
      kind: 'tool',
      tool: 'echo',
      args: { d: 'input.data', e: 'input.email' },
      output_schema: {},
      on_error: { action: 'fallback', value: {} },
      next: 'no',
    },
    { id: 'no', kind: 'end', outcome: 'NO' },
  ],
};
describe('sensitive value also elsewhere in the input', () => {
  for (const data of [{ a: EMAIL }, { [EMAIL]: 1 }, `note ${EMAIL.toUpperCase()}`, EMAIL])
    it(`replays identically: ${JSON.stringify(data)}`, async () => {
      const r = await runProgram({
        program: PROGRAM,
        input: { data, email: EMAIL },
        model: { id: 'f', scripted: true, complete: async () => ({ raw: '{"k":1}', model: 'f' }) },
        tools: new ToolRegistry([{ name: 'echo', run: async (a) => a }]),
        store: new MemoryStore(),
        clock: new FixedClock(),
        ids: new SeededIds(nodeHasher),
      });
      const bundle = parseJsonText(serializeBundle(r.bundle), { maxDepth: 160 });
      expect(verifyBundle(bundle, nodeHasher).ok).toBe(true);
      const rep = replayBundle(bundle as typeof r.bundle, { hasher: nodeHasher });
      expect(rep.identical, JSON.stringify(rep.first_divergence)).toBe(true);
    });
});
