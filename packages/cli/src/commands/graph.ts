import { parseArgs } from 'node:util';
import { GRAPH_FORMATS, NanoVmError, programGraph, type GraphFormat } from '@nano-vm/kernel';
import { readAnalysisTarget } from '../analysisTarget.js';
import { EXIT } from '../exitCodes.js';

export const GRAPH_USAGE =
  'usage: nano-vm graph <program file | example dir> [--format mermaid|dot] [--policy policy.yaml]';

export async function graphCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { format: { type: 'string', default: 'mermaid' }, policy: { type: 'string' } },
  });
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
