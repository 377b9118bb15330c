/** The verified workload's checker on a fake device: it must catch what it claims to catch. */
import { describe, expect, it } from 'vitest';
import { fillBlock, inspectBlock, runWorkload, type BlockDevice } from '../../host/workload.ts';

class FakeDevice implements BlockDevice {
  readonly blockSize = 512;
  readonly nblocks = 256;
  readonly data = Buffer.alloc(256 * 512);
  /** Called before each write lands; may throw (after landing or not) or drop it. */
  onWrite: (slba: number, data: Buffer) => 'land' | 'drop' | 'land-then-fail' | 'fail' = () => 'land';
  async read(slba: number, nlb: number): Promise<Buffer> {
    return Buffer.from(this.data.subarray(slba * 512, (slba + nlb) * 512));
  }
  async write(slba: number, data: Buffer): Promise<void> {
    const what = this.onWrite(slba, data);
    if (what === 'land' || what === 'land-then-fail') data.copy(this.data, slba * 512);
    if (what === 'land-then-fail' || what === 'fail') throw new Error('injected failure');
  }
}

const opts = { rw: 'randrw' as const, bs: 4096, qd: 4, ios: 2000, verify: true, seed: 9 };

describe('verified workload', () => {
  it('a clean device gives no mismatch and reads everything back', async () => {
    const r = await runWorkload(new FakeDevice(), opts);
    expect(r.mismatches).toEqual([]);
    expect(r.errors).toEqual([]);
    expect(r.verifiedBlocks).toBeGreaterThan(0);
  });

  it('detects a lost write (acknowledged, never landed)', async () => {
    const dev = new FakeDevice();
    let n = 0;
    dev.onWrite = () => (++n === 50 ? 'drop' : 'land');
    const r = await runWorkload(dev, { ...opts, rw: 'randwrite', ios: 50 });
    expect(r.mismatches.length).toBeGreaterThan(0);
  });

  it('detects misplaced data', async () => {
    const dev = new FakeDevice();
    let n = 0;
    dev.onWrite = (slba, data) => {
      if (++n === 50) {
        data.copy(dev.data, ((slba + 8) % 256) * 512);
        return 'drop';
      }
      return 'land';
    };
    const r = await runWorkload(dev, { ...opts, rw: 'randwrite', ios: 50 });
    expect(r.mismatches.some((m) => m.kind === 'misplaced')).toBe(true);
  });

  it('a failed write may or may not have landed: either is accepted, but the block may not change again', async () => {
    const dev = new FakeDevice();
    let n = 0;
    dev.onWrite = () => (++n % 30 === 0 ? 'land-then-fail' : n % 31 === 0 ? 'fail' : 'land');
    const r = await runWorkload(dev, opts);
    expect(r.errors.length).toBeGreaterThan(0);
    expect(r.mismatches).toEqual([]);
    // Now a block whose write failed changes behind the workload's back: caught.
    const dev2 = new FakeDevice();
    let m = 0;
    let victim = -1;
    dev2.onWrite = (slba) => {
      m++;
      if (m === 20) {
        victim = slba;
        return 'fail';
      }
      if (m > 20 && m % 10 === 0 && victim >= 0) fillBlock(dev2.data.subarray(victim * 512, victim * 512 + 512), victim, 999_999);
      return 'land';
    };
    const r2 = await runWorkload(dev2, { ...opts, rw: 'randrw', ios: 3000 });
    expect(inspectBlock(dev2.data.subarray(victim * 512, victim * 512 + 512))?.generation).toBe(999_999);
    expect(r2.mismatches.some((x) => x.lba === victim)).toBe(true);
  });
});
