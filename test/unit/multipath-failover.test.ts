import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import {
  MultipathError,
  type MultipathHead,
  MultipathRegistry,
  NoPathError,
  NvmeStatusError,
  decideDisposition,
  type HeadEvents,
  type HeadOptions,
} from '../../host/multipath/index.ts';
import { AnaState } from '../../shared/log-pages.ts';
import { DNR, Status } from '../../shared/status.ts';
import { FakePath, FakeStore, blocks, pathError, settle, status, track, type FakePathOptions } from '../helpers/fake-path.ts';

function setup(opts: FakePathOptions[], headOpts: HeadOptions = {}): { head: MultipathHead; paths: FakePath[]; store: FakeStore; reg: MultipathRegistry } {
  const store = new FakeStore();
  const reg = new MultipathRegistry(headOpts);
  const paths = opts.map((o, i) => new FakePath({ name: `p${i + 1}`, store, ...o }));
  let head: MultipathHead | undefined;
  for (const p of paths) head = reg.addPath(p);
  return { head: head!, paths, store, reg };
}

type Recorded = { [K in keyof HeadEvents]: { event: K; arg: HeadEvents[K][0] } }[keyof HeadEvents];

function record(head: MultipathHead): Recorded[] {
  const out: Recorded[] = [];
  for (const event of ['path-up', 'path-down', 'failover-start', 'failover-end', 'no-path'] as const) {
    const listener = (arg: unknown) => {
      out.push({ event, arg } as Recorded);
    };
    (head as unknown as { on(e: string, l: (arg: unknown) => void): void }).on(event, listener);
  }
  return out;
}

describe('decideDisposition (nvme_decide_disposition)', () => {
  it('reduces every outcome to complete / retry / failover from the status alone', () => {
    const c = (s: number) => ({ kind: 'completed' as const, status: s, result: 0 });
    expect(decideDisposition(c(0), 0, 5)).toBe('complete');
    expect(decideDisposition(c(Status.InternalError), 0, 5)).toBe('retry');
    expect(decideDisposition(c(Status.InternalError), 5, 5)).toBe('complete');
    expect(decideDisposition(c(Status.InternalError | DNR), 0, 5)).toBe('complete');
    for (const s of [
      Status.AnaPersistentLoss,
      Status.AnaInaccessible,
      Status.AnaTransition,
      Status.HostPathingError,
      Status.InternalPathError,
      Status.ControllerPathingError,
      Status.AbortedByHost,
    ]) {
      expect(decideDisposition(c(s), 0, 5)).toBe('failover');
    }
    expect(decideDisposition(c(Status.AnaInaccessible | DNR), 0, 5)).toBe('complete');
    expect(decideDisposition(pathError('x', true), 0, 5)).toBe('failover');
    expect(decideDisposition(pathError('x', false), 99, 5)).toBe('failover');
  });
});

describe('multipath failover and retries', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fails over on a path-error outcome without the caller seeing an error', async () => {
    const { head, paths, store } = setup([{}, {}], { policy: 'numa' });
    const events = record(head);
    paths[0]!.script(pathError('transport reset', false));
    const data = await head.read(4, 2);
    expect(data.length).toBe(1024);
    expect(paths[0]!.submitted.length).toBe(1);
    expect(paths[1]!.submitted.length).toBe(1);
    await head.write(4, blocks(2, 0x44));
    expect(store.byteAt(5)).toBe(0x44);
    const st = head.state();
    expect(st.counters).toMatchObject({ ios: 2, requeues: 1, failovers: 1, errors: 0, retries: 0, bytesRead: 1024, bytesWritten: 1024 });
    const names = events.map((e) => e.event);
    expect(names).toContain('failover-start');
    expect(names).toContain('failover-end');
    expect(events.find((e) => e.event === 'failover-start')!.arg).toMatchObject({ from: 'p1', reason: expect.stringContaining('transport reset') });
    expect(events.find((e) => e.event === 'failover-end')!.arg).toMatchObject({ from: 'p1', to: 'p2', durationMs: expect.any(Number) });
  });

  it('fails over on ANA inaccessible (0x302) and resends writes at once (the target did not execute them)', async () => {
    const { head, paths, store } = setup([{}, {}], { policy: 'numa' });
    // p1 has something in flight forever: had the write been fenced, quiesced() would never resolve.
    paths[0]!.hold();
    const stuck = track(head.read(0, 1));
    await settle();
    paths[0]!.hold(false);
    paths[0]!.script(status(Status.AnaInaccessible));
    await head.write(9, blocks(1, 0x99));
    expect(store.writesTo(9).map((w) => w.path)).toEqual(['p2']);
    expect(head.state().counters.fencedWrites).toBe(0);
    expect(stuck.done).toBe(false);
    paths[0]!.release();
    await settle();
    expect(stuck.done).toBe(true);
  });

  it.each([
    ['ANA persistent loss', Status.AnaPersistentLoss],
    ['ANA transition', Status.AnaTransition],
    ['host pathing error', Status.HostPathingError],
  ])('fails over on %s', async (_name, s) => {
    const { head, paths } = setup([{}, {}], { policy: 'numa' });
    paths[0]!.script(status(s));
    await expect(head.read(0, 1)).resolves.toBeInstanceOf(Buffer);
    expect(paths[1]!.submitted.length).toBe(1);
  });

  it('does not go back to a path that just failed until it reports a change (or suspectTimeoutMs passes)', async () => {
    const { head, paths } = setup([{}, {}], { policy: 'numa' });
    paths[0]!.script(pathError('timeout', false));
    await head.read(0, 1);
    await head.read(1, 1);
    await head.read(2, 1);
    expect(paths.map((p) => p.submitted.length)).toEqual([1, 3]);
    expect(head.state().paths[0]!.suspect).toMatch(/timeout/);
    paths[0]!.emit('change'); // e.g. ANA log re-read, still optimized
    await head.read(3, 1);
    expect(paths.map((p) => p.submitted.length)).toEqual([2, 3]);
    paths[0]!.script(status(Status.AnaTransition));
    await head.read(4, 1);
    expect(paths.map((p) => p.submitted.length)).toEqual([3, 4]);
    await vi.advanceTimersByTimeAsync(1000);
    await head.read(5, 1);
    expect(paths.map((p) => p.submitted.length)).toEqual([4, 4]);
  });

  it('retries a generic error on the same path up to 5 times, then succeeds', async () => {
    const { head, paths } = setup([{}, {}], { policy: 'numa' });
    for (let i = 0; i < 5; i++) paths[0]!.script(status(Status.InternalError));
    await head.write(0, blocks(1, 1));
    expect(paths[0]!.submitted.length).toBe(6);
    expect(paths[1]!.submitted.length).toBe(0);
    expect(head.state().counters.retries).toBe(5);
    expect(head.state().counters.errors).toBe(0);
  });

  it('completes with the error after 5 retries (6 attempts)', async () => {
    const { head, paths } = setup([{}, {}], { policy: 'numa' });
    for (let i = 0; i < 6; i++) paths[0]!.script(status(Status.InternalError));
    const err = await head.read(0, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NvmeStatusError);
    expect((err as NvmeStatusError).code).toBe('EIO');
    expect((err as NvmeStatusError).status).toBe(Status.InternalError);
    expect((err as NvmeStatusError).path).toBe('p1');
    expect((err as Error).message).toMatch(/read of 1 block\(s\) at LBA 0 of nvme0n1 failed on p1: InternalError .*after 5 retries/);
    expect(paths[0]!.submitted.length).toBe(6);
    expect(head.state().counters).toMatchObject({ retries: 5, errors: 1 });
  });

  it('honours the maxRetries option', async () => {
    const { head, paths } = setup([{}], { maxRetries: 2 });
    for (let i = 0; i < 3; i++) paths[0]!.script(status(Status.NamespaceNotReady));
    await expect(head.read(0, 1)).rejects.toBeInstanceOf(NvmeStatusError);
    expect(paths[0]!.submitted.length).toBe(3);
  });

  it('completes a DNR error at once, without retry or failover', async () => {
    const { head, paths } = setup([{}, {}]);
    paths[0]!.script(status(Status.InvalidField | DNR));
    const err = (await head.write(0, blocks(1, 1)).catch((e: unknown) => e)) as NvmeStatusError;
    expect(err).toBeInstanceOf(NvmeStatusError);
    expect(err.status).toBe(Status.InvalidField | DNR);
    expect(err.message).toContain('DNR');
    expect(paths[0]!.submitted.length + paths[1]!.submitted.length).toBe(1);
    // Compare failure with DNR likewise.
    await head.write(0, blocks(1, 7));
    await expect(head.compare(0, blocks(1, 8))).rejects.toMatchObject({ status: Status.CompareFailure | DNR });
    await expect(head.compare(0, blocks(1, 7))).resolves.toBeUndefined();
  });

  describe('active-standby failover', () => {
    it('sends setActive to the first live standby and resumes queued I/O only after it completes', async () => {
      const { head, paths } = setup([{}, { state: 'connecting' }, {}], { policy: 'active-standby' });
      const events = record(head);
      await head.read(0, 1);
      expect(head.state().activePath).toBe('p1');
      paths[2]!.holdSetActive();
      paths[0]!.setState('resetting');
      await settle();
      expect(paths.map((p) => p.setActiveCalls)).toEqual([1, 0, 1]); // p2 is not live
      expect(head.state()).toMatchObject({ activePath: null, activating: 'p3', usable: true });
      const w = track(head.write(5, blocks(1, 0x55)));
      const r = track(head.read(6, 1));
      await vi.advanceTimersByTimeAsync(250);
      expect(w.done || r.done).toBe(false);
      expect(paths[2]!.submitted.length).toBe(0);
      paths[2]!.releaseSetActive();
      await settle();
      expect(w.done && r.done).toBe(true);
      expect(w.error ?? r.error).toBeUndefined();
      expect(paths[2]!.submitted.map((io) => io.kind)).toEqual(['write', 'read']);
      expect(head.state().activePath).toBe('p3');
      const start = events.find((e) => e.event === 'failover-start')!;
      const end = events.find((e) => e.event === 'failover-end')!;
      expect(start.arg).toMatchObject({ from: 'p1', reason: 'controller resetting' });
      expect(end.arg).toEqual({ from: 'p1', to: 'p3', durationMs: 250 });
      expect(events.filter((e) => e.event === 'path-down').map((e) => e.arg)).toEqual([{ path: 'p1', reason: 'controller resetting' }]);
      // Sticky: p1 back and live stays standby.
      paths[0]!.setState('live');
      await head.read(7, 1);
      expect(paths[0]!.setActiveCalls).toBe(1);
      expect(head.state().activePath).toBe('p3');
      expect(head.state().counters).toMatchObject({ failovers: 1, activations: 2, errors: 0 });
    });

    it('fails over when I/O on the active path gets a path error, and to the next standby when setActive fails', async () => {
      const { head, paths } = setup([{}, {}, {}], { policy: 'active-standby' });
      await head.read(0, 1);
      paths[1]!.scriptSetActive(status(Status.InternalError));
      paths[0]!.script(pathError('keep-alive timeout', false));
      paths[0]!.controllerState = 'resetting'; // without an event: the path error alone drives the failover
      await expect(head.read(1, 1)).resolves.toBeInstanceOf(Buffer);
      expect(paths.map((p) => p.setActiveCalls)).toEqual([1, 1, 1]);
      expect(head.state().activePath).toBe('p3');
      expect(head.state().paths.find((p) => p.name === 'p2')!.suspect).toMatch(/setActive/);
    });

    it('queues while no standby can be activated and resumes when one comes back', async () => {
      const { head, paths } = setup([{}, {}], { policy: 'active-standby' });
      await head.read(0, 1);
      paths[1]!.setState('connecting');
      paths[0]!.setState('resetting');
      const r = track(head.read(1, 1));
      await vi.advanceTimersByTimeAsync(60_000);
      expect(r.done).toBe(false);
      expect(head.state().usable).toBe(false);
      paths[1]!.setState('live');
      await settle();
      expect(r.done).toBe(true);
      expect(r.error).toBeUndefined();
      expect(head.state().activePath).toBe('p2');
      expect(head.state().counters.noPathMs).toBe(60_000);
    });
  });

  describe('no usable path', () => {
    it('queues I/O (nothing dropped) and completes it when a path comes back', async () => {
      const { head, paths, store } = setup([{}, {}]);
      const events = record(head);
      paths[0]!.setState('resetting');
      paths[1]!.setAna(AnaState.Inaccessible);
      const ios = [track(head.write(1, blocks(1, 0x11))), track(head.read(1, 1)), track(head.flush()), track(head.writeZeroes(2, 1))];
      await vi.advanceTimersByTimeAsync(10 * 60_000);
      expect(ios.some((t) => t.done)).toBe(false);
      expect(head.state()).toMatchObject({ usable: false, queued: 4, noPathForMs: 10 * 60_000 });
      expect(events.filter((e) => e.event === 'no-path').length).toBe(1);
      paths[1]!.setAna(AnaState.NonOptimized);
      await settle();
      expect(ios.every((t) => t.done && t.error === undefined)).toBe(true);
      expect(store.byteAt(1)).toBe(0x11);
      expect(head.state().counters.noPathMs).toBe(10 * 60_000);
      expect(head.state().noPathForMs).toBeNull();
      expect(events.map((e) => e.event)).toEqual(['path-down', 'path-down', 'no-path', 'path-up']);
    });

    it('fails queued I/O with ENOPATH after no_path_timeout, saying how long and why', async () => {
      const { head, paths } = setup([{}], { noPathTimeoutMs: 5000 });
      paths[0]!.setState('resetting');
      await vi.advanceTimersByTimeAsync(1000);
      const r = track(head.read(0, 1));
      await vi.advanceTimersByTimeAsync(3999);
      expect(r.done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(r.done).toBe(true);
      expect(r.error).toBeInstanceOf(NoPathError);
      const err = r.error as NoPathError;
      expect(err.code).toBe('ENOPATH');
      expect(err.waitedMs).toBe(4000);
      expect(err.message).toMatch(
        /nvme0n1: I\/O failed after waiting 4000 ms for a path: no usable path within no_path_timeout \(no_path_timeout 5000 ms; paths: p1 controller resetting\)/,
      );
      // Still no path: new I/O fails at once.
      await expect(head.read(0, 1)).rejects.toMatchObject({ code: 'ENOPATH' });
      // A path back: I/O flows again.
      paths[0]!.setState('live');
      await expect(head.read(0, 1)).resolves.toBeInstanceOf(Buffer);
      expect(head.state().counters.errors).toBe(2);
    });

    it('by default waits until every path is removed, then fails with ENOPATH', async () => {
      const { head, paths } = setup([{}, {}]);
      paths[0]!.setState('connecting');
      paths[1]!.setState('connecting');
      const r = track(head.write(0, blocks(1, 1)));
      await vi.advanceTimersByTimeAsync(24 * 3600_000);
      expect(r.done).toBe(false);
      paths[0]!.remove();
      await settle();
      expect(r.done).toBe(false);
      paths[1]!.remove();
      await settle();
      expect(r.error).toBeInstanceOf(NoPathError);
      expect((r.error as NoPathError).reason).toBe('all-paths-removed');
      expect((r.error as Error).message).toMatch(/every path was removed/);
    });
  });

  describe('anti-flap (failover_interval)', () => {
    it('does not choose a recently demoted path unless it is the only usable one', async () => {
      const { head, paths } = setup([{}, {}], { policy: 'numa', failoverIntervalMs: 60_000 });
      paths[0]!.script(pathError('reset', false));
      await head.read(0, 1);
      paths[0]!.emit('change'); // back and healthy
      await head.read(1, 1);
      expect(paths.map((p) => p.submitted.length)).toEqual([1, 2]);
      await vi.advanceTimersByTimeAsync(30_000);
      await head.read(2, 1);
      expect(paths.map((p) => p.submitted.length)).toEqual([1, 3]);
      // p2 goes away: p1 is the only usable one, so it is used despite the interval.
      paths[1]!.setState('resetting');
      await head.read(3, 1);
      expect(paths.map((p) => p.submitted.length)).toEqual([2, 3]);
      paths[1]!.setState('live'); // p2 was demoted just now by going down
      await head.read(4, 1);
      expect(paths.map((p) => p.submitted.length)).toEqual([3, 3]);
      await vi.advanceTimersByTimeAsync(60_000);
      await head.read(5, 1);
      expect(paths.map((p) => p.submitted.length)).toEqual([4, 3]); // numa: first optimized again
    });

    it("active-standby: a path taken over by another activation is not taken back while the new one's ANA report is late", async () => {
      const { head, paths } = setup([{}, {}], { policy: 'active-standby' });
      await head.read(0, 1);
      expect(paths.map((p) => p.setActiveCalls)).toEqual([1, 0]);
      // Someone else activates the other path, three times back and forth. Only the
      // old active path's report arrives at first: the new one still reads
      // inaccessible (its ANA change event is late), as do both.
      const expected = [
        { victim: 0, next: 1, calls: [1, 1] },
        { victim: 1, next: 0, calls: [2, 1] },
        { victim: 0, next: 1, calls: [2, 2] },
      ];
      for (const [i, step] of expected.entries()) {
        paths[step.victim]!.setAna(AnaState.Inaccessible);
        await head.read(i + 1, 1);
        expect(head.state().activePath, `takeover ${i + 1}`).toBe(`p${step.next + 1}`);
        // 0xFE went to the new active path (harmless: it is active already), never back to the one just taken over.
        expect(
          paths.map((p) => p.setActiveCalls),
          `takeover ${i + 1}`,
        ).toEqual(step.calls);
      }
    });

    it('active-standby: does not fail back to a recently demoted path', async () => {
      const { head, paths } = setup([{}, {}, {}], { policy: 'active-standby', failoverIntervalMs: 60_000 });
      await head.read(0, 1);
      paths[0]!.setState('resetting');
      await head.read(1, 1);
      expect(head.state().activePath).toBe('p2');
      paths[0]!.setState('live');
      paths[1]!.setState('resetting');
      await head.read(2, 1);
      expect(head.state().activePath).toBe('p3'); // not p1, demoted less than 60 s ago
      paths[2]!.setState('resetting');
      await head.read(3, 1);
      expect(head.state().activePath).toBe('p1'); // the only one left
    });
  });

  it('validates arguments before anything is submitted', async () => {
    const { head, paths } = setup([{ nblocks: 100 }]);
    const code = async (p: Promise<unknown>) => ((await p.catch((e: unknown) => e)) as MultipathError).code;
    expect(await code(head.read(-1, 1))).toBe('EINVAL');
    expect(await code(head.read(1.5, 1))).toBe('EINVAL');
    expect(await code(head.read(0, 0))).toBe('EINVAL');
    expect(await code(head.read(99, 2))).toBe('ERANGE');
    expect(await code(head.write(0, Buffer.alloc(100)))).toBe('EINVAL');
    expect(await code(head.write(0, Buffer.alloc(0)))).toBe('EINVAL');
    expect(await code(head.write(0, 'abc' as unknown as Buffer))).toBe('EINVAL');
    expect(await code(head.write(100, blocks(1, 1)))).toBe('ERANGE');
    expect(await code(head.compare(99, blocks(2, 1)))).toBe('ERANGE');
    expect(await code(head.writeZeroes(0, 101))).toBe('ERANGE');
    expect(await code(head.deallocate(50, 51))).toBe('ERANGE');
    await expect(head.read(99, 2)).rejects.toThrow(/blocks 99\.\.100 are beyond the end of nvme0n1 \(100 blocks of 512 bytes\)/);
    await expect(head.write(0, Buffer.alloc(100))).rejects.toThrow(/data length 100 is not a positive multiple of the block size 512/);
    expect(paths[0]!.submitted.length).toBe(0);
    expect(head.state().counters.ios).toBe(0);
    await expect(head.read(99, 1)).resolves.toBeInstanceOf(Buffer);
  });

  it('splits large transfers by maxTransferBytes and reassembles reads', async () => {
    const { head, paths, store } = setup([{}], { maxTransferBytes: 2048 });
    const data = Buffer.alloc(10 * 512);
    for (let i = 0; i < 10; i++) data.fill(i + 1, i * 512, (i + 1) * 512);
    await head.write(10, data);
    expect(paths[0]!.submitted.map((io) => [io.slba, io.nlb])).toEqual([
      [10, 4],
      [14, 4],
      [18, 2],
    ]);
    expect(store.byteAt(19)).toBe(10);
    expect((await head.read(10, 10)).equals(data)).toBe(true);
  });

  it('counts, reports per-path state, logs structured events, and closes', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        cb();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    const { head, paths } = setup([{}, { ana: AnaState.NonOptimized }], { logger });
    await head.write(0, blocks(4, 1));
    await head.read(0, 2);
    paths[0]!.script(pathError('reset', false));
    await head.read(0, 1);
    paths[0]!.setState('resetting');
    paths[1]!.setState('resetting');
    const queued = track(head.read(0, 1));
    await vi.advanceTimersByTimeAsync(1500);
    const st = head.state();
    expect(JSON.parse(JSON.stringify(st))).toEqual(st);
    expect(st).toMatchObject({
      name: 'nvme0n1',
      policy: 'queue-depth',
      usable: false,
      queued: 1,
      noPathForMs: 1500,
      counters: { ios: 4, bytesRead: 1536, bytesWritten: 2048, failovers: 1, requeues: 1, retries: 0, errors: 0, noPathMs: 1500 },
    });
    expect(st.paths[0]).toMatchObject({ name: 'p1', state: 'resetting', ana: 'optimized', active: false, usable: false, inflight: 0, ios: 3, errors: 1 });
    expect(st.paths[1]).toMatchObject({ name: 'p2', state: 'resetting', ana: 'non-optimized', ios: 1 });
    const msgs = lines.map((l) => l['msg']);
    expect(msgs).toEqual(expect.arrayContaining(['path joined', 'path up', 'failover start', 'failover end', 'path down', 'no usable path: queueing I/O']));
    expect(lines.find((l) => l['msg'] === 'failover end')).toMatchObject({ head: 'nvme0n1', from: 'p1', to: 'p2', durationMs: 0 });
    await head.close();
    await settle();
    expect(queued.error).toBeInstanceOf(MultipathError);
    expect((queued.error as MultipathError).code).toBe('ECLOSED');
    await expect(head.read(0, 1)).rejects.toMatchObject({ code: 'ECLOSED' });
    expect(paths[0]!.listenerCount('change')).toBe(0);
  });
});
