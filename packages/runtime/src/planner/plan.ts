/**
 * `planProgram`: run the planner meta-program (plannerProgram.ts) for an intent. The operator's
 * tools are described to the model and to the check, never called: the planner's only tool is the
 * check. The result is the run (stored like any other) and, when it ended DRAFTED, the accepted
 * draft.
 */
import type {
  Clock,
  Hasher,
  JsonValue,
  PolicySnapshot,
  Program,
  StepCompletedEvent,
  TraceEvent,
} from '@nano-vm/kernel';
import type { IdSource } from '../clock.js';
import { runProgram, type RunResult } from '../executor.js';
import type { ModelPort } from '../model/port.js';
import type { Store } from '../store/store.js';
import { ToolRegistry } from '../toolRegistry.js';
import { checkProgramTool, type DraftCheck, type PlannerTool } from './checkDraft.js';
import { DEFAULT_PLAN_ATTEMPTS, DRAFTED, plannerProgram } from './plannerProgram.js';

export interface PlanOptions {
  intent: string;
  /** The tools the drafted program may call (described by name, description and schemas). */
  tools: ToolRegistry;
  /** The policy the drafted program must satisfy. */
  policy?: PolicySnapshot;
  model: ModelPort;
  /** How many drafts the model may make (default 3). */
  attempts?: number;
  store?: Store;
  clock?: Clock;
  ids?: IdSource;
  hasher?: Hasher;
}

export interface PlanResult {
  run: RunResult;
  /** The accepted draft (only when the run ended DRAFTED). */
  program?: Program;
  /** How many drafts the model made (answers that entered the state). */
  drafts: number;
  /** The last check's verdict, if a draft was checked. */
  lastCheck?: DraftCheck;
}

/** The tools as the planner's input describes them: sorted by name, JSON only. */
export function describeTools(tools: ToolRegistry): PlannerTool[] {
  return tools.names().map((name) => {
    const d = tools.get(name)!;
    return {
      name,
      ...(typeof d.description === 'string' ? { description: d.description } : {}),
      ...(d.input_schema !== undefined ? { input_schema: d.input_schema as JsonValue } : {}),
      ...(d.output_schema !== undefined ? { output_schema: d.output_schema as JsonValue } : {}),
    };
  });
}

const planningTools = new ToolRegistry([checkProgramTool]);

export async function planProgram(opts: PlanOptions): Promise<PlanResult> {
  const program = plannerProgram(opts.attempts ?? DEFAULT_PLAN_ATTEMPTS);
  const input = {
    intent: opts.intent,
    tools: describeTools(opts.tools),
    ...(opts.policy ? { policy: opts.policy } : {}),
  };
  const run = await runProgram({
    program,
    input,
    model: opts.model,
    tools: planningTools,
    ...(opts.store ? { store: opts.store } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.ids ? { ids: opts.ids } : {}),
    ...(opts.hasher ? { hasher: opts.hasher } : {}),
  });
  const drafts = completions(run.events, 'draft');
  const checks = completions(run.events, 'check');
  const lastCheck = checks.at(-1)?.output as DraftCheck | undefined;
  const accepted = run.status === 'completed' && run.outcome === DRAFTED;
  return {
    run,
    drafts: drafts.length,
    ...(accepted ? { program: drafts.at(-1)!.output as unknown as Program } : {}),
    ...(lastCheck ? { lastCheck } : {}),
  };
}

function completions(events: readonly TraceEvent[], step: string): StepCompletedEvent[] {
  return events.filter((e): e is StepCompletedEvent => e.type === 'step_completed' && e.step === step);
}
