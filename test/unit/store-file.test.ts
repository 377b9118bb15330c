import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileStore, StoreError, openStore, type BlockSize, type BlockStore } from '../../target/store/index.ts';
import { osError } from '../../target/store/store.ts';
import { Rng } from '../helpers/rng.ts';

const MiB = 1024 * 1024;

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 13 + seed * 101 + 1) & 0xff || 1;
  return b;
}

function isZero(b: Buffer): boolean {
  return b.equals(Buffer.alloc(b.length));
}

async function storeError(p: Promise<unknown>): Promise<StoreError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreError);
  return err as StoreError;
}

/** Uniform floats in [0, 1) from the tests' one seeded generator. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.float();
}

let dir: string;
let opened: BlockStore[];

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'nvmet-store-test-'));
  opened = [];
});

afterEach(async () => {
  for (const s of opened) await s.close().catch(() => {});
  await fsp.rm(dir, { recursive: true, force: true });
  expect(existsSync(dir)).toBe(false);
});

async function open(spec: Omit<Parameters<typeof openStore>[0], 'kind'>): Promise<BlockStore> {
  const s = await openStore({ kind: 'file', ...spec });
  opened.push(s);
  return s;
}

describe.each([512, 4096] as const)('FileStore blockSize %i', (bs: BlockSize) => {
  it('creates a sparse file of sizeBytes and persists data across close + reopen', async () => {
    const p = path.join(dir, 'ns.img');
    const s = await open({ path: p, blockSize: bs, sizeBytes: 4 * MiB, createIfMissing: true });
    expect(s.kind).toBe('file');
    expect(s.blockSize).toBe(bs);
    expect(s.nblocks).toBe((4 * MiB) / bs);
    expect((await fsp.stat(p)).size).toBe(4 * MiB);
    expect(s.allocatedBytes()).toBeLessThan(4 * MiB); // sparse (approximate)

    const a = pattern(3 * bs, 1);
    const b = pattern(bs, 2);
    await s.write(5, a);
    await s.write(s.nblocks - 1, b);
    expect((await s.read(5, 3)).equals(a)).toBe(true);
    expect(isZero(await s.read(0, 5))).toBe(true); // unwritten
    await s.flush();
    expect(s.allocatedBytes()).toBeGreaterThan(0);
    await s.close();

    // reopen without sizeBytes: size comes from the file
    const r = await open({ path: p, blockSize: bs });
    expect(r.nblocks).toBe((4 * MiB) / bs);
    expect((await r.read(5, 3)).equals(a)).toBe(true);
    expect((await r.read(r.nblocks - 1, 1)).equals(b)).toBe(true);
    expect(isZero(await r.read(8, 16))).toBe(true);
  });

  it('reads into a caller buffer and copes with the caller reusing write buffers', async () => {
    const s = await open({ path: path.join(dir, 'x.img'), blockSize: bs, sizeBytes: MiB, createIfMissing: true });
    const data = pattern(2 * bs, 3);
    const copy = Buffer.from(data);
    await s.write(10, data);
    data.fill(0x77); // allowed after the promise settled
    const into = Buffer.alloc(4 * bs, 0xee);
    const got = await s.read(9, 3, into);
    expect(got).toBe(into);
    expect(isZero(into.subarray(0, bs))).toBe(true);
    expect(into.subarray(bs, 3 * bs).equals(copy)).toBe(true);
    expect(into.subarray(3 * bs).equals(Buffer.alloc(bs, 0xee))).toBe(true);
  });

  it('matches a flat reference buffer under random operations', async () => {
    const size = 2 * MiB;
    const s = await open({ path: path.join(dir, 'r.img'), blockSize: bs, sizeBytes: size, createIfMissing: true });
    const ref = Buffer.alloc(size);
    const rand = rng(bs);
    const nb = s.nblocks;
    for (let i = 0; i < 150; i++) {
      const slba = Math.floor(rand() * nb);
      const nlb = 1 + Math.floor(rand() * Math.min(nb - slba, (256 * 1024) / bs));
      const r = rand();
      if (r < 0.45) {
        const data = pattern(nlb * bs, i);
        await s.write(slba, data);
        data.copy(ref, slba * bs);
      } else if (r < 0.55) {
        await s.writeZeroes(slba, nlb);
        ref.fill(0, slba * bs, (slba + nlb) * bs);
      } else if (r < 0.65) {
        await s.deallocate(slba, nlb);
        ref.fill(0, slba * bs, (slba + nlb) * bs);
      } else {
        const got = await s.read(slba, nlb, rand() < 0.5 ? Buffer.alloc(nlb * bs, 0xaa) : undefined);
        expect(got.equals(ref.subarray(slba * bs, (slba + nlb) * bs))).toBe(true);
      }
    }
    expect((await s.read(0, nb)).equals(ref)).toBe(true);
  });

  it('rejects out-of-range requests', async () => {
    const s = await open({ path: path.join(dir, 'o.img'), blockSize: bs, sizeBytes: 64 * 1024, createIfMissing: true });
    const nb = s.nblocks;
    const codes = await Promise.all(
      [
        s.read(nb, 1),
        s.read(nb - 1, 2),
        s.read(0, 0),
        s.read(-1, 1),
        s.read(0, 2, Buffer.alloc(bs)),
        s.write(nb, Buffer.alloc(bs)),
        s.write(0, Buffer.alloc(0)),
        s.write(0, Buffer.alloc(bs - 1)),
        s.writeZeroes(nb - 1, 2),
        s.deallocate(0, 0),
        s.deallocate(nb, 1),
      ].map(async (p) => (await storeError(p)).code),
    );
    expect(new Set(codes)).toEqual(new Set(['out-of-range']));
    // the file did not grow
    expect((await fsp.stat(path.join(dir, 'o.img'))).size).toBe(64 * 1024);
  });
});

describe('FileStore sizing and opening', () => {
  it('sizes an existing file by rounding down to whole blocks', async () => {
    const p = path.join(dir, 'odd.img');
    const content = pattern(10_000, 4);
    await fsp.writeFile(p, content);
    const s512 = await open({ path: p, blockSize: 512 });
    expect(s512.nblocks).toBe(19);
    expect((await s512.read(18, 1)).equals(content.subarray(18 * 512, 19 * 512))).toBe(true);
    await s512.close();
    const s4k = await open({ path: p, blockSize: 4096 });
    expect(s4k.nblocks).toBe(2);
    await s4k.close();
    expect((await fsp.stat(p)).size).toBe(10_000); // untouched
  });

  it('refuses an existing file smaller than one block', async () => {
    const p = path.join(dir, 'tiny.img');
    await fsp.writeFile(p, Buffer.alloc(100));
    const e = await storeError(openStore({ kind: 'file', path: p, blockSize: 512 }));
    expect(e.code).toBe('io');
    expect(e.message).toContain(p);
    expect(e.message).toMatch(/smaller than one 512-byte block/);
  });

  it('extends a smaller file to sizeBytes, keeping its data; never shrinks a larger one', async () => {
    const p = path.join(dir, 'grow.img');
    const head = pattern(8192, 5);
    await fsp.writeFile(p, head);
    const s = await open({ path: p, blockSize: 4096, sizeBytes: MiB });
    expect(s.nblocks).toBe(256);
    expect((await fsp.stat(p)).size).toBe(MiB);
    expect((await s.read(0, 2)).equals(head)).toBe(true);
    expect(isZero(await s.read(2, 254))).toBe(true);
    await s.close();

    const small = await open({ path: p, blockSize: 4096, sizeBytes: 64 * 1024 });
    expect(small.nblocks).toBe(16);
    await small.deallocate(0, 16); // not the file's tail: must not truncate
    await small.close();
    expect((await fsp.stat(p)).size).toBe(MiB);
  });

  it('requires createIfMissing (and then sizeBytes) for a missing file', async () => {
    const p = path.join(dir, 'missing.img');
    const e = await storeError(openStore({ kind: 'file', path: p, blockSize: 512 }));
    expect(e.code).toBe('io');
    expect(e.message).toContain(p);
    expect(e.message).toMatch(/does not exist/);
    await expect(openStore({ kind: 'file', path: p, blockSize: 512, createIfMissing: true })).rejects.toThrow(/needs sizeBytes/);
    expect(existsSync(p)).toBe(false);
    await expect(openStore({ kind: 'file', path: p, blockSize: 512, sizeBytes: 1000, createIfMissing: true })).rejects.toThrow(
      /file store needs sizeBytes, a positive multiple of the block size 512/,
    );
    expect(existsSync(p)).toBe(false);
  });

  it('refuses a directory, naming the path and what it is', async () => {
    const e = await storeError(openStore({ kind: 'file', path: dir, blockSize: 512, sizeBytes: 4096 }));
    expect(e.code).toBe('io');
    expect(e.message).toContain(dir);
    expect(e.message).toMatch(/is a directory, not a regular file/);
  });

  it.skipIf(!existsSync('/dev/null'))('refuses a device node', async () => {
    const e = await storeError(openStore({ kind: 'file', path: '/dev/null', blockSize: 512, sizeBytes: 4096 }));
    expect(e.code).toBe('io');
    expect(e.message).toMatch(/\/dev\/null is a character device/);
  });

  it('maps OS errors: ENOSPC/EDQUOT to no-space, others to io, keeping the cause', () => {
    const enospc = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    const nospace = osError(enospc, 'write');
    expect(nospace.code).toBe('no-space');
    expect(nospace.cause).toBe(enospc);
    expect(osError(Object.assign(new Error('quota'), { code: 'EDQUOT' }), 'write').code).toBe('no-space');
    const eio = Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
    const io = osError(eio, 'read');
    expect(io.code).toBe('io');
    expect(io.cause).toBe(eio);
    expect(io.message).toMatch(/^read: EIO/);
  });
});

describe('FileStore writeZeroes / deallocate', () => {
  it('zeros a middle range (not chunk aligned) without touching neighbours or the size', async () => {
    for (const op of ['writeZeroes', 'deallocate'] as const) {
      const p = path.join(dir, `mid-${op}.img`);
      const s = await open({ path: p, blockSize: 512, sizeBytes: 3 * MiB, createIfMissing: true });
      const all = pattern(3 * MiB, 6);
      await s.write(0, all);
      // 1.25 MiB starting at an odd block: spans several 1 MiB pieces
      const slba = 1001;
      const nlb = 2560;
      await s[op](slba, nlb);
      const expected = Buffer.from(all);
      expected.fill(0, slba * 512, (slba + nlb) * 512);
      expect((await s.read(0, s.nblocks)).equals(expected)).toBe(true);
      expect((await fsp.stat(p)).size).toBe(3 * MiB);
      await s.close();
      // and it persists
      const r = await open({ path: p, blockSize: 512 });
      expect((await r.read(0, r.nblocks)).equals(expected)).toBe(true);
    }
  });

  it('frees the tail of the file with a hole, keeping the file size', async () => {
    const p = path.join(dir, 'tail.img');
    const s = await open({ path: p, blockSize: 4096, sizeBytes: 2 * MiB, createIfMissing: true });
    await s.write(0, pattern(2 * MiB, 7));
    await s.flush();
    const before = s.allocatedBytes();
    expect(before).toBeGreaterThanOrEqual(2 * MiB);
    await s.deallocate(256, 256); // second half, up to EOF
    await s.flush();
    expect((await fsp.stat(p)).size).toBe(2 * MiB);
    expect(isZero(await s.read(256, 256))).toBe(true);
    expect((await s.read(0, 256)).equals(pattern(2 * MiB, 7).subarray(0, MiB))).toBe(true);
    expect(s.allocatedBytes()).toBeLessThan(before);
  });

  it('does not allocate disk when trimming never-written sparse space', async () => {
    const p = path.join(dir, 'sparse.img');
    const s = await open({ path: p, blockSize: 4096, sizeBytes: 32 * MiB, createIfMissing: true });
    const data = pattern(8192, 8);
    await s.write(1000, data); // some data in the middle
    await s.write(s.nblocks - 1, data.subarray(0, 4096)); // keep the trim off the file tail
    await s.deallocate(0, s.nblocks - 1);
    await s.writeZeroes(0, s.nblocks - 1);
    await s.flush();
    expect(isZero(await s.read(1000, 2))).toBe(true);
    expect((await s.read(s.nblocks - 1, 1)).equals(data.subarray(0, 4096))).toBe(true);
    // only the granule that held data (plus the last block) got zeros written
    expect(s.allocatedBytes()).toBeLessThan(MiB);
  });
});

describe('FileStore close', () => {
  it('waits for in-flight operations, then rejects new ones with closed', async () => {
    const p = path.join(dir, 'c.img');
    const s = await open({ path: p, blockSize: 512, sizeBytes: MiB, createIfMissing: true });
    const data = pattern(64 * 1024, 9);
    const pending = [s.write(0, data), s.read(0, 128), s.flush(), s.deallocate(200, 8)];
    const closing = s.close();
    await expect(Promise.all(pending)).resolves.toBeDefined();
    await closing;
    for (const p2 of [s.read(0, 1), s.write(0, Buffer.alloc(512)), s.writeZeroes(0, 1), s.deallocate(0, 1), s.flush()]) {
      expect((await storeError(p2)).code).toBe('closed');
    }
    await s.close(); // idempotent
    const r = await open({ path: p, blockSize: 512 });
    expect((await r.read(0, 128)).equals(data)).toBe(true);
  });

  it('exposes the class for direct use', async () => {
    const s = await FileStore.open({ path: path.join(dir, 'd.img'), blockSize: 4096, sizeBytes: 8192, createIfMissing: true });
    opened.push(s);
    expect(s.path).toBe(path.join(dir, 'd.img'));
    expect(s.nblocks).toBe(2);
  });
});
