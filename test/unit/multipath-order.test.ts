/**
 * Per-block order: writes to overlapping blocks complete, and land, in
 * submission order, also when they are queued, requeued or failed over.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MultipathRegistry, type HeadOptions, type MultipathHead } from '../../host/multipath/index.ts';
import { AnaState } from '../../shared/log-pages.ts';
import { FakePath, FakeStore, blocks, pathError, settle, track, type FakePathOptions } from '../helpers/fake-path.ts';

function setup(opts: FakePathOptions[], headOpts: HeadOptions = {}): { head: MultipathHead; paths: FakePath[]; store: FakeStore } {
  const store = new FakeStore();
  const reg = new MultipathRegistry(headOpts);
  const paths = opts.map((o, i) => new FakePath({ name: `p${i + 1}`, store, ...o }));
  let head: MultipathHead | undefined;
  for (const p of paths) head = reg.addPath(p);
  return { head: head!, paths, store };
}

const tags = (store: FakeStore, lba: number) => store.writesTo(lba).map((w) => w.tag);

describe('per-block order', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes queued while no path is usable complete and land in submission order', async () => {
    const { head, paths, store } = setup([{}]);
    paths[0]!.setState('resetting');
    const completed: string[] = [];
    const w = (name: string, p: Promise<void>) => p.then(() => completed.push(name));
    const all = [
      w('w1', head.write(5, blocks(2, 0x11))), // blocks 5-6
      w('w2', head.write(6, blocks(1, 0x22))), // block 6
      w('w3', head.write(5, blocks(1, 0x33))), // block 5
      w('w4', head.write(6, blocks(1, 0x44))), // block 6
    ];
    await vi.advanceTimersByTimeAsync(30_000);
    expect(completed).toEqual([]);
    paths[0]!.setState('live');
    await Promise.all(all);
    expect(completed).toEqual(['w1', 'w2', 'w3', 'w4']);
    expect(tags(store, 5)).toEqual([0x11, 0x33]);
    expect(tags(store, 6)).toEqual([0x11, 0x22, 0x44]);
    expect(store.byteAt(5)).toBe(0x33);
    expect(store.byteAt(6)).toBe(0x44);
  });

  it('a later overlapping write waits for an earlier one in flight; others do not', async () => {
    const { head, paths, store } = setup([{}]);
    const p = paths[0]!;
    p.hold();
    const w1 = track(head.write(0, blocks(4, 0x01)));
    const w2 = track(head.write(3, blocks(2, 0x02))); // overlaps block 3
    const w3 = track(head.write(10, blocks(1, 0x03)));
    const r = track(head.read(0, 4));
    await settle();
    expect(p.held.map((h) => [h.io.kind, h.io.slba])).toEqual([
      ['write', 0],
      ['write', 10],
      ['read', 0],
    ]);
    p.release();
    await settle();
    expect(w1.done && w3.done && r.done).toBe(true);
    expect(w2.done).toBe(false);
    expect(p.held.map((h) => [h.io.kind, h.io.slba])).toEqual([['write', 3]]);
    p.release();
    await settle();
    expect(w2.done).toBe(true);
    expect(tags(store, 3)).toEqual([0x01, 0x02]);
  });

  it('when the first of two writes to a block fails over, the second still lands after it', async () => {
    const { head, paths, store } = setup([{}, { ana: AnaState.NonOptimized }], { policy: 'round-robin' });
    paths[0]!.script(pathError('reset', false));
    const completed: number[] = [];
    await Promise.all([head.write(7, blocks(1, 0x71)).then(() => completed.push(1)), head.write(7, blocks(1, 0x72)).then(() => completed.push(2))]);
    expect(completed).toEqual([1, 2]);
    expect(store.writesTo(7).map((w) => `${w.path}:${w.tag.toString(16)}`)).toEqual(['p2:71', 'p2:72']);
    expect(store.byteAt(7)).toBe(0x72);
  });

  it('a generic-error retry keeps its place before later writes to the same block', async () => {
    const { head, paths, store } = setup([{}]);
    paths[0]!.script({ kind: 'completed', status: 0x0006, result: 0 }); // InternalError, retried
    await Promise.all([head.write(8, blocks(1, 0x81)), head.write(8, blocks(1, 0x82))]);
    expect(tags(store, 8)).toEqual([0x81, 0x82]);
  });

  it('requeued I/O is resent in submission order', async () => {
    const { head, paths } = setup([{}, {}], { policy: 'numa' });
    paths[0]!.hold();
    const ios: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) ios.push(i % 2 === 0 ? head.write(100 + i, blocks(1, i + 1)) : head.read(100 + i, 1));
    await settle();
    paths[1]!.setState('resetting');
    paths[0]!.breakConnection(); // everything in flight on p1 fails over; p2 is down too
    await settle();
    for (let i = 10; i < 14; i++) ios.push(head.write(100 + i, blocks(1, i + 1)));
    paths[0]!.landStranded(); // p1 quiesced
    await settle();
    paths[1]!.setState('live');
    await Promise.all(ios);
    expect(paths[1]!.submitted.map((io) => io.slba)).toEqual(Array.from({ length: 14 }, (_, i) => 100 + i));
  });
});
