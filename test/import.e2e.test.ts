/**
 * End to end: `nano-vm import` converts llm-nano-vm v0.8 programs (fixtures written to the format
 * of llm-nano-vm 0.8.0's models.py: packages/mcp/test/fixtures/v08/) and the converted programs
 * run through the real CLI with a scripted model and local tools, taking the path v0.8 would
 * have taken. Bad inputs are refused with their codes and places.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const V08 = join(ROOT, 'packages/mcp/test/fixtures/v08');
let dir: string;

function nanoVm(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) };
}

function file(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

/** Every tool the fixtures name, answering from its arguments (and recording nothing else). */
const TOOLS = `const t = (name, run) => ({ name, run });
export const tools = [
  t('issue_refund', (a) => ({ refund_id: 'rf_' + a.order_id })),
  t('send_rejection', (a) => ({ rejected: a.order_id, reason: a.reason ?? null })),
  t('process_payment', (a) => ({ paid: a.order_id, amount: a.amount })),
  t('send_info', (a) => ({ sent: a.topic })),
  t('extract_text', (a) => 'Text of ' + a.document_id),
  t('save_to_db', () => ({ saved: true })),
  t('flag_for_review', () => ({ flagged: true })),
  t('get_weather', (a) => ({ city: a.city, sky: 'clear' })),
  t('get_news', (a) => { if (a.topic === 'fail') throw Object.assign(new Error('news down'), { code: 'E_TOOL_ERROR' }); return { topic: a.topic, items: 3 }; }),
  t('validate_order', (a) => ({ order_id: a.order_id, amount: a.order_id === 'big' ? 5000 : 120, currency: 'EUR' })),
  t('hold_payment', (a) => ({ held: a.order_id })),
  t('create_payment', (a) => ({ payment_id: 'pay_' + a.order_id, amount: a.amount })),
  t('poll_payment', (a) => ({ payment_id: a.payment_id, status: 'settled' })),
];
`;

/** Imports a fixture to <name>.yaml; returns the --json report. */
function imported(name: string) {
  const r = nanoVm('import', join(V08, `${name}.json`), '--out', `${name}.yaml`, '--json');
  expect(r.code).toBe(0);
  const j = r.json();
  expect(j.valid).toBe(true);
  return j;
}

/** Runs an imported program; returns the run's --json line and the path of the steps it took. */
function runImported(name: string, input: unknown, answers: Record<string, unknown[]> = {}) {
  const model = file(`${name}.model.yaml`, `model: ${name}\nanswers: ${JSON.stringify(answers)}\n`);
  const inputFile = file(`${name}.input.json`, JSON.stringify(input));
  const r = nanoVm(
    'run',
    `${name}.yaml`,
    '--input',
    inputFile,
    '--tools',
    'tools.mjs',
    ...(Object.keys(answers).length ? ['--model', `scripted:${model}`] : []),
    '--store',
    'memory:',
    '--json',
  );
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  const j = r.json();
  return { ...j, path: j.receipt.path as string[] };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-import-'));
  file('tools.mjs', TOOLS);
});

describe('nano-vm import: realistic v0.8 programs convert, validate and run', () => {
  it('customer_refund: the guardrail routes on the model answer; an interpolated tool argument is a located warning', () => {
    const j = imported('customer_refund');
    expect(j.program).toMatchObject({ id: 'customer_refund', version: '1.2' });
    const interp = j.warnings.find((w: { path: string }) => w.path === '/steps/3/args/reason');
    expect(interp).toMatchObject({
      code: 'W_IMPORT_LOSSY',
      step: 'reject',
      line: expect.any(Number),
      col: expect.any(Number),
    });
    expect(interp.message).toContain('interpolates');

    const yes = runImported('customer_refund', { user_input: 'charged twice', order_id: 'o_1' }, { analyze: ['yes'] });
    expect(yes).toMatchObject({ status: 'completed', outcome: 'SUCCESS' });
    expect(yes.path).toEqual(['analyze', 'guardrail', 'process_refund', 'done']);
    const no = runImported(
      'customer_refund',
      { user_input: 'want free stuff', order_id: 'o_2' },
      { analyze: ['maybe', 'no'] },
    );
    // 'maybe' is outside allowed_outputs: retried (max_retries 2), then 'no' routes to the rejection.
    expect(no.path).toEqual(['analyze', 'guardrail', 'reject', 'done']);
    expect(no.receipt.counts.retries).toBe(1);
  });

  it('refund_with_verification: a branch target with next_step rejoins the flow; v0.8 ends after a plain branch target', () => {
    imported('refund_with_verification');
    const refund = runImported(
      'refund_with_verification',
      { user_input: 'charged twice', order_id: 'o_3', amount: 12 },
      { classify: ['refund'], verify_eligibility: ['yes'] },
    );
    expect(refund.path).toEqual(['classify', 'route', 'verify_eligibility', 'final_guard', 'issue_refund', 'done']);
    const info = runImported(
      'refund_with_verification',
      { user_input: 'hours?', order_id: 'o_4' },
      { classify: ['info'], verify_eligibility: ['yes'] },
    );
    expect(info.path).toEqual(['classify', 'route', 'handle_other', 'done']);
  });

  it('doc_pipeline: an untranslatable condition (len()) fails closed with a warning at its place', () => {
    const j = imported('doc_pipeline');
    const w = j.warnings.find((x: { path: string }) => x.path === '/steps/2/condition');
    expect(w.message).toContain('could not be translated');
    expect(j.program.budgets).toEqual({ max_steps: 20 });
    const r = runImported('doc_pipeline', { document_id: 'd_1' }, { summarize: ['"A short summary."'] });
    expect(r).toMatchObject({ status: 'completed', outcome: 'UNTRANSLATED_CONDITION' });
    expect(r.path).toEqual(['extract', 'summarize', 'check', 'untranslated_condition']);
  });

  it('enrich_parallel: parallel sub-steps become children; $weather.output reads the child; on_error skip continues', () => {
    const j = imported('enrich_parallel');
    expect(j.program.steps[0]).toMatchObject({ kind: 'parallel', max_concurrency: 5 });
    expect(j.program.steps[1].prompt).toContain('{{steps.fetch.output.weather}}');
    const ok = runImported('enrich_parallel', { city: 'Oslo', topic: 'ai' }, { summarize: ['sunny_day'] });
    expect(ok).toMatchObject({ status: 'completed', outcome: 'SUCCESS' });
    const degraded = runImported('enrich_parallel', { city: 'Oslo', topic: 'fail' }, { summarize: ['stay_home'] });
    expect(degraded).toMatchObject({ status: 'completed', outcome: 'SUCCESS' });
    expect(degraded.receipt.counts.fallbacks).toBe(1);
  });

  it('payment_inline_branch: the v0.7.4 inline branch (next_step) and is_terminal take the paths v0.8 takes', () => {
    imported('payment_inline_branch');
    const small = runImported('payment_inline_branch', { order_id: 'small' }, { notify: ['"Paid."'] });
    expect(small.path).toEqual(['validate_order', 'amount_check', 'create_payment', 'poll_payment', 'notify', 'done']);
    const big = runImported('payment_inline_branch', { order_id: 'big' }, { notify: ['"Paid."'] });
    expect(big.path).toEqual(['validate_order', 'amount_check', 'hold_for_review', 'done']);
  });

  it('writes YAML to standard output by default, with the warnings on stderr as file:line:col', () => {
    const r = nanoVm('import', join(V08, 'customer_refund.json'));
    expect(r.code).toBe(0);
    expect(r.out).toContain('format: nano-vm.program/v1');
    expect(r.err).toMatch(/customer_refund\.json:\d+:\d+: warning W_IMPORT_LOSSY \[step reject\]/);
  });

  it('a step both in sequence and a branch target becomes two steps; what v0.8 never reaches is left out', () => {
    file(
      'twice.json',
      JSON.stringify({
        name: 'twice',
        steps: [
          { id: 'first', type: 'tool', tool: 'save_to_db' },
          { id: 'audit', type: 'tool', tool: 'save_to_db' },
          { id: 'gate', type: 'condition', condition: '$flag == True', then: 'audit', otherwise: 'finish' },
          { id: 'finish', type: 'tool', tool: 'flag_for_review', args: { document_id: '$doc' } },
          { id: 'orphan', type: 'tool', tool: 'save_to_db' },
        ],
      }),
    );
    const r = nanoVm('import', 'twice.json', '--out', 'twice.yaml', '--json');
    expect(r.code).toBe(0);
    const j = r.json();
    // In sequence `audit` goes on to `gate`; as gate's branch target v0.8 runs it and ends the run.
    expect(j.program.steps.map((s: { id: string }) => s.id)).toEqual([
      'first',
      'audit',
      'audit_branch',
      'gate',
      'finish',
      'done',
    ]);
    expect(
      j.warnings.some(
        (w: { path: string; message: string }) => w.path === '/steps/4' && w.message.includes('never reached'),
      ),
    ).toBe(true);
    expect(runImported('twice', { flag: true }).path).toEqual(['first', 'audit', 'gate', 'audit_branch', 'done']);
    expect(runImported('twice', { flag: false, doc: 'd' }).path).toEqual(['first', 'audit', 'gate', 'finish', 'done']);
  });
});

describe('nano-vm import: bad inputs', () => {
  const refused = (name: string, text: string) => nanoVm('import', file(name, text));

  it('not JSON is E_JSON with its byte offset', () => {
    const r = refused('bad.json', '{"name": "x", steps: []}');
    expect(r.code).toBe(2);
    expect(r.err).toContain('E_JSON');
    expect(r.err).toMatch(/at byte \d+/);
  });

  it('a nano-vm program is E_IMPORT_VERSION (nothing to import)', () => {
    const r = refused(
      'ours.json',
      JSON.stringify({ format: 'nano-vm.program/v1', id: 'x', input_schema: {}, steps: [] }),
    );
    expect(r.code).toBe(2);
    expect(r.err).toContain('E_IMPORT_VERSION');
    expect(r.err).toContain('already a nano-vm program');
  });

  it('a version that is not a label is E_IMPORT_VERSION', () => {
    const r = refused('ver.json', JSON.stringify({ version: 0.8, steps: [{ id: 'a', type: 'tool', tool: 't' }] }));
    expect(r.code).toBe(2);
    expect(r.err).toContain('E_IMPORT_VERSION');
  });

  it('an unknown step type is E_IMPORT_STEP_TYPE at its line', () => {
    const r = refused('type.json', '{\n  "steps": [\n    {"id": "a", "type": "wait"}\n  ]\n}\n');
    expect(r.code).toBe(2);
    expect(r.err).toContain('E_IMPORT_STEP_TYPE');
    expect(r.err).toMatch(/type\.json:3:\d+/);
  });

  it('a condition inside parallel_steps is E_IMPORT_STEP_TYPE', () => {
    const r = refused(
      'par.json',
      JSON.stringify({
        steps: [
          { id: 'p', type: 'parallel', parallel_steps: [{ id: 'c', type: 'condition', condition: 'True', then: 'p' }] },
        ],
      }),
    );
    expect(r.err).toContain('E_IMPORT_STEP_TYPE');
  });

  it('missing required fields, duplicate ids and branches to nowhere are E_IMPORT_INVALID with the pointer', () => {
    const noPrompt = refused('np.json', JSON.stringify({ steps: [{ id: 'a', type: 'llm' }] }));
    expect(noPrompt.code).toBe(2);
    expect(noPrompt.err).toContain('E_IMPORT_INVALID');
    expect(noPrompt.err).toContain('/steps/0/prompt');
    const dup = refused(
      'dup.json',
      JSON.stringify({
        steps: [
          { id: 'a', type: 'tool', tool: 't' },
          { id: 'a', type: 'tool', tool: 't' },
        ],
      }),
    );
    expect(dup.err).toContain("step id 'a' is used twice");
    const nowhere = refused(
      'nowhere.json',
      JSON.stringify({ steps: [{ id: 'a', type: 'condition', condition: 'True', then: 'ghost' }] }),
    );
    expect(nowhere.err).toContain('/steps/0/then');
    const empty = refused('empty.json', '{"steps": []}');
    expect(empty.err).toContain('E_IMPORT_INVALID');
    const list = refused('list.json', '[]');
    expect(list.err).toContain('E_IMPORT_INVALID');
  });

  it('an unreadable output path is refused before anything is read (E_FILE)', () => {
    const r = nanoVm('import', join(V08, 'customer_refund.json'), '--out', join(dir, 'no/such/dir/x.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toContain('E_FILE');
  });

  it('a member named __proto__ stays data', () => {
    const r = nanoVm(
      'import',
      file(
        'proto.json',
        '{"steps":[{"id":"a","type":"tool","tool":"t","args":{"x":{"__proto__":{"polluted":true}}}}]}',
      ),
      '--json',
    );
    expect(r.code).toBe(0);
    expect(Object.keys(r.json().program.steps[0].args.x.value)).toEqual(['__proto__']);
    expect(readFileSync(join(V08, 'customer_refund.json'), 'utf8')).toContain('"steps"');
  });
});
