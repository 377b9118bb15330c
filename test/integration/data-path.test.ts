/**
 * The data path end to end on 127.0.0.1 (our host, our target in this
 * process): transfers of every size through in-capsule data, R2T with one or
 * many H2CData PDUs, and C2HData in one or many PDUs, digests off and on,
 * reads into new buffers and into the caller's, many at once. The target lends
 * pooled buffers for read data and receives write data into pooled buffers;
 * the host places read data straight into the destination. Both sides read
 * large payloads from the socket straight into place (onread), or with
 * the directReads switch off (NVMETS_DIRECT_READS=0 at the CLI) through Node's 'data' events. Every byte is checked,
 * and every pooled buffer is back in the pool afterwards.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { HostSession } from '../../host/session.ts';
import type { MultipathHead } from '../../host/multipath/index.ts';
import { defaultFeatureSwitches } from '../../shared/feature-switches.ts';
import { dataBuffers } from '../../target/buffer-pool.ts';
import type { Target } from '../../target/target.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';

let session: HostSession | null = null;
let target: Target | null = null;

afterEach(async () => {
  await session?.close();
  session = null;
  await target?.stop();
  target = null;
});

/** Data that differs per block and per pass, so a misplaced or stale block shows. */
function pattern(bytes: number, seed: number, blockSize: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  for (let off = 0; off < bytes; off += 4) b.writeUInt32LE(((seed * 2654435761) ^ ((off / blockSize) * 40503) ^ off) >>> 0, off);
  return b;
}

async function setup(o: { digests: boolean; maxh2cdata?: number; inline?: number; directReads?: boolean }): Promise<MultipathHead> {
  // Both sides get the switch as the CLI edge would pass it (NVMETS_DIRECT_READS is read there only).
  const switches = { ...defaultFeatureSwitches, directReads: o.directReads !== false };
  const t = await startTarget(
    testConfig((doc) => {
      for (const p of doc['ports']) {
        if (o.maxh2cdata) p.ext = { ...(p.ext ?? {}), maxh2cdata: o.maxh2cdata };
        if (o.inline) p.param = { ...(p.param ?? {}), inline_data_size: String(o.inline) };
      }
    }, 1),
    { switches },
  );
  target = t.target;
  session = new HostSession({ switches });
  await session.connect({
    traddr: '127.0.0.1',
    trsvcid: t.ports[0]!,
    subnqn: SUBNQN,
    nrIoQueues: 1,
    queueSize: 64,
    hdrDigest: o.digests,
    dataDigest: o.digests,
    katoMs: 5000,
  });
  return session.head({ subnqn: SUBNQN });
}

const SIZES = [4096, 12 * 1024, 16 * 1024, 20 * 1024, 64 * 1024, 128 * 1024, 132 * 1024, 1024 * 1024];

describe('data path: every size, both directions, verified', () => {
  for (const variant of [
    { name: 'digests off', digests: false },
    { name: 'digests on', digests: true },
    { name: 'maxh2cdata 8 KiB (many H2CData PDUs per write)', digests: true, maxh2cdata: 8192 },
    { name: 'in-capsule up to 128 KiB', digests: false, inline: 131072 },
    { name: "digests on, Node's own reads ('data' events)", digests: true, directReads: false },
  ]) {
    it(variant.name, async () => {
      const head = await setup(variant);
      const direct0 = { target: target!.counters.directReadBytes, host: session!.transportStats.directReadBytes };
      const bs = head.blockSize;
      const before = dataBuffers.outstanding;
      let slba = 0;
      const written: { slba: number; data: Buffer }[] = [];
      for (const [i, size] of SIZES.entries()) {
        const data = pattern(size, i + 1, bs);
        await head.write(slba, data);
        written.push({ slba, data });
        slba += size / bs;
      }
      for (const { slba: at, data } of written) {
        const fresh = await head.read(at, data.length / bs);
        expect(fresh.equals(data), `read of ${data.length} bytes into a new buffer`).toBe(true);
        const into = Buffer.alloc(data.length + 4096, 0xee);
        const got = await head.read(at, data.length / bs, into);
        expect(got.buffer).toBe(into.buffer);
        expect(got.length).toBe(data.length);
        expect(into.subarray(0, data.length).equals(data), `read of ${data.length} bytes into the caller's buffer`).toBe(true);
        expect(into.subarray(data.length).equals(Buffer.alloc(4096, 0xee)), 'nothing written past the read').toBe(true);
      }
      // Large payloads went from the socket straight into place on both sides, or never with the switch off.
      const direct = { target: target!.counters.directReadBytes - direct0.target, host: session!.transportStats.directReadBytes - direct0.host };
      if (variant.directReads === false) expect(direct).toEqual({ target: 0, host: 0 });
      else {
        // (8 KiB H2CData PDUs arrive whole with their headers: nothing to read straight in.)
        if (!variant.maxh2cdata) expect(direct.target, 'write data read straight into place by the target').toBeGreaterThan(512 * 1024);
        expect(direct.host, 'read data read straight into place by the host').toBeGreaterThan(2 * 512 * 1024);
      }
      // Every lent buffer came back (reads: once written to the socket; writes: once executed).
      await new Promise((r) => setTimeout(r, 20));
      expect(dataBuffers.outstanding).toBe(before);
    });
  }

  it("64 reads and writes of 128 KiB at once, each into its own buffer: no read sees another one's data", async () => {
    const head = await setup({ digests: false });
    const bs = head.blockSize;
    const n = 64;
    const size = 128 * 1024;
    const datas = Array.from({ length: n }, (_, i) => pattern(size, 100 + i, bs));
    await Promise.all(datas.map((d, i) => head.write(i * (size / bs), d)));
    for (let round = 0; round < 3; round++) {
      const intos = Array.from({ length: n }, () => Buffer.allocUnsafe(size));
      // Reads of one half race writes of fresh data to the other half.
      const fresh = datas.map((_, i) => pattern(size, 1000 * (round + 1) + i, bs));
      await Promise.all([...datas.map((_, i) => (i % 2 === 0 ? head.read(i * (size / bs), size / bs, intos[i]) : head.write(i * (size / bs), fresh[i]!)))]);
      for (let i = 0; i < n; i += 2) expect(intos[i]!.equals(datas[i]!), `round ${round} read ${i}`).toBe(true);
      for (let i = 1; i < n; i += 2) datas[i] = fresh[i]!;
      const back = await Promise.all(datas.map((_, i) => head.read(i * (size / bs), size / bs)));
      for (let i = 0; i < n; i++) expect(back[i]!.equals(datas[i]!), `round ${round} check ${i}`).toBe(true);
    }
  });

  it('refuses a destination shorter than the read, with a clear error', async () => {
    const head = await setup({ digests: false });
    const bs = head.blockSize;
    await expect(head.read(0, 8, Buffer.alloc(8 * bs - 1))).rejects.toThrow(new RegExp(`destination must be a Buffer of at least ${8 * bs} bytes`));
  });
});
