// Writes packages/kernel/program.schema.json and policy.schema.json (the documents editors and
// users load) from PROGRAM_SCHEMA and POLICY_SCHEMA, the kernel's own values, so neither file is
// edited by hand. Run by `npm run build` after tsc; it reads the compiled kernel in dist/ (the
// kernel itself does no I/O). Tests hold each file to its value, and .ci/run fails when a clean
// clone's build changes a committed file (a regeneration that was not committed).
import { readFileSync, writeFileSync } from 'node:fs';

const kernel = new URL('..', import.meta.url);
const { PROGRAM_SCHEMA } = await import(new URL('dist/programSchema.js', kernel).href);
const { POLICY_SCHEMA } = await import(new URL('dist/policy.js', kernel).href);

for (const [name, schema] of [
  ['program.schema.json', PROGRAM_SCHEMA],
  ['policy.schema.json', POLICY_SCHEMA],
]) {
  const file = new URL(name, kernel);
  const text = `${JSON.stringify(schema, null, 2)}\n`;
  let old;
  try {
    old = readFileSync(file, 'utf8');
  } catch {
    old = undefined;
  }
  // Unchanged files are left alone, so a build does not touch their timestamps.
  if (old !== text) {
    writeFileSync(file, text);
    console.log(`wrote packages/kernel/${name}`);
  }
}
