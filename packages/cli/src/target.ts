/**
 * What a command works with: a program file or an example directory, and the model, tools and
 * policy for it. An option given on the command line always wins over the example directory's file.
 */
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
