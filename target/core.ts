/**
 * The request lifecycle's core: decide which way a command's data flows (so
 * the transport knows whether to fetch it), then route the command by queue
 * state, as nvmet_req_init does: no controller yet, only Connect; the admin
 * queue, Fabrics, admin or discovery commands; an I/O queue, NVM commands.
 */
import { AdminOpcode, FabricsType } from '../shared/opcodes.ts';
import { FUSE_MASK, PSDT_MASK, PSDT_SGL, fabricsType } from '../shared/sqe.ts';
import { Status, withDnr } from '../shared/status.ts';
import { executeAdmin } from './admin-cmd.ts';
import { authPending } from './auth.ts';
import type { HostAuthConfig } from './config/index.ts';
import type { Controller, ControllerOptions } from './controller.ts';
import { executeDiscoveryAdmin, type DiscoveryService } from './discovery.ts';
import { executeFabrics } from './fabrics-cmd.ts';
import { executeIo } from './io-cmd.ts';
import type { Logger } from './logger.ts';
import { SqeField, type Completion, type Request } from './request.ts';
import type { Subsystem } from './subsystem.ts';
import type { TcpQueue } from './tcp.ts';

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
  /** A queue that must authenticate (DH-HMAC-CHAP) and has not after this long is closed (default AUTH_TIMEOUT_MS in auth.ts, 30 s). */
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
export function commandDirection(req: Request, connected: boolean, limits: TargetLimits): DataDirection | Completion {
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

export function executeRequest(req: Request, core: TargetCore, queue: TcpQueue): Completion | Promise<Completion> {
  const { sqe } = req;
  if (sqe.opcode === AdminOpcode.Fabrics) return executeFabrics(req, core, queue);
  const ctrl = queue.controller;
  if (!ctrl || ctrl.isGone) return { status: withDnr(Status.CommandSequenceError), errorLocation: SqeField.opcode };
  // DH-HMAC-CHAP first, as nvmet_parse_admin_cmd / nvmet_parse_io_cmd: only Fabrics commands until it succeeds.
  if (authPending(queue)) return { status: withDnr(Status.AuthenticationRequired), errorLocation: SqeField.opcode };
  if (!ctrl.ready) return { status: withDnr(Status.CommandSequenceError), errorLocation: SqeField.opcode };
  ctrl.counters.commands += 1n;
  if (queue.qid === 0) {
    return ctrl.kind === 'discovery' ? executeDiscoveryAdmin(req, ctrl, core) : executeAdmin(req, ctrl, core);
  }
  return executeIo(req, ctrl);
}
