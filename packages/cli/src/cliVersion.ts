import { readFileSync } from 'node:fs';

/** The version of this nano-vm command: the `version` of packages/cli/package.json (`nano-vm -V`). */
export const CLI_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
