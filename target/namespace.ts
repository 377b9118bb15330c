/**
 * A namespace of a subsystem: identity, backing store, counters, and the
 * bookkeeping that fencing needs (which ports have commands executing on it).
 */
import type { BlockStore } from './store/index.ts';

export interface NamespaceIdentity {
  readonly nguid: Buffer;
  readonly uuid: Buffer;
  readonly eui64: Buffer;
}

export interface NamespaceCounters {
  readCommands: bigint;
  writeCommands: bigint;
  bytesRead: bigint;
  bytesWritten: bigint;
}

export class Namespace {
  readonly nsid: number;
  readonly identity: NamespaceIdentity;
  readonly store: BlockStore;
  anagrpid: number;
  enabled: boolean;
  readonly counters: NamespaceCounters = { readCommands: 0n, writeCommands: 0n, bytesRead: 0n, bytesWritten: 0n };
  /** Commands executing against the store, per portid. */
  readonly #executing = new Map<number, number>();
  #drainWaiters: { portFilter: (portid: number) => boolean; resolve: () => void }[] = [];

  constructor(opts: { nsid: number; identity: NamespaceIdentity; store: BlockStore; anagrpid: number; enabled?: boolean }) {
    this.nsid = opts.nsid;
    this.identity = opts.identity;
    this.store = opts.store;
    this.anagrpid = opts.anagrpid;
    this.enabled = opts.enabled ?? true;
  }

  get blockSize(): number {
    return this.store.blockSize;
  }
  get nblocks(): number {
    return this.store.nblocks;
  }

  /**
   * Runs a store operation on behalf of a port, counted so that fencing can
   * wait for every operation of the ports it demotes.
   */
  async execute<T>(portid: number, op: () => Promise<T>): Promise<T> {
    this.#executing.set(portid, (this.#executing.get(portid) ?? 0) + 1);
    try {
      return await op();
    } finally {
      const n = (this.#executing.get(portid) ?? 1) - 1;
      if (n === 0) this.#executing.delete(portid);
      else this.#executing.set(portid, n);
      if (this.#drainWaiters.length) this.#wakeDrainWaiters();
    }
  }

  executingOn(portid: number): number {
    return this.#executing.get(portid) ?? 0;
  }

  /** Resolves once no operation of a port matching the filter is executing. */
  drain(portFilter: (portid: number) => boolean): Promise<void> {
    if (![...this.#executing.keys()].some(portFilter)) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push({ portFilter, resolve }));
  }

  #wakeDrainWaiters(): void {
    const busy = [...this.#executing.keys()];
    this.#drainWaiters = this.#drainWaiters.filter((w) => {
      if (busy.some(w.portFilter)) return true;
      w.resolve();
      return false;
    });
  }
}
