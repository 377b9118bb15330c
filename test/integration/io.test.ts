/**
 * NVM I/O command set over real NVMe/TCP sockets and the in-process loopback transport (tests about the wire: TCP only): data paths (in-capsule, R2T,
 * multi-PDU), Flush, Write Zeroes, Dataset Management, Compare, the checks
 * every command goes through, block sizes and the three stores.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IoOpcode } from '../../shared/opcodes.ts';
import {
  compareCommand,
  datasetManagementCommand,
  encodeDsmRanges,
  flushCommand,
  readCommand,
  sqe,
  writeCommand,
  writeZeroesCommand,
} from '../../shared/sqe.ts';
import { inCapsuleSgl, transportSgl } from '../../shared/sgl.ts';
import { Status } from '../../shared/status.ts';
import type { TargetConfig } from '../../target/config/index.ts';
import { StoreError } from '../../target/store/index.ts';
import { patternBlocks } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import { Resources, connectPair, dnr, sc } from '../helpers/nvme-ops.ts';
import { TRANSPORTS, clientFor, type ClientFactory } from '../helpers/loop-client.ts';

const res = new Resources();
afterEach(() => res.cleanup());

const NS_BYTES = 64 * 1024 * 1024;
const NBLOCKS = NS_BYTES / 512;

async function start(config: TargetConfig = testConfig()) {
  const t = await startTarget(config);
  res.targets.push(t.target);
  return t;
}

async function setupVia(via: ClientFactory, config?: TargetConfig) {
  const t = await start(config);
  const pair = await connectPair(res, t.ports[0]!, SUBNQN, { via });
  const ns = t.target.subsystems.get(SUBNQN)!.namespaces.get(1)!;
  return { ...t, ...pair, ns };
}

describe.each(TRANSPORTS)('over %s', (transport) => {
  const Client = clientFor(transport);
  /** Tests about the wire (R2T, C2HData PDUs) run over NVMe/TCP only. */
  const wireIt = transport === 'tcp' ? it : it.skip;
  const setup = (config?: TargetConfig) => setupVia(Client, config);

  describe('Read and Write', () => {
    wireIt('in-capsule and R2T writes land where they should and read back intact', async () => {
      const { io } = await setup();
      // In-capsule: up to the inline data size (16 KiB).
      const small = patternBlocks(10, 32, 512);
      const w1 = await io.command(writeCommand(1, 10, 32, small.length, true), { data: small, inCapsule: true });
      expect(w1.cqe.status).toBe(0);
      expect(w1.r2ts).toBe(0);
      // R2T: 1 MiB, more than one MAXH2CDATA (128 KiB) so the host sends several H2CData PDUs.
      const big = patternBlocks(1000, 2048, 512);
      const w2 = await io.command(writeCommand(1, 1000, 2048, big.length, false), { data: big });
      expect(w2.cqe.status).toBe(0);
      expect(w2.r2ts).toBe(1);
      // Small R2T write too.
      const r2tSmall = patternBlocks(5000, 1, 512);
      expect((await io.command(writeCommand(1, 5000, 1, 512, false), { data: r2tSmall })).cqe.status).toBe(0);

      const r1 = await io.command(readCommand(1, 10, 32, small.length));
      expect(r1.cqe.status).toBe(0);
      expect(r1.data.equals(small)).toBe(true);
      const r2 = await io.command(readCommand(1, 1000, 2048, big.length));
      expect(r2.data.equals(big)).toBe(true);
      expect(r2.c2hPdus).toBeGreaterThan(1);
      // A window across both writes and the hole between them.
      const r3 = await io.command(readCommand(1, 30, 980, 980 * 512));
      expect(r3.data.subarray(0, 12 * 512).equals(small.subarray(20 * 512))).toBe(true);
      expect(r3.data.subarray(12 * 512, 970 * 512).equals(Buffer.alloc(958 * 512))).toBe(true);
      expect(r3.data.subarray(970 * 512).equals(big.subarray(0, 10 * 512))).toBe(true);
      expect((await io.command(readCommand(1, 5000, 1, 512))).data.equals(r2tSmall)).toBe(true);
      // Last block of the namespace.
      const last = patternBlocks(NBLOCKS - 1, 1, 512);
      expect((await io.command(writeCommand(1, NBLOCKS - 1, 1, 512, true), { data: last })).cqe.status).toBe(0);
      expect((await io.command(readCommand(1, NBLOCKS - 1, 1, 512))).data.equals(last)).toBe(true);
    });

    it('an overwrite replaces exactly its blocks', async () => {
      const { io } = await setup();
      const g1 = patternBlocks(100, 16, 512, 1);
      const g2 = patternBlocks(104, 4, 512, 2);
      await io.command(writeCommand(1, 100, 16, g1.length, true), { data: g1 });
      await io.command(writeCommand(1, 104, 4, g2.length, false), { data: g2 });
      const r = await io.command(readCommand(1, 100, 16, g1.length));
      const want = Buffer.concat([g1.subarray(0, 4 * 512), g2, g1.subarray(8 * 512)]);
      expect(r.data.equals(want)).toBe(true);
    });
  });

  describe('Flush', () => {
    it('flushes one namespace, and all namespaces with NSID FFFFFFFFh', async () => {
      const config = testConfig((doc) => {
        doc['subsystems'][0].namespaces.push({ nsid: 2, enable: 1, ana_grpid: 1, device: {}, ext: { store: 'memory', size: '1M', block_size: 512 } });
      });
      const { io, target } = await setup(config);
      const counts = new Map<number, number>();
      for (const [nsid, ns] of target.subsystems.get(SUBNQN)!.namespaces) {
        const orig = ns.store.flush.bind(ns.store);
        counts.set(nsid, 0);
        ns.store.flush = async () => {
          counts.set(nsid, counts.get(nsid)! + 1);
          return orig();
        };
      }
      const f1 = await io.command(flushCommand(1));
      expect(f1.cqe.status).toBe(0);
      expect([...counts.values()]).toEqual([1, 0]);
      const fall = await io.command(flushCommand(0xffffffff));
      expect(fall.cqe.status).toBe(0);
      expect([...counts.values()]).toEqual([2, 1]);
      const fbad = await io.command(flushCommand(9));
      expect(sc(fbad)).toBe(Status.InvalidNamespaceOrFormat);
    });
  });

  describe('Write Zeroes and Dataset Management', () => {
    it('Write Zeroes without DEAC writes zeros, with DEAC deallocates; both read back zeros', async () => {
      const { io, ns } = await setup();
      const calls: string[] = [];
      const store = ns.store;
      const wz = store.writeZeroes.bind(store);
      const dealloc = store.deallocate.bind(store);
      store.writeZeroes = async (s, n) => {
        calls.push(`wz ${s} ${n}`);
        return wz(s, n);
      };
      store.deallocate = async (s, n) => {
        calls.push(`dealloc ${s} ${n}`);
        return dealloc(s, n);
      };
      const data = patternBlocks(0, 64, 512);
      await io.command(writeCommand(1, 0, 64, data.length, false), { data });

      const z = await io.command(writeZeroesCommand(1, 8, 8, false));
      expect(z.cqe.status).toBe(0);
      const d = await io.command(writeZeroesCommand(1, 32, 16, true));
      expect(d.cqe.status).toBe(0);
      expect(calls).toEqual(['wz 8 8', 'dealloc 32 16']);

      const r = (await io.command(readCommand(1, 0, 64, data.length))).data;
      expect(r.subarray(0, 8 * 512).equals(data.subarray(0, 8 * 512))).toBe(true);
      expect(r.subarray(8 * 512, 16 * 512).equals(Buffer.alloc(8 * 512))).toBe(true);
      expect(r.subarray(16 * 512, 32 * 512).equals(data.subarray(16 * 512, 32 * 512))).toBe(true);
      expect(r.subarray(32 * 512, 48 * 512).equals(Buffer.alloc(16 * 512))).toBe(true);
      expect(r.subarray(48 * 512).equals(data.subarray(48 * 512))).toBe(true);
      // Out of range.
      const oor = await io.command(writeZeroesCommand(1, NBLOCKS - 4, 8));
      expect(sc(oor)).toBe(Status.LbaOutOfRange);
      expect(dnr(oor)).toBe(true);
    });

    it('DSM deallocate zeroes its ranges; a range beyond capacity is LBA Out of Range and changes nothing', async () => {
      const { io, ns } = await setup();
      const data = patternBlocks(0, 256, 512);
      await io.command(writeCommand(1, 0, 256, data.length, false), { data });
      const ranges = [
        { cattr: 0, slba: 0, nlb: 16 },
        { cattr: 0, slba: 128, nlb: 64 },
        { cattr: 0, slba: 200, nlb: 0 }, // empty range: ignored
      ];
      const r = await io.command(datasetManagementCommand(1, ranges, true), { data: encodeDsmRanges(ranges), inCapsule: true });
      expect(r.cqe.status).toBe(0);
      const back = (await io.command(readCommand(1, 0, 256, data.length))).data;
      expect(back.subarray(0, 16 * 512).equals(Buffer.alloc(16 * 512))).toBe(true);
      expect(back.subarray(16 * 512, 128 * 512).equals(data.subarray(16 * 512, 128 * 512))).toBe(true);
      expect(back.subarray(128 * 512, 192 * 512).equals(Buffer.alloc(64 * 512))).toBe(true);
      expect(back.subarray(192 * 512).equals(data.subarray(192 * 512))).toBe(true);

      // Without the AD attribute nothing is deallocated.
      const hint = [{ cattr: 0, slba: 16, nlb: 8 }];
      expect((await io.command(datasetManagementCommand(1, hint, false), { data: encodeDsmRanges(hint), inCapsule: true })).cqe.status).toBe(0);
      expect((await io.command(readCommand(1, 16, 8, 4096))).data.equals(data.subarray(16 * 512, 24 * 512))).toBe(true);

      // One good range and one past the end: refused as a whole.
      let deallocs = 0;
      const orig = ns.store.deallocate.bind(ns.store);
      ns.store.deallocate = async (s, n) => {
        deallocs++;
        return orig(s, n);
      };
      const bad = [
        { cattr: 0, slba: 32, nlb: 8 },
        { cattr: 0, slba: NBLOCKS - 4, nlb: 8 },
      ];
      const rb = await io.command(datasetManagementCommand(1, bad, true), { data: encodeDsmRanges(bad), inCapsule: true });
      expect(sc(rb)).toBe(Status.LbaOutOfRange);
      expect(dnr(rb)).toBe(true);
      expect(deallocs).toBe(0);
      expect((await io.command(readCommand(1, 32, 8, 4096))).data.equals(data.subarray(32 * 512, 40 * 512))).toBe(true);
    });
  });

  describe('Compare', () => {
    it('matches equal data, reports Compare Failure (SCT 2, SC 85h) otherwise', async () => {
      const { io } = await setup();
      const data = patternBlocks(50, 8, 512);
      await io.command(writeCommand(1, 50, 8, data.length, true), { data });
      const same = await io.command(compareCommand(1, 50, 8, data.length, true), { data, inCapsule: true });
      expect(same.cqe.status).toBe(0);
      const sameR2t = await io.command(compareCommand(1, 50, 8, data.length, false), { data });
      expect(sameR2t.cqe.status).toBe(0);
      const other = Buffer.from(data);
      other[7 * 512 + 100]! ^= 0xff;
      const diff = await io.command(compareCommand(1, 50, 8, data.length, true), { data: other, inCapsule: true });
      expect(sc(diff)).toBe(Status.CompareFailure);
      expect((diff.cqe.status >> 8) & 7).toBe(2);
      expect(diff.cqe.status & 0xff).toBe(0x85);
      // Data unchanged by a compare.
      expect((await io.command(readCommand(1, 50, 8, data.length))).data.equals(data)).toBe(true);
    });
  });

  describe('command checks', () => {
    it('LBA out of range: SCT 0 SC 80h with DNR, nothing written', async () => {
      const { io } = await setup();
      const r = await io.command(readCommand(1, NBLOCKS - 1, 2, 1024));
      expect(r.cqe.status).toBe(0x4080);
      const data = patternBlocks(NBLOCKS - 2, 4, 512);
      const w = await io.command(writeCommand(1, NBLOCKS - 2, 4, data.length, true), { data });
      expect(w.cqe.status).toBe(0x4080);
      expect((await io.command(readCommand(1, NBLOCKS - 2, 2, 1024))).data.equals(Buffer.alloc(1024))).toBe(true);
      const far = await io.command(readCommand(1, 2 ** 40, 1, 512));
      expect(far.cqe.status).toBe(0x4080);
    });

    it('a store failure is an NVMe status on the synchronous (in-memory) path as on the asynchronous one', async () => {
      const { io, ns } = await setup();
      const data = patternBlocks(0, 8, 512);
      expect(ns.store.writeSync).toBeTypeOf('function'); // the memory store: the synchronous path
      const { store } = ns;
      // The store fails as a disk would (an I/O error), on both paths in turn.
      const ioError = () => {
        throw new StoreError('io', 'injected');
      };
      store.writeSync = ioError;
      store.readSync = ioError;
      expect(sc(await io.command(writeCommand(1, 0, 8, data.length, true), { data }))).toBe(Status.WriteFault);
      expect(sc(await io.command(readCommand(1, 0, 8, data.length)))).toBe(Status.UnrecoveredReadError);
      store.writeSync = undefined;
      store.readSync = undefined;
      const origWrite = store.write.bind(store);
      const origRead = store.read.bind(store);
      store.write = async () => ioError();
      store.read = async () => ioError();
      expect(sc(await io.command(writeCommand(1, 0, 8, data.length, true), { data }))).toBe(Status.WriteFault);
      expect(sc(await io.command(readCommand(1, 0, 8, data.length)))).toBe(Status.UnrecoveredReadError);
      // The queue goes on as before.
      store.write = origWrite;
      store.read = origRead;
      expect((await io.command(writeCommand(1, 0, 8, data.length, true), { data })).cqe.status).toBe(0);
      expect((await io.command(readCommand(1, 0, 8, data.length))).data.equals(data)).toBe(true);
    });

    it('transfer length other than NLB x block size: Data SGL Length Invalid', async () => {
      const { io } = await setup();
      const r = await io.command({ ...readCommand(1, 0, 8, 4096), sgl: transportSgl(2048) });
      expect(sc(r)).toBe(Status.DataSglLengthInvalid);
      expect(dnr(r)).toBe(true);
      const data = patternBlocks(0, 2, 512);
      const w = await io.command({ ...writeCommand(1, 0, 1, 512, true), sgl: inCapsuleSgl(1024) }, { data, inCapsule: true });
      expect(sc(w)).toBe(Status.DataSglLengthInvalid);
      const wr2t = await io.command({ ...writeCommand(1, 0, 4, 2048, false), sgl: transportSgl(1024) }, { data: data.subarray(0, 1024) });
      expect(sc(wr2t)).toBe(Status.DataSglLengthInvalid);
      expect((await io.command(readCommand(1, 0, 2, 1024))).data.equals(Buffer.alloc(1024))).toBe(true);
    });

    wireIt('more than MDTS (1 MiB) is Invalid Field, before any data moves', async () => {
      const { io } = await setup();
      const max = await io.command(readCommand(1, 0, 2048, 1024 * 1024));
      expect(max.cqe.status).toBe(0);
      const over = await io.command(readCommand(1, 0, 2049, 2049 * 512));
      expect(sc(over)).toBe(Status.InvalidField);
      expect(dnr(over)).toBe(true);
      expect(over.c2hPdus).toBe(0);
      const data = patternBlocks(0, 2049, 512);
      const w = await io.command(writeCommand(1, 0, 2049, data.length, false), { data });
      expect(sc(w)).toBe(Status.InvalidField);
      expect(w.r2ts).toBe(0);
    });

    it('unknown NSID is Invalid Namespace; unknown opcode is Invalid Opcode', async () => {
      const { io } = await setup();
      for (const nsid of [0, 2, 0xfffffffe]) {
        const r = await io.command(readCommand(nsid, 0, 1, 512));
        expect(sc(r), `nsid ${nsid}`).toBe(Status.InvalidNamespaceOrFormat);
        expect(dnr(r)).toBe(true);
      }
      for (const opcode of [IoOpcode.WriteUncorrectable, IoOpcode.Verify, IoOpcode.ReservationReport, 0x7c, 0x80]) {
        const r = await io.command(sqe({ opcode, nsid: 1 }));
        expect(sc(r), `opcode 0x${opcode.toString(16)}`).toBe(Status.InvalidOpcode);
        expect(dnr(r)).toBe(true);
      }
      // Still working.
      expect((await io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
    });
  });

  describe('block sizes and stores', () => {
    it('4096-byte block namespace: LBAs and lengths in 4 KiB units', async () => {
      const config = testConfig((doc) => {
        doc['subsystems'][0].namespaces[0].ext = { store: 'memory', size: '16M', block_size: 4096 };
      });
      const { io } = await setup(config);
      const nblocks = (16 * 1024 * 1024) / 4096;
      const data = patternBlocks(7, 3, 4096);
      expect((await io.command(writeCommand(1, 7, 3, data.length, true), { data })).cqe.status).toBe(0);
      const big = patternBlocks(100, 256, 4096);
      expect((await io.command(writeCommand(1, 100, 256, big.length, false), { data: big })).cqe.status).toBe(0);
      expect((await io.command(readCommand(1, 7, 3, data.length))).data.equals(data)).toBe(true);
      expect((await io.command(readCommand(1, 100, 256, big.length))).data.equals(big)).toBe(true);
      // A 512-byte-sized transfer for one 4 KiB block is wrong.
      expect(sc(await io.command(readCommand(1, 7, 1, 512)))).toBe(Status.DataSglLengthInvalid);
      expect((await io.command(readCommand(1, nblocks - 1, 2, 8192))).cqe.status).toBe(0x4080);
      expect((await io.command(readCommand(1, nblocks - 1, 1, 4096))).cqe.status).toBe(0);
    });

    it('null store: writes succeed, reads return zeros', async () => {
      const config = testConfig((doc) => {
        doc['subsystems'][0].namespaces[0].ext = { store: 'null', size: '1G', block_size: 512 };
      });
      const { io } = await setup(config);
      const data = patternBlocks(0, 16, 512);
      expect((await io.command(writeCommand(1, 0, 16, data.length, true), { data })).cqe.status).toBe(0);
      const r = await io.command(readCommand(1, 0, 16, data.length));
      expect(r.cqe.status).toBe(0);
      expect(r.data.equals(Buffer.alloc(data.length))).toBe(true);
      expect((await io.command(flushCommand(1))).cqe.status).toBe(0);
      expect((await io.command(readCommand(1, 2 ** 21 - 1, 1, 512))).cqe.status).toBe(0);
    });

    it('file store: Flush works and data survives a target restart on the same file', async () => {
      const dir = await res.tmpdir();
      const file = path.join(dir, 'ns1.img');
      const edit = (doc: Record<string, any>) => {
        doc['subsystems'][0].namespaces[0].device = { path: file };
        doc['subsystems'][0].namespaces[0].ext = { store: 'file', size: '4M', block_size: 512 };
      };
      const a = await setup(testConfig(edit));
      expect(a.ns.store.kind).toBe('file');
      const data = patternBlocks(3, 40, 512);
      const tail = patternBlocks(8191, 1, 512);
      expect((await a.io.command(writeCommand(1, 3, 40, data.length, false), { data })).cqe.status).toBe(0);
      expect((await a.io.command(writeCommand(1, 8191, 1, 512, true), { data: tail })).cqe.status).toBe(0);
      expect((await a.io.command(flushCommand(1))).cqe.status).toBe(0);
      expect((await a.io.command(flushCommand(0xffffffff))).cqe.status).toBe(0);
      expect((await a.io.command(readCommand(1, 3, 40, data.length))).data.equals(data)).toBe(true);
      a.io.close();
      a.admin.close();
      await a.target.stop();

      const b = await setup(testConfig(edit));
      expect(b.ns.store.kind).toBe('file');
      const back = await b.io.command(readCommand(1, 3, 40, data.length));
      expect(back.cqe.status).toBe(0);
      expect(back.data.equals(data)).toBe(true);
      expect((await b.io.command(readCommand(1, 8191, 1, 512))).data.equals(tail)).toBe(true);
      expect((await b.io.command(readCommand(1, 0, 3, 1536))).data.equals(Buffer.alloc(1536))).toBe(true);
    });
  });
});
