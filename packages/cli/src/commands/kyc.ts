import { NanoVmError } from '@nano-vm/kernel';
import { EXIT } from '../exitCodes.js';
import { modelFromSpec } from '../inputs.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

/** The simulator's own store by default: its runs stay apart from `nano-vm run`'s. */
export const DEFAULT_KYC_STORE = 'sqlite:./.nano-vm/kyc.db';

export const KYC = defineCommand({
  name: 'kyc',
  summary: 'Starts the KYC Governance Simulator (web app and HTTP API) on 127.0.0.1.',
  args: '',
  options: {
    port: { type: 'string', default: '4173', value: '<n>', description: 'the port to listen on (0: any free port)' },
    host: {
      type: 'string',
      default: '127.0.0.1',
      value: '<address>',
      description: 'the address to bind; the simulator has no authentication, so keep it on loopback',
    },
    store: {
      type: 'string',
      default: DEFAULT_KYC_STORE,
      value: '<spec>',
      description: 'sqlite:<path> (runs, waiting approvals included, survive a restart) or memory:',
    },
    model: {
      type: 'string',
      value: '<spec>',
      description:
        "the review step's model: openai:<model> | anthropic:<model> | a fallback chain (docs/models.md). Default: the scripted reviewer (deterministic, labelled scripted)",
    },
  },
  run: kycCommand,
});
export const KYC_USAGE = usageText(KYC);

export async function kycCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(KYC, argv);
  if (positionals.length) throw new NanoVmError('E_USAGE', KYC_USAGE);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new NanoVmError('E_USAGE', `--port must be an integer from 0 to 65535, not "${values.port}"\n${KYC_USAGE}`);
  const spec = values.store as string;
  const m = /^sqlite:(.+)$/.exec(spec);
  if (spec !== 'memory:' && !m)
    throw new NanoVmError('E_STORE_SPEC', `store "${spec}" must be sqlite:<path> or memory:`);
  const model = typeof values.model === 'string' ? modelFromSpec(values.model) : undefined;
  // Loaded here, not at start-up: the other commands do not pay for the server's dependencies.
  const { startServer } = await import('@nano-vm/kyc');
  const server = await startServer({
    store: m ? m[1]! : ':memory:',
    port,
    host: values.host as string,
    ...(model && { model }),
  });
  const sim = server.simulator;
  process.stdout.write(
    `KYC Governance Simulator on ${server.url}/\n` +
      `  program ${sim.kyc.program.id} ${sim.kyc.programHash.slice(0, 12)}…, policy ${sim.kyc.policy.id} ${sim.kyc.policyHash.slice(0, 12)}…\n` +
      `  model ${sim.modelInfo.label}; store ${spec}\n` +
      `  screening list ${sim.kyc.fixtures.sanctions.version} and media corpus ${sim.kyc.fixtures.media.version} are illustrative fixtures\n` +
      `Press Ctrl-C to stop.\n`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return EXIT.OK;
}
