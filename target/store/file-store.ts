/**
 * Persistent store backed by a regular file (fs.promises FileHandle,
 * positional reads and writes; flush = fdatasync).
 *
 * Sizing at open:
 *  - sizeBytes given: the namespace is sizeBytes; a smaller file is extended
 *    with ftruncate (sparse), a larger file is left as is (never shrunk).
 *  - sizeBytes absent: the namespace is the file size rounded down to whole
 *    blocks; a file smaller than one block is an error.
 *  - a missing file is created only with createIfMissing (and then needs
 *    sizeBytes).
 * Only regular files are served: directories, block/character devices, FIFOs
 * and sockets are refused with StoreError('io').
 *
 * writeZeroes / deallocate: Node has no fallocate(PUNCH_HOLE), so:
 *  - a range that reaches the end of the file is cut off with ftruncate and
 *    the file re-extended to its old size (a sparse hole; size unchanged);
 *  - otherwise the range is read in bounded (1 MiB) pieces and zeros are
 *    written only over 64 KiB granules that hold non-zero data, so trimming
 *    never-written (sparse) space does not allocate disk, and a huge trim
 *    never allocates a huge buffer.
 */
import { promises as fsp, type Stats } from 'node:fs';
import {
  StoreError,
  checkBlockSize,
  checkRange,
  checkRead,
  checkSizeBytes,
  checkWrite,
  closedError,
  osError,
  type BlockSize,
  type BlockStore,
} from './store.ts';

/** Largest piece a writeZeroes/deallocate reads and writes at once. */
const ZERO_PIECE = 1024 * 1024;
/** Granularity at which already-zero data is skipped by writeZeroes/deallocate. */
const ZERO_GRANULE = 64 * 1024;

let zeroBuf: Buffer | undefined;
/** A shared, never-modified 1 MiB zero buffer (allocated on first use). */
function zeros(): Buffer {
  zeroBuf ??= Buffer.alloc(ZERO_PIECE);
  return zeroBuf;
}

export interface FileStoreOptions {
  path: string;
  blockSize: BlockSize;
  sizeBytes?: number;
  createIfMissing?: boolean;
}

/** Human description of a non-regular file for error messages. */
function describeFileType(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function notRegularFile(path: string, st: Stats): StoreError {
  return new StoreError(
    'io',
    `file store: ${path} is ${describeFileType(st)}, not a regular file ` + `(only regular files can back a namespace; block devices are not served)`,
  );
}

export class FileStore implements BlockStore {
  readonly kind = 'file' as const;
  #closed = false;
  #closing: Promise<void> | undefined;
  #inflight = 0;
  #drained: (() => void) | undefined;
  /** Cached st_blocks * 512; refreshed at open, flush and after zeroing. */
  #allocated: number;

  readonly #handle: fsp.FileHandle;

  private constructor(
    handle: fsp.FileHandle,
    readonly path: string,
    readonly blockSize: BlockSize,
    readonly nblocks: number,
    allocated: number,
  ) {
    this.#handle = handle;
    this.#allocated = allocated;
  }

  /**
   * Open (or create) the backing file. Rejects with RangeError/TypeError for
   * an invalid configuration and StoreError('io' | 'no-space') for problems
   * with the file itself.
   */
  static async open(opts: FileStoreOptions): Promise<FileStore> {
    const { path, createIfMissing = false } = opts;
    const blockSize = checkBlockSize('file', opts.blockSize);
    if (typeof path !== 'string' || path.length === 0) {
      throw new TypeError('file store needs path, a non-empty string');
    }
    const sizeBytes = opts.sizeBytes === undefined ? undefined : checkSizeBytes('file', blockSize, opts.sizeBytes);

    // stat first: opening a FIFO would block, and we want a clear message.
    let exists = true;
    try {
      const st = await fsp.stat(path);
      if (!st.isFile()) throw notRegularFile(path, st);
    } catch (err) {
      if (err instanceof StoreError) throw err;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw osError(err, `file store: cannot stat ${path}`);
      }
      exists = false;
    }
    if (!exists) {
      if (!createIfMissing) {
        throw new StoreError('io', `file store: ${path} does not exist (set createIfMissing to create it)`);
      }
      if (sizeBytes === undefined) {
        throw new RangeError(`file store needs sizeBytes to create ${path}`);
      }
    }

    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(path, exists ? 'r+' : 'wx+').catch((err: unknown) => {
        // Created meanwhile by another process opening the same file (cluster nodes): use it.
        if (!exists && (err as NodeJS.ErrnoException).code === 'EEXIST') return fsp.open(path, 'r+');
        throw err;
      });
    } catch (err) {
      throw osError(err, `file store: cannot open ${path}`);
    }
    try {
      let st = await handle.stat();
      if (!st.isFile()) throw notRegularFile(path, st);
      let nsBytes: number;
      if (sizeBytes !== undefined) {
        nsBytes = sizeBytes;
        if (st.size < sizeBytes) {
          await handle.truncate(sizeBytes); // sparse extension
          st = await handle.stat();
        }
      } else {
        nsBytes = Math.floor(st.size / blockSize) * blockSize;
        if (nsBytes === 0) {
          throw new StoreError('io', `file store: ${path} is ${st.size} bytes, smaller than one ${blockSize}-byte block`);
        }
      }
      return new FileStore(handle, path, blockSize, nsBytes / blockSize, st.blocks * 512);
    } catch (err) {
      await handle.close().catch(() => {});
      throw osError(err, `file store: cannot set up ${path}`);
    }
  }

  async read(slba: number, nlb: number, into?: Buffer): Promise<Buffer> {
    return this.#op(async () => {
      const len = checkRead(this, slba, nlb, into);
      // Not pooled (allocUnsafeSlow) and every byte is overwritten below.
      const out = into ?? Buffer.allocUnsafeSlow(len);
      try {
        await this.#readFully(out, len, slba * this.blockSize);
      } catch (err) {
        throw osError(err, `file store ${this.path}: read slba=${slba} nlb=${nlb}`);
      }
      return out;
    });
  }

  async write(slba: number, data: Buffer): Promise<void> {
    return this.#op(async () => {
      checkWrite(this, slba, data);
      try {
        await this.#writeFully(data, 0, data.length, slba * this.blockSize);
      } catch (err) {
        throw osError(err, `file store ${this.path}: write slba=${slba} nlb=${data.length / this.blockSize}`);
      }
    });
  }

  async writeZeroes(slba: number, nlb: number): Promise<void> {
    return this.#op(async () => {
      checkRange(this, slba, nlb);
      await this.#zeroRange(slba, nlb, 'write zeroes');
    });
  }

  async deallocate(slba: number, nlb: number): Promise<void> {
    return this.#op(async () => {
      checkRange(this, slba, nlb);
      await this.#zeroRange(slba, nlb, 'deallocate');
    });
  }

  async flush(): Promise<void> {
    return this.#op(async () => {
      try {
        await this.#handle.datasync();
      } catch (err) {
        throw osError(err, `file store ${this.path}: flush`);
      }
      await this.#refreshAllocated();
    });
  }

  /** Waits for in-flight operations, then closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      this.#closing = (async () => {
        if (this.#inflight > 0) {
          await new Promise<void>((resolve) => {
            this.#drained = resolve;
          });
        }
        try {
          await this.#handle.close();
        } catch (err) {
          throw osError(err, `file store ${this.path}: close`);
        }
      })();
    }
    return this.#closing;
  }

  /**
   * Approximate: st_blocks * 512 as of the last open/flush/writeZeroes/
   * deallocate (plain writes do not refresh it). Includes filesystem
   * allocation granularity and any data beyond the namespace.
   */
  allocatedBytes(): number {
    return this.#allocated;
  }

  // -------------------------------------------------------------------------

  /** Run an operation unless closed, counting it so close() can wait for it. */
  async #op<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError(this.kind);
    this.#inflight++;
    try {
      return await fn();
    } finally {
      if (--this.#inflight === 0 && this.#drained !== undefined) {
        const d = this.#drained;
        this.#drained = undefined;
        d();
      }
    }
  }

  /** Read len bytes at position into buf[0..len); bytes past EOF read as zeros. */
  async #readFully(buf: Buffer, len: number, position: number): Promise<void> {
    let done = 0;
    while (done < len) {
      const { bytesRead } = await this.#handle.read(buf, done, len - done, position + done);
      if (bytesRead === 0) {
        buf.fill(0, done, len);
        return;
      }
      done += bytesRead;
    }
  }

  async #writeFully(buf: Buffer, offset: number, len: number, position: number): Promise<void> {
    let done = 0;
    while (done < len) {
      const { bytesWritten } = await this.#handle.write(buf, offset + done, len - done, position + done);
      if (bytesWritten === 0) throw new Error('write made no progress');
      done += bytesWritten;
    }
  }

  async #refreshAllocated(): Promise<void> {
    try {
      this.#allocated = (await this.#handle.stat()).blocks * 512;
    } catch {
      // Keep the previous (approximate) value; not worth failing an I/O for.
    }
  }

  /** Make [slba, slba+nlb) read as zeros without growing the file. */
  async #zeroRange(slba: number, nlb: number, what: string): Promise<void> {
    const start = slba * this.blockSize;
    const end = start + nlb * this.blockSize;
    try {
      const fileSize = (await this.#handle.stat()).size;
      if (start >= fileSize) return; // past EOF already reads as zeros
      if (end >= fileSize) {
        // Tail of the file: cut it off and re-extend to the same size; the
        // range becomes a hole. Concurrent I/O outside the range is unaffected.
        await this.#handle.truncate(start);
        await this.#handle.truncate(fileSize);
      } else {
        await this.#zeroMiddle(start, end);
      }
    } catch (err) {
      throw osError(err, `file store ${this.path}: ${what} slba=${slba} nlb=${nlb}`);
    }
    await this.#refreshAllocated();
  }

  /** Write zeros over the non-zero 64 KiB granules of [start, end), 1 MiB at a time. */
  async #zeroMiddle(start: number, end: number): Promise<void> {
    const z = zeros();
    const buf = Buffer.allocUnsafeSlow(Math.min(ZERO_PIECE, end - start));
    for (let pos = start; pos < end;) {
      const n = Math.min(ZERO_PIECE, end - pos);
      await this.#readFully(buf, n, pos);
      let run = -1; // start (within buf) of a run of non-zero granules, or -1
      for (let g = 0; g < n; g += ZERO_GRANULE) {
        const ge = Math.min(g + ZERO_GRANULE, n);
        if (!buf.subarray(g, ge).equals(z.subarray(0, ge - g))) {
          if (run < 0) run = g;
        } else if (run >= 0) {
          await this.#writeFully(z, 0, g - run, pos + run);
          run = -1;
        }
      }
      if (run >= 0) await this.#writeFully(z, 0, n - run, pos + run);
      pos += n;
    }
  }
}
