import {
  NanoVmError,
  type LlmOutput,
  type ModelFallback,
  type Program,
  type ProjectedView,
  type Usage,
} from '@nano-vm/kernel';

export interface ModelRequest {
  step: string;
  /** 1-based model call number for this step id within the run. */
  call: number;
  attempt: number;
  prompt: string;
  /** The projected state: the only data the model may see. */
  projection: ProjectedView;
  output: LlmOutput;
  signal: AbortSignal;
}

export interface ModelAnswer {
  raw: string;
  model: string;
  usage?: Usage;
  cost_usd?: number;
  /** A fallback chain's models that failed before `model` answered, in order (recorded in the trace). */
  fallbacks?: ModelFallback[];
}

/** A model adapter. Failures are thrown as ModelError with a stable code. */
export interface ModelPort {
  readonly id: string;
  /** True for the scripted model: every output labels such runs as scripted. */
  readonly scripted: boolean;
  complete(req: ModelRequest): Promise<ModelAnswer>;
  /**
   * Refuses (throws a NanoVmError) a program this model cannot serve, before a run of it starts:
   * the scripted model refuses a script with answers for steps the program has no llm step for.
   */
  checkProgram?(program: Program): void;
}

/**
 * A model adapter's failure. nano-vm's adapters use documented codes; an adapter of the operator's
 * (or a scripted `error` answer) may name a code of its own, so the code is any string here: the
 * trace records it as given.
 */
export class ModelError extends NanoVmError<string> {}
