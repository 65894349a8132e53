/**
 * A persistent fixed-size vector: `set` returns a new vector and leaves the old one as it was,
 * sharing every node it did not change (a 32-way trie, as in Clojure's vectors). The run state
 * keeps one record per step in it, so a state is an immutable value and the next one costs
 * O(log32 steps) to make — a plain copy per step would make a 100,000-step run quadratic.
 */
const BITS = 5;
const WIDTH = 1 << BITS;
const MASK = WIDTH - 1;

type Node = unknown[];

export class Slots<T> {
  private constructor(
    private readonly root: Node,
    /** Bits to shift the index by at the root (0: the root is a leaf). */
    private readonly shift: number,
    readonly size: number,
  ) {}

  /** A vector of `size` empty slots. */
  static empty<T>(size: number): Slots<T> {
    let shift = 0;
    while (WIDTH << shift < size) shift += BITS;
    return new Slots<T>([], shift, size);
  }

  get(i: number): T | undefined {
    let node: Node | undefined = this.root;
    for (let s = this.shift; s > 0 && node !== undefined; s -= BITS) node = node[(i >>> s) & MASK] as Node | undefined;
    return node === undefined ? undefined : (node[i & MASK] as T | undefined);
  }

  set(i: number, value: T): Slots<T> {
    if (!(i >= 0 && i < this.size && Number.isInteger(i)))
      throw new RangeError(`slot ${i} is outside 0..${this.size - 1}`);
    return new Slots<T>(setIn(this.root, this.shift, i, value), this.shift, this.size);
  }
}

function setIn(node: Node | undefined, shift: number, i: number, value: unknown): Node {
  const copy = node === undefined ? [] : node.slice();
  if (shift === 0) copy[i & MASK] = value;
  else {
    const k = (i >>> shift) & MASK;
    copy[k] = setIn(copy[k] as Node | undefined, shift - BITS, i, value);
  }
  return copy;
}
