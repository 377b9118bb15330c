import { describe, expect, it } from 'vitest';
import { ChunkTable, LEAF_CHUNKS } from '../../target/store/chunk-table.ts';
import { Rng } from '../helpers/rng.ts';

describe('ChunkTable (chunk index -> slot)', () => {
  it('maps, replaces and unmaps chunks, saying what each had', () => {
    const t = new ChunkTable();
    expect(t.get(5)).toBe(-1);
    expect(t.set(5, 0)).toBe(-1);
    expect(t.get(5)).toBe(0);
    expect(t.set(5, 77)).toBe(0);
    expect(t.size).toBe(1);
    expect(t.delete(5)).toBe(77);
    expect(t.delete(5)).toBe(-1);
    expect(t.get(5)).toBe(-1);
    expect(t.size).toBe(0);
  });

  it('matches a Map under random work across leaves, far indexes (2^40 chunks) included', () => {
    const t = new ChunkTable();
    const ref = new Map<number, number>();
    const rng = new Rng(12345);
    const rand = () => rng.float();
    const pick = () => (rand() < 0.5 ? Math.floor(rand() * 200) : 2 ** 40 - Math.floor(rand() * 100));
    for (let i = 0; i < 20_000; i++) {
      const ci = pick();
      const r = rand();
      if (r < 0.5) {
        const slot = Math.floor(rand() * 2 ** 30);
        expect(t.set(ci, slot)).toBe(ref.get(ci) ?? -1);
        ref.set(ci, slot);
      } else if (r < 0.8) {
        expect(t.delete(ci)).toBe(ref.get(ci) ?? -1);
        ref.delete(ci);
      } else expect(t.get(ci)).toBe(ref.get(ci) ?? -1);
      expect(t.size).toBe(ref.size);
    }
    for (const [ci, slot] of ref) expect(t.get(ci)).toBe(slot);
  });

  it('walks the mapped chunks of a range, and the walker may unmap them; empty leaves go', () => {
    const t = new ChunkTable();
    for (let ci = 0; ci < 4 * LEAF_CHUNKS; ci += 3) t.set(ci, ci * 10);
    t.set(2 ** 41, 1);
    const seen: number[] = [];
    t.forEachIn(LEAF_CHUNKS - 2, 3 * LEAF_CHUNKS, (ci, slot) => {
      expect(slot).toBe(ci * 10);
      seen.push(ci);
      t.delete(ci);
    });
    const expected = [];
    for (let ci = 0; ci < 4 * LEAF_CHUNKS; ci += 3) if (ci >= LEAF_CHUNKS - 2 && ci <= 3 * LEAF_CHUNKS) expected.push(ci);
    expect(seen.sort((x, y) => x - y)).toEqual(expected);
    for (const ci of expected) expect(t.get(ci)).toBe(-1);
    expect(t.get(0)).toBe(0);
    expect(t.get(2 ** 41)).toBe(1);
    // A leaf emptied by delete is dropped, and a later set makes a fresh one (the remembered leaf is not reused).
    t.delete(2 ** 41);
    expect(t.get(2 ** 41)).toBe(-1);
    t.set(2 ** 41 + 1, 9);
    expect(t.get(2 ** 41 + 1)).toBe(9);
    expect(t.get(2 ** 41)).toBe(-1);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.get(0)).toBe(-1);
  });
});
