/**
 * Reading what the operator points the CLI at: program files, example directories, run inputs,
 * model specs and tools modules. Every failure is a NanoVmError with a code.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  decodeUtf8,
  hashJson,
  JsonTextError,
  loadProgram,
  MAX_BUNDLE_BYTES,
  MAX_DOCUMENT_DEPTH,
  MAX_JSON_DEPTH,
  MAX_PROGRAM_BYTES,
  MAX_VALUE_CHARS,
  parseJsonText,
  NanoVmError,
  policyGuardGlobals,
  validatePolicy,
  validateProgram,
  type Issue,
  type Program,
} from '@nano-vm/kernel';
import {
  ModelError,
  ToolRegistry,
  modelFromSpec as providerModelFromSpec,
  nodeHasher,
  toolsFromModule,
  type ModelPort,
} from '@nano-vm/runtime';
import type { LoadedPolicy } from './policyFile.js';

export interface LoadedProgram {
  /** Absent when the file does not parse or fails the structural check. */
  program?: Program;
  file: string;
  /** Validation issues (errors and warnings), located in the file. */
  issues: Issue[];
}

/** How much of a file is read, and the code for text that is not UTF-8 (docs/limits.md). */
export interface ReadLimits {
  maxBytes: number;
  /** The code for malformed UTF-8 (the reader's code for "cannot parse"). */
  notUtf8: 'E_PARSE' | 'E_JSON' | 'E_BUNDLE_FORMAT';
}

const PROGRAM_TEXT: ReadLimits = { maxBytes: MAX_PROGRAM_BYTES, notUtf8: 'E_PARSE' };

/**
 * A file's text. Larger than `limits.maxBytes`: E_TOO_LARGE before anything is parsed. Bytes
 * that are not UTF-8 are refused with their offset rather than read as U+FFFD.
 */
export function readText(file: string, what: string, limits: ReadLimits = PROGRAM_TEXT): string {
  let bytes: Buffer;
  try {
    const size = statSync(file).size;
    if (size > limits.maxBytes)
      throw new NanoVmError(
        'E_TOO_LARGE',
        `${what} ${file} is ${size} bytes, more than the ${limits.maxBytes} allowed (docs/limits.md)`,
      );
    bytes = readFileSync(file);
  } catch (e) {
    if (e instanceof NanoVmError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new NanoVmError(
      'E_FILE',
      `cannot read ${what} ${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  if (bytes.length > limits.maxBytes)
    throw new NanoVmError('E_TOO_LARGE', `${what} ${file} is more than ${limits.maxBytes} bytes (docs/limits.md)`);
  const decoded = decodeUtf8(bytes);
  if ('badOffset' in decoded)
    throw new NanoVmError(
      limits.notUtf8,
      `${what} ${file} is not UTF-8: malformed byte at offset ${decoded.badOffset}`,
      {
        location: { file },
      },
    );
  return decoded.text;
}

/**
 * A JSON file (input, event, bundle), read strictly: duplicate member names and text that is not
 * UTF-8 are E_JSON, with the byte offset; nesting deeper than `maxDepth` is E_TOO_DEEP and a file
 * larger than `maxBytes` E_TOO_LARGE (docs/limits.md).
 */
export function readJson(
  file: string,
  what: string,
  { maxDepth = MAX_JSON_DEPTH, maxBytes = MAX_VALUE_CHARS }: { maxDepth?: number; maxBytes?: number } = {},
): unknown {
  const text = readText(file, what, { maxBytes, notUtf8: 'E_JSON' });
  try {
    return parseJsonText(text, { maxDepth });
  } catch (e) {
    if (!(e instanceof JsonTextError)) throw e;
    if (e.code === 'E_JSON')
      throw new NanoVmError('E_JSON', `${what} ${file} is not valid JSON: ${e.message}`, { location: { file } });
    throw new NanoVmError(e.code, `${what} ${file}: ${e.message} (docs/limits.md)`, { location: { file } });
  }
}

/** Parse + structural check; throws a NanoVmError carrying located issues when the file is not a program. With a policy, also the pre-flight against it (docs/policy.md). */
export function loadProgramFile(file: string, tools?: ToolRegistry, policy?: LoadedPolicy): LoadedProgram {
  return checkProgramText(readText(file, 'program'), file, extname(file) === '.json' ? 'json' : 'yaml', tools, policy);
}

/** What `loadProgramFile` does, for program text that is not (yet) in a file; `file` names it in issues. */
export function checkProgramText(
  text: string,
  file: string,
  format: 'yaml' | 'json',
  tools?: ToolRegistry,
  policy?: LoadedPolicy,
): LoadedProgram {
  const loaded = loadProgram(text, { file, format });
  if (!loaded.program) return { file, issues: loaded.issues };
  const issues = [
    ...loaded.issues,
    ...validateProgram(loaded.program, {
      ...(tools ? { tools: tools.describe() } : {}),
      ...(loaded.sourceMap ? { sourceMap: loaded.sourceMap } : {}),
      file,
      ...(policy ? { guardGlobals: policyGuardGlobals(policy.policy) } : {}),
    }),
  ];
  if (policy) {
    const at = {
      programHash: hashJson(nodeHasher, loaded.program),
      programFile: file,
      policyFile: policy.file,
      ...(loaded.sourceMap ? { programSourceMap: loaded.sourceMap } : {}),
      ...(policy.sourceMap ? { policySourceMap: policy.sourceMap } : {}),
    };
    issues.push(...validatePolicy(loaded.program, policy.policy, at));
  }
  return { program: loaded.program, file, issues };
}

export interface ExampleLayout {
  dir: string;
  name: string;
  programFile: string;
  /** [case name, input file] in sorted order. */
  inputs: [string, string][];
  modelFile?: string;
  toolsFile?: string;
  policyFile?: string;
}

export function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The example layout: program.yaml|json, input.json or inputs/*.json, model.yaml, tools.mjs|js, policy.yaml|json. */
export function exampleLayout(dir: string): ExampleLayout {
  const pick = (...names: string[]) => names.map((n) => join(dir, n)).find((p) => existsSync(p));
  const programFile = pick('program.yaml', 'program.yml', 'program.json');
  if (!programFile) throw new NanoVmError('E_EXAMPLE_LAYOUT', `${dir} has no program.yaml or program.json`);
  const inputs: [string, string][] = [];
  const single = pick('input.json');
  if (single) inputs.push(['input', single]);
  const inputsDir = join(dir, 'inputs');
  if (isDirectory(inputsDir))
    for (const f of readdirSync(inputsDir)
      .filter((f) => f.endsWith('.json'))
      .sort())
      inputs.push([basename(f, '.json'), join(inputsDir, f)]);
  const layout: ExampleLayout = { dir, name: basename(resolve(dir)), programFile, inputs };
  const modelFile = pick('model.yaml', 'model.yml');
  if (modelFile) layout.modelFile = modelFile;
  const toolsFile = pick('tools.mjs', 'tools.js');
  if (toolsFile) layout.toolsFile = toolsFile;
  const policyFile = pick('policy.yaml', 'policy.yml', 'policy.json');
  if (policyFile) layout.policyFile = policyFile;
  return layout;
}

export async function loadTools(file: string | undefined): Promise<ToolRegistry> {
  if (!file) return new ToolRegistry();
  const abs = resolve(file);
  if (!existsSync(abs)) throw new NanoVmError('E_TOOLS_MODULE', `tools module ${file} does not exist`);
  const limit = toolsLoadTimeoutMs();
  let mod: Record<string, unknown>;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // A module whose top-level await never settles would leave the import pending for ever (and,
  // with nothing else to wait for, let the process end silently): it gets a bounded time to load.
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new NanoVmError(
            'E_TOOLS_MODULE',
            `tools module ${file} did not finish loading within ${limit} ms (a top-level await that does not settle?); nothing was run. Set NANO_VM_TOOLS_TIMEOUT_MS to allow more time`,
          ),
        ),
      limit,
    );
  });
  try {
    mod = (await Promise.race([import(pathToFileURL(abs).href), timedOut])) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof NanoVmError) throw e;
    throw new NanoVmError('E_TOOLS_MODULE', `cannot load tools module ${file}: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  try {
    return toolsFromModule(mod, file);
  } catch (e) {
    if (e instanceof NanoVmError) throw e;
    throw new NanoVmError('E_TOOLS_MODULE', (e as Error).message, { cause: e });
  }
}

/** How long a tools module may take to load: NANO_VM_TOOLS_TIMEOUT_MS, default 10 s. */
export const DEFAULT_TOOLS_TIMEOUT_MS = 10_000;

function toolsLoadTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.NANO_VM_TOOLS_TIMEOUT_MS;
  if (v === undefined || v === '') return DEFAULT_TOOLS_TIMEOUT_MS;
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < 1)
    throw new NanoVmError(
      'E_USAGE',
      `NANO_VM_TOOLS_TIMEOUT_MS must be a positive whole number of milliseconds, not "${v}"`,
    );
  return n;
}

/** Whether any step of the program (a parallel step's children included) calls a model. */
export function needsModel(program: Program): boolean {
  return program.steps.some(
    (s) => s.kind === 'llm' || (s.kind === 'parallel' && s.children.some((c) => c.kind === 'llm')),
  );
}

/**
 * The model of a run whose program has no llm step and was given no --model: never called. Its
 * id, `none`, is what the genesis event and the receipt record.
 */
export const NO_MODEL: ModelPort = {
  id: 'none',
  scripted: false,
  complete: () => Promise.reject(new ModelError('E_MODEL_SPEC', 'no model was given (pass --model)')),
};

/**
 * The model a spec names — `scripted:<file>`, `openai:<model>`, `anthropic:<model>`, a fallback
 * chain `a,b` — built by the runtime, configured from the environment (docs/models.md). Spec and
 * configuration problems (unknown provider, missing API key, an unreadable script) are refused
 * here, before any run starts.
 */
export function modelFromSpec(spec: string, caseName?: string): ModelPort {
  return providerModelFromSpec(spec, { env: process.env, ...(caseName !== undefined ? { caseName } : {}) });
}
