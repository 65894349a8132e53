/**
 * `@nano-vm/store-postgres`: the shared store for many workers on many machines (docs/stores.md
 * "PostgreSQL", docs/scaling.md). The export list is pinned by test/publicApi.test.ts.
 */
export { PostgresStore, parsePostgresUrl, redactUrl, type PostgresStoreOptions } from './postgresStore.js';
export { MIGRATIONS, SCHEMA_VERSION, type Migration } from './migrations.js';
export { submitRun, submitRuns, type Submission } from './queue.js';
export { startWorker, Worker, type WorkerOptions, type WorkerRunReport, type WorkerStats } from './worker.js';
export { listWorkers, type WorkerListing } from './workers.js';
