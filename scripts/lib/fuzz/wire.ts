/**
 * The fuzzer's side of the wire: a bare NVMe/TCP connection (FuzzConn) that
 * sends whatever bytes it is given and parses what the target answers, and a
 * PDU builder that can get every field wrong on purpose.
 *
 * What the target sends is parsed with the host-role framer of shared/: if
 * the target ever emits a PDU that framer refuses, the connection records it
 * as `malformed` and the fuzzer reports a failure.
 */
import net from 'node:net';
import { crc32cOf } from '../../../shared/digest.ts';
import { PduFramer } from '../../../shared/framer.ts';
import { PduType, type IcRespPdu, type Pdu, type WireOptions } from '../../../shared/pdu.ts';

export const CONNECT_TIMEOUT_MS = 5000;

/** One TCP connection to the target, with every PDU it receives. */
export class FuzzConn {
  readonly socket: net.Socket;
  readonly #framer = new PduFramer('host', { maxInCapsuleData: 0, maxH2CData: 0, maxC2HData: 64 * 1024 * 1024 });
  wire: WireOptions = { hdgst: false, ddgst: false };
  maxh2cdata = 0;
  closed = false;
  /** The target sent something the host-role framer refused (a target bug). */
  malformed: string | null = null;
  /** Handler for every PDU (lanes); without one PDUs collect in `inbox`. */
  onPdu: ((p: Pdu) => void) | null = null;
  onClose: (() => void) | null = null;
  readonly inbox: Pdu[] = [];
  readonly #watchers = new Set<() => void>();
  readonly openedAt = Date.now();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.malformed) return;
      try {
        this.#framer.push(chunk, (pdu) => {
          if (this.onPdu) this.onPdu(pdu);
          else this.inbox.push(pdu);
          this.#wake();
        });
      } catch (err) {
        this.malformed = (err as Error).message;
        this.#wake();
        socket.destroy();
      }
    });
    socket.on('close', () => {
      this.closed = true;
      this.onClose?.();
      this.#wake();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<FuzzConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to 127.0.0.1:${port} timed out`));
      }, CONNECT_TIMEOUT_MS);
      s.once('connect', () => {
        clearTimeout(timer);
        s.off('error', onError);
        resolve(new FuzzConn(s));
      });
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      s.once('error', onError);
    });
  }

  #wake(): void {
    for (const w of [...this.#watchers]) w();
  }

  /** Resolve true once check() holds (re-checked on every PDU and on close), false after timeoutMs. */
  until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.#watchers.delete(w);
        resolve(v);
      };
      const w = () => {
        if (check()) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#watchers.add(w);
    });
  }

  write(buf: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(buf);
  }

  /** Half-close: no more bytes from us. */
  fin(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Negotiate digests: expects exactly an ICResp back. */
  async ic(o: { hdgst: boolean; ddgst: boolean; hpda?: number }, timeoutMs = CONNECT_TIMEOUT_MS): Promise<IcRespPdu> {
    this.write(icReq({ hdgst: o.hdgst, ddgst: o.ddgst, hpda: o.hpda ?? 0 }));
    const ok = await this.until(() => this.inbox.length > 0 || this.closed || this.malformed !== null, timeoutMs);
    const pdu = this.inbox.shift();
    if (!ok || !pdu || pdu.type !== PduType.ICResp)
      throw new Error(`ICReq: expected ICResp, got ${pdu ? `type ${pdu.type}` : this.closed ? 'close' : 'nothing'}`);
    this.#framer.setDigests(pdu.hdgst, pdu.ddgst);
    this.wire = { hdgst: pdu.hdgst, ddgst: pdu.ddgst };
    this.maxh2cdata = pdu.maxh2cdata;
    return pdu;
  }

  /** Take the next PDU from the inbox (waits up to timeoutMs); null on close or timeout. */
  async next(timeoutMs: number): Promise<Pdu | null> {
    await this.until(() => this.inbox.length > 0 || this.closed || this.malformed !== null, timeoutMs);
    return this.inbox.shift() ?? null;
  }
}

// ---------------------------------------------------------------- builders

export function icReq(o: { hdgst: boolean; ddgst: boolean; hpda?: number; pfv?: number; maxr2t?: number }): Buffer {
  const b = Buffer.alloc(128);
  b[0] = PduType.ICReq;
  b[2] = 128;
  b.writeUInt32LE(128, 4);
  b.writeUInt16LE(o.pfv ?? 0, 8);
  b[10] = o.hpda ?? 0;
  b[11] = (o.hdgst ? 1 : 0) | (o.ddgst ? 2 : 0);
  b.writeUInt32LE(o.maxr2t ?? 0, 12);
  return b;
}

export interface PduSpec {
  type: number;
  hlen: number;
  /** Bytes 8..hlen of the header (type specific fields). */
  fill?: (h: Buffer) => void;
  /** Flag bits besides HDGSTF/DDGSTF (which follow hdgst/ddgst). */
  flags?: number;
  data?: Buffer | null;
  hdgst: boolean;
  ddgst: boolean;
  /** Padding between header (and digest) and data. */
  pad?: number;
  /** Overrides, applied before the header digest is computed. */
  forceFlags?: number;
  pdo?: number;
  plen?: number;
  hlenField?: number;
  typeField?: number;
  badHdgst?: boolean;
  badDdgst?: boolean;
}

/** A PDU laid out by the specification, then with the overrides applied. */
export function buildPdu(s: PduSpec): Buffer {
  const data = s.data ?? Buffer.alloc(0);
  const hd = s.hdgst ? 4 : 0;
  const dd = s.ddgst && data.length > 0 ? 4 : 0;
  const pad = data.length > 0 ? (s.pad ?? 0) : 0;
  const pdo = data.length > 0 ? s.hlen + hd + pad : 0;
  const plen = s.hlen + hd + pad + data.length + dd;
  const out = Buffer.alloc(plen);
  out[0] = s.typeField ?? s.type;
  out[1] = s.forceFlags ?? (s.flags ?? 0) | (hd ? 0x01 : 0) | (dd ? 0x02 : 0);
  out[2] = s.hlenField ?? s.hlen;
  out[3] = s.pdo ?? pdo;
  out.writeUInt32LE((s.plen ?? plen) >>> 0, 4);
  s.fill?.(out.subarray(0, s.hlen));
  if (hd) out.writeUInt32LE((crc32cOf(out.subarray(0, s.hlen)) ^ (s.badHdgst ? 0x5a5a0001 : 0)) >>> 0, s.hlen);
  if (data.length) data.copy(out, s.hlen + hd + pad);
  if (dd) out.writeUInt32LE((crc32cOf(data) ^ (s.badDdgst ? 0x00010000 : 0)) >>> 0, plen - 4);
  return out;
}

export function capsulePdu(sqe: Buffer, data: Buffer | null, wire: WireOptions, o: Partial<PduSpec> = {}): Buffer {
  return buildPdu({ ...o, type: PduType.CapsuleCmd, hlen: 72, fill: (h) => sqe.copy(h, 8, 0, 64), data, hdgst: wire.hdgst, ddgst: wire.ddgst });
}

export function h2cPdu(
  f: { cccid: number; ttag: number; datao: number; last: boolean; datal?: number },
  data: Buffer,
  wire: WireOptions,
  o: Partial<PduSpec> = {},
): Buffer {
  return buildPdu({
    ...o,
    type: PduType.H2CData,
    hlen: 24,
    flags: (o.flags ?? 0) | (f.last ? 0x04 : 0),
    fill: (h) => {
      h.writeUInt16LE(f.cccid & 0xffff, 8);
      h.writeUInt16LE(f.ttag & 0xffff, 10);
      h.writeUInt32LE(f.datao >>> 0, 12);
      h.writeUInt32LE((f.datal ?? data.length) >>> 0, 16);
    },
    data,
    hdgst: wire.hdgst,
    ddgst: wire.ddgst,
  });
}

export function h2cTermReq(fes: number, plen = 24): Buffer {
  const b = Buffer.alloc(Math.max(24, Math.min(plen, 200)));
  b[0] = PduType.H2CTermReq;
  b[2] = 24;
  b[3] = plen > 24 ? 24 : 0;
  b.writeUInt32LE(plen >>> 0, 4);
  b.writeUInt16LE(fes, 8);
  return b;
}
