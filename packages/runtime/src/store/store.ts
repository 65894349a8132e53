import type { Program, RunStatus, TraceEvent } from '@nano-vm/kernel';

export interface RunRecord {
  run_id: string;
  program_id: string;
  program: Program;
  policy: unknown;
  input: unknown;
  status: RunStatus | 'running';
  outcome: string | null;
  head_hash: string;
  event_count: number;
}

/**
 * Where runs and their events live. Appends are compare-and-swap on (run_id, seq): an append whose
 * seq is not exactly the next one fails with E_STORE_CONFLICT and writes nothing.
 * Methods may be synchronous (memory, SQLite) or return promises (Postgres).
 */
export interface Store {
  createRun(run: Omit<RunRecord, 'head_hash' | 'event_count'>): void | Promise<void>;
  append(runId: string, event: TraceEvent): void | Promise<void>;
  finish(runId: string, status: RunStatus, outcome: string | null): void | Promise<void>;
  getRun(runId: string): RunRecord | undefined | Promise<RunRecord | undefined>;
  events(runId: string): TraceEvent[] | Promise<TraceEvent[]>;
  listRuns(filter?: { status?: RunStatus | 'running' }): RunRecord[] | Promise<RunRecord[]>;
}

export class StoreError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}
