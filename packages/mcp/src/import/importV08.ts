/**
 * llm-nano-vm v0.8 (the Python original, `pip install llm-nano-vm==0.8.0`) program JSON -> a
 * nano-vm program. What cannot be carried over as it was is reported as a W_IMPORT_LOSSY warning
 * with the JSON pointer of the v0.8 field; what is not a v0.8 program at all is refused
 * (E_IMPORT_INVALID, E_IMPORT_VERSION, E_IMPORT_STEP_TYPE). docs/import.md has the mapping.
 *
 * v0.8's control flow is positional: steps run in list order; a condition runs its branch target
 * *inline*, and then the run ends, unless the target has `next_step` (continue sequentially from
 * there) or is itself a condition (continue sequentially from its branch target); `is_terminal`
 * ends the sequential flow. nano-vm edges are explicit, so a step reached both in sequence and as
 * a branch target becomes two steps (`<id>` and `<id>_branch`) with their own successors.
 */
import {
  NanoVmError,
  PROGRAM_FORMAT,
  type ConditionStep,
  type EndStep,
  type JsonValue,
  type LlmOutput,
  type OnError,
  type ParallelChild,
  type Program,
  type Step,
} from '@nano-vm/kernel';
import { translateCondition } from './condition.js';

export interface ImportWarning {
  code: 'W_IMPORT_LOSSY';
  /** JSON pointer into the v0.8 document (e.g. `/steps/2/args/text`). */
  path: string;
  /** The v0.8 step id, when the warning is about a step. */
  step?: string;
  message: string;
}

export interface ImportResult {
  program: Program;
  warnings: ImportWarning[];
}

const STEP_TYPES = ['llm', 'tool', 'condition', 'parallel'] as const;
type StepType = (typeof STEP_TYPES)[number];
const PROGRAM_KEYS = new Set([
  'name',
  'description',
  'version',
  'steps',
  'max_steps',
  'max_stalled_steps',
  'max_tokens',
]);
const STEP_KEYS = new Set([
  'id',
  'type',
  'prompt',
  'system',
  'output_key',
  'tool',
  'args',
  'condition',
  'then',
  'otherwise',
  'parallel_steps',
  'max_concurrency',
  'on_error',
  'max_retries',
  'is_terminal',
  'next_step',
  'allowed_outputs',
  'timeout_seconds',
  'on_timeout',
]);
/** v0.8's default `max_retries`: attempts in all, the first included. */
const V08_MAX_RETRIES = 3;
/** A `$var` reference as v0.8's resolver reads it (a leading letter or `_`: `$42` is text). */
const REF = /\$([A-Za-z_]\w*(?:\.\w+)*)/g;
const WHOLE_REF = /^\$([A-Za-z_]\w*(?:\.\w+)*)$/;
/** max_visits given to a step that closes a loop when the program sets no max_steps. */
const DEFAULT_LOOP_VISITS = 100;

/** One v0.8 step, checked. */
interface V08Step {
  id: string;
  type: StepType;
  at: string;
  raw: Record<string, unknown>;
}

type Mode = 'seq' | 'branch';
interface Node {
  index: number;
  mode: Mode;
}
/** Where a node goes next: another node, the success end, or a named failure end. */
type Target = Node | 'success' | 'no_branch' | 'untranslated';

export function importV08(json: unknown): ImportResult {
  return new Importer(json).run();
}

class Importer {
  readonly warnings: ImportWarning[] = [];
  private readonly doc: Record<string, unknown>;
  private readonly steps: V08Step[] = [];
  private readonly byId = new Map<string, number>();
  /** Sub-step id -> its parallel step's index. */
  private readonly childOf = new Map<string, number>();
  /** output_key -> the indexes of the steps that write it. */
  private readonly outputKeys = new Map<string, number[]>();
  private readonly inputKeys = new Set<string>();
  /** Converted ids: `seq:<i>` / `branch:<i>` / child v0.8 id / end name -> nano-vm id. */
  private readonly ids = new Map<string, string>();
  private readonly used = new Set<string>();
  private readonly ends = new Set<'success' | 'no_branch' | 'untranslated'>();
  private readonly warnedTwice = new Set<number>();

  constructor(json: unknown) {
    if (!isObject(json)) throw invalid('', 'an llm-nano-vm v0.8 program is a JSON object with a "steps" list');
    this.doc = json;
  }

  run(): ImportResult {
    this.checkDocument();
    const reachable = this.reachableNodes();
    this.assignIds(reachable);
    const steps: Step[] = reachable.map((n) => this.convert(n));
    for (const end of ['success', 'no_branch', 'untranslated'] as const)
      if (this.ends.has(end)) steps.push(endStep(end, this.endId(end)));
    this.boundLoops(steps);
    const program: Program = {
      format: PROGRAM_FORMAT,
      id: typeof this.doc.name === 'string' && this.doc.name !== '' ? this.doc.name.slice(0, 256) : 'unnamed',
      ...(typeof this.doc.version === 'string' ? { version: this.doc.version } : {}),
      ...(typeof this.doc.description === 'string' && this.doc.description !== ''
        ? { description: this.doc.description }
        : {}),
      input_schema: {
        type: 'object',
        properties: Object.fromEntries([...this.inputKeys].sort().map((k) => [k, {}])),
      },
      ...this.budgets(),
      steps,
    };
    return { program, warnings: this.warnings };
  }

  // --- The document -----------------------------------------------------------------------------

  private checkDocument(): void {
    const d = this.doc;
    if (Object.hasOwn(d, 'format'))
      throw new NanoVmError(
        'E_IMPORT_VERSION',
        d.format === PROGRAM_FORMAT
          ? `the document is already a nano-vm program (format ${PROGRAM_FORMAT}): run or validate it as it is`
          : `the document declares format ${JSON.stringify(d.format)}; nano-vm import reads llm-nano-vm v0.8 programs, which have no "format" member`,
        { location: { path: '/format' } },
      );
    for (const k of Object.keys(d))
      if (!PROGRAM_KEYS.has(k)) this.warn(`/${esc(k)}`, `unknown member '${k}' is ignored (as v0.8 ignored it)`);
    if (d.name !== undefined && typeof d.name !== 'string') throw invalid('/name', 'name must be a string');
    if (d.version !== undefined && typeof d.version !== 'string')
      throw new NanoVmError(
        'E_IMPORT_VERSION',
        'version must be a string (the program\'s own version label, e.g. "1.0")',
        {
          location: { path: '/version' },
        },
      );
    for (const b of ['max_steps', 'max_stalled_steps', 'max_tokens'])
      if (d[b] !== undefined && d[b] !== null && !(Number.isInteger(d[b]) && (d[b] as number) >= 1))
        throw invalid(`/${b}`, `${b} must be a whole number of at least 1`);
    if (!Array.isArray(d.steps) || d.steps.length === 0) throw invalid('/steps', 'steps must be a non-empty list');
    d.steps.forEach((s, i) => {
      const step = this.checkStep(s, `/steps/${i}`, false);
      this.register(step.id, step.at);
      this.byId.set(step.id, i);
      this.steps.push(step);
    });
    this.steps.forEach((s, i) => {
      const key = s.raw.output_key;
      if (typeof key === 'string') this.outputKeys.set(key, [...(this.outputKeys.get(key) ?? []), i]);
      if (s.type === 'parallel')
        (s.raw.parallel_steps as Record<string, unknown>[]).forEach((c) => {
          this.register(c.id as string, s.at);
          this.childOf.set(c.id as string, i);
        });
    });
    for (const s of this.steps)
      for (const f of ['then', 'otherwise', 'next_step'] as const) {
        const t = s.raw[f];
        if (t !== undefined && t !== null && !this.byId.has(t as string))
          throw invalid(
            `${s.at}/${f}`,
            `step '${s.id}': ${f} names step '${String(t)}', which the program does not have`,
          );
      }
  }

  private register(id: string, at: string): void {
    if (this.byId.has(id) || this.childOf.has(id)) throw invalid(at, `step id '${id}' is used twice`);
  }

  private checkStep(s: unknown, at: string, child: boolean): V08Step {
    if (!isObject(s)) throw invalid(at, 'a step is an object with "id" and "type"');
    if (typeof s.id !== 'string' || s.id === '') throw invalid(`${at}/id`, 'a step needs a non-empty string id');
    const id = s.id;
    const type = s.type;
    if (typeof type !== 'string' || !(STEP_TYPES as readonly string[]).includes(type))
      throw new NanoVmError(
        'E_IMPORT_STEP_TYPE',
        `step '${id}': type ${JSON.stringify(type)} is not one of v0.8's ${STEP_TYPES.join(', ')}`,
        { location: { path: `${at}/type`, step: id } },
      );
    if (child && (type === 'condition' || type === 'parallel'))
      throw new NanoVmError(
        'E_IMPORT_STEP_TYPE',
        `step '${id}': a parallel sub-step must be llm or tool, not ${type}`,
        {
          location: { path: `${at}/type`, step: id },
        },
      );
    for (const k of Object.keys(s))
      if (!STEP_KEYS.has(k))
        this.warn(`${at}/${esc(k)}`, `step '${id}': unknown member '${k}' is ignored (as v0.8 ignored it)`, id);
    const need = (field: string, ok: boolean, what: string) => {
      if (!ok) throw invalid(`${at}/${field}`, `step '${id}': a ${type} step needs ${what}`, id);
    };
    const str = (v: unknown) => typeof v === 'string' && v !== '';
    const optStr = (field: string) => {
      if (s[field] !== undefined && s[field] !== null && typeof s[field] !== 'string')
        throw invalid(`${at}/${field}`, `step '${id}': ${field} must be a string`, id);
    };
    ['system', 'output_key', 'then', 'otherwise', 'next_step', 'on_timeout'].forEach(optStr);
    if (type === 'llm') need('prompt', str(s.prompt), 'a prompt');
    if (type === 'tool') need('tool', str(s.tool), 'a tool name');
    if (type === 'condition') {
      need('condition', str(s.condition), 'a condition');
      need('then', str(s.then) || str(s.otherwise), 'at least one of then, otherwise');
    }
    if (type === 'parallel') {
      need(
        'parallel_steps',
        Array.isArray(s.parallel_steps) && s.parallel_steps.length > 0,
        'a non-empty parallel_steps list',
      );
      (s.parallel_steps as unknown[]).forEach((c, j) => this.checkStep(c, `${at}/parallel_steps/${j}`, true));
    }
    if (s.args !== undefined && !isObject(s.args))
      throw invalid(`${at}/args`, `step '${id}': args must be an object`, id);
    if (s.on_error !== undefined && !['fail', 'skip', 'retry'].includes(s.on_error as string))
      throw invalid(`${at}/on_error`, `step '${id}': on_error must be fail, skip or retry`, id);
    if (s.max_retries !== undefined && !(Number.isInteger(s.max_retries) && (s.max_retries as number) >= 1))
      throw invalid(`${at}/max_retries`, `step '${id}': max_retries must be a whole number of at least 1`, id);
    if (
      s.max_concurrency !== undefined &&
      s.max_concurrency !== null &&
      !(Number.isInteger(s.max_concurrency) && (s.max_concurrency as number) >= 1)
    )
      throw invalid(`${at}/max_concurrency`, `step '${id}': max_concurrency must be a whole number of at least 1`, id);
    if (s.allowed_outputs !== undefined && s.allowed_outputs !== null) {
      if (type !== 'llm')
        throw invalid(
          `${at}/allowed_outputs`,
          `step '${id}': allowed_outputs is valid on llm steps only (as in v0.8)`,
          id,
        );
      if (!Array.isArray(s.allowed_outputs) || s.allowed_outputs.length === 0 || s.allowed_outputs.some((o) => !str(o)))
        throw invalid(
          `${at}/allowed_outputs`,
          `step '${id}': allowed_outputs must be a non-empty list of non-empty strings`,
          id,
        );
    }
    if (
      s.timeout_seconds !== undefined &&
      s.timeout_seconds !== null &&
      !(typeof s.timeout_seconds === 'number' && s.timeout_seconds > 0)
    )
      throw invalid(`${at}/timeout_seconds`, `step '${id}': timeout_seconds must be a positive number`, id);
    if (s.on_timeout !== undefined && !['fail', 'fallback'].includes(s.on_timeout as string))
      throw invalid(`${at}/on_timeout`, `step '${id}': on_timeout must be fail or fallback`, id);
    return { id, type: type as StepType, at, raw: s };
  }

  // --- Control flow -----------------------------------------------------------------------------

  /** Where a node goes after it (a condition: its then and otherwise targets). */
  private successors(n: Node): Target[] {
    const s = this.steps[n.index]!;
    const at = (id: unknown, mode: Mode): Target =>
      typeof id === 'string' && id !== '' ? { index: this.byId.get(id)!, mode } : 'no_branch';
    if (s.type === 'condition') {
      // From the main flow a condition runs its target inline; from a branch, the run goes on in sequence from its target.
      const mode: Mode = n.mode === 'seq' ? 'branch' : 'seq';
      return [at(s.raw.then, mode), at(s.raw.otherwise, mode)];
    }
    if (n.mode === 'branch') return [typeof s.raw.next_step === 'string' ? at(s.raw.next_step, 'seq') : 'success'];
    if (s.raw.is_terminal === true || n.index + 1 >= this.steps.length) return ['success'];
    return [{ index: n.index + 1, mode: 'seq' }];
  }

  private reachableNodes(): Node[] {
    const seen = new Map<string, Node>();
    const queue: Node[] = [{ index: 0, mode: 'seq' }];
    while (queue.length) {
      const n = queue.shift()!;
      const k = key(n);
      if (seen.has(k)) continue;
      seen.set(k, n);
      for (const t of this.successors(n)) if (typeof t === 'object') queue.push(t);
    }
    const nodes = [...seen.values()].sort((a, b) => a.index - b.index || (a.mode === 'seq' ? -1 : 1));
    this.steps.forEach((s, i) => {
      if (!nodes.some((n) => n.index === i))
        this.warn(s.at, `step '${s.id}' is never reached (v0.8 never ran it either): it is left out`, s.id);
    });
    return nodes;
  }

  private assignIds(nodes: Node[]): void {
    const both = new Set(
      nodes
        .filter((n) => n.mode === 'branch' && nodes.some((m) => m.index === n.index && m.mode === 'seq'))
        .map((n) => n.index),
    );
    for (const n of nodes) {
      const s = this.steps[n.index]!;
      const base = n.mode === 'branch' && both.has(n.index) ? `${s.id}_branch` : s.id;
      this.ids.set(key(n), this.unique(base, s.at, s.id));
      if (n.mode === 'branch' && both.has(n.index))
        this.warn(
          s.at,
          `step '${s.id}' runs both in sequence and as a branch target, with different successors: it becomes two steps, '${this.ids.get(`seq:${n.index}`)}' and '${this.ids.get(key(n))}'`,
          s.id,
        );
      if (s.type === 'parallel')
        // Children are steps too: a parallel step made into two gets two sets of children.
        (s.raw.parallel_steps as Record<string, unknown>[]).forEach((c, j) => {
          const cid = c.id as string;
          const name = n.mode === 'branch' && both.has(n.index) ? `${cid}_branch` : cid;
          this.ids.set(`child:${key(n)}:${cid}`, this.unique(name, `${s.at}/parallel_steps/${j}`, cid));
        });
    }
  }

  /** A nano-vm step id for a v0.8 id: letters, digits and `_`, not starting with a digit, unused. */
  private unique(v08: string, at: string, step: string): string {
    let id = v08.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 120);
    if (!/^[A-Za-z_]/.test(id)) id = `s_${id}`;
    let out = id;
    for (let n = 2; this.used.has(out); n++) out = `${id}_${n}`;
    this.used.add(out);
    if (out !== v08 && !out.endsWith('_branch'))
      this.warn(at, `step id '${v08}' is not a nano-vm step id (letters, digits, '_'): it becomes '${out}'`, step);
    return out;
  }

  private endId(end: 'success' | 'no_branch' | 'untranslated'): string {
    const k = `end:${end}`;
    if (!this.ids.has(k)) {
      const base = { success: 'done', no_branch: 'no_branch_target', untranslated: 'untranslated_condition' }[end];
      let out = base;
      for (let n = 2; this.used.has(out); n++) out = `${base}_${n}`;
      this.used.add(out);
      this.ids.set(k, out);
    }
    this.ends.add(end);
    return this.ids.get(k)!;
  }

  private idOf(t: Target): string {
    return typeof t === 'object' ? this.ids.get(key(t))! : this.endId(t);
  }

  // --- Steps ------------------------------------------------------------------------------------

  private convert(n: Node): Step {
    const s = this.steps[n.index]!;
    const id = this.ids.get(key(n))!;
    const next = this.successors(n);
    if (s.type === 'condition') return this.condition(s, id, next);
    if (s.raw.next_step !== undefined && n.mode === 'seq' && !this.warnedTwice.has(-n.index - 1)) {
      this.warnedTwice.add(-n.index - 1);
      this.warn(
        `${s.at}/next_step`,
        `step '${s.id}': next_step applies only when the step runs as a branch target (as in v0.8)`,
        s.id,
      );
    }
    if (s.raw.is_terminal === true && n.mode === 'branch')
      this.warn(
        `${s.at}/is_terminal`,
        `step '${s.id}': is_terminal has no effect on a branch target (as in v0.8)`,
        s.id,
      );
    const to = this.idOf(next[0]!);
    if (s.type === 'parallel') {
      const children = (s.raw.parallel_steps as Record<string, unknown>[]).map((c, j) =>
        this.leaf(
          { id: c.id as string, type: c.type as StepType, at: `${s.at}/parallel_steps/${j}`, raw: c },
          this.ids.get(`child:${key(n)}:${c.id as string}`)!,
          s,
        ),
      );
      return {
        id,
        kind: 'parallel',
        children,
        ...(typeof s.raw.max_concurrency === 'number' ? { max_concurrency: s.raw.max_concurrency } : {}),
        next: to,
      };
    }
    return { ...this.leaf(s, id), next: to } as Step;
  }

  /** An llm or tool step without its `next` (a parallel child as it is; a top-level step gets one). */
  private leaf(s: V08Step, id: string, parent?: V08Step): ParallelChild {
    const r = s.raw;
    const errorSource = parent ?? s;
    if (parent && (r.on_error !== undefined || r.max_retries !== undefined))
      this.warn(
        `${s.at}/on_error`,
        `step '${s.id}': a parallel sub-step's own on_error/max_retries is ignored (as in v0.8: the parallel step's applies)`,
        s.id,
      );
    if (r.output_key !== undefined && parent)
      this.warn(
        `${s.at}/output_key`,
        `step '${s.id}': output_key of a parallel sub-step is ignored (as in v0.8)`,
        s.id,
      );
    if (s.type === 'llm') {
      const allowed = Array.isArray(r.allowed_outputs) ? [...new Set(r.allowed_outputs as string[])] : undefined;
      const output: LlmOutput = allowed ? { enum: allowed } : { schema: { type: 'string' } };
      if (!allowed)
        this.warn(
          `${s.at}/prompt`,
          `step '${s.id}': the answer must now be a JSON string ("…"), checked as { type: string }; v0.8 took the raw text. Add allowed_outputs, or a JSON output schema, where you can`,
          s.id,
        );
      let prompt = r.prompt as string;
      if (typeof r.system === 'string' && r.system !== '') {
        prompt = `${r.system}\n\n${prompt}`;
        this.warn(
          `${s.at}/system`,
          `step '${s.id}': nano-vm has no system prompt: it is put before the prompt, separated by a blank line`,
          s.id,
        );
      }
      const { text, projection } = this.template(prompt, `${s.at}/prompt`, s.id);
      const step: ParallelChild = { id, kind: 'llm', prompt: text, projection, output };
      const fallback: JsonValue = allowed ? allowed[0]! : '';
      this.timeouts(s, step, fallback);
      this.onError(errorSource, step, fallback, s);
      return step;
    }
    const args: Record<string, string | { value: JsonValue }> = {};
    for (const [name, v] of Object.entries((r.args as Record<string, unknown> | undefined) ?? {})) {
      const at = `${s.at}/args/${esc(name)}`;
      const whole = typeof v === 'string' ? WHOLE_REF.exec(v) : null;
      if (whole) {
        args[name] = this.ref(whole[1]!, at, s.id);
        continue;
      }
      if (typeof v === 'string' && new RegExp(REF.source).test(v))
        this.warn(
          at,
          `step '${s.id}': "${clip(v)}" interpolates variables into text; nano-vm tool arguments are a state path or a literal, so it is passed as the literal text. Pass the parts as separate arguments`,
          s.id,
        );
      args[name] = { value: jsonValue(v, at) };
    }
    if (r.timeout_seconds !== undefined && r.timeout_seconds !== null)
      this.warn(
        `${s.at}/timeout_seconds`,
        `step '${s.id}': timeout_seconds is ignored on a tool step (as in v0.8, where it applies to llm calls only)`,
        s.id,
      );
    const step: ParallelChild = {
      id,
      kind: 'tool',
      tool: r.tool as string,
      ...(Object.keys(args).length ? { args } : {}),
    };
    this.onError(errorSource, step, null, s);
    return step;
  }

  private timeouts(s: V08Step, step: ParallelChild, fallback: JsonValue): void {
    const t = s.raw.timeout_seconds;
    if (typeof t !== 'number') return;
    step.timeout_ms = Math.max(1, Math.round(t * 1000));
    if (s.raw.on_timeout === 'fallback' && (s.raw.on_error ?? 'fail') === 'fail') {
      step.on_error = { action: 'fallback', value: fallback };
      this.warn(
        `${s.at}/on_timeout`,
        `step '${s.id}': on_timeout: fallback becomes on_error fallback ${JSON.stringify(fallback)}, which applies to every failure of the step, not to timeouts only`,
        s.id,
      );
    }
  }

  private onError(src: V08Step, step: ParallelChild, fallback: JsonValue, s: V08Step): void {
    const mode = src.raw.on_error ?? 'fail';
    if (mode === 'retry') {
      const attempts = Math.min(100, (src.raw.max_retries as number | undefined) ?? V08_MAX_RETRIES);
      step.on_error = { action: 'retry', max_attempts: attempts } satisfies OnError;
      this.warn(
        `${src.at}/on_error`,
        `step '${s.id}': retried up to ${attempts} attempts in all, at once: v0.8's exponential backoff (1 s, 2 s, 4 s…) is not carried over`,
        s.id,
      );
    } else if (mode === 'skip') {
      step.on_error = { action: 'fallback', value: fallback };
      this.warn(
        `${src.at}/on_error`,
        `step '${s.id}': on_error: skip becomes a fallback to ${JSON.stringify(fallback)}; v0.8 left the failed step without output`,
        s.id,
      );
    }
  }

  private condition(s: V08Step, id: string, next: Target[]): ConditionStep {
    const [thenT, elseT] = next as [Target, Target];
    const tr = translateCondition(s.raw.condition as string, (name) =>
      this.refOrUndefined(name, `${s.at}/condition`, s.id),
    );
    if (!tr.ok) {
      this.warn(
        `${s.at}/condition`,
        `step '${s.id}': the condition "${clip(s.raw.condition as string)}" could not be translated (${tr.reason}); the converted step ends the run as UNTRANSLATED_CONDITION (a failure outcome) until you write its guard`,
        s.id,
      );
      const cases = [...new Set([thenT, elseT].filter((t) => typeof t === 'object').map((t) => this.idOf(t)))].map(
        (to) => ({ when: 'false', next: to }),
      );
      return {
        id,
        kind: 'condition',
        cases: cases.length ? cases : [{ when: 'false', next: this.endId('untranslated') }],
        else: this.endId('untranslated'),
      };
    }
    for (const note of tr.notes) this.warn(`${s.at}/condition`, `step '${s.id}': ${note}`, s.id);
    for (const [t, f] of [
      [thenT, 'then'],
      [elseT, 'otherwise'],
    ] as const)
      if (t === 'no_branch')
        this.warn(
          `${s.at}/${f}`,
          `step '${s.id}': without ${f}, that outcome ends the run as NO_BRANCH_TARGET (a failure outcome; v0.8 failed the run)`,
          s.id,
        );
    return { id, kind: 'condition', cases: [{ when: tr.cel, next: this.idOf(thenT) }], else: this.idOf(elseT) };
  }

  // --- Variables --------------------------------------------------------------------------------

  /** `$var` references in text -> `{{path}}` placeholders and the projection they need. */
  private template(text: string, at: string, step: string): { text: string; projection: string[] } {
    const projection = new Set<string>();
    if (text.includes('{{'))
      this.warn(at, `step '${step}': the text contains '{{', which nano-vm reads as a placeholder`, step);
    const out = text.replace(REF, (_m, name: string) => {
      const path = this.ref(name, at, step);
      projection.add(path);
      return `{{${path}}}`;
    });
    return { text: out, projection: [...projection] };
  }

  private refOrUndefined(name: string, at: string, step: string): string | undefined {
    return this.ref(name, at, step);
  }

  /**
   * A v0.8 variable -> a nano-vm state path: `$step.output…` (a step's output; `output` segments are
   * transparent, as in v0.8), `$key` (a step's output_key, else a run-input member).
   */
  private ref(name: string, at: string, step: string): string {
    const [root, ...rest] = name.split('.');
    const tail = rest.filter((p) => p !== 'output');
    const join = (base: string) => [base, ...tail].join('.');
    const parallel = this.childOf.get(root!);
    if (parallel !== undefined) {
      const node = this.ids.has(`seq:${parallel}`) ? `seq:${parallel}` : `branch:${parallel}`;
      return join(`steps.${this.stepPath(parallel, at, step)}.output.${this.ids.get(`child:${node}:${root}`) ?? root}`);
    }
    const index = this.byId.get(root!);
    if (index !== undefined) return join(`steps.${this.stepPath(index, at, step)}.output`);
    const writers = this.outputKeys.get(root!);
    if (writers) {
      if (writers.length > 1)
        this.warn(
          at,
          `step '${step}': $${root} is the output_key of several steps; it reads the last of them in the list, '${this.steps[writers.at(-1)!]!.id}'`,
          step,
        );
      return [`steps.${this.stepPath(writers.at(-1)!, at, step)}.output`, ...rest].join('.');
    }
    this.inputKeys.add(root!);
    return ['input', root!, ...rest].join('.');
  }

  /** The nano-vm id whose output a reference to v0.8 step `index` reads. */
  private stepPath(index: number, at: string, step: string): string {
    const seq = this.ids.get(`seq:${index}`);
    const branch = this.ids.get(`branch:${index}`);
    if (seq !== undefined && branch !== undefined && !this.warnedTwice.has(index)) {
      this.warnedTwice.add(index);
      this.warn(
        at,
        `step '${step}': a reference to '${this.steps[index]!.id}' reads the in-sequence copy '${seq}', not '${branch}'`,
        step,
      );
    }
    return seq ?? branch ?? this.steps[index]!.id;
  }

  // --- Program-wide -----------------------------------------------------------------------------

  private budgets(): { budgets?: Program['budgets'] } {
    const b: NonNullable<Program['budgets']> = {};
    for (const k of ['max_steps', 'max_tokens', 'max_stalled_steps'] as const) {
      const v = this.doc[k];
      if (typeof v === 'number') b[k] = v;
    }
    if (typeof this.doc.max_stalled_steps === 'number')
      this.warn(
        '/max_stalled_steps',
        "max_stalled_steps counts consecutive effect steps that leave the state unchanged (v0.8 compared a fingerprint of every step's output)",
      );
    return Object.keys(b).length ? { budgets: b } : {};
  }

  /** Every cycle needs a step with max_visits: the target of each edge that closes one gets it. */
  private boundLoops(steps: Step[]): void {
    const byId = new Map(steps.map((s) => [s.id, s]));
    const edges = (s: Step): string[] =>
      s.kind === 'condition' ? [...s.cases.map((c) => c.next), s.else] : s.kind === 'end' ? [] : [s.next];
    const state = new Map<string, 'open' | 'done'>();
    const visits = (this.doc.max_steps as number | undefined) ?? DEFAULT_LOOP_VISITS;
    const walk = (id: string) => {
      state.set(id, 'open');
      for (const t of edges(byId.get(id)!)) {
        if (state.get(t) === 'open') {
          const target = byId.get(t)!;
          if (target.kind !== 'end' && target.max_visits === undefined) {
            target.max_visits = visits;
            this.warn(
              '/steps',
              `the program loops back to '${t}': it may be entered at most ${visits} times (max_visits), then the run fails (E_MAX_VISITS); v0.8 bounded loops by max_steps only`,
            );
          }
        } else if (!state.has(t)) walk(t);
      }
      state.set(id, 'done');
    };
    walk(steps[0]!.id);
  }

  private warn(path: string, message: string, step?: string): void {
    this.warnings.push({ code: 'W_IMPORT_LOSSY', path, ...(step !== undefined ? { step } : {}), message });
  }
}

function endStep(end: 'success' | 'no_branch' | 'untranslated', id: string): EndStep {
  if (end === 'success') return { id, kind: 'end', outcome: 'SUCCESS' };
  return {
    id,
    kind: 'end',
    outcome: end === 'no_branch' ? 'NO_BRANCH_TARGET' : 'UNTRANSLATED_CONDITION',
    failure: true,
  };
}

const key = (n: Node) => `${n.mode}:${n.index}`;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON pointer segment. */
function esc(k: string): string {
  return k.replace(/~/g, '~0').replace(/\//g, '~1');
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function jsonValue(v: unknown, at: string): JsonValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (Array.isArray(v)) return v.map((x, i) => jsonValue(x, `${at}/${i}`));
  if (isObject(v)) {
    const out: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v))
      Object.defineProperty(out, k, {
        value: jsonValue(x, `${at}/${esc(k)}`),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return out;
  }
  throw invalid(at, 'not a JSON value');
}

function invalid(path: string, message: string, step?: string): NanoVmError {
  return new NanoVmError('E_IMPORT_INVALID', `${path || '/'}: ${message}`, {
    location: { path, ...(step !== undefined ? { step } : {}) },
  });
}
