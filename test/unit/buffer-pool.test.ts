/** The target's pool of data buffers: size classes, reuse, and the guards that keep one buffer from two users. */
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../target/buffer-pool.ts';

const pool = () => new BufferPool({ maxSize: 1 << 20, retainBytesPerClass: 1 << 20 });

describe('BufferPool', () => {
  it('hands out views of exactly the size asked, from power-of-two classes of at least 4 KiB', () => {
    const p = pool();
    for (const [n, cls] of [
      [1, 4096],
      [4096, 4096],
      [4097, 8192],
      [131072, 131072],
      [131073, 262144],
      [1 << 20, 1 << 20],
    ] as const) {
      const b = p.acquire(n);
      expect(b.length).toBe(n);
      expect(b.byteOffset).toBe(0);
      expect(b.buffer.byteLength).toBe(cls);
      expect(p.owns(b)).toBe(true);
    }
    expect(p.outstanding).toBe(6);
  });

  it('reuses a released buffer for the next request of its class, and not before it is released', () => {
    const p = pool();
    const a = p.acquire(131072);
    const b = p.acquire(131072);
    expect(b.buffer).not.toBe(a.buffer);
    p.release(a);
    expect(p.outstanding).toBe(1);
    const c = p.acquire(100_000);
    expect(c.buffer).toBe(a.buffer);
    expect(p.acquire(131072).buffer).not.toBe(a.buffer);
  });

  it('ignores a second release of the same buffer (it would go to two users) and buffers it did not make', () => {
    const p = pool();
    const a = p.acquire(65536);
    p.release(a);
    p.release(a);
    p.release(Buffer.alloc(65536));
    p.release(Buffer.allocUnsafe(100));
    const x = p.acquire(65536);
    const y = p.acquire(65536);
    expect(x.buffer).toBe(a.buffer);
    expect(y.buffer).not.toBe(a.buffer);
  });

  it('serves sizes beyond the largest class with plain buffers, and keeps at most its retention per class', () => {
    const p = new BufferPool({ maxSize: 1 << 20, retainBytesPerClass: 4 << 20 });
    const big = p.acquire((1 << 20) + 1);
    expect(p.serves((1 << 20) + 1)).toBe(false);
    expect(p.owns(big)).toBe(false);
    const held = Array.from({ length: 10 }, () => p.acquire(1 << 20));
    for (const b of held) p.release(b);
    // 4 MiB kept: 4 of the 10 come back from the pool, then new ones.
    const again = Array.from({ length: 10 }, () => p.acquire(1 << 20));
    const reused = again.filter((b) => held.some((h) => h.buffer === b.buffer)).length;
    expect(reused).toBe(4);
  });
});
