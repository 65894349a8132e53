/**
 * What a command works with: a program file or an example directory, and the model, tools and
 * policy for it. An option given on the command line always wins over the example directory's file.
 */
import { basename } from 'node:path';
import { NanoVmError } from '@nano-vm/kernel';
import { exampleLayout, isDirectory, type ExampleLayout } from './inputs.js';

export interface TargetOptions {
  model?: string;
  tools?: string;
  policy?: string;
}

export interface Target {
  /** The example directory's layout, when the path names a directory. */
  layout?: ExampleLayout;
  /** The example directory's program, else the path itself; absent when no path was given. */
  programFile?: string;
  /** --model, else the example's model.yaml as `scripted:<file>`. */
  modelSpec?: string;
  /** --tools, else the example's tools module. */
  toolsFile?: string;
  /** --policy, else the example's policy file. */
  policyFile?: string;
}

/**
 * Resolves `path` (a program file or an example directory) and the --model, --tools and --policy
 * options. With `directoryUsage`, the path may only be an example directory: anything else is
 * refused with E_USAGE and that usage line.
 */
export function resolveTarget(path: string | undefined, options: TargetOptions, directoryUsage?: string): Target {
  const layout = path !== undefined && isDirectory(path) ? exampleLayout(path) : undefined;
  if (path !== undefined && !layout && directoryUsage !== undefined)
    throw new NanoVmError('E_USAGE', `${path} is not an example directory\n${directoryUsage}`);
  return {
    layout,
    programFile: layout?.programFile ?? path,
    modelSpec: options.model ?? (layout?.modelFile ? `scripted:${layout.modelFile}` : undefined),
    toolsFile: options.tools ?? layout?.toolsFile,
    policyFile: options.policy ?? layout?.policyFile,
  };
}

/**
 * The inputs a command runs or submits, as [case name, file]: the `--input` file, or without one
 * every input of the example directory (E_EXAMPLE_LAYOUT when it has none), or none at all (`{}`).
 */
export function targetInputs(
  target: string,
  layout: ExampleLayout | undefined,
  input: string | undefined,
): [string, string | undefined][] {
  if (layout && !input) {
    if (layout.inputs.length === 0)
      throw new NanoVmError('E_EXAMPLE_LAYOUT', `${target} has no input.json or inputs/*.json; pass --input`);
    return layout.inputs;
  }
  return [[input ? basename(input).replace(/\.json$/, '') : 'input', input]];
}
