/**
 * Graph checks of the validator: ids, edge targets, reachability, unbounded cycles, terminals.
 *
 * Everything here is iterative (explicit stacks, typed arrays): programs are data and may have
 * 100k+ steps, and a recursive walk would overflow the call stack.
 */
import type { Issue } from './errors.js';
import { edgeTable, type EdgeTable } from './edges.js';
import type { Program } from './program.js';
import { closest } from './validateShape.js';

/** Where each id is declared. */
export interface StepIndex {
  /** Top-level step id -> index in `steps` (first declaration wins). */
  byId: Map<string, number>;
  /** Parallel child id -> id of its parent step. */
  parentOf: Map<string, string>;
}

/** Most "did you mean" lookups per validation (each is a scan over all ids). */
const MAX_SUGGESTIONS = 50;

export function indexSteps(program: Program, out: Issue[]): StepIndex {
  const byId = new Map<string, number>();
  const parentOf = new Map<string, string>();
  /** Child id -> [parent index, child index], for the duplicate message. */
  const childAt = new Map<string, [number, number]>();
  const duplicate = (id: string, path: string): void => {
    const i = byId.get(id);
    const [p, j] = childAt.get(id) ?? [];
    const first = i !== undefined ? `steps/${i}/id` : `steps/${p}/children/${j}/id`;
    out.push({
      code: 'E_DUPLICATE_ID',
      severity: 'error',
      step: id,
      path,
      message: `step id '${id}' is already declared at ${first}; ids must be unique (parallel children included)`,
    });
  };
  const steps = program.steps;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    if (byId.has(step.id)) duplicate(step.id, `/steps/${i}/id`);
    else {
      if (childAt.has(step.id)) duplicate(step.id, `/steps/${i}/id`);
      byId.set(step.id, i);
    }
    if (step.kind !== 'parallel') continue;
    step.children.forEach((child, j) => {
      if (byId.has(child.id) || childAt.has(child.id)) duplicate(child.id, `/steps/${i}/children/${j}/id`);
      else {
        childAt.set(child.id, [i, j]);
        parentOf.set(child.id, step.id);
      }
    });
  }
  return { byId, parentOf };
}

/** Successor lists in compressed form: the successors of i are targets[offsets[i] .. offsets[i+1]). */
interface Graph {
  n: number;
  offsets: Int32Array;
  targets: Int32Array;
}

function buildGraph(n: number, table: EdgeTable, byId: Map<string, number>): Graph {
  const offsets = new Int32Array(n + 1);
  const list: number[] = [];
  for (let i = 0; i < n; i++) {
    offsets[i] = list.length;
    for (const edge of table.at(i)) {
      const j = byId.get(edge.to);
      if (j !== undefined) list.push(j);
    }
  }
  offsets[n] = list.length;
  return { n, offsets, targets: Int32Array.from(list) };
}

function reverse(g: Graph): Graph {
  const counts = new Int32Array(g.n + 1);
  for (let e = 0; e < g.targets.length; e++) counts[g.targets[e]! + 1]!++;
  for (let i = 0; i < g.n; i++) counts[i + 1]! += counts[i]!;
  const offsets = Int32Array.from(counts);
  const fill = Int32Array.from(counts);
  const targets = new Int32Array(g.targets.length);
  for (let v = 0; v < g.n; v++) {
    for (let e = g.offsets[v]!; e < g.offsets[v + 1]!; e++) targets[fill[g.targets[e]!]!++] = v;
  }
  return { n: g.n, offsets, targets };
}

/** Marks every vertex reachable from `sources` (iterative DFS). */
function reachable(g: Graph, sources: Iterable<number>): Uint8Array {
  const seen = new Uint8Array(g.n);
  const stack: number[] = [];
  for (const s of sources) {
    if (seen[s]) continue;
    seen[s] = 1;
    stack.push(s);
  }
  while (stack.length > 0) {
    const v = stack.pop()!;
    for (let e = g.offsets[v]!; e < g.offsets[v + 1]!; e++) {
      const w = g.targets[e]!;
      if (!seen[w]) {
        seen[w] = 1;
        stack.push(w);
      }
    }
  }
  return seen;
}

/**
 * Cycles of the subgraph induced by `eligible` vertices: its strongly connected components with
 * more than one vertex or a self loop (Tarjan's algorithm, iterative). Components are returned
 * with their vertices in ascending order.
 */
function cyclicComponents(g: Graph, eligible: (v: number) => boolean): number[][] {
  const index = new Int32Array(g.n).fill(-1);
  const low = new Int32Array(g.n);
  const onStack = new Uint8Array(g.n);
  const frameVertex = new Int32Array(g.n);
  const frameEdge = new Int32Array(g.n);
  const component: number[] = [];
  const found: number[][] = [];
  let counter = 0;
  for (let root = 0; root < g.n; root++) {
    if (index[root] !== -1 || !eligible(root)) continue;
    let depth = 0;
    let enter = root;
    for (;;) {
      if (enter >= 0) {
        index[enter] = low[enter] = counter++;
        component.push(enter);
        onStack[enter] = 1;
        frameVertex[depth] = enter;
        frameEdge[depth] = g.offsets[enter]!;
        depth++;
        enter = -1;
      }
      if (depth === 0) break;
      const v = frameVertex[depth - 1]!;
      const e = frameEdge[depth - 1]!;
      if (e < g.offsets[v + 1]!) {
        frameEdge[depth - 1] = e + 1;
        const w = g.targets[e]!;
        if (!eligible(w)) continue;
        if (index[w] === -1) enter = w;
        else if (onStack[w]) low[v] = Math.min(low[v]!, index[w]!);
        continue;
      }
      depth--;
      if (depth > 0) {
        const parent = frameVertex[depth - 1]!;
        low[parent] = Math.min(low[parent]!, low[v]!);
      }
      if (low[v] !== index[v]) continue;
      if (component[component.length - 1] === v) {
        // A component of one vertex (most of them): a cycle only through a self loop.
        component.pop();
        onStack[v] = 0;
        if (hasSelfLoop(g, v)) found.push([v]);
        continue;
      }
      const members: number[] = [];
      let w: number;
      do {
        w = component.pop()!;
        onStack[w] = 0;
        members.push(w);
      } while (w !== v);
      if (members.length > 1 || hasSelfLoop(g, v)) found.push(members.sort((a, b) => a - b));
    }
  }
  return found.sort((a, b) => a[0]! - b[0]!);
}

function hasSelfLoop(g: Graph, v: number): boolean {
  for (let e = g.offsets[v]!; e < g.offsets[v + 1]!; e++) if (g.targets[e] === v) return true;
  return false;
}

/** E_MISSING_TARGET, E_NO_END, E_UNREACHABLE, E_UNBOUNDED_CYCLE, E_NO_TERMINAL, W_NO_FAILURE_TERMINAL. */
export function checkGraph(program: Program, index: StepIndex, out: Issue[]): void {
  const steps = program.steps;
  const table = edgeTable(program);
  const { byId, parentOf } = index;
  let suggestions = 0;
  let ids: string[] | undefined;
  const explainMissing = (target: string): string => {
    const parent = parentOf.get(target);
    if (parent !== undefined)
      return ` ('${target}' is a child of parallel step '${parent}'; edges can only go to top-level steps)`;
    if (suggestions >= MAX_SUGGESTIONS) return '';
    suggestions++;
    ids ??= [...byId.keys()];
    const guess = closest(target, ids);
    return guess !== undefined ? ` (did you mean '${guess}'?)` : '';
  };

  if (program.start !== undefined && !byId.has(program.start)) {
    out.push({
      code: 'E_MISSING_TARGET',
      severity: 'error',
      path: '/start',
      message: `start step '${program.start}' does not exist${explainMissing(program.start)}`,
    });
  }
  const dangling: number[] = [];
  steps.forEach((step, i) => {
    const edges = table.at(i);
    if (edges.every((e) => byId.has(e.to))) return;
    dangling.push(i);
    for (const edge of edges) {
      if (byId.has(edge.to)) continue;
      const field = edge.path.slice(edge.path.indexOf('/', 7) + 1);
      out.push({
        code: 'E_MISSING_TARGET',
        severity: 'error',
        step: step.id,
        path: edge.path,
        message: `step '${step.id}': ${field} names step '${edge.to}', which does not exist${explainMissing(edge.to)}`,
      });
    }
  });

  const ends: number[] = [];
  steps.forEach((s, i) => {
    if (s.kind === 'end') ends.push(i);
  });
  if (ends.length === 0) {
    out.push({
      code: 'E_NO_END',
      severity: 'error',
      path: '/steps',
      message: 'the program has no end step, so no run can complete; add a step with kind: end',
    });
  } else if (!ends.some((i) => (steps[i] as { failure?: boolean }).failure === true)) {
    out.push({
      code: 'W_NO_FAILURE_TERMINAL',
      severity: 'warning',
      path: '/steps',
      message:
        'no end step has failure: true; business failures (rejections, missing data) should end in a named failure outcome',
    });
  }
  if (steps.length === 0) return;

  const graph = buildGraph(steps.length, table, byId);
  // A later duplicate of an id can never be targeted; E_DUPLICATE_ID already covers it.
  const isFirst = (i: number): boolean => byId.get(steps[i]!.id) === i;

  const startId = table.start!;
  const start = byId.get(startId);
  const fromStart = start !== undefined ? reachable(graph, [start]) : undefined;
  // A reachable step with a missing target could lead anywhere once fixed: reporting the steps
  // beyond it as unreachable would only bury the E_MISSING_TARGET under follow-ons.
  const openEnded = fromStart !== undefined && dangling.some((i) => fromStart[i]);
  if (fromStart !== undefined && !openEnded) {
    steps.forEach((step, i) => {
      if (!fromStart[i] && isFirst(i)) {
        out.push({
          code: 'E_UNREACHABLE',
          severity: 'error',
          step: step.id,
          path: `/steps/${i}`,
          message: `step '${step.id}' is not reachable from the start step '${startId}'`,
        });
      }
    });
  }

  for (const members of cyclicComponents(graph, (v) => steps[v]!.max_visits === undefined)) {
    const first = steps[members[0]!]!;
    const names = members.slice(0, 8).map((v) => `'${steps[v]!.id}'`);
    if (members.length > 8) names.push(`and ${members.length - 8} more`);
    const message =
      members.length === 1
        ? `step '${first.id}' loops to itself and has no max_visits; set max_visits (and on_exhausted) to bound the loop`
        : `steps ${names.join(', ')} form a cycle in which no step declares max_visits; set max_visits (and on_exhausted) on one of them`;
    out.push({ code: 'E_UNBOUNDED_CYCLE', severity: 'error', step: first.id, path: `/steps/${members[0]}`, message });
  }

  // Taking on_exhausted enters no step, so neither max_visits nor a budget bounds a cycle made of
  // on_exhausted edges alone: once its steps are exhausted a run would go round it forever.
  for (const members of exhaustionCycles(steps.length, table, byId)) {
    const first = steps[members[0]!]!;
    const names = members.slice(0, 8).map((v) => `'${steps[v]!.id}'`);
    if (members.length > 8) names.push(`and ${members.length - 8} more`);
    const message =
      members.length === 1
        ? `step '${first.id}' names itself as its on_exhausted: once exhausted, a run would go round it forever without entering a step; let on_exhausted lead elsewhere`
        : `steps ${names.join(', ')} lead to each other by on_exhausted alone: once all are exhausted, a run would go round them forever without entering a step; let one on_exhausted lead out of the cycle`;
    out.push({
      code: 'E_UNBOUNDED_CYCLE',
      severity: 'error',
      step: first.id,
      path: `/steps/${members[0]}/on_exhausted`,
      message,
    });
  }

  if (ends.length > 0) {
    // A step with a missing target already has an error; assume the fixed edge could lead to an end.
    const canEnd = reachable(reverse(graph), [...ends, ...dangling]);
    steps.forEach((step, i) => {
      if (canEnd[i] || !isFirst(i) || (fromStart !== undefined && !fromStart[i])) return;
      out.push({
        code: 'E_NO_TERMINAL',
        severity: 'error',
        step: step.id,
        path: `/steps/${i}`,
        message: `no end step can be reached from step '${step.id}', so a run that gets here can never complete`,
      });
    });
  }
}

/**
 * Cycles of the on_exhausted edges alone, each with its step indexes in ascending order. Every step
 * has at most one such edge, so each walk either ends or runs into exactly one cycle.
 */
function exhaustionCycles(n: number, table: EdgeTable, byId: Map<string, number>): number[][] {
  const next = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) for (const e of table.at(i)) if (e.via === 'on_exhausted') next[i] = byId.get(e.to) ?? -1;
  /** 0: not seen, 1: on the current walk, 2: done. */
  const state = new Uint8Array(n);
  const found: number[][] = [];
  for (let root = 0; root < n; root++) {
    // Most steps declare no on_exhausted: nothing to walk (and no walk to allocate).
    if (state[root] !== 0 || next[root] === -1) continue;
    const walk: number[] = [];
    let v = root;
    while (v !== -1 && state[v] === 0) {
      state[v] = 1;
      walk.push(v);
      v = next[v]!;
    }
    if (v !== -1 && state[v] === 1) found.push(walk.slice(walk.indexOf(v)).sort((a, b) => a - b));
    for (const w of walk) state[w] = 2;
  }
  return found.sort((a, b) => a[0]! - b[0]!);
}

/**
 * Which steps lie on a cycle of the step graph (bounded or not), by index in `steps`: only these
 * can be entered twice, so only their max_visits can run out.
 */
export function stepsOnCycles(program: Program): Uint8Array {
  const byId = new Map<string, number>();
  program.steps.forEach((s, i) => {
    if (!byId.has(s.id)) byId.set(s.id, i);
  });
  const onCycle = new Uint8Array(program.steps.length);
  const graph = buildGraph(program.steps.length, edgeTable(program), byId);
  for (const members of cyclicComponents(graph, () => true)) for (const v of members) onCycle[v] = 1;
  return onCycle;
}
