/**
 * Streaming PDU framer: turns TCP chunks into typed PDUs.
 *
 * PDUs may be split across chunks or packed several to a chunk. Every header
 * field is checked before the rest of the PDU is buffered, so a PDU that claims
 * a huge plen is refused without allocating it. A violation throws a
 * ProtocolError carrying the FES/FEI to report; the caller then tears the
 * connection down. A data digest mismatch is not a framing error: the PDU is
 * delivered with `dataDigestError` set and the command fails on its own.
 *
 * Data placement (as Linux's nvme_tcp_recv_data copies into the request's
 * pages): a PDU that arrives whole in one chunk is delivered as views of that
 * chunk, no copy. A data PDU that spans chunks would otherwise be assembled
 * in a new buffer; when the receiver set `placeData`, it is asked, once the
 * header (and its digest, checked first) is in, where the data should go, and
 * the data is copied from each chunk straight there as it arrives: into the
 * caller's read buffer on the host, into a pooled buffer on the target. No
 * per-PDU allocation, one copy.
 */
import { DIGEST_LENGTH, crc32cOf } from './digest.ts';
import { COMMON_HEADER_LENGTH, Fes, HeaderLength, PduFlag, PduType, ProtocolError, TERM_MAX_DATA, pduTypeName, type Pdu, type PduTypeValue } from './pdu.ts';

export type Role = 'target' | 'host';

/** Which PDU types each side may receive. */
const RECEIVABLE: Record<Role, ReadonlySet<number>> = {
  target: new Set([PduType.ICReq, PduType.H2CTermReq, PduType.CapsuleCmd, PduType.H2CData]),
  host: new Set([PduType.ICResp, PduType.C2HTermReq, PduType.CapsuleResp, PduType.C2HData, PduType.R2T]),
};

export interface FramerLimits {
  /** Largest in-capsule data accepted in a CapsuleCmd. */
  maxInCapsuleData: number;
  /** Largest data in one H2CData PDU (our maxh2cdata). */
  maxH2CData: number;
  /** Largest data in one C2HData PDU. */
  maxC2HData: number;
}

export const DEFAULT_FRAMER_LIMITS: FramerLimits = {
  maxInCapsuleData: 8192,
  maxH2CData: 131072,
  maxC2HData: 16 * 1024 * 1024,
};

const IC_LENGTH = 128;

/** What the receiver learns of a data PDU before its data arrives. */
export interface DataPduHeader {
  readonly type: PduTypeValue;
  readonly flags: number;
  /** The PDU header (hlen bytes; its digest, if any, already verified). */
  readonly header: Buffer;
  readonly dataLength: number;
}

/**
 * Where a data PDU's data should be placed: a buffer of exactly `dataLength`
 * bytes, or null to let the framer assemble it. Called only when the header
 * arrived without all of the data; must not throw.
 */
export type DataPlacement = (h: DataPduHeader) => Buffer | null;

/** True when `data` is already `dest` at `offset` (a placed PDU's data): nothing to copy. */
export function isPlacedAt(data: Buffer, dest: Buffer, offset: number): boolean {
  return data.buffer === dest.buffer && data.byteOffset === dest.byteOffset + offset;
}

/** A data PDU whose data is being copied into its destination as it arrives. */
interface Placement {
  /** Header, digest and padding: bytes 0..pdo of the PDU (a copy). */
  readonly head: Buffer;
  readonly dest: Buffer;
  filled: number;
  readonly ddgst: Buffer | null;
  ddgstFilled: number;
}

export class PduFramer {
  readonly role: Role;
  limits: FramerLimits;
  /** Set once the IC exchange negotiated them. */
  hdgst = false;
  ddgst = false;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** plen of the PDU whose header was validated and is being buffered. */
  #pendingPlen = 0;
  /** Of that PDU: where its data starts and how long it is (0: no data). */
  #pendingPdo = 0;
  #pendingDataLen = 0;
  /** Whether the receiver was already asked where this PDU's data goes (asked once). */
  #placementAsked = false;
  /** The PDU whose data is going straight to its destination. */
  #placing: Placement | null = null;
  /** Set by the receiver to place large data itself (see DataPlacement). */
  placeData: DataPlacement | null = null;
  readonly #scratch = Buffer.alloc(COMMON_HEADER_LENGTH);

  constructor(role: Role, limits: FramerLimits = DEFAULT_FRAMER_LIMITS) {
    this.role = role;
    this.limits = limits;
  }

  /** Bytes received but not yet delivered as a PDU. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** True when a PDU has started arriving but is not complete. */
  get midPdu(): boolean {
    return this.#buffered > 0 || this.#placing !== null;
  }

  /** True while a PDU's data is being placed into memory that `buf` shares (the receiver must not reuse it yet). */
  placingInto(buf: Buffer): boolean {
    const dest = this.#placing?.dest;
    if (!dest || dest.buffer !== buf.buffer) return false;
    return dest.byteOffset < buf.byteOffset + buf.length && buf.byteOffset < dest.byteOffset + dest.length;
  }

  setDigests(hdgst: boolean, ddgst: boolean): void {
    this.hdgst = hdgst;
    this.ddgst = ddgst;
  }

  /**
   * Feed one chunk; calls `deliver` for each complete PDU, in order. Throws a
   * ProtocolError on the first violation (later PDUs are not delivered).
   */
  push(chunk: Buffer, deliver: (pdu: Pdu) => void): void {
    if (chunk.length === 0) return;
    if (this.#placing) {
      const used = this.#fill(this.#placing, chunk);
      if (this.#placing.ddgstFilled < (this.#placing.ddgst?.length ?? 0) || this.#placing.filled < this.#placing.dest.length) return;
      this.#finishPlacement(deliver);
      if (used === chunk.length) return;
      chunk = chunk.subarray(used);
    }
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#pendingPlen === 0) {
        if (this.#buffered < COMMON_HEADER_LENGTH) return;
        this.#pendingPlen = this.#checkCommonHeader(this.#peekHeader());
      }
      if (this.#buffered < this.#pendingPlen) {
        if (this.placeData && this.#pendingDataLen > 0 && !this.#placementAsked && this.#buffered >= this.#pendingPdo) this.#startPlacement();
        return;
      }
      const raw = this.#take(this.#pendingPlen);
      this.#pendingPlen = 0;
      this.#placementAsked = false;
      const pdu = this.#decode(raw);
      this.#hand(pdu, raw, deliver);
    }
  }

  #hand(pdu: Pdu, raw: Buffer, deliver: (pdu: Pdu) => void): void {
    try {
      deliver(pdu);
    } catch (err) {
      // A violation the receiver found in a whole PDU: report that PDU's header.
      if (err instanceof ProtocolError && err.errorHeader.length === 0) throw err.withHeader(raw.subarray(0, raw[2]));
      throw err;
    }
  }

  /**
   * The header of a data PDU is in, its data is not: ask the receiver where
   * the data goes; if it says, take the header and copy what data is here.
   * Everything buffered belongs to this PDU (less than plen is buffered).
   */
  #startPlacement(): void {
    this.#placementAsked = true;
    const first = this.#chunks[0]!;
    const head = first.length >= this.#pendingPdo ? first.subarray(0, this.#pendingPdo) : this.#peekBytes(this.#pendingPdo);
    this.#checkHeaderDigest(head);
    const type = head[0]! as PduTypeValue;
    const dest = this.placeData!({ type, flags: head[1]!, header: head.subarray(0, head[2]), dataLength: this.#pendingDataLen });
    if (dest === null) return;
    if (dest.length !== this.#pendingDataLen) throw new RangeError(`data placement gave ${dest.length} bytes for ${this.#pendingDataLen}`);
    const hasDdgst = (head[1]! & PduFlag.DDGSTF) !== 0;
    // The header is copied: it outlives the chunk it came in, and is small.
    const placing: Placement = {
      head: Buffer.from(this.#take(this.#pendingPdo)),
      dest,
      filled: 0,
      ddgst: hasDdgst ? Buffer.alloc(DIGEST_LENGTH) : null,
      ddgstFilled: 0,
    };
    this.#placing = placing;
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#buffered = 0;
    for (const c of chunks) this.#fill(placing, c);
    // Not all of it can be here: plen was not reached.
  }

  /**
   * Where the next socket read may go straight (shared/direct-read.ts): at
   * most `max` bytes of the rest of the payload being placed, when at least
   * `min` bytes of it are still to come (for less, one read that also brings
   * what follows is cheaper than a read of its own and a copy). Null otherwise.
   */
  directReadTarget(min: number, max: number): Buffer | null {
    const p = this.#placing;
    if (!p) return null;
    const left = p.dest.length - p.filled;
    return left >= min ? p.dest.subarray(p.filled, p.filled + Math.min(left, max)) : null;
  }

  /** `n` bytes were read into what directReadTarget() returned; delivers the PDU if that completed it. */
  pushDirect(n: number, deliver: (pdu: Pdu) => void): void {
    const p = this.#placing;
    if (!p || n <= 0 || n > p.dest.length - p.filled) throw new RangeError(`direct read of ${n} bytes does not fit the payload being placed`);
    p.filled += n;
    if (p.filled === p.dest.length && !p.ddgst) this.#finishPlacement(deliver);
  }

  /** Copy what of `chunk` belongs to the PDU being placed; returns the bytes used. */
  #fill(p: Placement, chunk: Buffer): number {
    let used = 0;
    const want = p.dest.length - p.filled;
    if (want > 0) {
      used = Math.min(want, chunk.length);
      chunk.copy(p.dest, p.filled, 0, used);
      p.filled += used;
    }
    if (p.ddgst && used < chunk.length) {
      const n = Math.min(p.ddgst.length - p.ddgstFilled, chunk.length - used);
      chunk.copy(p.ddgst, p.ddgstFilled, used, used + n);
      p.ddgstFilled += n;
      used += n;
    }
    return used;
  }

  #finishPlacement(deliver: (pdu: Pdu) => void): void {
    const p = this.#placing!;
    this.#placing = null;
    this.#pendingPlen = 0;
    this.#placementAsked = false;
    const ddgst = p.ddgst ? p.ddgst.readUInt32LE(0) : null;
    const pdu = this.#decodeData(p.head, p.dest, ddgst, true);
    this.#hand(pdu, p.head, deliver);
  }

  /** The first n buffered bytes, copied (they span chunks). */
  #peekBytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (const c of this.#chunks) {
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (filled === n) break;
    }
    return out;
  }

  #peekHeader(): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= COMMON_HEADER_LENGTH) return first;
    let filled = 0;
    for (const c of this.#chunks) {
      const n = Math.min(c.length, COMMON_HEADER_LENGTH - filled);
      c.copy(this.#scratch, filled, 0, n);
      filled += n;
      if (filled === COMMON_HEADER_LENGTH) break;
    }
    return this.#scratch;
  }

  /** Take exactly n bytes from the front: a view when they sit in one chunk. */
  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.#chunks[0]!;
        const want = n - filled;
        if (c.length <= want) {
          c.copy(out, filled);
          filled += c.length;
          this.#chunks.shift();
        } else {
          c.copy(out, filled, 0, want);
          this.#chunks[0] = c.subarray(want);
          filled += want;
        }
      }
    }
    this.#buffered -= n;
    return out;
  }

  /** Validates the 8-byte common header; returns plen. */
  #checkCommonHeader(h: Buffer): number {
    const hdr = Buffer.from(h.subarray(0, COMMON_HEADER_LENGTH));
    const type = h[0]!;
    const flags = h[1]!;
    const hlen = h[2]!;
    const pdo = h[3]!;
    const plen = h.readUInt32LE(4);
    if (!RECEIVABLE[this.role].has(type)) {
      throw new ProtocolError(Fes.InvalidHeaderField, 0, `${pduTypeName(type)} is not a PDU the ${this.role} receives`, hdr);
    }
    const t = type as PduTypeValue;
    const expectedHlen = HeaderLength[t];
    if (hlen !== expectedHlen) {
      throw new ProtocolError(Fes.InvalidHeaderField, 2, `${pduTypeName(t)} hlen ${hlen}, expected ${expectedHlen}`, hdr);
    }
    this.#pendingDataLen = 0;
    if (t === PduType.ICReq || t === PduType.ICResp) {
      if (plen !== IC_LENGTH) throw new ProtocolError(Fes.InvalidHeaderField, 4, `${pduTypeName(t)} plen ${plen}, expected 128`, hdr);
      return plen;
    }
    if (t === PduType.H2CTermReq || t === PduType.C2HTermReq) {
      if (plen < hlen || plen > hlen + TERM_MAX_DATA) {
        throw new ProtocolError(Fes.InvalidHeaderField, 4, `${pduTypeName(t)} plen ${plen} out of range`, hdr);
      }
      return plen;
    }
    const hasHdgst = (flags & PduFlag.HDGSTF) !== 0;
    if (hasHdgst !== this.hdgst) {
      throw new ProtocolError(
        Fes.InvalidHeaderField,
        1,
        `HDGSTF ${hasHdgst ? 'set' : 'clear'} but header digest ${this.hdgst ? 'negotiated' : 'not negotiated'}`,
        hdr,
      );
    }
    const hasDdgst = (flags & PduFlag.DDGSTF) !== 0;
    if (hasDdgst && !this.ddgst) {
      throw new ProtocolError(Fes.InvalidHeaderField, 1, 'DDGSTF set but data digest not negotiated', hdr);
    }
    const hdgstLen = hasHdgst ? DIGEST_LENGTH : 0;
    const ddgstLen = hasDdgst ? DIGEST_LENGTH : 0;
    const headerEnd = hlen + hdgstLen;
    if (plen < headerEnd) {
      throw new ProtocolError(Fes.InvalidHeaderField, 4, `plen ${plen} shorter than header ${headerEnd}`, hdr);
    }
    let dataLen = 0;
    if (plen > headerEnd) {
      // Data present: pdo must point past the header (and its digest).
      if (pdo < headerEnd || pdo + ddgstLen > plen) {
        throw new ProtocolError(Fes.InvalidHeaderField, 3, `pdo ${pdo} invalid for hlen ${hlen} plen ${plen}`, hdr);
      }
      dataLen = plen - pdo - ddgstLen;
      if (this.ddgst && dataLen > 0 && !hasDdgst) {
        throw new ProtocolError(Fes.InvalidHeaderField, 1, 'DDGSTF clear but data digest negotiated', hdr);
      }
    } else if (hasDdgst) {
      throw new ProtocolError(Fes.InvalidHeaderField, 1, 'DDGSTF set on a PDU without data', hdr);
    }
    const limit = this.#dataLimit(t);
    if (dataLen > limit) {
      throw new ProtocolError(Fes.DataTransferLimitExceeded, 4, `${pduTypeName(t)} carries ${dataLen} data bytes, limit ${limit}`, hdr);
    }
    if (t === PduType.CapsuleResp || t === PduType.R2T) {
      if (dataLen !== 0) throw new ProtocolError(Fes.InvalidHeaderField, 4, `${pduTypeName(t)} carries data`, hdr);
    }
    this.#pendingPdo = pdo;
    this.#pendingDataLen = dataLen;
    return plen;
  }

  #dataLimit(t: PduTypeValue): number {
    switch (t) {
      case PduType.CapsuleCmd:
        return this.limits.maxInCapsuleData;
      case PduType.H2CData:
        return this.limits.maxH2CData;
      case PduType.C2HData:
        return this.limits.maxC2HData;
      default:
        return 0;
    }
  }

  #decode(raw: Buffer): Pdu {
    const type = raw[0]! as PduTypeValue;
    const flags = raw[1]!;
    const hlen = raw[2]!;
    const pdo = raw[3]!;
    const plen = raw.readUInt32LE(4);
    switch (type) {
      case PduType.ICReq:
        return {
          type,
          pfv: raw.readUInt16LE(8),
          hpda: raw[10]!,
          hdgst: (raw[11]! & 1) !== 0,
          ddgst: (raw[11]! & 2) !== 0,
          maxr2t: raw.readUInt32LE(12),
        };
      case PduType.ICResp:
        return {
          type,
          pfv: raw.readUInt16LE(8),
          cpda: raw[10]!,
          hdgst: (raw[11]! & 1) !== 0,
          ddgst: (raw[11]! & 2) !== 0,
          maxh2cdata: raw.readUInt32LE(12),
        };
      case PduType.H2CTermReq:
      case PduType.C2HTermReq:
        return { type, fes: raw.readUInt16LE(8), fei: raw.readUInt32LE(10), errorHeader: raw.subarray(hlen, plen) };
      default:
        break;
    }
    const hasHdgst = (flags & PduFlag.HDGSTF) !== 0;
    const headerEnd = hlen + (hasHdgst ? DIGEST_LENGTH : 0);
    const hasDdgst = (flags & PduFlag.DDGSTF) !== 0;
    const dataStart = plen > headerEnd ? pdo : plen;
    const dataEnd = plen - (hasDdgst ? DIGEST_LENGTH : 0);
    return this.#decodeData(raw, raw.subarray(dataStart, dataEnd), hasDdgst ? raw.readUInt32LE(dataEnd) : null, false);
  }

  /** A header digest that does not match ends the connection (before any data is placed). */
  #checkHeaderDigest(head: Buffer): void {
    if ((head[1]! & PduFlag.HDGSTF) === 0) return;
    const hlen = head[2]!;
    const expected = head.readUInt32LE(hlen);
    const actual = crc32cOf(head.subarray(0, hlen));
    if (expected !== actual) {
      throw new ProtocolError(
        Fes.HeaderDigestError,
        expected, // FEI of a header digest error: the HDGST value received
        `header digest 0x${expected.toString(16)} != computed 0x${actual.toString(16)}`,
        Buffer.from(head.subarray(0, hlen)),
      );
    }
  }

  /**
   * A PDU from its header (from byte 0: header, digest, maybe more), its data
   * and the data digest received (null: none).
   */
  #decodeData(raw: Buffer, data: Buffer, ddgst: number | null, headerChecked: boolean): Pdu {
    const type = raw[0]! as PduTypeValue;
    const flags = raw[1]!;
    const hlen = raw[2]!;
    if (!headerChecked) this.#checkHeaderDigest(raw);
    let dataDigestError = false;
    if (ddgst !== null) dataDigestError = ddgst !== crc32cOf(data);
    switch (type) {
      case PduType.CapsuleCmd:
        return { type, sqe: raw.subarray(8, 72), data, dataDigestError };
      case PduType.CapsuleResp:
        return { type, cqe: raw.subarray(8, 24) };
      case PduType.H2CData:
      case PduType.C2HData: {
        const datal = raw.readUInt32LE(16);
        if (datal !== data.length) {
          throw new ProtocolError(
            Fes.InvalidHeaderField,
            16,
            `${pduTypeName(type)} DATAL ${datal} but PDU carries ${data.length} bytes`,
            Buffer.from(raw.subarray(0, hlen)),
          );
        }
        const last = (flags & PduFlag.LAST_PDU) !== 0;
        if (type === PduType.H2CData) {
          return {
            type,
            cccid: raw.readUInt16LE(8),
            ttag: raw.readUInt16LE(10),
            datao: raw.readUInt32LE(12),
            datal,
            last,
            data,
            dataDigestError,
          };
        }
        const success = (flags & PduFlag.SUCCESS) !== 0;
        if (success && !last) {
          throw new ProtocolError(Fes.InvalidHeaderField, 1, 'C2HData SUCCESS without LAST_PDU', Buffer.from(raw.subarray(0, hlen)));
        }
        return { type, cccid: raw.readUInt16LE(8), datao: raw.readUInt32LE(12), datal, last, success, data, dataDigestError };
      }
      case PduType.R2T:
        return {
          type,
          cccid: raw.readUInt16LE(8),
          ttag: raw.readUInt16LE(10),
          r2to: raw.readUInt32LE(12),
          r2tl: raw.readUInt32LE(16),
        };
      default:
        throw new ProtocolError(Fes.InvalidHeaderField, 0, `${pduTypeName(type)} cannot be decoded here`);
    }
  }
}
