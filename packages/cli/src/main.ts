#!/usr/bin/env node
import { NanoVmError } from '@nano-vm/kernel';
import { CLI_VERSION } from './cliVersion.js';
import { commandHelp } from './commandSpec.js';
import { findCommand } from './commandTable.js';
import { exitWithError } from './errorExit.js';
import { EXIT } from './exitCodes.js';
import { installExitGuard, track } from './exitGuard.js';
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

/**
 * A reader that goes away (`nano-vm run … | head -c 100`) closes stdout: writes then fail with
 * EPIPE. That is the reader's choice, not an error of the command: later output is dropped
 * quietly and the command still finishes its work (a run is not left halfway), with its own exit
 * status. Without a listener the 'error' event would crash the process with a stack.
 */
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') process.exitCode ||= EXIT.FAILED;
  });

const args = process.argv.slice(2);
installExitGuard(args.includes('--json'));
const commandWork = track(`the command "nano-vm ${args.join(' ')}"`, undefined, true);
main(args)
  .then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => exitWithError(e, args.includes('--json')),
  )
  .finally(() => commandWork.done());
