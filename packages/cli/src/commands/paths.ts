import { DEFAULT_MAX_PATHS, NanoVmError, pathsText, programPaths, type PathsReport } from '@nano-vm/kernel';
import { readAnalysisTarget, type AnalysisTarget } from '../analysisTarget.js';
import { issueJson } from '../errorExit.js';
import { EXIT } from '../exitCodes.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const PATHS = defineCommand({
  name: 'paths',
  summary:
    'Lists every path a run can take from the start step to each way it can end, with the guards along it, and what cannot be reached.',
  args: '<program file | example dir>',
  options: {
    policy: {
      type: 'string',
      value: '<file>',
      description:
        'also show the required steps each path passes and where the policy would block it. An example directory defaults to its policy.yaml',
    },
    'max-paths': {
      type: 'string',
      value: 'N',
      defaultText: String(DEFAULT_MAX_PATHS),
      description: 'stop the listing after N paths (at most 100000)',
    },
    json: { type: 'boolean', default: false, description: 'one nano-vm.paths/v1 object' },
  },
  run: pathsCommand,
});
export const PATHS_USAGE = usageText(PATHS);

/** Upper bound for --max-paths: the listing is held in memory and printed whole. */
const MAX_PATHS_LIMIT = 100_000;

export async function pathsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(PATHS, argv);
  const target = positionals[0];
  if (target === undefined || positionals.length > 1) throw new NanoVmError('E_USAGE', PATHS_USAGE);
  const cap = values['max-paths'];
  const maxPaths = cap === undefined ? DEFAULT_MAX_PATHS : Number(cap);
  if (!/^\d+$/.test(cap ?? '1') || maxPaths < 1 || maxPaths > MAX_PATHS_LIMIT)
    throw new NanoVmError(
      'E_USAGE',
      `--max-paths must be a whole number from 1 to ${MAX_PATHS_LIMIT}, not "${cap}"\n${PATHS_USAGE}`,
    );
  const t = readAnalysisTarget(target, values.policy);
  const report = programPaths(t.program, { ...(t.policy ? { policy: t.policy.policy } : {}), maxPaths });
  if (values.json) process.stdout.write(JSON.stringify(pathsJson(t, report)) + '\n');
  else
    process.stdout.write(
      pathsText(t.program, report, {
        file: t.file,
        preflight: t.preflight,
        ...(t.policy ? { policyFile: t.policy.file } : {}),
      }),
    );
  const refused = t.preflight.some((i) => i.severity === 'error');
  return report.findings.length > 0 || refused ? EXIT.FAILED : EXIT.OK;
}

/** The --json document (docs/cli.md): the kernel's report, where it was read from, and the policy pre-flight. */
function pathsJson(t: AnalysisTarget, r: PathsReport): unknown {
  return {
    format: r.format,
    program: r.program,
    file: t.file,
    policy: r.policy,
    policy_file: t.policy?.file ?? null,
    start: r.start,
    max_paths: r.max_paths,
    complete: r.complete,
    paths: r.paths,
    outcomes: r.outcomes,
    findings: r.findings,
    preflight: t.preflight.map(issueJson),
  };
}
