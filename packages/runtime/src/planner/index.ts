export * from './plannerProgram.js';
export * from './checkDraft.js';
export * from './plan.js';
export * from './programText.js';
