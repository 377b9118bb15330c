/**
 * A lean load generator for the benchmark: `qd` workers issue reads or writes
 * of `bs` bytes (random or sequential) through a device until told to stop,
 * recording each latency. No verification and no per-I/O data generation (the
 * write buffers are filled once), and each worker reads into its own buffer,
 * reused from I/O to I/O as fio reuses its io_u buffers, so the host-side cost
 * measured is the I/O stack's, as the raw baseline's client measures only the
 * socket's.
 */
import { Rng } from '../lib/rng.ts';

export interface LoadDevice {
  read(slba: number, nlb: number, into?: Buffer): Promise<unknown>;
  write(slba: number, data: Buffer): Promise<unknown>;
}

export type LoadPattern = 'randread' | 'randwrite' | 'read' | 'write' | 'randrw';

export interface LoadOptions {
  readonly pattern: LoadPattern;
  readonly bs: number;
  readonly qd: number;
  readonly blockSize: number;
  /** Blocks of the device used, from LBA 0. */
  readonly spanBlocks: number;
  /** Stop after this long (ms)... */
  readonly ms?: number;
  /** ...or after this many bytes moved... */
  readonly bytes?: number;
  /** ...or when this returns true (checked before each I/O). */
  readonly stop?: () => boolean;
  /** Called after each completion with performance.now(). */
  readonly onComplete?: (now: number) => void;
  readonly seed?: number;
  /** Keep latencies (default true). */
  readonly latencies?: boolean;
}

export interface LoadResult {
  readonly ops: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly errors: number;
  readonly firstError: string | null;
  /** Sorted, microseconds. */
  readonly latenciesUs: Float64Array;
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function runLoad(dev: LoadDevice, o: LoadOptions): Promise<LoadResult> {
  const nlb = o.bs / o.blockSize;
  const slots = Math.max(1, Math.floor(o.spanBlocks / nlb));
  const rng = new Rng(o.seed ?? 1);
  const rand = () => rng.float();
  const random = o.pattern.startsWith('rand');
  const t0 = performance.now();
  const deadline = o.ms !== undefined ? t0 + o.ms : Infinity;
  const maxBytes = o.bytes ?? Infinity;
  const keepLat = o.latencies !== false;
  let lat = new Float64Array(1 << 16);
  let nLat = 0;
  let ops = 0;
  let issuedBytes = 0;
  let errors = 0;
  let firstError: string | null = null;
  let seq = 0;
  const worker = async (w: number): Promise<void> => {
    const buf = Buffer.alloc(o.bs, 0x40 + (w % 64));
    for (;;) {
      if (issuedBytes >= maxBytes || (o.stop && o.stop())) return;
      const start = performance.now();
      if (start >= deadline) return;
      issuedBytes += o.bs;
      const slot = random ? Math.floor(rand() * slots) : seq++ % slots;
      const write = o.pattern === 'randwrite' || o.pattern === 'write' || (o.pattern === 'randrw' && rand() < 0.5);
      try {
        if (write) await dev.write(slot * nlb, buf);
        else await dev.read(slot * nlb, nlb, buf);
        ops++;
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
      const now = performance.now();
      if (keepLat) {
        if (nLat === lat.length) {
          const bigger = new Float64Array(lat.length * 2);
          bigger.set(lat);
          lat = bigger;
        }
        lat[nLat++] = (now - start) * 1000;
      }
      o.onComplete?.(now);
    }
  };
  await Promise.all(Array.from({ length: o.qd }, (_, i) => worker(i)));
  const seconds = (performance.now() - t0) / 1000;
  return { ops, bytes: ops * o.bs, seconds, errors, firstError, latenciesUs: lat.slice(0, nLat).sort() };
}
