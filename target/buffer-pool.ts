/**
 * Data buffers the transport reuses: read data on its way out (store -> C2HData)
 * and write data on its way in (H2CData or in-capsule -> store).
 *
 * Why: a fresh 128 KiB Buffer per command is a fresh ArrayBuffer, counted by
 * V8 as external memory; at a few hundred MB/s that pressure made V8 run a
 * mark-compact every ~10 ms and the target spent 25-40 % of its time in GC
 * (docs/performance.md). Pooled buffers live for the life of the process and
 * cost the collector nothing.
 *
 * Buffers come in power-of-two size classes from 4 KiB to the largest class;
 * acquire(n) hands out a view of exactly n bytes of a class buffer, release()
 * takes the view back. Contents are not cleared: every user overwrites the
 * whole view before reading it (a store read fills all n bytes, a transfer is
 * used only once all n bytes arrived). A buffer is released only when nothing
 * can touch it any more (its command finished, its socket write completed);
 * anything not released (a connection torn down mid-command) is simply left
 * to the collector, so a missed release costs memory, never data.
 */

const MIN_CLASS_SHIFT = 12; // 4 KiB

export interface BufferPoolOptions {
  /** Largest size served from the pool (bigger requests get a plain Buffer). */
  readonly maxSize: number;
  /** Bytes kept per size class when buffers come back (at least 4 buffers are kept). */
  readonly retainBytesPerClass: number;
}

export class BufferPool {
  readonly #maxShift: number;
  readonly #retain: number;
  /** Free ArrayBuffers per class (index = shift - MIN_CLASS_SHIFT). */
  readonly #free: ArrayBuffer[][] = [];
  /** Every free ArrayBuffer, to refuse a double release (which would hand one buffer to two users). */
  readonly #isFree = new WeakSet<ArrayBuffer>();
  /** Every ArrayBuffer this pool made (release() of anything else is ignored). */
  readonly #mine = new WeakSet<ArrayBuffer>();
  #outstanding = 0;

  constructor(o: BufferPoolOptions) {
    if (!Number.isInteger(o.maxSize) || o.maxSize < 1 << MIN_CLASS_SHIFT) throw new RangeError(`buffer pool maxSize ${o.maxSize} must be at least 4096`);
    this.#maxShift = Math.ceil(Math.log2(o.maxSize));
    this.#retain = o.retainBytesPerClass;
    for (let s = MIN_CLASS_SHIFT; s <= this.#maxShift; s++) this.#free.push([]);
  }

  /** Buffers handed out and not yet released (for tests and stats). */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** True when acquire(n) would come from the pool. */
  serves(n: number): boolean {
    return n > 0 && n <= 2 ** this.#maxShift;
  }

  /** n bytes of pooled memory (contents undefined); a plain Buffer when n is beyond the pool. */
  acquire(n: number): Buffer {
    if (!this.serves(n)) return Buffer.allocUnsafeSlow(n);
    const shift = Math.max(MIN_CLASS_SHIFT, Math.ceil(Math.log2(n)));
    const list = this.#free[shift - MIN_CLASS_SHIFT]!;
    let ab = list.pop();
    if (ab) this.#isFree.delete(ab);
    else {
      ab = new ArrayBuffer(2 ** shift);
      this.#mine.add(ab);
    }
    this.#outstanding++;
    return Buffer.from(ab, 0, n);
  }

  /** Give back a view acquire() returned; it must not be used afterwards. */
  release(view: Buffer): void {
    const ab = view.buffer;
    if (!(ab instanceof ArrayBuffer) || !this.#mine.has(ab) || this.#isFree.has(ab)) return;
    this.#outstanding--;
    const shift = Math.log2(ab.byteLength);
    const list = this.#free[shift - MIN_CLASS_SHIFT]!;
    if (list.length >= Math.max(4, Math.floor(this.#retain / ab.byteLength))) return; // beyond what we keep: the collector takes it
    this.#isFree.add(ab);
    list.push(ab);
  }

  /** Whether `view` is memory of this pool (a view acquire() returned). */
  owns(view: Buffer): boolean {
    return view.buffer instanceof ArrayBuffer && this.#mine.has(view.buffer);
  }
}

/**
 * The target's pool: classes up to MDTS at its default (1 MiB), 16 MiB kept
 * per class at most.
 */
export const dataBuffers = new BufferPool({ maxSize: 1 << 20, retainBytesPerClass: 16 << 20 });
