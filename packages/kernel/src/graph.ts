/**
 * A diagram of a program (`nano-vm graph`), as Mermaid (renders in GitHub markdown) or Graphviz
 * DOT, read from the edge table. Steps are drawn by kind (stepKinds.ts), guards label their edges, end steps show
 * their outcome (failure ends in red), parallel children sit inside their parent, retries and
 * fallbacks are noted on their step, and the ways a run fails without an end step (an effect
 * without a fallback, max_visits without on_exhausted, a wait timeout without on_timeout) are
 * dashed edges to one "run fails" node.
 *
 * The output is a function of the program alone (declaration order, no hashing of maps), and every
 * text from the program is escaped for the format, so no guard, id or outcome can break the diagram.
 */
import { edgeTable, type Edge } from './edges.js';
import { NanoVmError } from './errors.js';
import type { Program, Step } from './program.js';
import { kindRules } from './stepKinds.js';
import { stepsOnCycles } from './validateGraph.js';

export type GraphFormat = 'mermaid' | 'dot';
export const GRAPH_FORMATS: readonly GraphFormat[] = ['mermaid', 'dot'];

export type Shape = 'llm' | 'tool' | 'condition' | 'wait' | 'outcome' | 'failure' | 'start' | 'run_failed';

export interface Node {
  id: string;
  shape: Shape;
  /** Lines of the label, plain text (escaped when written). */
  lines: string[];
}

export interface Cluster {
  id: string;
  title: string;
  children: Node[];
}

interface Arrow {
  from: string;
  to: string;
  label?: string;
  /** A way the run fails: drawn dashed. */
  failure?: boolean;
}

/** A step's item in the diagram: a node, or a cluster of child nodes (a parallel step). */
export type GraphItem = Node | Cluster;

/** The diagram, independent of the format. */
interface Diagram {
  title: string;
  items: GraphItem[];
  arrows: Arrow[];
}

const START = 'start';
const RUN_FAILED = 'run_failed';

export function programGraph(program: Program, format: GraphFormat): string {
  const diagram = diagramOf(program);
  switch (format) {
    case 'mermaid':
      return mermaid(diagram);
    case 'dot':
      return dot(diagram);
    default: {
      const _exhaustive: never = format;
      // Unreachable (the switch is exhaustive): only a bug, or a value from JS that skipped the types, gets here.
      throw new NanoVmError('E_INTERNAL', `graph: unknown format ${String(_exhaustive)}`);
    }
  }
}

function diagramOf(program: Program): Diagram {
  const table = edgeTable(program);
  const onCycle = stepsOnCycles(program);
  const nodeOf = new Map<string, string>();
  program.steps.forEach((s, i) => {
    if (!nodeOf.has(s.id)) nodeOf.set(s.id, `s${i}`);
  });
  const items: GraphItem[] = [{ id: START, shape: 'start', lines: ['start'] }];
  const arrows: Arrow[] = [];
  const start = table.start !== undefined ? nodeOf.get(table.start) : undefined;
  if (start !== undefined) arrows.push({ from: START, to: start });
  let fails = false;
  const failArrow = (from: string, label: string): void => {
    fails = true;
    arrows.push({ from, to: RUN_FAILED, label, failure: true });
  };

  program.steps.forEach((step, i) => {
    const id = `s${i}`;
    items.push(itemOf(step, id));
    for (const edge of table.at(i)) {
      const to = nodeOf.get(edge.to);
      if (to === undefined) continue;
      const label = edgeLabel(edge, step);
      arrows.push(label !== undefined ? { from: id, to, label } : { from: id, to });
    }
    // Only a step on a loop can be entered more than once.
    if (step.max_visits !== undefined && step.on_exhausted === undefined && onCycle[i] === 1)
      failArrow(id, `entered more than ${step.max_visits} times`);
    for (const end of kindRules(step).ends(step)) if (end.failsWith !== undefined) failArrow(id, end.failsWith);
  });
  if (fails) items.push({ id: RUN_FAILED, shape: 'run_failed', lines: ['run fails', 'status failed'] });
  return { title: program.id, items, arrows };
}

function itemOf(step: Step, id: string): GraphItem {
  const visits = step.max_visits !== undefined ? [`at most ${step.max_visits} visits`] : [];
  return kindRules(step).node(step, id, visits);
}

function edgeLabel(edge: Edge, step: Step): string | undefined {
  switch (edge.via) {
    case 'case':
      return edge.guard;
    case 'else':
      return 'else';
    case 'on_exhausted':
      return `after ${step.max_visits} visits`;
    case 'on_timeout':
    case 'next':
      return kindRules(step).edgeLabel(step, edge.via);
    default: {
      const _exhaustive: never = edge.via;
      // Unreachable (the switch is exhaustive): only a bug, or a value from JS that skipped the types, gets here.
      throw new NanoVmError('E_INTERNAL', `graph: unknown edge ${String(_exhaustive)}`);
    }
  }
}

// ---- Mermaid ----

/**
 * Text inside a quoted Mermaid label. Labels are HTML, and `#name;` is Mermaid's entity syntax: so
 * `#`, `&`, `<`, `>` and `"` become entities, as do `|` (ends an edge label) and the backtick
 * (starts a markdown string); a line break becomes `<br/>`.
 */
export function mermaidText(text: string): string {
  let out = '';
  for (const ch of text) {
    const entity = MERMAID_ENTITIES[ch];
    out += entity ?? ch;
  }
  return out.replace(/\r\n|\r|\n/g, '<br/>');
}

const MERMAID_ENTITIES: Record<string, string> = {
  '#': '#35;',
  '&': '#amp;',
  '<': '#lt;',
  '>': '#gt;',
  '"': '#quot;',
  '|': '#124;',
  '`': '#96;',
};

const MERMAID_SHAPES: Record<Shape, [string, string]> = {
  llm: ['(', ')'],
  tool: ['[[', ']]'],
  condition: ['{', '}'],
  wait: ['{{', '}}'],
  outcome: ['([', '])'],
  failure: ['([', '])'],
  start: ['((', '))'],
  run_failed: ['[/', '\\]'],
};

function mermaid(d: Diagram): string {
  const label = (lines: readonly string[]): string => `"${lines.map(mermaidText).join('<br/>')}"`;
  const node = (n: Node, indent: string): string => {
    const [open, close] = MERMAID_SHAPES[n.shape];
    return `${indent}${n.id}${open}${label(n.lines)}${close}`;
  };
  const out = ['flowchart TD', `  %% program ${d.title.replace(/[\r\n]/g, ' ')}`];
  const classes: Record<'outcome' | 'failure', string[]> = { outcome: [], failure: [] };
  for (const item of d.items) {
    if ('children' in item) {
      out.push(`  subgraph ${item.id}[${label([item.title])}]`);
      for (const c of item.children) out.push(node(c, '    '));
      out.push('  end');
      continue;
    }
    out.push(node(item, '  '));
    if (item.shape === 'outcome') classes.outcome.push(item.id);
    if (item.shape === 'failure' || item.shape === 'run_failed') classes.failure.push(item.id);
  }
  for (const a of d.arrows) {
    const arrow = a.failure === true ? '-.->' : '-->';
    out.push(`  ${a.from} ${arrow}${a.label !== undefined ? `|${label([a.label])}|` : ''} ${a.to}`);
  }
  out.push('  classDef outcome fill:#e8f5e9,stroke:#2e7d32,color:#1b5e20');
  out.push('  classDef failure fill:#ffebee,stroke:#c62828,color:#b71c1c');
  if (classes.outcome.length > 0) out.push(`  class ${classes.outcome.join(',')} outcome`);
  if (classes.failure.length > 0) out.push(`  class ${classes.failure.join(',')} failure`);
  return `${out.join('\n')}\n`;
}

// ---- Graphviz DOT ----

/**
 * A DOT quoted string: `"` and `\` are escaped (a backslash would otherwise start an escape such as
 * `\N`, the node's name), and a line break becomes `\n`.
 */
export function dotText(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\r\n|\r|\n/g, '\\n')}"`;
}

const DOT_SHAPES: Record<Shape, string> = {
  llm: 'shape=box, style="rounded"',
  tool: 'shape=box',
  condition: 'shape=diamond',
  wait: 'shape=hexagon',
  outcome: 'shape=box, style="rounded,filled", fillcolor="#e8f5e9", color="#2e7d32"',
  failure: 'shape=box, style="rounded,filled", fillcolor="#ffebee", color="#c62828"',
  start: 'shape=circle',
  run_failed: 'shape=box, style="filled,dashed", fillcolor="#ffebee", color="#c62828"',
};

function dot(d: Diagram): string {
  const label = (lines: readonly string[]): string => dotText(lines.join('\n'));
  const node = (n: Node, indent: string): string =>
    `${indent}${n.id} [${DOT_SHAPES[n.shape]}, label=${label(n.lines)}];`;
  const clusters = new Map<string, Cluster>();
  const out = [
    `digraph ${dotText(d.title)} {`,
    '  compound=true;',
    '  node [fontname="Helvetica", fontsize=11];',
    '  edge [fontname="Helvetica", fontsize=10];',
  ];
  for (const item of d.items) {
    if ('children' in item) {
      clusters.set(item.id, item);
      out.push(`  subgraph cluster_${item.id} {`, `    label=${label([item.title])};`, '    style="dashed";');
      for (const c of item.children) out.push(node(c, '    '));
      out.push('  }');
      continue;
    }
    out.push(node(item, '  '));
  }
  // An edge to or from a parallel step is drawn to or from its cluster's border (through its first child).
  const end = (id: string, head: boolean): [string, string] => {
    const cluster = clusters.get(id);
    return cluster === undefined ? [id, ''] : [cluster.children[0]!.id, `${head ? 'lhead' : 'ltail'}=cluster_${id}`];
  };
  for (const a of d.arrows) {
    const [from, ltail] = end(a.from, false);
    const [to, lhead] = end(a.to, true);
    const attrs = [
      ...(a.label !== undefined ? [`label=${dotText(a.label)}`] : []),
      ...(a.failure === true ? ['style="dashed"', 'color="#c62828"'] : []),
      ...(ltail !== '' ? [ltail] : []),
      ...(lhead !== '' ? [lhead] : []),
    ];
    out.push(`  ${from} -> ${to}${attrs.length > 0 ? ` [${attrs.join(', ')}]` : ''};`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}
