/**
 * A fallback chain (`--model a,b`): each call goes to the first model, and to the next one only
 * when the failure says nothing about the request itself — the provider is down, overloaded,
 * rate limited, unreachable, too slow, refused the credentials, or answered with a broken body.
 * A rejected request (E_MODEL_BAD_REQUEST) and a cancelled step (its timeout) end the call:
 * another provider would get the same request, or the step is already over.
 *
 * The answer names the model that actually answered (ModelAnswer.model) and the ones that failed
 * before it (ModelAnswer.fallbacks): both are recorded in the step's event.
 */
import type { ModelFallback } from '@nano-vm/kernel';
import { ModelError, type ModelAnswer, type ModelPort, type ModelRequest } from './port.js';

export const FALLS_THROUGH: ReadonlySet<string> = new Set([
  'E_MODEL_UNAVAILABLE',
  'E_MODEL_RATE_LIMITED',
  'E_MODEL_UNREACHABLE',
  'E_MODEL_TIMEOUT',
  'E_MODEL_AUTH',
  'E_MODEL_RESPONSE_MALFORMED',
]);

export class FallbackChainModel implements ModelPort {
  readonly scripted = false;
  readonly id: string;

  constructor(private readonly models: readonly ModelPort[]) {
    if (models.length === 0) throw new ModelError('E_MODEL_SPEC', 'a fallback chain needs at least one model');
    this.id = models.map((m) => m.id).join(',');
  }

  async complete(req: ModelRequest): Promise<ModelAnswer> {
    const failures: ModelError[] = [];
    const fallbacks: ModelFallback[] = [];
    for (const model of this.models) {
      try {
        const answer = await model.complete(req);
        return fallbacks.length ? { ...answer, fallbacks: [...fallbacks, ...(answer.fallbacks ?? [])] } : answer;
      } catch (e) {
        if (req.signal.aborted || !(e instanceof ModelError)) throw e;
        if (!FALLS_THROUGH.has(e.code))
          throw failures.length ? new ModelError(e.code, `${e.message} (after ${describe(failures)})`) : e;
        failures.push(e);
        fallbacks.push({ model: model.id, code: e.code, message: e.message });
      }
    }
    const last = failures[failures.length - 1]!;
    if (failures.length === 1) throw last;
    throw new ModelError(last.code, `every model in the chain failed: ${describe(failures)}`);
  }
}

const describe = (failures: readonly ModelError[]): string => failures.map((f) => `${f.code}: ${f.message}`).join('; ');
