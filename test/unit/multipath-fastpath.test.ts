/**
 * The head's direct-dispatch fast path: I/O goes straight to the policy's
 * path when nothing is queued, and every guarantee of the slow path holds
 * (per-block write order, fencing, retries, failover, counters, close()).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MultipathRegistry, type HeadOptions, type MultipathHead } from '../../host/multipath/index.ts';
import { AnaState } from '../../shared/log-pages.ts';
import { FakePath, FakeStore, blocks, pathError, settle, status, track, type FakePathOptions } from '../helpers/fake-path.ts';

function setup(opts: FakePathOptions[], headOpts: HeadOptions = {}): { head: MultipathHead; paths: FakePath[]; store: FakeStore } {
  const store = new FakeStore();
  const reg = new MultipathRegistry(headOpts);
  const paths = opts.map((o, i) => new FakePath({ name: `p${i + 1}`, store, ...o }));
  let head: MultipathHead | undefined;
  for (const p of paths) head = reg.addPath(p);
  return { head: head!, paths, store };
}

const tags = (store: FakeStore, lba: number) => store.writesTo(lba).map((w) => w.tag);

describe('fast path', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('dispatches synchronously on submit and completes to the caller with data and counters', async () => {
    const { head, paths, store } = setup([{}]);
    store.data.fill(0x5a, 3 * 512, 5 * 512);
    const r = head.read(3, 2);
    expect(paths[0]!.submitted.map((io) => [io.kind, io.slba])).toEqual([['read', 3]]); // no queue, no microtask
    expect(head.state().inflight).toBe(1);
    const data = await r;
    expect(data.length).toBe(1024);
    expect(data.every((b) => b === 0x5a)).toBe(true);
    await head.write(10, blocks(1, 0x22));
    const s = head.state();
    expect(s.inflight).toBe(0);
    expect(s.counters.ios).toBe(2);
    expect(s.counters.bytesRead).toBe(1024);
    expect(s.counters.bytesWritten).toBe(512);
    expect(s.paths[0]!.ios).toBe(2);
    expect(s.paths[0]!.inflight).toBe(0);
  });

  it('an overlapping write waits for an earlier fast write; non-overlapping writes and reads do not', async () => {
    const { head, paths, store } = setup([{}]);
    const p = paths[0]!;
    p.hold();
    const w1 = track(head.write(0, blocks(4, 0x01))); // blocks 0-3, fast
    const w2 = track(head.write(2, blocks(4, 0x02))); // overlaps 2-3: waits
    const w3 = track(head.write(4, blocks(1, 0x03))); // overlaps w2 only, w2 queued: waits behind the queue
    const w4 = track(head.write(100, blocks(1, 0x04)));
    const r = track(head.read(0, 4));
    await settle();
    // w2 blocked, w3 behind it; the others dispatched.
    expect(p.held.map((h) => [h.io.kind, h.io.slba])).toEqual([
      ['write', 0],
      ['write', 100],
      ['read', 0],
    ]);
    p.release();
    await settle();
    expect(w1.done && w4.done && r.done).toBe(true);
    expect(w2.done || w3.done).toBe(false);
    expect(p.held.map((h) => h.io.slba)).toEqual([2]);
    p.release();
    await settle();
    expect(p.held.map((h) => h.io.slba)).toEqual([4]);
    p.release();
    await settle();
    expect(w2.done && w3.done).toBe(true);
    expect(tags(store, 3)).toEqual([0x01, 0x02]);
    expect(tags(store, 4)).toEqual([0x02, 0x03]);
    expect(store.byteAt(4)).toBe(0x03);
  });

  it('a later write overlapping a fast write that fails over lands after it, behind its fence', async () => {
    const { head, paths, store } = setup([{}, { ana: AnaState.NonOptimized }]);
    const [p1, p2] = [paths[0]!, paths[1]!];
    p1.hold();
    const w1 = track(head.write(7, blocks(1, 0x71))); // fast, on p1 (optimized)
    const w2 = track(head.write(7, blocks(1, 0x72))); // overlaps: queued
    await settle();
    expect(p1.held.length).toBe(1);
    p1.breakConnection(); // w1 may have executed: fenced until p1 quiesces
    await settle();
    expect(head.state().fenced).toBe(1);
    expect(head.state().counters.fencedWrites).toBe(1);
    expect(p2.submitted.length).toBe(0);
    p1.landStranded();
    await settle();
    expect(w1.done && w2.done).toBe(true);
    expect(w1.error).toBeUndefined();
    expect(store.writesTo(7).map((w) => `${w.path}:${w.tag.toString(16)}`)).toEqual(['p1:71', 'p2:71', 'p2:72']);
    expect(store.byteAt(7)).toBe(0x72);
    expect(head.state().counters.requeues).toBe(1);
  });

  it('a generic error status falls back to the slow path: retried on the same path, counted', async () => {
    const { head, paths } = setup([{}, {}]);
    paths[0]!.script(status(0x0006)); // Internal Error: same-path retry
    const data = await head.read(1, 1);
    expect(data.length).toBe(512);
    expect(paths[0]!.submitted.length).toBe(2);
    expect(paths[1]!.submitted.length).toBe(0);
    expect(head.state().counters.retries).toBe(1);
    expect(head.state().counters.errors).toBe(0);
    // Back to the fast path afterwards.
    const r = head.read(2, 1);
    expect(paths[0]!.submitted.length + paths[1]!.submitted.length).toBe(3);
    await r;
  });

  it('a path error falls back to failover: the read completes on the other path, events fire', async () => {
    const { head, paths } = setup([{}, { ana: AnaState.NonOptimized }]);
    const events: string[] = [];
    head.on('failover-start', () => events.push('start'));
    head.on('failover-end', () => events.push('end'));
    paths[0]!.script(pathError('reset', false));
    const data = await head.read(1, 1);
    expect(data.length).toBe(512);
    expect(paths[1]!.submitted.map((io) => io.slba)).toEqual([1]);
    expect(events).toEqual(['start', 'end']);
    expect(head.state().counters.failovers).toBe(1);
  });

  it('errors that exhaust the retries reach the caller as NvmeStatusError', async () => {
    const { head, paths } = setup([{}], { maxRetries: 0 });
    paths[0]!.script(status(0x0006));
    await expect(head.write(0, blocks(1, 1))).rejects.toMatchObject({ name: expect.any(String) });
    expect(head.state().counters.errors).toBe(1);
    expect(head.state().inflight).toBe(0);
  });

  it('the cached path choice follows path changes (ANA, state, removal) and policy changes', async () => {
    const { head, paths } = setup([{}, {}], { policy: 'queue-depth' });
    const [p1, p2] = [paths[0]!, paths[1]!];
    await head.read(0, 1);
    expect(p1.submitted.length).toBe(1);
    p1.setAna(AnaState.NonOptimized);
    await head.read(0, 1);
    expect(p2.submitted.length).toBe(1);
    p2.setState('resetting');
    await head.read(0, 1);
    expect(p1.submitted.length).toBe(2);
    p2.setState('live');
    head.setPolicy('round-robin');
    p1.setAna(AnaState.Optimized);
    await head.read(0, 1);
    await head.read(0, 1);
    expect(p1.submitted.length + p2.submitted.length).toBe(5);
    expect(p1.submitted.length).toBe(3);
    p1.remove();
    await head.read(0, 1);
    expect(p2.submitted.length).toBe(3);
  });

  it('close() waits for fast-path I/O in flight', async () => {
    const { head, paths } = setup([{}]);
    paths[0]!.hold();
    const r = track(head.read(0, 1));
    await settle();
    const closed = track(head.close());
    await settle();
    expect(closed.done).toBe(false);
    expect(head.state().inflight).toBe(1);
    paths[0]!.release();
    await settle();
    expect(r.done && r.error === undefined).toBe(true);
    expect(closed.done).toBe(true);
  });

  it('a path error on a fast I/O after close() fails it with ECLOSED', async () => {
    const { head, paths } = setup([{}]);
    paths[0]!.hold();
    const w = track(head.write(0, blocks(1, 1)));
    await settle();
    const closed = track(head.close());
    paths[0]!.breakConnection();
    await settle();
    expect(w.done).toBe(true);
    expect((w.error as { code?: string }).code).toBe('ECLOSED');
    expect(closed.done).toBe(true);
  });
});
