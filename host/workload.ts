/**
 * A verified workload through a block device (a multipath head): every block
 * written carries its LBA, a generation and a checksum, so a read detects a
 * lost write (older generation or never written), a stale write that landed
 * late (older generation after a newer one was acknowledged), and a misplaced
 * one (another LBA's data). It measures IOPS, throughput, latency percentiles
 * and I/O stalls (gaps with commands outstanding and none completing).
 */
import { realClock, type Clock } from '../shared/clock.ts';
import { crc32cOf } from '../shared/digest.ts';

export interface BlockDevice {
  readonly blockSize: number;
  readonly nblocks: number;
  read(slba: number, nlb: number): Promise<Buffer>;
  write(slba: number, data: Buffer): Promise<void>;
}

export type Pattern = 'read' | 'write' | 'randread' | 'randwrite' | 'randrw' | 'rw';

export interface WorkloadOptions {
  readonly rw: Pattern;
  /** Transfer size in bytes (a multiple of the block size). */
  readonly bs: number;
  readonly qd: number;
  /** Stop after this long... */
  readonly runtimeMs?: number;
  /** ...or after this many I/Os, whichever comes first. */
  readonly ios?: number;
  /** Check every read against what was acknowledged. */
  readonly verify: boolean;
  /** Percentage of reads in randrw / rw (default 50). */
  readonly rwmixread?: number;
  /** Blocks of the device used (default: all, at most 1 GiB worth). */
  readonly spanBlocks?: number;
  readonly seed?: number;
  /** A gap with I/O outstanding and nothing completing longer than this is a stall (default 100 ms). */
  readonly stallThresholdMs?: number;
  /** Called about every progressIntervalMs (default 1000). */
  readonly onProgress?: (p: WorkloadProgress) => void;
  readonly progressIntervalMs?: number;
  /** Updated on every completion: lets a caller sample the run on its own clock. */
  readonly live?: { ios: number; bytes: number; errors: number; mismatches: number };
  readonly signal?: AbortSignal;
  /** Read back every slot written at the end (default: when verify). */
  readonly finalVerify?: boolean;
  /** Elapsed time, latencies, stalls and the runtime deadline; default real time. */
  readonly clock?: Clock;
}

export interface WorkloadProgress {
  readonly elapsedMs: number;
  readonly ios: number;
  readonly iops: number;
  readonly mbps: number;
  readonly errors: number;
  readonly mismatches: number;
}

export interface Mismatch {
  readonly lba: number;
  readonly kind: 'lost' | 'stale' | 'misplaced' | 'corrupt';
  readonly expectedGeneration: number;
  readonly foundGeneration: number;
  readonly foundLba: number;
  readonly atMs: number;
}

export interface Stall {
  readonly startMs: number;
  readonly durationMs: number;
}

export interface WorkloadResult {
  readonly elapsedMs: number;
  readonly ios: number;
  readonly reads: number;
  readonly writes: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly iops: number;
  readonly mbps: number;
  readonly latencyUs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number };
  readonly errors: { readonly atMs: number; readonly op: 'read' | 'write'; readonly slba: number; readonly message: string }[];
  readonly mismatches: Mismatch[];
  /** Blocks checked by the final read-back. */
  readonly verifiedBlocks: number;
  readonly stalls: Stall[];
  readonly maxStallMs: number;
}

const MAGIC = 0x4e564d57; // "NVMW"
const HEADER = 24; // magic u32, lba u64, generation u32, crc u32 (of the rest), slot u32

/** A PRNG with a seed (mulberry32): repeatable workloads. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fill one block: header, then bytes derived from (lba, generation). */
export function fillBlock(block: Buffer, lba: number, generation: number): void {
  block.writeUInt32LE(MAGIC, 0);
  block.writeBigUInt64LE(BigInt(lba), 4);
  block.writeUInt32LE(generation, 12);
  let x = (lba * 2654435761 + generation * 40503) >>> 0;
  for (let i = HEADER; i + 4 <= block.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    block.writeUInt32LE(x >>> 0, i);
  }
  block.writeUInt32LE(crc32cOf(block.subarray(HEADER)), 16);
  block.writeUInt32LE(0, 20);
}

/** What a block holds: null for never written (all zero). */
export function inspectBlock(block: Buffer): { lba: number; generation: number; intact: boolean } | null {
  if (block.readUInt32LE(0) !== MAGIC) return block.every((b) => b === 0) ? null : { lba: -1, generation: -1, intact: false };
  return {
    lba: Number(block.readBigUInt64LE(4)),
    generation: block.readUInt32LE(12),
    intact: block.readUInt32LE(16) === crc32cOf(block.subarray(HEADER)),
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function runWorkload(dev: BlockDevice, o: WorkloadOptions): Promise<WorkloadResult> {
  const bs = dev.blockSize;
  if (o.bs <= 0 || o.bs % bs !== 0) throw new RangeError(`bs ${o.bs} is not a positive multiple of the block size ${bs}`);
  if (!Number.isInteger(o.qd) || o.qd < 1) throw new RangeError(`qd ${o.qd} must be a positive integer`);
  if (o.runtimeMs === undefined && o.ios === undefined) throw new RangeError('give runtimeMs or ios');
  const nlb = o.bs / bs;
  const span = Math.min(o.spanBlocks ?? dev.nblocks, dev.nblocks, Math.floor(2 ** 30 / bs));
  const slots = Math.floor(span / nlb);
  if (slots < 1) throw new RangeError(`the device (${dev.nblocks} blocks) is smaller than one transfer`);
  const rand = prng(o.seed ?? 1);
  const mixRead = (o.rwmixread ?? 50) / 100;
  const stallThreshold = o.stallThresholdMs ?? 100;
  /** Acknowledged generation per slot (0: not written by us); slots with I/O in flight are busy. */
  const acked = new Uint32Array(slots);
  /**
   * Slots whose last write failed: the write may or may not have landed (a
   * no-path error comes only once it can no longer land later, but it may have
   * landed before). Any generation it could have left is accepted, and the
   * first one seen is pinned: the block must not change again without a write.
   */
  const indeterminate = new Map<number, { possible: Set<number>; pinned: (number | null)[] }>();
  const busy = new Uint8Array(slots);
  let nextGen = 1;
  let seqSlot = 0;
  const clock = o.clock ?? realClock;
  const t0 = clock.now();
  const deadline = o.runtimeMs !== undefined ? t0 + o.runtimeMs : Infinity;
  const maxIos = o.ios ?? Infinity;
  let issued = 0;
  let ios = 0;
  let reads = 0;
  let writes = 0;
  let bytesRead = 0;
  let bytesWritten = 0;
  // Latencies: a uniform reservoir sample (Vitter's algorithm R), so a long run
  // keeps percentiles without keeping every completion.
  const LAT_RESERVOIR = 200_000;
  const lat: number[] = [];
  let latSeen = 0;
  let latMax = 0;
  const recordLatency = (us: number): void => {
    latSeen++;
    if (us > latMax) latMax = us;
    if (lat.length < LAT_RESERVOIR) lat.push(us);
    else {
      const j = Math.floor(rand() * latSeen);
      if (j < LAT_RESERVOIR) lat[j] = us;
    }
  };
  const errors: WorkloadResult['errors'] = [];
  const mismatches: Mismatch[] = [];
  const stalls: Stall[] = [];
  let lastCompletion = clock.now();
  const progressEvery = o.progressIntervalMs ?? 1000;
  let progressAt = t0 + progressEvery;
  let progressIos = 0;

  const pickSlot = (): number => {
    const random = o.rw.startsWith('rand');
    for (let tries = 0; tries < 64; tries++) {
      const s = random ? Math.floor(rand() * slots) : seqSlot++ % slots;
      if (!busy[s]) return s;
    }
    return -1;
  };
  const isRead = (): boolean => {
    switch (o.rw) {
      case 'read':
      case 'randread':
        return true;
      case 'write':
      case 'randwrite':
        return false;
      default:
        return rand() < mixRead;
    }
  };

  const check = (slot: number, data: Buffer, atMs: number): void => {
    const expectGen = acked[slot]!;
    const open = indeterminate.get(slot);
    for (let i = 0; i < nlb; i++) {
      const lba = slot * nlb + i;
      const got = inspectBlock(data.subarray(i * bs, (i + 1) * bs));
      if (open) {
        const gen = got === null ? 0 : got.intact && got.lba === lba ? got.generation : -1;
        const pinned = open.pinned[i];
        const ok = pinned === null || pinned === undefined ? open.possible.has(gen) : pinned === gen;
        if (ok) {
          open.pinned[i] = gen;
          continue;
        }
        mismatches.push({
          lba,
          kind: gen === -1 ? 'corrupt' : 'stale',
          expectedGeneration: pinned ?? expectGen,
          foundGeneration: gen,
          foundLba: got?.lba ?? -1,
          atMs,
        });
        continue;
      }
      const kind: Mismatch['kind'] | null =
        got === null
          ? expectGen === 0
            ? null
            : 'lost'
          : !got.intact
            ? 'corrupt'
            : got.lba !== lba
              ? 'misplaced'
              : got.generation === expectGen
                ? null
                : got.generation < expectGen
                  ? expectGen > 0 && got.generation > 0
                    ? 'stale'
                    : 'lost'
                  : 'stale';
      if (kind && !(expectGen === 0 && got !== null && got.lba === lba && got.intact)) {
        // A block we never wrote may hold data from an earlier run: only ours is checked.
        mismatches.push({ lba, kind, expectedGeneration: expectGen, foundGeneration: got?.generation ?? 0, foundLba: got?.lba ?? -1, atMs });
      }
    }
  };

  const one = async (): Promise<void> => {
    const slot = pickSlot();
    if (slot < 0) {
      await new Promise((r) => setImmediate(r));
      return;
    }
    busy[slot] = 1;
    const slba = slot * nlb;
    const read = isRead();
    const start = clock.now();
    try {
      if (read) {
        const data = await dev.read(slba, nlb);
        if (o.verify) check(slot, data, clock.now() - t0);
        reads++;
        bytesRead += o.bs;
      } else {
        const gen = nextGen++;
        const data = Buffer.allocUnsafe(o.bs);
        for (let i = 0; i < nlb; i++) fillBlock(data.subarray(i * bs, (i + 1) * bs), slba + i, gen);
        try {
          await dev.write(slba, data);
        } catch (err) {
          const open = indeterminate.get(slot) ?? { possible: new Set([acked[slot]!]), pinned: new Array<number | null>(nlb).fill(null) };
          open.possible.add(gen);
          open.pinned.fill(null);
          indeterminate.set(slot, open);
          throw err;
        }
        acked[slot] = gen;
        indeterminate.delete(slot);
        writes++;
        bytesWritten += o.bs;
      }
      ios++;
      recordLatency((clock.now() - start) * 1000);
      if (o.live) {
        o.live.ios = ios;
        o.live.bytes += o.bs;
      }
    } catch (err) {
      errors.push({ atMs: clock.now() - t0, op: read ? 'read' : 'write', slba, message: (err as Error).message });
      if (o.live) o.live.errors = errors.length;
    } finally {
      if (o.live) o.live.mismatches = mismatches.length;
      busy[slot] = 0;
      const now = clock.now();
      const gap = now - lastCompletion;
      if (gap > stallThreshold) stalls.push({ startMs: lastCompletion - t0, durationMs: gap });
      lastCompletion = now;
      if (o.onProgress && now >= progressAt) {
        const secs = (now - progressAt + progressEvery) / 1000;
        o.onProgress({
          elapsedMs: now - t0,
          ios,
          iops: (ios - progressIos) / secs,
          mbps: ((ios - progressIos) * o.bs) / secs / 1e6,
          errors: errors.length,
          mismatches: mismatches.length,
        });
        progressIos = ios;
        progressAt = now + progressEvery;
      }
    }
  };

  const worker = async (): Promise<void> => {
    while (issued < maxIos && clock.now() < deadline && !o.signal?.aborted) {
      issued++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: o.qd }, worker));
  const elapsedMs = clock.now() - t0;

  let verifiedBlocks = 0;
  if (o.finalVerify ?? o.verify) {
    const batch = Math.max(1, Math.floor((1 << 20) / o.bs));
    const written: number[] = [];
    for (let s = 0; s < slots; s++) if (acked[s] || indeterminate.has(s)) written.push(s);
    for (let i = 0; i < written.length; i += batch) {
      await Promise.all(
        written.slice(i, i + batch).map(async (slot) => {
          try {
            check(slot, await dev.read(slot * nlb, nlb), clock.now() - t0);
            verifiedBlocks += nlb;
          } catch (err) {
            errors.push({ atMs: clock.now() - t0, op: 'read', slba: slot * nlb, message: `final verify: ${(err as Error).message}` });
          }
        }),
      );
    }
  }
  const sorted = Float64Array.from(lat).sort();
  return {
    elapsedMs,
    ios,
    reads,
    writes,
    bytesRead,
    bytesWritten,
    iops: ios / (elapsedMs / 1000),
    mbps: (bytesRead + bytesWritten) / (elapsedMs / 1000) / 1e6,
    latencyUs: { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: latMax },
    errors,
    mismatches,
    verifiedBlocks,
    stalls,
    maxStallMs: stalls.reduce((m, s) => Math.max(m, s.durationMs), 0),
  };
}
