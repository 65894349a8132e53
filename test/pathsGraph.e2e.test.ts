/**
 * End to end: `nano-vm paths` and `nano-vm graph`, spawned from the built CLI
 * (`packages/cli/dist/main.js`) on every example, with --json, a policy that a path breaks, bad
 * arguments, and the example outputs quoted in docs/cli.md (each must be exactly what the command
 * prints). DOT output is also rendered by Graphviz when `dot` is installed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'packages/cli/dist/main.js');
const EXAMPLES = readdirSync(join(ROOT, 'examples')).sort();
let dir: string;

function nanoVm(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nano-vm-paths-'));
});

describe('nano-vm paths', () => {
  it.each(EXAMPLES)('lists every path of examples/%s and reaches every outcome (exit 0)', (name) => {
    const text = nanoVm('paths', `examples/${name}`);
    expect(text.err).toBe('');
    expect(text.code).toBe(0);
    expect(text.out).toContain('Findings: none');

    const r = nanoVm('paths', `examples/${name}`, '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(report).toMatchObject({ format: 'nano-vm.paths/v1', complete: true, findings: [], preflight: [] });
    expect(report.file).toBe(`examples/${name}/program.yaml`);
    expect(report.paths.length).toBeGreaterThan(0);
    for (const o of report.outcomes) {
      expect(o.reachable).toBe(true);
      expect(text.out).toContain(`Outcome ${o.outcome} (`);
    }
    for (const p of report.paths) {
      expect(p.steps[0]).toBe(report.start);
      expect(text.out).toContain(`  Path ${p.n}: ${p.steps.join(' → ')}\n`);
    }
  });

  it('with the example policy, shows the required steps each path passes', () => {
    const r = nanoVm('paths', 'examples/kyc', '--json');
    const report = JSON.parse(r.out);
    expect(report.policy).toBe('kyc-aml-policy');
    expect(report.policy_file).toBe('examples/kyc/policy.yaml');
    const approved = report.paths.find((p: { end: { outcome?: string } }) => p.end.outcome === 'APPROVED');
    expect(approved.policy.required).toEqual([
      { rule: 'sanctions_screening_required', step: 'screen_sanctions', passed: true },
      { rule: 'risk_scoring_required', step: 'score_risk', passed: true },
    ]);
    expect(nanoVm('paths', 'examples/kyc').out).toContain(
      'policy           passes required screen_sanctions (sanctions_screening_required), score_risk (risk_scoring_required)',
    );
  });

  it('exits 1 and names the path when a success path skips a required step (and shows the pre-flight)', () => {
    const policy = join(dir, 'strict.yaml');
    writeFileSync(
      policy,
      'format: nano-vm.policy/v1\nid: strict\nrequired_steps:\n  - { id: must_refund, step: issue_refund }\n',
    );
    const text = nanoVm('paths', 'examples/refund', '--policy', policy);
    expect(text.code).toBe(1);
    expect(text.out).toContain('policy        SKIPS required step issue_refund (rule must_refund)');
    expect(text.out).toContain(
      "path 3 reaches success outcome NEEDS_HUMAN_REVIEW without passing required step 'issue_refund' (rule 'must_refund')",
    );
    expect(text.out).toContain('Policy pre-flight: a run under this policy refuses this program');
    expect(text.out).toContain('E_POLICY_REQUIRED_STEP');

    const r = JSON.parse(nanoVm('paths', 'examples/refund', '--policy', policy, '--json').out);
    expect(r.findings.map((f: { kind: string; path: number }) => [f.kind, f.path])).toEqual([
      ['skips_required_step', 3],
    ]);
    expect(r.preflight.map((i: { code: string }) => i.code)).toEqual(['E_POLICY_REQUIRED_STEP']);
  });

  it('exits 1 when the listing is capped, and says so', () => {
    const r = nanoVm('paths', 'examples/kyc', '--max-paths', '3');
    expect(r.code).toBe(1);
    expect(r.out).toContain('THE LISTING STOPPED at 3 paths');
    expect(JSON.parse(nanoVm('paths', 'examples/kyc', '--max-paths', '3', '--json').out).complete).toBe(false);
  });

  it('refuses bad arguments, unreadable files and invalid programs with a code (exit 2)', () => {
    const cases: Array<[string[], string]> = [
      [['paths'], 'E_USAGE'],
      [['paths', 'a.yaml', 'b.yaml'], 'E_USAGE'],
      [['paths', 'examples/refund', '--max-paths', 'many'], 'E_USAGE'],
      [['paths', 'examples/refund', '--max-paths', '0'], 'E_USAGE'],
      [['paths', 'examples/refund', '--bogus'], 'E_USAGE'],
      [['paths', 'no/such/program.yaml'], 'E_FILE'],
      [['paths', 'examples/refund', '--policy', 'no/such/policy.yaml'], 'E_FILE'],
      [['paths', 'examples/kyc/program.yaml'], 'E_GUARD_UNKNOWN_IDENT'],
    ];
    for (const [args, code] of cases) {
      const r = nanoVm(...args);
      expect([args.join(' '), r.code]).toEqual([args.join(' '), 2]);
      expect(r.err).toContain(`nano-vm: ${code}: `);
      expect(r.out).toBe('');
    }
    const broken = join(dir, 'broken.yaml');
    writeFileSync(
      broken,
      'format: nano-vm.program/v1\nid: broken\ninput_schema: true\nsteps:\n  - id: a\n    kind: llm\n    prompt: p\n    projection: []\n    output: { enum: [x] }\n    next: nowhere\n  - { id: done, kind: end, outcome: OK }\n',
    );
    const r = nanoVm('paths', broken);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${broken}:10:5: error E_MISSING_TARGET [step a]`);
    const json = JSON.parse(nanoVm('paths', broken, '--json').out);
    expect(json.error.code).toBe('E_MISSING_TARGET');
    expect(json.error.issues).toContainEqual(expect.objectContaining({ code: 'E_MISSING_TARGET', line: 10, col: 5 }));
  });
});

describe('nano-vm graph', () => {
  const graphviz = spawnSync('dot', ['-V'], { encoding: 'utf8' }).status === 0;

  it.each(EXAMPLES)('draws examples/%s in Mermaid (the default) and DOT, the same every time', (name) => {
    const mermaid = nanoVm('graph', `examples/${name}`);
    expect(mermaid.code).toBe(0);
    expect(mermaid.err).toBe('');
    expect(mermaid.out.startsWith('flowchart TD\n')).toBe(true);
    expect(nanoVm('graph', `examples/${name}`, '--format', 'mermaid').out).toBe(mermaid.out);
    const dot = nanoVm('graph', `examples/${name}`, '--format', 'dot');
    expect(dot.code).toBe(0);
    expect(dot.out.startsWith('digraph ')).toBe(true);
    expect(nanoVm('graph', `examples/${name}`, '--format', 'dot').out).toBe(dot.out);
    // Every outcome of the program is drawn.
    for (const o of JSON.parse(nanoVm('paths', `examples/${name}`, '--json').out).outcomes) {
      expect(mermaid.out).toContain(`(["${o.outcome}<br/>`);
      expect(dot.out).toContain(`label="${o.outcome}\\n`);
    }
  });

  it('DOT output is accepted by Graphviz', (ctx) => {
    if (!graphviz) {
      console.log('skipped: Graphviz `dot` is not installed (apt-get install -y graphviz to run this check)');
      ctx.skip();
    }
    for (const name of EXAMPLES) {
      const dot = nanoVm('graph', `examples/${name}`, '--format', 'dot').out;
      const r = spawnSync('dot', ['-Tsvg'], { input: dot, encoding: 'utf8' });
      expect([name, r.status, r.stderr]).toEqual([name, 0, '']);
      expect(r.stdout).toContain('<svg');
    }
  });

  it('refuses an unknown format, a missing program, a nonexistent file and an invalid program (exit 2)', () => {
    const cases: Array<[string[], string]> = [
      [['graph', 'examples/refund', '--format', 'svg'], 'E_USAGE'],
      [['graph'], 'E_USAGE'],
      [['graph', 'no/such/program.yaml'], 'E_FILE'],
      [['graph', 'examples/kyc/program.yaml'], 'E_GUARD_UNKNOWN_IDENT'],
    ];
    for (const [args, code] of cases) {
      const r = nanoVm(...args);
      expect([args.join(' '), r.code]).toEqual([args.join(' '), 2]);
      expect(r.err).toContain(`nano-vm: ${code}: `);
      expect(r.out).toBe('');
    }
  });
});

describe('docs/cli.md examples', () => {
  const doc = readFileSync(join(ROOT, 'docs/cli.md'), 'utf8');
  const quoted = [...doc.matchAll(/<!-- output of: nano-vm ([^>]*?) -->\n```\w*\n([\s\S]*?)```/g)];

  it('quotes at least one paths and one graph output', () => {
    expect(quoted.map((m) => m[1]!.split(' ')[0])).toEqual(expect.arrayContaining(['paths', 'graph']));
  });

  it.each(quoted.map((m) => [m[1]!, m[2]!]))('`nano-vm %s` prints what docs/cli.md shows', (command, shown) => {
    expect(nanoVm(...command.split(' ')).out).toBe(shown);
  });
});
