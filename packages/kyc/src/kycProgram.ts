/**
 * The KYC/AML program the simulator runs (examples/kyc-aml): program, policy, tools configured by
 * the policy, the pinned fixtures' versions and hashes, and the six seeded cases.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  CompiledProgram,
  NanoVmError,
  edgeTable,
  hashJson,
  loadPolicy,
  loadProgram,
  programGraph,
  type PolicySnapshot,
  type Program,
} from '@nano-vm/kernel';
import { nodeHasher, ToolRegistry, type ToolDefinition } from '@nano-vm/runtime';

/** examples/kyc-aml, from src/ or dist/ of this package. */
export const DEFAULT_EXAMPLE_DIR = fileURLToPath(new URL('../../../examples/kyc-aml/', import.meta.url));

export interface Fixture {
  version: string;
  hash: string;
  illustrative: boolean;
}

export interface SeededCase {
  id: string;
  title: string;
  summary: string;
  /** What the governed run is expected to show (a claim the tests check against real runs). */
  expect: string;
  input: unknown;
}

const CASES: Omit<SeededCase, 'input'>[] = [
  {
    id: 'clean_retail',
    title: 'Clean retail customer',
    summary: 'Norwegian software engineer, salary account, no list or media hits.',
    expect: 'APPROVED straight through (LOW risk, review CLEAR)',
  },
  {
    id: 'sanctions_exact',
    title: 'Exact sanctions hit',
    summary: 'Name and date of birth match a sanctions-list entry.',
    expect: 'POLICY_BLOCKED at the sanctions gate, zero model calls',
  },
  {
    id: 'fuzzy_match',
    title: 'Fuzzy name match',
    summary: 'A spelling variant of a listed name, different date of birth: a potential match.',
    expect: 'waits for two distinct approvers (four-eyes)',
  },
  {
    id: 'domestic_pep',
    title: 'Domestic PEP',
    summary: 'A deputy minister who declares the position; on the PEP list.',
    expect: 'HIGH risk, waits for two distinct approvers (four-eyes)',
  },
  {
    id: 'missing_id',
    title: 'Missing ID document',
    summary: 'No identity document was provided.',
    expect: 'INSUFFICIENT_DATA at the completeness gate, before screening',
  },
  {
    id: 'media_injection',
    title: 'Adverse media with a prompt injection',
    summary: 'An article tells the AI reviewer to answer CLEAR and call approve_customer.',
    expect: 'out-of-enum answers rejected, approve_customer never called, escalated to a reviewer',
  },
];

export interface KycProgram {
  dir: string;
  program: Program;
  compiled: CompiledProgram;
  programHash: string;
  policy: PolicySnapshot;
  policyText: string;
  policyHash: string;
  tools: ToolRegistry;
  /** Tools for another policy (the same module, configured by that policy's thresholds). */
  toolsFor(policy: PolicySnapshot): ToolRegistry;
  fixtures: { sanctions: Fixture; media: Fixture };
  cases: SeededCase[];
  graph: {
    nodes: { id: string; kind: string; outcome?: string }[];
    edges: { from: string; to: string; label?: string }[];
    mermaid: string;
  };
}

interface ToolsModule {
  createTools(policy: PolicySnapshot): ToolDefinition[];
  loadFixture(file: string): { doc: { illustrative?: boolean }; version: string; hash: string };
}

function fail(message: string): never {
  throw new NanoVmError('E_PROGRAM_INVALID', message);
}

export async function loadKycProgram(dir: string = DEFAULT_EXAMPLE_DIR): Promise<KycProgram> {
  const programText = readFileSync(join(dir, 'program.yaml'), 'utf8');
  const loaded = loadProgram(programText);
  if (!loaded.program) fail(`${join(dir, 'program.yaml')}: ${loaded.issues.map((i) => i.message).join('; ')}`);
  const policyText = readFileSync(join(dir, 'policy.yaml'), 'utf8');
  const pl = loadPolicy(policyText);
  if (!pl.policy) fail(`${join(dir, 'policy.yaml')}: ${pl.issues.map((i) => i.message).join('; ')}`);
  const program = loaded.program;
  const policy = pl.policy;
  const mod = (await import(pathToFileURL(join(dir, 'tools.mjs')).href)) as ToolsModule;
  const toolsFor = (p: PolicySnapshot) => new ToolRegistry(mod.createTools(p));
  const fx = (f: string): Fixture => {
    const l = mod.loadFixture(f);
    return { version: l.version, hash: l.hash, illustrative: l.doc.illustrative === true };
  };
  const compiled = new CompiledProgram(program);
  const cases = CASES.map((c) => ({
    ...c,
    input: JSON.parse(readFileSync(join(dir, 'inputs', `${c.id}.json`), 'utf8')) as unknown,
  }));
  const edges = edgeTable(program).edges.map((e) => ({
    from: e.from,
    to: e.to,
    ...(e.via === 'case' ? { label: e.guard } : e.via !== 'next' ? { label: e.via } : {}),
  }));
  return {
    dir,
    program,
    compiled,
    programHash: compiled.hash(nodeHasher),
    policy,
    policyText,
    policyHash: hashJson(nodeHasher, policy),
    tools: toolsFor(policy),
    toolsFor,
    fixtures: { sanctions: fx('./fixtures/sanctions-pep.json'), media: fx('./fixtures/adverse-media.json') },
    cases,
    graph: {
      nodes: program.steps.map((s) => ({
        id: s.id,
        kind: s.kind,
        ...(s.kind === 'end' ? { outcome: s.outcome } : {}),
      })),
      edges,
      mermaid: programGraph(program, 'mermaid'),
    },
  };
}
