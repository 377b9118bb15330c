/**
 * The memory store's map from chunk index to slot: a two-level table, small
 * arrays of LEAF_CHUNKS entries found through a Map keyed by leaf index.
 *
 * A plain Map<chunk, slot> cost one hash lookup per 4 KiB chunk, 32 for a
 * 128 KiB I/O, and with a namespace larger than the cache those lookups
 * missed it too (reads 1.5 µs dearer per 128 KiB, measured). Here a
 * sequential I/O costs one Map lookup per leaf (the last leaf is remembered),
 * then array reads. A leaf with one chunk mapped is not an array but a
 * number in the Map (slot and place in the leaf): a sparse namespace under
 * random 4 KiB writes, where almost every leaf holds one chunk, costs what
 * the plain Map did (leaf arrays for all of them added 70 MB to a 1 TiB
 * namespace after 1 GiB of such writes, measured). A second chunk makes the
 * leaf an Int32Array, small enough for V8 to keep on its heap (64 bytes).
 */

/** Chunks per leaf: 16 Int32 slots, 64 bytes, V8's limit for a typed array kept on the heap. */
export const LEAF_CHUNKS = 16;

export class ChunkTable {
  /**
   * Leaf index -> its chunks: an Int32Array of slot + 1 (0: not mapped), or,
   * while the leaf has one chunk mapped, the number slot * LEAF_CHUNKS + its place.
   */
  readonly #leaves = new Map<number, Int32Array | number>();
  #count = 0;
  #lastLeafIndex = -1;
  #lastLeaf: Int32Array | number | undefined = undefined;

  /** Chunks mapped. */
  get size(): number {
    return this.#count;
  }

  #leaf(index: number): Int32Array | number | undefined {
    if (index === this.#lastLeafIndex) return this.#lastLeaf;
    const leaf = this.#leaves.get(index);
    this.#lastLeafIndex = index;
    this.#lastLeaf = leaf;
    return leaf;
  }

  #put(index: number, leaf: Int32Array | number): void {
    this.#leaves.set(index, leaf);
    this.#lastLeafIndex = index;
    this.#lastLeaf = leaf;
  }

  #drop(index: number): void {
    this.#leaves.delete(index);
    if (this.#lastLeafIndex === index) this.#lastLeaf = undefined;
  }

  /** The chunk's slot, or -1 when it is not mapped. */
  get(ci: number): number {
    const index = Math.floor(ci / LEAF_CHUNKS);
    const leaf = this.#leaf(index);
    if (leaf === undefined) return -1;
    const i = ci - index * LEAF_CHUNKS;
    if (typeof leaf !== 'number') return leaf[i]! - 1;
    return leaf % LEAF_CHUNKS === i ? (leaf - i) / LEAF_CHUNKS : -1;
  }

  /** Map the chunk to `slot` (replacing what it had); returns the slot it had, or -1. */
  set(ci: number, slot: number): number {
    const index = Math.floor(ci / LEAF_CHUNKS);
    const i = ci - index * LEAF_CHUNKS;
    const leaf = this.#leaf(index);
    if (leaf === undefined || (typeof leaf === 'number' && leaf % LEAF_CHUNKS === i)) {
      this.#put(index, slot * LEAF_CHUNKS + i);
      if (leaf === undefined) {
        this.#count++;
        return -1;
      }
      return (leaf - i) / LEAF_CHUNKS;
    }
    let chunks: Int32Array;
    if (typeof leaf === 'number') {
      // A second chunk in this leaf: it becomes an array.
      chunks = new Int32Array(LEAF_CHUNKS);
      const j = leaf % LEAF_CHUNKS;
      chunks[j] = (leaf - j) / LEAF_CHUNKS + 1;
      this.#put(index, chunks);
    } else chunks = leaf;
    const old = chunks[i]! - 1;
    chunks[i] = slot + 1;
    if (old < 0) this.#count++;
    return old;
  }

  /** Unmap the chunk; returns the slot it had, or -1. */
  delete(ci: number): number {
    const index = Math.floor(ci / LEAF_CHUNKS);
    const i = ci - index * LEAF_CHUNKS;
    const leaf = this.#leaf(index);
    if (leaf === undefined) return -1;
    if (typeof leaf === 'number') {
      if (leaf % LEAF_CHUNKS !== i) return -1;
      this.#drop(index);
      this.#count--;
      return (leaf - i) / LEAF_CHUNKS;
    }
    const old = leaf[i]! - 1;
    if (old < 0) return -1;
    leaf[i] = 0;
    this.#count--;
    // An empty leaf goes, so a trimmed sparse namespace gives its table back too.
    for (let k = 0; k < LEAF_CHUNKS; k++) if (leaf[k] !== 0) return old;
    this.#drop(index);
    return old;
  }

  /**
   * Every mapped chunk in [first, last], in no particular order, walking the
   * leaves that exist rather than every index (a trim of a whole 1 TiB
   * namespace). `fn` may delete the chunk it is given (deleting the current
   * entry of a Map while iterating it is safe).
   */
  forEachIn(first: number, last: number, fn: (ci: number, slot: number) => void): void {
    const firstLeaf = Math.floor(first / LEAF_CHUNKS);
    const lastLeaf = Math.floor(last / LEAF_CHUNKS);
    for (const [index, leaf] of this.#leaves) {
      if (index < firstLeaf || index > lastLeaf) continue;
      if (typeof leaf === 'number') {
        const i = leaf % LEAF_CHUNKS;
        const ci = index * LEAF_CHUNKS + i;
        if (ci >= first && ci <= last) fn(ci, (leaf - i) / LEAF_CHUNKS);
        continue;
      }
      for (let i = 0; i < LEAF_CHUNKS; i++) {
        const ci = index * LEAF_CHUNKS + i;
        if (leaf[i] !== 0 && ci >= first && ci <= last) fn(ci, leaf[i]! - 1);
      }
    }
  }

  clear(): void {
    this.#leaves.clear();
    this.#count = 0;
    this.#lastLeafIndex = -1;
    this.#lastLeaf = undefined;
  }
}
