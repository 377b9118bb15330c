/** Target state machines without sockets: cntlid allocation, AER masking, fencing drain. */
import { describe, expect, it } from 'vitest';
import { Controller } from '../../target/controller.ts';
import { Namespace } from '../../target/namespace.ts';
import { Port } from '../../target/port.ts';
import { ReqState, RequestStateError, isAbortable, moveTo } from '../../target/req-state.ts';
import { Subsystem } from '../../target/subsystem.ts';
import { silentLogger } from '../../target/logger.ts';
import { testConfig } from '../helpers/target-fixture.ts';
import { openStore } from '../../target/store/index.ts';
import { AerResultValue, AsyncEventConfigBit } from '../../shared/features.ts';
import { AnaState, LogPageId } from '../../shared/log-pages.ts';

function subsystem(edit?: (doc: Record<string, any>) => void): Subsystem {
  return new Subsystem(testConfig(edit).subsystems[0]!);
}

function controller(subsys: Subsystem, port: Port, cntlid = 1): Controller {
  return new Controller({
    cntlid,
    kind: 'io',
    subsystem: subsys,
    discovery: null,
    port,
    hostnqn: 'nqn.test:host',
    hostid: Buffer.alloc(16),
    katoMs: 0,
    maxIoQueues: 4,
    mqes: 1023,
    log: silentLogger,
    onGone: () => undefined,
  });
}

describe('cntlid allocation', () => {
  it('is cyclic within the configured range and never hands out a live id', () => {
    const s = subsystem((d) => {
      d.subsystems[0].attr = { ...d.subsystems[0].attr, cntlid_min: '5', cntlid_max: '7' };
    });
    const port = new Port(testConfig().ports[0]!);
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const id = s.allocateCntlid()!;
      ids.push(id);
      s.controllers.set(id, controller(s, port, id));
    }
    expect(ids).toEqual([5, 6, 7]);
    expect(s.allocateCntlid()).toBeNull();
    s.controllers.delete(6);
    expect(s.allocateCntlid()).toBe(6);
  });
});

describe('asynchronous events', () => {
  it('delivers only enabled events, masks a log until it is read without RAE, queues without an AER', async () => {
    const s = subsystem();
    const port = new Port(testConfig().ports[0]!);
    const c = controller(s, port);
    expect(c.raiseEvent('ana-change')).toBe(false); // not enabled
    c.aec = AsyncEventConfigBit.AnaChange | AsyncEventConfigBit.NamespaceAttribute;
    const aer = c.parkAer() as Promise<{ status: number; result?: number }>;
    expect(c.raiseEvent('ana-change')).toBe(true);
    expect((await aer).result).toBe(AerResultValue.AnaChange);
    expect(c.raiseEvent('ana-change')).toBe(false); // masked
    c.logRead(LogPageId.Ana, true); // RAE keeps the mask
    expect(c.raiseEvent('ana-change')).toBe(false);
    c.logRead(LogPageId.Ana, false);
    expect(c.raiseEvent('ana-change')).toBe(true); // no AER parked: pending
    const next = c.parkAer();
    expect(next).toMatchObject({ status: 0, result: AerResultValue.AnaChange });
    for (let i = 0; i < 4; i++) void c.parkAer();
    expect(c.parkAer()).toMatchObject({ status: expect.any(Number) });
    expect(c.outstandingAers).toBe(4);
    c.destroy('test');
  });
});

describe('fencing drain', () => {
  it('waits only for the operations of the ports it is asked about', async () => {
    const store = await openStore({ kind: 'memory', blockSize: 512, sizeBytes: 1 << 20 });
    const ns = new Namespace({ nsid: 1, identity: { nguid: Buffer.alloc(16), uuid: Buffer.alloc(16), eui64: Buffer.alloc(8) }, store, anagrpid: 1 });
    let release!: () => void;
    const slow = ns.execute(1, () => new Promise<void>((r) => (release = r)));
    expect(ns.executingOn(1)).toBe(1);
    let drained = false;
    const d = ns.drain((p) => p !== 2).then(() => (drained = true));
    await ns.drain((p) => p === 2); // nothing on port 2: immediate
    await new Promise((r) => setTimeout(r, 10));
    expect(drained).toBe(false);
    release();
    await slow;
    await d;
    expect(drained).toBe(true);
    expect(ns.executingOn(1)).toBe(0);
  });
});

describe('ANA state per port', () => {
  it('active-standby derives states from the active port; a transition reports change', () => {
    const s = subsystem();
    const cfg = testConfig();
    const p1 = new Port(cfg.ports[0]!);
    const p2 = new Port(cfg.ports[1]!);
    s.activePort.set(1, p1.portid);
    expect(s.anaState(p1, 1)).toBe(AnaState.Optimized);
    expect(s.anaState(p2, 1)).toBe(AnaState.Inaccessible);
    p2.transitions.set(1, { to: AnaState.Optimized, timer: setTimeout(() => undefined, 0) });
    expect(s.anaState(p2, 1)).toBe(AnaState.Change);
  });
});

describe('per-command state (req-state.ts)', () => {
  const cmd = (state: ReqState) => ({ state, sqe: { cid: 7 } });

  it('a command moves along its life, and refusals go straight to Completing', () => {
    const c = cmd(ReqState.New);
    for (const to of [
      ReqState.AwaitingR2TBudget,
      ReqState.TransferringHostToController,
      ReqState.ReadyToExecute,
      ReqState.Executing,
      ReqState.Completing,
      ReqState.Completed,
    ]) {
      moveTo(c, to);
      expect(c.state).toBe(to);
    }
    const refused = cmd(ReqState.New);
    moveTo(refused, ReqState.Completing);
    moveTo(refused, ReqState.Draining);
    moveTo(refused, ReqState.Completed);
    expect(refused.state).toBe(ReqState.Completed);
  });

  it('an impossible move throws in test builds, naming both states and the cid', () => {
    expect(() => moveTo(cmd(ReqState.Completed), ReqState.Executing)).toThrow(RequestStateError);
    expect(() => moveTo(cmd(ReqState.Executing), ReqState.ReadyToExecute)).toThrow(/cid 7: no transition Executing -> ReadyToExecute/);
    expect(() => moveTo(cmd(ReqState.New), ReqState.Executing)).toThrow(/New -> Executing/);
  });

  it('Abort takes a command only before its handler starts', () => {
    expect(isAbortable(ReqState.AwaitingR2TBudget)).toBe(true);
    expect(isAbortable(ReqState.TransferringHostToController)).toBe(true);
    expect(isAbortable(ReqState.Executing)).toBe(false);
    expect(isAbortable(ReqState.Completing)).toBe(false);
  });
});
