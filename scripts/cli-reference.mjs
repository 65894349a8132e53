// Rewrites the command reference of docs/cli.md from the command table (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { withCliReference } from '../packages/cli/dist/cliReference.js';

const file = new URL('../docs/cli.md', import.meta.url);
const before = readFileSync(file, 'utf8');
const after = withCliReference(before);
if (after !== before) writeFileSync(file, after);
process.stdout.write(after === before ? 'docs/cli.md is up to date\n' : 'docs/cli.md: command reference rewritten\n');
