/**
 * Operator-supplied model prices, for cost_usd when the provider's response does not carry a cost.
 * nano-vm ships no prices: they change, differ per contract, and a wrong built-in number would end
 * up in signed-off receipts. A model without a price gets no cost (budgets on cost then only see
 * the calls that have one).
 *
 *   # prices.yaml (or .json): model -> USD per million tokens
 *   openai:gpt-4o-mini: { input_per_million: 0.15, output_per_million: 0.6 }
 *   claude-sonnet-4-5:  { input_per_million: 3, output_per_million: 15 }
 *
 * A key is a full spec (`openai:gpt-4o-mini`) or a bare model name; the full spec wins.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { Usage } from '@nano-vm/kernel';
import { ModelError } from './port.js';
import { isObj } from './providerHttp.js';

export interface ModelPrice {
  input_per_million: number;
  output_per_million: number;
}

export type PriceTable = ReadonlyMap<string, ModelPrice>;

export function parsePriceTable(text: string, where: string): PriceTable {
  let doc: unknown;
  try {
    doc = parse(text, { maxAliasCount: 0 });
  } catch (e) {
    throw new ModelError('E_MODEL_PRICES', `${where}: not valid YAML/JSON: ${(e as Error).message}`);
  }
  if (!isObj(doc))
    throw new ModelError(
      'E_MODEL_PRICES',
      `${where}: must map model names to { input_per_million, output_per_million } (USD per million tokens)`,
    );
  const table = new Map<string, ModelPrice>();
  for (const [model, p] of Object.entries(doc)) {
    const ok = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
    if (
      !isObj(p) ||
      !ok(p.input_per_million) ||
      !ok(p.output_per_million) ||
      Object.keys(p).some((k) => k !== 'input_per_million' && k !== 'output_per_million')
    )
      throw new ModelError(
        'E_MODEL_PRICES',
        `${where}: ${model}: needs exactly input_per_million and output_per_million, non-negative numbers (USD per million tokens)`,
      );
    table.set(model, {
      input_per_million: p.input_per_million as number,
      output_per_million: p.output_per_million as number,
    });
  }
  return table;
}

export function loadPriceTable(file: string): PriceTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ModelError(
      'E_MODEL_PRICES',
      `cannot read the price table ${file} (NANO_VM_PRICES): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return parsePriceTable(text, file);
}

/** Cost of one call from the table, or undefined when the model has no price. */
export function costFromTable(
  table: PriceTable | undefined,
  provider: string,
  model: string,
  usage: Usage,
): number | undefined {
  const p = table?.get(`${provider}:${model}`) ?? table?.get(model);
  if (!p) return undefined;
  return (usage.input_tokens * p.input_per_million + usage.output_tokens * p.output_per_million) / 1_000_000;
}
