// Governance overhead per LLM step (issue 5: p99 ≤ 50 µs): the time nano-vm spends between a
// model's answer and the next model request — output check against the declared type, the
// step_completed event (canonical text + SHA-256), persisting it, the successor decision, budgets,
// projection, prompt rendering and the projection hash. The model answers at once, so what is
// timed is the runtime alone. Reported as p50/p90/p99/max over every step, per store; written to
// bench/results/llm-overhead-<ts>.md/.json as well.
//
//   npm run build && node --expose-gc bench/llmOverhead.mjs [--steps=2000] [--runs=10]
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RUNTIME, gitState, writeResults } from './common.mjs';

const arg = (name, d) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d);
const STEPS = arg('steps', 2000);
const RUNS = arg('runs', 10);
const rt = await import(pathToFileURL(process.argv.find((a) => a.startsWith('--runtime='))?.slice(10) ?? RUNTIME).href);

// A chain of llm steps, each seeing a small projection and answering inside an enum.
const steps = [];
for (let i = 0; i < STEPS; i++) {
  steps.push({
    id: `s${i}`,
    kind: 'llm',
    prompt: 'Classify the payment of {{input.amount}} EUR to {{input.country}}: low or high?',
    projection: ['input.amount', 'input.country'],
    output: { enum: ['low', 'high'] },
    next: i < STEPS - 1 ? `s${i + 1}` : 'done',
  });
}
steps.push({ id: 'done', kind: 'end', outcome: 'SUCCESS' });
const program = {
  format: 'nano-vm.program/v1',
  id: 'llm-overhead',
  input_schema: { type: 'object', properties: { amount: { type: 'number' }, country: { type: 'string' } } },
  budgets: { max_steps: STEPS + 10 },
  steps,
};

function measure(makeStore) {
  const gaps = [];
  let answeredAt = -1;
  const model = {
    id: 'instant',
    scripted: true,
    complete: async () => {
      const now = performance.now();
      if (answeredAt >= 0) gaps.push((now - answeredAt) * 1000);
      const answer = { raw: 'low', model: 'instant', usage: { input_tokens: 20, output_tokens: 1 } };
      answeredAt = performance.now();
      return answer;
    },
  };
  return async () => {
    for (let r = 0; r < RUNS; r++) {
      answeredAt = -1;
      const res = await rt.runProgram({
        program,
        input: { amount: 120, country: 'DE' },
        model,
        tools: new rt.ToolRegistry(),
        store: makeStore(),
      });
      if (res.outcome !== 'SUCCESS') throw new Error(`run ended ${res.status}`);
    }
    return gaps;
  };
}

const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const dir = mkdtempSync(join(os.tmpdir(), 'nano-vm-llm-'));
let n = 0;
const stores = {
  memory: () => new rt.MemoryStore(),
  'sqlite NORMAL': () => new rt.SqliteStore(join(dir, `s${n++}.db`), { synchronous: 'NORMAL' }),
};
await measure(stores.memory)(); // warm-up
const md = [
  `# Governance overhead per LLM step — ${new Date().toISOString()}`,
  '',
  `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; ${RUNS} runs of a ${STEPS}-step llm chain per store, the model answering at once; commit ${gitState()?.commit ?? '?'}.`,
  '',
  '| store | steps timed | p50 µs | p90 µs | p99 µs | max µs |',
  '|---|---:|---:|---:|---:|---:|',
];
const results = {};
for (const [name, make] of Object.entries(stores)) {
  globalThis.gc?.();
  const gaps = (await measure(make)()).sort((a, b) => a - b);
  results[name] = { steps: gaps.length, p50: pct(gaps, 50), p90: pct(gaps, 90), p99: pct(gaps, 99), max: gaps.at(-1) };
  md.push(
    `| ${name} | ${gaps.length} | ${pct(gaps, 50).toFixed(1)} | ${pct(gaps, 90).toFixed(1)} | ${pct(gaps, 99).toFixed(1)} | ${gaps.at(-1).toFixed(1)} |`,
  );
}
rmSync(dir, { recursive: true, force: true });
const text = md.join('\n') + '\n';
process.stdout.write(text);
writeResults('llm-overhead-', text, { steps: STEPS, runs: RUNS, results });
