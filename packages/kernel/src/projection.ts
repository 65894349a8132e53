/**
 * Projection (evaluator blindness): the model receives only the state paths its step declares.
 * Sensitive paths are masked wherever they appear inside the projection. Nothing else — run id,
 * hashes, policy, budgets, retry counters, the trace — is reachable from here: the prompt is
 * rendered from the projected view alone.
 */
import { canonicalJson } from './canonicalJson.js';
import { memoByString } from './memo.js';
import type { JsonValue } from './program.js';
import { isUnder, readPath, splitPath } from './statePath.js';
import { ownMember, setMember } from './dataMember.js';

export const MASK = '[MASKED]';

export type ProjectedView = { [k: string]: JsonValue };

/** Build the nested object holding exactly the projected paths (masked where sensitive). */
export function project(state: unknown, paths: readonly string[], sensitive: readonly string[] = []): ProjectedView {
  const view: ProjectedView = {};
  for (const path of paths) {
    const value = readPath(state, path);
    if (value === undefined) continue;
    const segs = splitPath(path);
    let node: ProjectedView = view;
    for (let i = 0; i < segs.length - 1; i++) {
      const seg = segs[i]!;
      const child = ownMember(node, seg);
      if (child === undefined || child === null || typeof child !== 'object' || Array.isArray(child))
        setMember(node, seg, {});
      node = node[seg] as ProjectedView;
    }
    setMember(node, segs[segs.length - 1]!, mask(value as JsonValue, path, sensitive));
  }
  return view;
}

/** Copy `value` (found at `path`), replacing every sensitive sub-value by MASK. */
function mask(value: JsonValue, path: string, sensitive: readonly string[]): JsonValue {
  if (sensitive.some((s) => isUnder(path, s))) return MASK;
  if (value === null || typeof value !== 'object') return value;
  if (!sensitive.some((s) => isUnder(s, path))) return structuredCloneJson(value);
  if (Array.isArray(value)) return value.map((v, i) => mask(v, `${path}.${i}`, sensitive));
  const out: { [k: string]: JsonValue } = {};
  for (const [k, v] of Object.entries(value)) setMember(out, k, mask(v, `${path}.${k}`, sensitive));
  return out;
}

function structuredCloneJson(v: JsonValue): JsonValue {
  return JSON.parse(JSON.stringify(v)) as JsonValue;
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}/g;

/** Placeholders used by a prompt template. */
export function placeholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

/**
 * Render `{{path}}` placeholders from the projected view only. Strings are inserted as-is,
 * other values as canonical JSON, absent values as `null`.
 */
export function renderPrompt(template: string, view: ProjectedView): string {
  const parts = templateParts(template);
  let out = parts[0]!;
  for (let i = 1; i < parts.length; i += 2) {
    const v = readPath(view, parts[i]!);
    out += (v === undefined ? 'null' : typeof v === 'string' ? v : canonicalJson(v)) + parts[i + 1]!;
  }
  return out;
}

// A template is split once into [text, path, text, path, …, text] (the segments a global
// replace of PLACEHOLDER would produce), instead of a regex pass and a closure per rendering.
const MAX_CACHED_TEMPLATES = 1024;

const templateParts = memoByString(MAX_CACHED_TEMPLATES, (template): readonly string[] => {
  const split: string[] = [];
  let at = 0;
  for (const m of template.matchAll(PLACEHOLDER)) {
    split.push(template.slice(at, m.index), m[1]!);
    at = m.index! + m[0].length;
  }
  split.push(template.slice(at));
  return split;
});
