/**
 * Namespace backing stores: `openStore(spec)` picks the implementation.
 *
 * openStore rejects with:
 *  - TypeError / RangeError for an invalid spec (unknown kind, bad block
 *    size, missing/invalid sizeBytes or path), with a message saying what is
 *    expected;
 *  - StoreError('io' | 'no-space') for problems with the backing file.
 */
import { FileStore } from './file-store.ts';
import { MemoryStore } from './memory-store.ts';
import { NullStore } from './null-store.ts';
import { checkBlockSize, checkSizeBytes, type BlockStore, type StoreSpec } from './store.ts';

export { StoreError, BLOCK_SIZES, isBlockSize } from './store.ts';
export type { BlockSize, BlockStore, StagedWrite, StoreErrorCode, StoreKind, StoreSpec } from './store.ts';
export { MemoryStore, CHUNK_SIZE, SMALL_CHUNK_SIZE } from './memory-store.ts';
export { FileStore, type FileStoreOptions } from './file-store.ts';
export { NullStore } from './null-store.ts';

export async function openStore(spec: StoreSpec): Promise<BlockStore> {
  if (spec === null || typeof spec !== 'object') {
    throw new TypeError('store spec must be an object { kind, blockSize, sizeBytes?, path?, createIfMissing? }');
  }
  const kind = spec.kind;
  switch (kind) {
    case 'memory':
    case 'null': {
      const blockSize = checkBlockSize(kind, spec.blockSize);
      const sizeBytes = checkSizeBytes(kind, blockSize, spec.sizeBytes);
      return kind === 'memory' ? new MemoryStore(blockSize, sizeBytes, spec.chunkSize) : new NullStore(blockSize, sizeBytes);
    }
    case 'file': {
      const blockSize = checkBlockSize(kind, spec.blockSize);
      if (typeof spec.path !== 'string' || spec.path.length === 0) {
        throw new TypeError('file store needs path, a non-empty string');
      }
      if (spec.sizeBytes !== undefined) checkSizeBytes(kind, blockSize, spec.sizeBytes);
      if (spec.createIfMissing !== undefined && typeof spec.createIfMissing !== 'boolean') {
        throw new TypeError('file store createIfMissing must be a boolean');
      }
      return FileStore.open({
        path: spec.path,
        blockSize,
        sizeBytes: spec.sizeBytes,
        createIfMissing: spec.createIfMissing ?? false,
      });
    }
    default:
      throw new TypeError(`unknown store kind ${JSON.stringify(kind)} (expected 'memory', 'file' or 'null')`);
  }
}
