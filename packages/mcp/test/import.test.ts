/**
 * importV08 as a function (what the MCP server's run_program calls on an inline v0.8 program):
 * condition translation, loops bounded for the validator, and every converted program valid.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NanoVmError, validateProgram, type ConditionStep } from '@nano-vm/kernel';
import { describe, expect, it } from 'vitest';
import { importV08 } from '../src/index.js';

const V08 = join(new URL('.', import.meta.url).pathname, 'fixtures/v08');

const guard = (condition: string) => {
  const { program, warnings } = importV08({
    name: 'g',
    steps: [
      { id: 'ask', type: 'llm', prompt: 'answer', output_key: 'decision', allowed_outputs: ['yes', 'no'] },
      { id: 'gate', type: 'condition', condition, then: 'a', otherwise: 'b' },
      { id: 'a', type: 'tool', tool: 't' },
      { id: 'b', type: 'tool', tool: 't' },
    ],
  });
  const step = program.steps.find((s) => s.id === 'gate') as ConditionStep;
  return { when: step.cases[0]!.when, warnings: warnings.filter((w) => w.path === '/steps/1/condition'), program };
};

describe('importV08', () => {
  it('converts every fixture into a program the validator accepts', () => {
    const files = readdirSync(V08).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const f of files) {
      const { program } = importV08(JSON.parse(readFileSync(join(V08, f), 'utf8')));
      expect(
        validateProgram(program).filter((i) => i.severity === 'error'),
        f,
      ).toEqual([]);
    }
  });

  it.each([
    ["$decision == 'yes'", 'steps.ask.output == "yes"', 0],
    ["$decision != 'no' and $score > 3", '(steps.ask.output != "no" && input.score > 3)', 0],
    ["'ye' in $decision", 'steps.ask.output.contains("ye")', 0],
    ["'ye' not in $decision", '!steps.ask.output.contains("ye")', 0],
    ["'yes' in '$decision'", 'steps.ask.output.contains("yes")', 1],
    ['$approved', 'input.approved == true', 1],
    ["$ask.output == 'yes' or $flag == False", '(steps.ask.output == "yes" || input.flag == false)', 0],
  ])('translates %s', (condition, when, notes) => {
    const g = guard(condition);
    expect(g.when).toBe(when);
    expect(g.warnings).toHaveLength(notes);
    expect(validateProgram(g.program).filter((i) => i.severity === 'error')).toEqual([]);
  });

  it.each(["len('$decision') > 3", "$decision >= 'a'", "'$decision'.lower() == 'yes'", 'approved'])(
    'fails closed on %s, with a warning',
    (condition) => {
      const g = guard(condition);
      expect(g.when).toBe('false');
      expect(g.warnings[0]!.message).toContain('could not be translated');
      expect(g.program.steps.find((s) => s.kind === 'end' && s.outcome === 'UNTRANSLATED_CONDITION')).toBeDefined();
      expect(validateProgram(g.program).filter((i) => i.severity === 'error')).toEqual([]);
    },
  );

  it('bounds a loop with max_visits (from max_steps) so the validator accepts it', () => {
    const { program, warnings } = importV08({
      name: 'loop',
      max_steps: 12,
      steps: [
        { id: 'draft', type: 'llm', prompt: 'draft', allowed_outputs: ['good', 'bad'] },
        { id: 'check', type: 'condition', condition: "$draft.output == 'bad'", then: 'redo', otherwise: 'ship' },
        { id: 'redo', type: 'tool', tool: 'note', next_step: 'draft' },
        { id: 'ship', type: 'tool', tool: 'ship' },
      ],
    });
    expect(program.steps.find((s) => s.id === 'draft')!.max_visits).toBe(12);
    expect(warnings.some((w) => w.message.includes('max_visits'))).toBe(true);
    expect(validateProgram(program).filter((i) => i.severity === 'error')).toEqual([]);
  });

  it('refuses what is not a v0.8 program with a code and a pointer', () => {
    const code = (doc: unknown) => {
      try {
        importV08(doc);
      } catch (e) {
        return [(e as NanoVmError).code, (e as NanoVmError).location?.path];
      }
      return ['accepted'];
    };
    expect(code('steps')).toEqual(['E_IMPORT_INVALID', '']);
    expect(code({ format: 'nano-vm.program/v1' })).toEqual(['E_IMPORT_VERSION', '/format']);
    expect(code({ steps: [{ id: 'a', type: 'human' }] })).toEqual(['E_IMPORT_STEP_TYPE', '/steps/0/type']);
    expect(code({ steps: [{ id: 'a', type: 'tool', tool: 't', on_error: 'ignore' }] })).toEqual([
      'E_IMPORT_INVALID',
      '/steps/0/on_error',
    ]);
    expect(code({ steps: [{ id: 'a', type: 'tool', tool: 't', allowed_outputs: ['x'] }] })).toEqual([
      'E_IMPORT_INVALID',
      '/steps/0/allowed_outputs',
    ]);
  });

  it('renames ids nano-vm cannot use, with a warning', () => {
    const { program, warnings } = importV08({ steps: [{ id: 'fetch-data', type: 'tool', tool: 't' }] });
    expect(program.steps[0]!.id).toBe('fetch_data');
    expect(program.id).toBe('unnamed');
    expect(warnings[0]!.message).toContain("becomes 'fetch_data'");
  });
});
