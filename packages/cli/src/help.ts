/** `nano-vm --help`: the commands of the table with their summaries (commandSpec.ts has one command's help). */
import { CLI_VERSION } from './cliVersion.js';
import { wrap } from './commandSpec.js';
import { COMMANDS } from './commandTable.js';

const EXIT_TEXT =
  'Exit codes: 0 ok (run: reached a terminal state), 1 invalid/failed check, 2 refused (bad program, input or arguments); docs/errors.md gives each error code its status.';
const DOCS_TEXT =
  'Docs: docs/cli.md, docs/dsl.md, docs/guards.md, docs/trace-format.md, docs/policy.md, docs/privacy.md, docs/models.md, docs/analyzer.md, docs/planner.md';

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return `nano-vm ${CLI_VERSION} — governed execution runtime for LLM workflows

usage: nano-vm <command> [arguments] [options]
       nano-vm <command> --help    the command's arguments and options (or nano-vm help <command>)
       nano-vm -V | --version      print the version
       nano-vm -h | --help         print this help

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}${wrap(c.summary, 100, ' '.repeat(2 + width))}`).join('\n')}

${wrap(EXIT_TEXT, 100, '  ', 0)}
${wrap(DOCS_TEXT, 100, '  ', 0)}
`;
}
