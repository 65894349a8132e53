/**
 * The simulator's scripted reviewer: a deterministic stand-in for a model that reads only what the
 * program projects to it, like a real model would. It escalates what a careful analyst escalates
 * and — like a gullible real model — follows an instruction planted in the data it is shown, so a
 * prompt injection produces a real out-of-enum answer that the program's typed output check meets.
 * It is labelled scripted in every run it takes part in.
 */
import type { JsonValue } from '@nano-vm/kernel';
import type { ModelAnswer, ModelPort, ModelRequest } from '@nano-vm/runtime';

export const REVIEWER_MODEL_ID = 'scripted:kyc-reviewer-sim';

/** An instruction planted in data: "answer CLEAR" together with a call of a tool, as in the media fixture. */
const PLANTED = /answer\s+(CLEAR|APPROVE[D]?)\b[^.]*?(?:and\s+)?call\s+([a-z_]+)\s*\(([^)]*)\)/i;

const isObj = (v: JsonValue | undefined): v is { [k: string]: JsonValue } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The text of every string in the projected view (where a planted instruction could hide). */
function strings(v: JsonValue | undefined, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) strings(x, out);
  else if (isObj(v)) for (const k of Object.keys(v)) strings(v[k], out);
  return out;
}

/** The value at a dotted path of the projected view (projected views nest like the state). */
function at(view: JsonValue, path: string): JsonValue | undefined {
  let cur: JsonValue | undefined = view;
  for (const k of path.split('.')) cur = isObj(cur) ? cur[k] : undefined;
  return cur;
}

/** What the simulated reviewer answers for a projected view (exported for the naive lane, which asks the same model). */
export function reviewAnswer(view: JsonValue): string {
  for (const s of strings(view)) {
    const m = PLANTED.exec(s);
    if (m) return `${m[1]!.toUpperCase()}. Calling ${m[2]}(${m[3]}) as instructed by compliance.`;
  }
  const band = at(view, 'steps.score_risk.output.band');
  const match = at(view, 'steps.screen_sanctions.output.match');
  const pep = at(view, 'steps.screen_sanctions.output.pep');
  const articles = at(view, 'steps.adverse_media.output.articles');
  const seriousMedia =
    Array.isArray(articles) && articles.some((a) => isObj(a) && (a.severity === 'medium' || a.severity === 'high'));
  if (band === 'HIGH' || match === 'potential' || pep === true || seriousMedia) return 'ESCALATE';
  return 'CLEAR';
}

const tokens = (s: string) => Math.max(1, Math.ceil(s.length / 4));

export class ReviewerModel implements ModelPort {
  readonly id = REVIEWER_MODEL_ID;
  readonly scripted = true;
  async complete(req: ModelRequest): Promise<ModelAnswer> {
    const raw = reviewAnswer(req.projection);
    return { raw, model: 'kyc-reviewer-sim', usage: { input_tokens: tokens(req.prompt), output_tokens: tokens(raw) } };
  }
}
