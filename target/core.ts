/**
 * The request lifecycle, as nvmet's core.c: every command's life begins and
 * ends here, whatever transport carried it.
 *
 *   admitRequest   a decoded SQE arrives: keep-alive traffic, command id conflict
 *   initRequest    route by queue state, check flags/SGL/length, place in-capsule
 *                  data; say what the transport must do next: fetch host data
 *                  (FetchData), or nothing (Execute), or it was refused (Done)
 *   dataReceived   the transport fetched the host data (R2T/H2CData, a copy)
 *   executeRequest the handler (fabrics, admin, discovery, I/O) by queue state
 *   completeRequest the one completion: the transport's resources released,
 *                  the error log, SQHD, then QueueOps.queueResponse
 *
 * Fault injection (fault-injection.ts) sits at the two edges: before execute
 * and before the response. A transport (tcp.ts, loop.ts) only moves data and
 * PDUs and asks the core the rest.
 */
import type { Clock } from '../shared/clock.ts';
import type { FeatureSwitches } from '../shared/feature-switches.ts';
import { AdminOpcode, FabricsType, IoOpcode } from '../shared/opcodes.ts';
import { SGL_INCAPSULE, SGL_TRANSPORT } from '../shared/sgl.ts';
import { FUSE_MASK, PSDT_MASK, PSDT_SGL, fabricsType } from '../shared/sqe.ts';
import { Status, describeStatus, withDnr } from '../shared/status.ts';
import { executeAdmin } from './admin-cmd.ts';
import { authPending } from './auth.ts';
import type { HostAuthConfig } from './config/index.ts';
import type { Controller, ControllerOptions } from './controller.ts';
import { executeDiscoveryAdmin, type DiscoveryService } from './discovery.ts';
import { executeFabrics } from './fabrics-cmd.ts';
import { delayResponse, injectedFailure } from './fault-injection.ts';
import { executeIo, stageWriteData } from './io-cmd.ts';
import type { Logger } from './logger.ts';
import { ReqState, moveTo } from './req-state.ts';
import { SqeField, type Completion, type Request } from './request.ts';
import type { Subsystem } from './subsystem.ts';

/** Fabrics commands and the admin queue always accept this much in-capsule data. */
export const ADMIN_INCAPSULE_SIZE = 8192;

export interface TargetLimits {
  /** MDTS as reported (power of two of 4 KiB pages); 0 = no limit. */
  readonly mdts: number;
  /** Maximum queue entries, 0's based (CAP.MQES). */
  readonly mqes: number;
  readonly maxConnectionsPerPort: number;
  /** Default and maximum number of I/O queues per controller. */
  readonly maxIoQueues: number;
  /** Time a new connection has for ICReq, then Connect (default SETUP_TIMEOUT_MS in tcp.ts; tests shorten it). */
  readonly setupTimeoutMs?: number;
  /**
   * A PDU begun but not complete, or an R2T whose data has not all arrived,
   * after this long closes the connection (default STALL_TIMEOUT_MS in tcp.ts, 30 s).
   */
  readonly stallTimeoutMs?: number;
  /** A queue that must authenticate (DH-HMAC-CHAP) and has not after this long is closed (default AUTH_TIMEOUT_MS in auth.ts, 120 s). */
  readonly authTimeoutMs?: number;
}

/** What the core needs of the target around it. */
export interface TargetCore {
  readonly log: Logger;
  readonly limits: TargetLimits;
  readonly maxConnectionsPerPort: number;
  readonly discovery: DiscoveryService;
  findSubsystem(nqn: string): Subsystem | undefined;
  /** Create and register a controller (cntlid allocated by the caller). */
  createController(opts: Omit<ControllerOptions, 'log' | 'onGone' | 'maxIoQueues' | 'mqes'>): Controller;
  /** Vendor 0xFE: make this controller's path active for nsid, fencing the old one. */
  setNamespaceActive(ctrl: Controller, nsid: number): Promise<Completion>;
  /** The host's DH-HMAC-CHAP settings, when the config gives it a key. */
  hostDhchap?(hostnqn: string): HostAuthConfig | undefined;
  /** Every timer and time read of the target's queues and controllers. */
  readonly clock: Clock;
  /** clock.now() when the target was created (SMART power-on hours). */
  readonly startedAt: number;
  /** Data-path switches, read once at the edge (target/cli.ts). */
  readonly switches: FeatureSwitches;
  /** Data-path counters of this target (tests, diagnostics). */
  readonly counters: DataPathCounters;
}

export interface DataPathCounters {
  /** Payload bytes a socket read straight into their place. */
  directReadBytes: number;
  /** Writes whose data was received straight into store memory (redirect-on-write). */
  stagedWrites: number;
}

export function mdtsBytes(limits: TargetLimits): number {
  return limits.mdts === 0 ? Number.MAX_SAFE_INTEGER : 4096 * 2 ** limits.mdts;
}

export type DataDirection = 'none' | 'to-controller' | 'to-host';

/** Data direction by opcode. Bits 1:0 say it, except for Fabrics and our vendor opcodes. */
function directionOf(opcode: number, fctype: number): DataDirection | 'bidirectional' {
  if (opcode === AdminOpcode.Fabrics) opcode = fctype;
  else if (opcode === AdminOpcode.SetNamespaceActive) return 'none';
  else if (opcode === AdminOpcode.GetPersistentNsId) return 'to-host';
  switch (opcode & 0x3) {
    case 0x1:
      return 'to-controller';
    case 0x2:
      return 'to-host';
    case 0x3:
      return 'bidirectional';
    default:
      return 'none';
  }
}

/**
 * First look at a command: its data direction, or the completion that refuses
 * it before any data is moved.
 */
function commandDirection(req: Request, connected: boolean, limits: TargetLimits): DataDirection | Completion {
  const { sqe } = req;
  const isFabrics = sqe.opcode === AdminOpcode.Fabrics;
  if (!connected && !(isFabrics && fabricsType(sqe) === FabricsType.Connect)) {
    return { status: withDnr(Status.CommandSequenceError), errorLocation: SqeField.opcode };
  }
  if ((sqe.flags & PSDT_MASK) !== PSDT_SGL) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.flags };
  if ((sqe.flags & FUSE_MASK) !== 0) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.flags };
  const dir = directionOf(sqe.opcode, fabricsType(sqe));
  if (dir === 'bidirectional') return { status: withDnr(Status.InvalidField), errorLocation: SqeField.opcode };
  // Fabrics commands too: their data is small (Connect 1 KiB), and an R2T buffer is sized by this length.
  if (req.transferLength > mdtsBytes(limits)) {
    return { status: withDnr(Status.InvalidField), errorLocation: SqeField.dptr };
  }
  return dir;
}

/** What initRequest tells the transport to do next. */
export const Init = {
  /** The command's data, if any, is in place: call executeRequest. */
  Execute: 0,
  /** The host's data must be fetched (R2T): call dataReceived once it is in. */
  FetchData: 1,
  /** The command was refused and its completion is already on its way. */
  Done: 2,
} as const;
export type Init = (typeof Init)[keyof typeof Init];

/**
 * A new command on its queue: it counts as keep-alive traffic, and a command id
 * still in flight is answered (Command ID Conflict) without being tracked,
 * unless a parked AER holds it (abandonedAer). False when the command is finished with.
 *
 * Neither nvmet nor SPDK's target tracks command ids; we keep the conflict
 * for any other command because the first one may still move data (an R2T
 * names its command by cid) and complete under that id: two completions
 * for one id would be matched to the wrong command by the host.
 */
export function admitRequest(req: Request): boolean {
  const { sq, sqe } = req;
  sq.controller?.touch();
  const held = sq.requests.get(sqe.cid);
  if (held === undefined || abandonedAer(held)) return true;
  sq.log.warn({ cid: sqe.cid }, 'command id already in flight');
  moveTo(req, ReqState.Completing);
  respond(req, { status: withDnr(Status.CommandIdConflict), errorLocation: SqeField.cid });
  return false;
}

/**
 * A parked AER whose command id the host reuses was abandoned by the host:
 * SPDK's initiator drops its AERs locally at shutdown, then sends Property
 * Get CC with one of their ids, and nvmet (which keeps no ids) completes it.
 * The AER leaves the queue and the controller's list and ends with nothing
 * sent: it moves no data, and were it to complete later its completion would
 * carry an id that now names the new command. True when `held` was such an AER.
 */
function abandonedAer(held: Request): boolean {
  const { sq, sqe } = held;
  if (sq.qid !== 0 || sqe.opcode !== AdminOpcode.AsyncEventRequest || held.state !== ReqState.Executing) return false;
  sq.requests.delete(sqe.cid);
  if (!sq.controller?.abandonAer(sqe.cid)) {
    // An event already taken by it is on its way under that id: a conflict, rather than lose the event.
    sq.requests.set(sqe.cid, held);
    return false;
  }
  sq.log.info({ cid: sqe.cid }, 'a new command reuses the command id of a parked AER: the host abandoned that AER, it is dropped without a completion');
  return true;
}

/**
 * Track the command and decide what it needs before it can execute, as
 * nvmet_req_init: refusals (no Connect yet, flags, SGL, length) complete it here.
 * `capsuleData` is the data that came with the SQE (in-capsule); a data digest
 * error on it fails the command with a transient transport error.
 */
export function initRequest(req: Request, capsuleData: Buffer, digestError: boolean): Init {
  const { sq, sqe } = req;
  sq.requests.set(sqe.cid, req);
  if (digestError) {
    sq.log.warn({ cid: sqe.cid }, 'data digest error in command capsule');
    completeRequest(req, { status: Status.TransientTransportError });
    return Init.Done;
  }
  const direction = commandDirection(req, sq.live, sq.core.limits);
  if (typeof direction === 'object') return refuse(req, direction);
  const length = req.transferLength;
  if (direction === 'to-controller' && length > 0) {
    const { sgl } = sqe;
    if (sgl.id === SGL_TRANSPORT) {
      if (capsuleData.length > 0) return refuse(req, { status: withDnr(Status.InvalidField), errorLocation: SqeField.dptr });
      return Init.FetchData;
    }
    if (sgl.id !== SGL_INCAPSULE) return refuse(req, { status: withDnr(Status.SglDescriptorTypeInvalid), errorLocation: SqeField.dptr });
    const inline = sq.port.config.inlineDataSize;
    const limit = sqe.opcode === AdminOpcode.Fabrics || sq.qid === 0 ? Math.max(ADMIN_INCAPSULE_SIZE, inline) : inline;
    if (sgl.address !== 0n || sgl.length > limit) return refuse(req, { status: withDnr(Status.SglOffsetInvalid), errorLocation: SqeField.dptr });
    if (capsuleData.length < sgl.length) return refuse(req, { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr });
    req.data = capsuleData.length === sgl.length ? capsuleData : capsuleData.subarray(0, sgl.length);
  } else if (direction === 'to-host' && length > 0) {
    if (sqe.sgl.id !== SGL_TRANSPORT) {
      return refuse(
        req,
        sqe.sgl.id === SGL_INCAPSULE
          ? { status: withDnr(Status.InvalidField), errorLocation: SqeField.dptr }
          : { status: withDnr(Status.SglDescriptorTypeInvalid), errorLocation: SqeField.dptr },
      );
    }
    // A read's data is produced straight into memory the transport lends (and takes back once sent).
    if (sqe.opcode === IoOpcode.Read && sq.qid > 0) req.readInto = sq.ops.lendReadBuffer(length);
  }
  moveTo(req, ReqState.ReadyToExecute);
  return Init.Execute;
}

function refuse(req: Request, c: Completion): Init {
  completeRequest(req, c);
  return Init.Done;
}

/**
 * Memory to receive a Write's host data into, when the store offers it
 * (redirect-on-write, counted in DataPathCounters.stagedWrites); null: the
 * transport uses a buffer of its own. Asked once the data's first PDU header is in.
 */
export function stageHostData(req: Request): Buffer | null {
  const { sq } = req;
  if (sq.qid <= 0 || !sq.core.switches.stagedWrites) return null;
  const staged = stageWriteData(req, sq.controller);
  if (!staged) return null;
  req.staged = staged;
  sq.core.counters.stagedWrites += 1;
  return staged.data;
}

/** The transport has all the host data of a FetchData command in req.data. */
export function dataReceived(req: Request, digestError: boolean): void {
  if (digestError) {
    req.sq.log.warn({ cid: req.sqe.cid }, 'data digest error in H2CData');
    completeRequest(req, { status: Status.TransientTransportError });
    return;
  }
  moveTo(req, ReqState.ReadyToExecute);
  executeRequest(req);
}

/** Run the command's handler; its completion, now or later, goes to completeRequest. */
export function executeRequest(req: Request): void {
  moveTo(req, ReqState.Executing);
  const injected = injectedFailure(req);
  if (injected !== null) return completeRequest(req, { status: injected });
  let result: Completion | Promise<Completion>;
  try {
    result = dispatch(req);
  } catch (err) {
    req.sq.log.error({ err, opcode: req.sqe.opcode }, 'command handler threw');
    result = { status: Status.InternalError };
  }
  if (result instanceof Promise) {
    result.then(
      (c) => completeRequest(req, c),
      (err: unknown) => {
        req.sq.log.error({ err, opcode: req.sqe.opcode }, 'command handler failed');
        completeRequest(req, { status: Status.InternalError });
      },
    );
  } else completeRequest(req, result);
}

/** Route by queue state, as nvmet_req_init's parse step. */
function dispatch(req: Request): Completion | Promise<Completion> {
  const { sqe, sq } = req;
  const core = sq.core;
  if (sqe.opcode === AdminOpcode.Fabrics) return executeFabrics(req, core, sq);
  const ctrl = sq.controller;
  if (!ctrl || ctrl.isGone) return { status: withDnr(Status.CommandSequenceError), errorLocation: SqeField.opcode };
  // DH-HMAC-CHAP first, as nvmet_parse_admin_cmd / nvmet_parse_io_cmd: only Fabrics commands until it succeeds.
  if (authPending(sq)) return { status: withDnr(Status.AuthenticationRequired), errorLocation: SqeField.opcode };
  if (!ctrl.ready) return { status: withDnr(Status.CommandSequenceError), errorLocation: SqeField.opcode };
  ctrl.counters.commands += 1n;
  if (sq.qid === 0) {
    return ctrl.kind === 'discovery' ? executeDiscoveryAdmin(req, ctrl, core) : executeAdmin(req, ctrl, core);
  }
  return executeIo(req, ctrl);
}

/**
 * The one completion of a command (__nvmet_req_complete): the command leaves
 * its queue, the transport takes back what it lent, a failure goes into the
 * controller's error log, and the response goes out, after the port's
 * injected latency if any. A command aborted before, or whose queue is gone,
 * ends here with nothing sent (its pooled buffers are left to the collector,
 * as its handler may still hold them).
 */
export function completeRequest(req: Request, c: Completion): void {
  const { sq, sqe } = req;
  if (sq.requests.get(sqe.cid) !== req) {
    if (req.state === ReqState.Executing) moveTo(req, ReqState.Completed);
    return;
  }
  sq.requests.delete(sqe.cid);
  sq.ops.release(req); // sees the state the command was in (an open transfer, a wait for R2T budget)
  moveTo(req, ReqState.Completing);
  const ctrl = sq.controller;
  if (c.status !== 0 && ctrl && !ctrl.isGone) {
    ctrl.recordError({
      sqid: Math.max(sq.qid, 0),
      cid: sqe.cid,
      status: c.status,
      errorLocation: c.errorLocation,
      lba: c.lba,
      nsid: sqe.opcode === AdminOpcode.Fabrics ? 0 : sqe.nsid,
      opcode: sqe.opcode,
    });
    sq.log.debug({ cid: sqe.cid, opcode: sqe.opcode, status: describeStatus(c.status) }, 'command failed');
  }
  if (sq.isClosed) return settled(req);
  if (sq.port.faults.latencyMs > 0) return delayResponse(req, c, respond, settled);
  respond(req, c);
}

/** SQHD moves on (unless SQ flow control is off), and the transport sends the response. */
function respond(req: Request, c: Completion): void {
  const { sq } = req;
  if (!sq.live || sq.sqsize === 0) sq.sqhd = 0;
  else if (!sq.sqFlowDisabled) sq.sqhd = (sq.sqhd + 1) % (sq.sqsize + 1);
  sq.ops.queueResponse(req, c);
  settled(req);
}

/** Staged memory a data PDU is still being placed into keeps the request Draining until the transport discards it. */
function settled(req: Request): void {
  moveTo(req, req.staged ? ReqState.Draining : ReqState.Completed);
}
