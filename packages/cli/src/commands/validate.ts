import { parseArgs } from 'node:util';
import { NanoVmError } from '@nano-vm/kernel';
import { EXIT } from '../exitCodes.js';
import { loadProgramFile, loadTools } from '../inputs.js';
import { loadPolicyFile } from '../policyFile.js';
import { renderIssues } from '../render.js';
import { resolveTarget } from '../target.js';

export const VALIDATE_USAGE =
  'usage: nano-vm validate <program file | example dir> [--tools <module>] [--policy policy.yaml] [--json]';

export async function validateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { tools: { type: 'string' }, policy: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const target = positionals[0];
  if (!target || positionals.length > 1) throw new NanoVmError('E_USAGE', VALIDATE_USAGE);
  const { programFile: file = target, toolsFile, policyFile } = resolveTarget(target, values);
  const tools = toolsFile ? await loadTools(toolsFile) : undefined;
  const policy = policyFile ? loadPolicyFile(policyFile) : undefined;
  const { program, issues } = loadProgramFile(file, tools, policy);
  const valid = !!program && !issues.some((i) => i.severity === 'error');
  if (values.json) {
    const out = issues.map((i) => ({
      code: i.code,
      severity: i.severity,
      step: i.step ?? null,
      message: i.message,
      line: i.line ?? null,
      col: i.col ?? null,
      path: i.path ?? null,
    }));
    process.stdout.write(
      JSON.stringify({ file, valid, tools_checked: !!tools, policy: policy?.file ?? null, issues: out }) + '\n',
    );
  } else {
    const errs = issues.filter((i) => i.severity === 'error').length;
    const warns = issues.length - errs;
    process.stdout.write(
      `${file}: ${valid ? 'valid' : 'INVALID'} (${errs} error${errs === 1 ? '' : 's'}, ${warns} warning${warns === 1 ? '' : 's'})${tools ? '' : ' — tools not checked (pass --tools)'}${policy ? ` — under policy ${policy.file}` : ''}\n`,
    );
    if (issues.length) process.stdout.write(renderIssues(issues) + '\n');
  }
  return valid ? EXIT.OK : EXIT.FAILED;
}
