/**
 * NVMe/TCP PDUs (NVMe/TCP Transport Specification 1.0): types, the typed union,
 * and encoders. Decoding lives in framer.ts, which also frames the byte stream.
 *
 * Encoders return the PDU as a list of buffers (header with its digest, payload
 * slices, data digest) so that payloads go to the socket without being copied.
 */
import { DIGEST_LENGTH, crc32cOf, digestBytes } from './digest.ts';

export const PduType = {
  ICReq: 0x00,
  ICResp: 0x01,
  H2CTermReq: 0x02,
  C2HTermReq: 0x03,
  CapsuleCmd: 0x04,
  CapsuleResp: 0x05,
  H2CData: 0x06,
  C2HData: 0x07,
  R2T: 0x09,
} as const;
export type PduTypeValue = (typeof PduType)[keyof typeof PduType];

export const PduFlag = {
  HDGSTF: 0x01,
  DDGSTF: 0x02,
  /** H2CData/C2HData: last PDU of this data transfer. */
  LAST_PDU: 0x04,
  /** C2HData: the command completed successfully; no CapsuleResp follows. */
  SUCCESS: 0x08,
} as const;

/** Fixed header lengths per PDU type. */
export const HeaderLength = {
  [PduType.ICReq]: 128,
  [PduType.ICResp]: 128,
  [PduType.H2CTermReq]: 24,
  [PduType.C2HTermReq]: 24,
  [PduType.CapsuleCmd]: 72,
  [PduType.CapsuleResp]: 24,
  [PduType.H2CData]: 24,
  [PduType.C2HData]: 24,
  [PduType.R2T]: 24,
} as const satisfies Record<PduTypeValue, number>;

export const COMMON_HEADER_LENGTH = 8;
export const SQE_LENGTH = 64;
export const CQE_LENGTH = 16;
/**
 * Term PDUs carry at most this many bytes of the offending PDU header: the
 * whole Term PDU is at most 152 bytes (NVMe/TCP; Linux NVME_TCP_MAX_C2HTERM_PLEN).
 */
export const TERM_MAX_DATA = 128;

/** Fatal Error Status of a C2HTermReq/H2CTermReq. */
export const Fes = {
  InvalidHeaderField: 0x01,
  PduSequenceError: 0x02,
  HeaderDigestError: 0x03,
  DataTransferOutOfRange: 0x04,
  DataTransferLimitExceeded: 0x05,
  UnsupportedParameter: 0x06,
} as const;
export type FesValue = (typeof Fes)[keyof typeof Fes];

const fesNames = new Map<number, string>(Object.entries(Fes).map(([k, v]) => [v, k]));
export function fesName(fes: number): string {
  return fesNames.get(fes) ?? `FES-0x${fes.toString(16)}`;
}

export function pduTypeName(type: number): string {
  for (const [name, value] of Object.entries(PduType)) if (value === type) return name;
  return `type-0x${type.toString(16)}`;
}

export interface IcReqPdu {
  readonly type: typeof PduType.ICReq;
  readonly pfv: number;
  readonly hpda: number;
  readonly hdgst: boolean;
  readonly ddgst: boolean;
  /** Maximum outstanding R2Ts per command, 0's based. */
  readonly maxr2t: number;
}
export interface IcRespPdu {
  readonly type: typeof PduType.ICResp;
  readonly pfv: number;
  readonly cpda: number;
  readonly hdgst: boolean;
  readonly ddgst: boolean;
  readonly maxh2cdata: number;
}
export interface TermReqPdu {
  readonly type: typeof PduType.H2CTermReq | typeof PduType.C2HTermReq;
  readonly fes: number;
  readonly fei: number;
  /** A copy (prefix) of the header of the PDU that caused the error. */
  readonly errorHeader: Buffer;
}
export interface CapsuleCmdPdu {
  readonly type: typeof PduType.CapsuleCmd;
  readonly sqe: Buffer;
  /** In-capsule data (empty when none). A view into the received bytes. */
  readonly data: Buffer;
  readonly dataDigestError: boolean;
}
export interface CapsuleRespPdu {
  readonly type: typeof PduType.CapsuleResp;
  readonly cqe: Buffer;
}
export interface H2CDataPdu {
  readonly type: typeof PduType.H2CData;
  readonly cccid: number;
  readonly ttag: number;
  readonly datao: number;
  readonly datal: number;
  readonly last: boolean;
  readonly data: Buffer;
  readonly dataDigestError: boolean;
}
export interface C2HDataPdu {
  readonly type: typeof PduType.C2HData;
  readonly cccid: number;
  readonly datao: number;
  readonly datal: number;
  readonly last: boolean;
  readonly success: boolean;
  readonly data: Buffer;
  readonly dataDigestError: boolean;
}
export interface R2TPdu {
  readonly type: typeof PduType.R2T;
  readonly cccid: number;
  readonly ttag: number;
  readonly r2to: number;
  readonly r2tl: number;
}

export type Pdu = IcReqPdu | IcRespPdu | TermReqPdu | CapsuleCmdPdu | CapsuleRespPdu | H2CDataPdu | C2HDataPdu | R2TPdu;

/**
 * A violation of the transport protocol. It carries the FES and FEI to send in a
 * TermReq, and the header of the offending PDU; the connection is then closed.
 */
export class ProtocolError extends Error {
  readonly fes: FesValue;
  /** Byte offset of the offending field in the PDU header (FEI). */
  readonly fei: number;
  readonly errorHeader: Buffer;
  readonly code = 'NVME_TCP_PROTOCOL_ERROR';
  constructor(fes: FesValue, fei: number, message: string, errorHeader?: Buffer) {
    super(`${fesName(fes)}: ${message}`);
    this.name = 'ProtocolError';
    this.fes = fes;
    this.fei = fei;
    this.errorHeader = errorHeader ?? Buffer.alloc(0);
  }

  /** The same error carrying the header of the offending PDU (for the TermReq's error data). */
  withHeader(header: Buffer): ProtocolError {
    const e = new ProtocolError(this.fes, this.fei, '', Buffer.from(header));
    e.message = this.message;
    return e;
  }
}

/** Digests and alignment in force on a connection once ICReq/ICResp are done. */
export interface WireOptions {
  readonly hdgst: boolean;
  readonly ddgst: boolean;
  /**
   * Data alignment required by the receiver in bytes (from CPDA or HPDA:
   * (n + 1) * 4 when n > 0); 0 means no requirement.
   */
  readonly dataAlignment?: number;
}

export const NO_DIGESTS: WireOptions = { hdgst: false, ddgst: false };

export function pdaToAlignment(pda: number): number {
  return pda === 0 ? 0 : (pda + 1) * 4;
}

function commonHeader(header: Buffer, type: number, flags: number, hlen: number, pdo: number, plen: number): void {
  header[0] = type;
  header[1] = flags;
  header[2] = hlen;
  header[3] = pdo;
  header.writeUInt32LE(plen, 4);
}

/**
 * Assemble a PDU: `fill` writes the type specific header fields of a header of
 * `hlen` bytes; data (if any) follows at pdo, then its digest.
 */
function assemble(type: PduTypeValue, flags: number, fill: (header: Buffer) => void, data: Buffer | null, wire: WireOptions): Buffer[] {
  const hlen = HeaderLength[type];
  const hdgstLen = wire.hdgst ? DIGEST_LENGTH : 0;
  const dataLen = data ? data.length : 0;
  const ddgstLen = wire.ddgst && dataLen > 0 ? DIGEST_LENGTH : 0;
  let pdo = 0;
  let pad = 0;
  if (dataLen > 0) {
    pdo = hlen + hdgstLen;
    const align = wire.dataAlignment ?? 0;
    if (align > 0 && pdo % align !== 0) {
      pad = align - (pdo % align);
      pdo += pad;
    }
  }
  const plen = hlen + hdgstLen + pad + dataLen + ddgstLen;
  if (wire.hdgst) flags |= PduFlag.HDGSTF;
  if (ddgstLen) flags |= PduFlag.DDGSTF;
  // Header, its digest and padding in one allocation.
  const head = Buffer.alloc(hlen + hdgstLen + pad);
  commonHeader(head, type, flags, hlen, pdo, plen);
  fill(head);
  if (hdgstLen) head.writeUInt32LE(crc32cOf(head.subarray(0, hlen)), hlen);
  if (!data || dataLen === 0) return [head];
  if (!ddgstLen) return [head, data];
  return [head, data, digestBytes(data)];
}

// IC and Term PDUs never carry digests.

export function encodeIcReq(p: Omit<IcReqPdu, 'type'>): Buffer {
  const b = Buffer.alloc(128);
  commonHeader(b, PduType.ICReq, 0, 128, 0, 128);
  b.writeUInt16LE(p.pfv, 8);
  b[10] = p.hpda;
  b[11] = (p.hdgst ? 1 : 0) | (p.ddgst ? 2 : 0);
  b.writeUInt32LE(p.maxr2t >>> 0, 12);
  return b;
}

export function encodeIcResp(p: Omit<IcRespPdu, 'type'>): Buffer {
  const b = Buffer.alloc(128);
  commonHeader(b, PduType.ICResp, 0, 128, 0, 128);
  b.writeUInt16LE(p.pfv, 8);
  b[10] = p.cpda;
  b[11] = (p.hdgst ? 1 : 0) | (p.ddgst ? 2 : 0);
  b.writeUInt32LE(p.maxh2cdata >>> 0, 12);
  return b;
}

export function encodeTermReq(type: typeof PduType.H2CTermReq | typeof PduType.C2HTermReq, fes: number, fei: number, errorHeader: Buffer): Buffer {
  const copy = errorHeader.subarray(0, TERM_MAX_DATA);
  const plen = 24 + copy.length;
  const b = Buffer.alloc(plen);
  commonHeader(b, type, 0, 24, copy.length ? 24 : 0, plen);
  b.writeUInt16LE(fes, 8);
  b.writeUInt32LE(fei >>> 0, 10);
  copy.copy(b, 24);
  return b;
}

export function encodeCapsuleCmd(sqe: Buffer, data: Buffer | null, wire: WireOptions): Buffer[] {
  if (sqe.length !== SQE_LENGTH) throw new RangeError(`SQE must be ${SQE_LENGTH} bytes, got ${sqe.length}`);
  return assemble(PduType.CapsuleCmd, 0, (h) => sqe.copy(h, 8), data, wire);
}

export function encodeCapsuleResp(cqe: Buffer, wire: WireOptions): Buffer[] {
  if (cqe.length !== CQE_LENGTH) throw new RangeError(`CQE must be ${CQE_LENGTH} bytes, got ${cqe.length}`);
  return assemble(PduType.CapsuleResp, 0, (h) => cqe.copy(h, 8), null, wire);
}

export function encodeH2CData(p: { cccid: number; ttag: number; datao: number; last: boolean }, data: Buffer, wire: WireOptions): Buffer[] {
  return assemble(
    PduType.H2CData,
    p.last ? PduFlag.LAST_PDU : 0,
    (h) => {
      h.writeUInt16LE(p.cccid, 8);
      h.writeUInt16LE(p.ttag, 10);
      h.writeUInt32LE(p.datao >>> 0, 12);
      h.writeUInt32LE(data.length, 16);
    },
    data,
    wire,
  );
}

export function encodeC2HData(p: { cccid: number; datao: number; last: boolean; success: boolean }, data: Buffer, wire: WireOptions): Buffer[] {
  if (p.success && !p.last) throw new RangeError('C2HData SUCCESS requires LAST_PDU');
  return assemble(
    PduType.C2HData,
    (p.last ? PduFlag.LAST_PDU : 0) | (p.success ? PduFlag.SUCCESS : 0),
    (h) => {
      h.writeUInt16LE(p.cccid, 8);
      h.writeUInt32LE(p.datao >>> 0, 12);
      h.writeUInt32LE(data.length, 16);
    },
    data,
    wire,
  );
}

export function encodeR2T(p: Omit<R2TPdu, 'type'>, wire: WireOptions): Buffer[] {
  return assemble(
    PduType.R2T,
    0,
    (h) => {
      h.writeUInt16LE(p.cccid, 8);
      h.writeUInt16LE(p.ttag, 10);
      h.writeUInt32LE(p.r2to >>> 0, 12);
      h.writeUInt32LE(p.r2tl >>> 0, 16);
    },
    null,
    wire,
  );
}
