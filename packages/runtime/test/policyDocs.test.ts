/**
 * docs/policy.md runs: every ```yaml preflight block checks the latest ```yaml program against the
 * latest ```yaml policy (the codes it must report), and every ```yaml run block runs that program
 * under that policy end to end (scripted answers, stub tools, expected status, outcome, path and
 * the rule of a rejected action). So the policy reference's examples behave as the text says.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  hashJson,
  loadPolicy,
  loadProgram,
  policyGuardGlobals,
  pureHasher,
  validatePolicy,
  validateProgram,
  verifyBundle,
  type PolicySnapshot,
  type Program,
} from '@nano-vm/kernel';
import {
  FixedClock,
  SeededIds,
  ScriptedModel,
  ToolRegistry,
  nodeHasher,
  parseModelScript,
  runProgram,
} from '../src/internal.js';

const doc = readFileSync(new URL('../../../docs/policy.md', import.meta.url), 'utf8');

/** A `preflight` block lists the codes the check must report. */
interface PreflightSpec {
  expect: string[];
}

/** A `run` block: the run's input, scripted answers and tool results, and what must come of it. */
interface RunSpec {
  input: unknown;
  answers?: Record<string, unknown>;
  tools?: Record<string, unknown[]>;
  expect: { status: string; outcome?: string | null; path: string[]; rejected?: string };
}

type Block = { line: number; program: Program; policy: PolicySnapshot } & (
  { kind: 'preflight'; spec: PreflightSpec } | { kind: 'run'; spec: RunSpec }
);

function blocks(): Block[] {
  const lines = doc.split('\n');
  const out: Block[] = [];
  let program: Program | undefined;
  let policy: PolicySnapshot | undefined;
  for (let i = 0; i < lines.length; i++) {
    const m = /^```yaml (program|policy|preflight|run)$/.exec(lines[i]!.trim());
    if (!m) continue;
    const end = lines.indexOf('```', i + 1);
    const text = lines.slice(i + 1, end).join('\n');
    if (m[1] === 'program') {
      const r = loadProgram(text);
      expect(r.issues, `program at line ${i + 1}`).toEqual([]);
      program = r.program;
    } else if (m[1] === 'policy') {
      const r = loadPolicy(text);
      expect(r.issues, `policy at line ${i + 1}`).toEqual([]);
      policy = r.policy;
    } else
      out.push({ kind: m[1] as Block['kind'], line: i + 1, program: program!, policy: policy!, spec: parse(text) });
    i = end;
  }
  return out;
}

function stubTools(results: Record<string, unknown[]> = {}): { tools: ToolRegistry; calls: string[] } {
  const calls: string[] = [];
  const tools = new ToolRegistry(
    Object.entries(results).map(([name, list]) => {
      let n = 0;
      return { name, run: async () => (calls.push(name), list[Math.min(n++, list.length - 1)]) };
    }),
  );
  return { tools, calls };
}

const all = blocks();

describe('docs/policy.md', () => {
  it('has preflight and run blocks, including a blocked run and a refused program', () => {
    expect(all.filter((b) => b.kind === 'run').length).toBeGreaterThanOrEqual(3);
    expect(all.some((b) => b.kind === 'run' && b.spec.expect.outcome === 'POLICY_BLOCKED')).toBe(true);
    expect(all.some((b) => b.kind === 'preflight' && b.spec.expect.length > 0)).toBe(true);
  });

  it.each(all.filter((b) => b.kind === 'preflight').map((b) => [b.line, b] as const))(
    'preflight at line %i reports what the text says',
    (_line, b) => {
      const issues = [
        ...validateProgram(b.program, { guardGlobals: policyGuardGlobals(b.policy) }),
        ...validatePolicy(b.program, b.policy, { programHash: hashJson(pureHasher, b.program) }),
      ];
      expect(issues.map((i) => i.code).sort()).toEqual([...b.spec.expect].sort());
    },
  );

  it.each(all.filter((b) => b.kind === 'run').map((b) => [b.line, b] as const))(
    'run at line %i behaves as documented',
    async (_line, b) => {
      const model = new ScriptedModel(parseModelScript(JSON.stringify({ answers: b.spec.answers ?? {} }), 'docs'));
      const { tools, calls } = stubTools(b.spec.tools);
      const r = await runProgram({
        program: b.program,
        input: b.spec.input,
        model,
        tools,
        policy: b.policy,
        clock: new FixedClock(),
        ids: new SeededIds(nodeHasher),
      });
      expect({ status: r.status, outcome: r.outcome }).toEqual({
        status: b.spec.expect.status,
        outcome: b.spec.expect.outcome,
      });
      expect(r.receipt.path).toEqual(b.spec.expect.path);
      if (b.spec.expect.rejected !== undefined) {
        expect(r.receipt.rejected_transitions.map((t) => t.rule)).toEqual([b.spec.expect.rejected]);
        expect(calls).not.toContain('wire_transfer');
      }
      expect(verifyBundle(r.bundle, pureHasher)).toMatchObject({ ok: true });
    },
  );
});
