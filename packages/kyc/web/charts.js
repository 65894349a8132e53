// Charts drawn with uPlot (canvas). Each chart has a table beside it with the same numbers, which
// is what a screen reader or a keyboard user reads (and what the tests read).
import { html, useEffect, useRef, uPlot } from '/assets/vendor.js';

function UChart({ opts, data, label }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current) return undefined;
    const width = Math.max(280, box.current.clientWidth || 420);
    const chart = new uPlot({ ...opts, width, height: opts.height ?? 200 }, data, box.current);
    return () => chart.destroy();
  }, [JSON.stringify(data), JSON.stringify(opts.series?.map((s) => s.label))]);
  return html`<div class="chart" ref=${box} role="img" aria-label=${label}></div>`;
}

const bars = () => uPlot.paths.bars({ size: [0.55, 64] });
const fix = (v) => (typeof v === 'number' ? Number(v.toFixed(3)) : v);

/** Draws each category's threshold as a dashed red segment across its bar. */
function thresholdSegments(thresholds) {
  return {
    hooks: {
      draw: [
        (u) => {
          const { ctx } = u;
          ctx.save();
          ctx.strokeStyle = '#b91c1c';
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
          thresholds.forEach((t, i) => {
            if (typeof t !== 'number') return;
            const x = u.valToPos(i, 'x', true);
            const y = u.valToPos(t, 'y', true);
            const half = 44 * devicePixelRatio;
            ctx.beginPath();
            ctx.moveTo(x - half, y);
            ctx.lineTo(x + half, y);
            ctx.stroke();
          });
          ctx.restore();
        },
      ],
    },
  };
}

const SHORT = { retry_density: 'retries', tool_churn: 'tool churn', invariant_violation_rate: 'violations' };

export function HealthChart({ health, thresholds }) {
  const metrics = ['retry_density', 'tool_churn', 'invariant_violation_rate'];
  const values = metrics.map((m) => (typeof health?.[m] === 'number' ? health[m] : 0));
  const limits = metrics.map((m) => thresholds?.[m]);
  const top = Math.max(0.1, ...values, ...limits.filter((t) => typeof t === 'number')) * 1.2;
  const opts = {
    height: 180,
    legend: { show: false },
    scales: { x: { time: false, range: [-0.5, metrics.length - 0.5] }, y: { range: [0, top] } },
    axes: [
      {
        values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? (SHORT[metrics[t]] ?? '') : '')),
        splits: () => [0, 1, 2],
      },
      {},
    ],
    series: [{}, { label: 'value', fill: '#2563eb88', stroke: '#1d4ed8', paths: bars(), points: { show: false } }],
    plugins: [thresholdSegments(limits)],
  };
  return html`<div>
    <${UChart} opts=${opts} data=${[[0, 1, 2], values]} label="Trace health of this run, bars, with thresholds as dashed lines" />
    <table class="nums" data-testid="health-table">
      <caption class="sr-only">Trace health and thresholds</caption>
      <thead><tr><th scope="col">metric</th><th scope="col">value</th><th scope="col">threshold</th><th scope="col">state</th></tr></thead>
      <tbody>
        ${metrics.map((m, i) => {
          const over = typeof limits[i] === 'number' && values[i] > limits[i];
          return html`<tr data-metric=${m}>
            <th scope="row">${m}</th><td>${fix(values[i])}</td><td>${limits[i] === undefined ? '—' : fix(limits[i])}</td>
            <td class=${over ? 'bad' : 'good'}>${over ? 'over threshold' : 'within'}</td>
          </tr>`;
        })}
        ${
          typeof health?.invariant_violations === 'number'
            ? html`<tr><th scope="row">invariant_violations</th><td>${health.invariant_violations}</td><td>—</td><td></td></tr>`
            : null
        }
      </tbody>
    </table>
  </div>`;
}

export function EntropyChart({ states, threshold }) {
  // Only the steps with a choice: the others have one successor and zero entropy.
  const rows = (states ?? []).filter((s) => s.next && s.next.length > 1);
  if (rows.length === 0) return html`<p>No step had a choice in these runs.</p>`;
  const xs = rows.map((_, i) => i);
  const ys = rows.map((s) => s.entropy_bits);
  const top = Math.max(0.5, ...ys, threshold ?? 0) * 1.2;
  const opts = {
    height: 200,
    legend: { show: false },
    scales: { x: { time: false, range: [-0.5, rows.length - 0.5] }, y: { range: [0, top] } },
    axes: [
      {
        values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) && rows[t] ? rows[t].step : '')),
        splits: () => xs,
      },
      { label: 'bits' },
    ],
    series: [
      {},
      { label: 'H(next | step)', fill: '#7c3aed88', stroke: '#6d28d9', paths: bars(), points: { show: false } },
      { label: 'threshold', stroke: '#b91c1c', dash: [6, 4], width: 2, points: { show: false } },
    ],
  };
  return html`<${UChart}
    opts=${opts}
    data=${[xs, ys, xs.map(() => threshold ?? null)]}
    label="Transition entropy per step across runs, with the threshold line"
  />`;
}

/** A metric over a growing number of runs, with its threshold as a dashed line. */
export function SeriesChart({ xs, ys, threshold, name, colour }) {
  if (!xs || xs.length === 0) return html`<p>No runs analysed yet.</p>`;
  const top = Math.max(0.1, ...ys, threshold ?? 0) * 1.15;
  const opts = {
    height: 200,
    legend: { show: false },
    scales: { x: { time: false }, y: { range: [0, top] } },
    axes: [{ label: 'runs' }, {}],
    series: [
      { label: 'runs' },
      { label: name, stroke: colour, width: 2 },
      { label: 'threshold', stroke: '#b91c1c', dash: [6, 4], width: 2, points: { show: false } },
    ],
  };
  return html`<${UChart} opts=${opts} data=${[xs, ys, xs.map(() => threshold ?? null)]} label=${`${name} over runs, last value ${fix(ys[ys.length - 1])}, threshold ${threshold}`} />`;
}
