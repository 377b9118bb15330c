/**
 * Sparse in-memory store.
 *
 * The namespace is split into fixed chunks (64 KiB by default, 4 KiB in the
 * target: SMALL_CHUNK_SIZE); a Map keyed by
 * chunk index gives each written chunk's slot in a 1 MiB slab (zero-filled
 * Buffer.alloc, never the shared allocUnsafe pool; chunks are handed out
 * densely, so memory use follows what was written). A chunk is allocated on
 * the first write that touches it; reads of absent chunks return zeros. writeZeroes/deallocate drop every chunk they
 * cover entirely and zero the covered part of partially covered ones; a slab
 * whose chunks are all free is released, so memory use goes down again. A 1 TiB namespace costs only what was written.
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

/** Default unit of allocation: 64 KiB, a multiple of both block sizes; a 4 KiB I/O touches at most two chunks. */
export const CHUNK_SIZE = 64 * 1024;
/**
 * The target's unit of allocation: with 4 KiB chunks a 4 KiB write into a
 * sparse namespace costs 4 KiB (64 KiB chunks made a 1 TiB namespace under
 * 4 KiB random writes cost 16 times what was written).
 */
export const SMALL_CHUNK_SIZE = 4096;
/** Chunks live densely in slabs of this size (one allocation per slab, not per chunk). */
const SLAB_BYTES = 1024 * 1024;

interface Slab {
  readonly buf: Buffer;
  used: number;
  /** Free chunk indexes inside the slab (below `next`). */
  readonly free: number[];
  /** Chunks never handed out start here. */
  next: number;
}

export class MemoryStore implements BlockStore {
  readonly kind = 'memory' as const;
  readonly nblocks: number;
  private readonly sizeBytes: number;
  /** Chunk index -> slot (slab * this.slabChunks + chunk in slab). */
  private chunks = new Map<number, number>();
  private slabs: (Slab | null)[] = [];
  /** Slabs with room (free list or never used chunks). */
  private withRoom = new Set<number>();
  private freeSlabIds: number[] = [];
  private allocated = 0;
  private closed = false;

  private readonly chunkSize: number;
  private readonly slabChunks: number;

  /**
   * Throws RangeError if blockSize or sizeBytes (positive multiple of blockSize) is invalid,
   * or chunkSize is not a power of two multiple of the block size.
   */
  constructor(
    readonly blockSize: BlockSize,
    sizeBytes: number,
    chunkSize: number = CHUNK_SIZE,
  ) {
    checkBlockSize('memory', blockSize);
    this.sizeBytes = checkSizeBytes('memory', blockSize, sizeBytes);
    this.nblocks = sizeBytes / blockSize;
    if (!Number.isInteger(chunkSize) || chunkSize < blockSize || chunkSize % blockSize !== 0 || (chunkSize & (chunkSize - 1)) !== 0 || chunkSize > SLAB_BYTES) {
      throw new RangeError(`memory store chunk size ${chunkSize} must be a power of two, a multiple of the block size ${blockSize}, at most ${SLAB_BYTES}`);
    }
    this.chunkSize = chunkSize;
    this.slabChunks = SLAB_BYTES / chunkSize;
  }

  async read(slba: number, nlb: number, into?: Buffer): Promise<Buffer> {
    return this.readNow(slba, nlb, into);
  }

  readSync(slba: number, nlb: number, into?: Buffer): Buffer {
    return this.readNow(slba, nlb, into);
  }

  private readNow(slba: number, nlb: number, into?: Buffer): Buffer {
    if (this.closed) throw closedError(this.kind);
    const len = checkRead(this, slba, nlb, into);
    // Every byte is either copied from a chunk or zeroed below: no need for a zeroed allocation.
    const out = into ?? Buffer.allocUnsafe(len);
    const end = slba * this.blockSize + len;
    let pos = slba * this.blockSize;
    let outOff = 0;
    while (pos < end) {
      let ci = Math.floor(pos / this.chunkSize);
      const inChunk = pos - ci * this.chunkSize;
      let n = Math.min(this.chunkSize - inChunk, end - pos);
      const slot = this.chunks.get(ci);
      if (slot !== undefined) {
        // Chunks written in order sit next to each other in their slab: copy such a run at once.
        const slabIndex = Math.floor(slot / this.slabChunks);
        let next = slot + 1;
        while (pos + n < end && next % this.slabChunks !== 0 && this.chunks.get(ci + 1) === next) {
          ci++;
          next++;
          n += Math.min(this.chunkSize, end - pos - n);
        }
        const base = (slot % this.slabChunks) * this.chunkSize + inChunk;
        this.slabs[slabIndex]!.buf.copy(out, outOff, base, base + n);
      } else out.fill(0, outOff, outOff + n);
      pos += n;
      outOff += n;
    }
    return out;
  }

  async write(slba: number, data: Buffer): Promise<void> {
    this.writeNow(slba, data);
  }

  writeSync(slba: number, data: Buffer): void {
    this.writeNow(slba, data);
  }

  private writeNow(slba: number, data: Buffer): void {
    if (this.closed) throw closedError(this.kind);
    checkWrite(this, slba, data);
    const end = slba * this.blockSize + data.length;
    let pos = slba * this.blockSize;
    // Chunks written in order sit next to each other in their slab: such a run
    // is copied at once (a 128 KiB write was 32 copies of 4 KiB).
    let runSlab: Buffer | null = null;
    let runStart = 0;
    let runSrc = 0;
    let runNextSlot = -1;
    while (pos < end) {
      const ci = Math.floor(pos / this.chunkSize);
      const inChunk = pos - ci * this.chunkSize;
      const n = Math.min(this.chunkSize - inChunk, end - pos);
      let slot = this.chunks.get(ci);
      if (slot === undefined) {
        slot = this.allocChunk();
        this.chunks.set(ci, slot);
        // The last chunk of a namespace that is not a multiple of the chunk size is shorter.
        this.allocated += this.chunkLength(ci);
      }
      if (slot !== runNextSlot || slot % this.slabChunks === 0) {
        const srcOff = pos - slba * this.blockSize;
        if (runSlab) data.copy(runSlab, runStart, runSrc, srcOff);
        runSlab = this.slabs[Math.floor(slot / this.slabChunks)]!.buf;
        runStart = (slot % this.slabChunks) * this.chunkSize + inChunk;
        runSrc = srcOff;
      }
      runNextSlot = slot + 1;
      pos += n;
    }
    if (runSlab) data.copy(runSlab, runStart, runSrc, data.length);
  }

  private chunkLength(ci: number): number {
    return Math.min(this.chunkSize, this.sizeBytes - ci * this.chunkSize);
  }

  /** A zeroed chunk slot. */
  private allocChunk(): number {
    let id: number | undefined;
    for (const s of this.withRoom) {
      id = s;
      break;
    }
    if (id === undefined) {
      id = this.freeSlabIds.pop() ?? this.slabs.length;
      // A slab no larger than the namespace needs (small test namespaces).
      const chunks = Math.min(this.slabChunks, Math.ceil(this.sizeBytes / this.chunkSize));
      this.slabs[id] = { buf: Buffer.alloc(chunks * this.chunkSize), used: 0, free: [], next: 0 };
      this.withRoom.add(id);
    }
    const slab = this.slabs[id]!;
    let k = slab.free.pop();
    if (k === undefined) k = slab.next++;
    else slab.buf.fill(0, k * this.chunkSize, (k + 1) * this.chunkSize);
    slab.used++;
    if (slab.free.length === 0 && slab.next * this.chunkSize >= slab.buf.length) this.withRoom.delete(id);
    return id * this.slabChunks + k;
  }

  private freeChunk(slot: number): void {
    const id = Math.floor(slot / this.slabChunks);
    const slab = this.slabs[id]!;
    slab.used--;
    if (slab.used === 0) {
      // The whole slab is free: give its memory back.
      this.slabs[id] = null;
      this.withRoom.delete(id);
      this.freeSlabIds.push(id);
      return;
    }
    slab.free.push(slot % this.slabChunks);
    this.withRoom.add(id);
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

  flushSync(): void {
    if (this.closed) throw closedError(this.kind);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.chunks.clear();
    this.slabs = [];
    this.withRoom.clear();
    this.freeSlabIds = [];
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
    const first = Math.floor(start / this.chunkSize);
    const last = Math.floor((end - 1) / this.chunkSize);
    if (last - first + 1 > this.chunks.size) {
      // Huge range (e.g. trim of a whole 1 TiB namespace): walk the allocated
      // chunks instead of every chunk index in the range. Deleting the current
      // entry while iterating a Map is safe.
      for (const [ci, slot] of this.chunks) {
        if (ci >= first && ci <= last) this.zeroChunk(ci, slot, start, end);
      }
    } else {
      for (let ci = first; ci <= last; ci++) {
        const slot = this.chunks.get(ci);
        if (slot !== undefined) this.zeroChunk(ci, slot, start, end);
      }
    }
  }

  private zeroChunk(ci: number, slot: number, start: number, end: number): void {
    const cStart = ci * this.chunkSize;
    const length = this.chunkLength(ci);
    const from = Math.max(start, cStart) - cStart;
    const to = Math.min(end, cStart + length) - cStart;
    if (from === 0 && to === length) {
      this.chunks.delete(ci);
      this.allocated -= length;
      this.freeChunk(slot);
    } else {
      const base = (slot % this.slabChunks) * this.chunkSize;
      this.slabs[Math.floor(slot / this.slabChunks)]!.buf.fill(0, base + from, base + to);
    }
  }
}
