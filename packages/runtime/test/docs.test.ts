/**
 * Every ```yaml run block in docs/dsl.md runs the ```yaml program block before it, end to end:
 * scripted answers for the model, stub results for the tools, and the expected status, outcome
 * and path. So the reference's examples are programs that actually behave as the text says.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadProgram, pureHasher, verifyBundle, type ExternalEvent, type Program } from '@nano-vm/kernel';
import {
  FixedClock,
  MemoryStore,
  SeededIds,
  ScriptedModel,
  ToolRegistry,
  nodeHasher,
  parseModelScript,
  resumeRun,
  runProgram,
  type ResumeResult,
  type RunResult,
} from '../src/internal.js';

const doc = readFileSync(new URL('../../../docs/dsl.md', import.meta.url), 'utf8');

interface RunBlock {
  line: number;
  program: Program;
  spec: {
    input: unknown;
    answers?: Record<string, unknown>;
    tools?: Record<string, unknown[]>;
    events?: ExternalEvent[];
    expect: { status: string; outcome?: string; path?: string[] };
  };
}

function runBlocks(): RunBlock[] {
  const lines = doc.split('\n');
  const out: RunBlock[] = [];
  let program: Program | undefined;
  for (let i = 0; i < lines.length; i++) {
    const fence = lines[i]!.trim();
    if (fence !== '```yaml program' && fence !== '```yaml run') continue;
    const end = lines.indexOf('```', i + 1);
    const text = lines.slice(i + 1, end).join('\n');
    if (fence === '```yaml program') program = loadProgram(text).program;
    else out.push({ line: i + 1, program: program!, spec: parse(text) });
    i = end;
  }
  return out;
}

function stubTools(results: Record<string, unknown[]> = {}): ToolRegistry {
  return new ToolRegistry(
    Object.entries(results).map(([name, list]) => {
      let n = 0;
      return {
        name,
        run: async () => {
          const r = list[Math.min(n++, list.length - 1)] as { error?: string };
          if (r && typeof r === 'object' && 'error' in r) throw new Error(r.error);
          return r;
        },
      };
    }),
  );
}

describe('docs/dsl.md run blocks', () => {
  const blocks = runBlocks();
  it('there is at least one run per example program', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    expect(new Set(blocks.map((b) => b.program.id)).size).toBeGreaterThanOrEqual(3);
  });

  it.each(blocks.map((b) => [b.line, b.program.id, b] as const))(
    'run at line %i (%s) behaves as documented',
    async (_line, _id, b) => {
      const model = new ScriptedModel(parseModelScript(JSON.stringify({ answers: b.spec.answers ?? {} }), 'docs'));
      const tools = stubTools(b.spec.tools);
      const store = new MemoryStore();
      const clock = new FixedClock();
      let r: RunResult | ResumeResult = await runProgram({
        program: b.program,
        input: b.spec.input,
        model,
        tools,
        store,
        clock,
        ids: new SeededIds(nodeHasher),
      });
      // `events` are delivered in order, each when the run suspends at a wait step.
      for (const event of b.spec.events ?? []) {
        expect(r.status).toBe('suspended');
        r = await resumeRun({ store, runId: r.run_id, event, model, tools, clock });
      }
      expect({ status: r.status, outcome: r.outcome ?? undefined }).toEqual({
        status: b.spec.expect.status,
        outcome: b.spec.expect.outcome,
      });
      if (b.spec.expect.path) expect(r.receipt.path).toEqual(b.spec.expect.path);
      expect(verifyBundle(r.bundle, pureHasher)).toMatchObject({ ok: true });
    },
  );
});
