import { describe, expect, it } from 'vitest';
import { NullStore, StoreError, openStore, type BlockSize } from '../../target/store/index.ts';

async function code(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreError);
  return (err as StoreError).code;
}

describe.each([512, 4096] as const)('NullStore blockSize %i', (bs: BlockSize) => {
  it('reads zeros, discards writes, allocates nothing', async () => {
    const s = await openStore({ kind: 'null', blockSize: bs, sizeBytes: 2 ** 40 });
    expect(s).toBeInstanceOf(NullStore);
    expect(s.kind).toBe('null');
    expect(s.blockSize).toBe(bs);
    expect(s.nblocks).toBe(2 ** 40 / bs);
    await s.write(s.nblocks - 4, Buffer.alloc(4 * bs, 0xab));
    await s.writeZeroes(0, 8);
    await s.deallocate(0, s.nblocks);
    await s.flush();
    const got = await s.read(s.nblocks - 4, 4);
    expect(got.length).toBe(4 * bs);
    expect(got.equals(Buffer.alloc(4 * bs))).toBe(true);
    const into = Buffer.alloc(3 * bs, 0xee);
    expect(await s.read(0, 2, into)).toBe(into);
    expect(into.subarray(0, 2 * bs).equals(Buffer.alloc(2 * bs))).toBe(true);
    expect(into.subarray(2 * bs).equals(Buffer.alloc(bs, 0xee))).toBe(true);
    expect(s.allocatedBytes()).toBe(0);
    await s.close();
  });

  it('validates ranges and buffers', async () => {
    const s = new NullStore(bs, 16 * bs);
    expect(await code(s.read(16, 1))).toBe('out-of-range');
    expect(await code(s.read(0, 0))).toBe('out-of-range');
    expect(await code(s.read(0, 2, Buffer.alloc(bs)))).toBe('out-of-range');
    expect(await code(s.write(15, Buffer.alloc(2 * bs)))).toBe('out-of-range');
    expect(await code(s.write(0, Buffer.alloc(0)))).toBe('out-of-range');
    expect(await code(s.write(0, Buffer.alloc(bs + 1)))).toBe('out-of-range');
    expect(await code(s.writeZeroes(10, 7))).toBe('out-of-range');
    expect(await code(s.deallocate(-1, 1))).toBe('out-of-range');
  });

  it('rejects operations after close', async () => {
    const s = new NullStore(bs, 16 * bs);
    await s.close();
    expect(await code(s.read(0, 1))).toBe('closed');
    expect(await code(s.write(0, Buffer.alloc(bs)))).toBe('closed');
    expect(await code(s.writeZeroes(0, 1))).toBe('closed');
    expect(await code(s.deallocate(0, 1))).toBe('closed');
    expect(await code(s.flush())).toBe('closed');
  });

  it('requires sizeBytes', async () => {
    await expect(openStore({ kind: 'null', blockSize: bs })).rejects.toThrow(`null store needs sizeBytes, a positive multiple of the block size ${bs}`);
    expect(() => new NullStore(bs, bs + 1)).toThrow(RangeError);
  });
});
