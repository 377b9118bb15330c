/**
 * The command-level API of RawClient (raw-client.ts) over the in-process
 * loopback transport (target/loop.ts): the same Connect, enable handshake and
 * commands, through the same target core, with no socket and no PDUs. Tests
 * that are about the command sets, not the wire, run over both (see TRANSPORTS).
 *
 * The target is found by the TCP port its fixture bound (target-fixture.ts
 * records it), so a test names a port the same way for either transport.
 */
import { DISCOVERY_NQN } from '../../shared/fabrics.ts';
import { withCid, type Sqe } from '../../shared/sqe.ts';
import { inCapsuleSgl, SGL_INCAPSULE } from '../../shared/sgl.ts';
import type { LoopQueue } from '../../target/loop.ts';
import { RawClient, TEST_HOSTNQN, connectAdminOn, connectIoOn, connectQueueOn, enableOn, type CommandResult, type ConnectQueueOptions } from './raw-client.ts';
import { loopTargetFor } from './target-fixture.ts';

interface Pending {
  resolve: (r: CommandResult) => void;
  reject: (e: Error) => void;
}

export class LoopClient {
  readonly #queue: LoopQueue;
  readonly #pending = new Map<number, Pending>();
  #nextCid = 1;
  #closeWaiters: (() => void)[] = [];
  closed = false;
  cntlid = 0;

  private constructor(port: number) {
    const { target, portid } = loopTargetFor(port);
    this.#queue = target.loopConnect(portid, {
      response: (cqe, data) => {
        const p = this.#pending.get(cqe.cid);
        if (!p) return;
        this.#pending.delete(cqe.cid);
        // No PDUs here: the wire-only fields say so.
        p.resolve({ cqe, data: data ?? Buffer.alloc(0), c2hPdus: 0, successFlag: false, r2ts: 0 });
      },
      closed: () => {
        this.closed = true;
        for (const p of this.#pending.values()) p.reject(new Error('connection closed'));
        this.#pending.clear();
        for (const w of this.#closeWaiters.splice(0)) w();
      },
    });
  }

  /** A queue not yet connected (as RawClient.connect: a TCP connection before ICReq). */
  static connect(port: number): Promise<LoopClient> {
    return Promise.resolve(new LoopClient(port));
  }

  static async admin(
    port: number,
    opts: { subnqn: string; hostnqn?: string; kato?: number; enable?: boolean; sqsize?: number; cattr?: number },
  ): Promise<LoopClient> {
    const c = await LoopClient.connect(port);
    await connectAdminOn(c, opts);
    return c;
  }

  static async io(port: number, opts: { subnqn: string; cntlid: number; qid: number; hostnqn?: string; sqsize?: number; cattr?: number }): Promise<LoopClient> {
    const c = await LoopClient.connect(port);
    await connectIoOn(c, opts);
    return c;
  }

  static discovery(port: number, hostnqn = TEST_HOSTNQN): Promise<LoopClient> {
    return LoopClient.admin(port, { subnqn: DISCOVERY_NQN, hostnqn });
  }

  /** No IC exchange on the loopback: kept so a test reads the same over either transport. */
  async initialize(): Promise<void> {}

  connectQueue(o: ConnectQueueOptions): Promise<CommandResult> {
    return connectQueueOn(this, o);
  }

  enable(): Promise<void> {
    return enableOn(this);
  }

  /** As RawClient.command: data in-capsule when `inCapsule` (or the SGL says so), else fetched by the controller. */
  command(sqe: Sqe, opts: { data?: Buffer; inCapsule?: boolean; cid?: number } = {}): Promise<CommandResult> {
    const cid = opts.cid ?? this.#allocCid();
    const s = withCid(sqe, cid);
    const inCapsule = opts.inCapsule ?? s.sgl.id === SGL_INCAPSULE;
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      this.#pending.set(cid, { resolve, reject });
      this.#queue.submit(s, opts.data ?? null, inCapsule);
    });
  }

  commandInCapsule(sqe: Sqe, data: Buffer): Promise<CommandResult> {
    return this.command({ ...sqe, sgl: inCapsuleSgl(data.length) }, { data, inCapsule: true });
  }

  #allocCid(): number {
    do this.#nextCid = (this.#nextCid + 1) & 0xffff;
    while (this.#pending.has(this.#nextCid));
    return this.#nextCid;
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
    this.#queue.close();
  }
}

/** What the command-set tests need of a client, over either transport. */
export type CommandClient = RawClient | LoopClient;

/** How a test opens queues: RawClient (NVMe/TCP on 127.0.0.1) or LoopClient (in-process loopback). */
export interface ClientFactory {
  admin(port: number, opts: { subnqn: string; hostnqn?: string; kato?: number; enable?: boolean; sqsize?: number; cattr?: number }): Promise<CommandClient>;
  io(port: number, opts: { subnqn: string; cntlid: number; qid: number; hostnqn?: string; sqsize?: number; cattr?: number }): Promise<CommandClient>;
  connect(port: number): Promise<CommandClient>;
}

export const TRANSPORTS = ['tcp', 'loop'] as const;
export type TransportKind = (typeof TRANSPORTS)[number];

export function clientFor(kind: TransportKind): ClientFactory {
  return kind === 'tcp' ? RawClient : LoopClient;
}
