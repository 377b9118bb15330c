/**
 * Submission queue entries (64 bytes): the generic layout, typed views of the
 * commands the project uses, and builders that produce them.
 */
import { AdminOpcode, FabricsType, IoOpcode } from './opcodes.ts';
import { SQE_LENGTH } from './pdu.ts';
import { decodeSgl, encodeSgl, inCapsuleSgl, transportSgl, NO_SGL, type SglDescriptor } from './sgl.ts';

/** CDW0 flags: PSDT in bits 7:6 (01b = SGL, metadata contiguous), FUSE in 1:0. */
export const PSDT_SGL = 0x40;
export const PSDT_MASK = 0xc0;
export const FUSE_MASK = 0x03;

export interface Sqe {
  readonly opcode: number;
  readonly flags: number;
  readonly cid: number;
  /** For Fabrics commands byte 4 holds FCTYPE; read it with fabricsType(). */
  readonly nsid: number;
  readonly cdw2: number;
  readonly cdw3: number;
  readonly mptr: bigint;
  readonly sgl: SglDescriptor;
  readonly cdw10: number;
  readonly cdw11: number;
  readonly cdw12: number;
  readonly cdw13: number;
  readonly cdw14: number;
  readonly cdw15: number;
}

export function decodeSqe(b: Buffer): Sqe {
  if (b.length < SQE_LENGTH) throw new RangeError(`SQE needs ${SQE_LENGTH} bytes, got ${b.length}`);
  return {
    opcode: b[0]!,
    flags: b[1]!,
    cid: b.readUInt16LE(2),
    nsid: b.readUInt32LE(4),
    cdw2: b.readUInt32LE(8),
    cdw3: b.readUInt32LE(12),
    mptr: b.readBigUInt64LE(16),
    sgl: decodeSgl(b, 24),
    cdw10: b.readUInt32LE(40),
    cdw11: b.readUInt32LE(44),
    cdw12: b.readUInt32LE(48),
    cdw13: b.readUInt32LE(52),
    cdw14: b.readUInt32LE(56),
    cdw15: b.readUInt32LE(60),
  };
}

export function encodeSqe(s: Sqe, into: Buffer = Buffer.alloc(SQE_LENGTH)): Buffer {
  into[0] = s.opcode;
  into[1] = s.flags;
  into.writeUInt16LE(s.cid, 2);
  into.writeUInt32LE(s.nsid >>> 0, 4);
  into.writeUInt32LE(s.cdw2 >>> 0, 8);
  into.writeUInt32LE(s.cdw3 >>> 0, 12);
  into.writeBigUInt64LE(s.mptr, 16);
  encodeSgl(s.sgl, into, 24);
  into.writeUInt32LE(s.cdw10 >>> 0, 40);
  into.writeUInt32LE(s.cdw11 >>> 0, 44);
  into.writeUInt32LE(s.cdw12 >>> 0, 48);
  into.writeUInt32LE(s.cdw13 >>> 0, 52);
  into.writeUInt32LE(s.cdw14 >>> 0, 56);
  into.writeUInt32LE(s.cdw15 >>> 0, 60);
  return into;
}

/** A new SQE with the given fields; SGL PSDT set, everything else zero. */
export function sqe(fields: Partial<Sqe> & { opcode: number }): Sqe {
  return {
    flags: PSDT_SGL,
    cid: 0,
    nsid: 0,
    cdw2: 0,
    cdw3: 0,
    mptr: 0n,
    sgl: NO_SGL,
    cdw10: 0,
    cdw11: 0,
    cdw12: 0,
    cdw13: 0,
    cdw14: 0,
    cdw15: 0,
    ...fields,
  };
}

export function withCid(s: Sqe, cid: number): Sqe {
  return { ...s, cid };
}

// ---------------------------------------------------------------- Fabrics

export function fabricsType(s: Sqe): number {
  return s.nsid & 0xff;
}

export interface ConnectCommand {
  readonly recfmt: number;
  readonly qid: number;
  /** 0's based. */
  readonly sqsize: number;
  readonly cattr: number;
  /** Keep-alive timeout in ms (admin queue). */
  readonly kato: number;
}

/** CATTR bit 2: the host disables SQ flow control (SQHD may be ignored). */
export const CATTR_DISABLE_SQ_FLOW_CONTROL = 0x04;

export function decodeConnect(s: Sqe): ConnectCommand {
  return {
    recfmt: s.cdw10 & 0xffff,
    qid: s.cdw10 >>> 16,
    sqsize: s.cdw11 & 0xffff,
    cattr: (s.cdw11 >>> 16) & 0xff,
    kato: s.cdw12 >>> 0,
  };
}

export function connectCommand(c: ConnectCommand): Sqe {
  return sqe({
    opcode: AdminOpcode.Fabrics,
    nsid: FabricsType.Connect,
    sgl: inCapsuleSgl(1024),
    cdw10: (c.recfmt & 0xffff) | (c.qid << 16),
    cdw11: (c.sqsize & 0xffff) | ((c.cattr & 0xff) << 16),
    cdw12: c.kato,
  });
}

export interface PropertyCommand {
  /** ATTRIB bits 2:0: 0 = 4-byte property, 1 = 8-byte property. */
  readonly size: 4 | 8;
  readonly offset: number;
  /** Property Set only. */
  readonly value: bigint;
}

export function decodeProperty(s: Sqe): PropertyCommand & { readonly attribInvalid: boolean } {
  const attrib = s.cdw10 & 0x7;
  return {
    size: attrib === 1 ? 8 : 4,
    attribInvalid: attrib > 1,
    offset: s.cdw11 >>> 0,
    value: BigInt(s.cdw12 >>> 0) | (BigInt(s.cdw13 >>> 0) << 32n),
  };
}

export function propertyGetCommand(offset: number, size: 4 | 8): Sqe {
  return sqe({ opcode: AdminOpcode.Fabrics, nsid: FabricsType.PropertyGet, cdw10: size === 8 ? 1 : 0, cdw11: offset });
}

export function propertySetCommand(offset: number, value: bigint | number, size: 4 | 8): Sqe {
  const v = BigInt(value);
  return sqe({
    opcode: AdminOpcode.Fabrics,
    nsid: FabricsType.PropertySet,
    cdw10: size === 8 ? 1 : 0,
    cdw11: offset,
    cdw12: Number(v & 0xffffffffn),
    cdw13: Number((v >> 32n) & 0xffffffffn),
  });
}

// ---------------------------------------------------------------- Admin

export interface IdentifyCommand {
  readonly cns: number;
  readonly cntid: number;
  readonly nsid: number;
  readonly csi: number;
}

export function decodeIdentify(s: Sqe): IdentifyCommand {
  return { cns: s.cdw10 & 0xff, cntid: s.cdw10 >>> 16, nsid: s.nsid, csi: (s.cdw11 >>> 24) & 0xff };
}

export function identifyCommand(c: { cns: number; nsid?: number; cntid?: number; csi?: number }): Sqe {
  return sqe({
    opcode: AdminOpcode.Identify,
    nsid: c.nsid ?? 0,
    sgl: transportSgl(4096),
    cdw10: (c.cns & 0xff) | ((c.cntid ?? 0) << 16),
    cdw11: ((c.csi ?? 0) & 0xff) << 24,
  });
}

export interface AbortCommand {
  readonly sqid: number;
  readonly cid: number;
}
export function decodeAbort(s: Sqe): AbortCommand {
  return { sqid: s.cdw10 & 0xffff, cid: s.cdw10 >>> 16 };
}
export function abortCommand(a: AbortCommand): Sqe {
  return sqe({ opcode: AdminOpcode.Abort, cdw10: (a.sqid & 0xffff) | (a.cid << 16) });
}

export function keepAliveCommand(): Sqe {
  return sqe({ opcode: AdminOpcode.KeepAlive });
}
export function asyncEventRequestCommand(): Sqe {
  return sqe({ opcode: AdminOpcode.AsyncEventRequest });
}

/** Set/Get Features: FID in CDW10 bits 7:0; SV (set) bit 31; SEL (get) bits 10:8. */
export function setFeaturesCommand(fid: number, cdw11: number, opts: { nsid?: number; save?: boolean; data?: number } = {}): Sqe {
  return sqe({
    opcode: AdminOpcode.SetFeatures,
    nsid: opts.nsid ?? 0,
    sgl: opts.data ? inCapsuleSgl(opts.data) : NO_SGL,
    cdw10: (fid & 0xff) | (opts.save ? 0x80000000 : 0),
    cdw11,
  });
}
export function getFeaturesCommand(fid: number, opts: { nsid?: number; sel?: number; cdw11?: number; data?: number } = {}): Sqe {
  return sqe({
    opcode: AdminOpcode.GetFeatures,
    nsid: opts.nsid ?? 0,
    sgl: opts.data ? transportSgl(opts.data) : NO_SGL,
    cdw10: (fid & 0xff) | ((opts.sel ?? 0) << 8),
    cdw11: opts.cdw11 ?? 0,
  });
}
export function decodeFeatures(s: Sqe): { fid: number; save: boolean; sel: number } {
  return { fid: s.cdw10 & 0xff, save: (s.cdw10 & 0x80000000) !== 0, sel: (s.cdw10 >>> 8) & 0x7 };
}

export function getLogPageCommand(dw: { nsid?: number; cdw10: number; cdw11: number; cdw12: number; cdw13: number; cdw14?: number }, length: number): Sqe {
  return sqe({
    opcode: AdminOpcode.GetLogPage,
    nsid: dw.nsid ?? 0,
    sgl: transportSgl(length),
    cdw10: dw.cdw10,
    cdw11: dw.cdw11,
    cdw12: dw.cdw12,
    cdw13: dw.cdw13,
    cdw14: dw.cdw14 ?? 0,
  });
}

/** Vendor 0xFE: make the path through the receiving controller active for nsid. */
export function setNamespaceActiveCommand(nsid: number): Sqe {
  return sqe({ opcode: AdminOpcode.SetNamespaceActive, nsid });
}
/** Vendor 0xFC: 1024 bytes, bytes 0-15 the namespace's persistent NGUID. */
export function getPersistentNsIdCommand(nsid: number): Sqe {
  return sqe({ opcode: AdminOpcode.GetPersistentNsId, nsid, sgl: transportSgl(1024) });
}
export const PERSISTENT_NSID_DATA_LENGTH = 1024;

// ---------------------------------------------------------------- NVM I/O

export interface RwCommand {
  readonly nsid: number;
  readonly slba: number;
  /** Number of logical blocks (1-based; the wire carries it 0's based). */
  readonly nlb: number;
  readonly fua: boolean;
  readonly lr: boolean;
  /** Write Zeroes: deallocate. */
  readonly deac: boolean;
}

export function decodeRw(s: Sqe): RwCommand {
  return {
    nsid: s.nsid,
    slba: s.cdw11 * 0x100000000 + s.cdw10,
    nlb: (s.cdw12 & 0xffff) + 1,
    fua: (s.cdw12 & 0x40000000) !== 0,
    lr: (s.cdw12 & 0x80000000) !== 0,
    deac: (s.cdw12 & 0x02000000) !== 0,
  };
}

function rw(opcode: number, nsid: number, slba: number, nlb: number, sgl: SglDescriptor, extra = 0): Sqe {
  if (nlb < 1 || nlb > 0x10000) throw new RangeError(`nlb ${nlb} out of range 1..65536`);
  return sqe({
    opcode,
    nsid,
    sgl,
    cdw10: slba % 0x100000000,
    cdw11: Math.floor(slba / 0x100000000),
    cdw12: ((nlb - 1) & 0xffff) | extra,
  });
}

export function readCommand(nsid: number, slba: number, nlb: number, bytes: number): Sqe {
  return rw(IoOpcode.Read, nsid, slba, nlb, transportSgl(bytes));
}
/** inCapsule: data travels in the command capsule; otherwise by R2T/H2CData. */
export function writeCommand(nsid: number, slba: number, nlb: number, bytes: number, inCapsule: boolean, fua = false): Sqe {
  return rw(IoOpcode.Write, nsid, slba, nlb, inCapsule ? inCapsuleSgl(bytes) : transportSgl(bytes), fua ? 0x40000000 : 0);
}
export function compareCommand(nsid: number, slba: number, nlb: number, bytes: number, inCapsule: boolean): Sqe {
  return rw(IoOpcode.Compare, nsid, slba, nlb, inCapsule ? inCapsuleSgl(bytes) : transportSgl(bytes));
}
export function writeZeroesCommand(nsid: number, slba: number, nlb: number, deac = false): Sqe {
  return rw(IoOpcode.WriteZeroes, nsid, slba, nlb, NO_SGL, deac ? 0x02000000 : 0);
}
export function flushCommand(nsid: number): Sqe {
  return sqe({ opcode: IoOpcode.Flush, nsid });
}

// Dataset Management: CDW10 NR (0's based), CDW11 attributes (bit 2 AD).
export interface DsmRange {
  readonly cattr: number;
  readonly nlb: number;
  readonly slba: number;
}
export const DSM_RANGE_LENGTH = 16;
export const DSM_ATTR_DEALLOCATE = 0x4;

export function decodeDsm(s: Sqe): { nr: number; deallocate: boolean; attributes: number } {
  return { nr: (s.cdw10 & 0xff) + 1, deallocate: (s.cdw11 & DSM_ATTR_DEALLOCATE) !== 0, attributes: s.cdw11 };
}
export function decodeDsmRanges(data: Buffer, nr: number): DsmRange[] {
  const ranges: DsmRange[] = [];
  for (let i = 0; i < nr; i++) {
    const o = i * DSM_RANGE_LENGTH;
    ranges.push({ cattr: data.readUInt32LE(o), nlb: data.readUInt32LE(o + 4), slba: Number(data.readBigUInt64LE(o + 8)) });
  }
  return ranges;
}
export function encodeDsmRanges(ranges: readonly DsmRange[]): Buffer {
  const b = Buffer.alloc(ranges.length * DSM_RANGE_LENGTH);
  ranges.forEach((r, i) => {
    const o = i * DSM_RANGE_LENGTH;
    b.writeUInt32LE(r.cattr >>> 0, o);
    b.writeUInt32LE(r.nlb >>> 0, o + 4);
    b.writeBigUInt64LE(BigInt(r.slba), o + 8);
  });
  return b;
}
export function datasetManagementCommand(nsid: number, ranges: readonly DsmRange[], deallocate: boolean): Sqe {
  if (ranges.length < 1 || ranges.length > 256) throw new RangeError('DSM takes 1..256 ranges');
  return sqe({
    opcode: IoOpcode.DatasetManagement,
    nsid,
    sgl: inCapsuleSgl(ranges.length * DSM_RANGE_LENGTH),
    cdw10: ranges.length - 1,
    cdw11: deallocate ? DSM_ATTR_DEALLOCATE : 0,
  });
}
