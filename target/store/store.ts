/**
 * Namespace backing stores: the thing behind an NVMe namespace.
 *
 * All offsets are in logical blocks (LBAs). Byte offsets are computed as
 * `lba * blockSize`; since a namespace is at most 2^53 bytes (validated at
 * open) every byte offset is an exact JS number. Never use bitwise operators
 * on offsets (they truncate to 32 bits).
 */

import { constants as bufferConstants } from 'node:buffer';

export type StoreKind = 'memory' | 'file' | 'null';
export type BlockSize = 512 | 4096;

export type StoreErrorCode = 'out-of-range' | 'io' | 'closed' | 'no-space';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export interface BlockStore {
  readonly kind: StoreKind;
  readonly blockSize: BlockSize;
  /** Namespace size in logical blocks (fits a JS number: 2^53). */
  readonly nblocks: number;
  /** Read nlb blocks from slba. If `into` is given (length >= nlb*blockSize) data is placed there and it is returned; otherwise a new Buffer. */
  read(slba: number, nlb: number, into?: Buffer): Promise<Buffer>;
  /** Write data (length a multiple of blockSize) at slba. The caller may reuse `data` after the promise settles, not before. */
  write(slba: number, data: Buffer): Promise<void>;
  /**
   * Stores that work in memory (memory, null) offer reads, writes and flush
   * synchronously too, with the same checks and errors (thrown): the target
   * then completes such a command in the callback that brought it, with no
   * promise hop per I/O, so its completion goes out in the same write as the
   * rest of that callback's output.
   */
  readSync?(slba: number, nlb: number, into?: Buffer): Buffer;
  writeSync?(slba: number, data: Buffer): void;
  flushSync?(): void;
  /**
   * Redirect-on-write, offered by the memory store: fresh memory of the
   * store's own, set aside for a write of nlb blocks at slba, for the
   * transport to receive the write's data straight into. Nothing the
   * namespace holds changes until commitStagedWrite; a write that never
   * executes (digest error, abort, fencing, a refused command, a dropped
   * connection) discards it. Null when the store cannot (range not made of
   * whole chunks, too long, closed, too much memory set aside already):
   * the data then goes through a buffer of the transport's.
   */
  stageWrite?(slba: number, nlb: number): StagedWrite | null;
  /**
   * Make a staged write the namespace's data for its range, as writeSync
   * would with the same data (throws as it does). False, with nothing done,
   * when `staged` is not this store's or was staged for another slba: the
   * caller then writes its data the ordinary way.
   */
  commitStagedWrite?(staged: StagedWrite, slba: number): boolean;
  writeZeroes(slba: number, nlb: number): Promise<void>;
  /** Deallocate (trim): afterwards reads of the range return zeros (we advertise DLFEAT "read returns zeros"). */
  deallocate(slba: number, nlb: number): Promise<void>;
  /** Make every completed write durable (file: fdatasync). */
  flush(): Promise<void>;
  close(): Promise<void>;
  /** Bytes of memory or disk actually holding data (for the SMART log / benchmarks). */
  allocatedBytes(): number;
}

/** Memory set aside for one write's data by BlockStore.stageWrite. */
export interface StagedWrite {
  /** Where the write's data is to be received: exactly its length. */
  readonly data: Buffer;
  /** Give the memory back unless the write was committed (no-op after the first call or a commit). */
  discard(): void;
}

export interface StoreSpec {
  kind: StoreKind;
  blockSize: BlockSize;
  sizeBytes?: number;
  path?: string;
  createIfMissing?: boolean;
  /** Memory store: unit of allocation in bytes (default 64 KiB; the target uses 4 KiB). */
  chunkSize?: number;
}

// ---------------------------------------------------------------------------
// Helpers shared by the store implementations.
// ---------------------------------------------------------------------------

export const BLOCK_SIZES: readonly BlockSize[] = [512, 4096];

export function isBlockSize(v: unknown): v is BlockSize {
  return v === 512 || v === 4096;
}

/** Throws RangeError unless blockSize is 512 or 4096. */
export function checkBlockSize(kind: StoreKind, blockSize: unknown): BlockSize {
  if (!isBlockSize(blockSize)) {
    throw new RangeError(`${kind} store needs blockSize 512 or 4096, got ${String(blockSize)}`);
  }
  return blockSize;
}

/**
 * Validate a namespace size in bytes: a positive safe integer that is a
 * multiple of the block size. Throws RangeError (a configuration error, not a
 * runtime I/O error) with a message naming the store kind.
 */
export function checkSizeBytes(kind: StoreKind, blockSize: BlockSize, sizeBytes: unknown): number {
  if (typeof sizeBytes !== 'number' || !Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % blockSize !== 0) {
    throw new RangeError(
      `${kind} store needs sizeBytes, a positive multiple of the block size ${blockSize} ` +
        `(at most ${Number.MAX_SAFE_INTEGER - (Number.MAX_SAFE_INTEGER % blockSize)}), got ${String(sizeBytes)}`,
    );
  }
  return sizeBytes;
}

/** Reject unless [slba, slba+nlb) is a non-empty range inside the namespace. */
export function checkRange(store: { nblocks: number }, slba: number, nlb: number): void {
  if (!Number.isSafeInteger(slba) || !Number.isSafeInteger(nlb) || slba < 0 || nlb < 1 || slba + nlb > store.nblocks) {
    throw new StoreError('out-of-range', `LBA range slba=${String(slba)} nlb=${String(nlb)} is outside the namespace (nblocks=${store.nblocks})`);
  }
}

/** Validate a write buffer and its range; returns nlb. */
export function checkWrite(store: { nblocks: number; blockSize: BlockSize }, slba: number, data: Buffer): number {
  if (!Buffer.isBuffer(data) || data.length === 0 || data.length % store.blockSize !== 0) {
    throw new StoreError(
      'out-of-range',
      `write data length ${Buffer.isBuffer(data) ? data.length : 'n/a'} is not a non-zero multiple of the block size ${store.blockSize}`,
    );
  }
  const nlb = data.length / store.blockSize;
  checkRange(store, slba, nlb);
  return nlb;
}

/** Validate a read's range and optional destination buffer; returns the byte length. */
export function checkRead(store: { nblocks: number; blockSize: BlockSize }, slba: number, nlb: number, into: Buffer | undefined): number {
  checkRange(store, slba, nlb);
  const len = nlb * store.blockSize;
  if (into !== undefined && (!Buffer.isBuffer(into) || into.length < len)) {
    throw new StoreError(
      'out-of-range',
      `read destination buffer of ${Buffer.isBuffer(into) ? into.length : 'n/a'} bytes is smaller than ${len} bytes (nlb=${nlb})`,
    );
  }
  if (into === undefined && len > bufferConstants.MAX_LENGTH) {
    throw new StoreError('out-of-range', `read of ${len} bytes exceeds the maximum Buffer size`);
  }
  return len;
}

export function closedError(kind: StoreKind): StoreError {
  return new StoreError('closed', `${kind} store is closed`);
}

/** Turn an error from the OS into a StoreError ('no-space' for ENOSPC/EDQUOT, else 'io'). */
export function osError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StoreError('no-space', `${what}: no space left (${detail})`, { cause: err });
  }
  return new StoreError('io', `${what}: ${detail}`, { cause: err });
}
