/**
 * A multipath head served over NBD (fixed newstyle), so that qemu-img,
 * qemu-io, nbdinfo, nbdcopy or fio's nbd engine can use it:
 *
 *   const nbd = await startNbdServer(session.head(), { port: 0 });
 *   // nbd://127.0.0.1:${nbd.port}/nvmets
 *   await nbd.close();
 *
 * Handshake: NBD_OPT_EXPORT_NAME, NBD_OPT_GO and NBD_OPT_INFO (NBD_INFO_EXPORT,
 * NBD_INFO_BLOCK_SIZE always, NBD_INFO_NAME / NBD_INFO_DESCRIPTION when asked),
 * NBD_OPT_LIST, NBD_OPT_ABORT, NBD_OPT_STRUCTURED_REPLY; every other option is
 * answered NBD_REP_ERR_UNSUP. Transmission: READ, WRITE (FUA), FLUSH, TRIM,
 * WRITE_ZEROES (NO_HOLE), CACHE (a no-op), DISC; many requests in flight per
 * connection, replies in completion order.
 *
 * Requests not aligned to the head's block size are served: reads are widened
 * to whole blocks, writes and write-zeroes read-modify-write their partial edge
 * blocks. Every write-like request takes a range lock on its blocks (shared for
 * whole-block writes, exclusive for read-modify-write) in arrival order, one
 * lock table per device across all its connections and servers: an RMW never
 * reads a block while an earlier write to it is still in flight, and no later
 * write to it starts before the RMW has written it back. Overlapping requests
 * reach the head in arrival order, and the head keeps overlapping writes in
 * submission order.
 *
 * Protocol violations (bad magic, unknown client flags, an oversize payload, a
 * non-fixed-newstyle client sending anything but EXPORT_NAME) close the
 * connection with a log line; nothing a client sends can throw out of here.
 */
import { realClock, type Clock, type TimerHandle } from '../shared/clock.ts';
import * as net from 'node:net';
import { pino, type Logger } from 'pino';
import {
  CLIENT_FLAGS_LENGTH,
  NBD_CMD_CACHE,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_DEFAULT_MAX_PAYLOAD,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOSPC,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_NO_ZEROES,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_NAME,
  NBD_MAX_STRING,
  NBD_OPTS_MAGIC,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REPLY_FLAG_DONE,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_SERVER,
  NBD_REQUEST_MAGIC,
  OPTION_HEADER_LENGTH,
  REQUEST_HEADER_LENGTH,
  commandName,
  decodeClientFlags,
  decodeInfoRequest,
  decodeOptionHeader,
  decodeRequestHeader,
  encodeErrorChunk,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOptionError,
  encodeOptionReply,
  encodeRepServer,
  encodeSimpleReply,
  errorName,
  optionName,
  type OptionHeader,
  type RequestHeader,
} from './nbd-protocol.ts';

/**
 * What the server needs of the device it exports. MultipathHead is one; a
 * test can put an in-memory fake behind the server.
 */
export interface NbdBlockDevice {
  readonly blockSize: number;
  readonly nblocks: number;
  /** For logs and NBD_INFO_DESCRIPTION. */
  readonly name?: string;
  readonly subnqn?: string;
  readonly nsid?: number;
  read(slba: number, nlb: number): Promise<Buffer>;
  write(slba: number, data: Buffer, opts?: { fua?: boolean }): Promise<void>;
  flush(): Promise<void>;
  writeZeroes(slba: number, nlb: number, opts?: { deallocate?: boolean }): Promise<void>;
  deallocate(slba: number, nlb: number): Promise<void>;
}

export interface NbdServerOptions {
  /** Address to listen on; default 127.0.0.1. NBD has no authentication: keep it on loopback or a trusted network. */
  readonly host?: string;
  /** TCP port; default 10809 (the IANA NBD port), 0 lets the OS pick (see the returned port). */
  readonly port?: number;
  /** The one export's name; default 'nvmets'. The empty name (the default export) selects it too. */
  readonly exportName?: string;
  /** NBD_INFO_DESCRIPTION / NBD_OPT_LIST text; default a line naming the head. */
  readonly description?: string;
  /** Advertise NBD_FLAG_READ_ONLY and refuse writes, trims and write-zeroes with EPERM; default false. */
  readonly readOnly?: boolean;
  /**
   * Minimum block size advertised in NBD_INFO_BLOCK_SIZE: a power of two, at
   * most the device block size; default the device block size. Smaller values
   * make clients that honour it (qemu) send unaligned requests, which the
   * server serves by read-modify-write.
   */
  readonly minBlockSize?: number;
  /** Accept NBD_OPT_STRUCTURED_REPLY; default true (refused with NBD_REP_ERR_UNSUP when false). */
  readonly structuredReplies?: boolean;
  /** Requests in flight per connection before the server stops reading from it; default 128. */
  readonly maxInflight?: number;
  /** A client that has not finished the handshake by then is disconnected, ms; default 30 000. */
  readonly handshakeTimeoutMs?: number;
  /** close(): how long in-flight requests may take to finish before connections are cut, ms; default 5000. */
  readonly closeTimeoutMs?: number;
  /** pino logger; silent by default. */
  readonly logger?: Logger;
  /** The handshake and close timers; default real time. */
  readonly clock?: Clock;
}

export interface NbdServerStats {
  /** Connections open now, and accepted since start. */
  connections: number;
  connectionsTotal: number;
  /** Requests in the transmission phase (DISC included). */
  requests: number;
  reads: number;
  writes: number;
  flushes: number;
  trims: number;
  writeZeroes: number;
  bytesRead: number;
  bytesWritten: number;
  /** Requests answered with an error. */
  errors: number;
  /** Reads widened to whole blocks, and writes / write-zeroes done by read-modify-write. */
  unalignedReads: number;
  readModifyWrites: number;
  /** Connections closed because of a protocol violation. */
  protocolErrors: number;
}

export interface NbdServer {
  /** The bound port (the OS's choice when 0 was asked). */
  readonly port: number;
  readonly host: string;
  readonly exportName: string;
  /** `nbd://host:port/exportName` */
  readonly uri: string;
  stats(): NbdServerStats;
  /**
   * Stop listening, let the requests in flight finish (up to closeTimeoutMs),
   * then close every connection. Idempotent.
   */
  close(): Promise<void>;
}

/** Largest READ or WRITE payload, bytes (2^25): advertised as the maximum payload. */
export const NBD_MAX_PAYLOAD = NBD_DEFAULT_MAX_PAYLOAD;
/** Preferred block size advertised (at least the device block size). */
export const NBD_PREFERRED_BLOCK_SIZE = 4096;
/** Option data larger than this is taken as abuse: the connection is closed. */
const MAX_OPTION_DATA = 4 + NBD_MAX_STRING + 2 + 2 * 0xffff;
/** Options one connection may send before it is taken as abuse. */
const MAX_OPTIONS = 1024;
/** Stop reading requests while this much reply data waits in the socket. */
const MAX_QUEUED_REPLY_BYTES = 16 * 1024 * 1024;
/** Stop reading requests while this many payload bytes are in flight. */
const MAX_INFLIGHT_BYTES = 64 * 1024 * 1024;
/** Messages parsed per pump before yielding to the event loop. */
const PUMP_BATCH = 256;

const silentLogger: Logger = pino({ level: 'silent' });

// ---------------------------------------------------------------- range locks

interface LockEntry {
  readonly start: number;
  readonly end: number;
  readonly exclusive: boolean;
  granted: boolean;
  readonly run: () => void;
}

/**
 * Block-range locks in arrival order. An entry is granted when no earlier
 * overlapping entry is still waiting and no granted overlapping entry
 * conflicts (exclusive on either side). So overlapping requests start in
 * arrival order, shared holders overlap freely, and an exclusive holder is
 * alone on its blocks. The table holds only requests in flight (bounded by the
 * connections' maxInflight), scanned linearly.
 */
export class RangeLocks {
  #list: LockEntry[] = [];

  get size(): number {
    return this.#list.length;
  }

  /** Run fn under a lock on blocks [start, end); the lock is held until fn's promise settles. fn starts synchronously when the lock is free. */
  run<T>(start: number, end: number, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: LockEntry = {
        start,
        end,
        exclusive,
        granted: false,
        run: () => {
          let p: Promise<T>;
          try {
            p = fn();
          } catch (e) {
            p = Promise.reject(e);
          }
          p.then(
            (v) => {
              this.#release(entry);
              resolve(v);
            },
            (e: unknown) => {
              this.#release(entry);
              reject(e);
            },
          );
        },
      };
      this.#list.push(entry);
      if (this.#eligible(this.#list.length - 1)) {
        entry.granted = true;
        entry.run();
      }
    });
  }

  #eligible(i: number): boolean {
    const e = this.#list[i]!;
    for (let j = 0; j < i; j++) {
      const o = this.#list[j]!;
      if (o.start >= e.end || e.start >= o.end) continue;
      if (!o.granted || o.exclusive || e.exclusive) return false;
    }
    return true;
  }

  #release(entry: LockEntry): void {
    const i = this.#list.indexOf(entry);
    if (i >= 0) this.#list.splice(i, 1);
    // Grant, in arrival order, every waiter that is now free to go. A waiter
    // that starts runs synchronously up to its first await (the device call is
    // submitted), which keeps overlapping submissions in arrival order.
    for (let k = 0; k < this.#list.length; k++) {
      const w = this.#list[k]!;
      if (w.granted || !this.#eligible(k)) continue;
      w.granted = true;
      w.run();
    }
  }
}

/** One lock table per device, shared by every connection and server exporting it. */
const deviceLocks = new WeakMap<object, RangeLocks>();
function locksOf(dev: NbdBlockDevice): RangeLocks {
  let l = deviceLocks.get(dev);
  if (l === undefined) {
    l = new RangeLocks();
    deviceLocks.set(dev, l);
  }
  return l;
}

// ---------------------------------------------------------------- input buffer

/** Received bytes as a list of chunks; take(n) copies only when n spans chunks. */
class ByteQueue {
  #chunks: Buffer[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.#chunks.push(b);
    this.#length += b.length;
  }

  take(n: number): Buffer {
    if (n > this.#length) throw new RangeError(`take(${n}) with ${this.#length} bytes buffered`);
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      this.#length -= n;
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#length -= n;
    return out;
  }

  clear(): void {
    this.#chunks = [];
    this.#length = 0;
  }
}

// ---------------------------------------------------------------- errors

class RequestError extends Error {
  constructor(
    readonly nbdError: number,
    message: string,
  ) {
    super(message);
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A device error as an NBD error value: a closed head is ESHUTDOWN, everything else EIO. */
function deviceError(e: unknown, write: boolean): number {
  if (e instanceof RequestError) return e.nbdError;
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ECLOSED') return NBD_ESHUTDOWN;
  if (code === 'ERANGE') return write ? NBD_ENOSPC : NBD_EINVAL;
  return NBD_EIO;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

// ---------------------------------------------------------------- server

interface ServerContext {
  readonly dev: NbdBlockDevice;
  readonly locks: RangeLocks;
  readonly exportName: string;
  readonly description: string;
  readonly readOnly: boolean;
  readonly minBlockSize: number;
  readonly structuredReplies: boolean;
  readonly maxInflight: number;
  readonly handshakeTimeoutMs: number;
  readonly log: Logger;
  readonly stats: NbdServerStats;
  readonly clock: Clock;
}

export async function startNbdServer(head: NbdBlockDevice, options: NbdServerOptions = {}): Promise<NbdServer> {
  const bs = head.blockSize;
  if (!isPowerOfTwo(bs) || bs > 65536) throw new RangeError(`device block size ${bs} is not a power of two up to 65536`);
  const minBlockSize = options.minBlockSize ?? bs;
  if (!isPowerOfTwo(minBlockSize) || minBlockSize > bs) {
    throw new RangeError(`minBlockSize ${minBlockSize} must be a power of two no larger than the device block size ${bs}`);
  }
  const exportName = options.exportName ?? 'nvmets';
  if (Buffer.byteLength(exportName) > NBD_MAX_STRING || exportName.includes('\0')) throw new RangeError('exportName must be at most 4096 bytes without NUL');
  const maxInflight = options.maxInflight ?? 128;
  if (!Number.isSafeInteger(maxInflight) || maxInflight < 1) throw new RangeError(`maxInflight must be a positive integer, got ${maxInflight}`);
  const host = options.host ?? '127.0.0.1';
  const closeTimeoutMs = options.closeTimeoutMs ?? 5000;
  const log = (options.logger ?? silentLogger).child({ nbd: exportName });
  const stats: NbdServerStats = {
    connections: 0,
    connectionsTotal: 0,
    requests: 0,
    reads: 0,
    writes: 0,
    flushes: 0,
    trims: 0,
    writeZeroes: 0,
    bytesRead: 0,
    bytesWritten: 0,
    errors: 0,
    unalignedReads: 0,
    readModifyWrites: 0,
    protocolErrors: 0,
  };
  const ctx: ServerContext = {
    dev: head,
    locks: locksOf(head),
    exportName,
    description:
      options.description ??
      `nvmets multipath head${head.name ? ` ${head.name}` : ''}${head.subnqn ? ` (${head.subnqn}${head.nsid !== undefined ? ` nsid ${head.nsid}` : ''})` : ''}`,
    readOnly: options.readOnly === true,
    minBlockSize,
    structuredReplies: options.structuredReplies !== false,
    maxInflight,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 30_000,
    clock: options.clock ?? realClock,
    log,
    stats,
  };

  const conns = new Set<NbdConnection>();
  let nextId = 1;
  let closing = false;
  let closePromise: Promise<void> | null = null;
  // Half-open allowed: a client that sends NBD_CMD_DISC and shuts down its
  // side still gets the replies to what it had in flight.
  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    const conn = new NbdConnection(ctx, socket, nextId++);
    conns.add(conn);
    stats.connections++;
    stats.connectionsTotal++;
    // `closed` only ever resolves (it is settled from the socket's close event), and the callback cannot throw.
    void conn.closed.then(() => {
      conns.delete(conn);
      stats.connections--;
    });
  });
  server.on('error', (err) => log.error({ err: err.message }, 'NBD server error'));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ host, port: options.port ?? 10809 }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  const port = addr.port;
  const uriHost = host.includes(':') ? `[${host}]` : host;
  log.info({ host, port, export: exportName, size: head.nblocks * bs, blockSize: bs }, 'NBD server listening');

  return {
    port,
    host,
    exportName,
    uri: `nbd://${uriHost}:${port}/${encodeURIComponent(exportName)}`,
    stats: () => ({ ...stats }),
    close(): Promise<void> {
      if (closePromise !== null) return closePromise;
      closing = true;
      const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of conns) c.shutdown(closeTimeoutMs);
      closePromise = Promise.all([listenerClosed, ...[...conns].map((c) => c.closed)]).then(() => {
        log.info({ port }, 'NBD server closed');
      });
      return closePromise;
    },
  };
}

type Phase = 'client-flags' | 'options' | 'transmission' | 'closed';

interface Request {
  readonly type: number;
  readonly flags: number;
  readonly handle: bigint;
  readonly offset: number;
  readonly length: number;
}

class NbdConnection {
  readonly closed: Promise<void>;
  readonly #ctx: ServerContext;
  readonly #socket: net.Socket;
  readonly #log: Logger;
  readonly #in = new ByteQueue();
  #phase: Phase = 'client-flags';
  #fixed = false;
  #noZeroes = false;
  #structured = false;
  #options = 0;
  #option: OptionHeader | null = null;
  #request: RequestHeader | null = null;
  /** Export size and transmission flags announced when transmission began. */
  #size = 0;
  #flags = 0;
  #inflight = 0;
  #inflightBytes = 0;
  #paused = false;
  /** NBD_CMD_DISC or NBD_OPT_ABORT received (or a protocol error): read nothing more, end once idle. */
  #draining = false;
  /** The server is closing: new requests are answered ESHUTDOWN, the connection ends once idle. */
  #shuttingDown = false;
  #ending = false;
  #pumpScheduled = false;
  #handshakeTimer: TimerHandle | null = null;
  #resolveClosed!: () => void;

  constructor(ctx: ServerContext, socket: net.Socket, id: number) {
    this.#ctx = ctx;
    this.#socket = socket;
    this.#log = ctx.log.child({ conn: id, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    this.closed = new Promise<void>((resolve) => (this.#resolveClosed = resolve));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.#phase === 'closed' || this.#draining) return;
      this.#in.push(chunk);
      this.#pump();
    });
    socket.on('drain', () => this.#pump());
    socket.on('end', () => {
      // The client will send nothing more: finish what is in flight, then close.
      this.#log.debug({ inflight: this.#inflight, phase: this.#phase }, 'client ended its side');
      if (this.#phase !== 'transmission') {
        this.#socket.destroy();
        return;
      }
      this.#draining = true;
      this.#in.clear();
      this.#maybeEnd();
    });
    socket.on('error', (err) => this.#log.debug({ err: err.message }, 'socket error'));
    socket.on('close', () => this.#onClose());
    this.#handshakeTimer = ctx.clock.setTimeout(() => {
      this.#handshakeTimer = null;
      this.#abort(`handshake not finished within ${ctx.handshakeTimeoutMs} ms`);
    }, ctx.handshakeTimeoutMs);
    this.#log.debug('client connected');
    socket.write(encodeGreeting(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES));
  }

  /**
   * Server shutdown: a connection still negotiating goes at once. One in
   * transmission finishes the requests in flight, answers any request that
   * still arrives with ESHUTDOWN, and is ended once nothing is in flight (cut
   * after timeoutMs whatever happens).
   */
  shutdown(timeoutMs: number): void {
    if (this.#phase === 'closed') return;
    if (this.#phase !== 'transmission') {
      this.#socket.destroy();
      return;
    }
    this.#shuttingDown = true;
    const clock = this.#ctx.clock;
    const t = clock.setTimeout(() => {
      if (this.#phase === 'closed') return;
      this.#log.warn({ inflight: this.#inflight }, 'server closing: requests still in flight, connection cut');
      this.#socket.destroy();
    }, timeoutMs);
    // `closed` only ever resolves, and clearing a timer cannot throw.
    void this.closed.then(() => clock.clearTimeout(t));
    this.#pump();
    this.#maybeEnd();
  }

  #onClose(): void {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    if (this.#handshakeTimer !== null) this.#ctx.clock.clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = null;
    this.#in.clear();
    this.#log.debug({ inflight: this.#inflight }, 'client disconnected');
    this.#resolveClosed();
  }

  /** Hard disconnect after a protocol violation. */
  #abort(reason: string, extra: Record<string, unknown> = {}): void {
    if (this.#phase === 'closed') return;
    this.#ctx.stats.protocolErrors++;
    this.#log.warn({ ...extra, phase: this.#phase }, `NBD protocol error, closing the connection: ${reason}`);
    this.#in.clear();
    this.#draining = true;
    this.#socket.destroy();
  }

  #send(bufs: Buffer[]): void {
    if (this.#phase === 'closed' || this.#socket.destroyed || this.#socket.writableEnded) return;
    // Consecutive synchronous writes: the buffers of one reply stay together on the wire.
    for (const b of bufs) this.#socket.write(b);
  }

  // ---------------------------------------------------------------- parsing

  #canAccept(): boolean {
    return this.#inflight < this.#ctx.maxInflight && this.#inflightBytes < MAX_INFLIGHT_BYTES && this.#socket.writableLength < MAX_QUEUED_REPLY_BYTES;
  }

  #pump(): void {
    try {
      this.#pumpInner();
    } catch (e) {
      // A bug, not the client's fault; still never take the process down.
      this.#log.error({ err: errText(e), stack: (e as Error).stack }, 'NBD connection failed');
      this.#socket.destroy();
    }
  }

  #pumpInner(): void {
    for (let n = 0; n < PUMP_BATCH; n++) {
      if (this.#phase === 'closed' || this.#draining) return;
      if (this.#phase === 'client-flags') {
        if (this.#in.length < CLIENT_FLAGS_LENGTH) return;
        this.#onClientFlags(decodeClientFlags(this.#in.take(CLIENT_FLAGS_LENGTH)));
        continue;
      }
      if (this.#phase === 'options') {
        if (this.#option === null) {
          if (this.#in.length < OPTION_HEADER_LENGTH) return;
          const h = decodeOptionHeader(this.#in.take(OPTION_HEADER_LENGTH));
          if (h.magic !== NBD_OPTS_MAGIC) {
            this.#abort('bad option magic', { magic: `0x${h.magic.toString(16)}` });
            return;
          }
          if (h.length > MAX_OPTION_DATA) {
            this.#abort(`option data of ${h.length} bytes is over the limit of ${MAX_OPTION_DATA}`, { option: optionName(h.option) });
            return;
          }
          this.#option = h;
        }
        if (this.#in.length < this.#option.length) return;
        const h = this.#option;
        this.#option = null;
        this.#onOption(h, this.#in.take(h.length));
        continue;
      }
      // transmission
      if (this.#request === null) {
        if (!this.#canAccept()) {
          if (!this.#paused) {
            this.#paused = true;
            this.#socket.pause();
          }
          return;
        }
        if (this.#paused) {
          this.#paused = false;
          this.#socket.resume();
        }
        if (this.#in.length < REQUEST_HEADER_LENGTH) return;
        const h = decodeRequestHeader(this.#in.take(REQUEST_HEADER_LENGTH));
        if (h.magic !== NBD_REQUEST_MAGIC) {
          this.#abort('bad request magic', { magic: `0x${h.magic.toString(16)}` });
          return;
        }
        if ((h.type === NBD_CMD_WRITE || h.type === NBD_CMD_READ) && h.length > NBD_MAX_PAYLOAD) {
          this.#abort(`${commandName(h.type)} of ${h.length} bytes is over the maximum payload of ${NBD_MAX_PAYLOAD}`, {
            handle: h.handle.toString(),
            offset: h.offset.toString(),
          });
          return;
        }
        this.#request = h;
      }
      const h = this.#request;
      const payloadLength = h.type === NBD_CMD_WRITE ? h.length : 0;
      if (this.#in.length < payloadLength) return;
      this.#request = null;
      const payload = payloadLength > 0 ? this.#in.take(payloadLength) : undefined;
      this.#onRequest(h, payload);
    }
    // A long burst: go on after other connections had their turn.
    if (!this.#pumpScheduled) {
      this.#pumpScheduled = true;
      setImmediate(() => {
        this.#pumpScheduled = false;
        this.#pump();
      });
    }
  }

  // ---------------------------------------------------------------- handshake

  #onClientFlags(flags: number): void {
    const known = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;
    if ((flags & ~known) !== 0) {
      this.#abort(`unknown client flags 0x${flags.toString(16)}`);
      return;
    }
    this.#fixed = (flags & NBD_FLAG_C_FIXED_NEWSTYLE) !== 0;
    this.#noZeroes = (flags & NBD_FLAG_C_NO_ZEROES) !== 0;
    this.#phase = 'options';
  }

  #reply(option: number, type: number, data?: Buffer): void {
    this.#send([encodeOptionReply(option, type, data)]);
  }

  #replyError(option: number, type: number, message: string): void {
    this.#log.debug({ option: optionName(option), reply: type >>> 0, message }, 'option refused');
    this.#send([encodeOptionError(option, type, message)]);
  }

  #exportMatches(name: string): boolean {
    return name === this.#ctx.exportName || name === '';
  }

  #transmissionFlags(): number {
    let f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_CAN_MULTI_CONN;
    if (this.#ctx.readOnly) f |= NBD_FLAG_READ_ONLY;
    if (this.#structured) f |= NBD_FLAG_SEND_DF;
    return f;
  }

  #exportSize(): number {
    return this.#ctx.dev.nblocks * this.#ctx.dev.blockSize;
  }

  #onOption(h: OptionHeader, data: Buffer): void {
    const opt = h.option;
    if (++this.#options > MAX_OPTIONS) {
      this.#abort(`more than ${MAX_OPTIONS} options`);
      return;
    }
    this.#log.debug({ option: optionName(opt), length: data.length }, 'option');
    if (!this.#fixed && opt !== NBD_OPT_EXPORT_NAME) {
      // A client that did not agree to fixed newstyle cannot read option replies.
      this.#abort(`${optionName(opt)} from a client without fixed newstyle`);
      return;
    }
    switch (opt) {
      case NBD_OPT_EXPORT_NAME: {
        const name = data.toString('utf8');
        if (data.length > NBD_MAX_STRING || !this.#exportMatches(name)) {
          // This option cannot answer an error: the session ends.
          this.#abort(`NBD_OPT_EXPORT_NAME for unknown export "${name.slice(0, 256)}"`);
          return;
        }
        const flags = this.#transmissionFlags();
        const size = this.#exportSize();
        this.#send([encodeExportNameReply(size, flags, this.#noZeroes)]);
        this.#enterTransmission(size, flags, 'EXPORT_NAME');
        return;
      }
      case NBD_OPT_ABORT:
        this.#reply(opt, NBD_REP_ACK);
        this.#draining = true;
        this.#in.clear();
        this.#maybeEnd();
        return;
      case NBD_OPT_LIST:
        if (data.length !== 0) return this.#replyError(opt, NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
        this.#reply(opt, NBD_REP_SERVER, encodeRepServer(this.#ctx.exportName));
        this.#reply(opt, NBD_REP_ACK);
        return;
      case NBD_OPT_STRUCTURED_REPLY:
        if (!this.#ctx.structuredReplies) return this.#replyError(opt, NBD_REP_ERR_UNSUP, 'structured replies are disabled on this server');
        if (data.length !== 0) return this.#replyError(opt, NBD_REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
        this.#structured = true;
        this.#reply(opt, NBD_REP_ACK);
        return;
      case NBD_OPT_INFO:
      case NBD_OPT_GO: {
        const req = decodeInfoRequest(data);
        if (typeof req === 'string') return this.#replyError(opt, NBD_REP_ERR_INVALID, req);
        if (!this.#exportMatches(req.name)) {
          return this.#replyError(opt, NBD_REP_ERR_UNKNOWN, `no export named "${req.name.slice(0, 256)}" (this server has "${this.#ctx.exportName}")`);
        }
        const flags = this.#transmissionFlags();
        const size = this.#exportSize();
        const bs = this.#ctx.dev.blockSize;
        this.#reply(opt, NBD_REP_INFO, encodeInfoExport(size, flags));
        // Sent whether asked or not (the spec allows unrequested information).
        this.#reply(opt, NBD_REP_INFO, encodeInfoBlockSize(this.#ctx.minBlockSize, Math.max(NBD_PREFERRED_BLOCK_SIZE, bs), NBD_MAX_PAYLOAD));
        if (req.requests.includes(NBD_INFO_NAME)) this.#reply(opt, NBD_REP_INFO, encodeInfoString(NBD_INFO_NAME, this.#ctx.exportName));
        if (req.requests.includes(NBD_INFO_DESCRIPTION)) this.#reply(opt, NBD_REP_INFO, encodeInfoString(NBD_INFO_DESCRIPTION, this.#ctx.description));
        this.#reply(opt, NBD_REP_ACK);
        if (opt === NBD_OPT_GO) this.#enterTransmission(size, flags, 'GO');
        return;
      }
      case NBD_OPT_STARTTLS:
        return this.#replyError(opt, NBD_REP_ERR_UNSUP, 'TLS is not supported by this server');
      default:
        return this.#replyError(opt, NBD_REP_ERR_UNSUP, `${optionName(opt)} is not supported by this server`);
    }
  }

  #enterTransmission(size: number, flags: number, via: string): void {
    this.#phase = 'transmission';
    this.#size = size;
    this.#flags = flags;
    if (this.#handshakeTimer !== null) this.#ctx.clock.clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = null;
    this.#log.info({ via, size, flags: `0x${flags.toString(16)}`, structured: this.#structured }, 'NBD client in transmission');
  }

  // ---------------------------------------------------------------- transmission

  #allowedFlags(type: number): number | null {
    switch (type) {
      case NBD_CMD_READ:
        return NBD_CMD_FLAG_FUA | (this.#flags & NBD_FLAG_SEND_DF ? NBD_CMD_FLAG_DF : 0);
      case NBD_CMD_WRITE:
      case NBD_CMD_FLUSH:
      case NBD_CMD_TRIM:
      case NBD_CMD_CACHE:
        return NBD_CMD_FLAG_FUA;
      case NBD_CMD_WRITE_ZEROES:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE;
      default:
        return null;
    }
  }

  /** Why this request cannot run (error value and message), or null. */
  #check(h: RequestHeader): RequestError | null {
    const allowed = this.#allowedFlags(h.type);
    if (allowed === null) return new RequestError(NBD_EINVAL, `unsupported command ${h.type}`);
    if ((h.flags & ~allowed) !== 0) return new RequestError(NBD_EINVAL, `flags 0x${h.flags.toString(16)} not valid for ${commandName(h.type)}`);
    const writes = h.type === NBD_CMD_WRITE || h.type === NBD_CMD_TRIM || h.type === NBD_CMD_WRITE_ZEROES;
    if (writes && this.#ctx.readOnly) return new RequestError(NBD_EPERM, 'the export is read-only');
    if (h.type === NBD_CMD_FLUSH) return null; // offset and length are reserved
    if (h.offset + BigInt(h.length) > BigInt(this.#size)) {
      const grows = h.type === NBD_CMD_WRITE || h.type === NBD_CMD_WRITE_ZEROES;
      return new RequestError(
        grows ? NBD_ENOSPC : NBD_EINVAL,
        `${commandName(h.type)} of ${h.length} bytes at ${h.offset} goes beyond the export size ${this.#size}`,
      );
    }
    return null;
  }

  #onRequest(h: RequestHeader, payload: Buffer | undefined): void {
    const stats = this.#ctx.stats;
    stats.requests++;
    if (this.#log.isLevelEnabled('trace'))
      this.#log.trace({ cmd: commandName(h.type), flags: h.flags, handle: h.handle.toString(), offset: h.offset.toString(), length: h.length }, 'request');
    if (h.type === NBD_CMD_DISC) {
      this.#log.debug({ inflight: this.#inflight }, 'NBD_CMD_DISC');
      this.#draining = true;
      this.#in.clear();
      this.#maybeEnd();
      return;
    }
    const bad = this.#shuttingDown ? new RequestError(NBD_ESHUTDOWN, 'the server is shutting down') : this.#check(h);
    if (bad !== null) {
      stats.errors++;
      this.#log.debug({ cmd: commandName(h.type), offset: h.offset.toString(), length: h.length, err: errorName(bad.nbdError) }, bad.message);
      this.#replyTo({ type: h.type, flags: h.flags, handle: h.handle, offset: 0, length: h.length }, bad.nbdError, bad.message, undefined);
      if (this.#shuttingDown) this.#maybeEnd();
      return;
    }
    // In range: offset + length is at most the export size, a safe integer.
    const req: Request = { type: h.type, flags: h.flags, handle: h.handle, offset: Number(h.offset), length: h.length };
    const bytes = h.type === NBD_CMD_READ || h.type === NBD_CMD_WRITE ? h.length : 0;
    this.#inflight++;
    this.#inflightBytes += bytes;
    void this.#run(req, payload, bytes);
  }

  async #run(req: Request, payload: Buffer | undefined, bytes: number): Promise<void> {
    const stats = this.#ctx.stats;
    try {
      let data: Buffer | undefined;
      let error = 0;
      let message = '';
      try {
        data = await this.#execute(req, payload);
      } catch (e) {
        const write = req.type !== NBD_CMD_READ && req.type !== NBD_CMD_CACHE;
        error = deviceError(e, write);
        message = errText(e);
        stats.errors++;
        this.#log.warn({ cmd: commandName(req.type), offset: req.offset, length: req.length, err: errorName(error), cause: message }, 'NBD request failed');
      }
      this.#replyTo(req, error, message, data);
    } catch (e) {
      this.#log.error({ err: errText(e) }, 'NBD reply failed');
      this.#socket.destroy();
    } finally {
      this.#inflight--;
      this.#inflightBytes -= bytes;
      if (this.#draining || this.#shuttingDown) this.#maybeEnd();
      if (!this.#draining) this.#pump();
    }
  }

  #replyTo(req: Request, error: number, message: string, data: Buffer | undefined): void {
    if (error !== 0) {
      if (this.#structured) this.#send([encodeErrorChunk(NBD_REPLY_FLAG_DONE, req.handle, error, message)]);
      else this.#send([encodeSimpleReply(error, req.handle)]);
      return;
    }
    if (req.type !== NBD_CMD_READ) {
      this.#send([encodeSimpleReply(0, req.handle)]);
      return;
    }
    const d = data ?? Buffer.alloc(0);
    if (!this.#structured) this.#send([encodeSimpleReply(0, req.handle), d]);
    else if (d.length === 0) this.#send([encodeNoneChunk(req.handle)]);
    else this.#send([encodeOffsetDataHeader(NBD_REPLY_FLAG_DONE, req.handle, BigInt(req.offset), d.length), d]);
  }

  /** DISC, ABORT or shutdown: once nothing is in flight (nor half received, when shutting down), close our side. */
  #maybeEnd(): void {
    if (this.#inflight > 0 || this.#ending || this.#phase === 'closed') return;
    if (!this.#draining && (this.#request !== null || this.#in.length > 0)) return;
    this.#ending = true;
    // Read (and ignore) what still comes, so that the client's end is seen and the socket closes.
    this.#draining = true;
    if (this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
    this.#socket.end();
    // A client that never closes its side does not keep the socket forever.
    this.#ctx.clock.setTimeout(() => this.#socket.destroy(), 2000);
  }

  // ---------------------------------------------------------------- execution

  #execute(req: Request, payload: Buffer | undefined): Promise<Buffer | undefined> {
    const stats = this.#ctx.stats;
    const fua = (req.flags & NBD_CMD_FLAG_FUA) !== 0;
    switch (req.type) {
      case NBD_CMD_READ:
        stats.reads++;
        stats.bytesRead += req.length;
        return this.#read(req.offset, req.length);
      case NBD_CMD_WRITE:
        stats.writes++;
        stats.bytesWritten += req.length;
        return this.#write(req.offset, payload ?? Buffer.alloc(0), fua).then(() => undefined);
      case NBD_CMD_FLUSH:
        stats.flushes++;
        return this.#ctx.dev.flush().then(() => undefined);
      case NBD_CMD_TRIM:
        stats.trims++;
        return this.#trim(req.offset, req.length, fua).then(() => undefined);
      case NBD_CMD_WRITE_ZEROES:
        stats.writeZeroes++;
        return this.#writeZeroes(req.offset, req.length, (req.flags & NBD_CMD_FLAG_NO_HOLE) === 0, fua).then(() => undefined);
      case NBD_CMD_CACHE:
        return Promise.resolve(undefined);
      default:
        return Promise.reject(new RequestError(NBD_EINVAL, `unsupported command ${req.type}`));
    }
  }

  async #read(offset: number, length: number): Promise<Buffer> {
    if (length === 0) return Buffer.alloc(0);
    const bs = this.#ctx.dev.blockSize;
    const b0 = Math.floor(offset / bs);
    const b1 = Math.ceil((offset + length) / bs);
    const data = await this.#ctx.dev.read(b0, b1 - b0);
    if (offset % bs === 0 && length % bs === 0) return data;
    this.#ctx.stats.unalignedReads++;
    const skip = offset - b0 * bs;
    return data.subarray(skip, skip + length);
  }

  #write(offset: number, payload: Buffer, fua: boolean): Promise<void> {
    const length = payload.length;
    if (length === 0) return Promise.resolve();
    const dev = this.#ctx.dev;
    const bs = dev.blockSize;
    const end = offset + length;
    const b0 = Math.floor(offset / bs);
    const b1 = Math.ceil(end / bs);
    const opts = fua ? { fua: true } : {};
    if (offset % bs === 0 && end % bs === 0) {
      return this.#ctx.locks.run(b0, b1, false, () => dev.write(b0, payload, opts));
    }
    this.#ctx.stats.readModifyWrites++;
    return this.#ctx.locks.run(b0, b1, true, async () => {
      const buf = Buffer.allocUnsafe((b1 - b0) * bs);
      const edges = edgeBlocks(offset, end, bs);
      const blocks = await settleAll(edges.map((b) => dev.read(b, 1)));
      edges.forEach((b, i) => blocks[i]!.copy(buf, (b - b0) * bs, 0, bs));
      payload.copy(buf, offset - b0 * bs);
      await dev.write(b0, buf, opts);
    });
  }

  async #trim(offset: number, length: number, fua: boolean): Promise<void> {
    // A trim is a hint: only the whole blocks inside the range are deallocated.
    const bs = this.#ctx.dev.blockSize;
    const f0 = Math.ceil(offset / bs);
    const f1 = Math.floor((offset + length) / bs);
    if (f1 <= f0) return;
    const dev = this.#ctx.dev;
    await this.#ctx.locks.run(f0, f1, false, () => dev.deallocate(f0, f1 - f0));
    if (fua) await dev.flush();
  }

  async #writeZeroes(offset: number, length: number, mayDeallocate: boolean, fua: boolean): Promise<void> {
    if (length === 0) return;
    const dev = this.#ctx.dev;
    const bs = dev.blockSize;
    const end = offset + length;
    const b0 = Math.floor(offset / bs);
    const b1 = Math.ceil(end / bs);
    const f0 = Math.ceil(offset / bs);
    const f1 = Math.floor(end / bs);
    const opts = { deallocate: mayDeallocate };
    if (offset % bs === 0 && end % bs === 0) {
      await this.#ctx.locks.run(b0, b1, false, () => dev.writeZeroes(b0, b1 - b0, opts));
    } else {
      this.#ctx.stats.readModifyWrites++;
      await this.#ctx.locks.run(b0, b1, true, async () => {
        const parts: Promise<void>[] = edgeBlocks(offset, end, bs).map(async (b) => {
          const block = await dev.read(b, 1);
          const from = Math.max(offset, b * bs) - b * bs;
          const to = Math.min(end, (b + 1) * bs) - b * bs;
          const copy = Buffer.from(block.subarray(0, bs));
          copy.fill(0, from, to);
          await dev.write(b, copy);
        });
        if (f1 > f0) parts.push(dev.writeZeroes(f0, f1 - f0, opts));
        await settleAll(parts);
      });
    }
    if (fua) await dev.flush();
  }
}

/**
 * Like Promise.all, but settles only when every promise has: a lock must not
 * be released while part of its operation is still running on the device.
 */
async function settleAll<T>(ps: Promise<T>[]): Promise<T[]> {
  const r = await Promise.allSettled(ps);
  const failed = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
  return r.map((x) => (x as PromiseFulfilledResult<T>).value);
}

/** The partially covered blocks of byte range [offset, end): zero, one or two block numbers. */
export function edgeBlocks(offset: number, end: number, bs: number): number[] {
  const out: number[] = [];
  if (offset % bs !== 0) out.push(Math.floor(offset / bs));
  if (end % bs !== 0) {
    const last = Math.floor(end / bs);
    if (out[0] !== last) out.push(last);
  }
  return out;
}
