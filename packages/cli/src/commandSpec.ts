/**
 * What a command is, as data: its name, what it does, its arguments and its options with their
 * descriptions and defaults. The same entry feeds node:util parseArgs (the options), `nano-vm
 * --help`, `nano-vm <command> --help`, the usage line of E_USAGE, and the command reference in
 * docs/cli.md (cliReference.ts), so they cannot disagree.
 */
import { parseArgs } from 'node:util';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** The default parseArgs applies. */
  default?: string | boolean | string[];
  /** The value's placeholder in usage and help, e.g. `<file.json>` (string options). */
  value?: string;
  /** Shown in usage without brackets; the command refuses to run without it. */
  required?: boolean;
  /** How help and docs show the default, when `default` is not it (computed, or read from the environment). */
  defaultText?: string;
  /** One or two sentences: what the option does. */
  description: string;
}

export interface CommandSpec<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  name: string;
  /** One line: what the command does (`nano-vm --help` lists it). */
  summary: string;
  /** The positional arguments as usage shows them, e.g. `<bundle.json>`; empty when none. */
  args: string;
  options: O;
  run(argv: string[]): Promise<number>;
}

/** A command entry, with its options' types kept literal so parseArgs types their values. */
export function defineCommand<const O extends Record<string, OptionSpec>>(spec: CommandSpec<O>): CommandSpec<O> {
  return spec;
}

type ParsedCommandArgs<O extends Record<string, OptionSpec>> = ReturnType<
  typeof parseArgs<{ args: string[]; allowPositionals: true; strict: true; options: O }>
>;

/** Parses a command's arguments with its own option table (unknown options are E_USAGE, errorExit.ts). */
export function parseCommandArgs<const O extends Record<string, OptionSpec>>(
  spec: CommandSpec<O>,
  argv: string[],
): ParsedCommandArgs<O> {
  return parseArgs({ args: argv, allowPositionals: true, strict: true, options: spec.options });
}

const optionName = (name: string, o: OptionSpec): string =>
  `--${name}${o.type === 'string' ? ` ${o.value ?? '<value>'}` : ''}`;

/** `-o, --out <file>` as the option list shows it. */
export function optionLabel(name: string, o: OptionSpec): string {
  return `${o.short ? `-${o.short}, ` : ''}${optionName(name, o)}`;
}

/** How the default is shown, when there is one worth showing (a boolean is off unless given). */
export function defaultLabel(o: OptionSpec): string | undefined {
  if (o.defaultText !== undefined) return o.defaultText;
  if (o.default === undefined || typeof o.default === 'boolean') return undefined;
  if (Array.isArray(o.default)) return o.default.length ? o.default.join(',') : undefined;
  return o.default;
}

/** The command's synopsis in parts (`nano-vm verify`, `<bundle.json>`, `[--json]`): a line breaks only between parts. */
function synopsisParts(spec: CommandSpec): string[] {
  const parts = [`nano-vm ${spec.name}`, ...(spec.args ? [spec.args] : [])];
  for (const [name, o] of Object.entries(spec.options)) {
    const text = `${optionName(name, o)}${o.multiple ? '…' : ''}`;
    parts.push(o.required ? text : `[${text}]`);
  }
  return parts;
}

/** The command's synopsis: `nano-vm verify <bundle.json> [--json]`. */
export function synopsis(spec: CommandSpec): string {
  return synopsisParts(spec).join(' ');
}

const WIDTH = 100;

/** `parts` joined by spaces in lines of at most `width` characters, each line but the first after `indent` (counted). */
function wrapParts(parts: string[], width: number, indent: string, first = 0): string {
  const lines: string[] = [];
  let line = '';
  for (const part of parts) {
    const room = width - (lines.length ? indent.length : first);
    if (line && line.length + 1 + part.length > room) {
      lines.push(line);
      line = part;
    } else line = line ? `${line} ${part}` : part;
  }
  lines.push(line);
  return lines.join(`\n${indent}`);
}

/** Text wrapped at word boundaries, the first line starting at column `first`, the others after `indent`. */
export const wrap = (text: string, width: number, indent: string, first = indent.length): string =>
  wrapParts(text.split(/\s+/).filter(Boolean), width, indent, first);

/** The usage line of E_USAGE messages and of help, wrapped under the command's first argument. */
export function usageText(spec: CommandSpec): string {
  const head = 'usage: ';
  const indent = ' '.repeat(head.length + `nano-vm ${spec.name} `.length);
  return head + wrapParts(synopsisParts(spec), WIDTH, indent, head.length);
}

/** `nano-vm <command> --help`. */
export function commandHelp(spec: CommandSpec): string {
  const rows = [
    ...Object.entries(spec.options).map(([name, o]): [string, string] => {
      const d = defaultLabel(o);
      return [optionLabel(name, o), `${o.description}${d !== undefined ? ` (default: ${d})` : ''}`];
    }),
    ['-h, --help', 'print this help'] as [string, string],
  ];
  const col = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2);
  const pad = ' '.repeat(2 + col);
  const options = rows.map(([label, text]) =>
    label.length + 2 > col
      ? `  ${label}\n${pad}${wrap(text, WIDTH, pad)}`
      : `  ${label.padEnd(col)}${wrap(text, WIDTH, pad)}`,
  );
  return `${usageText(spec)}\n\n${wrap(spec.summary, WIDTH, '')}\n\nOptions:\n${options.join('\n')}\n`;
}

/** `--gateway <file>`: tools of other MCP servers (run, and what continues its runs). */
export const GATEWAY_OPTION = {
  type: 'string',
  value: '<file>',
  description:
    'MCP servers whose tools a tool step may name as <server>.<tool>: a YAML or JSON list of {name, command | url, args?, env?, cwd?, headers?, tools?, timeout_ms?} (docs/gateway.md). Each is started or reached before the run and stopped after it',
} as const satisfies OptionSpec;

/** The options of the commands that continue stored runs (resume, recover): what they continue with. */
export const CONTINUE_OPTIONS = {
  model: {
    type: 'string',
    value: '<spec>',
    description: 'the model to continue with (as for run). An example directory defaults to its model.yaml',
  },
  tools: {
    type: 'string',
    value: '<module>',
    description: 'the tools to continue with. An example directory defaults to its tools.mjs',
  },
  policy: {
    type: 'string',
    value: '<file>',
    description:
      'the policy in force now: a run whose genesis pinned another halts as POLICY_BLOCKED. An example directory defaults to its policy.yaml',
  },
  gateway: GATEWAY_OPTION,
} as const satisfies Record<string, OptionSpec>;
