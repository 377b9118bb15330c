/**
 * The in-process loopback transport, as Linux's nvme-loop: a client in the
 * same process submits SQEs (with the host's data) and gets completions (with
 * the controller's data) through the same core as NVMe/TCP, with no socket
 * and no PDU framing. It exists to show that a transport plugs into the core
 * through QueueOps alone (no command handler knows it), and to let the fast
 * integration tests run the admin and I/O command sets without the wire.
 *
 * What TCP does with PDUs this does with plain values: in-capsule data comes
 * with the SQE, R2T data is taken from what the client submitted, and read
 * data is copied out with the completion. Controller teardown, keep-alive,
 * Asynchronous Event Requests and Abort work as on TCP: they are the core's.
 */
import type { Cqe } from '../shared/cqe.ts';
import type { Sqe } from '../shared/sqe.ts';
import { Init, admitRequest, dataReceived, executeRequest, initRequest, type TargetCore } from './core.ts';
import type { Port } from './port.ts';
import { ReqState, moveTo } from './req-state.ts';
import { Request, type Completion } from './request.ts';
import { SubmissionQueue, type QueueOps } from './sq.ts';

const NO_DATA = Buffer.alloc(0);

/** What a loopback client is told. */
export interface LoopHandlers {
  /** A completion: the CQE, and the controller's data for a successful read (exactly the transfer length). */
  response(cqe: Cqe, data: Buffer | null): void;
  /** The queue is gone (controller teardown, port down, target stop, or the client's close). */
  closed(reason: string): void;
}

/** A command as the loopback carries it: the data the client submitted for an R2T-style (transport SGL) transfer. */
class LoopCommand extends Request {
  readonly hostData: Buffer | null;

  constructor(sq: SubmissionQueue, sqe: Sqe, hostData: Buffer | null) {
    super(sq, sqe);
    this.hostData = hostData;
  }
}

export class LoopQueue implements QueueOps {
  readonly sq: SubmissionQueue;
  readonly #handlers: LoopHandlers;
  readonly #onClosed: (q: LoopQueue) => void;
  #closed = false;

  constructor(core: TargetCore, port: Port, id: number, handlers: LoopHandlers, onClosed: (q: LoopQueue) => void) {
    this.#handlers = handlers;
    this.#onClosed = onClosed;
    this.sq = new SubmissionQueue(core, port, `loop:${id}`, core.log.child({ port: port.portid, peer: `loop:${id}` }), this);
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /**
   * Submit one command. With `inCapsule` the data travels with the SQE (its
   * SGL must say so); otherwise it is what the controller fetches when the
   * SGL is a transport one (on TCP: R2T and H2CData).
   */
  submit(sqe: Sqe, data: Buffer | null = null, inCapsule = false): void {
    if (this.#closed) throw new Error('loopback queue closed');
    const cmd = new LoopCommand(this.sq, sqe, inCapsule ? null : data);
    if (!admitRequest(cmd)) return;
    switch (initRequest(cmd, inCapsule && data ? data : NO_DATA, false)) {
      case Init.Execute:
        return executeRequest(cmd);
      case Init.FetchData: {
        moveTo(cmd, ReqState.TransferringHostToController);
        const length = cmd.transferLength;
        const host = cmd.hostData ?? NO_DATA;
        // The host gives what the SGL says; a client that has less sends zeros (as a short buffer would on the wire).
        const fetched = Buffer.alloc(length);
        host.copy(fetched, 0, 0, Math.min(length, host.length));
        cmd.data = fetched;
        return dataReceived(cmd, false);
      }
      case Init.Done:
        return;
    }
  }

  /** The client leaves: as a TCP connection closing. */
  close(reason = 'loopback client closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.sq.teardown(reason);
    this.#onClosed(this);
    this.#handlers.closed(reason);
  }

  // ---------------------------------------------------------------- QueueOps

  queueResponse(req: Request, c: Completion): void {
    if (this.#closed) return;
    const sq = this.sq;
    const length = req.transferLength;
    let data: Buffer | null = null;
    if (c.status === 0 && c.data && length > 0) {
      // A copy: the handler's buffer may be store memory that changes with the next write.
      data = Buffer.alloc(length);
      c.data.copy(data, 0, 0, Math.min(length, c.data.length));
    }
    const cqe: Cqe = {
      result: c.result ?? 0,
      dw1: c.dw1 ?? 0,
      sqhd: sq.sqFlowDisabled ? 0 : sq.sqhd,
      sqid: Math.max(sq.qid, 0),
      cid: req.sqe.cid,
      status: c.status,
    };
    this.#handlers.response(cqe, data);
  }

  release(req: Request): void {
    // Nothing lent, nothing staged: the loopback copies.
    req.readInto = null;
  }

  lendReadBuffer(): Buffer | null {
    return null;
  }

  bound(): void {}
}

/** The loopback queues of one port: closed with the port (down, removed, target stop). */
export class LoopPort {
  readonly port: Port;
  readonly #core: TargetCore;
  readonly queues = new Set<LoopQueue>();
  #nextId = 1;

  constructor(port: Port, core: TargetCore) {
    this.port = port;
    this.#core = core;
  }

  connect(handlers: LoopHandlers): LoopQueue {
    if (this.port.state !== 'up') throw new Error(`port ${this.port.portid} is down`);
    const q = new LoopQueue(this.#core, this.port, this.#nextId++, handlers, (closed) => this.queues.delete(closed));
    this.queues.add(q);
    return q;
  }

  stop(reason: string): void {
    for (const q of [...this.queues]) q.close(reason);
    this.queues.clear();
  }
}
