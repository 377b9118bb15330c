/**
 * SGL descriptors (16 bytes, at SQE bytes 24-39 when PSDT selects SGLs).
 * NVMe/TCP uses two: Data Block with offset addressing for in-capsule data
 * (0x01) and the Transport SGL Data Block (0x5A) for data moved by
 * C2HData/R2T/H2CData. Anything else is refused by the target.
 */

export const SglType = {
  DataBlock: 0x0,
  BitBucket: 0x1,
  Segment: 0x2,
  LastSegment: 0x3,
  KeyedDataBlock: 0x4,
  TransportDataBlock: 0x5,
} as const;

export const SglSubtype = {
  Address: 0x0,
  Offset: 0x1,
  TransportSpecific: 0xa,
} as const;

/** The two descriptor bytes NVMe/TCP uses, as they appear at byte 15. */
export const SGL_INCAPSULE = (SglType.DataBlock << 4) | SglSubtype.Offset; // 0x01
export const SGL_TRANSPORT = (SglType.TransportDataBlock << 4) | SglSubtype.TransportSpecific; // 0x5A

export interface SglDescriptor {
  /** Address or offset (in-capsule: offset into the capsule's data). */
  readonly address: bigint;
  readonly length: number;
  /** Byte 15: type in bits 7:4, subtype in bits 3:0. */
  readonly id: number;
}

export function sglType(d: SglDescriptor): number {
  return d.id >> 4;
}
export function sglSubtype(d: SglDescriptor): number {
  return d.id & 0xf;
}

export function decodeSgl(buf: Buffer, offset = 0): SglDescriptor {
  return {
    address: buf.readBigUInt64LE(offset),
    length: buf.readUInt32LE(offset + 8),
    id: buf[offset + 15]!,
  };
}

export function encodeSgl(d: SglDescriptor, buf: Buffer, offset = 0): void {
  buf.writeBigUInt64LE(d.address, offset);
  buf.writeUInt32LE(d.length >>> 0, offset + 8);
  buf[offset + 12] = 0;
  buf[offset + 13] = 0;
  buf[offset + 14] = 0;
  buf[offset + 15] = d.id;
}

export const NO_SGL: SglDescriptor = { address: 0n, length: 0, id: SGL_TRANSPORT };

export function inCapsuleSgl(length: number): SglDescriptor {
  return { address: 0n, length, id: SGL_INCAPSULE };
}
export function transportSgl(length: number): SglDescriptor {
  return { address: 0n, length, id: SGL_TRANSPORT };
}
