// The program as an SVG diagram, laid out here from /api/meta's graph (nodes and edges of the
// program's edge table): steps in layers by longest path from the entry, back edges dashed.
// Each step shows its live state as a word as well as a colour, so no state is told by colour alone.
import { html } from '/assets/vendor.js';

const W = 168;
const H = 46;
const GX = 22;
const GY = 44;

export function layout(graph) {
  const ids = graph.nodes.map((n) => n.id);
  const out = new Map(ids.map((id) => [id, []]));
  for (const e of graph.edges) if (out.has(e.from) && out.has(e.to)) out.get(e.from).push(e.to);
  // Back edges (loops such as retries through a condition) are found by DFS from the entry and
  // left out of the layering, so the layers are a DAG's.
  const back = new Set();
  const colour = new Map();
  const visit = (id) => {
    colour.set(id, 1);
    for (const to of out.get(id)) {
      if (colour.get(to) === 1) back.add(`${id}\u0000${to}`);
      else if (!colour.has(to)) visit(to);
    }
    colour.set(id, 2);
  };
  for (const id of ids) if (!colour.has(id)) visit(id);
  const rank = new Map(ids.map((id) => [id, 0]));
  // Longest path by relaxation in declaration order; |V| rounds bound it on a DAG.
  for (let round = 0; round < ids.length; round++) {
    let changed = false;
    for (const e of graph.edges) {
      if (back.has(`${e.from}\u0000${e.to}`) || !rank.has(e.from) || !rank.has(e.to)) continue;
      if (rank.get(e.to) < rank.get(e.from) + 1) {
        rank.set(e.to, rank.get(e.from) + 1);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const rows = [];
  for (const id of ids) (rows[rank.get(id)] ??= []).push(id);
  const widest = Math.max(1, ...rows.map((r) => (r ? r.length : 0)));
  const width = widest * (W + GX) + GX;
  const pos = new Map();
  rows.forEach((row, r) => {
    if (!row) return;
    const rowWidth = row.length * (W + GX) - GX;
    const x0 = (width - rowWidth) / 2;
    row.forEach((id, i) => pos.set(id, { x: x0 + i * (W + GX), y: GY / 2 + r * (H + GY) }));
  });
  return { pos, back, width, height: rows.length * (H + GY) + GY / 2 };
}

const STATE_WORD = {
  pending: 'not reached',
  active: 'running',
  done: 'done',
  waiting: 'waiting',
  failed: 'failed',
  blocked: 'blocked',
  reached: 'outcome',
};

export function Diagram({ graph, states }) {
  if (!graph || !graph.nodes || graph.nodes.length === 0) return html`<p>No program graph.</p>`;
  const { pos, back, width, height } = layout(graph);
  const kindOf = new Map(graph.nodes.map((n) => [n.id, n.kind]));
  const summary = graph.nodes.map((n) => `${n.id}: ${STATE_WORD[states[n.id] ?? 'pending']}`).join('; ');
  return html`<svg
    class="diagram"
    viewBox="0 0 ${width} ${height}"
    role="img"
    aria-label=${`Program diagram. ${summary}`}
    data-testid="diagram"
  >
    <defs>
      <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
        <path d="M0,0 L10,5 L0,10 z" fill="#4b5563" />
      </marker>
    </defs>
    ${graph.edges.map((e, i) => {
      const a = pos.get(e.from);
      const b = pos.get(e.to);
      if (!a || !b) return null;
      const isBack = back.has(`${e.from}\u0000${e.to}`);
      const x1 = a.x + W / 2;
      const y1 = a.y + H;
      const x2 = b.x + W / 2;
      const y2 = b.y;
      const d = isBack
        ? `M${a.x + W},${a.y + H / 2} C${a.x + W + 60},${a.y + H / 2} ${b.x + W + 60},${b.y + H / 2} ${b.x + W},${b.y + H / 2}`
        : `M${x1},${y1} C${x1},${y1 + GY / 2} ${x2},${y2 - GY / 2} ${x2},${y2}`;
      const label = e.label ? String(e.label) : '';
      const taken = states[e.from] && states[e.from] !== 'pending' && states[e.to] && states[e.to] !== 'pending';
      return html`<g key=${`e${i}`} class=${`edge${isBack ? ' back' : ''}${taken ? ' taken' : ''}`}>
        <title>${e.from} → ${e.to}${label ? `: ${label}` : ''}</title>
        <path d=${d} marker-end="url(#arrow)" />
        ${
          label && label.length <= 22 && !isBack
            ? html`<text x=${(x1 + x2) / 2 + 4} y=${(y1 + y2) / 2} class="edge-label">${label}</text>`
            : null
        }
      </g>`;
    })}
    ${graph.nodes.map((n) => {
      const p = pos.get(n.id);
      const state = states[n.id] ?? 'pending';
      const kind = kindOf.get(n.id) ?? 'step';
      return html`<g
        key=${n.id}
        class=${`node kind-${kind} state-${state}${n.failure ? ' failure' : ''}`}
        transform=${`translate(${p.x},${p.y})`}
        data-step=${n.id}
        data-state=${state}
      >
        <title>${`${n.id} (${kind}${n.outcome ? `, outcome ${n.outcome}` : ''}): ${STATE_WORD[state] ?? state}${n.description ? ` — ${n.description}` : ''}`}</title>
        <rect width=${W} height=${H} rx=${kind === 'end' || kind === 'outcome' ? 22 : 6} />
        <text x="8" y="18" class="node-id">${n.id.length > 22 ? `${n.id.slice(0, 21)}…` : n.id}</text>
        <text x="8" y="36" class="node-sub">${n.outcome ?? kind} · ${STATE_WORD[state] ?? state}</text>
      </g>`;
    })}
  </svg>`;
}

/**
 * Step states from a run's events (the SSE frames or the run record): started → running,
 * finished → done, a rejected transition → blocked, a failure → failed, a suspension → waiting,
 * the end step → outcome.
 */
export function stepStates(events, graph) {
  const states = {};
  const ends = new Set((graph?.nodes ?? []).filter((n) => n.kind === 'end' || n.kind === 'outcome').map((n) => n.id));
  for (const ev of events) {
    const kind = ev.kind ?? ev.type;
    const step = ev.step ?? ev.body?.step;
    if (!step) continue;
    switch (kind) {
      case 'step_started':
      case 'policy_checked':
        if (!states[step] || states[step] === 'pending') states[step] = ends.has(step) ? 'reached' : 'active';
        break;
      case 'step_completed':
      case 'condition_evaluated':
      case 'step_fallback':
        if (states[step] !== 'blocked') states[step] = ends.has(step) ? 'reached' : 'done';
        break;
      case 'step_failed':
        states[step] = 'failed';
        break;
      case 'transition_rejected':
        states[step] = 'blocked';
        break;
      case 'run_suspended':
      case 'suspended':
        states[step] = 'waiting';
        break;
      default:
        if (ends.has(step)) states[step] = 'reached';
    }
  }
  return states;
}
