import { compileGuard, evaluateGuard, NanoVmError, parseJsonText } from '@nano-vm/kernel';
import { EXIT } from '../exitCodes.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const EXPR = defineCommand({
  name: 'expr',
  summary: 'Compiles and evaluates one guard (docs/guards.md) and explains its value.',
  args: "'<guard>'",
  options: {
    vars: { type: 'string', value: "'<json object>'", description: 'the values the guard reads, as one JSON object' },
    json: { type: 'boolean', default: false, description: 'one object: {value, cost, explain}, or {error}' },
  },
  run: exprCommand,
});
export const EXPR_USAGE = usageText(EXPR);

export async function exprCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(EXPR, argv);
  const source = positionals[0];
  if (source === undefined || positionals.length > 1) throw new NanoVmError('E_USAGE', EXPR_USAGE);
  let vars: Record<string, unknown> = {};
  if (values.vars !== undefined) {
    let parsed: unknown;
    try {
      parsed = parseJsonText(values.vars);
    } catch (e) {
      throw new NanoVmError('E_JSON', `--vars is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new NanoVmError('E_JSON', '--vars must be a JSON object of variables');
    vars = parsed as Record<string, unknown>;
  }
  const compiled = compileGuard(source);
  const result = compiled.ok ? evaluateGuard(compiled.guard, vars) : compiled;
  if (!result.ok) {
    const { code, message, column } = result.error;
    if (values.json) process.stdout.write(JSON.stringify({ error: { code, message, column } }) + '\n');
    else
      process.stdout.write(
        `${source}\n${' '.repeat(Math.max(0, column - 1))}^\n${code} (column ${column}): ${message}\n`,
      );
    return EXIT.FAILED;
  }
  if (values.json)
    process.stdout.write(JSON.stringify({ value: result.value, cost: result.cost, explain: result.explain }) + '\n');
  else {
    process.stdout.write(`${JSON.stringify(result.value)}\n`);
    for (const e of result.explain) process.stdout.write(`  ${e.expr} = ${JSON.stringify(e.value)}\n`);
  }
  return EXIT.OK;
}
