/** Human-readable rendering of runs, receipts and issues. Machines use --json instead. */
import { canonicalJson, formatIssue, NanoVmError, type Issue, type Receipt, type TraceEvent } from '@nano-vm/kernel';

const clip = (s: string, n = 70) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const show = (v: unknown) => clip(typeof v === 'string' ? JSON.stringify(v) : canonicalJson(v));

/** Issues a text report shows; --json lists them all. */
export const MAX_SHOWN_ISSUES = 20;

/** The first MAX_SHOWN_ISSUES issues, one indented line each, then how many more there are. */
export function issueLines(issues: readonly Issue[]): string[] {
  const lines = issues.slice(0, MAX_SHOWN_ISSUES).map((i) => `  ${formatIssue(i)}`);
  const more = issues.length - MAX_SHOWN_ISSUES;
  if (more > 0) lines.push(`  … ${more} more (--json lists them all)`);
  return lines;
}

export function renderIssues(issues: Issue[]): string {
  return issueLines(issues).join('\n');
}

/** One line per decision the run made, in trace order. */
export function renderTrace(events: readonly TraceEvent[]): string {
  const lines: string[] = [];
  for (const e of events) {
    const ind = 'parent' in e && e.parent !== undefined ? '    ' : '  ';
    switch (e.type) {
      case 'step_completed':
        lines.push(
          `${ind}✓ ${e.step.padEnd(20)} ${e.kind.padEnd(9)} → ${show(e.output)}${e.next !== undefined ? `  ⇒ ${e.next}` : ''}`,
        );
        break;
      case 'step_failed':
        lines.push(`${ind}✗ ${e.step.padEnd(20)} attempt ${e.attempt}: ${e.error.code} ${clip(e.error.message, 90)}`);
        break;
      case 'step_retry':
        lines.push(`${ind}↻ ${e.step.padEnd(20)} retry, attempt ${e.attempt} of ${e.max_attempts}`);
        break;
      case 'step_fallback':
        lines.push(
          `${ind}↘ ${e.step.padEnd(20)} fallback → ${show(e.output)}${e.next !== undefined ? `  ⇒ ${e.next}` : ''}`,
        );
        break;
      case 'condition_evaluated': {
        const decided = e.chosen >= 0 ? e.guards[e.chosen] : undefined;
        lines.push(
          `  ◆ ${e.step.padEnd(20)} condition ${decided ? `[${clip(decided.expr, 60)}] = true` : 'no case held: else'}  ⇒ ${e.next || '(stopped)'}`,
        );
        break;
      }
      case 'visits_exhausted':
        lines.push(`  ! ${e.step.padEnd(20)} max_visits ${e.max_visits} exhausted${e.next ? `  ⇒ ${e.next}` : ''}`);
        break;
      case 'transition_rejected':
        lines.push(`  ⛔ ${e.step.padEnd(19)} blocked: ${e.requested} (rule ${e.rule}): ${e.reason}`);
        break;
      case 'run_suspended':
        lines.push(
          `  ⏸ ${e.step.padEnd(20)} wait      suspended: waiting for an event${e.role ? ` from role ${e.role}` : ''}${e.deadline ? ` until ${e.deadline}` : ''}`,
        );
        break;
      case 'run_resumed':
        lines.push(
          `  ▶ ${e.step.padEnd(20)} wait      resumed${e.role ? ` by ${e.role}` : ''}${e.event_id ? ` (event ${e.event_id})` : ''} → ${show(e.event)}  ⇒ ${e.next}`,
        );
        break;
      case 'wait_timed_out':
        lines.push(`  ⌛ ${e.step.padEnd(19)} wait      timed out${e.next ? `  ⇒ ${e.next}` : ''}`);
        break;
      case 'run_finished':
        lines.push(
          `  ■ ${(e.step ?? '').padEnd(20)} ${e.status}${e.outcome ? ` ${e.outcome}` : ''}${e.error ? `: ${e.error.code} ${clip(e.error.message, 90)}` : ''}${e.budget ? `: ${e.budget.name} ${e.budget.used}/${e.budget.limit}` : ''}`,
        );
        break;
      // Not a decision: the lines above already say what these record.
      case 'run_started':
      case 'step_started':
      case 'policy_checked':
      case 'values_erased':
      case 'erasure_refused':
        break;
      default: {
        const _exhaustive: never = e;
        throw new NanoVmError('E_INTERNAL', `renderTrace: unknown event type ${(_exhaustive as TraceEvent).type}`);
      }
    }
  }
  return lines.join('\n');
}

export function modelLabel(r: Pick<Receipt, 'model'>): string {
  return r.model.scripted
    ? `${r.model.id} (SCRIPTED model: deterministic answers from a file, not a real LLM)`
    : r.model.id;
}

export function renderReceipt(r: Receipt): string {
  const c = r.counts;
  return [
    `receipt ${r.run_id}  (${r.format})`,
    `  program      ${r.program_id}  ${r.program_hash}`,
    `  policy       ${r.policy_hash}`,
    `  input        ${r.input_hash}`,
    `  runtime      ${r.runtime_version}`,
    `  model        ${modelLabel(r)}`,
    `  status       ${r.status}${r.outcome ? `  outcome ${r.outcome}` : ''}${r.error ? `  error ${r.error.code}: ${r.error.message}` : ''}${r.budget ? `  budget ${r.budget.name} ${r.budget.used}/${r.budget.limit}` : ''}`,
    `  path         ${r.path.join(' → ')}`,
    `  counts       steps ${c.steps}, model calls ${c.model_calls}, tool calls ${c.tool_calls}, retries ${c.retries}, failures ${c.failures}, fallbacks ${c.fallbacks}, blocked ${c.blocked_actions}`,
    `  usage        ${r.model.input_tokens} input + ${r.model.output_tokens} output tokens, $${r.model.cost_usd.toFixed(6)}`,
    `  time         ${r.started_at} → ${r.finished_at ?? '(running)'}`,
    `  events       ${r.event_count}, head ${r.head_hash}`,
  ].join('\n');
}
