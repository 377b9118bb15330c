import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MultipathError, type MultipathHead, MultipathRegistry, type HeadOptions, type IoPolicy } from '../../host/multipath/index.ts';
import { AnaState } from '../../shared/log-pages.ts';
import { FakePath, FakeStore, blocks, settle, track, type FakePathOptions } from '../helpers/fake-path.ts';

function setup(opts: FakePathOptions[], headOpts: HeadOptions = {}): { head: MultipathHead; paths: FakePath[]; store: FakeStore } {
  const store = new FakeStore();
  const reg = new MultipathRegistry(headOpts);
  const paths = opts.map((o, i) => new FakePath({ name: `p${i + 1}`, store, ...o }));
  let head: MultipathHead | undefined;
  for (const p of paths) head = reg.addPath(p);
  return { head: head!, paths, store };
}

/** Which path each of n sequential reads went to. */
async function sequentialReads(head: MultipathHead, paths: FakePath[], n: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < n; i++) {
    const before = paths.map((p) => p.submitted.length);
    await head.read(i, 1);
    const idx = paths.findIndex((p, j) => p.submitted.length > before[j]!);
    seen.push(paths[idx]!.name);
  }
  return seen;
}

describe('multipath policies', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  describe('queue-depth (the default)', () => {
    it('is the default and sends each I/O to the path with the fewest in flight', async () => {
      const { head, paths } = setup([{}, {}, {}]);
      expect(head.policy).toBe('queue-depth');
      for (const p of paths) p.hold();
      const ios = Array.from({ length: 7 }, (_, i) => head.read(i, 1));
      await settle();
      expect(paths.map((p) => p.held.length)).toEqual([3, 2, 2]);
      expect(head.state().paths.map((p) => p.inflight)).toEqual([3, 2, 2]);
      paths[1]!.release();
      await settle();
      const next = head.read(100, 1);
      await settle();
      expect(paths[1]!.held.length).toBe(1); // p2 had the fewest
      for (const p of paths) p.release();
      await Promise.all([...ios, next]);
    });

    it('prefers optimized paths over less busy non-optimized ones', async () => {
      const { head, paths } = setup([{ ana: AnaState.NonOptimized }, {}]);
      paths[1]!.hold();
      const ios = Array.from({ length: 4 }, (_, i) => head.read(i, 1));
      await settle();
      expect(paths[1]!.held.length).toBe(4);
      expect(paths[0]!.submitted.length).toBe(0);
      paths[1]!.release();
      await Promise.all(ios);
    });
  });

  describe('numa', () => {
    it('chooses the first optimized path on the local node, then any optimized, then non-optimized', async () => {
      const { head, paths } = setup([{ numaNode: 1 }, { numaNode: 0, ana: AnaState.NonOptimized }, { numaNode: 0 }, { numaNode: 0 }], {
        policy: 'numa',
        numaNode: 0,
      });
      expect(await sequentialReads(head, paths, 3)).toEqual(['p3', 'p3', 'p3']);
      paths[2]!.setAna(AnaState.Inaccessible);
      expect(await sequentialReads(head, paths, 1)).toEqual(['p4']);
      paths[3]!.setState('resetting');
      // Optimized on a remote node beats non-optimized on the local one (Linux's __nvme_find_path).
      expect(await sequentialReads(head, paths, 1)).toEqual(['p1']);
      paths[0]!.setAna(AnaState.PersistentLoss);
      expect(await sequentialReads(head, paths, 1)).toEqual(['p2']);
    });

    it('follows the numaNode option set at run time', async () => {
      const { head, paths } = setup([{ numaNode: 0 }, { numaNode: 1 }], { policy: 'numa' });
      expect(await sequentialReads(head, paths, 1)).toEqual(['p1']);
      head.setOptions({ numaNode: 1 });
      expect(await sequentialReads(head, paths, 1)).toEqual(['p2']);
    });
  });

  describe('round-robin', () => {
    it('rotates among optimized paths only', async () => {
      const { head, paths } = setup([{}, { ana: AnaState.NonOptimized }, {}, {}], { policy: 'round-robin' });
      expect(await sequentialReads(head, paths, 6)).toEqual(['p1', 'p3', 'p4', 'p1', 'p3', 'p4']);
    });

    it('rotates among non-optimized paths when none is optimized', async () => {
      const { head, paths } = setup([{ ana: AnaState.NonOptimized }, { ana: AnaState.Inaccessible }, { ana: AnaState.NonOptimized }], {
        policy: 'round-robin',
      });
      expect(await sequentialReads(head, paths, 4)).toEqual(['p1', 'p3', 'p1', 'p3']);
    });
  });

  describe('all policies honour ANA and controller state', () => {
    it.each(['numa', 'round-robin', 'queue-depth'] as const)('%s: never inaccessible, persistent loss, change or non-live paths', async (policy) => {
      const { head, paths } = setup(
        [
          { ana: AnaState.Inaccessible },
          { ana: AnaState.PersistentLoss },
          { ana: AnaState.Change },
          { state: 'connecting' },
          { state: 'resetting' },
          { state: 'deleting' },
          { ana: AnaState.NonOptimized },
        ],
        { policy },
      );
      expect(await sequentialReads(head, paths, 3)).toEqual(['p7', 'p7', 'p7']);
      const st = head.state();
      expect(st.paths.map((p) => p.usable)).toEqual([false, false, false, false, false, false, true]);
      expect(st.paths.map((p) => p.ana)).toEqual(['inaccessible', 'persistent-loss', 'change', 'optimized', 'optimized', 'optimized', 'non-optimized']);
      expect(st.paths.map((p) => p.state)).toEqual(['live', 'live', 'live', 'connecting', 'resetting', 'deleting', 'live']);
    });
  });

  describe('run-time policy change', () => {
    it('switches the choice for the next I/O and refuses unknown policies', async () => {
      const { head, paths } = setup([{}, {}, {}], { policy: 'round-robin' });
      expect(await sequentialReads(head, paths, 2)).toEqual(['p1', 'p2']);
      head.setPolicy('numa');
      expect(head.policy).toBe('numa');
      expect(await sequentialReads(head, paths, 2)).toEqual(['p1', 'p1']);
      head.setPolicy('active-standby');
      expect(await sequentialReads(head, paths, 2)).toEqual(['p1', 'p1']);
      expect(paths[0]!.setActiveCalls).toBe(1);
      expect(paths[1]!.anaState).toBe(AnaState.Inaccessible);
      expect(() => head.setPolicy('fastest' as IoPolicy)).toThrow(MultipathError);
      expect(() => head.setPolicy('fastest' as IoPolicy)).toThrow(/unknown I\/O policy "fastest"/);
      // Back to round-robin: follows ANA, which the target now reports for active-standby.
      head.setPolicy('round-robin');
      expect(await sequentialReads(head, paths, 2)).toEqual(['p1', 'p1']);
      expect(head.state().activePath).toBeNull();
    });
  });

  describe('active-standby', () => {
    it('sends setActive (0xFE) to the first path, holds I/O until it completes, then uses that path only', async () => {
      const store = new FakeStore();
      const p1 = new FakePath({ name: 'p1', store });
      const p2 = new FakePath({ name: 'p2', store });
      p1.holdSetActive();
      const reg = new MultipathRegistry({ policy: 'active-standby' });
      const head = reg.addPath(p1);
      reg.addPath(p2);
      await settle();
      expect(p1.setActiveCalls).toBe(1);
      expect(p2.setActiveCalls).toBe(0);
      expect(head.state().activating).toBe('p1');
      const w = track(head.write(0, blocks(2, 0x77)));
      const r = track(head.read(8, 1));
      await settle();
      expect(p1.submitted.length + p2.submitted.length).toBe(0);
      expect(w.done || r.done).toBe(false);
      p1.releaseSetActive();
      await settle();
      expect(w.done && r.done).toBe(true);
      expect(w.error).toBeUndefined();
      expect(p1.submitted.map((io) => io.kind)).toEqual(['write', 'read']);
      expect(p2.anaState).toBe(AnaState.Inaccessible); // the target made it standby
      const st = head.state();
      expect(st.activePath).toBe('p1');
      expect(st.paths.map((p) => [p.name, p.active])).toEqual([
        ['p1', true],
        ['p2', false],
      ]);
      expect(st.counters.activations).toBe(1);
      // The choice sticks.
      await Promise.all([head.read(0, 1), head.read(1, 1), head.write(2, blocks(1, 1))]);
      expect(p2.submitted.length).toBe(0);
      expect(p1.setActiveCalls + p2.setActiveCalls).toBe(1);
    });

    it('prefers a path the target already reports optimized', async () => {
      const { head, paths } = setup([{ ana: AnaState.Inaccessible }, {}], { policy: 'active-standby' });
      await head.read(0, 1);
      expect(paths.map((p) => p.setActiveCalls)).toEqual([0, 1]);
      expect(head.state().activePath).toBe('p2');
    });

    it('on failover prefers a path the target already reports optimized (another host moved the active path)', async () => {
      const { head, paths, store } = setup([{}, {}, {}], { policy: 'active-standby' });
      await head.read(0, 1);
      expect(head.state().activePath).toBe('p1');
      expect(paths.map((p) => p.anaState)).toEqual([AnaState.Optimized, AnaState.Inaccessible, AnaState.Inaccessible]);
      // Another host sends 0xFE through p3's port: the target flips ANA.
      store.activate(paths[2]!);
      await head.read(1, 1);
      expect(paths.map((p) => p.setActiveCalls)).toEqual([1, 0, 1]);
      expect(head.state().activePath).toBe('p3');
      expect(head.state().counters.failovers).toBe(1);
    });

    it('never activates a non-live or persistent-loss path', async () => {
      const { head, paths } = setup([{ state: 'connecting' }, { ana: AnaState.PersistentLoss }, { ana: AnaState.Inaccessible }], {
        policy: 'active-standby',
      });
      await head.read(0, 1);
      expect(paths.map((p) => p.setActiveCalls)).toEqual([0, 0, 1]);
      expect(paths[2]!.anaState).toBe(AnaState.Optimized);
    });
  });
});
