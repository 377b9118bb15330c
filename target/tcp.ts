/**
 * The NVMe/TCP transport: one listener per port, one TcpQueue per connection.
 *
 * A queue does the transport's share of every command: the IC exchange, PDU
 * framing, moving data (in-capsule, R2T/H2CData in, C2HData out), digests,
 * and sending the completion. What a command means is core.ts's business; the
 * queue only asks it which way data flows, then to execute.
 *
 * Socket writes are batched: PDUs produced while handling one socket read (or
 * one store callback), promise continuations included, go out in one corked
 * write. A protocol violation ends in one place, fatal(): a
 * C2HTermReq with the FES, and the connection closes. Nothing else is touched.
 */
import net from 'node:net';
import { decodeSqe, type Sqe } from '../shared/sqe.ts';
import { encodeCqe } from '../shared/cqe.ts';
import { PduFramer, isPlacedAt, type DataPduHeader } from '../shared/framer.ts';
import { DIRECT_READ_MAX, DIRECT_READ_MIN, adoptWithDirectRead, directReadOption, directReadsEnabled } from '../shared/direct-read.ts';
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
import { SGL_INCAPSULE, SGL_TRANSPORT } from '../shared/sgl.ts';
import { AdminOpcode, IoOpcode } from '../shared/opcodes.ts';
import { Status, describeStatus, withDnr } from '../shared/status.ts';
import { commandDirection, executeRequest, type TargetCore } from './core.ts';
import { dataBuffers } from './buffer-pool.ts';
import { stageWriteData } from './io-cmd.ts';
import type { StagedWrite } from './store/index.ts';
import type { Controller, ControllerQueue } from './controller.ts';
import type { Logger } from './logger.ts';
import type { Port } from './port.ts';
import { Request, SqeField, type Completion, type QueueContext } from './request.ts';

/** Fabrics commands and the admin queue always accept this much in-capsule data. */
export const ADMIN_INCAPSULE_SIZE = 8192;
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
/** Payload bytes the socket read straight into their place, on every target connection of this process (tests, diagnostics). */
export const directReads = { bytes: 0 };
/** Writes whose data this process's target connections received straight into store memory (redirect-on-write; tests, diagnostics). */
export const stagedWrites = { count: 0 };

type QueueState = 'await-ic' | 'await-connect' | 'live' | 'closed';

interface CommandSlot {
  readonly req: Request;
  /** Waiting for H2CData: the transfer tag and the bytes received so far. */
  ttag: number;
  buffer: Buffer | null;
  received: number;
  digestError: boolean;
  executing: boolean;
  /** Pooled memory holding the host's data for this command (returned when the command is done). */
  pooledIn: Buffer | null;
  /** Closes the connection if the R2T's data does not all arrive in time. */
  r2tTimer?: NodeJS.Timeout;
}

export class TcpQueue implements QueueContext, ControllerQueue {
  readonly port: Port;
  readonly remoteAddress: string;
  private readonly socket: net.Socket;
  private readonly core: TargetCore;
  private readonly log: Logger;
  private readonly framer: PduFramer;
  private state: QueueState = 'await-ic';
  private wire: WireOptions = { hdgst: false, ddgst: false };
  qid = -1;
  sqsize = 0;
  controller: Controller | null = null;
  sqFlowDisabled = false;
  private sqhd = 0;
  private readonly slots = new Map<number, CommandSlot>();
  private readonly ttags = new Map<number, CommandSlot>();
  private nextTtag = 0;
  private out: Buffer[] = [];
  /** Pooled buffers in `out`, returned to the pool when the write that carries them completes. */
  private afterWrite: Buffer[] = [];
  private flushScheduled = false;
  private setupTimer: NodeJS.Timeout | null;
  private onClosed: ((q: TcpQueue) => void) | null;
  /** Running while a PDU is partly received; pdusSeen tells a new partial PDU from the same one. */
  private stallTimer: NodeJS.Timeout | null = null;
  private stallMark = -1;
  private pdusSeen = 0;
  /** Bytes of R2T buffers held, and the commands waiting for budget to get their R2T. */
  private r2tBytes = 0;
  private r2tWaiting: CommandSlot[] = [];
  /** Redirect-on-write for R2T data (see placeData); `NVMETS_STAGED_WRITES=0` turns it off, to compare. */
  private readonly stagingEnabled = process.env['NVMETS_STAGED_WRITES'] !== '0';
  /** Staged writes finished while a PDU was being placed into them (see finish). */
  private lateDiscards: StagedWrite[] = [];

  /** `accepted` comes paused (the listener's pauseOnConnect): reads start here. */
  constructor(accepted: net.Socket, port: Port, core: TargetCore, onClosed: (q: TcpQueue) => void) {
    this.port = port;
    this.core = core;
    this.onClosed = onClosed;
    this.framer = new PduFramer('target', {
      maxInCapsuleData: Math.max(ADMIN_INCAPSULE_SIZE, port.config.inlineDataSize),
      maxH2CData: port.config.maxh2cdata,
      maxC2HData: 0,
    });
    this.framer.placeData = (h) => this.placeData(h);
    const direct = directReadsEnabled()
      ? adoptWithDirectRead(
          accepted,
          directReadOption({
            directTarget: () => (this.state === 'closed' ? null : this.framer.directReadTarget(DIRECT_READ_MIN, DIRECT_READ_MAX)),
            directData: (n) => this.onDirectData(n),
            chunk: (c) => this.onData(c),
          }),
        )
      : null;
    const socket = direct ?? accepted;
    this.socket = socket;
    this.remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    this.log = core.log.child({ port: port.portid, peer: this.remoteAddress });
    socket.setNoDelay(true);
    if (!direct) {
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.resume();
    }
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'socket error'));
    socket.on('close', () => this.teardown('connection closed'));
    socket.on('drain', () => {
      if (!this.frozen) socket.resume();
    });
    if (port.faults.blackhole) this.freeze();
    this.setupTimer = setTimeout(() => this.setupTimeout(), core.limits.setupTimeoutMs ?? SETUP_TIMEOUT_MS);
    this.setupTimer.unref();
  }

  get outstanding(): number {
    return this.slots.size;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  // ---------------------------------------------------------------- receive

  private onData(chunk: Buffer): void {
    this.receive((deliver) => this.framer.push(chunk, deliver));
  }

  /** Bytes of a payload the socket read straight into its place. */
  private onDirectData(n: number): void {
    directReads.bytes += n;
    this.receive((deliver) => this.framer.pushDirect(n, deliver));
  }

  private readonly deliver = (pdu: Pdu): void => this.onPdu(pdu);

  private receive(push: (deliver: (pdu: Pdu) => void) => void): void {
    if (this.state === 'closed') return;
    try {
      push(this.deliver);
    } catch (err) {
      if (err instanceof ProtocolError) this.fatal(err);
      else {
        this.log.error({ err }, 'internal error handling a PDU');
        this.fatal(new ProtocolError(Fes.InvalidHeaderField, 0, `internal error: ${(err as Error).message}`));
      }
    }
    if (this.lateDiscards.length > 0) this.discardPlaced();
    this.watchPartialPdu();
  }

  /** Staged writes that ended while their data was being placed: discarded once that placement is over. */
  private discardPlaced(): void {
    this.lateDiscards = this.lateDiscards.filter((staged) => {
      if (this.framer.placingInto(staged.data)) return true;
      staged.discard();
      return false;
    });
  }

  /** A PDU begun and not finished must finish within the stall timeout: start (or keep) its timer. */
  private watchPartialPdu(): void {
    if (this.state === 'closed' || !this.framer.midPdu) {
      if (this.stallTimer) clearTimeout(this.stallTimer);
      this.stallTimer = null;
      return;
    }
    if (this.stallTimer && this.stallMark === this.pdusSeen) return; // the same PDU, still arriving
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallMark = this.pdusSeen;
    this.armPduStall();
  }

  private armPduStall(): void {
    this.stallTimer = setTimeout(() => this.stalled('a PDU begun was not completed', () => this.armPduStall()), this.stallTimeoutMs);
    this.stallTimer.unref();
  }

  private get stallTimeoutMs(): number {
    return this.core.limits.stallTimeoutMs ?? STALL_TIMEOUT_MS;
  }

  /** A stalled sender: close the connection and drop what it holds (buffers go with the queue). */
  private stalled(what: string, rearm: () => void): void {
    if (this.state === 'closed') return;
    if (this.frozen) {
      rearm(); // blackholed: it is the target that is not reading; look again later
      return;
    }
    this.log.warn({ qid: this.qid, cntlid: this.controller?.cntlid, timeoutMs: this.stallTimeoutMs, buffered: this.framer.bufferedBytes }, `stalled sender: ${what} within ${this.stallTimeoutMs} ms; closing the connection`);
    this.destroy('stall timeout');
  }

  private onPdu(pdu: Pdu): void {
    if (this.state === 'closed') return;
    this.pdusSeen += 1;
    switch (pdu.type) {
      case PduType.ICReq:
        return this.onIcReq(pdu);
      case PduType.CapsuleCmd:
        return this.onCapsule(pdu);
      case PduType.H2CData:
        return this.onH2CData(pdu);
      case PduType.H2CTermReq:
        this.log.warn({ fes: fesName(pdu.fes), fei: pdu.fei }, 'host terminated the connection (H2CTermReq)');
        return this.destroy('H2CTermReq from host');
      default:
        throw new ProtocolError(Fes.InvalidHeaderField, 0, `unexpected PDU type ${pdu.type}`);
    }
  }

  /**
   * Where a large data PDU's data goes as it arrives: H2CData into its
   * command's transfer buffer (pooled) at its offset, in-capsule data into a
   * pooled buffer. Anything that does not check out here (unknown tag, wrong
   * offset) is left to the framer and refused when the PDU is whole.
   */
  private placeData(h: DataPduHeader): Buffer | null {
    if (h.type === PduType.CapsuleCmd) return this.state === 'live' && this.qid > 0 && dataBuffers.serves(h.dataLength) ? dataBuffers.acquire(h.dataLength) : null;
    if (h.type !== PduType.H2CData) return null;
    const slot = this.ttags.get(h.header.readUInt16LE(10));
    const datao = h.header.readUInt32LE(12);
    if (!slot || slot.req.sqe.cid !== h.header.readUInt16LE(8) || datao !== slot.received || datao + h.dataLength > slot.req.transferLength) return null;
    if (slot.buffer === null) {
      // A write's data straight into the store's memory where it can (redirect-on-write), else into a pooled buffer.
      const staged = this.qid > 0 && this.stagingEnabled ? stageWriteData(slot.req, this.controller) : null;
      if (staged) {
        slot.req.staged = staged;
        slot.buffer = staged.data;
        stagedWrites.count += 1;
      } else {
        slot.buffer = dataBuffers.acquire(slot.req.transferLength);
        if (dataBuffers.owns(slot.buffer)) slot.pooledIn = slot.buffer;
      }
    }
    return slot.buffer.subarray(datao, datao + h.dataLength);
  }

  private onIcReq(pdu: IcReqPdu): void {
    if (this.state !== 'await-ic') throw new ProtocolError(Fes.PduSequenceError, 0, 'ICReq after the connection was initialized');
    if (pdu.pfv !== 0) throw new ProtocolError(Fes.UnsupportedParameter, 8, `PDU format version ${pdu.pfv} not supported`);
    if (pdu.hpda > 31) throw new ProtocolError(Fes.InvalidHeaderField, 10, `HPDA ${pdu.hpda} out of range 0..31`);
    const hdgst = pdu.hdgst;
    const ddgst = pdu.ddgst;
    this.sendNow([encodeIcResp({ pfv: 0, cpda: 0, hdgst, ddgst, maxh2cdata: this.port.config.maxh2cdata })]);
    this.framer.setDigests(hdgst, ddgst);
    this.wire = { hdgst, ddgst, dataAlignment: pdaToAlignment(pdu.hpda) };
    this.state = 'await-connect';
    this.log.debug({ hdgst, ddgst, hpda: pdu.hpda, maxr2t: pdu.maxr2t }, 'ICReq accepted');
  }

  private onCapsule(pdu: CapsuleCmdPdu): void {
    if (this.state === 'await-ic') throw new ProtocolError(Fes.PduSequenceError, 0, 'CapsuleCmd before ICReq');
    const sqe = decodeSqe(pdu.sqe);
    this.controller?.touch();
    if (this.slots.has(sqe.cid)) {
      // The host reused a command id still in flight: answer without tracking it.
      this.log.warn({ cid: sqe.cid }, 'command id already in flight');
      this.sendCompletion(sqe, { status: withDnr(Status.CommandIdConflict), errorLocation: SqeField.cid }, null);
      return;
    }
    const limit = this.state === 'live' ? 2 * (this.sqsize + 1) : 1;
    if (this.slots.size >= limit) {
      throw new ProtocolError(Fes.PduSequenceError, 0, `${this.slots.size} commands outstanding, queue size ${this.sqsize + 1}`);
    }
    const req = new Request(this, sqe);
    const slot: CommandSlot = { req, ttag: -1, buffer: null, received: 0, digestError: false, executing: false, pooledIn: dataBuffers.owns(pdu.data) ? pdu.data : null };
    this.slots.set(sqe.cid, slot);
    if (pdu.dataDigestError) {
      this.log.warn({ cid: sqe.cid }, 'data digest error in command capsule');
      return this.finish(slot, { status: Status.TransientTransportError });
    }
    const prepared = commandDirection(req, this.state === 'live', this.core.limits);
    if (typeof prepared === 'object') return this.finish(slot, prepared);
    if (prepared === 'to-controller' && req.transferLength > 0) {
      const placement = this.placeHostData(req, pdu.data);
      if (placement === 'r2t') return this.requestData(slot);
      if (placement !== 'ok') return this.finish(slot, placement);
    } else if (prepared === 'to-host' && req.transferLength > 0) {
      if (sqe.sgl.id !== SGL_TRANSPORT) {
        return this.finish(
          slot,
          sqe.sgl.id === SGL_INCAPSULE
            ? { status: withDnr(Status.InvalidField), errorLocation: SqeField.dptr }
            : { status: withDnr(Status.SglDescriptorTypeInvalid), errorLocation: SqeField.dptr },
        );
      }
      // A read's data goes from the store into pooled memory, out in C2HData, and back to the pool once written.
      if (sqe.opcode === IoOpcode.Read && this.qid > 0 && dataBuffers.serves(req.transferLength)) req.readInto = dataBuffers.acquire(req.transferLength);
    }
    this.execute(slot);
  }

  /** Where the host's data for a command is: in the capsule ('ok'), to be fetched ('r2t'), or an error. */
  private placeHostData(req: Request, capsuleData: Buffer): 'ok' | 'r2t' | Completion {
    const { sgl } = req.sqe;
    if (sgl.id === SGL_INCAPSULE) {
      const isFabrics = req.sqe.opcode === AdminOpcode.Fabrics;
      const limit = isFabrics || this.qid === 0 ? Math.max(ADMIN_INCAPSULE_SIZE, this.port.config.inlineDataSize) : this.port.config.inlineDataSize;
      if (sgl.address !== 0n || sgl.length > limit) {
        return { status: withDnr(Status.SglOffsetInvalid), errorLocation: SqeField.dptr };
      }
      if (capsuleData.length < sgl.length) {
        return { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr };
      }
      req.data = capsuleData.length === sgl.length ? capsuleData : capsuleData.subarray(0, sgl.length);
      return 'ok';
    }
    if (sgl.id === SGL_TRANSPORT) {
      if (capsuleData.length > 0) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.dptr };
      return 'r2t';
    }
    return { status: withDnr(Status.SglDescriptorTypeInvalid), errorLocation: SqeField.dptr };
  }

  /** Ask for the whole transfer with one R2T; the host answers in H2CData chunks. */
  private requestData(slot: CommandSlot): void {
    const length = slot.req.transferLength;
    if (this.r2tBytes > 0 && this.r2tBytes + length > R2T_BUFFER_BUDGET) {
      this.r2tWaiting.push(slot); // its R2T goes out when earlier transfers are done
      return;
    }
    this.r2tBytes += length;
    let ttag = this.nextTtag;
    while (this.ttags.has(ttag)) ttag = (ttag + 1) & 0xffff;
    this.nextTtag = (ttag + 1) & 0xffff;
    slot.ttag = ttag;
    // Allocated on the first H2CData, unless one PDU brings all the data (then it is used as is).
    slot.buffer = null;
    this.ttags.set(ttag, slot);
    // With the small output: once this callback's work is done, in one write with the
    // completions and other R2Ts it produced. A write syscall of its own per R2T cost
    // the target ~10 us per 128 KiB write (target CPU per write 42-65 us -> 37-43 us).
    this.send(encodeR2T({ cccid: slot.req.sqe.cid, ttag, r2to: 0, r2tl: length }, this.wire));
    this.armR2tStall(slot);
  }

  private armR2tStall(slot: CommandSlot): void {
    const what = `the data asked for by R2T ${slot.ttag} (cid ${slot.req.sqe.cid}, ${slot.req.transferLength} bytes) did not all arrive`;
    slot.r2tTimer = setTimeout(() => this.stalled(what, () => this.armR2tStall(slot)), this.stallTimeoutMs);
    slot.r2tTimer.unref();
  }

  /** A transfer is over (all data in, or its command gone): free its budget, send the R2Ts waiting for it. */
  private endTransfer(slot: CommandSlot): void {
    if (slot.r2tTimer) clearTimeout(slot.r2tTimer);
    slot.r2tTimer = undefined;
    this.r2tBytes -= slot.req.transferLength;
    while (this.r2tWaiting.length > 0 && this.state !== 'closed') {
      const next = this.r2tWaiting[0]!;
      if (this.r2tBytes > 0 && this.r2tBytes + next.req.transferLength > R2T_BUFFER_BUDGET) break;
      this.r2tWaiting.shift();
      this.requestData(next);
    }
  }

  private onH2CData(pdu: H2CDataPdu): void {
    // Before Connect completes the only data the target may have asked for is the Connect data (R2T for a transport SGL).
    if (this.state !== 'live' && this.ttags.size === 0) throw new ProtocolError(Fes.PduSequenceError, 0, 'H2CData before the queue is connected');
    const slot = this.ttags.get(pdu.ttag);
    if (!slot) throw new ProtocolError(Fes.InvalidHeaderField, 10, `H2CData for unknown transfer tag ${pdu.ttag}`);
    if (slot.req.sqe.cid !== pdu.cccid) {
      throw new ProtocolError(Fes.InvalidHeaderField, 8, `H2CData cccid ${pdu.cccid} does not match ttag ${pdu.ttag} (cid ${slot.req.sqe.cid})`);
    }
    const total = slot.req.transferLength;
    if (pdu.datal === 0) throw new ProtocolError(Fes.InvalidHeaderField, 16, 'H2CData with no data');
    if (pdu.datao !== slot.received) {
      throw new ProtocolError(Fes.DataTransferOutOfRange, 12, `H2CData offset ${pdu.datao}, expected ${slot.received}`);
    }
    if (pdu.datao + pdu.datal > total) {
      throw new ProtocolError(Fes.DataTransferOutOfRange, 16, `H2CData ends at ${pdu.datao + pdu.datal}, R2T asked for ${total}`);
    }
    if (slot.buffer === null && pdu.datao === 0 && pdu.datal === total) {
      // The whole transfer in one PDU that came in one socket chunk: use it in place.
      slot.buffer = pdu.data;
    } else if (slot.buffer === null || !isPlacedAt(pdu.data, slot.buffer, pdu.datao)) {
      // Not placed by placeData (which put the data where it belongs already): copy it there.
      slot.buffer ??= Buffer.allocUnsafe(total);
      pdu.data.copy(slot.buffer, pdu.datao);
    }
    slot.received += pdu.datal;
    if (pdu.dataDigestError) slot.digestError = true;
    const done = slot.received === total;
    if (done !== pdu.last) {
      throw new ProtocolError(Fes.InvalidHeaderField, 1, done ? 'last H2CData PDU without LAST_PDU' : 'LAST_PDU before all data was sent');
    }
    if (!done) return;
    this.ttags.delete(slot.ttag);
    slot.ttag = -1;
    slot.req.data = slot.buffer;
    slot.buffer = null;
    this.endTransfer(slot);
    if (slot.digestError) {
      this.log.warn({ cid: slot.req.sqe.cid }, 'data digest error in H2CData');
      return this.finish(slot, { status: Status.TransientTransportError });
    }
    this.execute(slot);
  }

  // ---------------------------------------------------------------- execute

  private execute(slot: CommandSlot): void {
    slot.executing = true;
    const faults = this.port.faults;
    if (faults.failRules.length > 0) {
      const { opcode, nsid } = slot.req.sqe;
      const injected = opcode === AdminOpcode.Fabrics ? null : faults.takeFailure(opcode, nsid, this.qid);
      if (injected !== null) {
        this.log.info({ opcode, nsid, qid: this.qid, status: describeStatus(injected) }, 'fault: command failed by injection');
        return this.finish(slot, { status: injected });
      }
    }
    let result: Completion | Promise<Completion>;
    try {
      result = executeRequest(slot.req, this.core, this);
    } catch (err) {
      this.log.error({ err, opcode: slot.req.sqe.opcode }, 'command handler threw');
      result = { status: Status.InternalError };
    }
    if (result instanceof Promise) {
      result.then(
        (c) => this.finish(slot, c),
        (err: unknown) => {
          this.log.error({ err, opcode: slot.req.sqe.opcode }, 'command handler failed');
          this.finish(slot, { status: Status.InternalError });
        },
      );
    } else this.finish(slot, result);
  }

  private finish(slot: CommandSlot, c: Completion): void {
    // Aborted or queue gone: pooled buffers stay with the command (the collector takes them), as it may still be executing.
    if (this.slots.get(slot.req.sqe.cid) !== slot) return;
    this.slots.delete(slot.req.sqe.cid);
    // The command is done with its data (executed, or never will be). A transfer still
    // open could have its data being placed into the buffer: that one is left to the collector.
    if (slot.pooledIn && slot.ttag < 0) dataBuffers.release(slot.pooledIn);
    slot.pooledIn = null;
    const staged = slot.req.staged;
    if (staged) {
      // Committed by now if the write executed; otherwise its memory goes back to the store, once no PDU is being placed into it.
      slot.req.staged = null;
      if (slot.ttag >= 0 && this.framer.placingInto(staged.data)) this.lateDiscards.push(staged);
      else staged.discard();
    }
    if (slot.ttag >= 0) {
      this.ttags.delete(slot.ttag);
      slot.ttag = -1;
      slot.buffer = null;
      this.endTransfer(slot);
    } else if (this.r2tWaiting.includes(slot)) this.r2tWaiting = this.r2tWaiting.filter((s) => s !== slot);
    const { sqe } = slot.req;
    if (c.status !== 0 && this.controller && !this.controller.isGone) {
      this.controller.recordError({
        sqid: Math.max(this.qid, 0),
        cid: sqe.cid,
        status: c.status,
        errorLocation: c.errorLocation,
        lba: c.lba,
        nsid: sqe.opcode === AdminOpcode.Fabrics ? 0 : sqe.nsid,
        opcode: sqe.opcode,
      });
      this.log.debug({ cid: sqe.cid, opcode: sqe.opcode, status: describeStatus(c.status) }, 'command failed');
    }
    if (this.state === 'closed') return;
    const delay = this.port.faults.latencyMs;
    if (delay > 0) {
      setTimeout(() => {
        if (this.state !== 'closed') this.sendCompletion(sqe, c, slot.req);
      }, delay);
      return;
    }
    this.sendCompletion(sqe, c, slot.req);
  }

  private sendCompletion(sqe: Sqe, c: Completion, req: Request | null): void {
    if (this.state !== 'live' || this.sqsize === 0) this.sqhd = 0;
    else if (!this.sqFlowDisabled) this.sqhd = (this.sqhd + 1) % (this.sqsize + 1);
    const data = c.status === 0 && req ? c.data : undefined;
    const lent = req?.readInto ?? null;
    if (lent) {
      req!.readInto = null;
      // Sent below: back to the pool once the socket has written it; not sent: back now.
      if (data && data.buffer === lent.buffer) this.afterWrite.push(lent);
      else dataBuffers.release(lent);
    }
    let successInData = false;
    if (data && req && req.transferLength > 0) {
      const length = req.transferLength;
      const payload = data.length >= length ? data.subarray(0, length) : Buffer.concat([data, Buffer.alloc(length - data.length)]);
      const useSuccess = this.sqFlowDisabled && !c.result && !c.dw1;
      for (let off = 0; off < length; off += MAX_C2H_DATA) {
        const end = Math.min(length, off + MAX_C2H_DATA);
        const last = end === length;
        this.send(encodeC2HData({ cccid: sqe.cid, datao: off, last, success: last && useSuccess }, payload.subarray(off, end), this.wire));
      }
      successInData = useSuccess;
    }
    if (successInData) return;
    const cqe = encodeCqe({
      result: c.result ?? 0,
      dw1: c.dw1 ?? 0,
      sqhd: this.sqFlowDisabled ? 0 : this.sqhd,
      sqid: Math.max(this.qid, 0),
      cid: sqe.cid,
      status: c.status,
    });
    this.send(encodeCapsuleResp(cqe, this.wire));
  }

  // ---------------------------------------------------------------- connect (called by fabrics-cmd)

  /** Bind this connection to a controller as queue qid. */
  bind(controller: Controller, qid: number, sqsize: number, sqFlowDisabled: boolean): void {
    this.controller = controller;
    this.qid = qid;
    this.sqsize = sqsize;
    this.sqFlowDisabled = sqFlowDisabled;
    this.state = 'live';
    controller.queues.set(qid, this);
    if (this.setupTimer) clearTimeout(this.setupTimer);
    this.setupTimer = null;
  }

  /** True while this connection still waits for its Connect. */
  get awaitingConnect(): boolean {
    return this.state === 'await-connect';
  }

  abortPending(cid: number): boolean {
    const slot = this.slots.get(cid);
    if (!slot || slot.executing) return false;
    this.finish(slot, { status: Status.AbortRequested });
    return true;
  }

  // ---------------------------------------------------------------- send

  private send(buffers: Buffer[]): void {
    if (this.state === 'closed') return;
    let bytes = 0;
    for (const b of buffers) {
      this.out.push(b);
      bytes += b.length;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Small PDUs (completions, R2T) go out once the current callback and the
      // promise work it started are done: the completions of every command that
      // arrived in one socket read together, without waiting for the rest of the
      // event-loop turn (4 KiB random writes QD32: 0.74-0.78 of raw when every
      // flush waited for the turn's end, 1.11-1.22 now). Bulk read data waits
      // for the end of the turn and goes out with the turn's other data in one
      // writev (128 KiB transfers measured alike either way, within noise).
      if (bytes >= BULK_FLUSH_BYTES) setImmediate(this.flushTask);
      else process.nextTick(this.flushTask);
    }
  }

  private readonly flushTask = (): void => this.flush();

  private sendNow(buffers: Buffer[]): void {
    for (const b of buffers) this.out.push(b);
    this.flush();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.frozen) return; // blackholed: output waits, as if the network held it
    if (this.out.length === 0 || this.socket.destroyed) {
      this.out = [];
      this.afterWrite = [];
      return;
    }
    const out = this.out;
    this.out = [];
    const lent = this.afterWrite;
    this.socket.cork();
    if (lent.length === 0) for (const b of out) this.socket.write(b);
    else {
      this.afterWrite = [];
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

  private frozen = false;

  /** Blackhole: stop reading and writing; the connection stays open. */
  freeze(): void {
    this.frozen = true;
    this.socket.pause();
  }

  /** The blackhole ends: what the host sent meanwhile is read, held output goes out. */
  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    this.socket.resume();
    this.flush();
  }

  // ---------------------------------------------------------------- teardown

  /** A protocol violation: C2HTermReq with the FES, then close. */
  fatal(err: ProtocolError): void {
    if (this.state === 'closed') return;
    this.log.warn({ fes: fesName(err.fes), fei: err.fei, qid: this.qid, cntlid: this.controller?.cntlid }, `protocol error: ${err.message}; sending C2HTermReq and closing`);
    this.flush();
    this.socket.end(encodeTermReq(PduType.C2HTermReq, err.fes, err.fei, err.errorHeader));
    const socket = this.socket;
    setTimeout(() => socket.destroy(), 1000).unref();
    this.teardown(`protocol error: ${fesName(err.fes)}`);
  }

  private setupTimeout(): void {
    if (this.state !== 'await-ic' && this.state !== 'await-connect') return;
    this.log.warn({ state: this.state }, 'connection did not complete ICReq/Connect in time: closing');
    this.destroy('setup timeout');
  }

  /** Close the connection (controller teardown, port down, shutdown). */
  destroy(reason: string): void {
    if (this.state === 'closed') return;
    this.flush();
    this.socket.destroy();
    this.teardown(reason);
  }

  private teardown(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.setupTimer) clearTimeout(this.setupTimer);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    for (const slot of this.slots.values()) {
      if (slot.r2tTimer) clearTimeout(slot.r2tTimer);
      // Nothing is placed once the queue is closed: staged memory of writes that will not execute goes back to the store.
      if (slot.req.staged && !slot.executing) slot.req.staged.discard();
    }
    for (const staged of this.lateDiscards) staged.discard();
    this.lateDiscards = [];
    this.r2tWaiting = [];
    this.slots.clear();
    this.ttags.clear();
    this.out = [];
    this.afterWrite = [];
    const ctrl = this.controller;
    if (ctrl && !ctrl.isGone) {
      if (this.qid === 0) ctrl.destroy(`admin queue: ${reason}`);
      else if (ctrl.queues.get(this.qid) === this) {
        ctrl.queues.delete(this.qid);
        ctrl.log.info({ qid: this.qid, reason }, 'I/O queue gone');
      }
    }
    const cb = this.onClosed;
    this.onClosed = null;
    cb?.(this);
  }
}

/** The listener of one port and the connections it accepted. */
export class PortListener {
  readonly port: Port;
  private server: net.Server | null = null;
  private readonly core: TargetCore;
  readonly connections = new Set<TcpQueue>();

  constructor(port: Port, core: TargetCore) {
    this.port = port;
    this.core = core;
  }

  get listening(): boolean {
    return this.server !== null;
  }

  /** Resolves with the bound TCP port (useful when the config says 0). */
  async start(): Promise<number> {
    if (this.server) return (this.server.address() as net.AddressInfo).port;
    const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => {
      const q = new TcpQueue(socket, this.port, this.core, (closed) => this.connections.delete(closed));
      this.connections.add(q);
    });
    server.maxConnections = this.core.maxConnectionsPerPort;
    server.on('drop', (d) => {
      this.core.log.warn(
        { port: this.port.portid, peer: d ? `${d.remoteAddress}:${d.remotePort}` : undefined, limit: this.core.maxConnectionsPerPort },
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
    server.on('error', (err) => this.core.log.error({ err, port: this.port.portid }, 'listener error'));
    this.server = server;
    return (server.address() as net.AddressInfo).port;
  }

  /** Close the listener and reset every connection on it. */
  async stop(reason: string): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const q of [...this.connections]) q.destroy(reason);
    this.connections.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

