/**
 * A persistent fixed-size vector: `set` returns a new vector and leaves the old one as it was. The
 * run state keeps one record per step in it, so a state is an immutable value, and the next one
 * costs O(1) time and one small object to make — a plain copy per step would make a 100,000-step
 * run quadratic, and a copied trie path (the first design here) allocated about a kilobyte a step.
 *
 * It is Baker's "shallow binding" persistent array (as in Conchon & Filliâtre, "A Persistent
 * Union-Find Data Structure", 2007): the newest version owns a plain array; every older version is
 * a diff — "as that one, but slot i holds v" — pointing towards it. Reading an older version first
 * re-roots: the diffs on the way are applied to the array and reversed, so that version now owns
 * the array and the newer ones are diffs. Every version always reads the same values (the tests
 * decide again from earlier states and compare); only the cost of reading moves. A run reads and
 * writes its newest state, so that cost is O(1) there.
 */
export class Slots<T> {
  /** The values, when this version owns the array; else null and this is a diff. */
  private arr: (T | undefined)[] | null;
  /** As a diff: this version is `next` with slot `i` holding `v`. */
  private i = 0;
  private v: T | undefined = undefined;
  private next: Slots<T> | null = null;

  private constructor(
    arr: (T | undefined)[] | null,
    readonly size: number,
  ) {
    this.arr = arr;
  }

  /** A vector of `size` empty slots. */
  static empty<T>(size: number): Slots<T> {
    return new Slots<T>(new Array<T | undefined>(size).fill(undefined), size);
  }

  get(i: number): T | undefined {
    return (this.arr ?? this.reroot())[i];
  }

  set(i: number, value: T): Slots<T> {
    if (!(i >= 0 && i < this.size && Number.isInteger(i)))
      throw new RangeError(`slot ${i} is outside 0..${this.size - 1}`);
    const arr = this.arr ?? this.reroot();
    const newer = new Slots<T>(arr, this.size);
    // This version becomes a diff towards the newer one, which now owns the array.
    this.i = i;
    this.v = arr[i];
    this.next = newer;
    this.arr = null;
    arr[i] = value;
    return newer;
  }

  /** Makes this version own the array (iteratively: a chain of diffs can be a whole run long). */
  private reroot(): (T | undefined)[] {
    const path: Slots<T>[] = [];
    let at: Slots<T> = this;
    while (at.arr === null) {
      path.push(at);
      at = at.next!;
    }
    const arr = at.arr;
    // From the owner back towards this version: each diff takes the array and the step it came
    // through becomes the reverse diff.
    for (let k = path.length - 1; k >= 0; k--) {
      const d = path[k]!;
      const owner = k === path.length - 1 ? at : path[k + 1]!;
      const old = arr[d.i];
      arr[d.i] = d.v;
      owner.arr = null;
      owner.i = d.i;
      owner.v = old;
      owner.next = d;
      d.arr = arr;
      d.next = null;
      d.v = undefined;
    }
    return arr;
  }
}
