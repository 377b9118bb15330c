/**
 * The NVMe/TCP transport: one listener per port, one TcpQueue per connection.
 *
 * A queue does the transport's share of every command and nothing more: the
 * IC exchange, PDU framing, moving data (in-capsule, R2T/H2CData in, C2HData
 * out), digests, and sending what the core hands it (QueueOps.queueResponse).
 * What a command means, whether it needs data, and how it completes is the
 * core's (core.ts): the queue asks initRequest, fetches what it is told to,
 * and calls back dataReceived / executeRequest.
 *
 * Socket writes are batched: PDUs produced while handling one socket read (or
 * one store callback), promise continuations included, go out in one corked
 * write. A protocol violation ends in one place, fatal(): a
 * C2HTermReq with the FES, and the connection closes. Nothing else is touched.
 */
import net from 'node:net';
import type { TimerHandle } from '../shared/clock.ts';
import { decodeSqe, type Sqe } from '../shared/sqe.ts';
import { encodeCqe } from '../shared/cqe.ts';
import { PduFramer, isPlacedAt, type DataPduHeader } from '../shared/framer.ts';
import { DIRECT_READ_MAX, DIRECT_READ_MIN, adoptWithDirectRead, directReadOption } from '../shared/direct-read.ts';
import {
  Fes,
  PduType,
  ProtocolError,
  encodeC2HData,
  encodeCapsuleResp,
  encodeIcResp,
  encodeR2T,
  encodeTermReq,
  fesName,
  pdaToAlignment,
  type CapsuleCmdPdu,
  type H2CDataPdu,
  type IcReqPdu,
  type Pdu,
  type WireOptions,
} from '../shared/pdu.ts';
import { ADMIN_INCAPSULE_SIZE, Init, admitRequest, dataReceived, executeRequest, initRequest, stageHostData, type TargetCore } from './core.ts';
import { dataBuffers } from './buffer-pool.ts';
import type { Logger } from './logger.ts';
import type { Port } from './port.ts';
import { ReqState, moveTo } from './req-state.ts';
import { Request, type Completion } from './request.ts';
import { SubmissionQueue, type QueueOps } from './sq.ts';

export { ADMIN_INCAPSULE_SIZE } from './core.ts';
/** Largest data in one C2HData PDU; larger reads go out as several PDUs. */
export const MAX_C2H_DATA = 131072;
/** Time allowed for ICReq, then for Connect, on a new connection. */
export const SETUP_TIMEOUT_MS = 10_000;
/** Output that carries this much data is flushed at the end of the event-loop turn, smaller output at once (send()). */
const BULK_FLUSH_BYTES = 32 * 1024;
/** Pause reading when this much output is queued in the socket. */
const WRITE_HIGH_WATER = 8 * 1024 * 1024;
/**
 * A PDU started but not complete, or an R2T not answered in full, after this
 * long closes the connection (TargetLimits.stallTimeoutMs overrides it).
 */
export const STALL_TIMEOUT_MS = 30_000;
/**
 * R2T buffers one connection may hold at once: commands beyond it wait for
 * their R2T until earlier transfers are done (one transfer always proceeds).
 */
export const R2T_BUFFER_BUDGET = 8 * 1024 * 1024;

/** A command as this transport carries it: the core's Request and its transfer's bookkeeping. */
class TcpCommand extends Request {
  /** The transfer tag of its R2T; meaningful only while TransferringHostToController. */
  ttag = 0;
  /** Where its H2CData goes (allocated on the first PDU, unless one PDU brings it all). */
  buffer: Buffer | null = null;
  received = 0;
  digestError = false;
  /** Pooled memory holding the host's data for this command (returned when the command is done). */
  pooledIn: Buffer | null;
  /** Closes the connection if the R2T's data does not all arrive in time. */
  r2tTimer: TimerHandle | null = null;

  constructor(sq: SubmissionQueue, sqe: Sqe, pooledIn: Buffer | null) {
    super(sq, sqe);
    this.pooledIn = pooledIn;
  }
}

export class TcpQueue implements QueueOps {
  readonly port: Port;
  readonly remoteAddress: string;
  /** The core's side of this connection: qid, SQ head, controller, commands in flight. */
  readonly sq: SubmissionQueue;
  /** Public for tests that stall a connection below the transport (host-failover). */
  readonly socket: net.Socket;
  readonly #core: TargetCore;
  readonly #log: Logger;
  readonly #framer: PduFramer;
  /** ICReq answered; whether Connect followed is the submission queue's state. */
  #icDone = false;
  #closed = false;
  #wire: WireOptions = { hdgst: false, ddgst: false };
  /** Commands whose R2T is out, by transfer tag (all TransferringHostToController). */
  readonly #ttags = new Map<number, TcpCommand>();
  #nextTtag = 0;
  #out: Buffer[] = [];
  /** Pooled buffers in `out`, returned to the pool when the write that carries them completes. */
  #afterWrite: Buffer[] = [];
  #flushScheduled = false;
  #setupTimer: TimerHandle | null;
  #onClosed: ((q: TcpQueue) => void) | null;
  /** Running while a PDU is partly received; pdusSeen tells a new partial PDU from the same one. */
  #stallTimer: TimerHandle | null = null;
  #stallMark = -1;
  #pdusSeen = 0;
  /** Bytes of R2T buffers held, and the commands (AwaitingR2TBudget) waiting for budget to get their R2T. */
  #r2tBytes = 0;
  #r2tWaiting: TcpCommand[] = [];
  /** Commands Draining: completed while a PDU was being placed into their staged memory (see release). */
  #draining: TcpCommand[] = [];
  #frozen = false;

  /** `accepted` comes paused (the listener's pauseOnConnect): reads start here. */
  constructor(accepted: net.Socket, port: Port, core: TargetCore, onClosed: (q: TcpQueue) => void) {
    this.port = port;
    this.#core = core;
    this.#onClosed = onClosed;
    this.#framer = new PduFramer('target', {
      maxInCapsuleData: Math.max(ADMIN_INCAPSULE_SIZE, port.config.inlineDataSize),
      maxH2CData: port.config.maxh2cdata,
      maxC2HData: 0,
    });
    this.#framer.placeData = (h) => this.#placeData(h);
    const direct = core.switches.directReads
      ? adoptWithDirectRead(
          accepted,
          directReadOption({
            directTarget: () => (this.#closed ? null : this.#framer.directReadTarget(DIRECT_READ_MIN, DIRECT_READ_MAX)),
            directData: (n) => this.#onDirectData(n),
            chunk: (c) => this.#onData(c),
          }),
        )
      : null;
    const socket = direct ?? accepted;
    this.socket = socket;
    this.remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    this.#log = core.log.child({ port: port.portid, peer: this.remoteAddress });
    this.sq = new SubmissionQueue(core, port, this.remoteAddress, this.#log, this);
    socket.setNoDelay(true);
    if (!direct) {
      socket.on('data', (chunk: Buffer) => this.#onData(chunk));
      socket.resume();
    }
    socket.on('error', (err) => this.#log.debug({ err: err.message }, 'socket error'));
    socket.on('close', () => this.#teardown('connection closed'));
    socket.on('drain', () => {
      if (!this.#frozen) socket.resume();
    });
    if (port.faults.blackhole) this.freeze();
    this.#setupTimer = core.clock.setTimeout(() => this.#setupTimeout(), core.limits.setupTimeoutMs ?? SETUP_TIMEOUT_MS);
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  // ---------------------------------------------------------------- receive

  #onData(chunk: Buffer): void {
    this.#receive((deliver) => this.#framer.push(chunk, deliver));
  }

  /** Bytes of a payload the socket read straight into its place. */
  #onDirectData(n: number): void {
    this.#core.counters.directReadBytes += n;
    this.#receive((deliver) => this.#framer.pushDirect(n, deliver));
  }

  readonly #deliver = (pdu: Pdu): void => this.#onPdu(pdu);

  #receive(push: (deliver: (pdu: Pdu) => void) => void): void {
    if (this.#closed) return;
    try {
      push(this.#deliver);
    } catch (err) {
      if (err instanceof ProtocolError) this.fatal(err);
      else {
        this.#log.error({ err }, 'internal error handling a PDU');
        this.fatal(new ProtocolError(Fes.InvalidHeaderField, 0, `internal error: ${(err as Error).message}`));
      }
    }
    if (this.#draining.length > 0) this.#discardPlaced();
    this.#watchPartialPdu();
  }

  /** Draining commands whose staged memory no PDU is being placed into any more: the memory goes back to the store. */
  #discardPlaced(): void {
    this.#draining = this.#draining.filter((cmd) => {
      if (cmd.staged && this.#framer.placingInto(cmd.staged.data)) return true;
      this.#dropStaged(cmd);
      return false;
    });
  }

  #dropStaged(cmd: TcpCommand): void {
    cmd.staged?.discard();
    cmd.staged = null;
    // Still Completing when its response is held (latency fault): it settles as Completed when sent.
    if (cmd.state === ReqState.Draining) moveTo(cmd, ReqState.Completed);
  }

  /** A PDU begun and not finished must finish within the stall timeout: start (or keep) its timer. */
  #watchPartialPdu(): void {
    const clock = this.#core.clock;
    if (this.#closed || !this.#framer.midPdu) {
      clock.clearTimeout(this.#stallTimer);
      this.#stallTimer = null;
      return;
    }
    if (this.#stallTimer && this.#stallMark === this.#pdusSeen) return; // the same PDU, still arriving
    clock.clearTimeout(this.#stallTimer);
    this.#stallMark = this.#pdusSeen;
    this.#armPduStall();
  }

  #armPduStall(): void {
    this.#stallTimer = this.#core.clock.setTimeout(() => this.#stalled('a PDU begun was not completed', () => this.#armPduStall()), this.#stallTimeoutMs);
  }

  get #stallTimeoutMs(): number {
    return this.#core.limits.stallTimeoutMs ?? STALL_TIMEOUT_MS;
  }

  /** A stalled sender: close the connection and drop what it holds (buffers go with the queue). */
  #stalled(what: string, rearm: () => void): void {
    if (this.#closed) return;
    if (this.#frozen) {
      rearm(); // blackholed: it is the target that is not reading; look again later
      return;
    }
    this.#log.warn(
      { qid: this.sq.qid, cntlid: this.sq.controller?.cntlid, timeoutMs: this.#stallTimeoutMs, buffered: this.#framer.bufferedBytes },
      `stalled sender: ${what} within ${this.#stallTimeoutMs} ms; closing the connection`,
    );
    this.destroy('stall timeout');
  }

  #onPdu(pdu: Pdu): void {
    if (this.#closed) return;
    this.#pdusSeen += 1;
    switch (pdu.type) {
      case PduType.ICReq:
        return this.#onIcReq(pdu);
      case PduType.CapsuleCmd:
        return this.#onCapsule(pdu);
      case PduType.H2CData:
        return this.#onH2CData(pdu);
      case PduType.H2CTermReq:
        this.#log.warn({ fes: fesName(pdu.fes), fei: pdu.fei }, 'host terminated the connection (H2CTermReq)');
        return this.destroy('H2CTermReq from host');
      default:
        throw new ProtocolError(Fes.InvalidHeaderField, 0, `unexpected PDU type ${pdu.type}`);
    }
  }

  /**
   * Where a large data PDU's data goes as it arrives: H2CData into its
   * command's transfer buffer (pooled, or store memory the core stages) at its
   * offset, in-capsule data into a pooled buffer. Anything that does not check
   * out here (unknown tag, wrong offset) is left to the framer and refused when
   * the PDU is whole.
   */
  #placeData(h: DataPduHeader): Buffer | null {
    if (h.type === PduType.CapsuleCmd) return this.sq.live && this.sq.qid > 0 && dataBuffers.serves(h.dataLength) ? dataBuffers.acquire(h.dataLength) : null;
    if (h.type !== PduType.H2CData) return null;
    const cmd = this.#ttags.get(h.header.readUInt16LE(10));
    const datao = h.header.readUInt32LE(12);
    if (!cmd || cmd.sqe.cid !== h.header.readUInt16LE(8) || datao !== cmd.received || datao + h.dataLength > cmd.transferLength) return null;
    if (cmd.buffer === null) {
      // A write's data straight into the store's memory where the core can stage it (redirect-on-write), else into a pooled buffer.
      const staged = stageHostData(cmd);
      if (staged) cmd.buffer = staged;
      else {
        cmd.buffer = dataBuffers.acquire(cmd.transferLength);
        if (dataBuffers.owns(cmd.buffer)) cmd.pooledIn = cmd.buffer;
      }
    }
    return cmd.buffer.subarray(datao, datao + h.dataLength);
  }

  #onIcReq(pdu: IcReqPdu): void {
    if (this.#icDone) throw new ProtocolError(Fes.PduSequenceError, 0, 'ICReq after the connection was initialized');
    if (pdu.pfv !== 0) throw new ProtocolError(Fes.UnsupportedParameter, 8, `PDU format version ${pdu.pfv} not supported`);
    if (pdu.hpda > 31) throw new ProtocolError(Fes.InvalidHeaderField, 10, `HPDA ${pdu.hpda} out of range 0..31`);
    const hdgst = pdu.hdgst;
    const ddgst = pdu.ddgst;
    this.#sendNow([encodeIcResp({ pfv: 0, cpda: 0, hdgst, ddgst, maxh2cdata: this.port.config.maxh2cdata })]);
    this.#framer.setDigests(hdgst, ddgst);
    this.#wire = { hdgst, ddgst, dataAlignment: pdaToAlignment(pdu.hpda) };
    this.#icDone = true;
    this.#log.debug({ hdgst, ddgst, hpda: pdu.hpda, maxr2t: pdu.maxr2t }, 'ICReq accepted');
  }

  #onCapsule(pdu: CapsuleCmdPdu): void {
    if (!this.#icDone) throw new ProtocolError(Fes.PduSequenceError, 0, 'CapsuleCmd before ICReq');
    const sq = this.sq;
    const cmd = new TcpCommand(sq, decodeSqe(pdu.sqe), dataBuffers.owns(pdu.data) ? pdu.data : null);
    if (!admitRequest(cmd)) return;
    const limit = sq.live ? 2 * (sq.sqsize + 1) : 1;
    if (sq.outstanding >= limit) {
      throw new ProtocolError(Fes.PduSequenceError, 0, `${sq.outstanding} commands outstanding, queue size ${sq.sqsize + 1}`);
    }
    switch (initRequest(cmd, pdu.data, pdu.dataDigestError)) {
      case Init.Execute:
        return executeRequest(cmd);
      case Init.FetchData:
        return this.#requestData(cmd);
      case Init.Done:
        return;
    }
  }

  /** Ask for the whole transfer with one R2T; the host answers in H2CData chunks. */
  #requestData(cmd: TcpCommand): void {
    const length = cmd.transferLength;
    if (this.#r2tBytes > 0 && this.#r2tBytes + length > R2T_BUFFER_BUDGET) {
      moveTo(cmd, ReqState.AwaitingR2TBudget);
      this.#r2tWaiting.push(cmd); // its R2T goes out when earlier transfers are done
      return;
    }
    this.#r2tBytes += length;
    let ttag = this.#nextTtag;
    while (this.#ttags.has(ttag)) ttag = (ttag + 1) & 0xffff;
    this.#nextTtag = (ttag + 1) & 0xffff;
    cmd.ttag = ttag;
    // Allocated on the first H2CData, unless one PDU brings all the data (then it is used as is).
    cmd.buffer = null;
    moveTo(cmd, ReqState.TransferringHostToController);
    this.#ttags.set(ttag, cmd);
    // With the small output: once this callback's work is done, in one write with the
    // completions and other R2Ts it produced. A write syscall of its own per R2T cost
    // the target ~10 us per 128 KiB write (target CPU per write 42-65 us -> 37-43 us).
    this.#send(encodeR2T({ cccid: cmd.sqe.cid, ttag, r2to: 0, r2tl: length }, this.#wire));
    this.#armR2tStall(cmd);
  }

  #armR2tStall(cmd: TcpCommand): void {
    const what = `the data asked for by R2T ${cmd.ttag} (cid ${cmd.sqe.cid}, ${cmd.transferLength} bytes) did not all arrive`;
    cmd.r2tTimer = this.#core.clock.setTimeout(() => this.#stalled(what, () => this.#armR2tStall(cmd)), this.#stallTimeoutMs);
  }

  /** A transfer is over (all data in, or its command gone): free its budget, send the R2Ts waiting for it. */
  #endTransfer(cmd: TcpCommand): void {
    this.#core.clock.clearTimeout(cmd.r2tTimer);
    cmd.r2tTimer = null;
    this.#r2tBytes -= cmd.transferLength;
    while (this.#r2tWaiting.length > 0 && !this.#closed) {
      const next = this.#r2tWaiting[0]!;
      if (this.#r2tBytes > 0 && this.#r2tBytes + next.transferLength > R2T_BUFFER_BUDGET) break;
      this.#r2tWaiting.shift();
      this.#requestData(next);
    }
  }

  #onH2CData(pdu: H2CDataPdu): void {
    // Before Connect completes the only data the target may have asked for is the Connect data (R2T for a transport SGL).
    if (!this.sq.live && this.#ttags.size === 0) throw new ProtocolError(Fes.PduSequenceError, 0, 'H2CData before the queue is connected');
    const cmd = this.#ttags.get(pdu.ttag);
    if (!cmd) throw new ProtocolError(Fes.InvalidHeaderField, 10, `H2CData for unknown transfer tag ${pdu.ttag}`);
    if (cmd.sqe.cid !== pdu.cccid) {
      throw new ProtocolError(Fes.InvalidHeaderField, 8, `H2CData cccid ${pdu.cccid} does not match ttag ${pdu.ttag} (cid ${cmd.sqe.cid})`);
    }
    const total = cmd.transferLength;
    if (pdu.datal === 0) throw new ProtocolError(Fes.InvalidHeaderField, 16, 'H2CData with no data');
    if (pdu.datao !== cmd.received) {
      throw new ProtocolError(Fes.DataTransferOutOfRange, 12, `H2CData offset ${pdu.datao}, expected ${cmd.received}`);
    }
    if (pdu.datao + pdu.datal > total) {
      throw new ProtocolError(Fes.DataTransferOutOfRange, 16, `H2CData ends at ${pdu.datao + pdu.datal}, R2T asked for ${total}`);
    }
    if (cmd.buffer === null && pdu.datao === 0 && pdu.datal === total) {
      // The whole transfer in one PDU that came in one socket chunk: use it in place.
      cmd.buffer = pdu.data;
    } else if (cmd.buffer === null || !isPlacedAt(pdu.data, cmd.buffer, pdu.datao)) {
      // Not placed by placeData (which put the data where it belongs already): copy it there.
      cmd.buffer ??= Buffer.allocUnsafe(total);
      pdu.data.copy(cmd.buffer, pdu.datao);
    }
    cmd.received += pdu.datal;
    if (pdu.dataDigestError) cmd.digestError = true;
    const done = cmd.received === total;
    if (done !== pdu.last) {
      throw new ProtocolError(Fes.InvalidHeaderField, 1, done ? 'last H2CData PDU without LAST_PDU' : 'LAST_PDU before all data was sent');
    }
    if (!done) return;
    this.#ttags.delete(cmd.ttag);
    cmd.data = cmd.buffer;
    cmd.buffer = null;
    this.#endTransfer(cmd);
    dataReceived(cmd, cmd.digestError);
  }

  // ---------------------------------------------------------------- QueueOps (called by the core)

  /** The command is done: its pooled memory, open transfer and staged memory are let go. */
  release(req: Request): void {
    const cmd = req as TcpCommand; // every request on this queue's sq was made by #onCapsule
    const inTransfer = cmd.state === ReqState.TransferringHostToController;
    // A transfer still open could have its data being placed into the buffer: that one is left to the collector.
    if (cmd.pooledIn && !inTransfer) dataBuffers.release(cmd.pooledIn);
    cmd.pooledIn = null;
    const staged = cmd.staged;
    if (staged) {
      // Committed by now if the write executed; otherwise its memory goes back to the store, once no PDU is being placed into it.
      if (inTransfer && this.#framer.placingInto(staged.data)) this.#draining.push(cmd);
      else {
        cmd.staged = null;
        staged.discard();
      }
    }
    if (inTransfer) {
      this.#ttags.delete(cmd.ttag);
      cmd.buffer = null;
      this.#endTransfer(cmd);
    } else if (cmd.state === ReqState.AwaitingR2TBudget) this.#r2tWaiting = this.#r2tWaiting.filter((c) => c !== cmd);
  }

  lendReadBuffer(length: number): Buffer | null {
    // From the store into pooled memory, out in C2HData, and back to the pool once written.
    return dataBuffers.serves(length) ? dataBuffers.acquire(length) : null;
  }

  bound(): void {
    this.#core.clock.clearTimeout(this.#setupTimer);
    this.#setupTimer = null;
  }

  close(reason: string): void {
    this.destroy(reason);
  }

  /** The completion's PDUs: C2HData for a read's data (SUCCESS in the last one when SQ flow control is off), then CapsuleResp. */
  queueResponse(req: Request, c: Completion): void {
    const { sqe } = req;
    const sq = this.sq;
    const data = c.status === 0 ? c.data : undefined;
    const lent = req.readInto;
    if (lent) {
      req.readInto = null;
      // Sent below: back to the pool once the socket has written it; not sent: back now.
      if (data && data.buffer === lent.buffer) this.#afterWrite.push(lent);
      else dataBuffers.release(lent);
    }
    let successInData = false;
    if (data && req.transferLength > 0) {
      const length = req.transferLength;
      const payload = data.length >= length ? data.subarray(0, length) : Buffer.concat([data, Buffer.alloc(length - data.length)]);
      const useSuccess = sq.sqFlowDisabled && !c.result && !c.dw1;
      for (let off = 0; off < length; off += MAX_C2H_DATA) {
        const end = Math.min(length, off + MAX_C2H_DATA);
        const last = end === length;
        this.#send(encodeC2HData({ cccid: sqe.cid, datao: off, last, success: last && useSuccess }, payload.subarray(off, end), this.#wire));
      }
      successInData = useSuccess;
    }
    if (successInData) return;
    const cqe = encodeCqe({
      result: c.result ?? 0,
      dw1: c.dw1 ?? 0,
      sqhd: sq.sqFlowDisabled ? 0 : sq.sqhd,
      sqid: Math.max(sq.qid, 0),
      cid: sqe.cid,
      status: c.status,
    });
    this.#send(encodeCapsuleResp(cqe, this.#wire));
  }

  // ---------------------------------------------------------------- send

  #send(buffers: Buffer[]): void {
    if (this.#closed) return;
    let bytes = 0;
    for (const b of buffers) {
      this.#out.push(b);
      bytes += b.length;
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // Small PDUs (completions, R2T) go out once the current callback and the
      // promise work it started are done: the completions of every command that
      // arrived in one socket read together, without waiting for the rest of the
      // event-loop turn (4 KiB random writes QD32: 0.74-0.78 of raw when every
      // flush waited for the turn's end, 1.11-1.22 now). Bulk read data waits
      // for the end of the turn and goes out with the turn's other data in one
      // writev (128 KiB transfers measured alike either way, within noise).
      if (bytes >= BULK_FLUSH_BYTES) setImmediate(this.#flushTask);
      else process.nextTick(this.#flushTask);
    }
  }

  readonly #flushTask = (): void => this.#flush();

  #sendNow(buffers: Buffer[]): void {
    for (const b of buffers) this.#out.push(b);
    this.#flush();
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#frozen) return; // blackholed: output waits, as if the network held it
    if (this.#out.length === 0 || this.socket.destroyed) {
      this.#out = [];
      this.#afterWrite = [];
      return;
    }
    const out = this.#out;
    this.#out = [];
    const lent = this.#afterWrite;
    this.socket.cork();
    if (lent.length === 0) for (const b of out) this.socket.write(b);
    else {
      this.#afterWrite = [];
      const last = out.length - 1;
      for (let i = 0; i < last; i++) this.socket.write(out[i]!);
      // Called once the kernel has the data (or with an error when the socket died: then the collector takes them).
      this.socket.write(out[last]!, (err) => {
        if (!err) for (const b of lent) dataBuffers.release(b);
      });
    }
    this.socket.uncork();
    if (this.socket.writableLength > WRITE_HIGH_WATER) this.socket.pause();
  }

  // ---------------------------------------------------------------- faults

  /** Blackhole: stop reading and writing; the connection stays open. */
  freeze(): void {
    this.#frozen = true;
    this.socket.pause();
  }

  /** The blackhole ends: what the host sent meanwhile is read, held output goes out. */
  thaw(): void {
    if (!this.#frozen) return;
    this.#frozen = false;
    this.socket.resume();
    this.#flush();
  }

  // ---------------------------------------------------------------- teardown

  /** A protocol violation: C2HTermReq with the FES, then close. */
  fatal(err: ProtocolError): void {
    if (this.#closed) return;
    this.#log.warn(
      { fes: fesName(err.fes), fei: err.fei, qid: this.sq.qid, cntlid: this.sq.controller?.cntlid },
      `protocol error: ${err.message}; sending C2HTermReq and closing`,
    );
    this.#flush();
    this.socket.end(encodeTermReq(PduType.C2HTermReq, err.fes, err.fei, err.errorHeader));
    const socket = this.socket;
    this.#core.clock.setTimeout(() => socket.destroy(), 1000);
    this.#teardown(`protocol error: ${fesName(err.fes)}`);
  }

  #setupTimeout(): void {
    if (!this.sq.awaitingConnect) return;
    this.#log.warn({ state: this.#icDone ? 'await-connect' : 'await-ic' }, 'connection did not complete ICReq/Connect in time: closing');
    this.destroy('setup timeout');
  }

  /** Close the connection (controller teardown, port down, shutdown). */
  destroy(reason: string): void {
    if (this.#closed) return;
    this.#flush();
    this.socket.destroy();
    this.#teardown(reason);
  }

  #teardown(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    const clock = this.#core.clock;
    clock.clearTimeout(this.#setupTimer);
    clock.clearTimeout(this.#stallTimer);
    for (const req of this.sq.requests.values()) clock.clearTimeout((req as TcpCommand).r2tTimer);
    // Nothing is placed once the queue is closed: staged memory goes back to the store (the core does the same for commands not executing).
    for (const cmd of this.#draining) this.#dropStaged(cmd);
    this.#draining = [];
    this.#r2tWaiting = [];
    this.#ttags.clear();
    this.#out = [];
    this.#afterWrite = [];
    this.sq.teardown(reason);
    const cb = this.#onClosed;
    this.#onClosed = null;
    cb?.(this);
  }
}

/** The listener of one port and the connections it accepted. */
export class PortListener {
  readonly port: Port;
  #server: net.Server | null = null;
  readonly #core: TargetCore;
  readonly connections = new Set<TcpQueue>();

  constructor(port: Port, core: TargetCore) {
    this.port = port;
    this.#core = core;
  }

  get listening(): boolean {
    return this.#server !== null;
  }

  /** Resolves with the bound TCP port (useful when the config says 0). */
  async start(): Promise<number> {
    if (this.#server) return (this.#server.address() as net.AddressInfo).port;
    const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => {
      const q = new TcpQueue(socket, this.port, this.#core, (closed) => this.connections.delete(closed));
      this.connections.add(q);
    });
    server.maxConnections = this.#core.maxConnectionsPerPort;
    server.on('drop', (d) => {
      this.#core.log.warn(
        { port: this.port.portid, peer: d ? `${d.remoteAddress}:${d.remotePort}` : undefined, limit: this.#core.maxConnectionsPerPort },
        'connection refused: the port has reached its maximum number of connections (maxConnectionsPerPort)',
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.port.config.traddr, port: this.port.config.trsvcid, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.#core.log.error({ err, port: this.port.portid }, 'listener error'));
    this.#server = server;
    return (server.address() as net.AddressInfo).port;
  }

  /** Close the listener and reset every connection on it. */
  async stop(reason: string): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const q of [...this.connections]) q.destroy(reason);
    this.connections.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
