/**
 * `@nano-vm/kyc`: the KYC Governance Simulator — a server that runs the KYC/AML program
 * (examples/kyc-aml) on seeded and user cases, fires real injectors and shows what caught them.
 * The HTTP API is documented in packages/kyc/API.md.
 */
export const PACKAGE_NAME = '@nano-vm/kyc';
export {
  startServer,
  createApp,
  DEFAULT_PORT,
  MAX_BODY_BYTES,
  MAX_ANALYTICS_RUNS,
  type ServerOptions,
  type RunningServer,
} from './server.js';
export {
  Simulator,
  RequestError,
  REVIEWERS,
  type SimulatorOptions,
  type SimEvent,
  type RunView,
  type LanesResult,
  type InboxItem,
  type Detection,
} from './simulator.js';
export { INJECTORS, type InjectorId, type InjectorInfo } from './injectors.js';
export { loadKycProgram, DEFAULT_EXAMPLE_DIR, type KycProgram, type SeededCase } from './kycProgram.js';
export { humanReceipt, countersOf, type HumanReceipt } from './humanReceipt.js';
export { runNaive, type NaiveResult } from './naiveExecutor.js';
export { ReviewerModel, REVIEWER_MODEL_ID } from './reviewerModel.js';
