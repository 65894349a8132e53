/**
 * The scripted model: deterministic answers from a YAML file, keyed by step id and call number.
 * It is the default for examples and tests and is labelled as scripted in every output.
 *
 *   model: refund-script          # optional label, shown as `scripted:<label>`
 *   answers:                      # step id -> answers for call 1, 2, 3, ...
 *     classify:
 *       - approve                            # raw answer text
 *       - { raw: "APPROVE", usage: { input_tokens: 12, output_tokens: 1 }, cost_usd: 0.0001 }
 *       - { json: { amount: 12 } }           # raw = that value as JSON
 *       - { timeout: true }                  # never answers (the step's timeout fires)
 *       - { error: { code: E_MODEL_UNAVAILABLE, message: "upstream 503" } }
 *   cases:                        # optional per-input overrides: input file stem -> { answers }
 *     high_risk: { answers: { review: [escalate] } }
 *
 * A call beyond the listed answers repeats the last one (a script that needs "always X" lists X once).
 */
import { parse } from 'yaml';
import { NanoVmError, type Program, type Usage } from '@nano-vm/kernel';
import { ModelError, type ModelAnswer, type ModelPort, type ModelRequest } from './port.js';
import { isObj } from './providerHttp.js';

type ScriptEntry =
  | { kind: 'raw'; raw: string; usage?: Usage; cost_usd?: number }
  | { kind: 'timeout' }
  | { kind: 'error'; code: string; message: string };

export interface ModelScript {
  label: string;
  answers: Record<string, ScriptEntry[]>;
  cases: Record<string, Record<string, ScriptEntry[]>>;
}

/** A scripted-model file that is not in the format (docs/cli.md). */
export class ScriptError extends NanoVmError {
  constructor(message: string) {
    super('E_SCRIPT_FORMAT', message);
  }
}

function parseEntry(v: unknown, where: string): ScriptEntry {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return { kind: 'raw', raw: String(v) };
  if (!isObj(v)) throw new ScriptError(`${where}: an answer is a string or an object with raw, json, timeout or error`);
  const known = ['raw', 'json', 'timeout', 'error', 'usage', 'cost_usd'];
  for (const k of Object.keys(v))
    if (!known.includes(k)) throw new ScriptError(`${where}: unknown key '${k}' (expected one of ${known.join(', ')})`);
  if (v.timeout === true) return { kind: 'timeout' };
  if (v.error !== undefined) {
    const e = isObj(v.error) ? v.error : { message: String(v.error) };
    return {
      kind: 'error',
      code: typeof e.code === 'string' ? e.code : 'E_MODEL_ERROR',
      message: typeof e.message === 'string' ? e.message : 'scripted model error',
    };
  }
  let raw: string;
  if (typeof v.raw === 'string') raw = v.raw;
  else if ('json' in v) raw = JSON.stringify(v.json);
  else throw new ScriptError(`${where}: an answer object needs raw, json, timeout or error`);
  const entry: ScriptEntry = { kind: 'raw', raw };
  if (v.usage !== undefined) {
    const u = v.usage;
    if (!isObj(u) || typeof u.input_tokens !== 'number' || typeof u.output_tokens !== 'number')
      throw new ScriptError(`${where}: usage needs numeric input_tokens and output_tokens`);
    entry.usage = { input_tokens: u.input_tokens, output_tokens: u.output_tokens };
  }
  if (v.cost_usd !== undefined) {
    if (typeof v.cost_usd !== 'number' || v.cost_usd < 0)
      throw new ScriptError(`${where}: cost_usd must be a non-negative number`);
    entry.cost_usd = v.cost_usd;
  }
  return entry;
}

function parseAnswers(v: unknown, where: string): Record<string, ScriptEntry[]> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new ScriptError(`${where}: must map step ids to lists of answers`);
  const out: Record<string, ScriptEntry[]> = {};
  for (const [step, list] of Object.entries(v)) {
    const items = Array.isArray(list) ? list : [list];
    if (items.length === 0) throw new ScriptError(`${where}.${step}: needs at least one answer`);
    out[step] = items.map((x, i) => parseEntry(x, `${where}.${step}[${i}]`));
  }
  return out;
}

export function parseModelScript(text: string, label = 'script'): ModelScript {
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 0 });
  } catch (e) {
    throw new ScriptError(`model script is not valid YAML: ${(e as Error).message}`);
  }
  if (!isObj(doc)) throw new ScriptError('model script must be a mapping with an `answers` key');
  for (const k of Object.keys(doc))
    if (!['model', 'answers', 'cases'].includes(k))
      throw new ScriptError(`unknown top-level key '${k}' (expected model, answers, cases)`);
  const cases: ModelScript['cases'] = {};
  if (doc.cases !== undefined) {
    if (!isObj(doc.cases)) throw new ScriptError('cases: must map input names to { answers }');
    for (const [name, c] of Object.entries(doc.cases)) {
      if (!isObj(c)) throw new ScriptError(`cases.${name}: must be a mapping with answers`);
      cases[name] = parseAnswers(c.answers, `cases.${name}.answers`);
    }
  }
  return {
    label: typeof doc.model === 'string' ? doc.model : label,
    answers: parseAnswers(doc.answers, 'answers'),
    cases,
  };
}

const estimateTokens = (s: string): number => Math.max(1, Math.ceil(s.length / 4));

/** Where the script names each step: `answers.<step>` and `cases.<case>.answers.<step>`. */
function scriptedSteps(script: ModelScript): [step: string, where: string][] {
  return [
    ...Object.keys(script.answers).map((step): [string, string] => [step, `answers.${step}`]),
    ...Object.entries(script.cases).flatMap(([name, answers]) =>
      Object.keys(answers).map((step): [string, string] => [step, `cases.${name}.answers.${step}`]),
    ),
  ];
}

export class ScriptedModel implements ModelPort {
  readonly scripted = true;
  readonly id: string;
  private readonly answers: Record<string, ScriptEntry[]>;
  private readonly named: [step: string, where: string][];

  constructor(script: ModelScript, caseName?: string) {
    this.id = `scripted:${script.label}`;
    this.answers = { ...script.answers, ...(caseName !== undefined ? script.cases[caseName] : undefined) };
    this.named = scriptedSteps(script);
  }

  /**
   * An answer for a step that is not an llm step of the program is never asked for: the script
   * was written for another program (or has a typo), and the run would silently take its fallbacks.
   */
  checkProgram(program: Program): void {
    const llm = program.steps
      .flatMap((s): { id: string; kind: string }[] => (s.kind === 'parallel' ? s.children : [s]))
      .filter((s) => s.kind === 'llm')
      .map((s) => s.id);
    const unknown = this.named.filter(([step]) => !llm.includes(step)).map(([, where]) => where);
    if (unknown.length)
      throw new NanoVmError(
        'E_SCRIPT_UNKNOWN_STEP',
        `the scripted model ${this.id} has answers for steps program '${program.id}' has no llm step for: ${unknown.join(', ')} (its llm steps: ${llm.length ? llm.join(', ') : 'none'})`,
      );
  }

  complete(req: ModelRequest): Promise<ModelAnswer> {
    const list = this.answers[req.step];
    if (!list)
      return Promise.reject(
        new ModelError('E_SCRIPT_MISSING', `the scripted model has no answer for step '${req.step}'`),
      );
    const entry = list[Math.min(req.call, list.length) - 1]!;
    switch (entry.kind) {
      case 'error':
        return Promise.reject(new ModelError(entry.code, entry.message));
      case 'timeout':
        // Hang until the step's timeout aborts the call (the executor turns that into E_TIMEOUT).
        return new Promise((_, reject) => {
          if (req.signal.aborted) reject(new ModelError('E_TIMEOUT', 'model call timed out'));
          req.signal.addEventListener('abort', () => reject(new ModelError('E_TIMEOUT', 'model call timed out')), {
            once: true,
          });
        });
      case 'raw':
        return Promise.resolve({
          raw: entry.raw,
          model: this.id,
          usage: entry.usage ?? { input_tokens: estimateTokens(req.prompt), output_tokens: estimateTokens(entry.raw) },
          cost_usd: entry.cost_usd ?? 0,
        });
    }
  }
}
