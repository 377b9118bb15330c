/**
 * Target bugs the fuzzer (test/fuzz) found, one test each so they stay fixed.
 * (Those that are limits live in limits.test.ts: Fabrics commands and MDTS,
 * Connect data requested by R2T.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DNR } from '../../shared/status.ts';
import { encodeConnectData } from '../../shared/fabrics.ts';
import { connectCommand, getLogPageCommand, readCommand, setFeaturesCommand, writeCommand } from '../../shared/sqe.ts';
import { decodeErrorLog, encodeGetLogPageDwords } from '../../shared/log-pages.ts';
import type { Target } from '../../target/target.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';

const CONNECT_INVALID_PARAMETERS = 0x182;
const LBA_OUT_OF_RANGE = 0x080;

let target: Target | null = null;
const clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await target?.stop();
  target = null;
});

async function boot(): Promise<number> {
  const t = await startTarget(
    testConfig((doc) => {
      doc['subsystems'][0].ext = { mode: 'ana' };
      for (const p of doc['ports']) p.ana_groups = [{ grpid: 1, ana: { state: 'optimized' } }];
    }),
  );
  target = t.target;
  return t.ports[0]!;
}

describe('fuzzer findings', () => {
  it('a host NQN that is not UTF-8 is refused at Connect (Invalid Parameters, host NQN offset), like any other bad NQN', async () => {
    const port = await boot();
    for (const tail of [
      [0xc3, 0x28],
      [0xff, 0xfe],
      [0xe2, 0x82],
      [0xc0, 0xaf],
    ]) {
      const c = await RawClient.connect(port);
      clients.push(c);
      await c.initialize();
      const data = encodeConnectData({ hostid: Buffer.alloc(16, 1), cntlid: 0xffff, subnqn: SUBNQN, hostnqn: '' });
      Buffer.concat([Buffer.from('nqn.2014-08.org.nvmexpress:uuid:bad-'), Buffer.from(tail)]).copy(data, 512);
      const r = await c.command(connectCommand({ recfmt: 0, qid: 0, sqsize: 31, cattr: 0, kato: 0 }), { data, inCapsule: true });
      expect(r.cqe.status & 0x7ff).toBe(CONNECT_INVALID_PARAMETERS);
      expect(r.cqe.result).toBe((1 << 16) | 512);
    }
    expect(target!.snapshot().subsystems[0]!.controllers).toHaveLength(0);
  });

  it('KATO of 2^31 ms and more (Connect, Set Features) arms no 1 ms timer and does not end the controller', async () => {
    const port = await boot();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const a = await RawClient.admin(port, { subnqn: SUBNQN, kato: 0xffffffff });
      clients.push(a);
      const b = await RawClient.admin(port, { subnqn: SUBNQN, kato: 0 });
      clients.push(b);
      expect((await b.command(setFeaturesCommand(0x0f, 0x80000000))).cqe.status).toBe(0);
      await new Promise((r) => setTimeout(r, 300));
      expect(a.closed).toBe(false);
      expect(b.closed).toBe(false);
      const ctrls = target!.snapshot().subsystems[0]!.controllers;
      expect(ctrls.map((c) => c.kato).sort()).toEqual([0x80000000, 0xffffffff]);
      expect(warnings).not.toContain('TimeoutOverflowWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('an I/O command with an SLBA beyond 2^53 leaves the error log readable (it used to poison it: Internal Error on every read)', async () => {
    const port = await boot();
    const a = await RawClient.admin(port, { subnqn: SUBNQN, kato: 0 });
    clients.push(a);
    const q = await RawClient.io(port, { subnqn: SUBNQN, cntlid: a.cntlid, qid: 1 });
    clients.push(q);
    for (const [hi, lo] of [
      [0xffffffff, 0xffffffff],
      [0xffffffff, 0xfffff000],
      [0x00200000, 0x00000001],
    ] as const) {
      const r = await q.command({ ...readCommand(1, 0, 1, 512), cdw10: lo, cdw11: hi });
      expect(r.cqe.status).toBe(DNR | LBA_OUT_OF_RANGE);
      const w = await q.command({ ...writeCommand(1, 0, 1, 512, true), cdw10: lo, cdw11: hi }, { data: Buffer.alloc(512), inCapsule: true });
      expect(w.cqe.status).toBe(DNR | LBA_OUT_OF_RANGE);
    }
    const dw = encodeGetLogPageDwords({ lid: 0x01, numdBytes: 4096, offset: 0, lsp: 0, rae: false });
    const log = await a.command(getLogPageCommand(dw, 4096));
    expect(log.cqe.status).toBe(0);
    const entries = decodeErrorLog(log.data).filter((e) => e.errorCount > 0n);
    expect(entries.length).toBeGreaterThanOrEqual(6);
    expect(entries[0]!.status & 0x7ff).toBe(LBA_OUT_OF_RANGE);
    expect(entries.every((e) => e.lba <= 0xffffffffffffffffn)).toBe(true);
  });
});
