/** test/helpers/slow-store.ts: a store whose next write waits until the test lets it go. */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../target/store/index.ts';
import { holdNextWrite } from '../helpers/slow-store.ts';

const block = (fill: number) => Buffer.alloc(512, fill);
const settled = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return done;
};

describe('holdNextWrite', () => {
  it('the next write waits in the store, unlanded, until open(); then it lands', async () => {
    const store = new MemoryStore(512, 64 * 512);
    const held = holdNextWrite(store);
    expect(held.holding).toBe(false);
    const w = store.write(3, block(0xaa));
    expect(await settled(w)).toBe(false);
    expect(held.holding).toBe(true);
    expect(held.landed).toBe(false);
    expect((await store.read(3, 1)).equals(block(0))).toBe(true);
    held.open();
    await w;
    expect(held.holding).toBe(false);
    expect(held.landed).toBe(true);
    expect((await store.read(3, 1)).equals(block(0xaa))).toBe(true);
  });

  it('only the next write is held: the ones after it go straight through', async () => {
    const store = new MemoryStore(512, 64 * 512);
    const held = holdNextWrite(store);
    const first = store.write(1, block(1));
    await store.write(2, block(2));
    expect((await store.read(2, 1)).equals(block(2))).toBe(true);
    expect(await settled(first)).toBe(false);
    held.open();
    await first;
    expect((await store.read(1, 1)).equals(block(1))).toBe(true);
  });

  it('opened before the write came: the write does not wait', async () => {
    const store = new MemoryStore(512, 64 * 512);
    const held = holdNextWrite(store);
    held.open();
    await store.write(0, block(7));
    expect(held.landed).toBe(true);
  });

  it('the store no longer offers a synchronous write (the target would bypass the hold)', () => {
    const store = new MemoryStore(512, 64 * 512);
    expect(store.writeSync).toBeTypeOf('function');
    holdNextWrite(store);
    expect(store.writeSync).toBeUndefined();
  });
});
