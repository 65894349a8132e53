/**
 * Every module of the runtime, for the runtime's own tests only (package.json does not export it).
 * The public API is index.ts.
 */
export * from './version.js';
export * from './nodeHasher.js';
export * from './clock.js';
export * from './model/port.js';
export * from './model/scripted.js';
export * from './toolRegistry.js';
export * from './store/store.js';
export * from './store/invocations.js';
export * from './store/memoryStore.js';
export * from './executor.js';
export * from './runPool.js';
export * from './store/sqliteStore.js';
export * from './effects.js';
export * from './recover.js';
export * from './vault.js';
export * from './model/providers.js';
export * from './otel.js';
export * from './policyRun.js';
export * from './planner/index.js';
export * from './signing.js';
