/**
 * Time in the host goes through the Clock handed in, not through globals: a
 * head given a ManualClock times its no-path episode, its suspect hold-out
 * and its anti-flap on that clock alone (no fake timers installed), and the
 * queue's command-state table allows exactly the documented transitions.
 */
import { describe, expect, it } from 'vitest';
import { CmdState, canCmdTransition } from '../../host/tcp-queue.ts';
import { MultipathRegistry, NoPathError } from '../../host/multipath/index.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { FakePath, FakeStore, blocks, pathError, settle, track } from '../helpers/fake-path.ts';

describe('the head on an injected clock', () => {
  it('no_path_timeout runs on the head clock, not on real time', async () => {
    const clock = new ManualClock();
    const store = new FakeStore();
    const p1 = new FakePath({ name: 'p1', store });
    const head = new MultipathRegistry({ noPathTimeoutMs: 5000, clock }).addPath(p1);
    p1.setState('resetting');
    await clock.advance(1000);
    const r = track(head.read(0, 1));
    await settle();
    // Real time passes, the head's clock does not: nothing fails.
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(r.done).toBe(false);
    expect(head.state().noPathForMs).toBe(1000);
    await clock.advance(3999);
    expect(r.done).toBe(false);
    await clock.advance(1);
    expect(r.error).toBeInstanceOf(NoPathError);
    expect((r.error as NoPathError).waitedMs).toBe(4000);
    await head.close();
  });

  it('a path held out after a failure comes back after suspectTimeoutMs of the head clock', async () => {
    const clock = new ManualClock();
    const store = new FakeStore();
    const p1 = new FakePath({ name: 'p1', store });
    const p2 = new FakePath({ name: 'p2', store });
    const reg = new MultipathRegistry({ policy: 'round-robin', suspectTimeoutMs: 2000, clock });
    reg.addPath(p1);
    const head = reg.addPath(p2);
    p1.script(pathError('connection reset', false));
    await head.write(0, blocks(1, 0x22));
    expect(head.state().paths.find((p) => p.name === 'p1')!.suspect).toMatch(/connection reset/);
    await clock.advance(1999);
    expect(head.state().paths.find((p) => p.name === 'p1')!.suspect).toMatch(/connection reset/);
    await clock.advance(1);
    expect(head.state().paths.find((p) => p.name === 'p1')!.suspect).toBeNull();
    expect(head.state().paths.find((p) => p.name === 'p1')!.demotedAgoMs).toBe(2000);
    await head.close();
  });
});

describe('host queue command states', () => {
  it('a command leaves Free for exactly one busy state and goes back to Free only', () => {
    const busy = [CmdState.AwaitingResponse, CmdState.SendingData, CmdState.ReceivingData];
    for (const s of busy) {
      expect(canCmdTransition(CmdState.Free, s)).toBe(true);
      expect(canCmdTransition(s, CmdState.Free)).toBe(true);
      for (const t of busy) expect(canCmdTransition(s, t)).toBe(false);
    }
    expect(canCmdTransition(CmdState.Free, CmdState.Free)).toBe(false);
  });
});
