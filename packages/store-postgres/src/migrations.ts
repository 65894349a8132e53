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
  next_seq         integer NOT NULL DEFAULT 0,
  head_hash        text NOT NULL DEFAULT '',
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
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
