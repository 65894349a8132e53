/**
 * What the successor asks the host to do next, and what the host hands back. Commands are plain
 * data: the host performs them (call a model or a tool, run children, wait for an event) and never
 * decides anything itself.
 */
import type { ErrorInfo, ModelFallback, RunFinishedEvent, Usage } from './events.js';
import type { JsonValue, LlmOutput } from './program.js';
import type { ProjectedView } from './projection.js';

/** Read exactly once per appended event (that reading becomes the event's `ts`). */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export interface LlmCommand {
  type: 'llm';
  step: string;
  parent?: string | undefined;
  visit: number;
  attempt: number;
  /** Hash of `projection`, recorded with the answer. */
  projection_hash: string;
  /** 1-based count of model calls made for this step id in this run, this one included. */
  call: number;
  prompt: string;
  projection: ProjectedView;
  output: LlmOutput;
  timeout_ms?: number | undefined;
}

export interface ToolCommand {
  type: 'tool';
  step: string;
  parent?: string | undefined;
  attempt: number;
  tool: string;
  args: Record<string, JsonValue>;
  idempotency_key: string;
  timeout_ms?: number | undefined;
}

export type EffectCommand = LlmCommand | ToolCommand;

export interface ParallelCommand {
  type: 'parallel';
  step: string;
  max_concurrency: number;
  children: EffectCommand[];
}

/** The run waits for an external event: the host suspends it until it is resumed or expires. */
export interface WaitCommand {
  type: 'wait';
  step: string;
  visit: number;
  role?: string;
  /** Epoch ms after which the wait has timed out (absent: it never does). */
  deadline_ms?: number;
}

/** An external event for a suspended run (what `nano-vm resume` delivers). */
export interface ExternalEvent {
  payload: unknown;
  role?: string;
  event_id?: string;
  /**
   * Who sent it, as the host authenticated them (the MCP server's principal): recorded so a
   * trace shows who approved, and so a host can refuse one principal approving twice.
   */
  principal?: string;
}

/** The run has finished with its run_finished event. */
export interface DoneCommand {
  type: 'done';
  event: RunFinishedEvent;
}

export type Command = EffectCommand | ParallelCommand | WaitCommand | DoneCommand;

/** What the host observed when it performed an effect. */
export type EffectResult =
  | {
      ok: true;
      raw?: string;
      value?: unknown;
      model?: string;
      usage?: Usage;
      cost_usd?: number;
      fallbacks?: ModelFallback[];
    }
  | { ok: false; error: ErrorInfo; raw?: string; model?: string; usage?: Usage; cost_usd?: number };
