/**
 * Active-standby (the default config: port 1 active, implicit promotion):
 * the vendor commands 0xFE / 0xFC, the ANA view of the active path, fencing
 * of the old path, implicit and explicit promotion, and persistence.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Cns } from '../../shared/identify.ts';
import { AnaState } from '../../shared/log-pages.ts';
import { PduType, encodeH2CData } from '../../shared/pdu.ts';
import { getPersistentNsIdCommand, readCommand, setNamespaceActiveCommand, sqe, writeCommand } from '../../shared/sqe.ts';
import { Status } from '../../shared/status.ts';
import { AdminOpcode } from '../../shared/opcodes.ts';
import type { TargetConfig } from '../../target/config/index.ts';
import type { TargetOptions } from '../../target/target.ts';
import { RawClient, patternBlocks } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import {
  PendingAer,
  Resources,
  anaLog,
  anaStateOf,
  connectPair,
  dnr,
  enableAec,
  identifyData,
  roundTrip,
  sc,
  waitFor,
  type Pair,
} from '../helpers/nvme-ops.ts';
import { holdNextWrite } from '../helpers/slow-store.ts';

const res = new Resources();
afterEach(() => res.cleanup());

async function start(config: TargetConfig = testConfig(), opts: TargetOptions = {}) {
  const t = await startTarget(config, opts);
  res.targets.push(t.target);
  return t;
}

async function readStatus(p: Pair, nsid = 1): Promise<number> {
  return (await p.io.command(readCommand(nsid, 0, 1, 512))).cqe.status;
}

async function withAer(p: Pair): Promise<PendingAer> {
  await enableAec(p.admin, 1 << 11);
  const aer = new PendingAer(p.admin);
  await roundTrip(p.admin);
  return aer;
}

function activePortOf(target: { snapshot(): any }): number[] {
  return target
    .snapshot()
    .subsystems[0].paths.filter((p: any) => p.active)
    .map((p: any) => p.portid);
}

describe('active-standby paths', () => {
  it('port 1 is optimized, port 2 inaccessible; I/O through port 2 fails with 0x302', async () => {
    const { target, ports } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    const b = await connectPair(res, ports[1]!, SUBNQN);
    const la = await anaLog(a.admin);
    const lb = await anaLog(b.admin);
    expect(la.groups).toHaveLength(1);
    expect(la.groups[0]!.anagrpid).toBe(1);
    expect(la.groups[0]!.state).toBe(AnaState.Optimized);
    expect(la.groups[0]!.nsids).toEqual([1]);
    expect(lb.groups[0]!.state).toBe(AnaState.Inaccessible);
    expect(lb.groups[0]!.nsids).toEqual([1]);
    expect(la.chgcnt).toBe(lb.chgcnt);

    const data = patternBlocks(0, 1, 512);
    expect((await a.io.command(writeCommand(1, 0, 1, 512, true), { data })).cqe.status).toBe(0);
    const r = await b.io.command(readCommand(1, 0, 1, 512));
    expect(r.cqe.status).toBe(0x302);
    expect(dnr(r)).toBe(false);
    const w = await b.io.command(writeCommand(1, 0, 1, 512, true), { data: patternBlocks(0, 1, 512, 2) });
    expect(w.cqe.status).toBe(0x302);
    expect((await a.io.command(readCommand(1, 0, 1, 512))).data.equals(data)).toBe(true);
    expect(activePortOf(target)).toEqual([1]);
  });

  it('0xFE through port 2 makes it active, with ANA events on both ports', async () => {
    const { target, ports } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    const b = await connectPair(res, ports[1]!, SUBNQN);
    const aerA = await withAer(a);
    const aerB = await withAer(b);
    const before = await anaLog(b.admin);

    const fe = await b.admin.command(setNamespaceActiveCommand(1));
    expect(fe.cqe.status).toBe(0);
    expect(await aerA.dw0()).toBe(0x000c0302);
    expect(await aerB.dw0()).toBe(0x000c0302);
    const lb = await anaLog(b.admin);
    expect(lb.groups[0]!.state).toBe(AnaState.Optimized);
    expect(lb.chgcnt).toBeGreaterThan(before.chgcnt);
    expect(await anaStateOf(a.admin, 1)).toBe(AnaState.Inaccessible);
    expect(await readStatus(b)).toBe(0);
    expect(await readStatus(a)).toBe(0x302);
    expect(activePortOf(target)).toEqual([2]);

    // And back, through port 1; 0xFE on the already active path is a no-op success.
    expect((await a.admin.command(setNamespaceActiveCommand(1))).cqe.status).toBe(0);
    expect((await a.admin.command(setNamespaceActiveCommand(1))).cqe.status).toBe(0);
    expect(await readStatus(a)).toBe(0);
    expect(await readStatus(b)).toBe(0x302);
    expect(activePortOf(target)).toEqual([1]);
  });

  it('0xFE with non-zero CDW10-15 is Invalid Field, for an unknown NSID Invalid Namespace; nothing moves', async () => {
    const { target, ports } = await start();
    const b = await connectPair(res, ports[1]!, SUBNQN);
    for (const field of ['cdw10', 'cdw11', 'cdw15'] as const) {
      const r = await b.admin.command({ ...setNamespaceActiveCommand(1), [field]: 1 });
      expect(sc(r), field).toBe(Status.InvalidField);
      expect(dnr(r)).toBe(true);
    }
    for (const nsid of [0, 2, 0xffffffff]) {
      const r = await b.admin.command(setNamespaceActiveCommand(nsid));
      expect(sc(r), `nsid ${nsid}`).toBe(Status.InvalidNamespaceOrFormat);
    }
    expect(await anaStateOf(b.admin, 1)).toBe(AnaState.Inaccessible);
    expect(activePortOf(target)).toEqual([1]);
    // The opcode is accepted without data although bits 1:0 say "bidirectional".
    expect(AdminOpcode.SetNamespaceActive & 3).toBe(2);
  });

  it('0xFC returns the NGUID in bytes 0-15 of 1024, the same on every path', async () => {
    const { ports } = await start();
    const a = res.track(await RawClient.admin(ports[0]!, { subnqn: SUBNQN }));
    const b = res.track(await RawClient.admin(ports[1]!, { subnqn: SUBNQN }));
    const nguid = (await identifyData(a, Cns.Namespace, 1)).subarray(104, 120);
    expect(nguid.equals(Buffer.alloc(16))).toBe(false);
    for (const c of [a, b]) {
      const r = await c.command(getPersistentNsIdCommand(1));
      expect(r.cqe.status).toBe(0);
      expect(r.data.length).toBe(1024);
      expect(r.data.subarray(0, 16).equals(nguid)).toBe(true);
      expect(r.data.subarray(16).equals(Buffer.alloc(1008))).toBe(true);
    }
    expect(sc(await a.command(getPersistentNsIdCommand(7)))).toBe(Status.InvalidNamespaceOrFormat);
    // Without a data buffer: refused, not a crash.
    const noData = await a.command(sqe({ opcode: AdminOpcode.GetPersistentNsId, nsid: 1 }));
    expect(sc(noData)).toBe(Status.DataSglLengthInvalid);
  });
});

describe('fencing', () => {
  it("0xFE completes only after the old path's executing write landed; later old-path writes fail; the new path writes last", async () => {
    const { target, ports } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    const b = await connectPair(res, ports[1]!, SUBNQN);
    const ns = target.subsystems.get(SUBNQN)!.namespaces.get(1)!;
    // A slow store: the first write stays in the store until the test opens the gate.
    const hold = holdNextWrite(ns.store);

    const LBA = 100;
    const gen1 = patternBlocks(LBA, 8, 512, 1);
    const w1 = a.io.command(writeCommand(1, LBA, 8, gen1.length, true), { data: gen1 });
    await waitFor(() => ns.executingOn(1) === 1, 'the port 1 write to be executing');

    let feDone = false;
    let landedWhenFeDone: boolean | null = null;
    const fe = b.admin.command(setNamespaceActiveCommand(1)).then((r) => {
      feDone = true;
      landedWhenFeDone = hold.landed;
      return r;
    });
    await roundTrip(b.admin); // 0xFE has been received and is fencing
    expect(feDone).toBe(false);

    // The old path is demoted at once: a write sent there now fails with a path error.
    const gen2 = patternBlocks(LBA, 8, 512, 2);
    const late = await a.io.command(writeCommand(1, LBA, 8, gen2.length, true), { data: gen2 });
    expect(late.cqe.status).toBe(0x302);
    expect(dnr(late)).toBe(false);
    // The new path reports the transition until fencing ends.
    expect(await anaStateOf(b.admin, 1)).toBe(AnaState.Change);
    expect(await anaStateOf(a.admin, 1)).toBe(AnaState.Inaccessible);
    expect(await readStatus(b)).toBe(0x303);
    await roundTrip(b.admin);
    expect(feDone).toBe(false);

    hold.open();
    const r1 = await w1;
    expect(r1.cqe.status).toBe(0);
    const rfe = await fe;
    expect(rfe.cqe.status).toBe(0);
    expect(landedWhenFeDone).toBe(true);

    const gen3 = patternBlocks(LBA, 8, 512, 3);
    expect((await b.io.command(writeCommand(1, LBA, 8, gen3.length, true), { data: gen3 })).cqe.status).toBe(0);
    const back = await b.io.command(readCommand(1, LBA, 8, gen3.length));
    expect(back.cqe.status).toBe(0);
    expect(back.data.equals(gen3)).toBe(true);
    expect(await anaStateOf(b.admin, 1)).toBe(AnaState.Optimized);
  });

  it('an R2T write on the old path whose data arrives after 0xFE fails with 0x302 and changes nothing', async () => {
    const { ports } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    const b = await connectPair(res, ports[1]!, SUBNQN);
    const LBA = 300;
    const gen1 = patternBlocks(LBA, 64, 512, 1);
    expect((await a.io.command(writeCommand(1, LBA, 64, gen1.length, false), { data: gen1 })).cqe.status).toBe(0);

    // Sent without data: the client leaves the R2T to the test.
    const gen2 = patternBlocks(LBA, 64, 512, 2);
    const pending = a.io.command(writeCommand(1, LBA, 64, gen2.length, false));
    const r2t = await a.io.nextUnclaimed();
    expect(r2t.type).toBe(PduType.R2T);
    if (r2t.type !== PduType.R2T) return;
    expect(r2t.r2tl).toBe(gen2.length);

    expect((await b.admin.command(setNamespaceActiveCommand(1))).cqe.status).toBe(0);
    a.io.sendPdu(encodeH2CData({ cccid: r2t.cccid, ttag: r2t.ttag, datao: 0, last: true }, gen2, a.io.wire));
    const r = await pending;
    expect(r.cqe.status).toBe(0x302);
    expect(dnr(r)).toBe(false);
    const back = await b.io.command(readCommand(1, LBA, 64, gen1.length));
    expect(back.data.equals(gen1)).toBe(true);
  });
});

describe('promotion', () => {
  it('implicit: when every controller of port 1 is gone, port 2 becomes optimized without 0xFE', async () => {
    const { target, ports } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    const a2 = res.track(await RawClient.admin(ports[0]!, { subnqn: SUBNQN }));
    const b = await connectPair(res, ports[1]!, SUBNQN);
    const aer = await withAer(b);
    expect(await readStatus(b)).toBe(0x302);

    a.io.close();
    a.admin.close();
    await waitFor(() => target.subsystems.get(SUBNQN)!.controllers.size === 2, 'the first port-1 controller to go');
    await roundTrip(b.admin);
    expect(aer.done).toBe(false); // one controller is still on port 1
    expect(await anaStateOf(b.admin, 1)).toBe(AnaState.Inaccessible);

    a2.close();
    expect(await aer.dw0()).toBe(0x000c0302);
    await waitFor(async () => (await anaStateOf(b.admin, 1)) === AnaState.Optimized, 'port 2 optimized');
    expect(await readStatus(b)).toBe(0);
    expect(activePortOf(target)).toEqual([2]);
    // A new controller on port 1 is standby: no fail-back.
    const c = await connectPair(res, ports[0]!, SUBNQN);
    expect(await anaStateOf(c.admin, 1)).toBe(AnaState.Inaccessible);
    expect(await readStatus(c)).toBe(0x302);
  });

  it("explicit: closing port 1's controllers leaves port 2 inaccessible; only 0xFE moves the path", async () => {
    const { target, ports } = await start(
      testConfig((doc) => {
        doc['subsystems'][0].ext.promotion = 'explicit';
      }),
    );
    const a = await connectPair(res, ports[0]!, SUBNQN);
    const b = await connectPair(res, ports[1]!, SUBNQN);
    const aer = await withAer(b);
    a.io.close();
    a.admin.close();
    await waitFor(() => target.subsystems.get(SUBNQN)!.controllers.size === 1, 'port 1 controller gone');
    await new Promise((r) => setTimeout(r, 20));
    await roundTrip(b.admin);
    expect(aer.done).toBe(false);
    expect(await anaStateOf(b.admin, 1)).toBe(AnaState.Inaccessible);
    expect(await readStatus(b)).toBe(0x302);
    expect(activePortOf(target)).toEqual([1]);
    // The choice survives a reconnect on port 1.
    const a2 = await connectPair(res, ports[0]!, SUBNQN);
    expect(await readStatus(a2)).toBe(0);
    // 0xFE moves it.
    expect((await b.admin.command(setNamespaceActiveCommand(1))).cqe.status).toBe(0);
    expect(await aer.dw0()).toBe(0x000c0302);
    expect(await readStatus(b)).toBe(0);
    expect(await readStatus(a2)).toBe(0x302);
  });

  it('port 1 down with a controller on port 2 (none on port 1) promotes port 2', async () => {
    const { target, ports } = await start();
    const b = await connectPair(res, ports[1]!, SUBNQN);
    const aer = await withAer(b);
    await target.portDown(1);
    expect(await aer.dw0()).toBe(0x000c0302);
    await waitFor(async () => (await anaStateOf(b.admin, 1)) === AnaState.Optimized, 'port 2 optimized');
    expect(await readStatus(b)).toBe(0);
  });

  it("port 1 down with controllers on both ports: port 1's are dropped, port 2 promoted, no fail-back on port up", async () => {
    const { target, ports } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    const b = await connectPair(res, ports[1]!, SUBNQN);
    const aer = await withAer(b);
    await target.portDown(1);
    await a.admin.waitClosed();
    await a.io.waitClosed();
    expect(await aer.dw0()).toBe(0x000c0302);
    await waitFor(async () => (await anaStateOf(b.admin, 1)) === AnaState.Optimized, 'port 2 optimized');
    expect(await readStatus(b)).toBe(0);
    await target.portUp(1);
    const c = await connectPair(res, ports[0]!, SUBNQN);
    expect(await readStatus(c)).toBe(0x302);
    expect(await readStatus(b)).toBe(0);
  });

  it('port 1 down with no controller anywhere: the first controller to connect takes the group', async () => {
    const { target, ports } = await start();
    await target.portDown(1);
    const b = await connectPair(res, ports[1]!, SUBNQN);
    await waitFor(async () => (await anaStateOf(b.admin, 1)) === AnaState.Optimized, 'port 2 optimized');
    expect(await readStatus(b)).toBe(0);
  });

  it('persist_active: a new target on the same config and state dir restores the active port', async () => {
    const stateDir = await res.tmpdir();
    const edit = (doc: Record<string, any>) => {
      doc['subsystems'][0].ext.persist_active = true;
    };
    const first = await start(testConfig(edit), { stateDir });
    const b = await connectPair(res, first.ports[1]!, SUBNQN);
    expect((await b.admin.command(setNamespaceActiveCommand(1))).cqe.status).toBe(0);
    b.io.close();
    b.admin.close();
    await first.target.stop();

    const second = await start(testConfig(edit), { stateDir });
    expect(activePortOf(second.target)).toEqual([2]);
    const b2 = await connectPair(res, second.ports[1]!, SUBNQN);
    const a2 = await connectPair(res, second.ports[0]!, SUBNQN);
    expect(await anaStateOf(b2.admin, 1)).toBe(AnaState.Optimized);
    expect(await anaStateOf(a2.admin, 1)).toBe(AnaState.Inaccessible);
    expect(await readStatus(b2)).toBe(0);
    expect(await readStatus(a2)).toBe(0x302);

    // Without persist_active the same state dir is ignored: back to the configured port.
    const third = await start(testConfig(), { stateDir });
    expect(activePortOf(third.target)).toEqual([1]);
  });
});
