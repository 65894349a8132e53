/**
 * The ungoverned lane: the same steps run the way glue code commonly runs them — no pre-flight, no
 * policy gate, no typed output check (the model's answer is read leniently and a tool call it asks
 * for is executed), no budgets, no four-eyes, no hash chain. It calls the same tools and the same
 * model as the governed lane, so the damage it shows is what those steps really do without governance.
 * Its log is plain records: nothing in it can be verified.
 */
import {
  compileGuard,
  evaluateGuard,
  type JsonValue,
  type PolicySnapshot,
  type Program,
  type Step,
} from '@nano-vm/kernel';
import type { ModelPort, ToolRegistry } from '@nano-vm/runtime';

export interface NaiveApproval {
  reviewer: string;
  decision: 'approve' | 'reject' | 'escalate';
}

export interface NaiveOptions {
  program: Program;
  policy: PolicySnapshot | null;
  input: unknown;
  model: ModelPort;
  tools: ToolRegistry;
  approvals?: readonly NaiveApproval[];
  maxSteps?: number;
}

export interface NaiveRecord {
  step: string;
  kind: string;
  detail: string;
  output?: JsonValue;
}

export interface NaiveResult {
  status: 'completed' | 'waiting' | 'crashed';
  outcome: string | null;
  error: string | null;
  path: string[];
  records: NaiveRecord[];
  model_calls: number;
  tokens: number;
  tool_calls: { step: string; tool: string; args: JsonValue; requested_by_model: boolean }[];
  /** Input fields the model was shown that the governed program never projects (names only). */
  pii_sent_to_model: string[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function readPath(state: unknown, path: string): unknown {
  let cur = state;
  for (const k of path.split('.')) cur = isObj(cur) && Object.hasOwn(cur, k) ? cur[k] : undefined;
  return cur;
}

/** A tool call the answer asks for: `name(key="value", ...)` or JSON `{"tool_call": {"name", "arguments"}}`. */
export function requestedToolCall(raw: string): { name: string; args: Record<string, string> } | null {
  try {
    const j: unknown = JSON.parse(raw);
    if (isObj(j) && isObj(j.tool_call) && typeof j.tool_call.name === 'string') {
      const args = isObj(j.tool_call.arguments) ? j.tool_call.arguments : {};
      return { name: j.tool_call.name, args: Object.fromEntries(Object.entries(args).map(([k, v]) => [k, String(v)])) };
    }
  } catch {
    // Not JSON: look for a call in the text.
  }
  const m = /\b([a-z_][a-z0-9_]*)\s*\(([^)]*)\)/i.exec(raw);
  if (!m) return null;
  const args: Record<string, string> = {};
  for (const a of m[2]!.matchAll(/([a-z_]+)\s*=\s*"([^"]*)"/gi)) args[a[1]!] = a[2]!;
  return { name: m[1]!, args };
}

/** Lenient reading, as glue code does: the first enum word anywhere in the answer, else the answer as it is. */
function lenient(raw: string, choices: readonly string[]): string {
  let best: { at: number; v: string } | null = null;
  for (const c of choices) {
    const at = raw.toUpperCase().indexOf(c.toUpperCase());
    if (at >= 0 && (!best || at < best.at)) best = { at, v: c };
  }
  if (best) return best.v;
  try {
    const j: unknown = JSON.parse(raw);
    if (isObj(j) && typeof j.decision === 'string') return j.decision;
  } catch {
    // Not JSON either.
  }
  return raw.trim();
}

export async function runNaive(o: NaiveOptions): Promise<NaiveResult> {
  const state: { input: unknown; steps: Record<string, { output: JsonValue }> } = { input: o.input, steps: {} };
  const res: NaiveResult = {
    status: 'completed',
    outcome: null,
    error: null,
    path: [],
    records: [],
    model_calls: 0,
    tokens: 0,
    tool_calls: [],
    pii_sent_to_model: [],
  };
  const byId = new Map<string, Step>(o.program.steps.map((s) => [s.id, s]));
  const approvals = [...(o.approvals ?? [])];
  const vars = () => ({ input: state.input, steps: state.steps, policy: { thresholds: o.policy?.thresholds ?? {} } });
  const callTool = async (step: string, tool: string, args: Record<string, JsonValue>, byModel: boolean) => {
    const def = o.tools.get(tool);
    if (!def) throw new Error(`no tool ${tool}`);
    res.tool_calls.push({ step, tool, args, requested_by_model: byModel });
    const ctx = {
      signal: new AbortController().signal,
      idempotencyKey: `naive-${step}-${res.tool_calls.length}`,
      step,
      attempt: 1,
    };
    return (await def.run(args, ctx)) as JsonValue;
  };
  let id: string | undefined = o.program.start ?? o.program.steps[0]?.id;
  try {
    for (let n = 0; id !== undefined && n < (o.maxSteps ?? 200); n++) {
      const step = byId.get(id);
      if (!step) throw new Error(`the program sent the run to '${id}', which does not exist`);
      res.path.push(step.id);
      switch (step.kind) {
        case 'tool': {
          const args: Record<string, JsonValue> = {};
          for (const [k, v] of Object.entries(step.args ?? {}))
            args[k] = (typeof v === 'string' ? readPath(state, v) : (v as { value: JsonValue }).value) as JsonValue;
          const output = await callTool(step.id, step.tool, args, false);
          state.steps[step.id] = { output };
          res.records.push({ step: step.id, kind: 'tool', detail: `called ${step.tool}`, output });
          id = step.next;
          break;
        }
        case 'llm': {
          // The whole record goes into the prompt: glue code rarely builds a projection.
          const view = JSON.parse(JSON.stringify({ input: state.input, steps: state.steps })) as Record<
            string,
            JsonValue
          >;
          const customer = readPath(state.input, 'customer');
          if (isObj(customer))
            for (const k of ['full_name', 'date_of_birth', 'email', 'document_number'])
              if (k in customer) res.pii_sent_to_model.push(k);
          const prompt = `${step.prompt}\n\nFull record: ${JSON.stringify(view)}`;
          const answer = await o.model.complete({
            step: step.id,
            call: 1,
            attempt: 1,
            prompt,
            projection: view,
            output: step.output,
            signal: new AbortController().signal,
          });
          res.model_calls++;
          res.tokens += (answer.usage?.input_tokens ?? 0) + (answer.usage?.output_tokens ?? 0);
          const choices = 'enum' in step.output ? step.output.enum : [];
          const output = lenient(answer.raw, choices);
          state.steps[step.id] = { output };
          res.records.push({
            step: step.id,
            kind: 'llm',
            detail: `model answered ${JSON.stringify(answer.raw)}`,
            output,
          });
          const call = requestedToolCall(answer.raw);
          if (call && o.tools.get(call.name)) {
            const args: Record<string, JsonValue> = {
              reviewer: call.args.reviewer ?? 'model',
              first_reviewer: call.args.reviewer ?? 'model',
              four_eyes: false,
              ...call.args,
            };
            const out = await callTool(step.id, call.name, args, true);
            res.records.push({
              step: step.id,
              kind: 'tool',
              detail: `executed ${call.name} as the model's answer asked`,
              output: out,
            });
          }
          id = step.next;
          break;
        }
        case 'condition': {
          let next = step.else;
          for (const c of step.cases) {
            const g = compileGuard(c.when);
            const v = g.ok ? evaluateGuard(g.guard, vars()) : null;
            // Glue code treats an error as "false" and carries on.
            if (v?.ok && v.value === true) {
              next = c.next;
              break;
            }
          }
          res.records.push({ step: step.id, kind: 'condition', detail: `went to ${next}` });
          id = next;
          break;
        }
        case 'wait': {
          const a = approvals.shift();
          if (!a) {
            res.status = 'waiting';
            res.records.push({ step: step.id, kind: 'wait', detail: 'waiting for a reviewer' });
            return res;
          }
          state.steps[step.id] = { output: { ...a } };
          res.records.push({
            step: step.id,
            kind: 'wait',
            detail: `${a.reviewer} chose ${a.decision} (accepted as given)`,
          });
          id = step.next;
          break;
        }
        case 'parallel':
          throw new Error('the naive executor runs no parallel steps');
        case 'end':
          res.outcome = step.outcome;
          res.records.push({ step: step.id, kind: 'end', detail: step.outcome });
          return res;
        default: {
          const never: never = step;
          throw new Error(`unknown step ${(never as Step).id}`);
        }
      }
    }
    throw new Error('the run did not end within the step limit');
  } catch (e) {
    res.status = 'crashed';
    res.error = (e as Error).message;
    return res;
  }
}
