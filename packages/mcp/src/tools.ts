/**
 * The MCP tools: each one's input and output JSON Schema and what it calls on the service. The
 * schemas are what `tools/list` shows; arguments are checked against the input schema before
 * anything runs (E_MCP_ARGS), and every result's structuredContent matches the output schema.
 */
import type { Principal } from './principals.js';
import type { NanoVmService, Progress } from './service.js';

type Schema = Record<string, unknown>;

export interface ToolSpec {
  name: string;
  title: string;
  description: string;
  inputSchema: Schema;
  outputSchema: Schema;
  /** The run id the call is about, for the audit log. */
  runOf?: (args: Record<string, unknown>, result: Record<string, unknown> | undefined) => string | null;
  call(svc: NanoVmService, p: Principal, args: Record<string, unknown>, progress?: Progress): Promise<unknown>;
  annotations?: { readOnlyHint?: boolean; destructiveHint?: boolean; idempotentHint?: boolean };
}

const obj = (properties: Record<string, Schema>, required: string[] = [], strict = true): Schema => ({
  type: 'object',
  properties,
  required,
  ...(strict ? { additionalProperties: false } : {}),
});
const str = (description: string, extra: Schema = {}): Schema => ({ type: 'string', description, ...extra });
const int = (description: string, extra: Schema = {}): Schema => ({ type: 'integer', description, ...extra });
const any = (description: string): Schema => ({ description });
const nullable = (type: string, description: string): Schema => ({ type: [type, 'null'], description });

const PROGRAM_SOURCE = obj(
  {
    name: str('a stored program by name (its latest version unless `version`)', { minLength: 1, maxLength: 200 }),
    version: int('a version of the named program', { minimum: 1 }),
    hash: str('a stored program by content hash', { pattern: '^[0-9a-f]{64}$' }),
    text: str('an inline program, YAML or JSON (docs/dsl.md)', { maxLength: 4 * 1024 * 1024 }),
    format: {
      enum: ['yaml', 'json', 'llm-nano-vm/v0.8'],
      description:
        'format of `text` (yaml or json guessed when absent); llm-nano-vm/v0.8: a program of the Python original, converted as `nano-vm import` does, with what could not be carried over as W_IMPORT_LOSSY warnings',
    },
  },
  [],
);
const RUN_ID = str('a run id', { minLength: 1, maxLength: 200 });
const ISSUES = {
  type: 'array',
  items: { type: 'object' },
  description: 'issues with code, severity, message, location',
};
const CURSOR = str('the next_cursor of the previous page', { maxLength: 1000 });
const LIMIT = int('page size (at most the server limit)', { minimum: 1, maximum: 10000 });
const STATUS = { enum: ['completed', 'failed', 'budget_exceeded', 'stalled', 'suspended', 'running'] };

const RUN_VIEW_PROPS: Record<string, Schema> = {
  run_id: str('the run id'),
  program_id: str('the program id'),
  program_hash: str('the program hash the genesis event pins'),
  status: {
    type: 'string',
    description: 'completed | failed | budget_exceeded | stalled | suspended | running | queued (waiting for a worker)',
  },
  outcome: nullable('string', 'the named outcome of the end step'),
  head_hash: str('hash of the last event'),
  event_count: int('events in the trace'),
  started_by: nullable('string', 'the principal that started it'),
  waiting: {
    type: ['object', 'null'],
    description: 'the wait a suspended run is at: {step, role, deadline}',
  },
};
const RUN_VIEW = obj(RUN_VIEW_PROPS, ['run_id', 'status', 'head_hash'], false);
const RUN_REPORT = obj(
  {
    ...RUN_VIEW_PROPS,
    receipt: {
      type: ['object', 'null'],
      description: 'the receipt (a function of the trace; docs/trace-format.md §5)',
    },
    replayed: {
      type: 'boolean',
      description: "true when this is an earlier call's result for the same idempotency key",
    },
    warnings: {
      type: 'array',
      items: { type: 'object' },
      description: 'what the conversion of an llm-nano-vm v0.8 program could not carry over (W_IMPORT_LOSSY)',
    },
  },
  ['run_id', 'status', 'replayed'],
  false,
);

const a = <T>(x: Record<string, unknown>, k: string): T => x[k] as T;
const opt = <T>(x: Record<string, unknown>, k: string): { [key: string]: T } =>
  x[k] === undefined ? {} : { [k]: x[k] as T };

export const TOOLS: readonly ToolSpec[] = [
  {
    name: 'validate_program',
    title: 'Validate a program',
    description:
      "Checks a program (inline YAML/JSON or a stored one) against the DSL, the server's tools and a policy (the server's, or `policy` given as text): returns every issue with its code and location. Runs nothing.",
    inputSchema: obj(
      { program: PROGRAM_SOURCE, policy: str('a policy (YAML or JSON text) to check against instead of the server’s') },
      ['program'],
    ),
    outputSchema: obj(
      { valid: { type: 'boolean' }, program_id: str('program id'), program_hash: str('content hash'), issues: ISSUES },
      ['valid', 'issues'],
    ),
    annotations: { readOnlyHint: true },
    call: (s, p, x) => s.validate(p, { program: a(x, 'program'), ...opt(x, 'policy') }),
  },
  {
    name: 'put_program',
    title: 'Store a program',
    description:
      'Stores a valid program under a name (default: its id) by content hash (scope admin). Storing a changed program adds a version; storing the same one again returns the existing version.',
    inputSchema: obj(
      {
        text: str('the program, YAML or JSON', { maxLength: 4 * 1024 * 1024 }),
        format: { enum: ['yaml', 'json', 'llm-nano-vm/v0.8'] },
        name: str('the catalogue name (default: the program id)', { minLength: 1, maxLength: 200 }),
      },
      ['text'],
    ),
    outputSchema: obj(
      {
        name: str('name'),
        version: int('version'),
        hash: str('content hash'),
        created: { type: 'boolean' },
        warnings: ISSUES,
      },
      ['name', 'version', 'hash', 'created'],
    ),
    annotations: { idempotentHint: true },
    call: (s, p, x) => s.putProgram(p, { text: a(x, 'text'), ...opt(x, 'format'), ...opt(x, 'name') }),
  },
  {
    name: 'get_program',
    title: 'Get a stored program',
    description: 'A stored program by name (latest version, or `version`) or by hash, with the program itself.',
    inputSchema: obj({ name: str('name'), version: int('version', { minimum: 1 }), hash: str('content hash') }),
    outputSchema: obj(
      {
        name: str('name'),
        version: int('version'),
        hash: str('content hash'),
        principal: str('who stored it'),
        created_at: str('when'),
        program: { type: 'object' },
      },
      ['name', 'version', 'hash', 'program'],
    ),
    annotations: { readOnlyHint: true },
    call: (s, p, x) => s.getProgram(p, { ...opt(x, 'name'), ...opt(x, 'version'), ...opt(x, 'hash') }),
  },
  {
    name: 'list_programs',
    title: 'List stored programs',
    description: 'Live stored programs by name and version, a page at a time.',
    inputSchema: obj({ name: str('only this name'), cursor: CURSOR, limit: LIMIT }),
    outputSchema: obj(
      { programs: { type: 'array', items: { type: 'object' } }, next_cursor: nullable('string', 'next page') },
      ['programs', 'next_cursor'],
    ),
    annotations: { readOnlyHint: true },
    call: (s, p, x) => s.listPrograms(p, { ...opt(x, 'name'), ...opt(x, 'cursor'), ...opt(x, 'limit') }),
  },
  {
    name: 'delete_program',
    title: 'Delete a stored program',
    description:
      'Removes a program (every version, or one) from the catalogue. Its runs keep their own copy of the program and still verify and replay.',
    inputSchema: obj({ name: str('name', { minLength: 1 }), version: int('version', { minimum: 1 }) }, ['name']),
    outputSchema: obj({ deleted: int('versions deleted') }, ['deleted']),
    annotations: { destructiveHint: true },
    call: (s, p, x) => s.deleteProgram(p, { name: a(x, 'name'), ...opt(x, 'version') }),
  },
  {
    name: 'run_program',
    title: 'Run a program',
    description:
      "Runs a program (stored by name or hash, or inline) on an input with the server's model, tools and policy, recording a hash-chained trace. wait (default true) returns when it finishes or suspends at a wait; wait false returns at once with the run id. On a PostgreSQL store the run goes to the workers (wait then waits for one to finish or suspend it, up to the server's wait limit: E_MCP_WAIT_LIMIT). Send a progressToken to get a progress notification per step. An idempotency_key makes retries safe: the same key with the same request returns the first run (replayed: true); with another request it is refused (E_IDEMPOTENCY_MISMATCH).",
    inputSchema: obj(
      {
        program: PROGRAM_SOURCE,
        input: any("the run input, checked against the program's input_schema"),
        idempotency_key: str('a key for safe retries, bound to this principal and this request', {
          minLength: 1,
          maxLength: 200,
        }),
        wait: { type: 'boolean', description: 'wait until the run finishes or suspends (default true)' },
        subject: str('the data subject of the run, for erase_subject', { maxLength: 1000 }),
      },
      ['program', 'input'],
    ),
    outputSchema: RUN_REPORT,
    runOf: (_x, r) => (r ? ((r.run_id as string) ?? null) : null),
    call: (s, p, x, progress) =>
      s.run(
        p,
        {
          program: a(x, 'program'),
          input: x.input,
          ...opt(x, 'idempotency_key'),
          ...opt(x, 'wait'),
          ...opt(x, 'subject'),
        },
        progress,
      ),
  },
  {
    name: 'get_run',
    title: 'Get a run',
    description: 'A run’s status, outcome, head hash, who started it, and what a suspended run waits for.',
    inputSchema: obj({ run_id: RUN_ID }, ['run_id']),
    outputSchema: RUN_VIEW,
    annotations: { readOnlyHint: true },
    runOf: (x) => x.run_id as string,
    call: (s, p, x) => s.getRun(p, { run_id: a(x, 'run_id') }),
  },
  {
    name: 'list_runs',
    title: 'List runs',
    description:
      'Runs in creation order, filtered by status, program id or the principal that started them, a page at a time.',
    inputSchema: obj({
      status: STATUS,
      program_id: str('only runs of this program id'),
      started_by: str('only runs this principal started'),
      cursor: CURSOR,
      limit: LIMIT,
    }),
    outputSchema: obj({ runs: { type: 'array', items: RUN_VIEW }, next_cursor: nullable('string', 'next page') }, [
      'runs',
      'next_cursor',
    ]),
    annotations: { readOnlyHint: true },
    call: (s, p, x) =>
      s.listRuns(p, {
        ...opt(x, 'status'),
        ...opt(x, 'program_id'),
        ...opt(x, 'started_by'),
        ...opt(x, 'cursor'),
        ...opt(x, 'limit'),
      }),
  },
  {
    name: 'get_trace',
    title: 'Get a run’s trace',
    description: 'The run’s events (docs/trace-format.md), a page at a time: pass next_after_seq back as after_seq.',
    inputSchema: obj({ run_id: RUN_ID, after_seq: int('events after this seq', { minimum: -1 }), limit: LIMIT }, [
      'run_id',
    ]),
    outputSchema: obj(
      {
        run_id: str('run'),
        events: { type: 'array', items: { type: 'object' } },
        event_count: int('events in all'),
        next_after_seq: nullable('integer', 'pass as after_seq for the next page'),
      },
      ['run_id', 'events', 'event_count', 'next_after_seq'],
    ),
    annotations: { readOnlyHint: true },
    runOf: (x) => x.run_id as string,
    call: (s, p, x) => s.getTrace(p, { run_id: a(x, 'run_id'), ...opt(x, 'after_seq'), ...opt(x, 'limit') }),
  },
  {
    name: 'get_receipt',
    title: 'Get a run’s receipt',
    description: 'The receipt, recomputed from the stored trace.',
    inputSchema: obj({ run_id: RUN_ID }, ['run_id']),
    outputSchema: obj({ receipt: { type: 'object' } }, ['receipt']),
    annotations: { readOnlyHint: true },
    runOf: (x) => x.run_id as string,
    call: (s, p, x) => s.getReceipt(p, { run_id: a(x, 'run_id') }),
  },
  {
    name: 'export_bundle',
    title: 'Export a run’s bundle',
    description:
      'Program, policy, input, events and receipt: everything verify and replay need, offline (as `nano-vm export`).',
    inputSchema: obj({ run_id: RUN_ID }, ['run_id']),
    outputSchema: obj({ bundle: { type: 'object' } }, ['bundle']),
    annotations: { readOnlyHint: true },
    runOf: (x) => x.run_id as string,
    call: (s, p, x) => s.exportBundle(p, { run_id: a(x, 'run_id') }),
  },
  {
    name: 'verify_bundle',
    title: 'Verify a bundle',
    description:
      'Recomputes a bundle’s hash chain and receipt (docs/trace-format.md §6). ok false names the first bad event and the code; a tampered bundle is a result, not an error.',
    inputSchema: obj({ bundle: { type: 'object', description: 'a bundle, as export_bundle returns it' } }, ['bundle']),
    outputSchema: obj(
      {
        ok: { type: 'boolean' },
        code: nullable('string', 'why not'),
        first_bad_seq: nullable('integer', 'first bad event'),
        reason: nullable('string', 'in words'),
        head_hash: nullable('string', 'the verified head hash'),
      },
      ['ok', 'code', 'first_bad_seq', 'reason', 'head_hash'],
    ),
    annotations: { readOnlyHint: true },
    call: (s, p, x) => Promise.resolve(s.verify(p, { bundle: x.bundle })),
  },
  {
    name: 'replay_run',
    title: 'Replay a run',
    description:
      'Re-derives a stored run (or a given bundle) from its recorded model and tool results and compares it event by event. With `program` or `policy` it is counterfactual: would this run have gone otherwise under another version?',
    inputSchema: obj(
      {
        run_id: RUN_ID,
        bundle: { type: 'object', description: 'a bundle instead of a stored run' },
        program: PROGRAM_SOURCE,
        policy: str('another policy (YAML or JSON text)'),
      },
      [],
    ),
    outputSchema: obj(
      {
        identical: { type: 'boolean' },
        counterfactual: { type: 'boolean' },
        first_divergence: { type: ['object', 'null'] },
        status: { type: 'string' },
        outcome: nullable('string', 'outcome of the replay'),
        recorded_outcome: nullable('string', 'outcome recorded'),
        path: { type: 'array', items: { type: 'string' } },
        recorded_path: { type: 'array', items: { type: 'string' } },
      },
      ['identical', 'counterfactual', 'status'],
      false,
    ),
    annotations: { readOnlyHint: true },
    runOf: (x) => (x.run_id as string | undefined) ?? null,
    call: (s, p, x) =>
      s.replay(p, { ...opt(x, 'run_id'), ...opt(x, 'bundle'), ...opt(x, 'program'), ...opt(x, 'policy') }),
  },
  {
    name: 'resume_run',
    title: 'Resume (approve) a waiting run',
    description:
      "Delivers the event a suspended run waits for (e.g. an approval). The role is the caller's: a wait for role R needs the scope approve:R. Four-eyes: the principal that started the run, or one that already resumed it, may not resume it. The trace records the approving principal.",
    inputSchema: obj(
      {
        run_id: RUN_ID,
        event: any("the event payload; it must match the wait step's event schema"),
        event_id: str('the sender’s id for the event', { maxLength: 200 }),
      },
      ['run_id', 'event'],
    ),
    outputSchema: RUN_REPORT,
    runOf: (x) => x.run_id as string,
    call: (s, p, x, progress) =>
      s.resume(p, { run_id: a(x, 'run_id'), event: x.event, ...opt(x, 'event_id') }, progress),
  },
  {
    name: 'analyze_runs',
    title: 'Analyze runs',
    description:
      'Drift and entropy across the finished runs of one program (or the runs given), optionally against a baseline (docs/analyzer.md).',
    inputSchema: obj({
      program_id: str('every finished run of this program id'),
      run_ids: { type: 'array', items: RUN_ID, maxItems: 10000 },
      baseline_run_ids: { type: 'array', items: RUN_ID, maxItems: 10000 },
    }),
    outputSchema: obj({ format: { type: 'string' }, runs: { type: 'array' } }, ['format'], false),
    annotations: { readOnlyHint: true },
    call: (s, p, x) => s.analyze(p, { ...opt(x, 'program_id'), ...opt(x, 'run_ids'), ...opt(x, 'baseline_run_ids') }),
  },
  {
    name: 'erase_subject',
    title: 'Erase a data subject',
    description:
      'Deletes the sensitive input values of a subject from every finished run (their traces stay verifiable; docs/privacy.md). A legal hold in the policy refuses it, and the refusal is recorded.',
    inputSchema: obj({ subject: str('the subject id as the runs named it', { minLength: 1, maxLength: 1000 }) }, [
      'subject',
    ]),
    outputSchema: obj(
      {
        subject: { type: 'string' },
        erased: { type: 'array' },
        refused: { type: 'array' },
        pending: { type: 'array' },
        already_erased: { type: 'array' },
      },
      ['subject', 'erased', 'refused', 'pending'],
      false,
    ),
    annotations: { destructiveHint: true, idempotentHint: true },
    call: (s, p, x) => s.erase(p, { subject: a(x, 'subject') }),
  },
  {
    name: 'program_paths',
    title: 'Paths of a program',
    description:
      "Every path through a program with the guards and the server policy's requirements along it (as `nano-vm paths`).",
    inputSchema: obj({ program: PROGRAM_SOURCE, max_paths: int('most paths listed', { minimum: 1, maximum: 10000 }) }, [
      'program',
    ]),
    outputSchema: obj({ format: { type: 'string' }, paths: { type: 'array' } }, ['format', 'paths'], false),
    annotations: { readOnlyHint: true },
    call: (s, p, x) => s.paths(p, { program: a(x, 'program'), ...opt(x, 'max_paths') }),
  },
  {
    name: 'program_graph',
    title: 'Graph of a program',
    description: 'The program as a Mermaid or Graphviz diagram (as `nano-vm graph`).',
    inputSchema: obj({ program: PROGRAM_SOURCE, format: { enum: ['mermaid', 'dot'] } }, ['program']),
    outputSchema: obj({ format: { type: 'string' }, graph: { type: 'string' } }, ['format', 'graph']),
    annotations: { readOnlyHint: true },
    call: (s, p, x) => s.graph(p, { program: a(x, 'program'), ...opt(x, 'format') }),
  },
];
