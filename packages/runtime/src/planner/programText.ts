/**
 * A drafted program as the text `nano-vm plan -o` writes: YAML 1.2 (what the loader reads back to
 * the same JSON value), or JSON for a `.json` file. The header comment names the planner run that
 * produced it, so the file leads back to its trace.
 */
import { stringify } from 'yaml';
import type { Program } from '@nano-vm/kernel';

export function programText(draft: Program, opts: { format: 'yaml' | 'json'; header?: string[] }): string {
  const program = readableOrder(draft);
  if (opts.format === 'json') return `${JSON.stringify(program, null, 2)}\n`;
  const header = (opts.header ?? []).map((l) => `# ${l}\n`).join('');
  // lineWidth 0: never fold long strings (a folded guard or prompt would still load, but reads worse).
  return header + stringify(program, { version: '1.2', lineWidth: 0, aliasDuplicateObjects: false });
}

/** Keys in the order docs/dsl.md writes them (a model's answer is stored in canonical, sorted order); the JSON value is unchanged. */
const ROOT_ORDER = [
  'format',
  'id',
  'version',
  'description',
  'input_schema',
  'sensitive',
  'subject',
  'budgets',
  'start',
  'steps',
];
const STEP_ORDER = [
  'id',
  'kind',
  'description',
  'prompt',
  'projection',
  'output',
  'tool',
  'args',
  'output_schema',
  'children',
  'max_concurrency',
  'event',
  'role',
  'cases',
  'else',
  'outcome',
  'failure',
  'timeout_ms',
  'on_timeout',
  'on_error',
  'max_visits',
  'on_exhausted',
  'next',
];

function ordered<T extends object>(value: T, order: readonly string[]): T {
  const rank = (k: string): number => (order.includes(k) ? order.indexOf(k) : order.length);
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => rank(a) - rank(b))) as T;
}

function readableOrder(program: Program): Program {
  const step = (s: Program['steps'][number]): Program['steps'][number] => {
    const out = ordered(s, STEP_ORDER);
    return out.kind === 'parallel' ? { ...out, children: out.children.map((c) => ordered(c, STEP_ORDER)) } : out;
  };
  return { ...ordered(program, ROOT_ORDER), steps: program.steps.map(step) };
}
