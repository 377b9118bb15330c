/**
 * Store resolution: which block store serves a namespace (memory, null, or a
 * file, existing or to be created) and its size and block size, from the
 * namespace's device.path and ext settings and what is on disk.
 */
import { statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { join, type Ctx } from './fields.ts';
import type { NamespaceConfig } from './types.ts';

/** A namespace's store settings as read (undefined: absent or refused, and `ok` says which). */
export interface StoreRequest {
  /** device.path; null when absent or "". */
  path: string | null;
  kind: 'memory' | 'file' | 'null' | undefined;
  kindGiven: boolean;
  blockSize: 512 | 4096 | undefined;
  blockSizeOk: boolean;
  sizeBytes: number | undefined;
  sizeOk: boolean;
}

function describeNonRegular(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function statOrNull(ctx: Ctx, file: string, p: string): Stats | null | undefined {
  try {
    return statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    ctx.err(p, `cannot stat ${file}: ${(err as Error).message}`);
    return undefined;
  }
}

/** The store of the namespace at p, or undefined with the problem reported. */
export function resolveStore(ctx: Ctx, p: string, req: StoreRequest): NamespaceConfig['store'] | undefined {
  const { path: rawPath, kind, kindGiven, blockSize, blockSizeOk, sizeBytes, sizeOk } = req;
  const pathP = join(p, 'device.path');
  const sizeP = join(p, 'ext.size');
  if (kindGiven && kind === undefined) return undefined; // bad ext.store already reported
  const checkMultiple = (bs: number): boolean => {
    if (sizeBytes !== undefined && sizeBytes % bs !== 0) {
      ctx.err(sizeP, `${sizeBytes} bytes is not a multiple of the block size ${bs}`);
      return false;
    }
    return true;
  };

  if (kind === 'memory' || kind === 'null') {
    const bs = blockSize ?? 512;
    if (sizeBytes === undefined) {
      if (sizeOk) ctx.err(sizeP, `missing: a ${kind} store needs ext.size (e.g. "1G")`);
      return undefined;
    }
    if (rawPath !== null) {
      ctx.note(pathP, `ignored: the namespace is served by a ${kind} store`);
    }
    if (!blockSizeOk || !checkMultiple(bs)) return undefined;
    return { kind, sizeBytes, blockSize: bs, createIfMissing: false };
  }

  // file store: explicit (ext.store "file") or implied (no ext.store, like nvmet).
  if (rawPath === null) {
    ctx.err(
      pathP,
      kindGiven ? 'missing: a file store needs device.path' : 'missing: set device.path to a regular file, or ext.store to "memory" or "null" with ext.size',
    );
    return undefined;
  }
  const file = path.resolve(ctx.baseDir, rawPath);
  const st = statOrNull(ctx, file, pathP);
  if (st === undefined) return undefined;
  if (st !== null && !st.isFile()) {
    const what = describeNonRegular(st);
    ctx.err(
      pathP,
      kindGiven
        ? `${rawPath} is not a regular file (it is ${what}); a file store needs a regular file`
        : `${rawPath} is not a regular file (it is ${what}); set ext.store to "memory" or "null" with ext.size to emulate it`,
    );
    return undefined;
  }
  if (st === null) {
    if (!kindGiven) {
      ctx.err(
        pathP,
        `${rawPath} does not exist; set ext.store to "file" with ext.size to create it, ` + 'or to "memory" or "null" with ext.size to emulate it',
      );
      return undefined;
    }
    if (sizeBytes === undefined) {
      if (sizeOk) ctx.err(sizeP, `missing: ${rawPath} does not exist and ext.size is needed to create it`);
      return undefined;
    }
    const dir = path.dirname(file);
    const dst = statOrNull(ctx, dir, pathP);
    if (dst === null || (dst && !dst.isDirectory())) {
      ctx.err(pathP, `cannot create ${rawPath}: directory ${dir} does not exist`);
      return undefined;
    }
    const bs = blockSize ?? 512;
    if (!blockSizeOk || !checkMultiple(bs)) return undefined;
    return { kind: 'file', path: file, sizeBytes, blockSize: bs, createIfMissing: true };
  }

  // Existing regular file. Block size: ext.block_size; otherwise, for a plain
  // nvmetcli namespace, what nvmet uses for a file (min(i_blkbits, 12): 4096
  // on common file systems), and 512 when ext.store is given.
  const bs: 512 | 4096 = blockSize ?? (!kindGiven && st.blksize >= 4096 ? 4096 : 512);
  if (!blockSizeOk) return undefined;
  if (sizeBytes !== undefined) {
    if (!checkMultiple(bs)) return undefined;
    // The file store extends a smaller file; a larger one is used partially.
    return { kind: 'file', path: file, sizeBytes, blockSize: bs, createIfMissing: false };
  }
  const whole = Math.floor(st.size / bs) * bs;
  if (whole <= 0) {
    ctx.err(pathP, `${rawPath} is ${st.size} bytes, smaller than one ${bs}-byte block`);
    return undefined;
  }
  if (whole !== st.size) {
    ctx.note(pathP, `${rawPath} is ${st.size} bytes, not a multiple of ${bs}; the namespace is ${whole} bytes`);
  }
  return { kind: 'file', path: file, sizeBytes: whole, blockSize: bs, createIfMissing: false };
}
