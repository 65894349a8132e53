import { extname } from 'node:path';
import {
  JsonTextError,
  loadProgram,
  locateIssues,
  NanoVmError,
  parseJsonText,
  validateProgram,
  type Issue,
} from '@nano-vm/kernel';
import { programText } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { readText } from '../inputs.js';
import { checkOutputFile, writeFileAtomic } from '../outputFile.js';
import { renderIssues } from '../render.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const IMPORT = defineCommand({
  name: 'import',
  summary:
    'Converts a program of llm-nano-vm v0.8 (the Python original, JSON) into a nano-vm program, reporting as warnings, each at its place, what it could not carry over as it was (docs/import.md). Exit 0 when the converted program passes the validator, 1 when it does not (it is still written, to be fixed).',
  args: '<file.json>',
  options: {
    out: {
      type: 'string',
      short: 'o',
      value: '<program.yaml | program.json>',
      description:
        'write the converted program there, atomically (JSON for a .json name, else YAML); without it, YAML to standard output',
    },
    json: {
      type: 'boolean',
      default: false,
      description:
        'one object: {file, program, warnings, issues, valid, out?} (warnings and issues with code, path, line, col, message)',
    },
  },
  run: importCommand,
});
export const IMPORT_USAGE = usageText(IMPORT);

export async function importCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(IMPORT, argv);
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new NanoVmError('E_USAGE', IMPORT_USAGE);
  if (values.out) checkOutputFile(values.out, 'program');
  const text = readText(file, 'v0.8 program');
  let doc: unknown;
  try {
    doc = parseJsonText(text);
  } catch (e) {
    if (e instanceof JsonTextError)
      throw new NanoVmError(
        e.code,
        `${file} is not JSON: ${e.detail} at byte ${e.offset} (an llm-nano-vm v0.8 program is a JSON document)`,
      );
    throw e;
  }
  // Positions (line:col) for the JSON pointers the converter reports.
  const { sourceMap } = loadProgram(text, { format: 'json', file });
  // Loaded only when asked for: the MCP package is a large import.
  const { importV08 } = await import('@nano-vm/mcp');
  let converted: ReturnType<typeof importV08>;
  try {
    converted = importV08(doc);
  } catch (e) {
    if (e instanceof NanoVmError && e.location?.path !== undefined) {
      const [placed] = locateIssues(
        [{ code: e.code, severity: 'error', message: e.message, path: e.location.path }],
        sourceMap,
        file,
      );
      const where = placed?.line !== undefined ? `${file}:${placed.line}:${placed.col}` : file;
      throw new NanoVmError(e.code, `${where}: ${e.message}`, { location: { ...e.location, file } });
    }
    throw e;
  }
  const warnings = locateIssues(
    converted.warnings.map((w): Issue => ({
      code: w.code,
      severity: 'warning',
      message: w.message,
      path: w.path,
      ...(w.step ? { step: w.step } : {}),
    })),
    sourceMap,
    file,
  );
  // The converted program is checked as any program is before a run.
  const issues = validateProgram(converted.program).filter((i) => i.severity === 'error');
  const valid = issues.length === 0;
  const outText = programText(converted.program, {
    format: values.out && extname(values.out).toLowerCase() === '.json' ? 'json' : 'yaml',
    header: [
      `Imported from ${file} (llm-nano-vm v0.8) by nano-vm import: ${warnings.length} warning(s), see docs/import.md`,
    ],
  });
  if (values.out) writeFileAtomic(values.out, outText);
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ file, program: converted.program, warnings, issues, valid, ...(values.out ? { out: values.out } : {}) })}\n`,
    );
  } else {
    if (!values.out) process.stdout.write(outText);
    if (warnings.length)
      process.stderr.write(`warnings (what was not carried over as it was):\n${renderIssues(warnings)}\n`);
    if (!valid) process.stderr.write(`the converted program does not pass the validator:\n${renderIssues(issues)}\n`);
    else if (values.out) process.stderr.write(`wrote ${values.out}\n`);
  }
  return valid ? EXIT.OK : EXIT.FAILED;
}
