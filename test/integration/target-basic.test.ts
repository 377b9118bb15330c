import { afterEach, describe, expect, it } from 'vitest';
import { Cns, decodeIdentifyController, decodeIdentifyNamespace } from '../../shared/identify.ts';
import { identifyCommand, readCommand, writeCommand } from '../../shared/sqe.ts';
import { RawClient, patternBlocks } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget } from '../helpers/target-fixture.ts';
import type { Target } from '../../target/target.ts';

let target: Target | null = null;
const clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await target?.stop();
  target = null;
});

describe('target basic flow', () => {
  it('connects, enables, identifies, writes with R2T and in-capsule, reads back', async () => {
    const t = await startTarget();
    target = t.target;
    const admin = await RawClient.admin(t.ports[0]!, { subnqn: SUBNQN, kato: 5000 });
    clients.push(admin);
    const idc = await admin.command(identifyCommand({ cns: Cns.Controller }));
    expect(idc.cqe.status).toBe(0);
    const ctrl = decodeIdentifyController(idc.data);
    expect(ctrl.cntlid).toBe(admin.cntlid);
    expect(ctrl.subnqn).toBe(SUBNQN);
    const idn = await admin.command(identifyCommand({ cns: Cns.Namespace, nsid: 1 }));
    const ns = decodeIdentifyNamespace(idn.data);
    expect(ns.nmic).toBe(1);
    const io = await RawClient.io(t.ports[0]!, { subnqn: SUBNQN, cntlid: admin.cntlid, qid: 1 });
    clients.push(io);
    const small = patternBlocks(10, 8, 512);
    const w1 = await io.command(writeCommand(1, 10, 8, small.length, true), { data: small, inCapsule: true });
    expect(w1.cqe.status).toBe(0);
    const big = patternBlocks(100, 512, 512);
    const w2 = await io.command(writeCommand(1, 100, 512, big.length, false), { data: big });
    expect(w2.cqe.status).toBe(0);
    expect(w2.r2ts).toBe(1);
    const r1 = await io.command(readCommand(1, 10, 8, small.length));
    expect(r1.data.equals(small)).toBe(true);
    const r2 = await io.command(readCommand(1, 100, 512, big.length));
    expect(r2.data.equals(big)).toBe(true);
    expect(r2.c2hPdus).toBe(2);
  });
});
