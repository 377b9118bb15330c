/**
 * A command on its way through the target: the decoded SQE, the data the host
 * sent with it, the submission queue it arrived on and where it is in its life
 * (req-state.ts). Handlers turn a Request into exactly one Completion; the
 * core (core.ts, completeRequest) hands it to the transport.
 *
 * A transport allocates its requests (TcpCommand extends this with its
 * transfer fields), as nvmet's transports embed nvmet_req in their command.
 */
import type { Sqe } from '../shared/sqe.ts';
import type { Controller } from './controller.ts';
import { ReqState } from './req-state.ts';
import type { SubmissionQueue } from './sq.ts';
import type { StagedWrite } from './store/index.ts';

export interface Completion {
  readonly status: number;
  /** CQE DW0. */
  readonly result?: number;
  /** CQE DW1. */
  readonly dw1?: number;
  /** Data for the host (controller-to-host commands): exactly the transfer length, or less (zero-filled). */
  readonly data?: Buffer;
  /** For the error log: SQE byte offset (bits 7:0) and bit (10:8) of the field in error. */
  readonly errorLocation?: number;
  /** For the error log: the LBA in error. */
  readonly lba?: number;
}

export class Request {
  readonly sqe: Sqe;
  readonly sq: SubmissionQueue;
  /** Where the command is in its life; changed only through moveTo (req-state.ts). */
  state: ReqState = ReqState.New;
  /** Host-to-controller data (in-capsule or collected from H2CData), or null. */
  data: Buffer | null = null;
  /**
   * Where a read's data should be placed (exactly the transfer length), when the
   * transport lends a buffer; handlers that produce data otherwise ignore it.
   */
  readInto: Buffer | null = null;
  /**
   * A Write whose data the transport received into memory the store set
   * aside (redirect-on-write, BlockStore.stageWrite): `data` is its memory.
   * The write handler commits it; whoever finishes the command discards it
   * (a no-op once committed).
   */
  staged: StagedWrite | null = null;

  constructor(sq: SubmissionQueue, sqe: Sqe) {
    this.sq = sq;
    this.sqe = sqe;
  }

  /** Data length described by the command's SGL. */
  get transferLength(): number {
    return this.sqe.sgl.length;
  }

  get controller(): Controller | null {
    return this.sq.controller;
  }
}

export function ok(result = 0, data?: Buffer): Completion {
  return data ? { status: 0, result, data } : { status: 0, result };
}

export function fail(status: number, errorLocation?: number): Completion {
  return errorLocation === undefined ? { status } : { status, errorLocation };
}

/** SQE byte offsets used as error locations. */
export const SqeField = {
  opcode: 0,
  flags: 1,
  cid: 2,
  nsid: 4,
  dptr: 24,
  cdw10: 40,
  cdw11: 44,
  cdw12: 48,
  cdw13: 52,
  cdw14: 56,
  cdw15: 60,
} as const;
