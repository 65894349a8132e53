/**
 * graph.ts: the diagram of a program in Mermaid and DOT — shapes by kind, guards on edges, outcomes,
 * failure ends, parallel children inside their parent — and labels escaped so that no text from a
 * program can break either format.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { edgeTable } from '../src/edges.js';
import { dotText, mermaidText, programGraph } from '../src/graph.js';
import type { Program } from '../src/program.js';

const small: Program = {
  format: 'nano-vm.program/v1',
  id: 'small',
  input_schema: true,
  steps: [
    {
      id: 'ask',
      kind: 'llm',
      prompt: 'p',
      projection: [],
      output: {
        enum: ['yes', 'no'],
      },
      on_error: {
        action: 'retry',
        max_attempts: 2,
        then: 'fallback',
        value: 'no',
      },
      next: 'route',
    },
    {
      id: 'route',
      kind: 'condition',
      cases: [
        {
          when: 'steps.ask.output == "yes"',
          next: 'both',
        },
      ],
      else: 'hold',
    },
    {
      id: 'both',
      kind: 'parallel',
      max_concurrency: 1,
      children: [
        {
          id: 'a',
          kind: 'tool',
          tool: 'lookup',
        },
        {
          id: 'b',
          kind: 'llm',
          prompt: 'p',
          projection: [],
          output: {
            schema: {
              type: 'object',
            },
          },
          on_error: {
            action: 'fallback',
            value: {},
          },
        },
      ],
      next: 'done',
    },
    {
      id: 'hold',
      kind: 'wait',
      event: true,
      role: 'approver',
      timeout_ms: 3600000,
      on_timeout: 'late',
      next: 'route',
      max_visits: 2,
    },
    {
      id: 'done',
      kind: 'end',
      outcome: 'OK',
    },
    {
      id: 'late',
      kind: 'end',
      outcome: 'LATE',
      failure: true,
    },
  ],
};

describe('programGraph', () => {
  it('draws a program as Mermaid: shapes by kind, guards on edges, outcomes and failure ends styled', () => {
    expect(programGraph(small, 'mermaid')).toBe(
      [
        'flowchart TD',
        '  %% program small',
        '  start(("start"))',
        '  s0("ask<br/>llm: yes #124; no<br/>retry: 2 attempts, then fallback #quot;no#quot;")',
        '  s1{"route"}',
        '  subgraph s2["both: parallel, at most 1 at once"]',
        '    s2_0[["a<br/>tool lookup"]]',
        '    s2_1("b<br/>llm: JSON<br/>on error: fallback {}")',
        '  end',
        '  s3{{"hold<br/>wait for event from approver<br/>at most 2 visits"}}',
        '  s4(["OK<br/>done"])',
        '  s5(["LATE<br/>late (failure)"])',
        '  run_failed[/"run fails<br/>status failed"\\]',
        '  start --> s0',
        '  s0 --> s1',
        '  s1 -->|"steps.ask.output == #quot;yes#quot;"| s2',
        '  s1 -->|"else"| s3',
        '  s2 --> s4',
        '  s2 -.->|"error in a"| run_failed',
        '  s3 -->|"event"| s1',
        '  s3 -->|"no event within 1 h"| s5',
        '  s3 -.->|"entered more than 2 times"| run_failed',
        '  classDef outcome fill:#e8f5e9,stroke:#2e7d32,color:#1b5e20',
        '  classDef failure fill:#ffebee,stroke:#c62828,color:#b71c1c',
        '  class s4 outcome',
        '  class s5,run_failed failure',
      ].join('\n') + '\n',
    );
  });

  it('draws the same program as Graphviz DOT', () => {
    expect(programGraph(small, 'dot')).toBe(
      [
        'digraph "small" {',
        '  compound=true;',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
        '  start [shape=circle, label="start"];',
        '  s0 [shape=box, style="rounded", label="ask\\nllm: yes | no\\nretry: 2 attempts, then fallback \\"no\\""];',
        '  s1 [shape=diamond, label="route"];',
        '  subgraph cluster_s2 {',
        '    label="both: parallel, at most 1 at once";',
        '    style="dashed";',
        '    s2_0 [shape=box, label="a\\ntool lookup"];',
        '    s2_1 [shape=box, style="rounded", label="b\\nllm: JSON\\non error: fallback {}"];',
        '  }',
        '  s3 [shape=hexagon, label="hold\\nwait for event from approver\\nat most 2 visits"];',
        '  s4 [shape=box, style="rounded,filled", fillcolor="#e8f5e9", color="#2e7d32", label="OK\\ndone"];',
        '  s5 [shape=box, style="rounded,filled", fillcolor="#ffebee", color="#c62828", label="LATE\\nlate (failure)"];',
        '  run_failed [shape=box, style="filled,dashed", fillcolor="#ffebee", color="#c62828", label="run fails\\nstatus failed"];',
        '  start -> s0;',
        '  s0 -> s1;',
        '  s1 -> s2_0 [label="steps.ask.output == \\"yes\\"", lhead=cluster_s2];',
        '  s1 -> s3 [label="else"];',
        '  s2_0 -> s4 [ltail=cluster_s2];',
        '  s2_0 -> run_failed [label="error in a", style="dashed", color="#c62828", ltail=cluster_s2];',
        '  s3 -> s1 [label="event"];',
        '  s3 -> s5 [label="no event within 1 h"];',
        '  s3 -> run_failed [label="entered more than 2 times", style="dashed", color="#c62828"];',
        '}',
      ].join('\n') + '\n',
    );
  });
});

// ---- Escaping: no text from a program can break either format ----

/** Strings made of what breaks diagrams: quotes, pipes, brackets, angle brackets, entities, newlines, backslashes. */
const nasty = fc.string({
  unit: fc.constantFrom(...'"|<>&`#[]{}()\n\r\\;%-:'.split(''), 'a', ' ', 'end', '-->', '#quot;', '<br/>', '\\N', 'é'),
  maxLength: 30,
});

const MERMAID_DECODE: Record<string, string> = {
  '#35;': '#',
  '#amp;': '&',
  '#lt;': '<',
  '#gt;': '>',
  '#quot;': '"',
  '#124;': '|',
  '#96;': '`',
  '<br/>': '\n',
};
const fromMermaid = (t: string): string =>
  t.replace(/#(?:35|amp|lt|gt|quot|124|96);|<br\/>/g, (m) => MERMAID_DECODE[m]!);
const fromDot = (t: string): string => t.slice(1, -1).replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
const lineBreaks = (t: string): string => t.replace(/\r\n|\r/g, '\n');

describe('label escaping', () => {
  it('Mermaid: only entities and <br/> remain of what the format reads, and the text decodes back', () => {
    fc.assert(
      fc.property(nasty, (text) => {
        const out = mermaidText(text);
        expect(out.replace(/<br\/>/g, '')).not.toMatch(/["|<>&`\n\r]/);
        expect(out.replace(/#(?:35|amp|lt|gt|quot|124|96);/g, '')).not.toContain('#');
        expect(fromMermaid(out)).toBe(lineBreaks(text));
      }),
    );
  });

  it('DOT: one quoted string whose only escapes are \\\\, \\" and \\n, and the text decodes back', () => {
    fc.assert(
      fc.property(nasty, (text) => {
        const out = dotText(text);
        expect(out).toMatch(/^"(?:[^"\\\r\n]|\\["\\n])*"$/);
        expect(fromDot(out)).toBe(lineBreaks(text));
      }),
    );
  });

  /** A program whose every text (ids aside, which the DSL restricts) is hostile. */
  const hostile = fc
    .record({ guard: nasty, outcome: nasty, tool: nasty, answer: nasty, title: nasty })
    .map(({ guard, outcome, tool, answer, title }): Program => ({
      format: 'nano-vm.program/v1',
      id: title,
      input_schema: true,
      steps: [
        { id: 'route', kind: 'condition', cases: [{ when: guard, next: 'ask' }], else: 'both' },
        {
          id: 'ask',
          kind: 'llm',
          prompt: 'p',
          projection: [],
          output: { enum: [answer, 'b'] },
          on_error: { action: 'fallback', value: answer },
          next: 'done',
        },
        { id: 'both', kind: 'parallel', children: [{ id: 'c', kind: 'tool', tool }], next: 'done' },
        { id: 'done', kind: 'end', outcome },
      ],
    }));

  const MERMAID_LINE = new RegExp(
    [
      /^flowchart TD$/,
      /^ {2}%% program [^\n]*$/,
      /^ +\w+(?:\(\(|\(\[|\[\[|\[\/|\{\{|\(|\{)"(?:[^"<|]|<br\/>)*"(?:\)\)|\]\)|\]\]|\\\]|\}\}|\)|\})$/,
      /^ {2}subgraph \w+\["(?:[^"<|]|<br\/>)*"\]$/,
      /^ {2}end$/,
      /^ {2}\w+ (?:-->|-\.->)(?:\|"(?:[^"<|]|<br\/>)*"\|)? \w+$/,
      /^ {2}classDef \w+ [\w:#,]+$/,
      /^ {2}class [\w,]+ \w+$/,
    ]
      .map((r) => `(?:${r.source})`)
      .join('|'),
  );
  const DOT_VALUE = String.raw`(?:"(?:[^"\\\n]|\\.)*"|[\w.]+)`;
  const DOT_ATTRS = String.raw`\[\w+=${DOT_VALUE}(?:, \w+=${DOT_VALUE})*\]`;
  const DOT_LINE = new RegExp(
    [
      String.raw`^digraph "(?:[^"\\\n]|\\.)*" \{$`,
      String.raw`^ {2}compound=true;$`,
      String.raw`^ {2}(?:node|edge) ${DOT_ATTRS};$`,
      String.raw`^ +\w+ ${DOT_ATTRS};$`,
      String.raw`^ {2}subgraph cluster_\w+ \{$`,
      String.raw`^ {4}(?:label|style)=${DOT_VALUE};$`,
      String.raw`^ {2}\}$`,
      String.raw`^ {2}\w+ -> \w+(?: ${DOT_ATTRS})?;$`,
      String.raw`^\}$`,
    ]
      .map((r) => `(?:${r})`)
      .join('|'),
  );

  it('every line of the diagram of a hostile program has the shape its format expects', () => {
    fc.assert(
      fc.property(hostile, (p) => {
        for (const line of programGraph(p, 'mermaid').trimEnd().split('\n')) expect(line).toMatch(MERMAID_LINE);
        for (const line of programGraph(p, 'dot').trimEnd().split('\n')) expect(line).toMatch(DOT_LINE);
      }),
      { numRuns: 200 },
    );
  });

  it('draws every edge of the table once, and the same program the same way every time', () => {
    fc.assert(
      fc.property(hostile, (p) => {
        const mermaid = programGraph(p, 'mermaid');
        const solid = mermaid.split('\n').filter((l) => /^ {2}s\d+ -->/.test(l));
        expect(solid).toHaveLength(edgeTable(p).edges.length);
        expect(programGraph(structuredClone(p), 'mermaid')).toBe(mermaid);
      }),
      { numRuns: 50 },
    );
  });
});
