/**
 * End to end: the real, built CLI on a real SQLite file. KYC runs keep their applicants' names,
 * emails and document ids out of the events and bundles; `nano-vm erase` removes a subject's values
 * from the database file while every chain still verifies, `replay` names the tombstoned inputs,
 * and the example's AML legal hold refuses erasure with an audited event (exit 1).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
let dir: string;

function nanoVm(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) };
}
const INGRID = ['Ingrid Larsen', 'ingrid.larsen@example.com', 'NO8841207'];
/** The database file, its WAL and its shared-memory index: every file SQLite keeps bytes in. */
const fileBytes = (db: string): Buffer =>
  Buffer.concat([db, `${db}-wal`, `${db}-shm`].filter((p) => existsSync(p)).map((p) => readFileSync(p)));
const LEAK_EMAIL = 'Leaky.Person@Example.com';
// Eight digits: a random hex hash holds a given 8-digit run with odds of about 1 in 4e9 per place.
const LEAK_PIN = 42424242;
/** The forms of the leaky run's values that must not survive (compared case-insensitively). */
const leakForms = (): string[] => [LEAK_EMAIL, String(LEAK_PIN)];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-erase-e2e-'));
  // The KYC policy without its legal hold: erasure is allowed under it.
  writeFileSync(
    join(dir, 'nohold.yaml'),
    readFileSync(join(ROOT, 'examples/kyc/policy.yaml'), 'utf8').replace(/^legal_holds:[\s\S]*$/m, ''),
  );
});

describe('nano-vm erase', () => {
  it('erases a subject: the values leave the database file, the chain verifies, replay names the tombstones', () => {
    const db = join(dir, 'kyc.db');
    const store = `sqlite:${db}`;
    const runs = nanoVm('run', 'examples/kyc', '--policy', join(dir, 'nohold.yaml'), '--store', store, '--json');
    expect(runs.code).toBe(0);
    const clean = runs.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((r) => r.case === 'clean');
    const before = join(dir, 'before.json');
    expect(nanoVm('export', clean.run_id, '--store', store, '-o', before).code).toBe(0);
    for (const v of INGRID) expect(readFileSync(before, 'utf8')).not.toContain(v);
    expect(fileBytes(db).includes('Ingrid Larsen')).toBe(true); // in the vault until erased

    const erase = nanoVm('erase', '--subject', 'ingrid.larsen@example.com', '--store', store, '--json');
    expect(erase.code).toBe(0);
    expect(erase.json()).toMatchObject({
      subject: expect.stringMatching(/^keyed-sha256:[0-9a-f]{64}$/),
      erased: [
        {
          run_id: clean.run_id,
          paths: ['input.applicant.document_id', 'input.applicant.email', 'input.applicant.name'],
        },
      ],
      refused: [],
      pending: [],
    });
    const bytes = fileBytes(db);
    for (const v of INGRID) expect(bytes.includes(v), v).toBe(false);
    expect(bytes.includes('Erin Walsh')).toBe(true);

    const after = join(dir, 'after.json');
    expect(nanoVm('export', clean.run_id, '--store', store, '-o', after).code).toBe(0);
    const bundle = JSON.parse(readFileSync(after, 'utf8'));
    expect(bundle.events.at(-1)).toMatchObject({
      type: 'values_erased',
      paths: ['input.applicant.document_id', 'input.applicant.email', 'input.applicant.name'],
    });
    expect(nanoVm('verify', after, '--json').json()).toMatchObject({ valid: true });
    for (const v of INGRID) expect(readFileSync(after, 'utf8')).not.toContain(v);

    const replay = nanoVm('replay', after, '--json');
    expect(replay.code).toBe(0);
    expect(replay.json()).toMatchObject({
      identical: true,
      vault: {
        tombstoned: ['input.applicant.document_id', 'input.applicant.email', 'input.applicant.name'],
        decisions: [{ step: 'check_documents', paths: ['input.applicant.document_id'] }],
        admin_events: 1,
      },
    });
    const text = nanoVm('replay', after);
    expect(text.out).toContain(
      'tombstoned inputs (erased): input.applicant.document_id, input.applicant.email, input.applicant.name',
    );
    expect(text.out).toContain(
      'decision at seq 2 (check_documents) read input.applicant.document_id: taken from the record',
    );

    // Erasing again: nothing left, nothing appended.
    expect(nanoVm('erase', '--subject', 'ingrid.larsen@example.com', '--store', store, '--json').json()).toMatchObject({
      erased: [],
      already_erased: [clean.run_id],
    });
  });

  it('a legal hold refuses erasure: exit 1, an erasure_refused event, the values kept', () => {
    const db = join(dir, 'held.db');
    const store = `sqlite:${db}`;
    expect(nanoVm('run', 'examples/kyc', '--store', store, '--json').code).toBe(0);
    const erase = nanoVm('erase', '--subject', 'ingrid.larsen@example.com', '--store', store);
    expect(erase.code).toBe(1);
    expect(erase.out).toMatch(/REFUSED\s+run-\S+\s+legal hold aml_record_retention: AML\/KYC records are kept/);
    const runId = /REFUSED\s+(run-\S+)/.exec(erase.out)![1]!;
    const out = join(dir, 'held.json');
    expect(nanoVm('export', runId, '--store', store, '-o', out).code).toBe(0);
    const bundle = JSON.parse(readFileSync(out, 'utf8'));
    expect(bundle.events.at(-1)).toMatchObject({ type: 'erasure_refused', hold: 'aml_record_retention' });
    expect(bundle.receipt.erasure).toMatchObject({ erased_paths: [], refused: [{ hold: 'aml_record_retention' }] });
    expect(nanoVm('verify', out, '--json').json()).toMatchObject({ valid: true });
    expect(fileBytes(db).includes('Ingrid Larsen')).toBe(true);
  });

  it('run --subject names the subject of a program without a subject path; replay --store re-derives from the vault', () => {
    const store = `sqlite:${join(dir, 'refund.db')}`;
    const run = nanoVm(
      'run',
      'examples/refund',
      '--input',
      'examples/refund/inputs/approve.json',
      '--subject',
      'customer-42',
      '--store',
      store,
      '--json',
    );
    expect(run.code).toBe(0);
    const { run_id } = run.json();
    const out = join(dir, 'refund.json');
    expect(nanoVm('export', run_id, '--store', store, '-o', out).code).toBe(0);
    const email = JSON.parse(readFileSync('examples/refund/inputs/approve.json', 'utf8')).customer.email as string;
    expect(readFileSync(out, 'utf8')).not.toContain(email);
    // From the bundle alone the email is sealed; with the store's vault it is put back (and checked against its commitment).
    expect(nanoVm('replay', out, '--json').json()).toMatchObject({
      identical: true,
      vault: { sealed: ['input.customer.email'], tombstoned: [] },
    });
    expect(nanoVm('replay', out, '--store', store, '--json').json()).toMatchObject({
      identical: true,
      vault: { sealed: [], decisions: [] },
    });
    expect(nanoVm('erase', '--subject', 'customer-42', '--store', store, '--json').json()).toMatchObject({
      erased: [{ run_id, paths: ['input.customer.email'] }],
    });
    expect(nanoVm('replay', out, '--store', store, '--json').json()).toMatchObject({
      identical: true,
      vault: { sealed: ['input.customer.email'] },
    });
  });

  it('copies of a value as an object key, upper-cased, or inside text reach no event, bundle or file byte after erase', () => {
    // A run whose tool and model echo the sensitive email and PIN in every shape the redactor must
    // catch: as object keys (two of them redacting to the same commitment), upper-cased inside
    // text, and the number inside a string.
    const ex = join(dir, 'leaky');
    mkdirSync(join(ex, 'inputs'), { recursive: true });
    writeFileSync(
      join(ex, 'program.yaml'),
      [
        'format: nano-vm.program/v1',
        'id: leaky',
        'version: "1"',
        'input_schema:',
        '  type: object',
        '  required: [user]',
        '  properties:',
        '    user:',
        '      type: object',
        '      required: [email, pin]',
        '      properties: { email: { type: string }, pin: { type: number } }',
        'sensitive: [input.user.email, input.user.pin]',
        'subject: input.user.email',
        'steps:',
        '  - id: lookup',
        '    kind: tool',
        '    tool: lookup',
        '    args: { email: input.user.email, pin: input.user.pin }',
        '    next: summarize',
        '  - id: summarize',
        '    kind: llm',
        '    prompt: "Summarize {{steps.lookup.output}}"',
        '    projection: [steps.lookup.output]',
        '    output: { schema: { type: object } }',
        '    next: done',
        '  - id: done',
        '    kind: end',
        '    outcome: OK',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(ex, 'tools.mjs'),
      `export const tools = [{ name: 'lookup', run: async ({ email, pin }) => ({
        [email]: 'x',
        [email.toUpperCase()]: 'y',
        shout: 'CONTACT ' + email.toUpperCase() + ' NOW',
        note: 'pin=' + pin,
        ['pin=' + pin]: 1,
      }) }];\n`,
    );
    writeFileSync(
      join(ex, 'model.yaml'),
      `model: leaky\nanswers:\n  summarize:\n    - { raw: '{"k":1,"${LEAK_EMAIL.toUpperCase()}":1,"${LEAK_EMAIL}":2,"note":"Pin=${LEAK_PIN} for ${LEAK_EMAIL.toUpperCase()}"}' }\n`,
    );
    writeFileSync(join(ex, 'inputs', 'one.json'), JSON.stringify({ user: { email: LEAK_EMAIL, pin: LEAK_PIN } }));
    const db = join(dir, 'leaky.db');
    const store = `sqlite:${db}`;
    const run = nanoVm('run', ex, '--store', store, '--json');
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    const { run_id } = run.json();
    const before = join(dir, 'leaky-before.json');
    expect(nanoVm('export', run_id, '--store', store, '-o', before).code).toBe(0);
    const text = readFileSync(before, 'utf8');
    for (const v of leakForms()) expect(text.toLowerCase(), v).not.toContain(v.toLowerCase());
    // The stored rows too: every event body and the run's input, read from the database itself.
    const conn = new Database(db, { readonly: true });
    const rows = conn
      .prepare(
        `SELECT body FROM events UNION ALL SELECT input FROM runs UNION ALL SELECT idempotency_keys.key FROM idempotency_keys`,
      )
      .pluck()
      .all() as string[];
    conn.close();
    expect(rows.length).toBeGreaterThan(5);
    for (const row of rows) for (const v of leakForms()) expect(row.toLowerCase(), v).not.toContain(v.toLowerCase());
    const bundle = JSON.parse(text);
    // The tool output's two email keys became two distinct keys, neither holding the email.
    const lookup = bundle.events.find(
      (e: { type: string; step?: string }) => e.type === 'step_completed' && e.step === 'lookup',
    );
    const keys = Object.keys(lookup.output).filter((k) => k.startsWith('vault:sha256:'));
    expect(keys).toHaveLength(2);
    expect(new Set(Object.values(lookup.output).filter((v) => v === 'x' || v === 'y'))).toEqual(new Set(['x', 'y']));
    expect(nanoVm('verify', before, '--json').json()).toMatchObject({ valid: true });
    expect(nanoVm('replay', before, '--json').json()).toMatchObject({ identical: true });
    expect(nanoVm('replay', before, '--store', store, '--json').json()).toMatchObject({ identical: true });

    // Another connection keeps the file open (idle) across the erasure, as a long-lived host would:
    // the WAL and -shm files stay on disk, and must not hold the values either.
    const idle = new Database(db);
    idle.pragma('journal_mode = WAL');
    expect(idle.prepare('SELECT count(*) FROM vault WHERE value IS NOT NULL').pluck().get()).toBe(2);
    const erase = nanoVm('erase', '--subject', LEAK_EMAIL, '--store', store, '--json');
    expect(erase.code).toBe(0);
    expect(erase.json()).toMatchObject({ erased: [{ run_id, paths: ['input.user.email', 'input.user.pin'] }] });
    expect(existsSync(`${db}-shm`)).toBe(true);
    const raw = fileBytes(db).toString('latin1').toLowerCase();
    for (const v of leakForms()) expect(raw, v).not.toContain(v.toLowerCase());
    idle.close();
    const closed = fileBytes(db).toString('latin1').toLowerCase();
    for (const v of leakForms()) expect(closed, v).not.toContain(v.toLowerCase());
    const after = join(dir, 'leaky-after.json');
    expect(nanoVm('export', run_id, '--store', store, '-o', after).code).toBe(0);
    const afterText = readFileSync(after, 'utf8');
    for (const v of leakForms()) expect(afterText.toLowerCase(), v).not.toContain(v.toLowerCase());
    expect(nanoVm('verify', after, '--json').json()).toMatchObject({ valid: true });
  });

  it('a copy in an input field not declared sensitive is stored as its commitment: erase leaves none, exit 0', () => {
    const store = `sqlite:${join(dir, 'residual.db')}`;
    const clean = JSON.parse(readFileSync('examples/kyc/inputs/clean.json', 'utf8'));
    clean.applicant.occupation = 'assistant to INGRID LARSEN';
    const input = join(dir, 'residual.json');
    writeFileSync(input, JSON.stringify(clean));
    const run = nanoVm(
      'run',
      'examples/kyc',
      '--input',
      input,
      '--policy',
      join(dir, 'nohold.yaml'),
      '--store',
      store,
      '--json',
      '--out',
      join(dir, 'residual.bundle.json'),
    );
    expect(run.code).toBe(0);
    const { run_id } = run.json();
    // Sealing stored the undeclared copy as its commitment: the bundle holds none, and it replays identically.
    expect(readFileSync(join(dir, 'residual.bundle.json'), 'utf8').toLowerCase()).not.toContain('ingrid larsen');
    expect(nanoVm('replay', join(dir, 'residual.bundle.json')).code).toBe(0);
    const erase = nanoVm('erase', '--subject', 'ingrid.larsen@example.com', '--store', store, '--json');
    expect(erase.code).toBe(0);
    expect(erase.json()).toMatchObject({ erased: [expect.objectContaining({ run_id })], residual: [] });
  });

  it('refuses without a subject (E_USAGE, exit 2)', () => {
    const r = nanoVm('erase', '--store', `sqlite:${join(dir, 'x.db')}`, '--json');
    expect(r.code).toBe(2);
    expect(r.json().error.code).toBe('E_USAGE');
  });
});
