/**
 * A small NVMe/TCP test client built straight on shared/: one connection, one
 * queue. It walks ICReq, Connect and the enable handshake, sends commands with
 * in-capsule or R2T data, reassembles C2HData, and also sends raw bytes so
 * tests can feed the target malformed input and see exactly what comes back.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { decodeCqe, type Cqe } from '../../shared/cqe.ts';
import { CNTLID_DYNAMIC, DISCOVERY_NQN, Property, encodeCc, encodeConnectData } from '../../shared/fabrics.ts';
import { PduFramer } from '../../shared/framer.ts';
import { PduType, encodeCapsuleCmd, encodeH2CData, encodeIcReq, type IcRespPdu, type Pdu, type TermReqPdu, type WireOptions } from '../../shared/pdu.ts';
import { connectCommand, encodeSqe, propertyGetCommand, propertySetCommand, withCid, type Sqe } from '../../shared/sqe.ts';
import { inCapsuleSgl, SGL_INCAPSULE } from '../../shared/sgl.ts';

export const TEST_HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001';

export interface CommandResult {
  cqe: Cqe;
  data: Buffer;
  /** C2HData PDUs that carried the data, and whether SUCCESS ended it without a CapsuleResp. */
  c2hPdus: number;
  successFlag: boolean;
  r2ts: number;
}

interface Pending {
  resolve: (r: CommandResult) => void;
  reject: (e: Error) => void;
  data: Buffer;
  writeData: Buffer | null;
  c2hPdus: number;
  r2ts: number;
  maxh2c: number;
}

export class RawClient {
  readonly socket: net.Socket;
  readonly #framer = new PduFramer('host', { maxInCapsuleData: 0, maxH2CData: 0, maxC2HData: 64 * 1024 * 1024 });
  wire: WireOptions = { hdgst: false, ddgst: false };
  #pending = new Map<number, Pending>();
  #waiters: ((p: Pdu) => void)[] = [];
  /** PDUs not claimed by a command (ICResp, TermReq, unexpected). */
  readonly unclaimed: Pdu[] = [];
  #nextCid = 1;
  maxh2cdata = 0;
  closed = false;
  #closeWaiters: (() => void)[] = [];
  cntlid = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#framer.push(chunk, (pdu) => this.#onPdu(pdu));
      } catch (err) {
        for (const p of this.#pending.values()) p.reject(err as Error);
        this.#pending.clear();
        socket.destroy();
      }
    });
    socket.on('close', () => {
      this.closed = true;
      for (const p of this.#pending.values()) p.reject(new Error('connection closed'));
      this.#pending.clear();
      for (const w of this.#closeWaiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host }, () => {
        s.off('error', reject);
        s.setNoDelay(true);
        resolve(new RawClient(s));
      });
      s.once('error', reject);
    });
  }

  /** ICReq + ICResp, then Connect; for the admin queue also the enable handshake. */
  static async admin(
    port: number,
    opts: { subnqn: string; hostnqn?: string; kato?: number; hdgst?: boolean; ddgst?: boolean; enable?: boolean; sqsize?: number; cattr?: number },
  ): Promise<RawClient> {
    const c = await RawClient.connect(port);
    await c.initialize({ hdgst: opts.hdgst, ddgst: opts.ddgst });
    await connectAdminOn(c, opts);
    return c;
  }

  static async io(
    port: number,
    opts: { subnqn: string; cntlid: number; qid: number; hostnqn?: string; hdgst?: boolean; ddgst?: boolean; sqsize?: number; cattr?: number },
  ): Promise<RawClient> {
    const c = await RawClient.connect(port);
    await c.initialize({ hdgst: opts.hdgst, ddgst: opts.ddgst });
    await connectIoOn(c, opts);
    return c;
  }

  static discovery(port: number, hostnqn = TEST_HOSTNQN): Promise<RawClient> {
    return RawClient.admin(port, { subnqn: DISCOVERY_NQN, hostnqn });
  }

  async initialize(opts: { hdgst?: boolean; ddgst?: boolean; hpda?: number } = {}): Promise<IcRespPdu> {
    this.sendRaw(encodeIcReq({ pfv: 0, hpda: opts.hpda ?? 0, hdgst: !!opts.hdgst, ddgst: !!opts.ddgst, maxr2t: 0 }));
    const pdu = await this.nextUnclaimed();
    if (pdu.type !== PduType.ICResp) throw new Error(`expected ICResp, got type ${pdu.type}`);
    this.#framer.setDigests(pdu.hdgst, pdu.ddgst);
    this.wire = { hdgst: pdu.hdgst, ddgst: pdu.ddgst };
    this.maxh2cdata = pdu.maxh2cdata;
    return pdu;
  }

  connectQueue(o: ConnectQueueOptions): Promise<CommandResult> {
    return connectQueueOn(this, o);
  }

  enable(): Promise<void> {
    return enableOn(this);
  }

  /**
   * Send a command. Write data goes in-capsule when `inCapsule`, else on R2T.
   * The SGL length is taken from the SQE as given (tests set it on purpose).
   */
  command(sqe: Sqe, opts: { data?: Buffer; inCapsule?: boolean; cid?: number } = {}): Promise<CommandResult> {
    const cid = opts.cid ?? this.#allocCid();
    const s = withCid(sqe, cid);
    const inCapsule = opts.inCapsule ?? s.sgl.id === SGL_INCAPSULE;
    return new Promise((resolve, reject) => {
      this.#pending.set(cid, {
        resolve,
        reject,
        data: Buffer.alloc(0),
        writeData: inCapsule ? null : (opts.data ?? null),
        c2hPdus: 0,
        r2ts: 0,
        maxh2c: this.maxh2cdata,
      });
      this.sendPdu(encodeCapsuleCmd(encodeSqe(s), inCapsule ? (opts.data ?? null) : null, this.wire));
    });
  }

  /** Command with in-capsule data and its SGL set to match. */
  commandInCapsule(sqe: Sqe, data: Buffer): Promise<CommandResult> {
    return this.command({ ...sqe, sgl: inCapsuleSgl(data.length) }, { data, inCapsule: true });
  }

  /**
   * Expect a completion for `cid` without sending anything: the test sends the
   * command itself (hand-built or split bytes). With `writeData` an R2T for
   * the cid is answered automatically; without, R2Ts are left in `unclaimed`.
   */
  track(cid: number, opts: { writeData?: Buffer } = {}): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      this.#pending.set(cid, { resolve, reject, data: Buffer.alloc(0), writeData: opts.writeData ?? null, c2hPdus: 0, r2ts: 0, maxh2c: this.maxh2cdata });
    });
  }

  #allocCid(): number {
    do this.#nextCid = (this.#nextCid + 1) & 0xffff;
    while (this.#pending.has(this.#nextCid));
    return this.#nextCid;
  }

  sendRaw(buf: Buffer): void {
    this.socket.write(buf);
  }

  sendPdu(bufs: Buffer[]): void {
    this.socket.write(Buffer.concat(bufs));
  }

  #onPdu(pdu: Pdu): void {
    switch (pdu.type) {
      case PduType.CapsuleResp: {
        const cqe = decodeCqe(pdu.cqe);
        const p = this.#pending.get(cqe.cid);
        if (!p) return this.#park(pdu);
        this.#pending.delete(cqe.cid);
        p.resolve({ cqe, data: p.data, c2hPdus: p.c2hPdus, successFlag: false, r2ts: p.r2ts });
        return;
      }
      case PduType.C2HData: {
        const p = this.#pending.get(pdu.cccid);
        if (!p) return this.#park(pdu);
        if (pdu.datao !== p.data.length) {
          p.reject(new Error(`C2HData offset ${pdu.datao}, expected ${p.data.length}`));
          return;
        }
        p.data = Buffer.concat([p.data, pdu.data]);
        p.c2hPdus += 1;
        if (pdu.dataDigestError) p.reject(new Error('C2HData data digest error'));
        if (pdu.success) {
          this.#pending.delete(pdu.cccid);
          p.resolve({
            cqe: { result: 0, dw1: 0, sqhd: 0, sqid: 0, cid: pdu.cccid, status: 0 },
            data: p.data,
            c2hPdus: p.c2hPdus,
            successFlag: true,
            r2ts: p.r2ts,
          });
        }
        return;
      }
      case PduType.R2T: {
        const p = this.#pending.get(pdu.cccid);
        if (!p || !p.writeData) return this.#park(pdu);
        p.r2ts += 1;
        const chunk = p.maxh2c || pdu.r2tl;
        for (let off = pdu.r2to; off < pdu.r2to + pdu.r2tl; off += chunk) {
          const end = Math.min(pdu.r2to + pdu.r2tl, off + chunk);
          this.sendPdu(
            encodeH2CData({ cccid: pdu.cccid, ttag: pdu.ttag, datao: off, last: end === pdu.r2to + pdu.r2tl }, p.writeData.subarray(off, end), this.wire),
          );
        }
        return;
      }
      default:
        return this.#park(pdu);
    }
  }

  #park(pdu: Pdu): void {
    const w = this.#waiters.shift();
    if (w) w(pdu);
    else this.unclaimed.push(pdu);
  }

  /** The next PDU no command claimed (ICResp, R2T for raw tests, TermReq...). */
  nextUnclaimed(timeoutMs = 5000): Promise<Pdu> {
    const ready = this.unclaimed.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no PDU within timeout')), timeoutMs);
      this.#waiters.push((p) => {
        clearTimeout(timer);
        resolve(p);
      });
    });
  }

  /** Wait for a C2HTermReq and then the close; returns the TermReq. */
  async expectTermReq(timeoutMs = 5000): Promise<TermReqPdu> {
    const pdu = await this.nextUnclaimed(timeoutMs);
    if (pdu.type !== PduType.C2HTermReq) throw new Error(`expected C2HTermReq, got type ${pdu.type}`);
    await this.waitClosed(timeoutMs);
    return pdu;
  }

  waitClosed(timeoutMs = 5000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connection still open')), timeoutMs);
      this.#closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A buffer whose every 512-byte block names its LBA and a generation: detects misplaced or stale data. */
export function patternBlocks(slba: number, nlb: number, blockSize: number, generation = 1): Buffer {
  const b = Buffer.alloc(nlb * blockSize);
  for (let i = 0; i < nlb; i++) {
    const o = i * blockSize;
    b.writeBigUInt64LE(BigInt(slba + i), o);
    b.writeUInt32LE(generation, o + 8);
    randomBytes(16).copy(b, o + 16);
  }
  return b;
}

// ---------------------------------------------------------------- hand-built wire bytes
//
// Independent of shared/: a table CRC32C, a PDU builder and a PDU splitter
// written from the NVMe/TCP specification, so that tests check the target's
// bytes against something other than the code under test.

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32C (Castagnoli), init ~0, final xor ~0: the NVMe/TCP digest. */
export function refCrc32c(buf: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC32C_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface HandPdu {
  type: number;
  hlen: number;
  /** Extra flag bits (HDGSTF/DDGSTF are added from hdgst/ddgst). */
  flags?: number;
  /** Writes the PDU specific header bytes (offset 8 on). */
  fill?: (h: Buffer) => void;
  data?: Buffer;
  hdgst?: boolean;
  ddgst?: boolean;
  /** Override computed fields (for malformed PDUs). */
  pdo?: number;
  plen?: number;
  /** XOR the header digest / data digest with this (0 = correct digest). */
  badHdgst?: number;
  badDdgst?: number;
  /** Leave HDGSTF clear even though a header digest is appended (or not). */
  omitHdgstFlag?: boolean;
}

/** Build a PDU byte by byte from the specification's layout. */
export function handPdu(p: HandPdu): Buffer {
  const data = p.data ?? Buffer.alloc(0);
  const hd = p.hdgst ? 4 : 0;
  const dd = p.ddgst && data.length > 0 ? 4 : 0;
  const pdo = data.length > 0 ? p.hlen + hd : 0;
  const plen = p.hlen + hd + data.length + dd;
  const h = Buffer.alloc(p.hlen);
  h[0] = p.type;
  h[1] = (p.flags ?? 0) | (p.hdgst && !p.omitHdgstFlag ? 0x01 : 0) | (dd ? 0x02 : 0);
  h[2] = p.hlen;
  h[3] = p.pdo ?? pdo;
  h.writeUInt32LE((p.plen ?? plen) >>> 0, 4);
  p.fill?.(h);
  const parts: Buffer[] = [h];
  if (hd) {
    const d = Buffer.alloc(4);
    d.writeUInt32LE((refCrc32c(h) ^ (p.badHdgst ?? 0)) >>> 0, 0);
    parts.push(d);
  }
  if (data.length) parts.push(data);
  if (dd) {
    const d = Buffer.alloc(4);
    d.writeUInt32LE((refCrc32c(data) ^ (p.badDdgst ?? 0)) >>> 0, 0);
    parts.push(d);
  }
  return Buffer.concat(parts);
}

export function handIcReq(o: { pfv?: number; hpda?: number; hdgst?: boolean; ddgst?: boolean; maxr2t?: number; plen?: number } = {}): Buffer {
  const b = Buffer.alloc(128);
  b[0] = 0x00;
  b[2] = 128;
  b.writeUInt32LE(o.plen ?? 128, 4);
  b.writeUInt16LE(o.pfv ?? 0, 8);
  b[10] = o.hpda ?? 0;
  b[11] = (o.hdgst ? 1 : 0) | (o.ddgst ? 2 : 0);
  b.writeUInt32LE(o.maxr2t ?? 0, 12);
  return b;
}

/** CapsuleCmd (type 4, hlen 72) around a 64-byte SQE. */
export function handCapsule(sqe: Buffer, data: Buffer | null, o: Omit<HandPdu, 'type' | 'hlen' | 'fill' | 'data'> = {}): Buffer {
  return handPdu({ ...o, type: 0x04, hlen: 72, fill: (h) => sqe.copy(h, 8), data: data ?? undefined });
}

/** H2CData (type 6, hlen 24). DATAL is the data length unless given. */
export function handH2CData(
  f: { cccid: number; ttag: number; datao: number; last: boolean; datal?: number },
  data: Buffer,
  o: Omit<HandPdu, 'type' | 'hlen' | 'fill' | 'data'> = {},
): Buffer {
  return handPdu({
    ...o,
    type: 0x06,
    hlen: 24,
    flags: (o.flags ?? 0) | (f.last ? 0x04 : 0),
    fill: (h) => {
      h.writeUInt16LE(f.cccid, 8);
      h.writeUInt16LE(f.ttag, 10);
      h.writeUInt32LE(f.datao, 12);
      h.writeUInt32LE(f.datal ?? data.length, 16);
    },
    data,
  });
}

/** One PDU as cut from the byte stream by its common header. */
export interface RawPdu {
  type: number;
  flags: number;
  hlen: number;
  pdo: number;
  plen: number;
  bytes: Buffer;
}

/** Cut a byte stream into PDUs by plen; `rest` is an incomplete tail. */
export function splitPdus(buf: Buffer): { pdus: RawPdu[]; rest: Buffer } {
  const pdus: RawPdu[] = [];
  let off = 0;
  while (buf.length - off >= 8) {
    const plen = buf.readUInt32LE(off + 4);
    if (plen < 8 || buf.length - off < plen) break;
    const bytes = buf.subarray(off, off + plen);
    pdus.push({ type: bytes[0]!, flags: bytes[1]!, hlen: bytes[2]!, pdo: bytes[3]!, plen, bytes });
    off += plen;
  }
  return { pdus, rest: buf.subarray(off) };
}

/** C2HTermReq fields read by hand. */
export function termReqFields(p: RawPdu): { fes: number; fei: number; errorData: Buffer } {
  return { fes: p.bytes.readUInt16LE(8), fei: p.bytes.readUInt32LE(10), errorData: p.bytes.subarray(24) };
}

/** Records every byte a socket receives from now on (alongside other listeners). */
export class ByteTap {
  readonly socket: net.Socket;
  #chunks: Buffer[] = [];
  closed = false;
  #waiters = new Set<() => void>();

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#chunks.push(Buffer.from(c));
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    if (socket.destroyed) this.closed = true;
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  get bytes(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  pdus(): RawPdu[] {
    return splitPdus(this.bytes).pdus;
  }

  clear(): void {
    this.#chunks = [];
  }

  /** Resolve with check()'s first truthy result, re-checked on every arrival. */
  until<T>(check: () => T | undefined | null | false, timeoutMs = 5000, what = 'condition'): Promise<T> {
    const first = check();
    if (first) return Promise.resolve(first);
    return new Promise((resolve, reject) => {
      const done = () => {
        let r: T | undefined | null | false;
        try {
          r = check();
        } catch (err) {
          cleanup();
          reject(err);
          return;
        }
        if (r) {
          cleanup();
          resolve(r);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timeout waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
      };
      this.#waiters.add(done);
    });
  }

  /** The first PDU of this type (and matching pred) received. */
  pdu(type: number, pred: (p: RawPdu) => boolean = () => true, timeoutMs = 5000): Promise<RawPdu> {
    return this.until(() => this.pdus().find((p) => p.type === type && pred(p)), timeoutMs, `PDU type ${type}`);
  }

  waitClosed(timeoutMs = 5000): Promise<true> {
    return this.until(() => this.closed || undefined, timeoutMs, 'connection close');
  }
}

/** A bare TCP connection with a tap: for tests that speak before (or instead of) ICReq. */
export function rawSocket(port: number, host = '127.0.0.1'): Promise<ByteTap> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host }, () => {
      s.off('error', reject);
      s.setNoDelay(true);
      s.on('error', () => undefined);
      resolve(new ByteTap(s));
    });
    s.once('error', reject);
  });
}

/** Write each byte in its own socket write, waiting for each to be handed to the kernel. */
export async function writeByteByByte(socket: net.Socket, bytes: Buffer): Promise<void> {
  for (let i = 0; i < bytes.length; i++) {
    await new Promise<void>((resolve, reject) => socket.write(bytes.subarray(i, i + 1), (err) => (err ? reject(err) : resolve())));
  }
}

/** What a test client needs to Connect a queue and enable a controller: a command-level API (RawClient over TCP, LoopClient over the loopback). */
export interface CommandIssuer {
  command(sqe: Sqe, opts?: { data?: Buffer; inCapsule?: boolean; cid?: number }): Promise<CommandResult>;
}

export interface ConnectQueueOptions {
  qid: number;
  subnqn: string;
  hostnqn?: string;
  cntlid?: number;
  kato?: number;
  sqsize: number;
  cattr?: number;
  hostid?: Buffer;
}

/** Fabrics Connect for queue `o.qid`, its data in-capsule. */
export function connectQueueOn(client: CommandIssuer, o: ConnectQueueOptions): Promise<CommandResult> {
  const data = encodeConnectData({
    hostid: o.hostid ?? Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'),
    cntlid: o.cntlid ?? CNTLID_DYNAMIC,
    subnqn: o.subnqn,
    hostnqn: o.hostnqn ?? TEST_HOSTNQN,
  });
  return client.command(connectCommand({ recfmt: 0, qid: o.qid, sqsize: o.sqsize, cattr: o.cattr ?? 0, kato: o.kato ?? 0 }), { data, inCapsule: true });
}

/** CAP, then CC.EN = 1, then CSTS.RDY checked. */
export async function enableOn(client: CommandIssuer): Promise<void> {
  await client.command(propertyGetCommand(Property.CAP, 8));
  const cc = encodeCc({ en: true, css: 0, mps: 0, ams: 0, shn: 0, iosqes: 6, iocqes: 4 });
  const set = await client.command(propertySetCommand(Property.CC, cc, 4));
  if (set.cqe.status !== 0) throw new Error('Property Set CC failed');
  const csts = await client.command(propertyGetCommand(Property.CSTS, 4));
  if ((csts.cqe.result & 1) !== 1) throw new Error(`controller not ready, CSTS 0x${csts.cqe.result.toString(16)}`);
}

/** A client that Connects queues: it records the controller's cntlid. */
export interface QueueClient extends CommandIssuer {
  cntlid: number;
  enable(): Promise<void>;
}

/** Admin queue Connect (dynamic controller), then enable unless told not to. */
export async function connectAdminOn(
  c: QueueClient,
  opts: { subnqn: string; hostnqn?: string; kato?: number; enable?: boolean; sqsize?: number; cattr?: number },
): Promise<void> {
  const r = await connectQueueOn(c, { qid: 0, subnqn: opts.subnqn, hostnqn: opts.hostnqn, kato: opts.kato ?? 0, sqsize: opts.sqsize ?? 31, cattr: opts.cattr });
  if (r.cqe.status !== 0) throw new Error(`Connect failed: status 0x${r.cqe.status.toString(16)}`);
  c.cntlid = r.cqe.result & 0xffff;
  if (opts.enable !== false) await c.enable();
}

/** I/O queue Connect to controller `opts.cntlid`. */
export async function connectIoOn(
  c: QueueClient,
  opts: { subnqn: string; cntlid: number; qid: number; hostnqn?: string; sqsize?: number; cattr?: number },
): Promise<void> {
  const r = await connectQueueOn(c, {
    qid: opts.qid,
    subnqn: opts.subnqn,
    hostnqn: opts.hostnqn,
    cntlid: opts.cntlid,
    sqsize: opts.sqsize ?? 127,
    cattr: opts.cattr,
  });
  if (r.cqe.status !== 0) throw new Error(`I/O Connect failed: status 0x${r.cqe.status.toString(16)}`);
  c.cntlid = opts.cntlid;
}
