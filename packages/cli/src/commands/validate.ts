import { NanoVmError } from '@nano-vm/kernel';
import { EXIT } from '../exitCodes.js';
import { loadProgramFile } from '../inputs.js';
import { loadRunTools, withCleanup, type Cleanup } from '../gatewayOption.js';
import { loadPolicyFile } from '../policyFile.js';
import { renderIssues } from '../render.js';
import { resolveTarget } from '../target.js';
import { defineCommand, GATEWAY_OPTION, parseCommandArgs, usageText } from '../commandSpec.js';

export const VALIDATE = defineCommand({
  name: 'validate',
  summary:
    'Checks a program before any run (schema, graph, guards, projections; under a policy, its pre-flight): exit 0 with no errors, 1 otherwise.',
  args: '<program file | example dir>',
  options: {
    tools: {
      type: 'string',
      value: '<module>',
      description:
        'also check tool names and arguments against this tools module. An example directory defaults to its tools.mjs',
    },
    gateway: GATEWAY_OPTION,
    policy: {
      type: 'string',
      value: '<file>',
      description:
        'also check the program against this policy (docs/policy.md). An example directory defaults to its policy.yaml',
    },
    json: { type: 'boolean', default: false, description: 'one object: {file, valid, tools_checked, policy, issues}' },
  },
  run: validateCommand,
});
export const VALIDATE_USAGE = usageText(VALIDATE);

export function validateCommand(argv: string[]): Promise<number> {
  return withCleanup((cleanup) => validateWith(argv, cleanup));
}

async function validateWith(argv: string[], cleanup: Cleanup): Promise<number> {
  const { values, positionals } = parseCommandArgs(VALIDATE, argv);
  const target = positionals[0];
  if (!target || positionals.length > 1) throw new NanoVmError('E_USAGE', VALIDATE_USAGE);
  const { programFile: file = target, toolsFile, policyFile } = resolveTarget(target, values);
  const tools = toolsFile || values.gateway ? await loadRunTools(toolsFile, values.gateway, cleanup) : undefined;
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
