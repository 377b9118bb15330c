/** Completion queue entries (16 bytes). */
import { CQE_LENGTH } from './pdu.ts';

export interface Cqe {
  /** Command specific result, DW0. */
  readonly result: number;
  readonly dw1: number;
  readonly sqhd: number;
  readonly sqid: number;
  readonly cid: number;
  /** Status without the phase tag (see status.ts). */
  readonly status: number;
}

export function encodeCqe(c: Cqe, into: Buffer = Buffer.alloc(CQE_LENGTH)): Buffer {
  into.writeUInt32LE(c.result >>> 0, 0);
  into.writeUInt32LE(c.dw1 >>> 0, 4);
  into.writeUInt16LE(c.sqhd & 0xffff, 8);
  into.writeUInt16LE(c.sqid & 0xffff, 10);
  into.writeUInt16LE(c.cid & 0xffff, 12);
  // Fabrics has no phase tag semantics; it is sent as 0.
  into.writeUInt16LE((c.status << 1) & 0xfffe, 14);
  return into;
}

export function decodeCqe(b: Buffer): Cqe {
  if (b.length < CQE_LENGTH) throw new RangeError(`CQE needs ${CQE_LENGTH} bytes, got ${b.length}`);
  return {
    result: b.readUInt32LE(0),
    dw1: b.readUInt32LE(4),
    sqhd: b.readUInt16LE(8),
    sqid: b.readUInt16LE(10),
    cid: b.readUInt16LE(12),
    status: b.readUInt16LE(14) >>> 1,
  };
}

/** The 64-bit result of Property Get (DW0 low, DW1 high). */
export function result64(c: Cqe): bigint {
  return BigInt(c.result >>> 0) | (BigInt(c.dw1 >>> 0) << 32n);
}
