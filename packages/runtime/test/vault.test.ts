/**
 * The vault and GDPR erasure (docs/privacy.md), on the KYC example and a real SQLite file: sensitive
 * values never reach the events, the runs table or a bundle; erasure removes them from the file's
 * bytes while every chain still verifies; a legal hold refuses and is audited; replay reports what is
 * sealed or tombstoned; recovery gets the values back from the vault.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BUNDLE_FORMAT,
  commitValue,
  subjectKey,
  computeReceipt,
  loadPolicy,
  loadProgram,
  pureHasher,
  replayBundle,
  serializeBundle,
  verifyBundle,
  type Bundle,
  type PolicySnapshot,
  type Program,
} from '@nano-vm/kernel';
import {
  FallbackChainModel,
  FixedClock,
  MemoryStore,
  ModelError,
  ScriptedModel,
  SeededIds,
  SqliteStore,
  eraseSubject,
  nodeHasher,
  parseModelScript,
  recoverRun,
  runProgram,
  toolsFromModule,
  vaultEntries,
  type Store,
} from '../src/internal.js';
import { afterLeaseExpiry, scripted, tools } from './fixtures.js';

const KYC = new URL('../../../examples/kyc/', import.meta.url).pathname;
const kycProgram = loadProgram(readFileSync(join(KYC, 'program.yaml'), 'utf8')).program!;
const kycScript = parseModelScript(readFileSync(join(KYC, 'model.yaml'), 'utf8'));
const kycPolicy = loadPolicy(readFileSync(join(KYC, 'policy.yaml'), 'utf8')).policy!;
/** The KYC policy without its AML legal hold. */
const { legal_holds: _holds, ...noHold } = kycPolicy;
const noHoldPolicy = noHold as PolicySnapshot;
const kycInputs = readdirSync(join(KYC, 'inputs'))
  .sort()
  .map((f) => ({
    caseName: f.replace(/\.json$/, ''),
    input: JSON.parse(readFileSync(join(KYC, 'inputs', f), 'utf8')) as { applicant: Record<string, unknown> },
  }));
const piiOf = (input: { applicant: Record<string, unknown> }): string[] =>
  ['name', 'email', 'document_id'].map((k) => input.applicant[k]).filter((v): v is string => typeof v === 'string');

async function runKyc(store: Store, policy: PolicySnapshot, only?: string) {
  const kycTools = toolsFromModule(await import(pathToFileURL(join(KYC, 'tools.mjs')).href), 'tools.mjs');
  const out = [];
  for (const { caseName, input } of kycInputs) {
    if (only !== undefined && caseName !== only) continue;
    const r = await runProgram({
      program: kycProgram,
      input,
      model: new ScriptedModel(kycScript, caseName),
      tools: kycTools,
      store,
      policy,
      clock: new FixedClock(),
      ids: new SeededIds(nodeHasher),
    });
    out.push({ caseName, input, run: r });
  }
  return out;
}

const tmp = () => mkdtempSync(join(tmpdir(), 'nano-vm-vault-'));
const fileBytes = (path: string): Buffer =>
  Buffer.concat([path, `${path}-wal`].filter((p) => existsSync(p)).map((p) => readFileSync(p)));

/** The database file, its WAL and its -shm index. */
const allFileBytes = (path: string): Buffer =>
  Buffer.concat([path, `${path}-wal`, `${path}-shm`].filter((p) => existsSync(p)).map((p) => readFileSync(p)));

async function exported(store: Store, runId: string): Promise<Bundle> {
  const run = (await store.getRun(runId))!;
  const events = await store.events(runId);
  return JSON.parse(
    serializeBundle({
      format: BUNDLE_FORMAT,
      program: run.program,
      policy: run.policy,
      input: run.input,
      events,
      receipt: computeReceipt(events),
    }),
  ) as Bundle;
}

describe('vault: sensitive KYC values', () => {
  it('never reach the events, the runs table or a bundle; tools and guards still get the real values', async () => {
    const path = join(tmp(), 'kyc.db');
    const store = new SqliteStore(path);
    const runs = await runKyc(store, noHoldPolicy);
    // Same outcomes as without a vault: the sanctions tool matched the real name, the document guard read the real id.
    expect(runs.map((r) => [r.caseName, r.run.outcome])).toEqual([
      ['clean', 'APPROVED'],
      ['high_risk', 'REJECTED_HIGH_RISK'],
      ['injection', 'ESCALATED_TO_HUMAN'],
      ['missing_documents', 'INSUFFICIENT_DATA'],
      ['pep_review', 'ESCALATED_TO_HUMAN'],
      ['sanctioned', 'POLICY_BLOCKED'],
    ]);
    const tables = [
      ...(store.db.prepare('SELECT body FROM events').all() as { body: string }[]).map((r) => r.body),
      ...(store.db.prepare('SELECT program, policy, input FROM runs').all() as Record<string, string>[]).flatMap((r) =>
        Object.values(r),
      ),
    ].join('\n');
    for (const { input, run } of runs) {
      const bundleText = serializeBundle(run.bundle);
      for (const v of piiOf(input)) {
        expect(tables).not.toContain(v);
        expect(bundleText).not.toContain(v);
      }
      // The vault holds each value with the salt that opens its commitment.
      const rows = await store.vault(run.run_id);
      expect(rows.map((r) => r.path)).toEqual(
        ['input.applicant.document_id', 'input.applicant.email', 'input.applicant.name'].filter(
          (p) => p.split('.')[2]! in input.applicant,
        ),
      );
      // The subject key is keyed by the store's secret: the plain hash of a guessable id (an email)
      // is nowhere, so nobody holding the file can confirm a guess.
      const email = (input.applicant as { email?: string }).email;
      if (email !== undefined) expect(tables).not.toContain(nodeHasher.sha256Hex(email));
      for (const row of rows) {
        expect(row.subject).toMatch(/^keyed-sha256:[0-9a-f]{64}$/);
        expect(row.subject).toBe(subjectKey(nodeHasher, email!, await store.subjectSecret()));
        expect(commitValue(nodeHasher, row.salt!, row.value!)).toBe(row.commitment);
        expect((run.bundle.input as { applicant: Record<string, unknown> }).applicant[row.path.split('.')[2]!]).toBe(
          row.commitment,
        );
      }
      expect(verifyBundle(JSON.parse(serializeBundle(run.bundle)), pureHasher)).toMatchObject({ ok: true });
    }
    // The guard on the document id and the sanctions call carry commitments, not values.
    const clean = runs[0]!.run;
    const started = clean.events.find((e) => e.type === 'step_started' && e.step === 'screen_sanctions');
    expect(started).toMatchObject({
      args: { country: 'NO', name: expect.stringMatching(/^vault:sha256:[0-9a-f]{64}$/) },
    });
    const docs = clean.events.find((e) => e.type === 'condition_evaluated' && e.step === 'check_documents');
    expect(JSON.stringify(docs)).toContain('"expr":"size(input.applicant.document_id)","value":9');
    await store.close();
  });

  it('runs of programs without sensitive paths keep their input and events as they were', async () => {
    const plain = { ...kycProgram, sensitive: undefined, subject: undefined } as Program;
    const store = new MemoryStore();
    const kycTools = toolsFromModule(await import(pathToFileURL(join(KYC, 'tools.mjs')).href), 'tools.mjs');
    const input = kycInputs[0]!.input;
    const r = await runProgram({
      program: plain,
      input,
      model: new ScriptedModel(kycScript, 'clean'),
      tools: kycTools,
      store,
      policy: noHoldPolicy,
      clock: new FixedClock(),
      ids: new SeededIds(nodeHasher),
    });
    expect(r.bundle.input).toEqual(input);
    expect(await store.vault(r.run_id)).toEqual([]);
    expect(JSON.stringify(r.events)).toContain('Ingrid Larsen');
    expect(replayBundle(JSON.parse(serializeBundle(r.bundle)), { hasher: nodeHasher }).vault).toBeNull();
  });

  it('--deterministic salts keep bundles byte-identical', async () => {
    const [a, b] = [
      await runKyc(new MemoryStore(), noHoldPolicy, 'clean'),
      await runKyc(new MemoryStore(), noHoldPolicy, 'clean'),
    ];
    expect(serializeBundle(a[0]!.run.bundle)).toBe(serializeBundle(b[0]!.run.bundle));
  });
});

describe('erase', () => {
  it('also finds vault rows keyed by the plain hash of the id (stores written before the secret existed)', async () => {
    const store = new SqliteStore(join(tmp(), 'legacy.db'));
    const runs = await runKyc(store, noHoldPolicy);
    const clean = runs[0]!.run;
    store.db
      .prepare('UPDATE vault SET subject = ? WHERE run_no = (SELECT run_no FROM runs WHERE run_id = ?)')
      .run(subjectKey(nodeHasher, 'ingrid.larsen@example.com'), clean.run_id);
    const report = await eraseSubject({ store, subject: 'ingrid.larsen@example.com', hasher: nodeHasher });
    expect(report.erased).toMatchObject([{ run_id: clean.run_id }]);
    expect((await store.vault(clean.run_id)).every((r) => r.erased)).toBe(true);
    await store.close();
  });

  it("removes the subject's values from the SQLite file, leaves every chain verifying and changes nothing else", async () => {
    const path = join(tmp(), 'kyc.db');
    const store = new SqliteStore(path);
    const runs = await runKyc(store, noHoldPolicy);
    const [clean, ...others] = runs;
    const snapshot = async (o: (typeof others)[number]) => ({
      run: await store.getRun(o.run.run_id),
      events: await store.events(o.run.run_id),
      vault: await store.vault(o.run.run_id),
    });
    const othersBefore = await Promise.all(others.map(snapshot));
    expect(fileBytes(path).includes('Ingrid Larsen')).toBe(true);

    const report = await eraseSubject({
      store,
      subject: 'ingrid.larsen@example.com',
      hasher: nodeHasher,
      clock: new FixedClock(Date.UTC(2026, 5, 1)),
    });
    expect(report).toMatchObject({
      erased: [
        {
          run_id: clean!.run.run_id,
          paths: ['input.applicant.document_id', 'input.applicant.email', 'input.applicant.name'],
          seq: clean!.run.events.length,
        },
      ],
      refused: [],
      pending: [],
      already_erased: [],
    });
    expect(report.subject).toMatch(/^keyed-sha256:[0-9a-f]{64}$/);

    // The bytes are gone from the database file and its WAL; another subject's are not.
    const bytes = fileBytes(path);
    for (const v of piiOf(clean!.input)) expect(bytes.includes(v), v).toBe(false);
    expect(bytes.includes('Erin Walsh')).toBe(true);

    // The erased run's chain still verifies, with the erasure after run_finished.
    const bundle = await exported(store, clean!.run.run_id);
    expect(verifyBundle(bundle, pureHasher)).toMatchObject({ ok: true, event_count: clean!.run.events.length + 1 });
    expect(bundle.events.at(-1)).toMatchObject({
      type: 'values_erased',
      subject: report.subject,
      paths: report.erased[0]!.paths,
    });
    expect(bundle.receipt).toMatchObject({
      status: 'completed',
      outcome: 'APPROVED',
      erasure: { erased_paths: report.erased[0]!.paths, refused: [] },
    });
    expect(bundle.events.slice(0, -1)).toEqual(JSON.parse(JSON.stringify(clean!.run.events)));
    expect(
      (await store.vault(clean!.run.run_id)).every(
        (r) => r.erased && r.salt === null && r.value === null && r.commitment.startsWith('vault:sha256:'),
      ),
    ).toBe(true);
    // Nothing else in the store changed.
    expect(await Promise.all(others.map(snapshot))).toEqual(othersBefore);

    // Replay reports the tombstones and the decisions that read them, and is still identical.
    const r = replayBundle(bundle, { hasher: nodeHasher });
    expect(r.identical).toBe(true);
    expect(r.head_hash).toBe(clean!.run.head_hash);
    expect(r.vault).toMatchObject({
      sealed: ['input.applicant.document_id', 'input.applicant.email', 'input.applicant.name'],
      tombstoned: ['input.applicant.document_id', 'input.applicant.email', 'input.applicant.name'],
      decisions: [{ step: 'check_documents', paths: ['input.applicant.document_id'] }],
      tool_calls: [{ step: 'screen_sanctions', paths: ['input.applicant.name'] }],
      admin_events: 1,
    });

    // A second erasure finds nothing left to erase and appends nothing.
    expect(await eraseSubject({ store, subject: 'ingrid.larsen@example.com', hasher: nodeHasher })).toMatchObject({
      erased: [],
      already_erased: [clean!.run.run_id],
    });
    expect(await store.events(clean!.run.run_id)).toHaveLength(clean!.run.events.length + 1);
    await store.close();
  });

  it('reports (exit 1 in the CLI) a run that keeps a copy outside the vault: an old event, an undeclared input field', async () => {
    const path = join(tmp(), 'residual.db');
    const store = new SqliteStore(path);
    const kycTools = toolsFromModule(await import(pathToFileURL(join(KYC, 'tools.mjs')).href), 'tools.mjs');
    const clean = kycInputs.find((k) => k.caseName === 'clean')!.input;
    // The occupation is not declared sensitive; sealing stores its copy as the commitment, so the
    // stored input is edited below back to what a version before that stored.
    const input = { ...clean, applicant: { ...clean.applicant, occupation: 'assistant to INGRID LARSEN' } };
    const run = await runProgram({
      program: kycProgram,
      input,
      model: new ScriptedModel(kycScript, 'clean'),
      tools: kycTools,
      store,
      policy: noHoldPolicy,
      clock: new FixedClock(),
      ids: new SeededIds(nodeHasher),
    });
    // An event as a version before keys and letter cases were caught wrote it (a tool output key).
    const last = run.events.length - 1;
    const seq = run.events.findIndex((e) => e.type === 'step_completed');
    const body = JSON.parse(
      store.db
        .prepare('SELECT body FROM events WHERE run_no = (SELECT run_no FROM runs WHERE run_id = ?) AND seq = ?')
        .pluck()
        .get(run.run_id, seq) as string,
    ) as { output: Record<string, unknown> };
    body.output = { ...body.output, 'INGRID.LARSEN@EXAMPLE.COM': true };
    store.db
      .prepare('UPDATE events SET body = ? WHERE run_no = (SELECT run_no FROM runs WHERE run_id = ?) AND seq = ?')
      .run(JSON.stringify(body), run.run_id, seq);
    const stored = JSON.parse(
      store.db.prepare('SELECT input FROM runs WHERE run_id = ?').pluck().get(run.run_id) as string,
    ) as { applicant: { occupation: string } };
    expect(stored.applicant.occupation).not.toContain('INGRID');
    stored.applicant.occupation = 'assistant to INGRID LARSEN';
    store.db.prepare('UPDATE runs SET input = ? WHERE run_id = ?').run(JSON.stringify(stored), run.run_id);
    const report = await eraseSubject({ store, subject: 'ingrid.larsen@example.com', hasher: nodeHasher });
    expect(report.erased).toMatchObject([{ run_id: run.run_id, seq: last + 1 }]);
    expect(report.residual).toEqual([{ run_id: run.run_id, seqs: [seq], input: true }]);
    expect((await store.vault(run.run_id)).every((r) => r.erased)).toBe(true);
    await store.close();
  });

  it('a reader holding an old snapshot keeps the bytes in the files: reported as file_pending; erasing again finishes', async () => {
    const path = join(tmp(), 'snapshot.db');
    const store = new SqliteStore(path, { busyTimeoutMs: 50 });
    await runKyc(store, noHoldPolicy, 'clean');
    const reader = new Database(path);
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM vault').get();
    const first = await eraseSubject({ store, subject: 'ingrid.larsen@example.com', hasher: nodeHasher });
    expect(first).toMatchObject({ erased: [{}], file_pending: true });
    expect(allFileBytes(path).includes('Ingrid Larsen')).toBe(true);
    reader.exec('COMMIT');
    const again = await eraseSubject({ store, subject: 'ingrid.larsen@example.com', hasher: nodeHasher });
    expect(again).toMatchObject({ erased: [], already_erased: [first.erased[0]!.run_id], file_pending: false });
    expect(allFileBytes(path).includes('Ingrid Larsen')).toBe(false);
    reader.close();
    await store.close();
  });

  it('leaves no copy behind after many runs moved vault rows across pages', async () => {
    const path = join(tmp(), 'many.db');
    const store = new SqliteStore(path);
    const kycTools = toolsFromModule(await import(pathToFileURL(join(KYC, 'tools.mjs')).href), 'tools.mjs');
    const base = kycInputs[0]!.input;
    const person = (i: number) => ({
      name: `Person Number${i} Applicant`,
      email: `person${i}@example.com`,
      document_id: `NO${String(1000000 + i)}`,
    });
    for (let i = 0; i < 150; i++) {
      const input = { ...base, applicant: { ...base.applicant, ...person(i) } };
      await runProgram({
        program: kycProgram,
        input,
        model: new ScriptedModel(kycScript, 'clean'),
        tools: kycTools,
        store,
        policy: noHoldPolicy,
      });
    }
    const report = await eraseSubject({ store, subject: 'person77@example.com', hasher: nodeHasher });
    expect(report.erased).toHaveLength(1);
    const bytes = fileBytes(path);
    for (const v of Object.values(person(77))) expect(bytes.includes(v), v).toBe(false);
    for (const v of Object.values(person(78))) expect(bytes.includes(v), v).toBe(true);
    await store.close();
  });

  it("a legal hold in the run's policy refuses erasure, and the refusal is an audited event", async () => {
    const store = new SqliteStore(join(tmp(), 'held.db'));
    const [clean] = await runKyc(store, kycPolicy, 'clean');
    const report = await eraseSubject({ store, subject: 'ingrid.larsen@example.com', hasher: nodeHasher });
    expect(report.erased).toEqual([]);
    expect(report.refused).toEqual([
      {
        run_id: clean!.run.run_id,
        hold: 'aml_record_retention',
        reason: kycPolicy.legal_holds![0]!.reason,
        paths: ['input.applicant.document_id', 'input.applicant.email', 'input.applicant.name'],
        seq: clean!.run.events.length,
      },
    ]);
    const bundle = await exported(store, clean!.run.run_id);
    expect(verifyBundle(bundle, pureHasher)).toMatchObject({ ok: true });
    expect(bundle.events.at(-1)).toMatchObject({
      type: 'erasure_refused',
      hold: 'aml_record_retention',
      subject: report.subject,
    });
    expect(bundle.receipt.erasure).toEqual({
      erased_paths: [],
      refused: [{ seq: clean!.run.events.length, hold: 'aml_record_retention' }],
    });
    expect((await store.vault(clean!.run.run_id)).every((r) => !r.erased && r.value !== null)).toBe(true);
    await store.close();
  });

  it('a hold in an operator policy refuses too; unfinished runs are left pending', async () => {
    const store = new MemoryStore();
    const [clean] = await runKyc(store, noHoldPolicy, 'clean');
    const refused = await eraseSubject({
      store,
      subject: 'ingrid.larsen@example.com',
      hasher: nodeHasher,
      policies: [kycPolicy],
    });
    expect(refused.refused.map((r) => r.hold)).toEqual(['aml_record_retention']);

    await store.createRun(
      {
        run_id: 'live',
        program_id: 'kyc-onboarding',
        program: kycProgram,
        policy: null,
        input: {},
        status: 'running',
        outcome: null,
      },
      [
        {
          path: 'input.applicant.email',
          subject: refused.subject,
          commitment: `vault:sha256:${'0'.repeat(64)}`,
          salt: 's',
          value: 'ingrid.larsen@example.com',
        },
      ],
    );
    const report = await eraseSubject({ store, subject: 'ingrid.larsen@example.com', hasher: nodeHasher });
    expect(report.erased.map((e) => e.run_id)).toEqual([clean!.run.run_id]);
    expect(report.pending).toEqual([{ run_id: 'live', status: 'running', paths: ['input.applicant.email'] }]);
    expect(await store.events('live')).toEqual([]);
  });
});

describe('replay with and without the vault', () => {
  it("with the vault's values every decision is re-derived; a value that does not open its commitment stays sealed", async () => {
    const store = new SqliteStore(join(tmp(), 'replay.db'));
    const [clean] = await runKyc(store, noHoldPolicy, 'clean');
    const bundle = await exported(store, clean!.run.run_id);
    const vault = await vaultEntries(store, clean!.run.run_id);
    const r = replayBundle(bundle, { hasher: nodeHasher, vault });
    expect(r.identical).toBe(true);
    expect(r.vault).toMatchObject({ sealed: [], tombstoned: [], decisions: [], tool_calls: [], admin_events: 0 });

    const forged = vault.map((v) => (v.path === 'input.applicant.document_id' ? { ...v, value: 'X1' } : v));
    const f = replayBundle(bundle, { hasher: nodeHasher, vault: forged });
    expect(f.identical).toBe(true);
    expect(f.vault).toMatchObject({
      sealed: ['input.applicant.document_id'],
      decisions: [{ step: 'check_documents' }],
    });
    await store.close();
  });

  it('a counterfactual that changes a guard on a sealed input reports it instead of guessing (E_REPLAY_SEALED)', async () => {
    const [clean] = await runKyc(new MemoryStore(), noHoldPolicy, 'clean');
    const bundle = JSON.parse(serializeBundle(clean!.run.bundle)) as Bundle;
    const stricter = structuredClone(kycProgram);
    const docs = stricter.steps.find((s) => s.id === 'check_documents')!;
    if (docs.kind !== 'condition') throw new Error('check_documents is a condition');
    docs.cases[0]!.when = '!has(input.applicant.document_id) || size(input.applicant.document_id) < 12';
    const r = replayBundle(bundle, { hasher: nodeHasher, program: stricter });
    expect(r.missing).toEqual({ step: 'check_documents', kind: 'condition', occurrence: 1 });
    expect(r.status).toBe('incomplete');
  });
});

describe('recovery of a run with sensitive inputs', () => {
  it('gets the values back from the vault and re-derives the stored events', async () => {
    const path = join(tmp(), 'recover.db');
    const prog: Program = {
      format: 'nano-vm.program/v1',
      id: 'greet',
      input_schema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
      sensitive: ['input.name'],
      subject: 'input.name',
      steps: [
        { id: 'long', kind: 'condition', cases: [{ when: 'size(input.name) > 3', next: 'greet' }], else: 'done' },
        { id: 'greet', kind: 'tool', tool: 'greet', args: { who: 'input.name' }, next: 'done' },
        { id: 'done', kind: 'end', outcome: 'OK' },
      ],
    };
    const seen: unknown[] = [];
    const before = new SqliteStore(path);
    void runProgram({
      program: prog,
      input: { name: 'Zoltan Kertesz' },
      model: scripted('answers: {}'),
      tools: tools([{ name: 'greet', run: () => new Promise(() => {}) }]),
      store: before,
    });
    await new Promise((r) => setTimeout(r, 50));
    const [run] = await before.listRuns({ status: 'running' });
    await before.close();
    const after = new SqliteStore(path);
    const r = await recoverRun({
      store: after,
      runId: run!.run_id,
      model: scripted('answers: {}'),
      tools: tools([
        { name: 'greet', run: async (a) => (seen.push(a), { said: `hello ${(a as { who: string }).who}` }) },
      ]),
      ...afterLeaseExpiry(),
    });
    expect(r.status).toBe('completed');
    expect(seen).toEqual([{ who: 'Zoltan Kertesz' }]);
    expect(JSON.stringify(await after.events(run!.run_id))).not.toContain('Zoltan');
    expect(r.events.find((e) => e.type === 'step_completed')).toMatchObject({
      output: { said: expect.stringMatching(/^hello vault:sha256:/) },
    });
    expect(verifyBundle(JSON.parse(JSON.stringify(r.bundle)), pureHasher)).toMatchObject({ ok: true });
    await after.close();
  });
});

describe('SQLite vault schema', () => {
  it('migrates a version-1 file by adding the vault; its runs stay readable', async () => {
    const path = join(tmp(), 'v1.db');
    const db = new Database(path);
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE runs (run_id TEXT PRIMARY KEY, program_id TEXT NOT NULL, program TEXT NOT NULL, policy TEXT NOT NULL, input TEXT NOT NULL, status TEXT NOT NULL, outcome TEXT, head_hash TEXT NOT NULL DEFAULT '', event_count INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE events (run_id TEXT NOT NULL REFERENCES runs (run_id), seq INTEGER NOT NULL, type TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
      INSERT INTO meta VALUES ('schema_version', '1');
      INSERT INTO runs (run_id, program_id, program, policy, input, status, outcome) VALUES ('old', 'p', '{}', 'null', '{"email":"a@b.c"}', 'completed', 'OK');`);
    db.close();
    const s = new SqliteStore(path);
    expect(s.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get()).toEqual({ value: '5' });
    expect(await s.getRun('old')).toMatchObject({ input: { email: 'a@b.c' }, status: 'completed' });
    expect(await s.vault('old')).toEqual([]);
    await s.close();
  });
});

describe('property: no sensitive value ever appears in any event', () => {
  const secret = fc.stringMatching(/^[a-z]{4,12}$/).map((s) => `PII-${s}`);
  it('for random values flowing through guards, tool arguments, echoed outputs and error messages', async () => {
    await fc.assert(
      fc.asyncProperty(
        secret,
        secret,
        fc.integer({ min: 0, max: 20 }),
        fc.constantFrom('echo', 'fail', 'nested'),
        async (name, email, k, mode) => {
          fc.pre(!name.includes(email) && !email.includes(name));
          const prog: Program = {
            format: 'nano-vm.program/v1',
            id: 'pii',
            input_schema: {
              type: 'object',
              properties: {
                person: { type: 'object', properties: { name: { type: 'string' }, email: { type: 'string' } } },
                n: { type: 'number' },
              },
            },
            sensitive: ['input.person'],
            subject: 'input.person.email',
            steps: [
              {
                id: 'gate',
                kind: 'condition',
                cases: [{ when: `size(input.person.name) > ${k} && input.person.email.contains("PII")`, next: 'call' }],
                else: 'ask',
              },
              {
                id: 'call',
                kind: 'tool',
                tool: 't',
                args: { who: 'input.person', n: 'input.n' },
                on_error: { action: 'fallback', value: { ok: false } },
                next: 'ask',
              },
              {
                id: 'ask',
                kind: 'llm',
                prompt: 'About {{input.person}}',
                projection: ['input.person', 'steps.call.output'],
                output: { enum: ['a', 'b'] },
                on_error: { action: 'fallback', value: 'b' },
                next: 'check',
              },
              {
                id: 'check',
                kind: 'condition',
                cases: [
                  {
                    when: 'has(steps.call.output.said) && steps.call.output.said.contains(input.person.name)',
                    next: 'done',
                  },
                ],
                else: 'done',
              },
              { id: 'done', kind: 'end', outcome: 'OK' },
            ],
          };
          const t = tools([
            {
              name: 't',
              run: async (a) => {
                const who = (a as { who: { name: string; email: string } }).who;
                if (mode === 'fail') throw new Error(`lookup failed for ${who.name} <${who.email}>`);
                return mode === 'echo'
                  ? { said: `hello ${who.name}`, to: who.email }
                  : { ok: true, copy: { inner: [who.name, { e: who.email }] } };
              },
            },
          ]);
          const model = scripted(`answers: { ask: ["${name}", "a"] }`);
          const store = new MemoryStore();
          const r = await runProgram({
            program: prog,
            input: { person: { name, email }, n: 1 },
            model,
            tools: t,
            store,
            clock: new FixedClock(),
            ids: new SeededIds(nodeHasher),
          });
          const text =
            serializeBundle(r.bundle) +
            JSON.stringify(await store.events(r.run_id)) +
            JSON.stringify(await store.getRun(r.run_id));
          expect(text).not.toContain(name);
          expect(text).not.toContain(email);
          const bundle = JSON.parse(serializeBundle(r.bundle)) as Bundle;
          expect(verifyBundle(bundle, pureHasher)).toMatchObject({ ok: true });
          expect(replayBundle(bundle, { hasher: nodeHasher }).identical).toBe(true);
          expect(
            replayBundle(bundle, { hasher: nodeHasher, vault: await vaultEntries(store, r.run_id) }).identical,
          ).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('a fallback chain whose failed member echoes a sensitive value', () => {
  it('records the failure in the step event with the value as its commitment', async () => {
    const name = 'Zoltan Kovacs';
    const prog: Program = {
      format: 'nano-vm.program/v1',
      id: 'pii-chain',
      input_schema: {
        type: 'object',
        properties: { person: { type: 'object', properties: { name: { type: 'string' } } } },
      },
      sensitive: ['input.person'],
      steps: [
        {
          id: 'ask',
          kind: 'llm',
          prompt: 'About {{input.person}}',
          projection: ['input.person'],
          output: { enum: ['a', 'b'] },
          next: 'done',
        },
        { id: 'done', kind: 'end', outcome: 'OK' },
      ],
    };
    // The first provider's error message quotes the value (as a careless provider might).
    const down = {
      id: 'first',
      scripted: false,
      complete: async () =>
        Promise.reject(new ModelError('E_MODEL_UNAVAILABLE', `upstream failed while handling ${name}`)),
    };
    const up = { id: 'second', scripted: false, complete: async () => ({ raw: 'a', model: 'second-1' }) };
    const store = new MemoryStore();
    const r = await runProgram({
      program: prog,
      input: { person: { name } },
      model: new FallbackChainModel([down, up]),
      tools: tools([]),
      store,
      clock: new FixedClock(),
      ids: new SeededIds(nodeHasher),
    });
    expect(r.status).toBe('completed');
    const done = r.events.find((e) => e.type === 'step_completed' && e.step === 'ask') as {
      fallbacks?: { model: string; code: string; message: string }[];
    };
    expect(done.fallbacks).toEqual([
      {
        model: 'first',
        code: 'E_MODEL_UNAVAILABLE',
        message: expect.stringMatching(/^upstream failed while handling vault:sha256:/),
      },
    ]);
    expect(serializeBundle(r.bundle) + JSON.stringify(await store.events(r.run_id))).not.toContain(name);
    const bundle = JSON.parse(serializeBundle(r.bundle)) as Bundle;
    expect(verifyBundle(bundle, pureHasher)).toMatchObject({ ok: true });
    expect(replayBundle(bundle, { hasher: nodeHasher }).identical).toBe(true);
  });
});
