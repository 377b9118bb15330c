/**
 * Sparse in-memory store.
 *
 * The namespace is split into fixed CHUNK_SIZE chunks held in a Map keyed by
 * chunk index. A chunk is allocated (zero-filled, Buffer.alloc — never the
 * shared allocUnsafe pool) on the first write that touches it; reads of
 * absent chunks return zeros. writeZeroes/deallocate drop every chunk they
 * cover entirely and zero the covered part of partially covered ones, so
 * memory use goes down again. A 1 TiB namespace costs only what was written.
 *
 * All work is synchronous inside the async methods, so each operation is
 * atomic with respect to the others.
 */
import {
  checkBlockSize,
  checkRange,
  checkRead,
  checkSizeBytes,
  checkWrite,
  closedError,
  type BlockSize,
  type BlockStore,
} from './store.ts';

/** 64 KiB: a multiple of both block sizes; a 4 KiB I/O touches at most two chunks. */
export const CHUNK_SIZE = 64 * 1024;

export class MemoryStore implements BlockStore {
  readonly kind = 'memory' as const;
  readonly nblocks: number;
  private readonly sizeBytes: number;
  private chunks = new Map<number, Buffer>();
  private allocated = 0;
  private closed = false;

  /** Throws RangeError if blockSize or sizeBytes (positive multiple of blockSize) is invalid. */
  constructor(
    readonly blockSize: BlockSize,
    sizeBytes: number,
  ) {
    checkBlockSize('memory', blockSize);
    this.sizeBytes = checkSizeBytes('memory', blockSize, sizeBytes);
    this.nblocks = sizeBytes / blockSize;
  }

  async read(slba: number, nlb: number, into?: Buffer): Promise<Buffer> {
    if (this.closed) throw closedError(this.kind);
    const len = checkRead(this, slba, nlb, into);
    // A fresh Buffer.alloc is already zero, so holes need no fill.
    const out = into ?? Buffer.alloc(len);
    const needZero = into !== undefined;
    const end = slba * this.blockSize + len;
    let pos = slba * this.blockSize;
    let outOff = 0;
    while (pos < end) {
      const ci = Math.floor(pos / CHUNK_SIZE);
      const inChunk = pos - ci * CHUNK_SIZE;
      const n = Math.min(CHUNK_SIZE - inChunk, end - pos);
      const chunk = this.chunks.get(ci);
      if (chunk !== undefined) chunk.copy(out, outOff, inChunk, inChunk + n);
      else if (needZero) out.fill(0, outOff, outOff + n);
      pos += n;
      outOff += n;
    }
    return out;
  }

  async write(slba: number, data: Buffer): Promise<void> {
    if (this.closed) throw closedError(this.kind);
    checkWrite(this, slba, data);
    const end = slba * this.blockSize + data.length;
    let pos = slba * this.blockSize;
    let srcOff = 0;
    while (pos < end) {
      const ci = Math.floor(pos / CHUNK_SIZE);
      const inChunk = pos - ci * CHUNK_SIZE;
      const n = Math.min(CHUNK_SIZE - inChunk, end - pos);
      let chunk = this.chunks.get(ci);
      if (chunk === undefined) {
        // The last chunk of a namespace that is not a multiple of CHUNK_SIZE is shorter.
        chunk = Buffer.alloc(Math.min(CHUNK_SIZE, this.sizeBytes - ci * CHUNK_SIZE));
        this.chunks.set(ci, chunk);
        this.allocated += chunk.length;
      }
      data.copy(chunk, inChunk, srcOff, srcOff + n);
      pos += n;
      srcOff += n;
    }
  }

  async writeZeroes(slba: number, nlb: number): Promise<void> {
    if (this.closed) throw closedError(this.kind);
    checkRange(this, slba, nlb);
    this.zeroRange(slba * this.blockSize, (slba + nlb) * this.blockSize);
  }

  async deallocate(slba: number, nlb: number): Promise<void> {
    if (this.closed) throw closedError(this.kind);
    checkRange(this, slba, nlb);
    this.zeroRange(slba * this.blockSize, (slba + nlb) * this.blockSize);
  }

  async flush(): Promise<void> {
    if (this.closed) throw closedError(this.kind);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.chunks.clear();
    this.allocated = 0;
  }

  allocatedBytes(): number {
    return this.allocated;
  }

  /** Number of chunks currently allocated (for tests / diagnostics). */
  get chunkCount(): number {
    return this.chunks.size;
  }

  /** Zero bytes [start, end): free fully covered chunks, zero partial ones. */
  private zeroRange(start: number, end: number): void {
    const first = Math.floor(start / CHUNK_SIZE);
    const last = Math.floor((end - 1) / CHUNK_SIZE);
    if (last - first + 1 > this.chunks.size) {
      // Huge range (e.g. trim of a whole 1 TiB namespace): walk the allocated
      // chunks instead of every chunk index in the range. Deleting the current
      // entry while iterating a Map is safe.
      for (const [ci, chunk] of this.chunks) {
        if (ci >= first && ci <= last) this.zeroChunk(ci, chunk, start, end);
      }
    } else {
      for (let ci = first; ci <= last; ci++) {
        const chunk = this.chunks.get(ci);
        if (chunk !== undefined) this.zeroChunk(ci, chunk, start, end);
      }
    }
  }

  private zeroChunk(ci: number, chunk: Buffer, start: number, end: number): void {
    const cStart = ci * CHUNK_SIZE;
    const from = Math.max(start, cStart) - cStart;
    const to = Math.min(end, cStart + chunk.length) - cStart;
    if (from === 0 && to === chunk.length) {
      this.chunks.delete(ci);
      this.allocated -= chunk.length;
    } else {
      chunk.fill(0, from, to);
    }
  }
}
