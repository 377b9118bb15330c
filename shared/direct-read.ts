/**
 * Socket reads that land where the data belongs.
 *
 * Node's default read path mallocs a 64 KiB buffer per read, wraps it in a new
 * ArrayBuffer (external memory the collector has to account for), pushes it
 * through the Readable stream machinery and emits 'data'; the framer then
 * copies a data PDU's payload from it into the payload's destination. With
 * the socket's `onread` option Node reads into a buffer we choose instead, so:
 *
 * - while a large data PDU's payload is arriving (H2CData on the target,
 *   C2HData on the host), the kernel copies it straight into its destination:
 *   one copy instead of two, and one read for the whole rest of it instead of
 *   one per 64 KiB;
 * - everything else is read into an arena: 64 KiB ArrayBuffers handed out in
 *   pieces, each piece used once. Chunks are views of the arena that the
 *   framer may keep (zero-copy PDUs), so arena memory is never reused: a full
 *   arena is left to the collector, which frees it once nothing holds a view.
 *   Small reads (capsules, responses) share one ArrayBuffer instead of costing
 *   one each.
 */
import net from 'node:net';

/** Payload rest worth a socket read of its own, straight into place. */
export const DIRECT_READ_MIN = 8 * 1024;
/**
 * Largest read straight into a payload, as large as Node's own reads. Reading
 * the whole rest of a 128 KiB H2CData at once made the target cheaper but the
 * host dearer (its CPU per 128 KiB write 25 -> 34 us, its sends fewer and
 * larger) and the write rate fell by a sixth; at 64 KiB both sides gain.
 */
export const DIRECT_READ_MAX = 64 * 1024;

/** What reads into a connection go to. */
export interface DirectReadSink {
  /** The rest of a payload being placed, when worth a read of its own (see PduFramer.directReadTarget). */
  directTarget(): Buffer | null;
  /** n bytes were read into the buffer directTarget() returned. */
  directData(n: number): void;
  /** A chunk read into the arena (a view the sink may keep). */
  chunk(chunk: Buffer): void;
}

const ARENA_BYTES = 64 * 1024;
/** Below this much room left, the arena is replaced: a read should be able to bring a few PDUs. */
const ARENA_MIN_ROOM = 16 * 1024;

class ReadArena {
  #buf = Buffer.allocUnsafeSlow(ARENA_BYTES);
  #pos = 0;

  /** Where the next read may go. */
  room(): Buffer {
    if (this.#buf.length - this.#pos < ARENA_MIN_ROOM) {
      this.#buf = Buffer.allocUnsafeSlow(ARENA_BYTES);
      this.#pos = 0;
    }
    return this.#buf.subarray(this.#pos);
  }

  /** n bytes were read into room(): they are the caller's now. */
  take(room: Buffer, n: number): Buffer {
    // Kept 8-byte aligned so the next chunk's header reads are aligned.
    this.#pos += (n + 7) & ~7;
    return room.subarray(0, n);
  }
}

/** The socket `onread` option that feeds `sink`. */
export function directReadOption(sink: DirectReadSink): net.OnReadOpts {
  const arena = new ReadArena();
  let direct: Buffer | null = null;
  let room: Buffer | null = null;
  const next = (): Buffer => {
    direct = sink.directTarget();
    if (direct) return direct;
    room = arena.room();
    return room;
  };
  return {
    buffer: next,
    callback: (n: number, buf: Uint8Array): boolean => {
      if (buf === direct) sink.directData(n);
      else if (buf === room) sink.chunk(arena.take(room, n));
      return true;
    },
  };
}

/** A sink for a socket that exists before its receiver: chunks wait until bind(). */
export class DeferredReadSink implements DirectReadSink {
  #sink: DirectReadSink | null = null;
  #early: Buffer[] = [];

  bind(sink: DirectReadSink): void {
    this.#sink = sink;
    const early = this.#early;
    this.#early = [];
    for (const c of early) sink.chunk(c);
  }

  directTarget(): Buffer | null {
    return this.#sink?.directTarget() ?? null;
  }

  directData(n: number): void {
    this.#sink!.directData(n); // only after directTarget() gave a buffer, so bound
  }

  chunk(chunk: Buffer): void {
    if (this.#sink) this.#sink.chunk(chunk);
    else this.#early.push(chunk);
  }
}

interface HandleOwner {
  _handle: object | null;
}

/**
 * An accepted socket again, reading with `onread` (net.Server has no such
 * option): a new Socket on the accepted one's handle. The server keeps
 * counting the original (maxConnections, close() waiting for connections),
 * which is destroyed, without a handle of its own, when the new one closes.
 * The server must accept paused (pauseOnConnect) so no read happens before.
 * Returns null if this Node does not expose the handle (the caller then keeps
 * the original and its 'data' events).
 */
export function adoptWithDirectRead(accepted: net.Socket, onread: net.OnReadOpts): net.Socket | null {
  const owner = accepted as unknown as HandleOwner;
  const handle = owner._handle;
  if (!handle || typeof (handle as { useUserBuffer?: unknown }).useUserBuffer !== 'function') return null;
  owner._handle = null;
  const socket = new net.Socket({ handle, onread, readable: true, writable: true } as net.SocketConstructorOpts);
  socket.once('close', () => accepted.destroy());
  return socket;
}
