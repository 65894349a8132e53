#!/usr/bin/env node
import { NanoVmError } from '@nano-vm/kernel';
import { CLI_VERSION } from './cliVersion.js';
import { commandHelp } from './commandSpec.js';
import { findCommand } from './commandTable.js';
import { exitWithError } from './errorExit.js';
import { EXIT } from './exitCodes.js';
import { mainHelp } from './help.js';

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const topic = cmd === 'help' && rest[0] !== undefined ? findCommand(rest[0]) : undefined;
  if (topic) {
    process.stdout.write(commandHelp(topic));
    return EXIT.OK;
  }
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(mainHelp());
    return cmd ? EXIT.OK : EXIT.REFUSED;
  }
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    process.stdout.write(`${CLI_VERSION}\n`);
    return EXIT.OK;
  }
  const command = findCommand(cmd);
  if (!command) throw new NanoVmError('E_USAGE', `unknown command "${cmd}"\n\n${mainHelp()}`);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(commandHelp(command));
    return EXIT.OK;
  }
  return command.run(rest);
}

const args = process.argv.slice(2);
main(args).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => exitWithError(e, args.includes('--json')),
);
