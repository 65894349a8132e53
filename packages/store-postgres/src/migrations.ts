/**
 * The store's versioned schema: each migration is applied once, in order, in one transaction with
 * the others of the same `migrate` call, under an advisory lock so that two processes migrating
 * one schema at once apply each step once. The version applied last is in `meta.schema_version`
 * and every applied step is listed in `migrations`.
 */

export interface Migration {
  version: number;
  name: string;
  /** SQL with `$S` standing for the quoted schema name. */
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'runs, events, vault, idempotency keys, programs, leases',
    sql: `
CREATE TABLE $S.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE $S.programs (hash text PRIMARY KEY, program text NOT NULL);
CREATE TABLE $S.runs (
  run_no           bigserial PRIMARY KEY,
  run_id           text NOT NULL UNIQUE,
  program_id       text NOT NULL,
  program_hash     text NOT NULL REFERENCES $S.programs (hash),
  policy           text NOT NULL,
  input            text NOT NULL,
  status           text NOT NULL,
  outcome          text,
  lease_owner      text,
  lease_expires_at bigint,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_by_status ON $S.runs (status, run_no);
CREATE INDEX runs_running_by_expiry ON $S.runs (lease_expires_at) WHERE status = 'running';
CREATE TABLE $S.events (
  run_no bigint NOT NULL REFERENCES $S.runs (run_no),
  seq    integer NOT NULL,
  type   text NOT NULL,
  hash   text NOT NULL,
  body   text NOT NULL,
  PRIMARY KEY (run_no, seq)
);
CREATE TABLE $S.vault (
  run_no     bigint NOT NULL REFERENCES $S.runs (run_no),
  path       text NOT NULL,
  subject    text,
  commitment text NOT NULL,
  salt       text,
  value      text,
  erased     boolean NOT NULL DEFAULT false,
  PRIMARY KEY (run_no, path)
);
CREATE INDEX vault_by_subject ON $S.vault (subject);
CREATE TABLE $S.idempotency_keys (
  run_no      bigint NOT NULL REFERENCES $S.runs (run_no),
  key         text NOT NULL,
  step        text NOT NULL,
  tool        text NOT NULL,
  attempt     integer NOT NULL,
  invocations integer NOT NULL,
  first_seq   integer NOT NULL,
  PRIMARY KEY (run_no, key)
);`,
  },
  {
    version: 2,
    name: 'the queue of submitted runs, and the workers table',
    sql: `
CREATE TABLE $S.queue (
  queue_no      bigserial PRIMARY KEY,
  run_id        text NOT NULL UNIQUE,
  program_hash  text NOT NULL REFERENCES $S.programs (hash),
  policy        text NOT NULL,
  input         text NOT NULL,
  subject       text,
  submitted_at  timestamptz NOT NULL DEFAULT now(),
  claimed_by    text,
  claimed_until bigint,
  attempts      integer NOT NULL DEFAULT 0,
  error         text
);
CREATE INDEX queue_claimable ON $S.queue (queue_no) WHERE error IS NULL;
CREATE TABLE $S.workers (
  owner        text PRIMARY KEY,
  host         text NOT NULL,
  pid          integer NOT NULL,
  concurrency  integer NOT NULL,
  started_at   bigint NOT NULL,
  seen_at      bigint NOT NULL,
  state        text NOT NULL,
  done         integer NOT NULL DEFAULT 0
);`,
  },
  {
    version: 3,
    name: 'apply_group: a group commit in one statement',
    // One call applies a whole group, set-based: run creations (with their programs, vault rows
    // and the queue entries they consume), then appends and status writes, each checked against
    // its run's last stored event. A group names each run at most once (the store defers a run's
    // second write to the next group). One statement is one transaction: one round trip per
    // group. Returns, per
    // creation then per write, NULL when applied or why not ('duplicate', 'no run',
    // 'conflict <next seq> <head hash>'); a refused write changes nothing.
    sql: applyGroup(3),
  },
  {
    version: 4,
    name: 'apply_group: event bodies as one JSON array; a write that creates its run applies only with its creation',
    // The same function with two changes. Event bodies come as one `json` array of the events as
    // stored (the store joins their JSON texts; json_array_elements gives each element's text
    // back exactly): the driver no longer escapes every body into a text[] literal, which was
    // the largest single cost in a worker's profile. And a write whose run's creation in this
    // group was refused (Store.writeRun of a run that exists) writes nothing, even where it would
    // fit the existing run's events.
    sql: applyGroup(4),
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * `apply_group` as migration 3 created it, and as migration 4 replaced it (marked by `version`). One statement is one transaction: one round trip per group. Returns, per
 * creation then per write, NULL when applied or why not ('duplicate', 'no run',
 * 'conflict <next seq> <head hash>'); a refused write changes nothing.
 */
function applyGroup(version: 3 | 4): string {
  const V3_ARGS = `text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], bigint[],
    text[], text[], text[], text[], text[], text[], text[], int[], int[], text[], text[], text[], text[],
    int[], int[], text[], text[], text[], int[], text[], text[], text[], int[], int[], int[]`;
  return `
${
  version === 3
    ? ''
    : `DROP FUNCTION $S.apply_group(${V3_ARGS});
`
}CREATE FUNCTION $S.apply_group(
  p_hash text[], p_program text[],
  c_run_id text[], c_program_id text[], c_program_hash text[], c_policy text[], c_input text[],
  c_status text[], c_outcome text[], c_lease_owner text[], c_lease_expires bigint[],
  v_run_id text[], v_path text[], v_subject text[], v_commitment text[], v_salt text[], v_value text[],
  w_run_id text[], w_first int[], w_count int[], w_prev text[], w_last text[], w_status text[], w_outcome text[],
  e_op int[], e_seq int[], e_type text[], e_hash text[], e_body ${version === 3 ? 'text[]' : 'json'},
  k_op int[], k_key text[], k_step text[], k_tool text[], k_attempt int[], k_n int[], k_first_seq int[]
) RETURNS text[] LANGUAGE plpgsql AS $fn$
DECLARE
  created text[] := '{}';
  writes text[] := '{}';${version === 3 ? '' : "\n  refused text[] := '{}';"}
BEGIN
  IF coalesce(array_length(c_run_id, 1), 0) > 0 THEN
    INSERT INTO $S.programs (hash, program) SELECT * FROM unnest(p_hash, p_program) ON CONFLICT DO NOTHING;
    WITH ins AS (
      INSERT INTO $S.runs (run_id, program_id, program_hash, policy, input, status, outcome, lease_owner, lease_expires_at)
      SELECT * FROM unnest(c_run_id, c_program_id, c_program_hash, c_policy, c_input, c_status, c_outcome, c_lease_owner, c_lease_expires)
      ON CONFLICT (run_id) DO NOTHING RETURNING run_id, run_no),
    vlt AS (
      INSERT INTO $S.vault (run_no, path, subject, commitment, salt, value)
      SELECT ins.run_no, v.path, v.subject, v.commitment, v.salt, v.value
      FROM unnest(v_run_id, v_path, v_subject, v_commitment, v_salt, v_value) AS v(run_id, path, subject, commitment, salt, value)
      JOIN ins USING (run_id)),
    dq AS (DELETE FROM $S.queue WHERE run_id IN (SELECT run_id FROM ins))
    SELECT array_agg(CASE WHEN ins.run_id IS NULL THEN 'duplicate' END ORDER BY c.i) INTO created
    FROM unnest(c_run_id) WITH ORDINALITY AS c(run_id, i) LEFT JOIN ins USING (run_id);
${
  version === 3
    ? ''
    : `    SELECT coalesce(array_agg(c.run_id), '{}') INTO refused
    FROM unnest(c_run_id, created) AS c(run_id, why) WHERE c.why = 'duplicate';
`
}  END IF;
  IF coalesce(array_length(w_run_id, 1), 0) > 0 THEN
    -- The head of a run is its last event (the (run_no, seq) key's last entry): an append writes
    -- event rows only. Two writers racing on one run both insert the same (run_no, seq): the
    -- second waits for the first and fails with a unique violation (the store then retries the
    -- group's writes one by one, and the loser sees the conflict).
    WITH w AS (
      SELECT w.*, r.run_no FROM unnest(w_run_id, w_first, w_count, w_prev, w_last, w_status, w_outcome)
        WITH ORDINALITY AS w(run_id, first, n, prev, last, status, outcome, i)
      LEFT JOIN $S.runs r USING (run_id)),
    chk AS (
      SELECT w.i, w.run_no, w.n, w.first, w.status, w.outcome, coalesce(l.seq + 1, 0) AS next_seq, coalesce(l.hash, '') AS head_hash,
        (w.run_no IS NOT NULL${version === 3 ? '' : ' AND NOT w.run_id = ANY (refused)'} AND (w.n = 0 OR (w.first = coalesce(l.seq + 1, 0) AND (w.first = 0 OR w.prev = l.hash)))) AS ok
      FROM w LEFT JOIN LATERAL (SELECT e.seq, e.hash FROM $S.events e WHERE e.run_no = w.run_no ORDER BY e.seq DESC LIMIT 1) l ON true),
    ev AS (
      INSERT INTO $S.events (run_no, seq, type, hash, body)
      SELECT chk.run_no, e.seq, e.type, e.hash, e.body
      FROM ${version === 3 ? 'unnest(e_op, e_seq, e_type, e_hash, e_body)' : 'ROWS FROM (unnest(e_op), unnest(e_seq), unnest(e_type), unnest(e_hash), json_array_elements(e_body))'} AS e(op, seq, type, hash, body) JOIN chk ON chk.i = e.op AND chk.ok),
    up AS (
      -- A terminal or suspended status releases the lease in the same write: the drive has ended.
      UPDATE $S.runs r SET status = chk.status, outcome = chk.outcome,
        lease_owner = CASE WHEN chk.status = 'running' THEN r.lease_owner END,
        lease_expires_at = CASE WHEN chk.status = 'running' THEN r.lease_expires_at END
      FROM chk WHERE r.run_no = chk.run_no AND chk.ok AND chk.status IS NOT NULL),
    ks AS (
      -- An append's upserts enter a key with as many invocations as they add (invocations.ts):
      -- the row's count is also what a known key gets added.
      INSERT INTO $S.idempotency_keys AS k (run_no, key, step, tool, attempt, invocations, first_seq)
      SELECT chk.run_no, u.key, u.step, u.tool, u.attempt, u.n, u.first_seq
      FROM unnest(k_op, k_key, k_step, k_tool, k_attempt, k_n, k_first_seq) AS u(op, key, step, tool, attempt, n, first_seq)
      JOIN chk ON chk.i = u.op AND chk.ok
      ON CONFLICT (run_no, key) DO UPDATE SET attempt = excluded.attempt, invocations = k.invocations + excluded.invocations)
    SELECT array_agg(CASE WHEN chk.ok THEN NULL WHEN chk.run_no IS NULL THEN 'no run'
                          ELSE 'conflict ' || chk.next_seq || ' ' || chk.head_hash END ORDER BY chk.i) INTO writes
    FROM chk;
  END IF;
  RETURN coalesce(created, '{}') || coalesce(writes, '{}');
END
$fn$;`;
}
