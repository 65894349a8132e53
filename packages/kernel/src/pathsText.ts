/**
 * A paths report (paths.ts) as text for a person checking what a program can do — a compliance
 * reviewer as much as an engineer: paths grouped by how they end, each with the decisions that
 * lead along it, its loops and what the policy says about it; then the outcomes and the findings.
 */
import { durationText } from './durationText.js';
import { formatIssue, NanoVmError, type Issue } from './errors.js';
import type { PathEnd, PathsReport, ProgramPath } from './paths.js';
import type { Program, Step } from './program.js';

/** Where the report's program and policy came from, and the policy pre-flight's issues, when known. */
export interface PathsTextSource {
  file?: string;
  policyFile?: string;
  preflight?: readonly Issue[];
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The report as text for a person checking what a program can do: paths grouped by how they end. */
export function pathsText(program: Program, r: PathsReport, where: PathsTextSource = {}): string {
  const byId = new Map<string, Step>();
  for (const s of program.steps) if (!byId.has(s.id)) byId.set(s.id, s);
  const preflight = where.preflight ?? [];
  const file = where.file !== undefined ? ` (${where.file})` : '';
  const policyFile = where.policyFile !== undefined ? ` (${where.policyFile})` : '';
  const out: string[] = [];
  out.push(
    `Program ${r.program}${file}${r.policy !== null ? `, under policy ${r.policy}${policyFile}` : ''}, start step ${r.start ?? '(none)'}`,
  );
  out.push(
    r.complete
      ? `${plural(r.paths.length, 'path')} from the start to every way a run can end.`
      : `THE LISTING STOPPED at ${plural(r.paths.length, 'path')}: more paths exist (raise --max-paths to list them).`,
  );
  out.push('A path enters each step at most once: a loop is shown once, not repeated.');

  let group = '';
  for (const p of r.paths) {
    const key = `${p.end.kind}:${p.end.step}`;
    if (key !== group) {
      group = key;
      const count = r.paths.filter((q) => `${q.end.kind}:${q.end.step}` === key).length;
      out.push('', `${endHeading(p.end, byId)}: ${plural(count, 'path')}`);
    }
    out.push(...pathLines(p, byId));
  }

  out.push('', 'Outcomes');
  const width = Math.max(...r.outcomes.map((o) => o.outcome.length), 7);
  for (const o of r.outcomes) {
    const reach =
      o.reachable === true
        ? `${o.paths.length === 1 ? 'path' : 'paths'} ${o.paths.join(', ')}`
        : o.reachable === false
          ? 'UNREACHABLE'
          : 'not reached by the listed paths';
    out.push(`  ${o.outcome.padEnd(width)}  ${o.failure ? 'failure' : 'success'}  ${reach}`);
  }

  out.push('', r.findings.length === 0 ? 'Findings: none' : `Findings: ${r.findings.length}`);
  for (const f of r.findings) out.push(`  - ${f.message}`);
  if (preflight.length > 0) {
    const refused = preflight.some((i) => i.severity === 'error');
    out.push('', `Policy pre-flight${refused ? ': a run under this policy refuses this program' : ''}`);
    for (const i of preflight) out.push(`  ${formatIssue(i)}`);
  }
  out.push(
    '',
    'Not listed: a run may also stop at any step',
    '  - when a budget runs out (budget_exceeded)',
    '  - when its state stops changing (stalled)',
    '  - when a guard fails to evaluate (failed)',
    ...(r.policy !== null ? ["  - when a deny rule's `when` holds (POLICY_BLOCKED)"] : []),
    'Guards are listed as written, not solved: a path whose guards contradict each other never runs.',
  );
  return `${out.join('\n')}\n`;
}

function endHeading(end: PathEnd, byId: ReadonlyMap<string, Step>): string {
  switch (end.kind) {
    case 'outcome':
      return `Outcome ${end.outcome} (${end.failure ? 'failure' : 'success'}, end step ${end.step})`;
    case 'step_failed':
      return `Run fails at ${end.step} (${failingEffect(end, byId.get(end.step))} fails${end.attempts > 1 ? ` on all ${end.attempts} attempts` : ''}, no fallback)`;
    case 'max_visits':
      return `Run fails at ${end.step} (entered more than ${end.max_visits} times, no on_exhausted: E_MAX_VISITS)`;
    case 'wait_timeout':
      return `Run fails at ${end.step} (no event within ${durationText(end.timeout_ms)}, no on_timeout: E_WAIT_TIMEOUT)`;
    default: {
      const _exhaustive: never = end;
      // Unreachable (the switch is exhaustive): only a bug, or a value from JS that skipped the types, gets here.
      throw new NanoVmError('E_INTERNAL', `paths: unknown end ${JSON.stringify(_exhaustive)}`);
    }
  }
}

function failingEffect(end: Extract<PathEnd, { kind: 'step_failed' }>, step: Step | undefined): string {
  if (end.children !== undefined) return `child ${end.children.join(', ')}`;
  return step?.kind === 'llm' ? 'its model call' : 'its tool call';
}

/** One path: its steps, then one line per decision along it, its loops and the policy's view of it. */
function pathLines(p: ProgramPath, byId: ReadonlyMap<string, Step>): string[] {
  const rows: Array<[string, string]> = [];
  for (const e of p.edges) {
    const from = byId.get(e.from);
    switch (e.via) {
      case 'case': {
        const g = p.guards.find((x) => x.step === e.from)!;
        rows.push([e.from, e.guard ?? '']);
        for (const f of g.fails) rows.push(['', `and not: ${f}`]);
        break;
      }
      case 'else': {
        const g = p.guards.find((x) => x.step === e.from)!;
        rows.push([e.from, 'else, none of its cases holds:']);
        for (const f of g.fails) rows.push(['', `not: ${f}`]);
        break;
      }
      case 'on_timeout':
        rows.push([
          e.from,
          `no event within ${from?.kind === 'wait' && from.timeout_ms !== undefined ? durationText(from.timeout_ms) : 'its timeout'} (on_timeout)`,
        ]);
        break;
      case 'on_exhausted':
        rows.push([e.from, `entered more than ${from?.max_visits ?? '?'} times (on_exhausted)`]);
        break;
      case 'next':
        if (from?.kind === 'wait')
          rows.push([e.from, `the event arrives${from.role !== undefined ? ` from role ${from.role}` : ''}`]);
        break;
      default: {
        const _exhaustive: never = e.via;
        // Unreachable (the switch is exhaustive): only a bug, or a value from JS that skipped the types, gets here.
        throw new NanoVmError('E_INTERNAL', `paths: unknown edge ${String(_exhaustive)}`);
      }
    }
  }
  if (p.on_loop.length > 0) rows.push(['loop', `${p.on_loop.join(', ')} may repeat (each within its max_visits)`]);
  const check = p.policy;
  if (check !== undefined) {
    if (check.blocked !== null)
      rows.push([
        'policy',
        `BLOCKED entering ${check.blocked.step} by rule ${check.blocked.rule}: ${check.blocked.reason}; the run ends POLICY_BLOCKED`,
      ]);
    const passed = check.required.filter((q) => q.passed);
    if (passed.length > 0)
      rows.push(['policy', `passes required ${passed.map((q) => `${q.step} (${q.rule})`).join(', ')}`]);
    for (const rule of check.skipped) {
      const q = check.required.find((x) => x.rule === rule)!;
      rows.push(['policy', `SKIPS required step ${q.step} (rule ${q.rule})`]);
    }
    for (const m of check.may_block) rows.push(['policy', `deny rule ${m.rule} may refuse ${m.step} when: ${m.when}`]);
  }
  const width = Math.max(12, ...rows.map(([k]) => k.length));
  return [
    `  Path ${p.n}: ${p.steps.join(' → ')}`,
    ...rows.map(([k, v]) => `    ${k.padEnd(width)}  ${v}`.replace(/\s+$/, '')),
  ];
}
