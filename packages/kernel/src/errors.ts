/**
 * One error family: every error nano-vm throws is a NanoVmError whose code is one of ERROR_CODES.
 * docs/errors.md lists the same codes with the same exit classes; test/errorCodes.test.ts checks
 * both directions, and that the source emits and a test exercises each code.
 */

/**
 * How a failure with a code ends a command (docs/errors.md "Exit status"). `refused`: the command
 * refused its arguments or inputs before doing anything (exit 2). `failed`: the thing checked is
 * bad, or the action could not be carried out (exit 1). `bug`: no input can cause it (exit 1, with
 * the stack). `warning`: reported beside a result, never fails anything.
 */
export type ExitClass = 'refused' | 'failed' | 'bug' | 'warning';

/** Every documented code and its exit class, in the order docs/errors.md lists them. */
export const ERROR_CODES = {
  // Loading a program
  E_PARSE: 'refused',
  E_FORMAT: 'refused',
  E_SCHEMA: 'refused',
  // Validating a program
  E_DUPLICATE_ID: 'refused',
  E_MISSING_TARGET: 'refused',
  E_NO_END: 'refused',
  E_UNREACHABLE: 'refused',
  E_UNBOUNDED_CYCLE: 'refused',
  E_NO_TERMINAL: 'refused',
  W_NO_FAILURE_TERMINAL: 'warning',
  E_UNKNOWN_TOOL: 'refused',
  E_TOOL_ARGS: 'refused',
  E_GUARD_NOT_BOOL: 'refused',
  E_PROJECTION_UNDECLARED: 'refused',
  E_PROMPT_UNPROJECTED: 'refused',
  E_SENSITIVE_UNDECLARED: 'refused',
  E_SUBJECT_UNDECLARED: 'refused',
  E_BAD_ENUM: 'refused',
  E_INPUT_SCHEMA: 'refused',
  E_BAD_OUTPUT_SCHEMA: 'refused',
  E_FALLBACK_TYPE: 'refused',
  E_PARALLEL_EMPTY: 'refused',
  E_BUDGET: 'refused',
  // Policies
  E_POLICY_INVALID: 'refused',
  E_POLICY_PROGRAM_HASH: 'refused',
  E_POLICY_UNKNOWN_STEP: 'refused',
  E_POLICY_REQUIRED_STEP: 'refused',
  E_POLICY_PRECEDENCE: 'refused',
  E_POLICY_GRANT: 'refused',
  E_POLICY_THRESHOLD: 'refused',
  // Guards
  E_GUARD_SYNTAX: 'refused',
  E_GUARD_UNSUPPORTED: 'refused',
  E_GUARD_LIMIT: 'refused',
  E_GUARD_UNKNOWN_IDENT: 'refused',
  E_GUARD_TYPE: 'refused',
  E_GUARD_RUNTIME: 'failed',
  E_GUARD_COST: 'failed',
  // Running (recorded in the trace)
  E_OUTPUT_NOT_IN_ENUM: 'failed',
  E_OUTPUT_MALFORMED: 'failed',
  E_OUTPUT_SCHEMA: 'failed',
  E_TIMEOUT: 'failed',
  E_MODEL_ERROR: 'failed',
  E_MODEL_UNAVAILABLE: 'failed',
  E_MODEL_RATE_LIMITED: 'failed',
  E_MODEL_UNREACHABLE: 'failed',
  E_MODEL_TIMEOUT: 'failed',
  E_MODEL_AUTH: 'failed',
  E_MODEL_BAD_REQUEST: 'failed',
  E_MODEL_RESPONSE_MALFORMED: 'failed',
  E_SCRIPT_MISSING: 'failed',
  E_TOOL_ERROR: 'failed',
  E_TOOL_INPUT_SCHEMA: 'failed',
  E_TOOL_OUTPUT_SCHEMA: 'failed',
  E_TOOL_OUTPUT_NOT_JSON: 'failed',
  E_MAX_VISITS: 'failed',
  E_NO_RESULT: 'failed',
  E_POLICY_BLOCKED: 'failed',
  // Refusing to run
  E_PROGRAM_INVALID: 'refused',
  E_INPUT_INVALID: 'refused',
  // Verifying a bundle
  E_BUNDLE_FORMAT: 'failed',
  E_NO_GENESIS: 'failed',
  E_EVENT_SHAPE: 'failed',
  E_CHAIN_SEQ: 'failed',
  E_CHAIN_PREV: 'failed',
  E_CHAIN_HASH: 'failed',
  E_GENESIS_PROGRAM: 'failed',
  E_GENESIS_POLICY: 'failed',
  E_GENESIS_INPUT: 'failed',
  E_POLICY_CHANGED: 'failed',
  E_RECEIPT_MISMATCH: 'failed',
  E_NOT_JSON: 'failed',
  // Signed receipts (verify --key, run --sign, keygen)
  E_SIGNATURE_MISSING: 'failed',
  E_SIGNATURE_INVALID: 'failed',
  E_SIGNATURE_UNTRUSTED: 'failed',
  E_SIGNATURE_MISMATCH: 'failed',
  E_KEY_INVALID: 'refused',
  E_KEY_EXISTS: 'refused',
  // Stores
  E_STORE_CONFLICT: 'failed',
  E_STORE_DUPLICATE_RUN: 'refused',
  E_STORE_NO_RUN: 'refused',
  E_RECOVERY_NOT_RUNNING: 'failed',
  E_RECOVERY_DIVERGED: 'failed',
  E_STORE_CORRUPT: 'failed',
  E_STORE_SCHEMA: 'refused',
  E_STORE_CLOSED: 'bug',
  E_STORE_BUSY: 'failed',
  E_RUN_LEASED: 'failed',
  E_LEASE_LOST: 'failed',
  E_STORE_MISSING: 'refused',
  E_STORE_UNREACHABLE: 'failed',
  // Suspending and resuming
  E_RESUME_NOT_SUSPENDED: 'failed',
  E_RESUME_ROLE: 'refused',
  E_RESUME_EVENT_INVALID: 'refused',
  E_RESUME_CONFLICT: 'failed',
  E_WAIT_EXPIRED: 'failed',
  E_WAIT_TIMEOUT: 'failed',
  // Sensitive values and erasure
  E_REPLAY_SEALED: 'failed',
  // Analyzing runs
  E_NO_RUNS: 'refused',
  E_MIXED_PROGRAMS: 'refused',
  // Planning
  E_NO_VALID_DRAFT: 'failed',
  // The dev agent (docs/dev-agent.md)
  E_DEV_NOT_A_REPO: 'refused',
  E_DEV_DIRTY_TREE: 'refused',
  E_DEV_CHECK_TOOL_MISSING: 'refused',
  E_DEV_LOCKED: 'refused',
  E_DEV_GIT: 'failed',
  E_DEV_AUDIT_FAILED: 'failed',
  // Running many inputs in worker threads (RunPool)
  E_RUN_POOL_SETUP: 'refused',
  E_RUN_POOL_WORKER: 'failed',
  E_RUN_POOL_CLOSED: 'failed',
  // The MCP gateway: tools of other MCP servers (docs/gateway.md)
  E_GATEWAY_CONFIG: 'refused',
  E_GATEWAY_CONNECT: 'failed',
  E_GATEWAY_UNAVAILABLE: 'failed',
  E_GATEWAY_RESULT: 'failed',
  // Importing llm-nano-vm v0.8 programs (docs/import.md)
  E_IMPORT_INVALID: 'refused',
  E_IMPORT_VERSION: 'refused',
  E_IMPORT_STEP_TYPE: 'refused',
  W_IMPORT_LOSSY: 'warning',
  // The MCP server (docs/mcp.md)
  E_MCP_CONFIG: 'refused',
  E_MCP_ARGS: 'refused',
  E_MCP_FORBIDDEN: 'refused',
  E_MCP_NO_PROGRAM: 'refused',
  E_IDEMPOTENCY_MISMATCH: 'refused',
  E_FOUR_EYES: 'refused',
  E_MCP_WAIT_LIMIT: 'failed',
  E_AUDIT_BROKEN: 'failed',
  // The command line
  E_USAGE: 'refused',
  E_FILE: 'refused',
  E_JSON: 'refused',
  E_EXAMPLE_LAYOUT: 'refused',
  E_MODEL_SPEC: 'refused',
  E_MODEL_KEY_MISSING: 'refused',
  E_MODEL_PRICES: 'refused',
  E_SCRIPT_FORMAT: 'refused',
  E_SCRIPT_UNKNOWN_STEP: 'refused',
  E_TOOLS_MODULE: 'refused',
  E_TOOL_DEFINITION: 'refused',
  E_STORE_SPEC: 'refused',
  E_STORE_OPEN: 'refused',
  E_UNSETTLED: 'failed',
  E_OUTPUT_WRITE: 'failed',
  E_INTERNAL: 'bug',
  // Limits (docs/limits.md)
  E_TOO_DEEP: 'refused',
  E_TOO_LARGE: 'refused',
  // The KYC simulator's HTTP API (packages/kyc/API.md): 4xx answers, nothing changed
  E_KYC_REQUEST: 'refused',
  E_KYC_UNKNOWN_CASE: 'refused',
  E_KYC_UNKNOWN_INJECTOR: 'refused',
  E_KYC_NOT_FOUND: 'refused',
} as const satisfies Record<string, ExitClass>;

/** A documented code (warnings, `W_…`, included: issues carry them). */
export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

export type Severity = 'error' | 'warning';

export interface Issue {
  /** A documented code; typed as a string because guard results and hosts hand issues on as data. */
  code: string;
  severity: Severity;
  message: string;
  /** Step id the issue is about, when there is one. */
  step?: string;
  /** JSON pointer into the program document (e.g. `/steps/2/next`). */
  path?: string;
  /** 1-based line and column in the source file, when the program came from text. */
  line?: number;
  col?: number;
  file?: string;
}

/** The code a refusal takes from its findings: the first error's, when documented, else `fallback`. */
export function firstErrorCode(issues: readonly Issue[], fallback: ErrorCode): ErrorCode {
  const first = issues.find((i) => i.severity === 'error')?.code;
  return first !== undefined && isErrorCode(first) ? first : fallback;
}

/** Where an error is: in a file (line:col), at a step, at an event of a trace (seq), at a JSON pointer. */
export interface ErrorLocation extends Pick<Issue, 'file' | 'line' | 'col' | 'step' | 'path'> {
  /** The trace event it is about. */
  seq?: number;
}

export interface NanoVmErrorOptions extends ErrorOptions {
  /** Located findings behind the error (a refused program's validation issues, an input's violations). */
  issues?: readonly Issue[];
  location?: ErrorLocation;
}

/**
 * The base of every error nano-vm throws: a stable code, a message a person can act on, and where
 * known a location, the issues behind it and the error that caused it (`cause`). The third argument
 * may be the issues alone.
 *
 * `Code` is wider than ErrorCode only for ModelError: a model adapter (or a scripted error answer)
 * may name a failure of its own, and the trace records that code as given.
 */
export class NanoVmError<Code extends string = ErrorCode> extends Error {
  readonly code: Code;
  readonly issues: Issue[];
  readonly location: ErrorLocation | undefined;

  constructor(code: Code, message: string, options: NanoVmErrorOptions | readonly Issue[] = {}) {
    const o: NanoVmErrorOptions = isIssueList(options) ? { issues: options } : options;
    super(message, 'cause' in o ? { cause: o.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.issues = [...(o.issues ?? [])];
    this.location = o.location;
  }

  /** This error with `message` instead (the caller's context added): same code, issues and location; `cause` is this one. */
  withMessage(message: string): NanoVmError<Code> {
    return new NanoVmError(this.code, message, {
      issues: this.issues,
      ...(this.location ? { location: this.location } : {}),
      cause: this,
    });
  }
}

const isIssueList = (o: NanoVmErrorOptions | readonly Issue[]): o is readonly Issue[] => Array.isArray(o);

/** `file:line:col`, then the step, the event seq and the JSON pointer, whichever are known. */
export function formatLocation(at: ErrorLocation): string {
  const parts = [
    at.file ? `${at.file}${at.line ? `:${at.line}:${at.col ?? 1}` : ''}` : at.line ? `${at.line}:${at.col ?? 1}` : '',
    at.step !== undefined ? `step ${at.step}` : '',
    at.seq !== undefined ? `seq ${at.seq}` : '',
    at.path !== undefined ? at.path || '/' : '',
  ];
  return parts.filter((p) => p !== '').join(', ');
}

export function formatIssue(i: Issue): string {
  const where = i.file
    ? `${i.file}${i.line ? `:${i.line}:${i.col ?? 1}` : ''}`
    : i.line
      ? `${i.line}:${i.col ?? 1}`
      : '';
  const step = i.step ? ` [step ${i.step}]` : '';
  return `${where ? where + ': ' : ''}${i.severity} ${i.code}${step}: ${i.message}`;
}
