/**
 * One NVMe/TCP connection = one queue (admin qid 0 or an I/O queue), the host
 * side of the transport, as Linux's drivers/nvme/host/tcp.c:
 *
 * - ICReq / ICResp, the ICResp checked as Linux does (pfv 0, digests mirror
 *   what was asked, cpda 0, maxh2cdata a multiple of 4 and >= 4096), then the
 *   Fabrics Connect for the queue.
 * - Command ids carry a 4-bit generation counter above a 12-bit tag (Linux's
 *   nvme_cid), so a completion for an earlier use of a tag is recognised and
 *   refused instead of completing the wrong command.
 * - Write data goes in-capsule when it fits (IOCCSZ * 16 - 64 on I/O queues,
 *   8 KiB on the admin queue and for Fabrics commands), otherwise on R2T as
 *   H2CData chunks of at most maxh2cdata, LAST on the final one.
 * - C2HData is copied straight into the command's destination buffer at its
 *   offset (offsets checked), as it arrives from the socket when the PDU
 *   spans reads (the framer's data placement); SUCCESS on the last C2HData completes the
 *   command without a CapsuleResp. A data digest mismatch fails that command
 *   with Data Transfer Error (as Linux); a header digest error, a TermReq, an
 *   unknown command id or any other protocol violation ends the queue.
 * - Writes are corked for the rest of the event-loop turn and uncorked on the
 *   next tick; a submit that finds the socket full waits (with commands that
 *   find no free tag) in a backlog drained on 'drain' and on completions.
 * - Per-command deadlines are watched by one timer per queue (no timer or
 *   closure per command); an expired command ends the queue, as Linux's
 *   timeout handler starts error recovery. Time is the Clock handed in.
 * - Where a command is lives in one field, its slot's CmdState, changed only
 *   by #to() (the transition table is checked in development and test runs).
 * - Every way the queue can end (socket error or close, protocol error,
 *   TermReq, timeout, close()) goes through one funnel, #fail(), which fails
 *   every command still in flight with the first error, as a 'path-error'
 *   outcome whose mayHaveExecuted says whether the command had been sent.
 */
import net from 'node:net';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { decodeCqe } from '../shared/cqe.ts';
import { encodeConnectData } from '../shared/fabrics.ts';
import { PduFramer, isPlacedAt, type DataPduHeader } from '../shared/framer.ts';
import { DIRECT_READ_MAX, DIRECT_READ_MIN, DeferredReadSink, directReadOption } from '../shared/direct-read.ts';
import { realClock, type Clock, type TimerHandle } from '../shared/clock.ts';
import { AdminOpcode } from '../shared/opcodes.ts';
import {
  Fes,
  PduType,
  ProtocolError,
  encodeCapsuleCmd,
  encodeH2CData,
  encodeIcReq,
  encodeTermReq,
  fesName,
  type C2HDataPdu,
  type IcRespPdu,
  type Pdu,
  type R2TPdu,
  type WireOptions,
} from '../shared/pdu.ts';
import { encodeSgl, inCapsuleSgl, transportSgl } from '../shared/sgl.ts';
import { connectCommand, encodeSqe, withCid, type Sqe } from '../shared/sqe.ts';
import { Status, describeStatus } from '../shared/status.ts';
import { HostError } from './errors.ts';
import type { HostTransportStats } from './context.ts';
import { DEV_CHECKS, InvariantError } from '../shared/dev-checks.ts';

/** Linux assumes 8 KiB of in-capsule data on the admin queue and for Fabrics commands. */
export const ADMIN_INCAPSULE_SIZE = 8192;
/** Linux NVME_TCP_MIN_MAXH2CDATA. */
export const MIN_MAXH2CDATA = 4096;
/** Largest C2HData PDU accepted. */
export const MAX_C2H_DATA = 16 * 1024 * 1024;
const TAG_BITS = 12;
const TAG_MASK = (1 << TAG_BITS) - 1;
const GEN_MASK = 0xf;
export const MAX_QUEUE_DEPTH = 1 << TAG_BITS;

/** How a command ended on this queue; assignable to PathOutcome. */
export type QueueOutcome =
  | { readonly kind: 'completed'; readonly status: number; readonly result: number; readonly dw1: number; readonly data?: Buffer }
  | { readonly kind: 'path-error'; readonly reason: string; readonly mayHaveExecuted: boolean };

export interface SubmitOptions {
  /** Host to controller data (write, compare, DSM ranges, Connect data). */
  readonly data?: Buffer | null;
  /** Controller to host length; data lands in `readInto` when given, else in a new buffer. */
  readonly readLength?: number;
  readonly readInto?: Buffer;
  /** 0 = no timeout (Asynchronous Event Requests). */
  readonly timeoutMs: number;
}

export interface TcpQueueOptions {
  readonly host: string;
  readonly port: number;
  readonly qid: number;
  /** Commands in flight at most; Connect SQSIZE is depth - 1. */
  readonly depth: number;
  readonly hdgst: boolean;
  readonly ddgst: boolean;
  /** In-capsule data limit for non-Fabrics commands (I/O queues: IOCCSZ * 16 - 64). */
  readonly inCapsuleSize: number;
  /** TCP connect + ICResp + Connect response, ms. */
  readonly connectTimeoutMs: number;
  readonly subnqn: string;
  readonly hostnqn: string;
  readonly hostid: Buffer;
  /** 0xFFFF (dynamic) on the admin queue, the controller's id on I/O queues. */
  readonly cntlid: number;
  /** Admin queue: KATO in ms for Connect. */
  readonly katoMs: number;
  /** Connect CATTR (bit 2: disable SQ flow control). */
  readonly cattr: number;
  readonly log: Logger;
  /** Every timer and time read of the queue; default real time. */
  readonly clock?: Clock;
  /** Socket reads straight into place (Node's `onread`); default true. Off: Node's own reads and 'data' events. */
  readonly directReads?: boolean;
  /** Counters shared with the session; default a private set. */
  readonly stats?: HostTransportStats;
}

export interface TcpQueueEvents {
  /** The queue ended; the error is the first one that ended it. */
  close: [error: HostError];
}

/**
 * Where a command is on this queue, one field per slot (the host-side
 * counterpart of SPDK's spdk_nvmf_tcp_req_state). The capsule is written in
 * the same turn a slot is taken, so every state but Free has been sent (a
 * command failed by the queue's end may have executed). A response may end
 * any of the busy states (a target can refuse a command before or during its
 * data transfer).
 *
 *   Free ──► AwaitingResponse ─┐   (no data, or data in-capsule)
 *     ├────► SendingData ──────┼──► Free   (write data on R2T / H2CData)
 *     └────► ReceivingData ────┘           (read data as C2HData)
 */
export const CmdState = {
  /** Tag on the free list. */
  Free: 0,
  /** Capsule (with any in-capsule data) sent; only the response is missing. */
  AwaitingResponse: 1,
  /** Capsule sent; its write data goes out as the target asks for it (R2T), h2cSent bytes so far. */
  SendingData: 2,
  /** Capsule sent; its read data arrives as C2HData, `received` bytes placed so far. */
  ReceivingData: 3,
} as const;
export type CmdState = (typeof CmdState)[keyof typeof CmdState];

const CMD_STATE_NAMES = ['free', 'awaiting-response', 'sending-data', 'receiving-data'] as const;

/** For each state, a bit per state it may be entered from. */
const CMD_ALLOWED_FROM: readonly number[] = [
  /* Free */ (1 << CmdState.AwaitingResponse) | (1 << CmdState.SendingData) | (1 << CmdState.ReceivingData),
  /* AwaitingResponse */ 1 << CmdState.Free,
  /* SendingData */ 1 << CmdState.Free,
  /* ReceivingData */ 1 << CmdState.Free,
];

export function canCmdTransition(from: CmdState, to: CmdState): boolean {
  return (CMD_ALLOWED_FROM[to]! & (1 << from)) !== 0;
}

class Slot {
  readonly tag: number;
  gen = 0;
  state: CmdState = CmdState.Free;
  /** SendingData: the write data the target asks for by R2T. */
  r2tData: Buffer | null = null;
  h2cSent = 0;
  /** ReceivingData: destination of read data: the caller's, allocated on the first C2HData, or a whole C2HData payload adopted. */
  readBuf: Buffer | null = null;
  /** ReceivingData: bytes this command reads. */
  readLength = 0;
  received = 0;
  /** Status forced by the transport (data digest error), 0 otherwise. */
  transportStatus = 0;
  deadline = 0;
  opcode = 0;
  resolve: ((o: QueueOutcome) => void) | null = null;
  constructor(tag: number) {
    this.tag = tag;
  }
  get cid(): number {
    return (this.gen << TAG_BITS) | this.tag;
  }
}

interface Backlogged {
  readonly sqe: Sqe;
  readonly opts: SubmitOptions;
  readonly resolve: (o: QueueOutcome) => void;
}

type QueueState = 'await-icresp' | 'connecting' | 'live' | 'closed';

export class TcpQueue extends EventEmitter<TcpQueueEvents> {
  readonly qid: number;
  readonly depth: number;
  readonly log: Logger;
  /** Every timer and time read of this queue (admin.ts polls on it too). */
  readonly clock: Clock;
  /** The controller id (from the Connect response on the admin queue). */
  cntlid: number;
  /** Connect response DW0 (CNTLID, AUTHREQ bits). */
  connectResult = 0;
  maxh2cdata = 0;
  wire: WireOptions;
  #state: QueueState = 'await-icresp';
  readonly #socket: net.Socket;
  readonly #framer = new PduFramer('host', { maxInCapsuleData: 0, maxH2CData: 0, maxC2HData: MAX_C2H_DATA });
  readonly #slots: Slot[];
  readonly #free: number[] = [];
  readonly #backlog: Backlogged[] = [];
  readonly #inCapsuleSize: number;
  #busy = 0;
  #writable = true;
  #corked = false;
  #timer: TimerHandle | null = null;
  #timerAt = 0;
  #error: HostError | null = null;
  #icWaiter: { resolve: (p: IcRespPdu) => void; reject: (e: HostError) => void } | null = null;
  readonly #onPdu = (pdu: Pdu): void => this.#handlePdu(pdu);
  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket.uncork();
  };
  readonly #onTimer = (): void => this.#checkDeadlines();

  private constructor(socket: net.Socket, o: TcpQueueOptions, reads: DeferredReadSink | null) {
    super();
    this.clock = o.clock ?? realClock;
    if (!Number.isInteger(o.depth) || o.depth < 1 || o.depth > MAX_QUEUE_DEPTH) throw new RangeError(`queue depth ${o.depth} not in 1..${MAX_QUEUE_DEPTH}`);
    this.#socket = socket;
    this.qid = o.qid;
    this.depth = o.depth;
    this.cntlid = o.cntlid;
    this.log = o.log;
    this.#inCapsuleSize = o.inCapsuleSize;
    this.wire = { hdgst: false, ddgst: false };
    this.#slots = Array.from({ length: o.depth }, (_, i) => new Slot(i));
    for (let i = o.depth - 1; i >= 0; i--) this.#free.push(i);
    this.#framer.placeData = (h) => this.#placeData(h);
    if (reads) {
      const stats = o.stats ?? { directReadBytes: 0 };
      reads.bind({
        directTarget: () => (this.#state === 'closed' ? null : this.#framer.directReadTarget(DIRECT_READ_MIN, DIRECT_READ_MAX)),
        directData: (n) => {
          stats.directReadBytes += n;
          this.#receive((deliver) => this.#framer.pushDirect(n, deliver));
        },
        chunk: (c) => this.#onData(c),
      });
    } else socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => {
      this.#writable = true;
      this.#pump();
    });
    socket.on('end', () => this.#fail(new HostError('CONNECTION_CLOSED', `queue ${this.qid}: connection closed by the target`)));
    socket.on('close', () => this.#fail(new HostError('CONNECTION_CLOSED', `queue ${this.qid}: connection closed`)));
    socket.on('error', (err) => this.#fail(new HostError('CONNECTION_CLOSED', `queue ${this.qid}: ${err.message}`, { cause: err })));
  }

  /** Connect TCP, exchange ICReq/ICResp, send the Fabrics Connect. Throws a HostError. */
  static async open(o: TcpQueueOptions): Promise<TcpQueue> {
    const clock = o.clock ?? realClock;
    const deadline = clock.now() + o.connectTimeoutMs;
    const reads = o.directReads !== false ? new DeferredReadSink() : null;
    const socket = await connectSocket(clock, o.host, o.port, o.connectTimeoutMs, reads ? directReadOption(reads) : undefined);
    const q = new TcpQueue(socket, o, reads);
    try {
      await q.#initialize(o, deadline);
      q.#state = 'connecting';
      const data = encodeConnectData({ hostid: o.hostid, cntlid: o.cntlid, subnqn: o.subnqn, hostnqn: o.hostnqn });
      const sqe = connectCommand({ recfmt: 0, qid: o.qid, sqsize: o.depth - 1, cattr: o.cattr, kato: o.qid === 0 ? o.katoMs : 0 });
      const r = await q.submit(sqe, { data, timeoutMs: Math.max(1, deadline - clock.now()) });
      if (r.kind === 'path-error') throw new HostError('CONNECTION_FAILED', `queue ${o.qid}: Connect: ${r.reason}`);
      if (r.status !== 0) {
        throw new HostError(
          'CONNECT_REJECTED',
          `queue ${o.qid}: Connect to ${o.subnqn} rejected: ${describeStatus(r.status)} (dw0 0x${r.result.toString(16)})`,
          { status: r.status },
        );
      }
      if (o.qid === 0) q.cntlid = r.result & 0xffff;
      q.connectResult = r.result >>> 0;
      q.#state = 'live';
      return q;
    } catch (err) {
      q.close('connect failed');
      throw err;
    }
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }
  /** The error that ended the queue, once closed. */
  get error(): HostError | null {
    return this.#error;
  }
  /** Commands submitted and not yet ended (in flight plus waiting for a tag or drain). */
  get inflight(): number {
    return this.#busy + this.#backlog.length;
  }
  /** Commands waiting for a free tag or for the socket to drain. */
  get waiting(): number {
    return this.#backlog.length;
  }

  /**
   * Submit a command. Never throws and never rejects: the outcome is a value.
   * The command id is assigned here; the SQE's SGL is set to in-capsule or
   * transport data to match `opts.data`.
   */
  submit(sqe: Sqe, opts: SubmitOptions): Promise<QueueOutcome> {
    return new Promise<QueueOutcome>((resolve) => {
      if (this.#state === 'closed') {
        resolve({ kind: 'path-error', reason: this.#error?.message ?? 'queue closed', mayHaveExecuted: false });
        return;
      }
      if (this.#free.length === 0 || !this.#writable || this.#backlog.length > 0) {
        this.#backlog.push({ sqe, opts, resolve });
        return;
      }
      this.#start(sqe, opts, resolve);
    });
  }

  // ---------------------------------------------------------------- host-side faults

  /** Output held while blackholed (null when not). */
  #held: Buffer[] | null = null;

  /**
   * Blackhole this connection from the host side: nothing is read or sent, the
   * socket stays open (a cable pulled without a link-down event). Only timeouts
   * and keep-alive can notice.
   */
  blackhole(on: boolean): void {
    if (this.#state === 'closed') return;
    if (on && !this.#held) {
      this.#held = [];
      this.#socket.pause();
    } else if (!on && this.#held) {
      const held = this.#held;
      this.#held = null;
      this.#socket.resume();
      this.#write(held);
    }
  }

  /** Reset the connection from the host side, as a crash or RST would. */
  drop(reason = 'connection dropped (host-side fault)'): void {
    this.#fail(new HostError('CONNECTION_CLOSED', `queue ${this.qid}: ${reason}`));
  }

  /** End the queue: every command in flight fails as a path error. */
  close(reason = 'queue closed by host'): void {
    this.#fail(new HostError('QUEUE_CLOSED', `queue ${this.qid}: ${reason}`));
  }

  // ---------------------------------------------------------------- setup

  #initialize(o: TcpQueueOptions, deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const clock = this.clock;
      const timer = clock.setTimeout(
        () => {
          this.#fail(new HostError('CONNECT_TIMEOUT', `queue ${o.qid}: no ICResp from ${o.host}:${o.port} within ${o.connectTimeoutMs} ms`));
        },
        Math.max(1, deadline - clock.now()),
      );
      this.#icWaiter = {
        resolve: (ic) => {
          clock.clearTimeout(timer);
          const problem = icRespProblem(ic, o.hdgst, o.ddgst);
          if (problem) {
            const err = new HostError('ICRESP_INVALID', `queue ${o.qid}: ICResp refused: ${problem}`);
            this.#fail(err);
            reject(err);
            return;
          }
          this.maxh2cdata = ic.maxh2cdata;
          this.wire = { hdgst: ic.hdgst, ddgst: ic.ddgst };
          this.#framer.setDigests(ic.hdgst, ic.ddgst);
          resolve();
        },
        reject: (err) => {
          clock.clearTimeout(timer);
          reject(err);
        },
      };
      this.#write([encodeIcReq({ pfv: 0, hpda: 0, hdgst: o.hdgst, ddgst: o.ddgst, maxr2t: 0 })]);
    });
  }

  // ---------------------------------------------------------------- submit

  #start(sqe: Sqe, opts: SubmitOptions, resolve: (o: QueueOutcome) => void): void {
    const slot = this.#slots[this.#free.pop()!]!;
    slot.gen = (slot.gen + 1) & GEN_MASK;
    slot.resolve = resolve;
    slot.opcode = sqe.opcode;
    slot.transportStatus = 0;
    slot.received = 0;
    slot.h2cSent = 0;
    this.#busy++;
    let state: CmdState = CmdState.AwaitingResponse;
    const buf = encodeSqe(withCid(sqe, slot.cid));
    const data = opts.data && opts.data.length > 0 ? opts.data : null;
    let capsuleData: Buffer | null = null;
    if (data) {
      const limit = sqe.opcode === AdminOpcode.Fabrics || this.qid === 0 ? ADMIN_INCAPSULE_SIZE : this.#inCapsuleSize;
      if (data.length <= limit) {
        capsuleData = data;
        encodeSgl(inCapsuleSgl(data.length), buf, 24);
      } else {
        slot.r2tData = data;
        state = CmdState.SendingData;
        encodeSgl(transportSgl(data.length), buf, 24);
      }
    } else if (opts.readLength) {
      slot.readLength = opts.readLength;
      slot.readBuf = opts.readInto ?? null;
      state = CmdState.ReceivingData;
      encodeSgl(transportSgl(opts.readLength), buf, 24);
    }
    if (opts.timeoutMs > 0) {
      slot.deadline = this.clock.now() + opts.timeoutMs;
      this.#armTimer(slot.deadline);
    } else slot.deadline = 0;
    this.#to(slot, state);
    this.#write(encodeCapsuleCmd(buf, capsuleData, this.wire));
  }

  #write(bufs: Buffer[]): void {
    if (this.#state === 'closed') return;
    if (this.#held) {
      this.#held.push(...bufs);
      return;
    }
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(this.#uncork);
    }
    for (const b of bufs) if (!this.#socket.write(b)) this.#writable = false;
  }

  /** Start backlogged commands while tags are free and the socket takes writes. */
  #pump(): void {
    while (this.#backlog.length > 0 && this.#free.length > 0 && this.#writable && this.#state !== 'closed') {
      const b = this.#backlog.shift()!;
      this.#start(b.sqe, b.opts, b.resolve);
    }
  }

  // ---------------------------------------------------------------- receive

  #onData(chunk: Buffer): void {
    this.#receive((deliver) => this.#framer.push(chunk, deliver));
  }

  #receive(push: (deliver: (pdu: Pdu) => void) => void): void {
    if (this.#state === 'closed') return;
    try {
      push(this.#onPdu);
    } catch (err) {
      if (err instanceof ProtocolError) this.#protocolError(err);
      else this.#fail(new HostError('PROTOCOL_ERROR', `queue ${this.qid}: ${(err as Error).message}`, { cause: err }));
    }
  }

  #handlePdu(pdu: Pdu): void {
    if (this.#state === 'closed') return;
    switch (pdu.type) {
      case PduType.ICResp: {
        const w = this.#icWaiter;
        if (this.#state !== 'await-icresp' || !w) throw new ProtocolError(Fes.PduSequenceError, 0, 'unexpected ICResp');
        this.#icWaiter = null;
        w.resolve(pdu);
        return;
      }
      case PduType.C2HTermReq:
        this.#fail(new HostError('TERM_REQ', `queue ${this.qid}: C2HTermReq from the target: ${fesName(pdu.fes)} (fei ${pdu.fei})`));
        return;
      default:
        break;
    }
    if (this.#state === 'await-icresp') throw new ProtocolError(Fes.PduSequenceError, 0, `PDU type ${pdu.type} before ICResp`);
    switch (pdu.type) {
      case PduType.CapsuleResp: {
        const cqe = decodeCqe(pdu.cqe);
        const slot = this.#lookup(cqe.cid, 'CapsuleResp');
        if (slot.state === CmdState.ReceivingData) {
          if (slot.readBuf === null) slot.readBuf = Buffer.alloc(slot.readLength);
          else if (slot.received < slot.readLength) slot.readBuf.fill(0, slot.received, slot.readLength);
        }
        this.#complete(slot, cqe.status !== 0 ? cqe.status : slot.transportStatus, cqe.result, cqe.dw1);
        return;
      }
      case PduType.C2HData:
        this.#onC2HData(pdu);
        return;
      case PduType.R2T:
        this.#onR2T(pdu);
        return;
      default:
        throw new ProtocolError(Fes.InvalidHeaderField, 0, `unexpected PDU type ${pdu.type}`);
    }
  }

  #lookup(cid: number, what: string): Slot {
    const slot = this.#slots[cid & TAG_MASK];
    if (!slot || slot.state === CmdState.Free)
      throw new ProtocolError(Fes.InvalidHeaderField, 8, `${what} for command id 0x${cid.toString(16)}: no such command in flight`);
    if (slot.gen !== cid >>> TAG_BITS) {
      throw new ProtocolError(
        Fes.InvalidHeaderField,
        8,
        `${what} for command id 0x${cid.toString(16)}: stale generation (in flight: 0x${slot.cid.toString(16)})`,
      );
    }
    return slot;
  }

  /**
   * Where a C2HData PDU's data goes as it arrives: the command's destination at
   * the PDU's offset (the caller's buffer, or one allocated for the command).
   * A PDU that does not check out is left to the framer and refused whole.
   */
  #placeData(h: DataPduHeader): Buffer | null {
    if (h.type !== PduType.C2HData || this.#state === 'closed') return null;
    const cid = h.header.readUInt16LE(8);
    const slot = this.#slots[cid & TAG_MASK];
    const datao = h.header.readUInt32LE(12);
    if (!slot || slot.state !== CmdState.ReceivingData || slot.gen !== cid >>> TAG_BITS || datao !== slot.received || datao + h.dataLength > slot.readLength)
      return null;
    slot.readBuf ??= Buffer.allocUnsafe(slot.readLength);
    return slot.readBuf.subarray(datao, datao + h.dataLength);
  }

  #onC2HData(pdu: C2HDataPdu): void {
    const slot = this.#lookup(pdu.cccid, 'C2HData');
    if (slot.state !== CmdState.ReceivingData)
      throw new ProtocolError(Fes.InvalidHeaderField, 8, `C2HData for command 0x${pdu.cccid.toString(16)} that reads no data`);
    if (pdu.datao !== slot.received) {
      throw new ProtocolError(Fes.DataTransferOutOfRange, 12, `C2HData offset ${pdu.datao}, expected ${slot.received}`);
    }
    const length = slot.readLength;
    if (pdu.datao + pdu.data.length > length) {
      throw new ProtocolError(Fes.DataTransferOutOfRange, 16, `C2HData ${pdu.datao}+${pdu.data.length} past the command's ${length} bytes`);
    }
    let dest = slot.readBuf;
    if (dest === null && pdu.datao === 0 && pdu.data.length === length && pdu.data.buffer.byteLength <= 2 * length) {
      // The whole transfer in one PDU whose memory is (mostly) its own: take it, no copy.
      // (A small PDU inside a larger socket chunk is copied, not to pin the chunk.)
      dest = slot.readBuf = pdu.data;
    } else if (dest === null || !isPlacedAt(pdu.data, dest, pdu.datao)) {
      // Not already placed there by #placeData: copy it.
      if (dest === null) dest = slot.readBuf = Buffer.allocUnsafe(length);
      pdu.data.copy(dest, pdu.datao);
    }
    slot.received += pdu.data.length;
    if (pdu.dataDigestError) {
      this.log.warn({ qid: this.qid, cid: pdu.cccid }, 'C2HData data digest error');
      slot.transportStatus = Status.DataTransferError;
    }
    if (pdu.success) {
      if (slot.received < dest.length) dest.fill(0, slot.received);
      this.#complete(slot, slot.transportStatus, 0, 0);
    }
  }

  #onR2T(pdu: R2TPdu): void {
    const slot = this.#lookup(pdu.cccid, 'R2T');
    const data = slot.r2tData;
    if (slot.state !== CmdState.SendingData || data === null)
      throw new ProtocolError(Fes.InvalidHeaderField, 8, `R2T for command 0x${pdu.cccid.toString(16)} with no data to transfer`);
    if (pdu.r2tl === 0) throw new ProtocolError(Fes.InvalidHeaderField, 16, 'R2T with length 0');
    if (pdu.r2to !== slot.h2cSent) throw new ProtocolError(Fes.DataTransferOutOfRange, 12, `R2T offset ${pdu.r2to}, expected ${slot.h2cSent}`);
    const end = pdu.r2to + pdu.r2tl;
    if (end > data.length) throw new ProtocolError(Fes.DataTransferOutOfRange, 16, `R2T ${pdu.r2to}+${pdu.r2tl} past the command's ${data.length} bytes`);
    const chunk = this.maxh2cdata;
    for (let off = pdu.r2to; off < end; off += chunk) {
      const stop = Math.min(end, off + chunk);
      this.#write(encodeH2CData({ cccid: pdu.cccid, ttag: pdu.ttag, datao: off, last: stop === end }, data.subarray(off, stop), this.wire));
    }
    slot.h2cSent = end;
  }

  #complete(slot: Slot, status: number, result: number, dw1: number): void {
    const resolve = slot.resolve!;
    const data = slot.readBuf ?? undefined;
    this.#release(slot);
    resolve({ kind: 'completed', status, result, dw1, data });
    this.#pump();
  }

  #release(slot: Slot): void {
    this.#to(slot, CmdState.Free);
    slot.resolve = null;
    slot.readBuf = null;
    slot.readLength = 0;
    slot.r2tData = null;
    slot.deadline = 0;
    this.#busy--;
    this.#free.push(slot.tag);
  }

  /** The one place a command changes state; the table and each state's data are checked in development and test runs. */
  #to(slot: Slot, next: CmdState): void {
    if (DEV_CHECKS) {
      const from = slot.state;
      if (!canCmdTransition(from, next)) {
        throw new InvariantError(`queue ${this.qid}: command tag ${slot.tag}: ${CMD_STATE_NAMES[from]} -> ${CMD_STATE_NAMES[next]} is not a transition`);
      }
      const bad =
        next === CmdState.Free
          ? slot.resolve === null
          : slot.resolve === null || (next === CmdState.SendingData) !== (slot.r2tData !== null) || (next === CmdState.ReceivingData) !== slot.readLength > 0;
      if (bad) throw new InvariantError(`queue ${this.qid}: command tag ${slot.tag} entering ${CMD_STATE_NAMES[next]} with inconsistent data`);
    }
    slot.state = next;
  }

  // ---------------------------------------------------------------- deadlines

  #armTimer(deadline: number): void {
    if (this.#timer !== null && this.#timerAt <= deadline) return;
    this.clock.clearTimeout(this.#timer);
    this.#timerAt = deadline;
    this.#timer = this.clock.setTimeout(this.#onTimer, deadline - this.clock.now());
  }

  #checkDeadlines(): void {
    this.#timer = null;
    if (this.#state === 'closed') return;
    const now = this.clock.now();
    let next = Infinity;
    for (const s of this.#slots) {
      if (s.state === CmdState.Free || s.deadline === 0) continue;
      if (s.deadline <= now) {
        this.#fail(new HostError('COMMAND_TIMEOUT', `queue ${this.qid}: command 0x${s.cid.toString(16)} (opcode 0x${s.opcode.toString(16)}) timed out`));
        return;
      }
      if (s.deadline < next) next = s.deadline;
    }
    if (next !== Infinity) this.#armTimer(next);
  }

  // ---------------------------------------------------------------- teardown

  #protocolError(err: ProtocolError): void {
    if (this.#state === 'closed') return;
    this.log.warn({ qid: this.qid, err: err.message }, 'protocol error: sending H2CTermReq and closing');
    // Tell the target why, then go (the term PDU is the last thing written).
    try {
      if (this.#corked) this.#uncork();
      this.#socket.write(encodeTermReq(PduType.H2CTermReq, err.fes, err.fei, err.errorHeader));
    } catch {
      // the socket is already gone
    }
    this.#fail(new HostError('PROTOCOL_ERROR', `queue ${this.qid}: ${err.message}`, { cause: err }), true);
  }

  /** The one teardown funnel: first error wins, every command in flight fails with it. */
  #fail(err: HostError, graceful = false): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#error = err;
    this.clock.clearTimeout(this.#timer);
    this.#timer = null;
    if (graceful) {
      this.#socket.end();
      const s = this.#socket;
      this.clock.setTimeout(() => s.destroy(), 1000);
    } else this.#socket.destroy();
    const w = this.#icWaiter;
    this.#icWaiter = null;
    w?.reject(err);
    const reason = err.message;
    for (const slot of this.#slots) {
      if (slot.state === CmdState.Free) continue;
      const resolve = slot.resolve!;
      this.#release(slot);
      // Every busy command's capsule was written: it may have executed.
      resolve({ kind: 'path-error', reason, mayHaveExecuted: true });
    }
    for (const b of this.#backlog.splice(0)) b.resolve({ kind: 'path-error', reason, mayHaveExecuted: false });
    this.log.debug({ qid: this.qid, code: err.code, reason }, 'queue closed');
    this.emit('close', err);
  }
}

/** Why Linux would refuse this ICResp, or null. */
export function icRespProblem(ic: IcRespPdu, hdgst: boolean, ddgst: boolean): string | null {
  if (ic.pfv !== 0) return `pfv ${ic.pfv}, expected 0`;
  if (ic.hdgst !== hdgst) return `header digest ${ic.hdgst ? 'enabled' : 'disabled'} but ${hdgst ? 'requested' : 'not requested'}`;
  if (ic.ddgst !== ddgst) return `data digest ${ic.ddgst ? 'enabled' : 'disabled'} but ${ddgst ? 'requested' : 'not requested'}`;
  if (ic.cpda !== 0) return `cpda ${ic.cpda} not supported`;
  if (ic.maxh2cdata % 4 !== 0 || ic.maxh2cdata < MIN_MAXH2CDATA) return `maxh2cdata ${ic.maxh2cdata} must be a multiple of 4 and at least ${MIN_MAXH2CDATA}`;
  return null;
}

function connectSocket(clock: Clock, host: string, port: number, timeoutMs: number, onread: net.OnReadOpts | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true, writableHighWaterMark: 256 * 1024, ...(onread ? { onread } : {}) } as net.NetConnectOpts);
    const timer = clock.setTimeout(() => {
      socket.destroy();
      reject(new HostError('CONNECT_TIMEOUT', `TCP connect to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error): void => {
      clock.clearTimeout(timer);
      reject(new HostError('CONNECTION_FAILED', `TCP connect to ${host}:${port}: ${err.message}`, { cause: err }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clock.clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
