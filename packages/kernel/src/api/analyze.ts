/**
 * `@nano-vm/kernel/analyze`: reading programs and runs in bulk — drift and entropy across many
 * runs of one program (`nano-vm analyze`), and every path of a program with the guards and policy
 * requirements along it, as data, text or a diagram (`nano-vm paths`, `nano-vm graph`).
 */
export {
  analyzeRuns,
  AnalyzeError,
  ANALYSIS_FORMAT,
  DEFAULT_THRESHOLDS,
  THRESHOLD_NAMES,
  type Alert,
  type AlertCode,
  type Analysis,
  type AnalyzeOptions,
  type AnalyzerThresholds,
  type PathDivergence,
  type RunAnalysis,
  type StateEntropy,
  type TransitionCount,
} from '../analyze.js';
export { edgeTable, type Edge, type EdgeTable, type EdgeVia } from '../edges.js';
export {
  programPaths,
  PATHS_FORMAT,
  DEFAULT_MAX_PATHS,
  ENTRIES_PER_PATH,
  type OutcomeReach,
  type PathEnd,
  type PathFinding,
  type PathGuard,
  type PathPolicyCheck,
  type PathsOptions,
  type PathsReport,
  type ProgramPath,
} from '../paths.js';
export { programGraph, GRAPH_FORMATS, type GraphFormat } from '../graph.js';
export { pathsText, type PathsTextSource } from '../pathsText.js';
