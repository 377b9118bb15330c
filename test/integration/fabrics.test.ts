/**
 * NVMe over Fabrics command conformance of the target: Connect on the admin
 * and I/O queues (controller ids, parameter checks with IATTR/IPO, host
 * access), command sequencing before Connect and before CC.EN, and Property
 * Get/Set with the enable and shutdown handshakes.
 *
 * Expected values are spelled out as numbers from the specifications (status
 * SCT << 8 | SC, DNR 0x4000; Connect IPO offsets; CAP bit positions), not
 * taken from the code under test.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Cns } from '../../shared/identify.ts';
import { encodeConnectData } from '../../shared/fabrics.ts';
import { connectCommand, identifyCommand, propertyGetCommand, propertySetCommand, readCommand, setFeaturesCommand, writeCommand } from '../../shared/sqe.ts';
import { RawClient, TEST_HOSTNQN, patternBlocks, type CommandResult } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import type { Target } from '../../target/target.ts';
import { waitFor } from '../helpers/wait.ts';

const DNR = 0x4000;
const S = {
  InvalidOpcode: 0x001,
  InvalidField: 0x002,
  CommandSequenceError: 0x00c,
  ConnectIncompatibleFormat: 0x180,
  ConnectControllerBusy: 0x181,
  ConnectInvalidParameters: 0x182,
  ConnectInvalidHost: 0x184,
} as const;
const P = { CAP: 0x00, VS: 0x08, CC: 0x14, CSTS: 0x1c } as const;
/** CC: EN bit 0, CSS 6:4, MPS 10:7, SHN 15:14, IOSQES 19:16, IOCQES 23:20. */
const cc = (o: { en: boolean; shn?: number; iosqes?: number; iocqes?: number }) =>
  ((o.en ? 1 : 0) | ((o.shn ?? 0) << 14) | ((o.iosqes ?? 6) << 16) | ((o.iocqes ?? 4) << 20)) >>> 0;
/** Connect Invalid Parameters DW0: IATTR (bit 16: 1 = in the data) and IPO (15:0). */
const ipo = (inData: boolean, offset: number) => ((inData ? 1 : 0) << 16) | offset;
const HOSTID = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

let target: Target | null = null;
const clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await target?.stop();
  target = null;
});

async function boot(edit?: (doc: Record<string, any>) => void): Promise<number[]> {
  const t = await startTarget(
    testConfig((doc) => {
      doc['subsystems'][0].ext = { mode: 'ana' };
      for (const p of doc['ports']) p.ana_groups = [{ grpid: 1, ana: { state: 'optimized' } }];
      edit?.(doc);
    }),
  );
  target = t.target;
  return t.ports;
}

/** A connection past ICReq, not yet connected. */
async function fresh(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  clients.push(c);
  await c.initialize();
  return c;
}

async function admin(port: number, opts: { hostnqn?: string; enable?: boolean } = {}): Promise<RawClient> {
  const c = await RawClient.admin(port, { subnqn: SUBNQN, kato: 0, ...opts });
  clients.push(c);
  return c;
}

async function io(port: number, adm: RawClient, qid: number): Promise<RawClient> {
  const c = await RawClient.io(port, { subnqn: SUBNQN, cntlid: adm.cntlid, qid });
  clients.push(c);
  return c;
}

/** Connect with every field under the test's control. */
function connect(
  c: RawClient,
  o: { qid: number; cntlid?: number; subnqn?: string; hostnqn?: string; recfmt?: number; sqsize?: number; kato?: number },
): Promise<CommandResult> {
  const data = encodeConnectData({
    hostid: HOSTID,
    cntlid: o.cntlid ?? 0xffff,
    subnqn: o.subnqn ?? SUBNQN,
    hostnqn: o.hostnqn ?? TEST_HOSTNQN,
  });
  const sqe = connectCommand({ recfmt: o.recfmt ?? 0, qid: o.qid, sqsize: o.sqsize ?? 31, cattr: 0, kato: o.kato ?? 0 });
  return c.command(sqe, { data, inCapsule: true });
}

async function propGet(c: RawClient, offset: number, size: 4 | 8 = 4): Promise<CommandResult> {
  return c.command(propertyGetCommand(offset, size));
}
async function propSet(c: RawClient, offset: number, value: number | bigint, size: 4 | 8 = 4): Promise<CommandResult> {
  return c.command(propertySetCommand(offset, value, size));
}
async function csts(c: RawClient): Promise<number> {
  const r = await propGet(c, P.CSTS);
  expect(r.cqe.status).toBe(0);
  return r.cqe.result;
}

function liveCntlids(): number[] {
  return target!.snapshot().subsystems[0]!.controllers.map((c) => c.cntlid);
}

// ---------------------------------------------------------------------------

describe('Connect on the admin queue', () => {
  it('dynamic cntlid (0xFFFF): unique ids across controllers on both ports, never one still live', async () => {
    const [p1, p2] = await boot((doc) => {
      doc['subsystems'][0].attr.cntlid_min = '5';
      doc['subsystems'][0].attr.cntlid_max = '8';
    });
    const ctrls: RawClient[] = [];
    for (const port of [p1!, p2!, p1!, p2!]) ctrls.push(await admin(port, { enable: false }));
    const ids = ctrls.map((c) => c.cntlid);
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) expect(id >= 5 && id <= 8).toBe(true);
    expect(liveCntlids().sort()).toEqual([...ids].sort());
    // The range is exhausted: a fifth controller is refused rather than given a live id.
    const c5 = await fresh(p1!);
    const busy = await connect(c5, { qid: 0 });
    expect(busy.cqe.status).toBe(DNR | S.ConnectControllerBusy);
    // One controller goes; the next one gets the only free id.
    const gone = ctrls[1]!;
    gone.close();
    await waitFor(() => !liveCntlids().includes(gone.cntlid), 'controller gone', 3000);
    const c6 = await fresh(p2!);
    const again = await connect(c6, { qid: 0 });
    expect(again.cqe.status).toBe(0);
    expect(again.cqe.result & 0xffff).toBe(gone.cntlid);
    expect(new Set(liveCntlids()).size).toBe(4);
  });

  it('dynamic cntlid: many controllers over both ports all get distinct ids in the default range', async () => {
    const [p1, p2] = await boot();
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) {
      const c = await admin(i % 2 ? p2! : p1!, { enable: false });
      ids.push(c.cntlid);
      if (i === 4) c.close(); // a controller going away does not make ids repeat among live ones
    }
    const live = liveCntlids();
    expect(new Set(live).size).toBe(live.length);
    for (const id of ids) expect(id >= 1 && id <= 0xffef).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('cntlid other than 0xFFFF: Connect Invalid Parameters, IATTR 1, IPO 16', async () => {
    const [p1] = await boot();
    const c = await fresh(p1!);
    const r = await connect(c, { qid: 0, cntlid: 1 });
    expect(r.cqe.status).toBe(DNR | S.ConnectInvalidParameters);
    expect(r.cqe.result).toBe(ipo(true, 16));
    // The queue is still waiting for a valid Connect.
    const ok = await connect(c, { qid: 0 });
    expect(ok.cqe.status).toBe(0);
  });

  it('unknown subsystem NQN: Connect Invalid Parameters, IATTR 1, IPO 256', async () => {
    const [p1] = await boot();
    const r = await connect(await fresh(p1!), { qid: 0, subnqn: 'nqn.2026-11.io.nvmets:nosuch' });
    expect(r.cqe.status).toBe(DNR | S.ConnectInvalidParameters);
    expect(r.cqe.result).toBe(ipo(true, 256));
    expect(liveCntlids()).toEqual([]);
  });

  it('RECFMT != 0: Connect Incompatible Format', async () => {
    const [p1] = await boot();
    const r = await connect(await fresh(p1!), { qid: 0, recfmt: 1 });
    expect(r.cqe.status).toBe(DNR | S.ConnectIncompatibleFormat);
    expect(liveCntlids()).toEqual([]);
  });

  it('SQSIZE 0 or above CAP.MQES: Connect Invalid Parameters, IATTR 0, IPO 44', async () => {
    const [p1] = await boot();
    for (const sqsize of [0, 1024, 0xffff]) {
      const r = await connect(await fresh(p1!), { qid: 0, sqsize });
      expect(r.cqe.status).toBe(DNR | S.ConnectInvalidParameters);
      expect(r.cqe.result).toBe(ipo(false, 44));
    }
    expect(liveCntlids()).toEqual([]);
    expect((await connect(await fresh(p1!), { qid: 0, sqsize: 1023 })).cqe.status).toBe(0);
  });

  it('malformed host NQN: Connect Invalid Parameters, IATTR 1, IPO 512', async () => {
    const [p1] = await boot();
    // An empty host NQN and one without the "nqn." prefix are not malformed: nvmet and SPDK accept them where any host
    // may connect, and so do we (initiator-leniency.test.ts).
    for (const hostnqn of [`nqn.${'x'.repeat(230)}`]) {
      const r = await connect(await fresh(p1!), { qid: 0, hostnqn });
      expect(r.cqe.status).toBe(DNR | S.ConnectInvalidParameters);
      expect(r.cqe.result).toBe(ipo(true, 512));
    }
    expect(liveCntlids()).toEqual([]);
  });
});

describe('host access control', () => {
  it('allow_any_host 0: an allowed host connects, another gets Connect Invalid Host (DNR)', async () => {
    const X = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555';
    const Y = 'nqn.2014-08.org.nvmexpress:uuid:99999999-2222-4333-8444-555555555555';
    const [p1, p2] = await boot((doc) => {
      doc['hosts'] = [{ nqn: X }];
      doc['subsystems'][0].attr.allow_any_host = '0';
      doc['subsystems'][0].allowed_hosts = [X];
    });
    const a = await admin(p1!, { hostnqn: X });
    expect((await a.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
    for (const port of [p1!, p2!]) {
      const r = await connect(await fresh(port), { qid: 0, hostnqn: Y });
      expect(r.cqe.status).toBe(DNR | S.ConnectInvalidHost);
      expect(r.cqe.status & 0x700).toBe(0x100); // SCT 1
      expect(r.cqe.result).toBe(ipo(true, 512));
    }
    expect(liveCntlids()).toEqual([a.cntlid]);
  });
});

describe('Connect on I/O queues', () => {
  it('correct cntlid, host NQN and subsystem NQN: success with the cntlid in DW0', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const c = await fresh(p1!);
    const r = await connect(c, { qid: 1, cntlid: a.cntlid, sqsize: 127 });
    expect(r.cqe.status).toBe(0);
    expect(r.cqe.result & 0xffff).toBe(a.cntlid);
    const data = patternBlocks(1, 8, 512);
    expect((await c.command(writeCommand(1, 1, 8, data.length, false), { data })).cqe.status).toBe(0);
    expect((await c.command(readCommand(1, 1, 8, data.length))).data.equals(data)).toBe(true);
  });

  it('unknown cntlid: Invalid Parameters IPO 16', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const r = await connect(await fresh(p1!), { qid: 1, cntlid: a.cntlid + 100 });
    expect(r.cqe.status).toBe(DNR | S.ConnectInvalidParameters);
    expect(r.cqe.result).toBe(ipo(true, 16));
  });

  it('host NQN different from the admin queue: Invalid Parameters IPO 512', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const r = await connect(await fresh(p1!), { qid: 1, cntlid: a.cntlid, hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000ff' });
    expect(r.cqe.status).toBe(DNR | S.ConnectInvalidParameters);
    expect(r.cqe.result).toBe(ipo(true, 512));
  });

  it('QID above the queues granted by Set Features Number of Queues: Invalid Parameters IPO 42', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const nq = await a.command(setFeaturesCommand(0x07, (2 - 1) | ((2 - 1) << 16)));
    expect(nq.cqe.status).toBe(0);
    expect(nq.cqe.result).toBe((2 - 1) | ((2 - 1) << 16)); // both 0's based
    const r = await connect(await fresh(p1!), { qid: 3, cntlid: a.cntlid });
    expect(r.cqe.status).toBe(DNR | S.ConnectInvalidParameters);
    expect(r.cqe.result).toBe(ipo(false, 42));
    expect((await connect(await fresh(p1!), { qid: 2, cntlid: a.cntlid })).cqe.status).toBe(0);
    expect((await connect(await fresh(p1!), { qid: 1, cntlid: a.cntlid })).cqe.status).toBe(0);
  });

  it('a QID already connected: Command Sequence Error', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const q1 = await io(p1!, a, 1);
    const r = await connect(await fresh(p1!), { qid: 1, cntlid: a.cntlid });
    expect(r.cqe.status).toBe(DNR | S.CommandSequenceError);
    // The original queue 1 is untouched.
    expect((await q1.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
  });

  it('I/O Connect before CC.EN: Command Sequence Error', async () => {
    const [p1] = await boot();
    const a = await admin(p1!, { enable: false });
    const r = await connect(await fresh(p1!), { qid: 1, cntlid: a.cntlid });
    expect(r.cqe.status).toBe(DNR | S.CommandSequenceError);
    await a.enable();
    expect((await connect(await fresh(p1!), { qid: 1, cntlid: a.cntlid })).cqe.status).toBe(0);
  });

  it('a second Connect on a connected queue (admin or I/O): Command Sequence Error', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const q = await io(p1!, a, 1);
    const r1 = await connect(q, { qid: 2, cntlid: a.cntlid });
    expect(r1.cqe.status).toBe(DNR | S.CommandSequenceError);
    const r0 = await connect(a, { qid: 0 });
    expect(r0.cqe.status).toBe(DNR | S.CommandSequenceError);
    expect(liveCntlids()).toEqual([a.cntlid]);
    expect(
      target!
        .snapshot()
        .subsystems[0]!.controllers[0]!.queues.map((x) => x.qid)
        .sort(),
    ).toEqual([0, 1]);
    expect((await q.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
  });
});

describe('command sequencing', () => {
  it('commands before Connect (Identify, Property Get): Command Sequence Error, then Connect works', async () => {
    const [p1] = await boot();
    const c = await fresh(p1!);
    const id = await c.command(identifyCommand({ cns: Cns.Controller }));
    expect(id.cqe.status).toBe(DNR | S.CommandSequenceError);
    expect(id.data.length).toBe(0);
    expect((await propGet(c, P.CAP, 8)).cqe.status).toBe(DNR | S.CommandSequenceError);
    expect((await propSet(c, P.CC, cc({ en: true }))).cqe.status).toBe(DNR | S.CommandSequenceError);
    expect((await connect(c, { qid: 0 })).cqe.status).toBe(0);
  });

  it('admin commands before CC.EN = 1: Command Sequence Error (Property Get still works)', async () => {
    const [p1] = await boot();
    const a = await admin(p1!, { enable: false });
    const id = await a.command(identifyCommand({ cns: Cns.Controller }));
    expect(id.cqe.status).toBe(DNR | S.CommandSequenceError);
    expect((await propGet(a, P.CAP, 8)).cqe.status).toBe(0);
    await a.enable();
    expect((await a.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
  });
});

describe('Property Get / Set', () => {
  it('CAP (8 bytes): MQES 1023, TO 15, CSS bit 0 (NVM), MPSMIN 0', async () => {
    const [p1] = await boot();
    const a = await admin(p1!, { enable: false });
    const r = await propGet(a, P.CAP, 8);
    expect(r.cqe.status).toBe(0);
    const cap = BigInt(r.cqe.result >>> 0) | (BigInt(r.cqe.dw1 >>> 0) << 32n);
    expect(Number(cap & 0xffffn)).toBe(1023); // MQES 15:0
    expect(Number((cap >> 24n) & 0xffn)).toBe(15); // TO 31:24
    expect(Number((cap >> 37n) & 1n)).toBe(1); // CSS bit 37: NVM command set
    expect(Number((cap >> 48n) & 0xfn)).toBe(0); // MPSMIN 51:48: 4 KiB pages
    expect(Number((cap >> 52n) & 0xfn)).toBeGreaterThanOrEqual(0); // MPSMAX >= MPSMIN
  });

  it("a port's max_queue_size lowers CAP.MQES there, and Connect SQSIZE is checked against it", async () => {
    const [p1, p2] = await boot((doc) => {
      doc['ports'][1].param.max_queue_size = '64';
    });
    const mqes = async (c: RawClient) => Number(BigInt((await propGet(c, P.CAP, 8)).cqe.result >>> 0) & 0xffffn);
    const a1 = await admin(p1!);
    const a2 = await admin(p2!);
    expect(await mqes(a1)).toBe(1023);
    expect(await mqes(a2)).toBe(63);
    const tooBig = await connect(await fresh(p2!), { qid: 1, cntlid: a2.cntlid, sqsize: 64 });
    expect(tooBig.cqe.status).toBe(DNR | S.ConnectInvalidParameters);
    expect(tooBig.cqe.result).toBe(ipo(false, 44));
    expect((await connect(await fresh(p2!), { qid: 1, cntlid: a2.cntlid, sqsize: 63 })).cqe.status).toBe(0);
    expect((await connect(await fresh(p1!), { qid: 1, cntlid: a1.cntlid, sqsize: 64 })).cqe.status).toBe(0);
  });

  it('VS reports the subsystem version', async () => {
    const [p1] = await boot((doc) => {
      doc['subsystems'][0].attr.version = '1.3';
    });
    const a = await admin(p1!, { enable: false });
    const r = await propGet(a, P.VS);
    expect(r.cqe.status).toBe(0);
    expect(r.cqe.result).toBe(0x00010300);
  });

  it('CC.EN = 1 with IOSQES 6 / IOCQES 4: CSTS.RDY = 1 and CC reads back', async () => {
    const [p1] = await boot();
    const a = await admin(p1!, { enable: false });
    expect((await csts(a)) & 1).toBe(0);
    expect((await propSet(a, P.CC, cc({ en: true }))).cqe.status).toBe(0);
    const s = await csts(a);
    expect(s & 1).toBe(1); // RDY
    expect(s & 2).toBe(0); // CFS
    expect((await propGet(a, P.CC)).cqe.result).toBe(cc({ en: true }));
  });

  it('CC.EN = 1 with IOSQES 5: CSTS.CFS set and RDY clear', async () => {
    const [p1] = await boot();
    const a = await admin(p1!, { enable: false });
    expect((await propSet(a, P.CC, cc({ en: true, iosqes: 5 }))).cqe.status).toBe(0);
    const s = await csts(a);
    expect(s & 1).toBe(0);
    expect(s & 2).toBe(2);
    expect((await a.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(DNR | S.CommandSequenceError);
  });

  it('CC.EN 1 -> 0: RDY clears and the I/O queue connections close', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const q1 = await io(p1!, a, 1);
    const q2 = await io(p1!, a, 2);
    expect((await propSet(a, P.CC, cc({ en: false }))).cqe.status).toBe(0);
    expect((await csts(a)) & 1).toBe(0);
    await q1.waitClosed(3000);
    await q2.waitClosed(3000);
    expect(a.closed).toBe(false);
    expect(target!.snapshot().subsystems[0]!.controllers[0]!.queues.map((x) => x.qid)).toEqual([0]);
    // Enabled again, the controller takes I/O queues again.
    await a.enable();
    const again = await io(p1!, a, 1);
    expect((await again.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
  });

  it('shutdown: CC.SHN = 01b leads to CSTS.SHST = 10b', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    expect((await propSet(a, P.CC, cc({ en: true, shn: 1 }))).cqe.status).toBe(0);
    await waitFor(async () => ((await csts(a)) >> 2) % 4 === 2, 'SHST complete', 3000);
  });

  it('Property Set on CSTS or CAP, or an 8-byte Property Set: Invalid Field', async () => {
    const [p1] = await boot();
    const a = await admin(p1!, { enable: false });
    expect((await propSet(a, P.CSTS, 0x1)).cqe.status).toBe(DNR | S.InvalidField);
    expect((await propSet(a, P.CAP, 0x1)).cqe.status).toBe(DNR | S.InvalidField);
    expect((await propSet(a, P.CAP, 0x1n, 8)).cqe.status).toBe(DNR | S.InvalidField);
    expect((await propSet(a, P.CC, BigInt(cc({ en: true })), 8)).cqe.status).toBe(DNR | S.InvalidField);
    expect((await csts(a)) & 1).toBe(0); // the refused sets changed nothing
  });

  it('Property Get of an unknown offset: Invalid Field', async () => {
    const [p1] = await boot();
    const a = await admin(p1!, { enable: false });
    for (const offset of [0x30, 0x04, 0xe00]) expect((await propGet(a, offset)).cqe.status).toBe(DNR | S.InvalidField);
    expect((await propGet(a, 0x30, 8)).cqe.status).toBe(DNR | S.InvalidField);
  });

  it('Property Get / Set on an I/O queue: Invalid Opcode', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const q = await io(p1!, a, 1);
    expect((await propGet(q, P.CSTS)).cqe.status).toBe(DNR | S.InvalidOpcode);
    expect((await propGet(q, P.CAP, 8)).cqe.status).toBe(DNR | S.InvalidOpcode);
    expect((await propSet(q, P.CC, cc({ en: false }))).cqe.status).toBe(DNR | S.InvalidOpcode);
    expect((await csts(a)) & 1).toBe(1);
  });
});
