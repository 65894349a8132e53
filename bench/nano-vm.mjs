// The nano-vm peer: the same three workloads as the anchor peers, as nano-vm programs run with full
// governance (pre-flight validation, input schema check, projection, typed output check, guards,
// SHA-256 hash chain over canonical JSON, receipt, every event appended to a MemoryStore).
//
// The peer has the anchor peers' interface (`name`, `w10k()`, `chain22()`, `long(n)`, each returning
// a runner that resolves to {status: 'OK'|'FAILED'}), so the anchors' drivers in workloads.mjs measure
// it with literally the same code. It calls the anchors' mock model and mock tools (lib.mjs), passed
// in as `lib` so that the W-LONG time cap (`noopCap`) is the very module instance the driver arms.
//
// Fairness: like the peers build their graph once per timed run, each `w10k()`/`chain22()`/`long(n)`
// call builds the program object, the tool registry and a fresh MemoryStore, so the one-time pre-flight
// validation of the program (cached per program object) is inside the timing.

import { w10kProgram } from './common.mjs';

/**
 * `lib`: the anchors' lib.mjs (or bench/standalone.mjs's `lib`); `rt`: @nano-vm/runtime;
 * `opts.tools`: replacement tool implementations by name (bench/perStep.mjs times the no-op);
 * `opts.makeStore`: the store for each timed run instead of a fresh MemoryStore (bench/durable.mjs).
 * `tally` counts every run's status (with its outcome or error code), so the harness can show
 * anything other than the expected completed/failed.
 */
export function makeNanoVm(lib, rt, opts = {}) {
  const { runProgram, ToolRegistry, MemoryStore } = rt;
  const { mockModel, callTool, FAIL_TOOL } = lib;
  const TOOLS = { ...lib.TOOLS, ...opts.tools };
  const tally = {};
  const count = (res) => {
    const k =
      res.status === 'completed'
        ? `completed:${res.outcome}`
        : `${res.status}:${res.events.at(-1)?.error?.code ?? res.events.at(-1)?.budget?.name ?? '?'}`;
    tally[k] = (tally[k] ?? 0) + 1;
  };

  // The model port: awaits the anchors' mock model (the same await as every peer), then answers
  // inside the step's declared enum so the typed output check passes.
  const model = {
    id: 'bench-mock',
    scripted: true,
    complete: async (req) => {
      await mockModel(req.prompt);
      return { raw: 'normal', model: 'bench-mock' };
    },
  };

  // A registered tool for every name a workload uses; each one calls the anchors' mock.
  const tool = (name, impl = TOOLS[name]) => ({ name, run: (args) => impl(args) });

  /** One run of `program` on `input`; OK = completed. Anything thrown (an invalid program) is a harness bug: let it crash. */
  const runner = (program, tools) => {
    const store = opts.makeStore ? opts.makeStore() : new MemoryStore();
    const run = async (input) => {
      const res = await runProgram({ program, input, model, tools, store });
      count(res);
      return { status: res.status === 'completed' ? 'OK' : 'FAILED', result: res };
    };
    return Object.assign(run, { program, tools });
  };

  return {
    name: 'nano-vm',
    tally,
    model,

    // llm analyze -> tool mock_processor -> condition value > 0.9 -> fail_tool (throws: run failed) | mock_finalize -> end
    w10k: () => {
      const program = w10kProgram();
      const tools = new ToolRegistry([
        tool('mock_processor'),
        tool('mock_finalize'),
        // registered (the validator refuses unregistered tools before any run), but it throws exactly
        // like the peers' failing branch: the anchors' callTool on a name it does not know
        tool('fail_tool', () => callTool(FAIL_TOOL, {})),
      ]);
      return runner(program, tools);
    },

    // 20 sequential tools returning 'x' * 1000 -> condition (always true) -> leaf tool -> end
    chain22: () => {
      const steps = [];
      for (let i = 0; i < 20; i++)
        steps.push({ id: `step_${i}`, kind: 'tool', tool: 'workload', next: i < 19 ? `step_${i + 1}` : 'cond' });
      steps.push(
        {
          id: 'cond',
          kind: 'condition',
          cases: [{ when: 'size(steps.step_0.output) > 0', next: 'leaf' }],
          else: 'done',
        },
        { id: 'leaf', kind: 'tool', tool: 'workload', next: 'done' },
        { id: 'done', kind: 'end', outcome: 'SUCCESS' },
      );
      const program = { format: 'nano-vm.program/v1', id: 'chain22', input_schema: { type: 'object' }, steps };
      const run = runner(program, new ToolRegistry([tool('workload')]));
      return Object.assign(() => run({}), { program, tools: run.tools });
    },

    // N sequential no-op tool steps -> end (the no-op throws once the driver's time cap has passed)
    long: (n) => {
      const steps = new Array(n + 1);
      for (let i = 0; i < n; i++)
        steps[i] = {
          id: `s${i}`,
          kind: 'tool',
          tool: 'noop',
          args: { step: { value: `s${i}` } },
          next: i < n - 1 ? `s${i + 1}` : 'done',
        };
      steps[n] = { id: 'done', kind: 'end', outcome: 'SUCCESS' };
      const program = {
        format: 'nano-vm.program/v1',
        id: `long${n}`,
        input_schema: { type: 'object' },
        budgets: { max_steps: n + 10 },
        steps,
      };
      const run = runner(program, new ToolRegistry([tool('noop')]));
      return Object.assign(() => run({}), { program, tools: run.tools });
    },
  };
}
