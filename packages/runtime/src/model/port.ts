import type { LlmOutput, ModelFallback, ProjectedView, Usage } from '@nano-vm/kernel';

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
}

export class ModelError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ModelError';
  }
}
