/**
 * A submission queue as the core sees it, whatever carries it (TCP connection,
 * in-process loopback): its identity once Connect binds it (qid, sqsize,
 * cntlid through its controller), the SQ head it reports, its authentication
 * state, and the commands in flight on it. Command handlers, Connect and
 * DH-HMAC-CHAP take this, never a transport's queue.
 *
 * The transport plugs in through QueueOps, as an nvmet transport through
 * nvmet_fabrics_ops: queueResponse is the core's only way out.
 */
import type { Clock } from '../shared/clock.ts';
import { Status } from '../shared/status.ts';
import type { QueueAuth } from './auth.ts';
import { completeRequest, type TargetCore } from './core.ts';
import type { Controller, ControllerQueue } from './controller.ts';
import type { Logger } from './logger.ts';
import type { Port } from './port.ts';
import { ReqState, beforeExecution, isAbortable, moveTo } from './req-state.ts';
import type { Completion, Request } from './request.ts';

/** What the core needs of a transport queue. */
export interface QueueOps {
  /** Send a command's completion (and, for a successful read, its data). SQHD is already advanced. */
  queueResponse(req: Request, c: Completion): void;
  /**
   * The command is done with the transport's resources (pooled buffers, an
   * open transfer, staged memory): release them. Staged memory still being
   * placed into is kept (req.staged stays set) and discarded by the transport later.
   */
  release(req: Request): void;
  /** Memory the transport lends for a read's data (it takes it back once sent), or null. */
  lendReadBuffer(length: number): Buffer | null;
  /** Connect bound the queue: setup timers end. */
  bound(): void;
  /** Close the connection (controller teardown, Abort of the queue, auth failure). */
  close(reason: string): void;
}

export type SqState = 'connecting' | 'live' | 'closed';

export class SubmissionQueue implements ControllerQueue {
  readonly core: TargetCore;
  readonly port: Port;
  readonly remoteAddress: string;
  readonly log: Logger;
  readonly ops: QueueOps;
  state: SqState = 'connecting';
  qid = -1;
  /** Queue size granted at Connect (0's based). */
  sqsize = 0;
  sqhd = 0;
  sqFlowDisabled = false;
  controller: Controller | null = null;
  /** DH-HMAC-CHAP state of this queue (auth.ts), set by Connect. */
  auth: QueueAuth | null = null;
  /** Commands received and not completed, by command id. */
  readonly requests = new Map<number, Request>();

  constructor(core: TargetCore, port: Port, remoteAddress: string, log: Logger, ops: QueueOps) {
    this.core = core;
    this.port = port;
    this.remoteAddress = remoteAddress;
    this.log = log;
    this.ops = ops;
  }

  get clock(): Clock {
    return this.core.clock;
  }

  get live(): boolean {
    return this.state === 'live';
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** True while the queue still waits for its Connect. */
  get awaitingConnect(): boolean {
    return this.state === 'connecting';
  }

  get outstanding(): number {
    return this.requests.size;
  }

  /** Connect: this queue becomes queue qid of the controller. */
  bind(controller: Controller, qid: number, sqsize: number, sqFlowDisabled: boolean): void {
    this.controller = controller;
    this.qid = qid;
    this.sqsize = sqsize;
    this.sqFlowDisabled = sqFlowDisabled;
    this.state = 'live';
    controller.queues.set(qid, this);
    this.ops.bound();
  }

  /** Abort (admin command): a command whose handler has not started completes with Abort Requested. */
  abortPending(cid: number): boolean {
    const req = this.requests.get(cid);
    if (!req || !isAbortable(req.state)) return false;
    completeRequest(req, { status: Status.AbortRequested });
    return true;
  }

  destroy(reason: string): void {
    this.ops.close(reason);
  }

  /**
   * The transport's connection is gone: every command not executing is over
   * (staged memory back to the store: nothing is placed once closed); those
   * executing finish into the void. The controller loses this queue, and its
   * whole self if this was the admin queue.
   */
  teardown(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const req of this.requests.values()) {
      if (!beforeExecution(req.state)) continue;
      if (req.staged) req.staged.discard();
      req.staged = null;
      moveTo(req, ReqState.Completed);
    }
    this.requests.clear();
    const ctrl = this.controller;
    if (ctrl && !ctrl.isGone) {
      if (this.qid === 0) ctrl.destroy(`admin queue: ${reason}`);
      else if (ctrl.queues.get(this.qid) === this) {
        ctrl.queues.delete(this.qid);
        ctrl.log.info({ qid: this.qid, reason }, 'I/O queue gone');
      }
    }
  }
}
