import type { ModelAnswer, ModelPort, ModelRequest } from '../src/internal.js';
import {
  FixedClock,
  SeededIds,
  ToolRegistry,
  nodeHasher,
  parseModelScript,
  ScriptedModel,
  type ToolDefinition,
} from '../src/internal.js';
import type { Program, Step } from '@nano-vm/kernel';

export function program(steps: Step[], extra: Partial<Program> = {}): Program {
  return {
    format: 'nano-vm.program/v1',
    id: 'test',
    input_schema: {
      type: 'object',
      properties: { value: { type: 'number' }, text: { type: 'string' } },
      additionalProperties: true,
    },
    steps,
    ...extra,
  };
}

export function scripted(yaml: string, caseName?: string): ScriptedModel {
  return new ScriptedModel(parseModelScript(yaml, 'test'), caseName);
}

/** A model that records every request it receives. */
export class RecordingModel implements ModelPort {
  readonly id = 'recording';
  readonly scripted = true;
  readonly requests: ModelRequest[] = [];
  constructor(private readonly answer: (r: ModelRequest) => string) {}
  async complete(req: ModelRequest): Promise<ModelAnswer> {
    this.requests.push(req);
    return { raw: this.answer(req), model: this.id, usage: { input_tokens: 10, output_tokens: 1 } };
  }
}

export function tools(defs: ToolDefinition[]): ToolRegistry {
  return new ToolRegistry(defs);
}

export const det = () => ({ clock: new FixedClock(), ids: new SeededIds(nodeHasher) });
