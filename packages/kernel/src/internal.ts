/**
 * Every module of the kernel, for the kernel's own tests only: it is not in package.json `exports`,
 * so nothing outside this package can import it. The public API is index.ts and api/*.ts.
 */
export * from './errors.js';
export * from './program.js';
export * from './canonicalJson.js';
export * from './eventText.js';
export * from './hash.js';
export * from './events.js';
export * from './chain.js';
export * from './statePath.js';
export * from './projection.js';
export * from './schemaCheck.js';
export * from './machine.js';
export * from './command.js';
export * from './compiledProgram.js';
export * from './outputCheck.js';
export * from './successor.js';
export * from './runState.js';
export * from './recordedCursor.js';
export * from './receipt.js';
export * from './bundle.js';
export * from './verifyBundle.js';
export * from './guard/index.js';
export * from './load.js';
export * from './validate.js';
export * from './programSchema.js';
export * from './replay.js';
export * from './redact.js';
export * from './replayVault.js';
export * from './analyze.js';
export * from './policy.js';
export * from './policyLoad.js';
export * from './policyGate.js';
export * from './validatePolicy.js';
export * from './edges.js';
export * from './paths.js';
export * from './graph.js';
export * from './pathsText.js';
export * from './signature.js';
export * from './excerpt.js';
export * from './dataMember.js';
export * from './jsonText.js';
export * from './limits.js';
export * from './slots.js';
export * from './memo.js';
