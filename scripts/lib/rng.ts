/**
 * The one seeded PRNG of the tests, the fuzzer and the scripts: sfc32 (small,
 * fast, passes PractRand far beyond what a test draws) seeded from a
 * (seed, stream) pair, so that a sequence is reproducible from the pair alone,
 * whatever ran before it. The fuzzer uses (run seed, input index): one input
 * replays without the ones before it. Not for anything secret.
 * Tests import it as test/helpers/rng.ts; it lives here because scripts/
 * import no test code.
 */

/** 32-bit FNV-1a of a string, then a murmur3 finalizer. */
function hash32(text: string, salt: number): number {
  let h = 0x811c9dc5 ^ salt;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** The same (seed, stream) always gives the same sequence; the key is `${seed}/${stream}` (the fuzzer's replays rely on it). */
  constructor(seed: string | number, stream = 0) {
    const key = `${seed}/${stream}`;
    this.#a = hash32(key, 1);
    this.#b = hash32(key, 2);
    this.#c = hash32(key, 3);
    this.#d = hash32(key, 4) | 1;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniformly random 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 0x100000000;
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    if (hi <= lo) return lo;
    const span = hi - lo + 1;
    if (span <= 0x100000000) return lo + Math.floor(this.float() * span);
    return lo + Math.floor((this.u32() * 0x100000000 + this.u32()) % span);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One of items, uniformly (items must not be empty). */
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }

  /** Pick by weight: [[value, weight], ...]. */
  weighted<T>(entries: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of entries) total += w;
    let r = this.float() * total;
    for (const [v, w] of entries) {
      r -= w;
      if (r < 0) return v;
    }
    return entries[entries.length - 1]![0];
  }

  /** n random bytes. */
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) b.writeUInt32LE(this.u32(), i);
    for (; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  /** A "interesting" 32-bit value: boundaries, small numbers, powers of two, or random. */
  edgy32(): number {
    switch (this.int(0, 7)) {
      case 0:
        return this.pick([0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]);
      case 1:
        return 2 ** this.int(0, 31);
      case 2:
        return (2 ** this.int(1, 31) + this.int(-2, 2)) >>> 0;
      case 3:
        return this.int(0, 255);
      case 4:
        return this.int(0, 65535);
      default:
        return this.u32();
    }
  }
}
