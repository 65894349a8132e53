import type { MissingAnswer, VaultReport } from '@nano-vm/kernel';

/** What a replay says about a run's sensitive inputs (docs/privacy.md), for people. */
export function renderVaultReport(v: VaultReport): string {
  const lines: string[] = [];
  const held = v.sealed.filter((p) => !v.tombstoned.includes(p));
  if (v.tombstoned.length) lines.push(`  tombstoned inputs (erased): ${v.tombstoned.join(', ')}`);
  if (held.length) lines.push(`  sealed inputs (in the vault, not in the bundle): ${held.join(', ')}`);
  for (const d of v.decisions)
    lines.push(
      `  decision at seq ${d.seq} (${d.step}) read ${d.paths.join(', ')}: taken from the record, not re-evaluated`,
    );
  for (const t of v.tool_calls)
    lines.push(
      `  tool call at seq ${t.seq} (${t.step}) was given ${t.paths.join(', ')} as commitments; its recorded result was used`,
    );
  if (v.admin_events)
    lines.push(`  ${v.admin_events} erasure event${v.admin_events > 1 ? 's' : ''} after run_finished (not re-derived)`);
  return lines.length ? lines.join('\n') + '\n' : '';
}

export function missingText(m: MissingAnswer): string {
  if (m.kind === 'condition')
    return `condition '${m.step}' (visit ${m.occurrence}) reads sealed or erased inputs and has no recorded decision to reuse`;
  return `step '${m.step}' needs a ${m.kind === 'llm' ? 'model answer' : 'tool result'} (#${m.occurrence}) that was never recorded`;
}
