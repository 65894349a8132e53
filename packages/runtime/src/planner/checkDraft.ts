/**
 * The planner's `check_program` tool: is a draft a program that `nano-vm run` would accept with
 * these tools, under this policy? The same checks a run's pre-flight makes — the loader's
 * structural check, validateProgram with the tools (and the policy's thresholds visible to guards),
 * then validatePolicy — as a pure function of its arguments, so the trace records everything the
 * verdict depends on.
 */
import {
  hashJson,
  policyFromValue,
  programFromValue,
  validateProgram,
  type Issue,
  type JsonValue,
} from '@nano-vm/kernel';
import { nodeHasher } from '../nodeHasher.js';
import { issuesUnderPolicy } from '../policyRun.js';
import type { ToolDefinition } from '../toolRegistry.js';
import { CHECK_OUTPUT_SCHEMA, CHECK_TOOL } from './plannerProgram.js';

export interface DraftIssue {
  code: string;
  severity: 'error' | 'warning';
  message: string;
  step?: string;
  path?: string;
}

export interface DraftCheck {
  ok: boolean;
  issues: DraftIssue[];
}

/** A tool as the planner describes it to the model and to the check. */
export interface PlannerTool {
  name: string;
  description?: string;
  input_schema?: JsonValue;
  output_schema?: JsonValue;
}

const toDraftIssue = (i: Issue): DraftIssue => ({
  code: i.code,
  severity: i.severity === 'warning' ? 'warning' : 'error',
  message: i.message,
  ...(i.step !== undefined ? { step: i.step } : {}),
  ...(i.path !== undefined ? { path: i.path } : {}),
});

export function checkDraft(draft: unknown, tools: readonly PlannerTool[], policyValue?: unknown): DraftCheck {
  const issues: Issue[] = [];
  const loaded = programFromValue(draft);
  issues.push(...loaded.issues);
  if (loaded.program) {
    const described: Record<string, { input_schema?: unknown; output_schema?: unknown }> = {};
    for (const t of tools) described[t.name] = { input_schema: t.input_schema, output_schema: t.output_schema };
    let policy;
    if (policyValue !== undefined) {
      const p = policyFromValue(policyValue);
      // The CLI checks the policy before planning; a bad one here is the caller's bug, reported as the draft's issue all the same.
      if (!p.policy) issues.push(...p.issues);
      policy = p.policy;
    }
    issues.push(
      ...(policy
        ? issuesUnderPolicy(loaded.program, policy, described, hashJson(nodeHasher, loaded.program))
        : validateProgram(loaded.program, { tools: described })),
    );
  }
  return { ok: !issues.some((i) => i.severity === 'error'), issues: issues.map(toDraftIssue) };
}

/** The check as a tool for the planner's registry. */
export const checkProgramTool: ToolDefinition = {
  name: CHECK_TOOL,
  description: 'Checks a drafted nano-vm program: loader, validator (with the tools), policy pre-flight.',
  input_schema: {
    type: 'object',
    additionalProperties: false,
    required: ['program', 'tools'],
    properties: { program: {}, tools: { type: 'array' }, policy: { type: 'object' } },
  },
  output_schema: CHECK_OUTPUT_SCHEMA,
  run: (args) => checkDraft(args.program, args.tools as unknown as PlannerTool[], args.policy),
};
