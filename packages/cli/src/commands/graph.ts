import { GRAPH_FORMATS, NanoVmError, programGraph, type GraphFormat } from '@nano-vm/kernel';
import { readAnalysisTarget } from '../analysisTarget.js';
import { EXIT } from '../exitCodes.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const GRAPH = defineCommand({
  name: 'graph',
  summary: 'Draws the program as a Mermaid or Graphviz DOT diagram on stdout.',
  args: '<program file | example dir>',
  options: {
    format: { type: 'string', default: 'mermaid', value: '<mermaid | dot>', description: 'the diagram format' },
    policy: {
      type: 'string',
      value: '<file>',
      description:
        'read only so that guards reading policy.thresholds type-check. An example directory defaults to its policy.yaml',
    },
  },
  run: graphCommand,
});
export const GRAPH_USAGE = usageText(GRAPH);

export async function graphCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(GRAPH, argv);
  const target = positionals[0];
  if (target === undefined || positionals.length > 1) throw new NanoVmError('E_USAGE', GRAPH_USAGE);
  const format = values.format as GraphFormat;
  if (!GRAPH_FORMATS.includes(format))
    throw new NanoVmError(
      'E_USAGE',
      `unknown format "${values.format}": use ${GRAPH_FORMATS.join(' or ')}\n${GRAPH_USAGE}`,
    );
  // The policy is read only so that guards reading policy.thresholds type-check; it draws nothing.
  const { program } = readAnalysisTarget(target, values.policy);
  process.stdout.write(programGraph(program, format));
  return EXIT.OK;
}
