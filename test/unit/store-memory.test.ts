import { describe, expect, it } from 'vitest';
import { CHUNK_SIZE, MemoryStore, StoreError, openStore, type BlockSize, type BlockStore } from '../../target/store/index.ts';
import { STAGING_HOLES_LIMIT_BYTES, STAGING_LIMIT_BYTES } from '../../target/store/memory-store.ts';
import { Rng } from '../helpers/rng.ts';

const TiB = 2 ** 40;

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7 + 1) & 0xff || 1;
  return b;
}

function isZero(b: Buffer): boolean {
  return b.equals(Buffer.alloc(b.length));
}

async function expectStoreError(p: Promise<unknown>, code: StoreError['code']): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreError);
  expect((err as StoreError).code).toBe(code);
}

/** Uniform floats in [0, 1) from the tests' one seeded generator. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.float();
}

describe.each([512, 4096] as const)('MemoryStore blockSize %i', (bs: BlockSize) => {
  it('is sparse: a write near the end of a 1 TiB namespace costs one chunk', async () => {
    const s = await openStore({ kind: 'memory', blockSize: bs, sizeBytes: TiB });
    expect(s.kind).toBe('memory');
    expect(s.blockSize).toBe(bs);
    expect(s.nblocks).toBe(TiB / bs);
    expect(s.allocatedBytes()).toBe(0);

    const slba = s.nblocks - 2;
    const data = pattern(2 * bs, 1);
    await s.write(slba, data);
    expect(s.allocatedBytes()).toBe(CHUNK_SIZE);
    expect((await s.read(slba, 2)).equals(data)).toBe(true);
    // unwritten space reads as zeros (start, middle, just before the write)
    expect(isZero(await s.read(0, 8))).toBe(true);
    expect(isZero(await s.read(Math.floor(s.nblocks / 2), 8))).toBe(true);
    expect(isZero(await s.read(slba - 4, 4))).toBe(true);
    // trimming the whole 1 TiB namespace is cheap and frees the chunk
    await s.deallocate(0, s.nblocks);
    expect(s.allocatedBytes()).toBe(0);
    expect(isZero(await s.read(slba, 2))).toBe(true);
    await s.close();
  });

  it('handles partial-chunk and chunk-straddling I/O', async () => {
    const s = new MemoryStore(bs, 4 * CHUNK_SIZE);
    const perChunk = CHUNK_SIZE / bs;
    // straddle the boundary between chunk 0 and 1
    const slba = perChunk - 1;
    const data = pattern(3 * bs, 2);
    await s.write(slba, data);
    expect(s.chunkCount).toBe(2);
    expect(s.allocatedBytes()).toBe(2 * CHUNK_SIZE);
    expect((await s.read(slba, 3)).equals(data)).toBe(true);
    // read a window larger than the write: zeros around it
    const win = await s.read(slba - 1, 5);
    expect(isZero(win.subarray(0, bs))).toBe(true);
    expect(win.subarray(bs, 4 * bs).equals(data)).toBe(true);
    expect(isZero(win.subarray(4 * bs))).toBe(true);
    // a write spanning three chunks
    const big = pattern(CHUNK_SIZE + 2 * bs, 3);
    await s.write(2 * perChunk - 1, big);
    expect(s.chunkCount).toBe(4);
    expect((await s.read(2 * perChunk - 1, big.length / bs)).equals(big)).toBe(true);
    await s.close();
  });

  it('reads into a caller buffer, zero-filling holes', async () => {
    const s = new MemoryStore(bs, 2 * CHUNK_SIZE);
    const perChunk = CHUNK_SIZE / bs;
    const data = pattern(bs, 4);
    await s.write(perChunk, data); // first block of chunk 1
    const into = Buffer.alloc(3 * bs, 0xee); // dirty, and 1 block larger than needed
    const got = await s.read(perChunk - 1, 2, into);
    expect(got).toBe(into);
    expect(isZero(into.subarray(0, bs))).toBe(true); // hole, must be zeroed
    expect(into.subarray(bs, 2 * bs).equals(data)).toBe(true);
    expect(into.subarray(2 * bs).equals(Buffer.alloc(bs, 0xee))).toBe(true); // untouched
    await expectStoreError(s.read(0, 2, Buffer.alloc(2 * bs - 1)), 'out-of-range');
  });

  it('copies write data (caller may reuse the buffer afterwards)', async () => {
    const s = new MemoryStore(bs, CHUNK_SIZE);
    const data = pattern(bs, 5);
    const copy = Buffer.from(data);
    await s.write(3, data);
    data.fill(0x55);
    expect((await s.read(3, 1)).equals(copy)).toBe(true);
  });

  it('writeZeroes and deallocate free whole chunks and zero partial ones', async () => {
    for (const op of ['writeZeroes', 'deallocate'] as const) {
      const s = new MemoryStore(bs, 4 * CHUNK_SIZE);
      const perChunk = CHUNK_SIZE / bs;
      const all = pattern(4 * CHUNK_SIZE, 6);
      await s.write(0, all);
      expect(s.chunkCount).toBe(4);
      // from the last block of chunk 0 through the first block of chunk 3:
      // chunks 1 and 2 are freed, chunks 0 and 3 are zeroed partially
      await s[op](perChunk - 1, 2 * perChunk + 2);
      expect(s.chunkCount).toBe(2);
      expect(s.allocatedBytes()).toBe(2 * CHUNK_SIZE);
      const got = await s.read(0, 4 * perChunk);
      const expected = Buffer.from(all);
      expected.fill(0, (perChunk - 1) * bs, (3 * perChunk + 1) * bs);
      expect(got.equals(expected)).toBe(true);
      // a one-block zeroing inside a chunk keeps the chunk
      await s[op](1, 1);
      expect(s.chunkCount).toBe(2);
      expect(isZero(await s.read(1, 1))).toBe(true);
      expect((await s.read(0, 1)).equals(all.subarray(0, bs))).toBe(true);
      // freeing the rest drops memory to zero
      await s[op](0, s.nblocks);
      expect(s.allocatedBytes()).toBe(0);
      expect(isZero(await s.read(0, s.nblocks))).toBe(true);
    }
  });

  it('handles a namespace that is not a multiple of the chunk size', async () => {
    const size = CHUNK_SIZE + 3 * 4096; // multiple of both block sizes
    const s = new MemoryStore(bs, size);
    const last = s.nblocks - 1;
    const data = pattern(bs, 7);
    await s.write(last, data);
    expect(s.allocatedBytes()).toBe(3 * 4096); // short last chunk
    expect((await s.read(last, 1)).equals(data)).toBe(true);
    await s.deallocate(s.nblocks - 2, 2);
    expect(s.allocatedBytes()).toBe(3 * 4096); // partial: chunk kept, zeroed
    await s.deallocate(CHUNK_SIZE / bs, s.nblocks - CHUNK_SIZE / bs);
    expect(s.allocatedBytes()).toBe(0);
  });

  it('matches a flat reference buffer under random operations', async () => {
    const size = 8 * CHUNK_SIZE;
    const s = new MemoryStore(bs, size);
    const ref = Buffer.alloc(size);
    const rand = rng(bs);
    const nb = s.nblocks;
    for (let i = 0; i < 400; i++) {
      const slba = Math.floor(rand() * nb);
      const nlb = 1 + Math.floor(rand() * Math.min(nb - slba, (3 * CHUNK_SIZE) / bs));
      const r = rand();
      if (r < 0.45) {
        const data = pattern(nlb * bs, i);
        await s.write(slba, data);
        data.copy(ref, slba * bs);
      } else if (r < 0.6) {
        await s.writeZeroes(slba, nlb);
        ref.fill(0, slba * bs, (slba + nlb) * bs);
      } else if (r < 0.75) {
        await s.deallocate(slba, nlb);
        ref.fill(0, slba * bs, (slba + nlb) * bs);
      } else {
        const into = rand() < 0.5 ? Buffer.alloc(nlb * bs, 0xaa) : undefined;
        const got = await s.read(slba, nlb, into);
        expect(got.equals(ref.subarray(slba * bs, (slba + nlb) * bs))).toBe(true);
      }
      expect(s.allocatedBytes()).toBe(s.chunkCount * CHUNK_SIZE);
    }
    expect((await s.read(0, nb)).equals(ref)).toBe(true);
  });

  it('matches a flat reference with 4 KiB chunks over several slabs (reads and writes copy runs of adjacent chunks at once)', async () => {
    const chunk = 4096;
    const size = 3 * 1024 * 1024 + 5 * chunk; // four slabs, the last one short
    const s = new MemoryStore(bs, size, chunk);
    const ref = Buffer.alloc(size);
    const rand = rng(bs + 7);
    const nb = s.nblocks;
    // Sequential writes first (adjacent slots, runs that cross slab ends), then random work on top.
    for (let off = 0; off + 96 * chunk <= size; off += 96 * chunk) {
      const data = pattern(96 * chunk, off);
      await s.write(off / bs, data);
      data.copy(ref, off);
    }
    for (let i = 0; i < 600; i++) {
      const slba = Math.floor(rand() * nb);
      const nlb = 1 + Math.floor(rand() * Math.min(nb - slba, (64 * chunk) / bs));
      const r = rand();
      if (r < 0.4) {
        const data = pattern(nlb * bs, 1000 + i);
        await s.write(slba, data);
        data.copy(ref, slba * bs);
      } else if (r < 0.5) {
        await s.deallocate(slba, nlb);
        ref.fill(0, slba * bs, (slba + nlb) * bs);
      } else {
        const got = await s.read(slba, nlb, rand() < 0.5 ? Buffer.alloc(nlb * bs, 0xaa) : undefined);
        expect(got.equals(ref.subarray(slba * bs, (slba + nlb) * bs)), `op ${i}: read ${nlb} blocks at ${slba}`).toBe(true);
      }
    }
    expect((await s.read(0, nb)).equals(ref)).toBe(true);
  });

  it('rejects out-of-range requests', async () => {
    const s = new MemoryStore(bs, CHUNK_SIZE);
    const nb = s.nblocks;
    const one = Buffer.alloc(bs);
    await expectStoreError(s.read(nb, 1), 'out-of-range');
    await expectStoreError(s.read(nb - 1, 2), 'out-of-range');
    await expectStoreError(s.read(0, 0), 'out-of-range');
    await expectStoreError(s.read(-1, 1), 'out-of-range');
    await expectStoreError(s.read(0.5, 1), 'out-of-range');
    await expectStoreError(s.read(0, Number.NaN), 'out-of-range');
    await expectStoreError(s.write(nb, one), 'out-of-range');
    await expectStoreError(s.write(nb - 1, Buffer.alloc(2 * bs)), 'out-of-range');
    await expectStoreError(s.write(0, Buffer.alloc(0)), 'out-of-range');
    await expectStoreError(s.write(0, Buffer.alloc(bs + 1)), 'out-of-range');
    await expectStoreError(s.writeZeroes(nb - 1, 2), 'out-of-range');
    await expectStoreError(s.writeZeroes(0, 0), 'out-of-range');
    await expectStoreError(s.deallocate(nb, 1), 'out-of-range');
    await expectStoreError(s.deallocate(0, 0), 'out-of-range');
    // nothing was allocated by the failed writes
    expect(s.allocatedBytes()).toBe(0);
    // the last block itself is fine
    await s.write(nb - 1, one);
    await s.read(nb - 1, 1);
  });

  it('rejects every operation after close', async () => {
    const s: BlockStore = new MemoryStore(bs, CHUNK_SIZE);
    await s.write(0, Buffer.alloc(bs, 1));
    await s.close();
    expect(s.allocatedBytes()).toBe(0);
    await expectStoreError(s.read(0, 1), 'closed');
    await expectStoreError(s.write(0, Buffer.alloc(bs)), 'closed');
    await expectStoreError(s.writeZeroes(0, 1), 'closed');
    await expectStoreError(s.deallocate(0, 1), 'closed');
    await expectStoreError(s.flush(), 'closed');
    await s.close(); // idempotent
  });

  it('offers the same reads, writes and errors synchronously', async () => {
    const s = new MemoryStore(bs, CHUNK_SIZE);
    const nb = s.nblocks;
    const data = Buffer.from(Array.from({ length: 3 * bs }, (_, i) => (i * 5 + 3) & 0xff));
    s.writeSync(2, data);
    expect((await s.read(2, 3)).equals(data)).toBe(true);
    await s.write(10, data);
    const into = Buffer.alloc(4 * bs, 0xee);
    expect(s.readSync(9, 4, into)).toBe(into);
    expect(into.subarray(0, bs).equals(Buffer.alloc(bs))).toBe(true);
    expect(into.subarray(bs).equals(data)).toBe(true);
    const syncError = (f: () => unknown, code: string) => {
      let err: unknown = null;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).code).toBe(code);
    };
    syncError(() => s.readSync(nb, 1), 'out-of-range');
    syncError(() => s.writeSync(nb - 1, Buffer.alloc(2 * bs)), 'out-of-range');
    syncError(() => s.writeSync(0, Buffer.alloc(bs + 1)), 'out-of-range');
    s.flushSync();
    await s.close();
    syncError(() => s.readSync(0, 1), 'closed');
    syncError(() => s.writeSync(0, Buffer.alloc(bs)), 'closed');
    syncError(() => s.flushSync(), 'closed');
  });
});

describe('MemoryStore under many small I/Os', () => {
  it('keeps 10k random 4 KiB write+read pairs on a 1 TiB namespace consistent and sparse', async () => {
    const s = new MemoryStore(4096, TiB);
    const data = pattern(4096, 9);
    const into = Buffer.alloc(4096);
    const rand = rng(42);
    for (let i = 0; i < 10_000; i++) {
      const slba = Math.floor(rand() * 2048) * 8; // within a 64 MiB window
      await s.write(slba, data);
      await s.read(slba, 1, into);
    }
    expect(into.equals(data)).toBe(true);
    expect(s.allocatedBytes()).toBeLessThanOrEqual(64 * 2 ** 20);
    await s.close();
  });
});

describe('openStore spec validation', () => {
  it('requires sizeBytes for memory and null stores', async () => {
    await expect(openStore({ kind: 'memory', blockSize: 512 })).rejects.toThrow(/memory store needs sizeBytes, a positive multiple of the block size 512/);
    await expect(openStore({ kind: 'null', blockSize: 4096 })).rejects.toThrow(/null store needs sizeBytes, a positive multiple of the block size 4096/);
  });

  it('rejects bad sizes, block sizes and kinds', async () => {
    await expect(openStore({ kind: 'memory', blockSize: 4096, sizeBytes: 4096 + 512 })).rejects.toThrow(RangeError);
    await expect(openStore({ kind: 'memory', blockSize: 512, sizeBytes: 0 })).rejects.toThrow(RangeError);
    await expect(openStore({ kind: 'memory', blockSize: 512, sizeBytes: -512 })).rejects.toThrow(RangeError);
    await expect(openStore({ kind: 'memory', blockSize: 512, sizeBytes: 2 ** 60 })).rejects.toThrow(RangeError);
    await expect(openStore({ kind: 'memory', blockSize: 1024 as BlockSize, sizeBytes: 4096 })).rejects.toThrow(/blockSize 512 or 4096/);
    await expect(openStore({ kind: 'disk' as 'memory', blockSize: 512, sizeBytes: 4096 })).rejects.toThrow(/unknown store kind "disk"/);
    await expect(openStore({ kind: 'file', blockSize: 512 })).rejects.toThrow(/file store needs path/);
  });

  it('accepts the largest block-aligned safe size', async () => {
    const max = Number.MAX_SAFE_INTEGER - (Number.MAX_SAFE_INTEGER % 4096);
    const s = await openStore({ kind: 'memory', blockSize: 4096, sizeBytes: max });
    const data = pattern(4096, 10);
    await s.write(s.nblocks - 1, data);
    expect((await s.read(s.nblocks - 1, 1)).equals(data)).toBe(true);
    // the last chunk of this namespace is short: 2^53 - 4096 is not chunk-aligned
    expect(s.allocatedBytes()).toBe(CHUNK_SIZE - 4096);
    await s.close();
  });
});

describe('MemoryStore redirect-on-write (staged writes)', () => {
  const chunk = 4096;
  const run = 32 * chunk; // a 128 KiB write

  it('changes nothing until the write is committed; then the staged memory is the data', async () => {
    const s = new MemoryStore(512, 4 * 1024 * 1024, chunk);
    const old = pattern(run, 1);
    await s.write(0, old);
    const staged = s.stageWrite(0, run / 512)!;
    expect(staged).not.toBeNull();
    expect(staged.data.length).toBe(run);
    const fresh = pattern(run, 2);
    fresh.copy(staged.data);
    expect((await s.read(0, run / 512)).equals(old), 'staged data is not visible before commit').toBe(true);
    expect(s.commitStagedWrite(staged, 0)).toBe(true);
    expect((await s.read(0, run / 512)).equals(fresh)).toBe(true);
    // The data stays where it was received: no copy on commit.
    staged.data[0] = fresh[0]! ^ 0xff;
    expect((await s.read(0, 1))[0]).toBe(fresh[0]! ^ 0xff);
    expect(s.allocatedBytes()).toBe(run);
    expect(s.chunkCount).toBe(32);
    staged.discard(); // after commit: nothing happens
    expect((await s.read(0, 1))[0]).toBe(fresh[0]! ^ 0xff);
  });

  it('a staged write into a hole allocates the range; one discarded leaves the namespace as it was', async () => {
    const s = new MemoryStore(4096, 4 * 1024 * 1024, chunk);
    const a = s.stageWrite(64, run / 4096)!;
    pattern(run, 3).copy(a.data);
    a.discard();
    expect(s.chunkCount).toBe(0);
    expect(s.allocatedBytes()).toBe(0);
    expect(isZero(await s.read(64, run / 4096))).toBe(true);
    // Its memory is kept for the next staged write of that length.
    const b = s.stageWrite(128, run / 4096)!;
    expect(b.data.buffer).toBe(a.data.buffer);
    expect(b.data.byteOffset).toBe(a.data.byteOffset);
    expect(s.commitStagedWrite(a, 64), 'a discarded write cannot be committed').toBe(false);
    pattern(run, 4).copy(b.data);
    expect(s.commitStagedWrite(b, 128)).toBe(true);
    expect(s.allocatedBytes()).toBe(run);
    expect((await s.read(128, run / 4096)).equals(pattern(run, 4))).toBe(true);
    expect(isZero(await s.read(64, run / 4096))).toBe(true);
  });

  it('declines what it cannot stage: part chunks, out of range, the short last chunk, longer than a slab, after close', async () => {
    const size = 2 * 1024 * 1024 + 2048; // a short last chunk
    const s = new MemoryStore(512, size, chunk);
    expect(s.stageWrite(1, 8), 'not chunk-aligned').toBeNull();
    expect(s.stageWrite(0, 4), 'part of a chunk').toBeNull();
    expect(s.stageWrite(0, 12), 'a chunk and a half').toBeNull();
    expect(s.stageWrite(s.nblocks - 4, 4), 'the short last chunk').toBeNull();
    expect(s.stageWrite(s.nblocks - 4, 8), 'beyond the end').toBeNull();
    expect(s.stageWrite(-8, 8)).toBeNull();
    expect(s.stageWrite(0, 0)).toBeNull();
    expect(s.stageWrite(Number.NaN, 8)).toBeNull();
    expect(s.stageWrite(2 ** 53, 8)).toBeNull();
    expect(s.stageWrite(0, (2 * 1024 * 1024) / 512), 'two slabs long').toBeNull();
    expect(s.stageWrite(0, (1024 * 1024) / 512), 'one slab long').not.toBeNull();
    const pending = s.stageWrite(2048, 8)!;
    await s.close();
    expect(s.stageWrite(0, 8)).toBeNull();
    expect(() => s.commitStagedWrite(pending, 2048)).toThrow(StoreError);
    pending.discard(); // after close: nothing to give back, no error
  });

  it('commits only its own staged writes, for the slba they were staged for', async () => {
    const s = new MemoryStore(512, 1024 * 1024, chunk);
    const other = new MemoryStore(512, 1024 * 1024, chunk);
    const mine = s.stageWrite(0, 8)!;
    const theirs = other.stageWrite(0, 8)!;
    expect(s.commitStagedWrite(theirs, 0)).toBe(false);
    expect(s.commitStagedWrite(mine, 8)).toBe(false);
    expect(s.commitStagedWrite({ data: Buffer.alloc(4096), discard: () => {} }, 0)).toBe(false);
    expect(s.chunkCount).toBe(0);
    expect(s.commitStagedWrite(mine, 0)).toBe(true);
    expect(s.commitStagedWrite(mine, 0), 'twice').toBe(false);
    expect(s.chunkCount).toBe(1);
  });

  it('matches a flat reference with staged writes pending, committed in any order or discarded, among plain writes and trims', async () => {
    for (const bs of [512, 4096] as const) {
      const size = 3 * 1024 * 1024;
      const s = new MemoryStore(bs, size, chunk);
      const ref = Buffer.alloc(size);
      const rand = rng(bs + 11);
      const nb = s.nblocks;
      const perChunk = chunk / bs;
      const pending: { slba: number; staged: NonNullable<ReturnType<MemoryStore['stageWrite']>>; data: Buffer }[] = [];
      let committed = 0;
      let declined = 0;
      for (let i = 0; i < 1500; i++) {
        const r = rand();
        if (r < 0.35) {
          const chunks = 1 + Math.floor(rand() * 40);
          const slba = Math.floor(rand() * (nb / perChunk - chunks)) * perChunk;
          const data = pattern(chunks * chunk, i);
          const staged = s.stageWrite(slba, chunks * perChunk);
          if (staged) {
            data.copy(staged.data);
            pending.push({ slba, staged, data });
          } else {
            // Declined (too many holes or too much set aside): the data goes the ordinary way.
            declined++;
            await s.write(slba, data);
            data.copy(ref, slba * bs);
          }
        } else if (r < 0.6 && pending.length > 0) {
          const [p] = pending.splice(Math.floor(rand() * pending.length), 1);
          if (rand() < 0.8) {
            expect(s.commitStagedWrite(p!.staged, p!.slba)).toBe(true);
            p!.data.copy(ref, p!.slba * bs);
            committed++;
          } else p!.staged.discard();
        } else if (r < 0.72) {
          const slba = Math.floor(rand() * nb);
          const nlb = 1 + Math.floor(rand() * Math.min(nb - slba, (48 * chunk) / bs));
          const data = pattern(nlb * bs, 5000 + i);
          await s.write(slba, data);
          data.copy(ref, slba * bs);
        } else if (r < 0.78) {
          const slba = Math.floor(rand() * nb);
          const nlb = 1 + Math.floor(rand() * Math.min(nb - slba, (48 * chunk) / bs));
          await s.deallocate(slba, nlb);
          ref.fill(0, slba * bs, (slba + nlb) * bs);
        } else {
          const slba = Math.floor(rand() * nb);
          const nlb = 1 + Math.floor(rand() * Math.min(nb - slba, (64 * chunk) / bs));
          const got = await s.read(slba, nlb, rand() < 0.5 ? Buffer.alloc(nlb * bs, 0xaa) : undefined);
          expect(got.equals(ref.subarray(slba * bs, (slba + nlb) * bs)), `op ${i}: read ${nlb} blocks at ${slba}`).toBe(true);
        }
        expect(s.allocatedBytes()).toBe(s.chunkCount * chunk);
        // Memory stays bounded: data, what is set aside, holes (up to what one commit frees past the limit), part-used slabs.
        const use = s.memoryUse;
        expect(use.stagingBytes).toBeLessThanOrEqual(s.stagingLimitBytes);
        expect(use.slabBytes, `op ${i}: ${JSON.stringify(use)}`).toBeLessThanOrEqual(size + s.stagingLimitBytes + s.holesLimitBytes + 4 * 1024 * 1024);
      }
      for (const p of pending) p.staged.discard();
      expect(committed).toBeGreaterThan(50);
      expect(declined).toBeGreaterThan(0);
      expect((await s.read(0, nb)).equals(ref)).toBe(true);
      // What is left set aside is spare runs only.
      const use = s.memoryUse;
      expect(use.stagingBytes).toBe(use.spareBytes);
    }
  });

  it('keeps memory flat under staged overwrites, eight at a time, as a sequential 128 KiB write load makes', async () => {
    const size = 16 * 1024 * 1024;
    const s = new MemoryStore(512, size, chunk);
    const nlb = run / 512;
    const slots = size / run;
    let next = 0;
    const inFlight: { slba: number; staged: NonNullable<ReturnType<MemoryStore['stageWrite']>> }[] = [];
    let after1 = 0;
    for (let i = 0; i < 8 * slots; i++) {
      const slba = (next++ % slots) * nlb;
      const staged = s.stageWrite(slba, nlb)!;
      staged.data.writeUInt32LE(i, 0);
      inFlight.push({ slba, staged });
      if (inFlight.length === 8) {
        const p = inFlight.shift()!;
        expect(s.commitStagedWrite(p.staged, p.slba)).toBe(true);
      }
      if (i === 2 * slots) after1 = s.memoryUse.slabBytes;
    }
    const use = s.memoryUse;
    expect(use.slabBytes, 'no growth after the first passes').toBe(after1);
    expect(use.slabBytes).toBeLessThanOrEqual(size + 2 * 1024 * 1024);
    expect(use.holeBytes).toBe(0);
    expect(s.allocatedBytes()).toBe(size);
  });

  it('stops taking new memory for runs once the holes pass their limit, and what is set aside passes its own', async () => {
    const s = new MemoryStore(4096, 256 * 1024 * 1024, chunk);
    // 40 MiB written chunk by chunk, then every other chunk trimmed: 20 MiB of holes.
    const blocks = (40 * 1024 * 1024) / 4096;
    for (let b = 0; b < blocks; b += 64) await s.write(b, Buffer.alloc(64 * 4096, 1));
    for (let b = 0; b < blocks; b += 2) await s.deallocate(b, 1);
    expect(s.holesLimitBytes).toBe(STAGING_HOLES_LIMIT_BYTES);
    expect(s.memoryUse.holeBytes).toBeGreaterThan(STAGING_HOLES_LIMIT_BYTES);
    expect(s.stageWrite(blocks, 32)).toBeNull();
    // Plain writes fill the holes; then staging works again.
    for (let b = 0; b < blocks; b += 2) await s.write(b, Buffer.alloc(4096, 2));
    expect(s.memoryUse.holeBytes).toBe(0);
    expect(s.stageWrite(blocks, 32)).not.toBeNull();

    const big = new MemoryStore(4096, 2 * STAGING_LIMIT_BYTES, chunk);
    expect(big.stagingLimitBytes).toBe(STAGING_LIMIT_BYTES);
    const held = [];
    for (;;) {
      const st = big.stageWrite(held.length * 32, 32);
      if (!st) break;
      held.push(st);
    }
    expect(held.length * run).toBe(STAGING_LIMIT_BYTES);
    held.pop()!.discard();
    expect(big.stageWrite(0, 32), 'a spare run serves again').not.toBeNull();
  });
});
