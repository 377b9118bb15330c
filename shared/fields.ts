/**
 * Field helpers for fixed-layout structures (Identify, log pages, features):
 * range-checked integers, 64/128-bit counters, space-padded ASCII and
 * NUL-terminated NQN fields. Every error is a RangeError naming the field.
 */

export const U64_MAX = (1n << 64n) - 1n;
export const U128_MAX = (1n << 128n) - 1n;

export function requireLength(buf: Buffer, size: number, what: string): void {
  if (buf.length < size) {
    throw new RangeError(`${what}: buffer is ${buf.length} bytes, need at least ${size}`);
  }
}

/** An unsigned integer of `bits`; 32-bit fields also take the signed result of JS bitwise operators. */
export function uint(value: number, bits: number, name: string): number {
  if (!Number.isInteger(value)) throw new RangeError(`${name}: ${value} is not an integer`);
  if (bits === 32 && value < 0 && value >= -0x80000000) return value >>> 0;
  if (value < 0 || value > 2 ** bits - 1) throw new RangeError(`${name}: ${value} does not fit in ${bits} bits`);
  return value;
}

export function writeU64(buf: Buffer, off: number, value: bigint, name: string): void {
  if (value < 0n || value > U64_MAX) throw new RangeError(`${name}: ${value} does not fit in 64 bits`);
  buf.writeBigUInt64LE(value, off);
}

export function writeU128(buf: Buffer, off: number, value: bigint, name: string): void {
  if (value < 0n || value > U128_MAX) throw new RangeError(`${name}: ${value} does not fit in 128 bits`);
  buf.writeBigUInt64LE(value & U64_MAX, off);
  buf.writeBigUInt64LE(value >> 64n, off + 8);
}

export function readU128(buf: Buffer, off: number): bigint {
  return buf.readBigUInt64LE(off) | (buf.readBigUInt64LE(off + 8) << 64n);
}

/** A printable-ASCII field of `len` bytes, padded with `pad` (spaces unless told). */
export function writeAscii(buf: Buffer, off: number, len: number, value: string, name: string, pad = 0x20): void {
  if (value.length > len) throw new RangeError(`${name}: "${value}" is longer than ${len} characters`);
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new RangeError(`${name}: character ${i} is not printable ASCII`);
  }
  buf.fill(pad, off, off + len);
  buf.write(value, off, 'latin1');
}

/** Reads an ASCII field, stopping at a NUL and dropping trailing spaces. */
export function readAscii(buf: Buffer, off: number, len: number): string {
  const s = buf.toString('latin1', off, off + len);
  const nul = s.indexOf('\0');
  return (nul >= 0 ? s.slice(0, nul) : s).replace(/ +$/, '');
}

export function writeNqn(buf: Buffer, off: number, len: number, value: string, name: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > len - 1) {
    throw new RangeError(`${name}: ${bytes.length} bytes do not fit a ${len}-byte NUL-terminated field`);
  }
  buf.fill(0, off, off + len);
  bytes.copy(buf, off);
}

export function readNqn(buf: Buffer, off: number, len: number): string {
  const field = buf.subarray(off, off + len);
  const nul = field.indexOf(0);
  return field.toString('utf8', 0, nul >= 0 ? nul : len);
}

/** An unsigned integer of `bits`, negative values refused even for 32-bit fields. */
export function uintStrict(value: number, bits: number, name: string): number {
  if (!Number.isInteger(value)) throw new RangeError(`${name}: ${value} is not an integer`);
  if (value < 0 || value > 2 ** bits - 1) throw new RangeError(`${name}: ${value} does not fit in ${bits} bits`);
  return value;
}
