/**
 * NVMe/TCP digests: CRC32C (Castagnoli), initial value ~0, final xor ~0, stored
 * little-endian in 4 bytes after the header (HDGST) or after the data (DDGST).
 * We use a native implementation: digests sit on the data path.
 */
import { crc32c } from '@node-rs/crc32';

export const DIGEST_LENGTH = 4;

/** CRC32C over one buffer, or over several as if they were one. */
export function crc32cOf(data: Buffer | readonly Buffer[]): number {
  if (Buffer.isBuffer(data)) return crc32c(data);
  let crc = 0;
  for (const part of data) crc = crc32c(part, crc);
  return crc >>> 0;
}

/** The 4 wire bytes of a digest over `data`. */
export function digestBytes(data: Buffer | readonly Buffer[]): Buffer {
  const out = Buffer.allocUnsafe(DIGEST_LENGTH);
  out.writeUInt32LE(crc32cOf(data), 0);
  return out;
}
