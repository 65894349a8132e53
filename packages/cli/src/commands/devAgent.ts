/**
 * `nano-vm dev-agent --repo <path> --task "<text>" --model <spec>`: the dev agent changes a git
 * repository transactionally (docs/dev-agent.md), and `nano-vm dev-agent audit <rev-range>`
 * verifies the bundles its commits carry. The package is imported when the command runs, so the
 * CLI starts as fast without it.
 */
import { relative, resolve, isAbsolute } from 'node:path';
import { NanoVmError, serializeBundle } from '@nano-vm/kernel';
import { errorText } from '../errorExit.js';
import { EXIT } from '../exitCodes.js';
import { modelFromSpec } from '../inputs.js';
import { readSigningKey, readTrustedKeys, writeSignature } from '../keys.js';
import { writeFileAtomic } from '../outputFile.js';
import { loadPolicyFile } from '../policyFile.js';
import { openStore } from '../storeSpec.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const DEV_AGENT = defineCommand({
  name: 'dev-agent',
  summary:
    'A model changes a git repository: each patch is staged in a temporary worktree, type-checked and tested, and committed on a new branch with its bundle as a git note, or rolled back (docs/dev-agent.md). `dev-agent audit <rev-range>` verifies those notes.',
  args: '[audit <rev-range>]',
  options: {
    repo: {
      type: 'string',
      value: '<path>',
      default: '.',
      description: 'the git repository (its working tree must be clean)',
    },
    task: { type: 'string', value: '"<text>"', description: 'what to change (required unless auditing)' },
    model: {
      type: 'string',
      value: '<spec>',
      description:
        'the model (scripted:<file> answers from answers.plan and answers.propose, openai:<model>, anthropic:<model>, a chain)',
    },
    check: {
      type: 'string',
      multiple: true,
      value: '"<cmd>"',
      defaultText: 'tsc --noEmit',
      description:
        "a type-check command, repeatable; run by /bin/sh in the staged worktree. `tsc` is the repository's own, else nano-vm's",
    },
    test: {
      type: 'string',
      multiple: true,
      value: '"<cmd>"',
      defaultText: 'npm test',
      description: 'a test command, repeatable',
    },
    'max-attempts': {
      type: 'string',
      value: 'N',
      defaultText: '3',
      description: 'how many patches the model may propose, 1 to 10',
    },
    timeout: {
      type: 'string',
      value: '<seconds>',
      defaultText: '300',
      description: 'the time limit of each check and test command (its whole process group is killed)',
    },
    policy: {
      type: 'string',
      value: '<file>',
      description: "a policy whose rules are added to the agent's own (e.g. deny rules that protect more paths)",
    },
    store: {
      type: 'string',
      value: '<sqlite:path | memory:>',
      defaultText: 'memory:',
      description: 'where the run is kept besides the note (a store inside the repository is refused)',
    },
    out: {
      type: 'string',
      value: '<bundle.json>',
      description: 'also write the bundle there (outside the repository)',
    },
    sign: {
      type: 'string',
      value: '<private key>',
      description: 'sign the bundle (nano-vm keygen); the signature is a note under refs/notes/nano-vm-signatures',
    },
    key: {
      type: 'string',
      multiple: true,
      value: '<public key file>',
      description: 'audit: a trusted public key, repeatable; every bundle must then be signed by one of them',
    },
    json: { type: 'boolean', default: false, description: 'one JSON object: the run summary, or the audit report' },
  },
  run: devAgentCommand,
});
export const DEV_AGENT_USAGE = usageText(DEV_AGENT);

const inside = (root: string, p: string): boolean => {
  const r = relative(root, resolve(p));
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

export async function devAgentCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(DEV_AGENT, argv);
  const agent = await import('@nano-vm/dev-agent');
  if (positionals[0] === 'audit') {
    if (positionals.length !== 2)
      throw new NanoVmError('E_USAGE', `${DEV_AGENT_USAGE}\n(audit takes one revision range)`);
    const trusted = readTrustedKeys(values.key ?? [], []);
    const report = agent.auditRange(values.repo, positionals[1]!, { trusted });
    if (values.json) process.stdout.write(JSON.stringify(report) + '\n');
    else {
      const lines = [`audit ${report.range}: ${report.commits.length} commit(s)`];
      for (const c of report.commits) {
        const tag = c.verdict === 'verified' ? 'VERIFIED' : c.verdict === 'failed' ? 'FAILED  ' : 'no bundle';
        lines.push(
          `${c.commit.slice(0, 12)}  ${tag}  ${c.subject}${c.run_id ? `  run ${c.run_id}` : ''}${c.signed_by ? `  signed by ${c.signed_by}` : ''}`,
        );
        for (const p of c.problems) lines.push(`    ${p}`);
      }
      process.stdout.write(lines.join('\n') + '\n');
    }
    if (report.ok) return EXIT.OK;
    const bad = report.commits.filter((c) => c.verdict === 'failed').length;
    process.stderr.write(
      errorText({
        code: 'E_DEV_AUDIT_FAILED',
        message: `${bad} commit(s) carry a bundle that does not vouch for them`,
        issues: [],
      }),
    );
    return EXIT.FAILED;
  }
  if (positionals.length) throw new NanoVmError('E_USAGE', DEV_AGENT_USAGE);
  const task = values.task?.trim();
  if (!task) throw new NanoVmError('E_USAGE', `--task "<text>" is required\n${DEV_AGENT_USAGE}`);
  if (!values.model)
    throw new NanoVmError(
      'E_MODEL_SPEC',
      'no model: pass --model scripted:<file>, openai:<model> or anthropic:<model>',
    );
  const attempts = Number(values['max-attempts'] ?? agent.DEFAULT_MAX_ATTEMPTS);
  if (!/^\d+$/.test(values['max-attempts'] ?? '3') || attempts < 1 || attempts > agent.MAX_ATTEMPTS_LIMIT)
    throw new NanoVmError(
      'E_USAGE',
      `--max-attempts must be an integer from 1 to ${agent.MAX_ATTEMPTS_LIMIT}, got "${values['max-attempts']}"`,
    );
  const timeoutS = Number(values.timeout ?? 300);
  if (!/^\d+(\.\d+)?$/.test(values.timeout ?? '300') || timeoutS <= 0 || timeoutS > 86_400)
    throw new NanoVmError('E_USAGE', `--timeout must be a number of seconds from 1 to 86400, got "${values.timeout}"`);
  const { root } = agent.repositoryRoot(values.repo);
  const storeSpec = values.store ?? 'memory:';
  const storePath = /^sqlite:(.+)$/.exec(storeSpec)?.[1];
  // A file the agent writes inside the repository would change the very tree it promises to leave alone.
  for (const [what, p] of [
    ['--store', storePath],
    ['--out', values.out],
  ] as const)
    if (p !== undefined && inside(root, p))
      throw new NanoVmError('E_USAGE', `${what} ${p} is inside the repository ${root}; put it elsewhere`);
  const policy = values.policy ? loadPolicyFile(values.policy).policy : undefined;
  const signer = values.sign ? readSigningKey(values.sign) : undefined;
  const model = modelFromSpec(values.model);
  const store = openStore(storeSpec);
  let result;
  try {
    result = await agent.runDevAgent({
      repo: root,
      task,
      model,
      ...(values.check?.length ? { checks: values.check } : {}),
      ...(values.test?.length ? { tests: values.test } : {}),
      maxAttempts: attempts,
      ...(policy ? { policy } : {}),
      store,
      ...(signer ? { signer } : {}),
      limits: { checkTimeoutMs: Math.round(timeoutS * 1000) },
      ...(process.env.NANO_VM_DEV_AGENT_PAUSE_WHILE_STAGING
        ? { pauseWhileStaging: process.env.NANO_VM_DEV_AGENT_PAUSE_WHILE_STAGING }
        : {}),
      onProgress: values.json ? undefined : (line) => process.stderr.write(`dev-agent: ${line}\n`),
    });
  } finally {
    await store.close();
  }
  const { run } = result;
  if (values.out) {
    writeFileAtomic(values.out, serializeBundle(run.bundle));
    if (signer) writeSignature(values.out, run.bundle, signer);
  }
  const summary = {
    run_id: run.run_id,
    status: run.status,
    outcome: run.outcome,
    head_hash: run.head_hash,
    scripted_model: run.receipt.model.scripted,
    repo: root,
    attempts: result.attempts,
    commit: result.commit ?? null,
    noted: result.noted,
    blocked: result.blocked,
    cleaned: result.cleaned,
    duration_ms: result.durationMs,
    bundle: values.out ?? null,
  };
  if (values.json) process.stdout.write(JSON.stringify(summary) + '\n');
  else {
    const lines = [
      `dev-agent run ${run.run_id}  status ${run.status}${run.outcome ? `  outcome ${run.outcome}` : ''}  head ${run.head_hash}`,
    ];
    for (const a of result.attempts)
      lines.push(
        `  attempt ${a.attempt}: ${a.failed ? `failed ${a.failed}` : 'passed every check'}  (${Object.entries(a.ms)
          .map(([k, v]) => `${k} ${v} ms`)
          .join(', ')})`,
      );
    for (const b of result.blocked) lines.push(`  blocked ${b.requested} by ${b.rule}: ${b.reason}`);
    if (result.commit)
      lines.push(
        `committed ${result.commit.sha} on branch ${result.commit.branch}; bundle in refs/notes/nano-vm (nano-vm dev-agent audit ${run.bundle.input && (run.bundle.input as { base: string }).base.slice(0, 12)}..${result.commit.branch})`,
      );
    else lines.push('nothing committed: the repository is as it was');
    process.stdout.write(lines.join('\n') + '\n');
  }
  return run.outcome === agent.COMMITTED ? EXIT.OK : EXIT.FAILED;
}
