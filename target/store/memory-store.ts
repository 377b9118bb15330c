/**
 * Sparse in-memory store.
 *
 * The namespace is split into fixed chunks (64 KiB by default, 4 KiB in the
 * target: SMALL_CHUNK_SIZE); a chunk table (chunk-table.ts) gives each
 * written chunk's slot in a 1 MiB slab (zero-filled
 * Buffer.alloc, never the shared allocUnsafe pool; chunks are handed out
 * densely, so memory use follows what was written). A chunk is allocated on
 * the first write that touches it; reads of absent chunks return zeros. writeZeroes/deallocate drop every chunk they
 * cover entirely and zero the covered part of partially covered ones; a slab
 * whose chunks are all free is released, so memory use goes down again. A 1 TiB namespace costs only what was written.
 *
 * Redirect-on-write (stageWrite / commitStagedWrite): a write of whole
 * chunks can have its data received straight into a run of fresh chunk slots
 * (next to each other in one slab), which replace the range's chunks when the
 * write executes; the run they replace is kept as a spare for the next staged
 * write of that length. The transport's socket reads then put a write's data
 * where it stays: no copy out of a transfer buffer, and nothing of the
 * namespace changes before the write executes.
 *
 * All work is synchronous inside the async methods, so each operation is
 * atomic with respect to the others.
 */
import { checkBlockSize, checkRange, checkRead, checkSizeBytes, checkWrite, closedError, type BlockSize, type BlockStore, type StagedWrite } from './store.ts';
import { ChunkTable } from './chunk-table.ts';

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

/**
 * Chunk slots set aside for staged writes, spare runs included, beyond which
 * stageWrite declines: bounds what redirect-on-write holds on top of the data
 * (8 connections' worth of R2T buffers; half the namespace for small ones).
 */
export const STAGING_LIMIT_BYTES = 64 * 1024 * 1024;
/**
 * Free chunk slots scattered through slabs (holes left by chunks replaced one
 * by one, or freed by trim) beyond which stageWrite stops taking new memory
 * for runs: writes then fill the holes in place, and memory stays close to
 * what was written. An eighth of the namespace, 1-16 MiB.
 */
export const STAGING_HOLES_LIMIT_BYTES = 16 * 1024 * 1024;
/** Spare runs kept for the next staged writes (a queue's worth at any length); a run beyond it is freed. */
export const SPARE_RUNS_LIMIT_BYTES = 8 * 1024 * 1024;

/** A run of chunk slots holding one staged write's data until it is committed or discarded. */
class StagedRun implements StagedWrite {
  state: 'staged' | 'committed' | 'discarded' = 'staged';
  readonly #release: (run: StagedRun) => void;
  constructor(
    readonly store: MemoryStore,
    readonly slba: number,
    readonly firstSlot: number,
    readonly count: number,
    readonly data: Buffer,
    release: (run: StagedRun) => void,
  ) {
    this.#release = release;
  }

  discard(): void {
    if (this.state !== 'staged') return;
    this.state = 'discarded';
    this.#release(this);
  }
}

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
  readonly #sizeBytes: number;
  /** Chunk index -> slot (slab * this.#slabChunks + chunk in slab). */
  readonly #chunks = new ChunkTable();
  #slabs: (Slab | null)[] = [];
  /** Slabs with room (free list or never used chunks). */
  #withRoom = new Set<number>();
  #freeSlabIds: number[] = [];
  #allocated = 0;
  #closed = false;
  /** Free slots in slab free lists. */
  #holes = 0;
  /** Runs of slots (first slot) set aside for staged writes, by length in chunks; counted as used in their slab. */
  #spareRuns = new Map<number, number[]>();
  /** Slots set aside: staged and not yet committed or discarded, plus spare runs. */
  #stagingSlots = 0;
  /** Slots in spare runs. */
  #spareSlots = 0;
  /** The slab whose never-used tail new runs are taken from. */
  #runSlab = -1;
  /** Scratch for commitStagedWrite. */
  readonly #replaced: number[] = [];

  readonly #chunkSize: number;
  readonly #slabChunks: number;
  /** Redirect-on-write bounds for this namespace (see STAGING_LIMIT_BYTES, STAGING_HOLES_LIMIT_BYTES). */
  readonly stagingLimitBytes: number;
  readonly holesLimitBytes: number;

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
    this.#sizeBytes = checkSizeBytes('memory', blockSize, sizeBytes);
    this.nblocks = sizeBytes / blockSize;
    if (!Number.isInteger(chunkSize) || chunkSize < blockSize || chunkSize % blockSize !== 0 || (chunkSize & (chunkSize - 1)) !== 0 || chunkSize > SLAB_BYTES) {
      throw new RangeError(`memory store chunk size ${chunkSize} must be a power of two, a multiple of the block size ${blockSize}, at most ${SLAB_BYTES}`);
    }
    this.#chunkSize = chunkSize;
    this.#slabChunks = SLAB_BYTES / chunkSize;
    this.stagingLimitBytes = Math.min(STAGING_LIMIT_BYTES, Math.max(4 * SLAB_BYTES, sizeBytes / 2));
    this.holesLimitBytes = Math.min(STAGING_HOLES_LIMIT_BYTES, Math.max(SLAB_BYTES, sizeBytes / 8));
  }

  async read(slba: number, nlb: number, into?: Buffer): Promise<Buffer> {
    return this.#readNow(slba, nlb, into);
  }

  readSync(slba: number, nlb: number, into?: Buffer): Buffer {
    return this.#readNow(slba, nlb, into);
  }

  #readNow(slba: number, nlb: number, into?: Buffer): Buffer {
    if (this.#closed) throw closedError(this.kind);
    const len = checkRead(this, slba, nlb, into);
    // Every byte is either copied from a chunk or zeroed below: no need for a zeroed allocation.
    const out = into ?? Buffer.allocUnsafe(len);
    const end = slba * this.blockSize + len;
    let pos = slba * this.blockSize;
    let outOff = 0;
    while (pos < end) {
      let ci = Math.floor(pos / this.#chunkSize);
      const inChunk = pos - ci * this.#chunkSize;
      let n = Math.min(this.#chunkSize - inChunk, end - pos);
      const slot = this.#chunks.get(ci);
      if (slot >= 0) {
        // Chunks written in order sit next to each other in their slab: copy such a run at once.
        const slabIndex = Math.floor(slot / this.#slabChunks);
        let next = slot + 1;
        while (pos + n < end && next % this.#slabChunks !== 0 && this.#chunks.get(ci + 1) === next) {
          ci++;
          next++;
          n += Math.min(this.#chunkSize, end - pos - n);
        }
        const base = (slot % this.#slabChunks) * this.#chunkSize + inChunk;
        this.#slabs[slabIndex]!.buf.copy(out, outOff, base, base + n);
      } else out.fill(0, outOff, outOff + n);
      pos += n;
      outOff += n;
    }
    return out;
  }

  stageWrite(slba: number, nlb: number): StagedWrite | null {
    if (this.#closed || !Number.isSafeInteger(slba) || !Number.isSafeInteger(nlb) || slba < 0 || nlb <= 0 || slba + nlb > this.nblocks) return null;
    const start = slba * this.blockSize;
    const len = nlb * this.blockSize;
    // Whole, full-length chunks only: a partly covered chunk keeps bytes the write does not bring.
    if (start % this.#chunkSize !== 0 || len % this.#chunkSize !== 0 || start + len > this.#sizeBytes - (this.#sizeBytes % this.#chunkSize)) return null;
    const count = len / this.#chunkSize;
    if (count > this.#slabChunks) return null;
    const first = this.#takeRun(count);
    if (first < 0) return null;
    const base = (first % this.#slabChunks) * this.#chunkSize;
    const data = this.#slabs[Math.floor(first / this.#slabChunks)]!.buf.subarray(base, base + len);
    return new StagedRun(this, slba, first, count, data, (run) => this.#dropRun(run.firstSlot, run.count));
  }

  commitStagedWrite(staged: StagedWrite, slba: number): boolean {
    if (!(staged instanceof StagedRun) || staged.store !== this || staged.state !== 'staged' || staged.slba !== slba) return false;
    if (this.#closed) throw closedError(this.kind);
    staged.state = 'committed';
    this.#stagingSlots -= staged.count;
    const firstChunk = (slba * this.blockSize) / this.#chunkSize;
    // The slots the range had: kept as a spare run when they were one (as after an earlier staged write), else freed.
    const old = this.#replaced;
    old.length = 0;
    let oldIsRun = true;
    for (let i = 0; i < staged.count; i++) {
      const ci = firstChunk + i;
      const slot = this.#chunks.set(ci, staged.firstSlot + i);
      if (slot < 0) {
        this.#allocated += this.#chunkSize;
        oldIsRun = false;
        continue;
      }
      if (i > 0 && (slot !== old[0]! + i || slot % this.#slabChunks === 0)) oldIsRun = false;
      old.push(slot);
    }
    if (oldIsRun) {
      this.#stagingSlots += staged.count;
      this.#dropRun(old[0]!, staged.count);
    } else for (const slot of old) this.#freeChunk(slot);
    return true;
  }

  async write(slba: number, data: Buffer): Promise<void> {
    this.#writeNow(slba, data);
  }

  writeSync(slba: number, data: Buffer): void {
    this.#writeNow(slba, data);
  }

  #writeNow(slba: number, data: Buffer): void {
    if (this.#closed) throw closedError(this.kind);
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
      const ci = Math.floor(pos / this.#chunkSize);
      const inChunk = pos - ci * this.#chunkSize;
      const n = Math.min(this.#chunkSize - inChunk, end - pos);
      let slot = this.#chunks.get(ci);
      if (slot < 0) {
        slot = this.#allocChunk();
        this.#chunks.set(ci, slot);
        // The last chunk of a namespace that is not a multiple of the chunk size is shorter.
        this.#allocated += this.#chunkLength(ci);
      }
      if (slot !== runNextSlot || slot % this.#slabChunks === 0) {
        const srcOff = pos - slba * this.blockSize;
        if (runSlab) data.copy(runSlab, runStart, runSrc, srcOff);
        runSlab = this.#slabs[Math.floor(slot / this.#slabChunks)]!.buf;
        runStart = (slot % this.#slabChunks) * this.#chunkSize + inChunk;
        runSrc = srcOff;
      }
      runNextSlot = slot + 1;
      pos += n;
    }
    if (runSlab) data.copy(runSlab, runStart, runSrc, data.length);
  }

  #chunkLength(ci: number): number {
    return Math.min(this.#chunkSize, this.#sizeBytes - ci * this.#chunkSize);
  }

  #newSlab(): number {
    const id = this.#freeSlabIds.pop() ?? this.#slabs.length;
    // A slab no larger than the namespace needs (small test namespaces).
    const chunks = Math.min(this.#slabChunks, Math.ceil(this.#sizeBytes / this.#chunkSize));
    this.#slabs[id] = { buf: Buffer.alloc(chunks * this.#chunkSize), used: 0, free: [], next: 0 };
    this.#withRoom.add(id);
    return id;
  }

  /** A zeroed chunk slot. */
  #allocChunk(): number {
    let id: number | undefined;
    for (const s of this.#withRoom) {
      id = s;
      break;
    }
    id ??= this.#newSlab();
    const slab = this.#slabs[id]!;
    let k = slab.free.pop();
    if (k === undefined) k = slab.next++;
    else {
      this.#holes--;
      slab.buf.fill(0, k * this.#chunkSize, (k + 1) * this.#chunkSize);
    }
    slab.used++;
    this.#dropIfFull(id, slab);
    return id * this.#slabChunks + k;
  }

  /** A slab with no free slot and no never-used tail left is no longer one with room. */
  #dropIfFull(id: number, slab: Slab): void {
    if (slab.free.length === 0 && slab.next * this.#chunkSize >= slab.buf.length) this.#withRoom.delete(id);
  }

  #freeChunk(slot: number): void {
    const id = Math.floor(slot / this.#slabChunks);
    const slab = this.#slabs[id]!;
    slab.used--;
    if (slab.used === 0) {
      // The whole slab is free: give its memory back.
      this.#holes -= slab.free.length;
      this.#slabs[id] = null;
      this.#withRoom.delete(id);
      this.#freeSlabIds.push(id);
      if (this.#runSlab === id) this.#runSlab = -1;
      return;
    }
    slab.free.push(slot % this.#slabChunks);
    this.#holes++;
    this.#withRoom.add(id);
  }

  /**
   * `count` slots next to each other in one slab for a staged write: a spare
   * run of that length, or the never-used tail of a slab. -1 when what is set
   * aside, or the holes, have reached their limits.
   */
  #takeRun(count: number): number {
    const spare = this.#spareRuns.get(count);
    if (spare !== undefined && spare.length > 0) {
      this.#spareSlots -= count;
      return spare.pop()!;
    }
    if ((this.#stagingSlots + count) * this.#chunkSize > this.stagingLimitBytes || this.#holes * this.#chunkSize > this.holesLimitBytes) return -1;
    let slab = this.#runSlab >= 0 ? this.#slabs[this.#runSlab]! : null;
    if (slab === null || (slab.next + count) * this.#chunkSize > slab.buf.length) {
      this.#runSlab = this.#newSlab();
      slab = this.#slabs[this.#runSlab]!;
      if (count * this.#chunkSize > slab.buf.length) return -1;
    }
    const k = slab.next;
    slab.next += count;
    slab.used += count;
    this.#dropIfFull(this.#runSlab, slab);
    this.#stagingSlots += count;
    return this.#runSlab * this.#slabChunks + k;
  }

  /** A run counted in stagingSlots is no longer needed: kept as a spare, or its slots freed. */
  #dropRun(first: number, count: number): void {
    if (this.#closed) return;
    if ((this.#spareSlots + count) * this.#chunkSize <= SPARE_RUNS_LIMIT_BYTES) {
      let list = this.#spareRuns.get(count);
      if (list === undefined) this.#spareRuns.set(count, (list = []));
      list.push(first);
      this.#spareSlots += count;
      return;
    }
    this.#stagingSlots -= count;
    for (let i = 0; i < count; i++) this.#freeChunk(first + i);
  }

  async writeZeroes(slba: number, nlb: number): Promise<void> {
    if (this.#closed) throw closedError(this.kind);
    checkRange(this, slba, nlb);
    this.#zeroRange(slba * this.blockSize, (slba + nlb) * this.blockSize);
  }

  async deallocate(slba: number, nlb: number): Promise<void> {
    if (this.#closed) throw closedError(this.kind);
    checkRange(this, slba, nlb);
    this.#zeroRange(slba * this.blockSize, (slba + nlb) * this.blockSize);
  }

  async flush(): Promise<void> {
    if (this.#closed) throw closedError(this.kind);
  }

  flushSync(): void {
    if (this.#closed) throw closedError(this.kind);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#chunks.clear();
    this.#slabs = [];
    this.#withRoom.clear();
    this.#freeSlabIds = [];
    this.#allocated = 0;
    this.#holes = 0;
    this.#spareRuns.clear();
    this.#stagingSlots = 0;
    this.#spareSlots = 0;
    this.#runSlab = -1;
  }

  allocatedBytes(): number {
    return this.#allocated;
  }

  /** Memory behind the namespace, for tests and diagnostics: slabs in bytes, and of it what is set aside for staged writes (spare runs included), spare, and holes. */
  get memoryUse(): { slabBytes: number; stagingBytes: number; spareBytes: number; holeBytes: number } {
    let slabBytes = 0;
    for (const slab of this.#slabs) slabBytes += slab?.buf.length ?? 0;
    return {
      slabBytes,
      stagingBytes: this.#stagingSlots * this.#chunkSize,
      spareBytes: this.#spareSlots * this.#chunkSize,
      holeBytes: this.#holes * this.#chunkSize,
    };
  }

  /** Number of chunks currently allocated (for tests / diagnostics). */
  get chunkCount(): number {
    return this.#chunks.size;
  }

  /** Zero bytes [start, end): free fully covered chunks, zero partial ones. */
  #zeroRange(start: number, end: number): void {
    const first = Math.floor(start / this.#chunkSize);
    const last = Math.floor((end - 1) / this.#chunkSize);
    if (last - first + 1 > this.#chunks.size) {
      // Huge range (e.g. trim of a whole 1 TiB namespace): walk the allocated
      // chunks instead of every chunk index in the range.
      this.#chunks.forEachIn(first, last, (ci, slot) => this.#zeroChunk(ci, slot, start, end));
    } else {
      for (let ci = first; ci <= last; ci++) {
        const slot = this.#chunks.get(ci);
        if (slot >= 0) this.#zeroChunk(ci, slot, start, end);
      }
    }
  }

  #zeroChunk(ci: number, slot: number, start: number, end: number): void {
    const cStart = ci * this.#chunkSize;
    const length = this.#chunkLength(ci);
    const from = Math.max(start, cStart) - cStart;
    const to = Math.min(end, cStart + length) - cStart;
    if (from === 0 && to === length) {
      this.#chunks.delete(ci);
      this.#allocated -= length;
      this.#freeChunk(slot);
    } else {
      const base = (slot % this.#slabChunks) * this.#chunkSize;
      this.#slabs[Math.floor(slot / this.#slabChunks)]!.buf.fill(0, base + from, base + to);
    }
  }
}
