/**
 * Null store: reads return zeros, writes are validated then discarded.
 * Useful for benchmarking the transport without any backing storage.
 */
import { checkBlockSize, checkRange, checkRead, checkSizeBytes, checkWrite, closedError, type BlockSize, type BlockStore } from './store.ts';

export class NullStore implements BlockStore {
  readonly kind = 'null' as const;
  readonly nblocks: number;
  #closed = false;

  /** Throws RangeError if blockSize or sizeBytes (required, positive multiple of blockSize) is invalid. */
  constructor(
    readonly blockSize: BlockSize,
    sizeBytes: number,
  ) {
    checkBlockSize('null', blockSize);
    this.nblocks = checkSizeBytes('null', blockSize, sizeBytes) / blockSize;
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
    if (into === undefined) return Buffer.alloc(len);
    into.fill(0, 0, len);
    return into;
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
  }

  async writeZeroes(slba: number, nlb: number): Promise<void> {
    if (this.#closed) throw closedError(this.kind);
    checkRange(this, slba, nlb);
  }

  async deallocate(slba: number, nlb: number): Promise<void> {
    if (this.#closed) throw closedError(this.kind);
    checkRange(this, slba, nlb);
  }

  async flush(): Promise<void> {
    if (this.#closed) throw closedError(this.kind);
  }

  flushSync(): void {
    if (this.#closed) throw closedError(this.kind);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  allocatedBytes(): number {
    return 0;
  }
}
