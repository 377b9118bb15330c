/**
 * Write fencing: a write that may have executed on a failed path is resent
 * elsewhere only once it can no longer land late there. The fake target keeps
 * such writes "stranded" and applies them when the test says so: without the
 * fence, the stale copy would land after the resent one (and after newer
 * writes to the same blocks).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MultipathRegistry, NoPathError, type HeadOptions, type MultipathHead } from '../../host/multipath/index.ts';
import { AnaState } from '../../shared/log-pages.ts';
import { FakePath, FakeStore, blocks, settle, track } from '../helpers/fake-path.ts';

const A = 0xa1;
const B = 0xb2;
const C = 0xc3;

function pair(headOpts: HeadOptions): { head: MultipathHead; p1: FakePath; p2: FakePath; store: FakeStore } {
  const store = new FakeStore();
  const p1 = new FakePath({ name: 'p1', store });
  // Non-optimized: p1 gets the I/O while it is up, p2 is the failover path.
  const p2 = new FakePath({ name: 'p2', store, ana: headOpts.policy === 'active-standby' ? AnaState.Optimized : AnaState.NonOptimized });
  const reg = new MultipathRegistry(headOpts);
  const head = reg.addPath(p1);
  reg.addPath(p2);
  return { head, p1, p2, store };
}

const landed = (store: FakeStore, lba: number) => store.writesTo(lba).map((w) => `${w.path}:${w.tag.toString(16)}`);

describe('write fencing', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('control: the fake target really lands a stale write late when nothing fences it', async () => {
    const store = new FakeStore();
    const p1 = new FakePath({ name: 'p1', store });
    const p2 = new FakePath({ name: 'p2', store });
    p1.hold();
    const lost = p1.submit({ kind: 'write', slba: 10, nlb: 1, data: blocks(1, A) });
    p1.breakConnection();
    expect(await lost).toMatchObject({ kind: 'path-error', mayHaveExecuted: true });
    // A naive host resends at once, then the application writes B...
    await p2.submit({ kind: 'write', slba: 10, nlb: 1, data: blocks(1, A) });
    await p2.submit({ kind: 'write', slba: 10, nlb: 1, data: blocks(1, B) });
    p1.landStranded();
    // ...and the stale A overwrites B: the corruption the head must prevent.
    expect(landed(store, 10)).toEqual(['p2:a1', 'p2:b2', 'p1:a1']);
    expect(store.byteAt(10)).toBe(A);
  });

  describe.each(['queue-depth', 'round-robin', 'numa'] as const)('%s: fenced by the old path quiescing', (policy) => {
    it('resends the lost write only after the stale copy landed; later overlapping writes wait; reads and other writes go on', async () => {
      const { head, p1, p2, store } = pair({ policy });
      p1.hold();
      const a = track(head.write(10, blocks(2, A)));
      await settle();
      expect(p1.held.length).toBe(1);
      p1.breakConnection(); // A is stranded at the target: it may land at any time
      await settle();
      expect(p2.submitted.length).toBe(0);
      expect(head.state()).toMatchObject({ fenced: 1, counters: { fencedWrites: 1, requeues: 1 } });

      // Reads are resent at once (the stale write has not landed: old data).
      const r = await head.read(10, 1);
      expect(r[0]).toBe(0);
      // A later write overlapping A waits behind it; one elsewhere does not.
      const b = track(head.write(11, blocks(1, B)));
      await head.write(50, blocks(1, C));
      await vi.advanceTimersByTimeAsync(1000);
      expect(a.done || b.done).toBe(false);
      expect(p2.submitted.filter((io) => io.kind === 'write').map((io) => io.slba)).toEqual([50]);

      // The stale write lands now; then (and only then) the head resends A, then B.
      p1.landStranded();
      await settle();
      expect(a.done && b.done).toBe(true);
      expect(a.error ?? b.error).toBeUndefined();
      expect(landed(store, 10)).toEqual(['p1:a1', 'p2:a1']);
      expect(landed(store, 11)).toEqual(['p1:a1', 'p2:a1', 'p2:b2']);
      expect(store.byteAt(10)).toBe(A);
      expect(store.byteAt(11)).toBe(B);
      expect(head.state().fenced).toBe(0);
    });

    it('resends once kato passed on the old path (the target dropped the stale write)', async () => {
      const { head, p1, p2, store } = pair({ policy });
      p1.hold();
      const a = track(head.write(10, blocks(1, A)));
      await settle();
      p1.breakConnection();
      const b = track(head.write(10, blocks(1, B)));
      await vi.advanceTimersByTimeAsync(4999);
      expect(a.done || b.done).toBe(false);
      expect(p2.submitted.length).toBe(0);
      await vi.advanceTimersByTimeAsync(1); // p1.katoMs = 5000
      await settle();
      expect(a.done && b.done).toBe(true);
      expect(landed(store, 10)).toEqual(['p2:a1', 'p2:b2']);
      expect(store.byteAt(10)).toBe(B);
    });
  });

  describe('active-standby: fenced by Set Namespace Active on the new path', () => {
    it('resends the lost write only after 0xFE on the standby completed (the target fenced the old path first)', async () => {
      const { head, p1, p2, store } = pair({ policy: 'active-standby' });
      await head.read(0, 1);
      expect(head.state().activePath).toBe('p1');
      // The old path never reports quiesced: only the activation can lift the fence.
      vi.spyOn(p1, 'quiesced').mockReturnValue(new Promise<void>(() => {}));
      p1.hold();
      const a = track(head.write(10, blocks(1, A)));
      await settle();
      p2.holdSetActive();
      p1.breakConnection();
      await settle();
      expect(p2.setActiveCalls).toBe(1);
      expect(p2.pendingSetActive).toBe(1);
      expect(p1.stranded.length).toBe(1);
      const b = track(head.write(10, blocks(1, B)));
      const r = track(head.read(20, 1));
      await vi.advanceTimersByTimeAsync(2000);
      expect(a.done || b.done || r.done).toBe(false);
      expect(p2.submitted.length).toBe(0);
      // 0xFE on p2: the target lands p1's stale write, flips ANA, completes.
      p2.releaseSetActive();
      await settle();
      expect(a.done && b.done && r.done).toBe(true);
      expect(a.error ?? b.error ?? r.error).toBeUndefined();
      expect(landed(store, 10)).toEqual(['p1:a1', 'p2:a1', 'p2:b2']);
      expect(store.byteAt(10)).toBe(B);
      // B waits for A to complete (same block); the read does not.
      expect(p2.submitted.map((io) => io.kind)).toEqual(['write', 'read', 'write']);
    });

    it('the same when the target aborts the stale write instead of completing it', async () => {
      const { head, p1, p2, store } = pair({ policy: 'active-standby' });
      store.fenceMode = 'abort';
      await head.read(0, 1);
      vi.spyOn(p1, 'quiesced').mockReturnValue(new Promise<void>(() => {}));
      p1.hold();
      const a = track(head.write(10, blocks(1, A)));
      await settle();
      p1.breakConnection();
      const b = track(head.write(10, blocks(1, B)));
      await settle();
      expect(a.done && b.done).toBe(true);
      expect(landed(store, 10)).toEqual(['p2:a1', 'p2:b2']);
      expect(p2.setActiveCalls).toBe(1);
    });
  });

  it('resends at once a write that cannot have executed (mayHaveExecuted false)', async () => {
    const { head, p1, p2, store } = pair({ policy: 'queue-depth' });
    vi.spyOn(p1, 'quiesced').mockReturnValue(new Promise<void>(() => {}));
    p1.script({ kind: 'path-error', reason: 'queue not live', mayHaveExecuted: false });
    await head.write(10, blocks(1, A));
    expect(landed(store, 10)).toEqual(['p2:a1']);
    expect(p2.submitted.length).toBe(1);
    expect(head.state().counters.fencedWrites).toBe(0);
  });

  it('fences write-zeroes and deallocate like writes', async () => {
    const { head, p1, p2, store } = pair({ policy: 'queue-depth' });
    await head.write(10, blocks(2, C));
    p1.hold();
    const z = track(head.writeZeroes(10, 1));
    const d = track(head.deallocate(11, 1));
    await settle();
    p1.breakConnection();
    const b = track(head.write(10, blocks(2, B)));
    await settle();
    expect(p2.submitted.length).toBe(0);
    p1.landStranded();
    await settle();
    expect(z.done && d.done && b.done).toBe(true);
    expect(landed(store, 10)).toEqual(['p1:c3', 'p1:0', 'p2:0', 'p2:b2']);
    expect(landed(store, 11)).toEqual(['p1:c3', 'p1:0', 'p2:0', 'p2:b2']);
    expect(store.byteAt(10)).toBe(B);
  });

  it('no_path_timeout never reports a write that may still land: it fails only once fenced', async () => {
    const store = new FakeStore();
    const p1 = new FakePath({ name: 'p1', store, katoMs: 5000 });
    const head = new MultipathRegistry({ noPathTimeoutMs: 1000 }).addPath(p1);
    p1.hold();
    const a = track(head.write(10, blocks(1, A)));
    await settle();
    p1.breakConnection();
    const r = track(head.read(0, 1));
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.error).toBeInstanceOf(NoPathError);
    expect(a.done).toBe(false); // still fenced: could land late
    await vi.advanceTimersByTimeAsync(4000); // kato: the target drops it
    await settle();
    expect(a.error).toBeInstanceOf(NoPathError);
    expect((a.error as NoPathError).waitedMs).toBe(5000);
  });
});
