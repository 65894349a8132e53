/** The price after a discount of `percent` per cent, rounded to cents. */
export function applyDiscount(price: number, percent: number): number {
  return price - percent;
}

/** The total of a basket of prices. */
export function total(prices: readonly number[]): number {
  return prices.reduce((sum, p) => sum + p, 0);
}
