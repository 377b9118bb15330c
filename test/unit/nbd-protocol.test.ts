/**
 * NBD: the codec against hand-built byte vectors, then the server over a real
 * 127.0.0.1 socket with an in-memory fake device behind it (handshake,
 * transmission with simple and structured replies, protocol violations,
 * unaligned requests by read-modify-write under concurrency).
 */
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
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
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOSPC,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_NONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_MAGIC,
  NBD_REP_SERVER,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  decodeClientFlags,
  decodeInfoRequest,
  decodeOptionHeader,
  decodeOptionReplyHeader,
  decodeRequestHeader,
  decodeSimpleReply,
  decodeStructuredHeader,
  encodeErrorChunk,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoRequest,
  encodeInfoString,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOption,
  encodeOptionReply,
  encodeRepServer,
  encodeRequestHeader,
  encodeSimpleReply,
  isErrorReply,
  truncateUtf8,
} from '../../host/nbd-protocol.ts';
import { RangeLocks, edgeBlocks, startNbdServer, type NbdBlockDevice, type NbdServer, type NbdServerOptions } from '../../host/nbd.ts';
import { waitFor } from '../helpers/wait.ts';
import { Rng } from '../helpers/rng.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// ---------------------------------------------------------------- codec vectors

describe('NBD codec: hand-built byte vectors', () => {
  it('server greeting: NBDMAGIC, IHAVEOPT, handshake flags', () => {
    expect(encodeGreeting(3).toString('hex')).toBe('4e42444d41474943' + '49484156454f5054' + '0003');
    expect(encodeGreeting(3).subarray(0, 8).toString('latin1')).toBe('NBDMAGIC');
    expect(decodeClientFlags(hex('00000003'))).toBe(3);
  });

  it('option request and option reply headers', () => {
    const opt = encodeOption(NBD_OPT_LIST);
    expect(opt.toString('hex')).toBe('49484156454f5054' + '00000003' + '00000000');
    expect(decodeOptionHeader(hex('49484156454f5054 00000007 0000000c'))).toEqual({ magic: 0x49484156454f5054n, option: 7, length: 12 });
    expect(encodeOptionReply(NBD_OPT_GO, NBD_REP_ACK).toString('hex')).toBe('0003e889045565a9' + '00000007' + '00000001' + '00000000');
    const err = encodeOptionReply(42, NBD_REP_ERR_UNSUP, Buffer.from('no'));
    expect(err.toString('hex')).toBe('0003e889045565a9' + '0000002a' + '80000001' + '00000002' + '6e6f');
    expect(decodeOptionReplyHeader(err)).toEqual({ magic: NBD_REP_MAGIC, option: 42, type: 0x80000001, length: 2 });
    expect(isErrorReply(NBD_REP_ERR_UNSUP)).toBe(true);
    expect(isErrorReply(NBD_REP_INFO)).toBe(false);
  });

  it('NBD_REP_SERVER, NBD_INFO_EXPORT, NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME', () => {
    expect(encodeRepServer('nvmets').toString('hex')).toBe('00000006' + Buffer.from('nvmets').toString('hex'));
    expect(encodeInfoExport(64 * 1024 * 1024, 0x1ed).toString('hex')).toBe('0000' + '0000000004000000' + '01ed');
    expect(encodeInfoBlockSize(512, 4096, 32 * 1024 * 1024).toString('hex')).toBe('0003' + '00000200' + '00001000' + '02000000');
    expect(encodeInfoString(NBD_INFO_NAME, 'ab').toString('hex')).toBe('0001' + '6162');
  });

  it('NBD_OPT_EXPORT_NAME reply: 124 zeroes unless NO_ZEROES', () => {
    const withZeroes = encodeExportNameReply(1 << 20, 0x0003, false);
    expect(withZeroes.length).toBe(8 + 2 + 124);
    expect(withZeroes.subarray(0, 10).toString('hex')).toBe('0000000000100000' + '0003');
    expect(withZeroes.subarray(10).every((b) => b === 0)).toBe(true);
    expect(encodeExportNameReply(1 << 20, 0x0003, true).toString('hex')).toBe('0000000000100000' + '0003');
  });

  it('NBD_OPT_INFO / NBD_OPT_GO data: decodes, and names each malformation', () => {
    const data = hex('00000006' + Buffer.from('nvmets').toString('hex') + '0002' + '0003' + '0001');
    expect(decodeInfoRequest(data)).toEqual({ name: 'nvmets', requests: [NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME] });
    expect(encodeInfoRequest('nvmets', [3, 1]).equals(data)).toBe(true);
    expect(decodeInfoRequest(hex('00000000 0000'))).toEqual({ name: '', requests: [] });
    expect(decodeInfoRequest(hex('0000'))).toMatch(/shorter than 6/);
    expect(decodeInfoRequest(hex('00000010 0000'))).toMatch(/exceeds the option data/);
    expect(decodeInfoRequest(hex('00000000 0002 0003'))).toMatch(/need 10 bytes/);
    expect(decodeInfoRequest(hex('00000000 0000 ff'))).toMatch(/need 6 bytes/);
    expect(decodeInfoRequest(hex('00000001 00 0000'))).toMatch(/NUL/);
  });

  it('request header', () => {
    const b = hex('25609513' + '0001' + '0001' + '0102030405060708' + '0000000000001000' + '00000200');
    expect(decodeRequestHeader(b)).toEqual({
      magic: 0x25609513,
      flags: NBD_CMD_FLAG_FUA,
      type: NBD_CMD_WRITE,
      handle: 0x0102030405060708n,
      offset: 4096n,
      length: 512,
    });
    expect(encodeRequestHeader({ flags: 1, type: 1, handle: 0x0102030405060708n, offset: 4096, length: 512 }).equals(b)).toBe(true);
  });

  it('simple reply and structured reply chunks', () => {
    const h = 0xdeadbeefcafef00dn;
    expect(encodeSimpleReply(NBD_EINVAL, h).toString('hex')).toBe('67446698' + '00000016' + 'deadbeefcafef00d');
    expect(decodeSimpleReply(hex('67446698 00000005 0000000000000007'))).toEqual({ magic: NBD_SIMPLE_REPLY_MAGIC, error: NBD_EIO, handle: 7n });
    expect(encodeOffsetDataHeader(NBD_REPLY_FLAG_DONE, h, 4096n, 512).toString('hex')).toBe(
      '668e33ef' + '0001' + '0001' + 'deadbeefcafef00d' + '00000208' + '0000000000001000',
    );
    expect(encodeErrorChunk(NBD_REPLY_FLAG_DONE, h, NBD_EIO, 'bad').toString('hex')).toBe(
      '668e33ef' + '0001' + '8001' + 'deadbeefcafef00d' + '00000009' + '00000005' + '0003' + '626164',
    );
    expect(encodeNoneChunk(h).toString('hex')).toBe('668e33ef' + '0001' + '0000' + 'deadbeefcafef00d' + '00000000');
    expect(decodeStructuredHeader(encodeNoneChunk(1n))).toEqual({ magic: NBD_STRUCTURED_REPLY_MAGIC, flags: 1, type: 0, handle: 1n, length: 0 });
  });

  it('strings are cut on a character boundary', () => {
    expect(truncateUtf8('abc', 2)).toBe('ab');
    expect(truncateUtf8('aé', 2)).toBe('a');
    expect(truncateUtf8('aé', 3)).toBe('aé');
  });

  it('edge blocks of a byte range', () => {
    expect(edgeBlocks(0, 4096, 512)).toEqual([]);
    expect(edgeBlocks(100, 1100, 512)).toEqual([0, 2]);
    expect(edgeBlocks(100, 200, 512)).toEqual([0]);
    expect(edgeBlocks(512, 700, 512)).toEqual([1]);
    expect(edgeBlocks(100, 1024, 512)).toEqual([0]);
  });
});

describe('RangeLocks', () => {
  it('grants overlapping requests in arrival order; shared holders overlap, exclusive ones do not', async () => {
    const locks = new RangeLocks();
    const events: string[] = [];
    const gates = new Map<string, () => void>();
    const job = (name: string, start: number, end: number, exclusive: boolean) =>
      locks.run(start, end, exclusive, () => {
        events.push(`start ${name}`);
        return new Promise<void>((resolve) => gates.set(name, () => (events.push(`end ${name}`), resolve())));
      });
    const a = job('a', 0, 4, false);
    const b = job('b', 2, 6, false); // shared with a: starts at once
    const c = job('c', 3, 4, true); // exclusive: waits for a and b
    const d = job('d', 5, 8, false); // overlaps c? no; overlaps b (granted, shared): starts
    const e = job('e', 3, 5, false); // overlaps waiting c: waits behind it
    expect(events).toEqual(['start a', 'start b', 'start d']);
    gates.get('a')!();
    await a;
    expect(events).toEqual(['start a', 'start b', 'start d', 'end a']);
    gates.get('b')!();
    await b;
    expect(events.slice(-2)).toEqual(['end b', 'start c']);
    gates.get('c')!();
    await c;
    expect(events.slice(-2)).toEqual(['end c', 'start e']);
    gates.get('d')!();
    gates.get('e')!();
    await Promise.all([d, e]);
    expect(locks.size).toBe(0);
  });

  it('a failing holder releases its lock and rejects', async () => {
    const locks = new RangeLocks();
    await expect(locks.run(0, 1, true, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(
      locks.run(0, 1, true, () => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(await locks.run(0, 1, true, async () => 7)).toBe(7);
    expect(locks.size).toBe(0);
  });
});

// ---------------------------------------------------------------- a fake device and a raw client

/**
 * In-memory device with the ordering the multipath head gives: a write waits
 * for every earlier unfinished overlapping write, each I/O takes a random
 * time, reads see whatever has landed when they execute.
 */
class FakeDevice implements NbdBlockDevice {
  readonly name = 'fake0n1';
  readonly data: Buffer;
  readonly calls: { op: string; slba: number; nlb: number; fua?: boolean; deallocate?: boolean }[] = [];
  failNext: string | null = null;
  /** While set, every read and write waits for it. */
  hold: Promise<void> | null = null;
  #writes: { slba: number; nlb: number; done: Promise<void> }[] = [];
  #rng: () => number;

  constructor(
    readonly blockSize = 512,
    readonly nblocks = 2048,
    readonly maxDelayMs = 0,
    seed = 1,
  ) {
    this.data = Buffer.alloc(blockSize * nblocks);
    const rng = new Rng(seed);
    this.#rng = () => rng.float();
  }

  async #delay(): Promise<void> {
    if (this.hold !== null) await this.hold;
    if (this.maxDelayMs === 0) return;
    return new Promise((r) => setTimeout(r, Math.floor(this.#rng() * this.maxDelayMs)));
  }

  #check(op: string, slba: number, nlb: number): void {
    if (this.failNext === op) {
      this.failNext = null;
      throw Object.assign(new Error(`${op} failed (injected)`), { code: 'EIO' });
    }
    if (!Number.isSafeInteger(slba) || !Number.isSafeInteger(nlb) || slba < 0 || nlb < 1 || slba + nlb > this.nblocks)
      throw new Error(`bad range ${slba}+${nlb}`);
  }

  #ordered(slba: number, nlb: number, apply: () => void): Promise<void> {
    const earlier = this.#writes.filter((w) => w.slba < slba + nlb && slba < w.slba + w.nlb).map((w) => w.done);
    const entry = { slba, nlb, done: Promise.resolve() };
    entry.done = Promise.all(earlier)
      .then(() => this.#delay())
      .then(apply)
      .finally(() => {
        this.#writes = this.#writes.filter((w) => w !== entry);
      });
    this.#writes.push(entry);
    return entry.done;
  }

  async read(slba: number, nlb: number): Promise<Buffer> {
    this.calls.push({ op: 'read', slba, nlb });
    this.#check('read', slba, nlb);
    await this.#delay();
    return Buffer.from(this.data.subarray(slba * this.blockSize, (slba + nlb) * this.blockSize));
  }

  write(slba: number, data: Buffer, opts: { fua?: boolean } = {}): Promise<void> {
    this.calls.push({ op: 'write', slba, nlb: data.length / this.blockSize, fua: opts.fua === true });
    try {
      if (data.length % this.blockSize !== 0) throw new Error(`unaligned write of ${data.length} bytes`);
      this.#check('write', slba, data.length / this.blockSize);
    } catch (e) {
      return Promise.reject(e);
    }
    const copy = Buffer.from(data);
    return this.#ordered(slba, data.length / this.blockSize, () => copy.copy(this.data, slba * this.blockSize));
  }

  async flush(): Promise<void> {
    this.calls.push({ op: 'flush', slba: 0, nlb: 0 });
    this.#check('flush', 0, 1);
    await this.#delay();
  }

  writeZeroes(slba: number, nlb: number, opts: { deallocate?: boolean } = {}): Promise<void> {
    this.calls.push({ op: 'writeZeroes', slba, nlb, deallocate: opts.deallocate === true });
    try {
      this.#check('writeZeroes', slba, nlb);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#ordered(slba, nlb, () => this.data.fill(0, slba * this.blockSize, (slba + nlb) * this.blockSize));
  }

  deallocate(slba: number, nlb: number): Promise<void> {
    this.calls.push({ op: 'deallocate', slba, nlb });
    try {
      this.#check('deallocate', slba, nlb);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#ordered(slba, nlb, () => this.data.fill(0, slba * this.blockSize, (slba + nlb) * this.blockSize));
  }
}

/** A byte-level NBD client over a real socket: every read is bounded by a timeout. */
class RawClient {
  readonly socket: net.Socket;
  #buf = Buffer.alloc(0);
  #waiter: (() => void) | null = null;
  #closed = false;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#waiter?.();
    });
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.#closed = true;
        this.#waiter?.();
        resolve();
      }),
    );
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  write(...bufs: Buffer[]): void {
    for (const b of bufs) this.socket.write(b);
  }

  async read(n: number, timeoutMs = 3000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.#buf.length < n) {
      if (this.#closed) throw new Error(`connection closed with ${this.#buf.length}/${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.#buf.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#waiter = null;
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Resolves true when the server closed the connection within the time. */
  async closedWithin(ms: number): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  }

  async optionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const h = decodeOptionReplyHeader(await this.read(20));
    expect(h.magic).toBe(NBD_REP_MAGIC);
    return { option: h.option, type: h.type, data: await this.read(h.length) };
  }

  /** Greeting + client flags. */
  async hello(clientFlags = 3): Promise<number> {
    const g = await this.read(18);
    expect(g.subarray(0, 16).toString('hex')).toBe('4e42444d41474943' + '49484156454f5054');
    this.write(hex(clientFlags.toString(16).padStart(8, '0')));
    return g.readUInt16BE(16);
  }

  /** Full handshake through NBD_OPT_GO; returns the transmission flags. */
  async go(opts: { structured?: boolean; name?: string } = {}): Promise<{ size: bigint; flags: number }> {
    await this.hello();
    if (opts.structured) {
      this.write(encodeOption(NBD_OPT_STRUCTURED_REPLY));
      expect((await this.optionReply()).type).toBe(NBD_REP_ACK);
    }
    this.write(encodeOption(NBD_OPT_GO, encodeInfoRequest(opts.name ?? 'nvmets', [NBD_INFO_BLOCK_SIZE])));
    let size = -1n;
    let flags = -1;
    for (let i = 0; i < 10; i++) {
      const r = await this.optionReply();
      if (r.type === NBD_REP_ACK) break;
      expect(r.type).toBe(NBD_REP_INFO);
      if (r.data.readUInt16BE(0) === NBD_INFO_EXPORT) {
        size = r.data.readBigUInt64BE(2);
        flags = r.data.readUInt16BE(10);
      }
    }
    return { size, flags };
  }

  request(type: number, handle: bigint, offset: number, length: number, flags = 0, payload?: Buffer): void {
    this.write(encodeRequestHeader({ type, handle, offset, length, flags }), ...(payload ? [payload] : []));
  }

  /** One simple reply; readLength bytes of data follow a successful READ. */
  async simpleReply(readLength = 0): Promise<{ error: number; handle: bigint; data: Buffer }> {
    const r = decodeSimpleReply(await this.read(16));
    expect(r.magic).toBe(NBD_SIMPLE_REPLY_MAGIC);
    const data = r.error === 0 && readLength > 0 ? await this.read(readLength) : Buffer.alloc(0);
    return { error: r.error, handle: r.handle, data };
  }
}

let server: NbdServer | null = null;
const clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy();
  await server?.close();
  server = null;
});

async function serve(dev: NbdBlockDevice, opts: NbdServerOptions = {}): Promise<NbdServer> {
  server = await startNbdServer(dev, { port: 0, ...opts });
  return server;
}
async function client(port = server!.port): Promise<RawClient> {
  const c = await RawClient.connect(port);
  clients.push(c);
  return c;
}

const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + 1) & 0xff));

// ---------------------------------------------------------------- handshake

describe('NBD server: handshake', () => {
  it('greets with FIXED_NEWSTYLE|NO_ZEROES; LIST, unknown options, STARTTLS, meta contexts', async () => {
    const s = await serve(new FakeDevice());
    const c = await client(s.port);
    expect(await c.hello()).toBe(3);
    c.write(encodeOption(NBD_OPT_LIST));
    const server1 = await c.optionReply();
    expect(server1).toEqual({ option: NBD_OPT_LIST, type: NBD_REP_SERVER, data: encodeRepServer('nvmets') });
    expect((await c.optionReply()).type).toBe(NBD_REP_ACK);
    c.write(encodeOption(NBD_OPT_LIST, Buffer.from('x')));
    expect((await c.optionReply()).type).toBe(NBD_REP_ERR_INVALID);
    c.write(encodeOption(42, Buffer.from('whatever')));
    const unsup = await c.optionReply();
    expect(unsup.option).toBe(42);
    expect(unsup.type).toBe(NBD_REP_ERR_UNSUP);
    expect(unsup.data.toString()).toMatch(/not supported/);
    c.write(encodeOption(NBD_OPT_STARTTLS));
    expect((await c.optionReply()).type).toBe(NBD_REP_ERR_UNSUP);
    c.write(encodeOption(NBD_OPT_SET_META_CONTEXT, hex('00000006' + Buffer.from('nvmets').toString('hex') + '00000000')));
    expect((await c.optionReply()).type).toBe(NBD_REP_ERR_UNSUP);
    c.write(encodeOption(NBD_OPT_ABORT));
    expect(await c.optionReply()).toEqual({ option: NBD_OPT_ABORT, type: NBD_REP_ACK, data: Buffer.alloc(0) });
    expect(await c.closedWithin(2000)).toBe(true);
  });

  it('NBD_OPT_INFO: export size and flags, block sizes, name and description; unknown export and bad data', async () => {
    const dev = new FakeDevice(512, 2048);
    const s = await serve(dev, { description: 'test export' });
    const c = await client(s.port);
    await c.hello();
    c.write(encodeOption(NBD_OPT_INFO, encodeInfoRequest('nvmets', [NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE])));
    const infos = new Map<number, Buffer>();
    for (let i = 0; i < 10; i++) {
      const r = await c.optionReply();
      expect(r.option).toBe(NBD_OPT_INFO);
      if (r.type === NBD_REP_ACK) break;
      expect(r.type).toBe(NBD_REP_INFO);
      infos.set(r.data.readUInt16BE(0), r.data);
    }
    const flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_CAN_MULTI_CONN;
    expect(infos.get(NBD_INFO_EXPORT)).toEqual(encodeInfoExport(2048 * 512, flags));
    expect(infos.get(NBD_INFO_BLOCK_SIZE)).toEqual(encodeInfoBlockSize(512, 4096, 32 * 1024 * 1024));
    expect(infos.get(NBD_INFO_NAME)).toEqual(encodeInfoString(NBD_INFO_NAME, 'nvmets'));
    expect(infos.get(NBD_INFO_DESCRIPTION)).toEqual(encodeInfoString(NBD_INFO_DESCRIPTION, 'test export'));

    c.write(encodeOption(NBD_OPT_INFO, encodeInfoRequest('other')));
    const unknown = await c.optionReply();
    expect(unknown.type).toBe(NBD_REP_ERR_UNKNOWN);
    expect(unknown.data.toString()).toMatch(/no export named "other"/);
    c.write(encodeOption(NBD_OPT_GO, hex('00000009 0000')));
    expect((await c.optionReply()).type).toBe(NBD_REP_ERR_INVALID);
    // Still negotiating: GO with structured replies adds SEND_DF.
    c.write(encodeOption(NBD_OPT_STRUCTURED_REPLY));
    expect((await c.optionReply()).type).toBe(NBD_REP_ACK);
    c.write(encodeOption(NBD_OPT_GO, encodeInfoRequest('')));
    const info = await c.optionReply();
    expect(info.data).toEqual(encodeInfoExport(2048 * 512, flags | NBD_FLAG_SEND_DF));
  });

  it('NBD_OPT_EXPORT_NAME: size and flags, with or without the 124 zeroes', async () => {
    const s = await serve(new FakeDevice(4096, 256), { exportName: 'disk', readOnly: true });
    for (const clientFlags of [1, 3]) {
      const c = await client(s.port);
      await c.hello(clientFlags);
      c.write(encodeOption(NBD_OPT_EXPORT_NAME, Buffer.from('disk')));
      const r = await c.read(10);
      expect(r.readBigUInt64BE(0)).toBe(BigInt(256 * 4096));
      expect(r.readUInt16BE(8) & NBD_FLAG_READ_ONLY).toBe(NBD_FLAG_READ_ONLY);
      if (clientFlags === 1) expect((await c.read(124)).every((b) => b === 0)).toBe(true);
      // In transmission: a write on a read-only export is refused with EPERM.
      c.request(NBD_CMD_WRITE, 5n, 0, 4096, 0, Buffer.alloc(4096, 1));
      expect(await c.simpleReply()).toMatchObject({ error: NBD_EPERM, handle: 5n });
      c.request(NBD_CMD_READ, 6n, 0, 4096);
      expect((await c.simpleReply(4096)).data).toEqual(Buffer.alloc(4096));
    }
  });

  it('protocol violations close the connection and leave the server serving', async () => {
    const s = await serve(new FakeDevice());
    // Unknown export through EXPORT_NAME: cannot be answered, the session ends.
    const a = await client(s.port);
    await a.hello();
    a.write(encodeOption(NBD_OPT_EXPORT_NAME, Buffer.from('nope')));
    expect(await a.closedWithin(2000)).toBe(true);
    // Unknown client flags.
    const b = await client(s.port);
    await b.hello(0x10);
    expect(await b.closedWithin(2000)).toBe(true);
    // Bad option magic.
    const c = await client(s.port);
    await c.hello();
    c.write(hex('0000000000000000 00000003 00000000'));
    expect(await c.closedWithin(2000)).toBe(true);
    // A non-fixed-newstyle client may only send EXPORT_NAME.
    const d = await client(s.port);
    await d.hello(0);
    d.write(encodeOption(NBD_OPT_LIST));
    expect(await d.closedWithin(2000)).toBe(true);
    // Oversize option data.
    const e = await client(s.port);
    await e.hello();
    e.write(hex('49484156454f5054 00000007 7fffffff'));
    expect(await e.closedWithin(2000)).toBe(true);
    expect(s.stats().protocolErrors).toBe(5);
    // And the server still serves.
    const ok = await client(s.port);
    const { size } = await ok.go();
    expect(size).toBe(BigInt(2048 * 512));
  });

  it('a client that never finishes the handshake is dropped', async () => {
    const s = await serve(new FakeDevice(), { handshakeTimeoutMs: 200 });
    const c = await client(s.port);
    await c.hello();
    expect(await c.closedWithin(2000)).toBe(true);
  });
});

// ---------------------------------------------------------------- transmission

describe('NBD server: transmission', () => {
  it('write, read back, flush, FUA, trim, write-zeroes with and without NO_HOLE, cache', async () => {
    const dev = new FakeDevice();
    const s = await serve(dev);
    const c = await client(s.port);
    await c.go();
    const data = pattern(8192, 1);
    c.request(NBD_CMD_WRITE, 1n, 4096, 8192, NBD_CMD_FLAG_FUA, data);
    expect(await c.simpleReply()).toEqual({ error: 0, handle: 1n, data: Buffer.alloc(0) });
    expect(dev.calls.at(-1)).toEqual({ op: 'write', slba: 8, nlb: 16, fua: true });
    c.request(NBD_CMD_READ, 2n, 4096, 8192);
    expect(await c.simpleReply(8192)).toEqual({ error: 0, handle: 2n, data });
    c.request(NBD_CMD_FLUSH, 3n, 0, 0);
    expect((await c.simpleReply()).error).toBe(0);
    expect(dev.calls.at(-1)!.op).toBe('flush');
    c.request(NBD_CMD_TRIM, 4n, 4096, 1024);
    expect((await c.simpleReply()).error).toBe(0);
    expect(dev.calls.at(-1)).toEqual({ op: 'deallocate', slba: 8, nlb: 2 });
    c.request(NBD_CMD_WRITE_ZEROES, 5n, 5120, 1024);
    expect((await c.simpleReply()).error).toBe(0);
    expect(dev.calls.at(-1)).toEqual({ op: 'writeZeroes', slba: 10, nlb: 2, deallocate: true });
    c.request(NBD_CMD_WRITE_ZEROES, 6n, 6144, 1024, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA);
    expect((await c.simpleReply()).error).toBe(0);
    expect(dev.calls.slice(-2)).toEqual([
      { op: 'writeZeroes', slba: 12, nlb: 2, deallocate: false },
      { op: 'flush', slba: 0, nlb: 0 },
    ]);
    c.request(NBD_CMD_READ, 7n, 4096, 8192);
    const back = (await c.simpleReply(8192)).data;
    expect(back.subarray(0, 3072)).toEqual(Buffer.alloc(3072));
    expect(back.subarray(3072)).toEqual(data.subarray(3072));
    c.request(NBD_CMD_CACHE, 8n, 0, 4096);
    expect((await c.simpleReply()).error).toBe(0);
    // Zero-length requests succeed without touching the device.
    const before = dev.calls.length;
    c.request(NBD_CMD_READ, 9n, 0, 0);
    expect(await c.simpleReply()).toEqual({ error: 0, handle: 9n, data: Buffer.alloc(0) });
    c.request(NBD_CMD_WRITE, 10n, 0, 0);
    expect((await c.simpleReply()).error).toBe(0);
    expect(dev.calls.length).toBe(before);
    c.request(NBD_CMD_DISC, 11n, 0, 0);
    expect(await c.closedWithin(2000)).toBe(true);
    expect(s.stats()).toMatchObject({ writes: 2, reads: 3, flushes: 1, trims: 1, writeZeroes: 2, errors: 0 });
  });

  it('errors: out of range (EINVAL / ENOSPC), bad flags, unknown command, device failure (EIO); the connection goes on', async () => {
    const dev = new FakeDevice(512, 64);
    const s = await serve(dev);
    const c = await client(s.port);
    const { size } = await c.go();
    expect(size).toBe(32768n);
    c.request(NBD_CMD_READ, 1n, 32768 - 512, 1024);
    expect(await c.simpleReply()).toMatchObject({ error: NBD_EINVAL, handle: 1n });
    c.request(NBD_CMD_WRITE, 2n, 32768, 512, 0, Buffer.alloc(512, 9)); // payload is consumed
    expect(await c.simpleReply()).toMatchObject({ error: NBD_ENOSPC, handle: 2n });
    c.write(encodeRequestHeader({ type: NBD_CMD_READ, handle: 3n, offset: 0xffffffffffffff00n, length: 512 }));
    expect(await c.simpleReply()).toMatchObject({ error: NBD_EINVAL, handle: 3n });
    c.request(NBD_CMD_WRITE_ZEROES, 4n, 32000, 1024);
    expect((await c.simpleReply()).error).toBe(NBD_ENOSPC);
    c.request(NBD_CMD_WRITE, 5n, 0, 512, NBD_CMD_FLAG_NO_HOLE, Buffer.alloc(512));
    expect((await c.simpleReply()).error).toBe(NBD_EINVAL);
    c.request(NBD_CMD_READ, 6n, 0, 512, NBD_CMD_FLAG_DF); // DF without structured replies
    expect((await c.simpleReply()).error).toBe(NBD_EINVAL);
    c.request(77, 7n, 0, 0);
    expect((await c.simpleReply()).error).toBe(NBD_EINVAL);
    dev.failNext = 'read';
    c.request(NBD_CMD_READ, 8n, 0, 512);
    expect(await c.simpleReply(512)).toMatchObject({ error: NBD_EIO, handle: 8n });
    dev.failNext = 'write';
    c.request(NBD_CMD_WRITE, 9n, 0, 512, 0, Buffer.alloc(512, 3));
    expect((await c.simpleReply()).error).toBe(NBD_EIO);
    dev.failNext = 'flush';
    c.request(NBD_CMD_FLUSH, 10n, 0, 0);
    expect((await c.simpleReply()).error).toBe(NBD_EIO);
    c.request(NBD_CMD_WRITE, 11n, 0, 512, 0, Buffer.alloc(512, 4));
    expect((await c.simpleReply()).error).toBe(0);
    c.request(NBD_CMD_READ, 12n, 0, 512);
    expect((await c.simpleReply(512)).data).toEqual(Buffer.alloc(512, 4));
    expect(s.stats().errors).toBe(10);
  });

  it('bad request magic or an oversize payload closes the connection', async () => {
    const s = await serve(new FakeDevice());
    const a = await client(s.port);
    await a.go();
    a.write(hex('12345678 0000 0000 0000000000000001 0000000000000000 00000200'));
    expect(await a.closedWithin(2000)).toBe(true);
    const b = await client(s.port);
    await b.go();
    b.request(NBD_CMD_WRITE, 1n, 0, 32 * 1024 * 1024 + 512);
    expect(await b.closedWithin(2000)).toBe(true);
    const c = await client(s.port);
    await c.go();
    c.request(NBD_CMD_READ, 1n, 0, 64 * 1024 * 1024);
    expect(await c.closedWithin(2000)).toBe(true);
    expect(s.stats().protocolErrors).toBe(3);
  });

  it('many requests in flight, replies out of order, each identified by its handle', async () => {
    const dev = new FakeDevice(512, 4096, 8, 42);
    const s = await serve(dev);
    const c = await client(s.port);
    await c.go();
    const n = 64;
    for (let i = 0; i < n; i++) c.request(NBD_CMD_WRITE, BigInt(1000 + i), i * 4096, 4096, 0, pattern(4096, i));
    const handles: bigint[] = [];
    for (let i = 0; i < n; i++) {
      const r = await c.simpleReply();
      expect(r.error).toBe(0);
      handles.push(r.handle);
    }
    expect([...handles].sort((a, b) => Number(a - b))).toEqual(Array.from({ length: n }, (_, i) => BigInt(1000 + i)));
    expect(handles).not.toEqual([...handles].sort((a, b) => Number(a - b))); // some came back out of order
    for (let i = 0; i < n; i++) c.request(NBD_CMD_READ, BigInt(i), i * 4096, 4096);
    const got = new Map<bigint, Buffer>();
    for (let i = 0; i < n; i++) {
      const r = await c.simpleReply(4096);
      got.set(r.handle, r.data);
    }
    for (let i = 0; i < n; i++) expect(got.get(BigInt(i))).toEqual(pattern(4096, i));
  });

  it('DISC: requests in flight are answered before the server closes', async () => {
    const dev = new FakeDevice(512, 2048, 30, 3);
    const s = await serve(dev);
    const c = await client(s.port);
    await c.go();
    for (let i = 0; i < 8; i++) c.request(NBD_CMD_WRITE, BigInt(i), i * 512, 512, 0, Buffer.alloc(512, i));
    c.request(NBD_CMD_DISC, 99n, 0, 0);
    for (let i = 0; i < 8; i++) expect((await c.simpleReply()).error).toBe(0);
    expect(await c.closedWithin(2000)).toBe(true);
  });

  it('DISC then the client shuts down its side at once: the replies still come', async () => {
    const dev = new FakeDevice(512, 2048, 30, 5);
    const s = await serve(dev);
    const c = await client(s.port);
    await c.go();
    for (let i = 0; i < 8; i++) c.request(NBD_CMD_READ, BigInt(i), i * 512, 512);
    c.request(NBD_CMD_DISC, 99n, 0, 0);
    c.socket.end();
    const handles = new Set<bigint>();
    for (let i = 0; i < 8; i++) {
      const r = await c.simpleReply(512);
      expect(r.error).toBe(0);
      handles.add(r.handle);
    }
    expect(handles.size).toBe(8);
    expect(await c.closedWithin(2000)).toBe(true);
  });

  it('a client that closes mid-handshake or mid-request leaves the server serving', async () => {
    const dev = new FakeDevice();
    const s = await serve(dev);
    const a = await client(s.port);
    await a.hello();
    a.write(encodeOption(NBD_OPT_GO).subarray(0, 10));
    a.socket.end();
    expect(await a.closedWithin(2000)).toBe(true);
    const b = await client(s.port);
    await b.go();
    b.request(NBD_CMD_WRITE, 1n, 0, 4096, 0, Buffer.alloc(100)); // payload cut short
    b.socket.destroy();
    await waitFor(() => s.stats().connections === 0, 'connections = 0');
    const c = await client(s.port);
    await c.go();
    c.request(NBD_CMD_READ, 2n, 0, 512);
    expect((await c.simpleReply(512)).error).toBe(0);
    expect(dev.calls.filter((x) => x.op === 'write')).toEqual([]);
  });

  it('structured replies: READ as one OFFSET_DATA chunk, errors as ERROR chunks, other successes as simple replies', async () => {
    const dev = new FakeDevice(512, 64);
    const s = await serve(dev);
    const c = await client(s.port);
    const { flags } = await c.go({ structured: true });
    expect(flags & NBD_FLAG_SEND_DF).toBe(NBD_FLAG_SEND_DF);
    c.request(NBD_CMD_WRITE, 1n, 1024, 1024, 0, pattern(1024, 5));
    expect(await c.simpleReply()).toMatchObject({ error: 0, handle: 1n });
    c.request(NBD_CMD_READ, 2n, 1024, 1024, NBD_CMD_FLAG_DF);
    const h = decodeStructuredHeader(await c.read(20));
    expect(h).toEqual({ magic: NBD_STRUCTURED_REPLY_MAGIC, flags: NBD_REPLY_FLAG_DONE, type: NBD_REPLY_TYPE_OFFSET_DATA, handle: 2n, length: 8 + 1024 });
    expect((await c.read(8)).readBigUInt64BE(0)).toBe(1024n);
    expect(await c.read(1024)).toEqual(pattern(1024, 5));
    c.request(NBD_CMD_READ, 3n, 0, 0);
    expect(decodeStructuredHeader(await c.read(20))).toMatchObject({ flags: NBD_REPLY_FLAG_DONE, type: NBD_REPLY_TYPE_NONE, handle: 3n, length: 0 });
    c.request(NBD_CMD_READ, 4n, 32768, 512);
    const e = decodeStructuredHeader(await c.read(20));
    expect(e).toMatchObject({ flags: NBD_REPLY_FLAG_DONE, type: NBD_REPLY_TYPE_ERROR, handle: 4n });
    const payload = await c.read(e.length);
    expect(payload.readUInt32BE(0)).toBe(NBD_EINVAL);
    expect(payload.subarray(6, 6 + payload.readUInt16BE(4)).toString()).toMatch(/beyond the export size/);
    dev.failNext = 'write';
    c.request(NBD_CMD_WRITE, 5n, 0, 512, 0, Buffer.alloc(512));
    const w = decodeStructuredHeader(await c.read(20));
    expect(w).toMatchObject({ type: NBD_REPLY_TYPE_ERROR, handle: 5n });
    expect((await c.read(w.length)).readUInt32BE(0)).toBe(NBD_EIO);
  });

  it('structured replies can be disabled (NBD_REP_ERR_UNSUP)', async () => {
    const s = await serve(new FakeDevice(), { structuredReplies: false });
    const c = await client(s.port);
    await c.hello();
    c.write(encodeOption(NBD_OPT_STRUCTURED_REPLY));
    expect((await c.optionReply()).type).toBe(NBD_REP_ERR_UNSUP);
  });

  it('close(): requests in flight finish, new ones get ESHUTDOWN, then the connection ends', async () => {
    const dev = new FakeDevice(512, 2048);
    let release!: () => void;
    dev.hold = new Promise<void>((r) => (release = r));
    const s = await serve(dev);
    const c = await client(s.port);
    await c.go({ structured: true });
    c.request(NBD_CMD_WRITE, 1n, 0, 512, 0, Buffer.alloc(512, 1));
    await waitFor(() => s.stats().requests === 1, 'requests = 1');
    const closing = s.close();
    c.request(NBD_CMD_READ, 2n, 0, 512);
    const e = decodeStructuredHeader(await c.read(20));
    expect(e).toMatchObject({ type: NBD_REPLY_TYPE_ERROR, handle: 2n });
    expect((await c.read(e.length)).readUInt32BE(0)).toBe(NBD_ESHUTDOWN);
    release();
    expect(await c.simpleReply()).toMatchObject({ error: 0, handle: 1n });
    expect(await c.closedWithin(2000)).toBe(true);
    await closing;
    expect(dev.data.subarray(0, 512)).toEqual(Buffer.alloc(512, 1));
    server = null;
  });

  it('close(): a connection still negotiating is closed at once; a stuck request is cut after closeTimeoutMs', async () => {
    const dev = new FakeDevice(512, 2048);
    dev.hold = new Promise<void>(() => {}); // never
    const s = await serve(dev, { closeTimeoutMs: 300 });
    const negotiating = await client(s.port);
    await negotiating.hello();
    const c = await client(s.port);
    await c.go();
    c.request(NBD_CMD_READ, 1n, 0, 512);
    await waitFor(() => s.stats().requests === 1, 'requests = 1');
    const t0 = Date.now();
    await s.close();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(await negotiating.closedWithin(100)).toBe(true);
    expect(await c.closedWithin(100)).toBe(true);
    server = null;
  });
});

// ---------------------------------------------------------------- unaligned requests

describe('NBD server: unaligned requests (read-modify-write)', () => {
  it('unaligned write, read and write-zeroes change exactly the bytes asked', async () => {
    const dev = new FakeDevice(512, 64);
    dev.data.fill(0xee);
    const model = Buffer.from(dev.data);
    const s = await serve(dev, { minBlockSize: 1 });
    const c = await client(s.port);
    await c.go();
    const ops: [number, number][] = [
      [100, 1000],
      [513, 10],
      [1024, 700],
      [4000, 5000],
      [0, 1],
      [32767, 1],
    ];
    let h = 0n;
    for (const [off, len] of ops) {
      const d = pattern(len, off);
      c.request(NBD_CMD_WRITE, ++h, off, len, 0, d);
      expect((await c.simpleReply()).error).toBe(0);
      d.copy(model, off);
    }
    c.request(NBD_CMD_WRITE_ZEROES, ++h, 300, 2000);
    expect((await c.simpleReply()).error).toBe(0);
    model.fill(0, 300, 2300);
    c.request(NBD_CMD_WRITE_ZEROES, ++h, 5000, 100, NBD_CMD_FLAG_NO_HOLE);
    expect((await c.simpleReply()).error).toBe(0);
    model.fill(0, 5000, 5100);
    expect(dev.data).toEqual(model);
    for (const [off, len] of [
      [1, 1],
      [100, 3000],
      [511, 2],
      [32000, 768],
    ] as const) {
      c.request(NBD_CMD_READ, ++h, off, len);
      expect((await c.simpleReply(len)).data).toEqual(model.subarray(off, off + len));
    }
    // Unaligned trim: only whole blocks inside the range are deallocated.
    c.request(NBD_CMD_TRIM, ++h, 100, 1000);
    expect((await c.simpleReply()).error).toBe(0);
    expect(dev.calls.at(-1)).toEqual({ op: 'deallocate', slba: 1, nlb: 1 });
    const calls = dev.calls.length;
    c.request(NBD_CMD_TRIM, h + 1n, 100, 300);
    expect((await c.simpleReply()).error).toBe(0);
    expect(dev.calls.length).toBe(calls);
    expect(s.stats().readModifyWrites).toBe(8);
    expect(s.stats().unalignedReads).toBe(4);
    // Every device write was whole blocks.
    expect(dev.calls.filter((x) => x.op === 'write').every((x) => Number.isInteger(x.nlb))).toBe(true);
  });

  it('pipelined overlapping writes, aligned and not, land as if applied one by one in arrival order', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const dev = new FakeDevice(512, 32, 6, seed);
      const model = Buffer.from(dev.data);
      const s = await startNbdServer(dev, { port: 0, minBlockSize: 1 });
      try {
        const c = await client(s.port);
        await c.go();
        const rng = new Rng(seed, 1);
        const rnd = (n: number) => rng.int(0, n - 1);
        const n = 120;
        for (let i = 0; i < n; i++) {
          const aligned = rnd(3) === 0;
          let off: number;
          let len: number;
          if (aligned) {
            off = rnd(14) * 512;
            len = (1 + rnd(2)) * 512;
          } else {
            off = rnd(8000);
            len = 1 + rnd(1200);
          }
          if (rnd(6) === 0) {
            c.request(NBD_CMD_WRITE_ZEROES, BigInt(i), off, len);
            model.fill(0, off, off + len);
          } else {
            const d = pattern(len, i + seed * 1000);
            c.request(NBD_CMD_WRITE, BigInt(i), off, len, 0, d);
            d.copy(model, off);
          }
        }
        for (let i = 0; i < n; i++) expect((await c.simpleReply()).error).toBe(0);
        expect(dev.data.equals(model), `seed ${seed}`).toBe(true);
      } finally {
        await s.close();
      }
    }
  });

  it('read-modify-writes from two connections to different bytes of the same blocks lose nothing', async () => {
    const dev = new FakeDevice(512, 8, 4, 11);
    const s = await serve(dev, { minBlockSize: 1 });
    const a = await client(s.port);
    const b = await client(s.port);
    await a.go();
    await b.go();
    // a writes bytes [i*16, i*16+8), b writes [i*16+8, i*16+16): interleaved in the same two blocks.
    const rounds = 40;
    for (let i = 0; i < rounds; i++) {
      a.request(NBD_CMD_WRITE, BigInt(i), (i % 64) * 16, 8, 0, Buffer.alloc(8, 0xa0 + (i % 16)));
      b.request(NBD_CMD_WRITE, BigInt(i), (i % 64) * 16 + 8, 8, 0, Buffer.alloc(8, 0xb0 + (i % 16)));
    }
    for (let i = 0; i < rounds; i++) {
      expect((await a.simpleReply()).error).toBe(0);
      expect((await b.simpleReply()).error).toBe(0);
    }
    for (let i = 0; i < rounds; i++) {
      expect(dev.data.subarray(i * 16, i * 16 + 8)).toEqual(Buffer.alloc(8, 0xa0 + (i % 16)));
      expect(dev.data.subarray(i * 16 + 8, i * 16 + 16)).toEqual(Buffer.alloc(8, 0xb0 + (i % 16)));
    }
  });
});
