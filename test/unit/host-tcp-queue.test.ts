/**
 * host/tcp-queue.ts against a scripted fake target: a net.Server that speaks
 * the wire through the shared codec and does exactly what each test says.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { encodeCqe } from '../../shared/cqe.ts';
import { decodeConnectData } from '../../shared/fabrics.ts';
import { PduFramer } from '../../shared/framer.ts';
import {
  Fes,
  PduType,
  encodeC2HData,
  encodeCapsuleResp,
  encodeIcResp,
  encodeR2T,
  encodeTermReq,
  type CapsuleCmdPdu,
  type H2CDataPdu,
  type IcRespPdu,
  type Pdu,
  type TermReqPdu,
  type WireOptions,
} from '../../shared/pdu.ts';
import { SGL_INCAPSULE, SGL_TRANSPORT } from '../../shared/sgl.ts';
import { decodeConnect, decodeSqe, flushCommand, readCommand, writeCommand, type Sqe } from '../../shared/sqe.ts';
import { Status } from '../../shared/status.ts';
import { HostError } from '../../host/errors.ts';
import { TcpQueue, type QueueOutcome, type TcpQueueOptions } from '../../host/tcp-queue.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const log = pino({ level: 'silent' });

/** One accepted connection on the fake target. */
class FakeConn {
  readonly socket: net.Socket;
  readonly framer = new PduFramer('target', { maxInCapsuleData: 1 << 20, maxH2CData: 1 << 20, maxC2HData: 0 });
  wire: WireOptions = { hdgst: false, ddgst: false };
  readonly chunks: Buffer[] = [];
  readonly #pdus: Pdu[] = [];
  readonly #waiters: ((p: Pdu) => void)[] = [];
  closed = false;
  readonly #closeWaiters: (() => void)[] = [];

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      try {
        this.framer.push(c, (p) => {
          const w = this.#waiters.shift();
          if (w) w(p);
          else this.#pdus.push(p);
        });
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.#closeWaiters.splice(0)) w();
    });
  }

  next(timeoutMs = 2000): Promise<Pdu> {
    const p = this.#pdus.shift();
    if (p) return Promise.resolve(p);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('fake target: no PDU')), timeoutMs);
      this.#waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  }

  async command(): Promise<{ pdu: CapsuleCmdPdu; sqe: Sqe }> {
    const p = await this.next();
    if (p.type !== PduType.CapsuleCmd) throw new Error(`expected CapsuleCmd, got ${p.type}`);
    return { pdu: p, sqe: decodeSqe(p.sqe) };
  }

  get pending(): number {
    return this.#pdus.length;
  }

  icResp(o: Partial<Omit<IcRespPdu, 'type'>> = {}): void {
    const ic = { pfv: 0, cpda: 0, hdgst: false, ddgst: false, maxh2cdata: 16384, ...o };
    this.send(encodeIcResp(ic));
    this.framer.setDigests(ic.hdgst, ic.ddgst);
    this.wire = { hdgst: ic.hdgst, ddgst: ic.ddgst };
  }

  respond(cid: number, status = 0, result = 0): void {
    this.send(encodeCapsuleResp(encodeCqe({ result, dw1: 0, sqhd: 0, sqid: 0, cid, status }), this.wire));
  }

  send(b: Buffer | Buffer[]): void {
    this.socket.write(Array.isArray(b) ? Buffer.concat(b) : b);
  }

  waitClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => this.#closeWaiters.push(r));
  }
}

const servers: net.Server[] = [];
const queues: TcpQueue[] = [];
afterEach(async () => {
  for (const q of queues.splice(0)) q.close('test done');
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

async function fakeTarget(): Promise<{ port: number; conn: () => Promise<FakeConn> }> {
  const accepted: FakeConn[] = [];
  const waiting: ((c: FakeConn) => void)[] = [];
  const server = net.createServer((s) => {
    const c = new FakeConn(s);
    const w = waiting.shift();
    if (w) w(c);
    else accepted.push(c);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    conn: () => {
      const c = accepted.shift();
      return c ? Promise.resolve(c) : new Promise((r) => waiting.push(r));
    },
  };
}

function options(port: number, o: Partial<TcpQueueOptions> = {}): TcpQueueOptions {
  return {
    host: '127.0.0.1',
    port,
    qid: 1,
    depth: 16,
    hdgst: false,
    ddgst: false,
    inCapsuleSize: 8192,
    connectTimeoutMs: 2000,
    subnqn: 'nqn.2026-11.io.test:sub',
    hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001',
    hostid: Buffer.alloc(16, 1),
    cntlid: 7,
    katoMs: 0,
    cattr: 0,
    log,
    ...o,
  };
}

/** Open a queue against the fake: ICResp (with overrides) and a successful Connect. */
async function open(o: Partial<TcpQueueOptions> = {}, ic: Partial<Omit<IcRespPdu, 'type'>> = {}): Promise<{ q: TcpQueue; conn: FakeConn }> {
  const t = await fakeTarget();
  const opening = TcpQueue.open(options(t.port, o));
  const conn = await t.conn();
  const icreq = await conn.next();
  expect(icreq.type).toBe(PduType.ICReq);
  conn.icResp({ hdgst: o.hdgst ?? false, ddgst: o.ddgst ?? false, ...ic });
  const { pdu, sqe } = await conn.command();
  expect(decodeConnect(sqe).qid).toBe(o.qid ?? 1);
  expect(decodeConnectData(pdu.data).cntlid).toBe(o.cntlid ?? 7);
  conn.respond(sqe.cid, 0, 0x1234);
  const q = await opening;
  queues.push(q);
  return { q, conn };
}

async function expectIcRespRefused(ic: Partial<Omit<IcRespPdu, 'type'>>, o: Partial<TcpQueueOptions> = {}): Promise<HostError> {
  const t = await fakeTarget();
  const opening = TcpQueue.open(options(t.port, o));
  const conn = await t.conn();
  await conn.next();
  conn.icResp(ic);
  const err = await opening.then(
    () => {
      throw new Error('open should have failed');
    },
    (e: unknown) => e as HostError,
  );
  expect(err).toBeInstanceOf(HostError);
  await conn.waitClosed();
  return err;
}

const pattern = (n: number, seed = 1): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};

describe('ICReq / ICResp', () => {
  it('sends ICReq with the digests asked for and accepts a conforming ICResp', async () => {
    const t = await fakeTarget();
    const opening = TcpQueue.open(options(t.port, { hdgst: true, ddgst: true, qid: 0, cntlid: 0xffff }));
    const conn = await t.conn();
    const icreq = await conn.next();
    expect(icreq).toMatchObject({ type: PduType.ICReq, pfv: 0, hpda: 0, hdgst: true, ddgst: true, maxr2t: 0 });
    conn.icResp({ hdgst: true, ddgst: true, maxh2cdata: 8192 });
    const { sqe } = await conn.command();
    expect(decodeConnect(sqe)).toMatchObject({ qid: 0, sqsize: 15 });
    conn.respond(sqe.cid, 0, 0x0042);
    const q = await opening;
    queues.push(q);
    expect(q.cntlid).toBe(0x42);
    expect(q.maxh2cdata).toBe(8192);
    expect(q.wire).toEqual({ hdgst: true, ddgst: true });
  });

  it('refuses pfv != 0', async () => {
    expect((await expectIcRespRefused({ pfv: 1 })).code).toBe('ICRESP_INVALID');
  });
  it('refuses cpda != 0', async () => {
    expect((await expectIcRespRefused({ cpda: 1 })).message).toMatch(/cpda/);
  });
  it('refuses maxh2cdata not a multiple of 4 or below 4096', async () => {
    expect((await expectIcRespRefused({ maxh2cdata: 4098 })).message).toMatch(/maxh2cdata/);
    expect((await expectIcRespRefused({ maxh2cdata: 2048 })).message).toMatch(/maxh2cdata/);
  });
  it('refuses digests that do not mirror the request', async () => {
    expect((await expectIcRespRefused({ hdgst: false }, { hdgst: true })).message).toMatch(/header digest/);
    expect((await expectIcRespRefused({ ddgst: true })).message).toMatch(/data digest/);
  });
  it('times out when no ICResp comes', async () => {
    const t = await fakeTarget();
    const opening = TcpQueue.open(options(t.port, { connectTimeoutMs: 100 }));
    const conn = await t.conn();
    await conn.next();
    await expect(opening).rejects.toMatchObject({ code: 'CONNECT_TIMEOUT' });
  });
  it('reports a rejected Connect with its status', async () => {
    const t = await fakeTarget();
    const opening = TcpQueue.open(options(t.port));
    const conn = await t.conn();
    await conn.next();
    conn.icResp();
    const { sqe } = await conn.command();
    conn.respond(sqe.cid, Status.ConnectInvalidHost);
    await expect(opening).rejects.toMatchObject({ code: 'CONNECT_REJECTED', status: Status.ConnectInvalidHost });
  });
});

describe('writes', () => {
  it('sends small writes in-capsule and large ones on R2T in maxh2cdata chunks with LAST', async () => {
    const { q, conn } = await open({ inCapsuleSize: 8192 }, { maxh2cdata: 16384 });
    const small = pattern(4096);
    const w1 = q.submit(writeCommand(1, 0, 8, small.length, false), { data: small, timeoutMs: 1000 });
    const c1 = await conn.command();
    expect(c1.sqe.sgl.id).toBe(SGL_INCAPSULE);
    expect(c1.pdu.data.equals(small)).toBe(true);
    conn.respond(c1.sqe.cid);
    expect(await w1).toMatchObject({ kind: 'completed', status: 0 });

    const big = pattern(65536, 3);
    const w2 = q.submit(writeCommand(1, 0, 128, big.length, true), { data: big, timeoutMs: 1000 });
    const c2 = await conn.command();
    expect(c2.sqe.sgl.id).toBe(SGL_TRANSPORT);
    expect(c2.sqe.sgl.length).toBe(65536);
    expect(c2.pdu.data.length).toBe(0);
    // Two R2Ts: each answered with chunks of at most maxh2cdata, LAST on the last chunk of each.
    conn.send(encodeR2T({ cccid: c2.sqe.cid, ttag: 5, r2to: 0, r2tl: 40000 }, conn.wire));
    const got: H2CDataPdu[] = [];
    for (let i = 0; i < 3; i++) got.push((await conn.next()) as H2CDataPdu);
    conn.send(encodeR2T({ cccid: c2.sqe.cid, ttag: 6, r2to: 40000, r2tl: 25536 }, conn.wire));
    for (let i = 0; i < 2; i++) got.push((await conn.next()) as H2CDataPdu);
    expect(got.map((p) => [p.type, p.ttag, p.datao, p.datal, p.last])).toEqual([
      [PduType.H2CData, 5, 0, 16384, false],
      [PduType.H2CData, 5, 16384, 16384, false],
      [PduType.H2CData, 5, 32768, 7232, true],
      [PduType.H2CData, 6, 40000, 16384, false],
      [PduType.H2CData, 6, 56384, 9152, true],
    ]);
    expect(Buffer.concat(got.map((p) => p.data)).equals(big)).toBe(true);
    expect(got.every((p) => p.cccid === c2.sqe.cid)).toBe(true);
    conn.respond(c2.sqe.cid);
    expect(await w2).toMatchObject({ kind: 'completed', status: 0 });
  });

  it('uses the 8 KiB in-capsule size on the admin queue', async () => {
    const { q, conn } = await open({ qid: 0, inCapsuleSize: 0 });
    const d = pattern(8192);
    const w = q.submit(writeCommand(1, 0, 16, d.length, false), { data: d, timeoutMs: 1000 });
    const c = await conn.command();
    expect(c.sqe.sgl.id).toBe(SGL_INCAPSULE);
    conn.respond(c.sqe.cid);
    await w;
  });

  it('treats an R2T out of range as a protocol error', async () => {
    const { q, conn } = await open();
    const big = pattern(32768);
    const w = q.submit(writeCommand(1, 0, 64, big.length, false), { data: big, timeoutMs: 1000 });
    const c = await conn.command();
    conn.send(encodeR2T({ cccid: c.sqe.cid, ttag: 1, r2to: 16384, r2tl: 32768 }, conn.wire));
    expect(await w).toMatchObject({ kind: 'path-error', mayHaveExecuted: true });
    expect(q.error?.code).toBe('PROTOCOL_ERROR');
    const term = (await conn.next()) as TermReqPdu;
    expect(term.type).toBe(PduType.H2CTermReq);
    expect(term.fes).toBe(Fes.DataTransferOutOfRange);
  });
});

describe('reads', () => {
  it('reassembles C2HData packed into one segment and split byte by byte', async () => {
    const { q, conn } = await open();
    const data = pattern(12288, 9);
    const r1 = q.submit(readCommand(1, 0, 24, data.length), { readLength: data.length, timeoutMs: 1000 });
    const c1 = await conn.command();
    expect(c1.sqe.sgl).toMatchObject({ id: SGL_TRANSPORT, length: 12288 });
    // Three C2HData and the CapsuleResp in one write.
    conn.send([
      ...encodeC2HData({ cccid: c1.sqe.cid, datao: 0, last: false, success: false }, data.subarray(0, 4096), conn.wire),
      ...encodeC2HData({ cccid: c1.sqe.cid, datao: 4096, last: false, success: false }, data.subarray(4096, 8192), conn.wire),
      ...encodeC2HData({ cccid: c1.sqe.cid, datao: 8192, last: true, success: false }, data.subarray(8192), conn.wire),
      ...encodeCapsuleResp(encodeCqe({ result: 0, dw1: 0, sqhd: 0, sqid: 1, cid: c1.sqe.cid, status: 0 }), conn.wire),
    ]);
    const o1 = await r1;
    expect(o1.kind).toBe('completed');
    expect(o1.kind === 'completed' && o1.data!.equals(data)).toBe(true);

    const r2 = q.submit(readCommand(1, 0, 24, data.length), { readLength: data.length, timeoutMs: 5000 });
    const c2 = await conn.command();
    const bytes = Buffer.concat([
      ...encodeC2HData({ cccid: c2.sqe.cid, datao: 0, last: false, success: false }, data.subarray(0, 6000), conn.wire),
      ...encodeC2HData({ cccid: c2.sqe.cid, datao: 6000, last: true, success: false }, data.subarray(6000), conn.wire),
      ...encodeCapsuleResp(encodeCqe({ result: 0, dw1: 0, sqhd: 0, sqid: 1, cid: c2.sqe.cid, status: 0 }), conn.wire),
    ]);
    // Split: small pieces, at every header boundary and inside the data.
    for (let off = 0; off < bytes.length;) {
      const n = off < 200 ? 1 : 997;
      conn.socket.write(bytes.subarray(off, off + n));
      off += n;
    }
    const o2 = await r2;
    expect(o2.kind === 'completed' && o2.data!.equals(data)).toBe(true);
  });

  it('completes on C2HData with SUCCESS and no CapsuleResp', async () => {
    const { q, conn } = await open();
    const data = pattern(4096, 2);
    const into = Buffer.alloc(4096);
    const r = q.submit(readCommand(1, 0, 8, 4096), { readLength: 4096, readInto: into, timeoutMs: 1000 });
    const c = await conn.command();
    conn.send(encodeC2HData({ cccid: c.sqe.cid, datao: 0, last: true, success: true }, data, conn.wire));
    const o = await r;
    expect(o).toMatchObject({ kind: 'completed', status: 0 });
    expect(o.kind === 'completed' && o.data).toBe(into);
    expect(into.equals(data)).toBe(true);
    expect(q.inflight).toBe(0);
    // The tag is free again and the queue still works.
    const f = q.submit(flushCommand(1), { timeoutMs: 1000 });
    const c2 = await conn.command();
    conn.respond(c2.sqe.cid);
    expect(await f).toMatchObject({ kind: 'completed', status: 0 });
  });

  it('treats a C2HData at the wrong offset as a protocol error', async () => {
    const { q, conn } = await open();
    const r = q.submit(readCommand(1, 0, 8, 4096), { readLength: 4096, timeoutMs: 1000 });
    const c = await conn.command();
    conn.send(encodeC2HData({ cccid: c.sqe.cid, datao: 512, last: true, success: false }, Buffer.alloc(512), conn.wire));
    expect(await r).toMatchObject({ kind: 'path-error', mayHaveExecuted: true });
    expect(q.error?.message).toMatch(/offset 512, expected 0/);
  });

  it('fails the command with Data Transfer Error on a bad data digest, and keeps the queue', async () => {
    const { q, conn } = await open({ hdgst: true, ddgst: true });
    const r = q.submit(readCommand(1, 0, 8, 4096), { readLength: 4096, timeoutMs: 1000 });
    const c = await conn.command();
    const pdu = encodeC2HData({ cccid: c.sqe.cid, datao: 0, last: true, success: false }, pattern(4096), conn.wire);
    pdu[2]![0] = pdu[2]![0]! ^ 0xff; // corrupt the data digest
    conn.send(pdu);
    conn.respond(c.sqe.cid);
    expect(await r).toMatchObject({ kind: 'completed', status: Status.DataTransferError });
    expect(q.closed).toBe(false);
  });

  it('tears the queue down on a bad header digest and sends H2CTermReq', async () => {
    const { q, conn } = await open({ hdgst: true });
    const r = q.submit(flushCommand(1), { timeoutMs: 1000 });
    const c = await conn.command();
    const resp = encodeCapsuleResp(encodeCqe({ result: 0, dw1: 0, sqhd: 0, sqid: 0, cid: c.sqe.cid, status: 0 }), conn.wire);
    resp[0]![24] = resp[0]![24]! ^ 1; // corrupt the header digest
    conn.send(resp);
    expect(await r).toMatchObject({ kind: 'path-error', mayHaveExecuted: true });
    expect(q.error?.code).toBe('PROTOCOL_ERROR');
    const term = (await conn.next()) as TermReqPdu;
    expect(term).toMatchObject({ type: PduType.H2CTermReq, fes: Fes.HeaderDigestError });
  });
});

describe('teardown', () => {
  it('fails every command in flight on a C2HTermReq, once, with that error', async () => {
    const { q, conn } = await open({ depth: 2 });
    const closes: HostError[] = [];
    q.on('close', (e) => closes.push(e));
    const a = q.submit(flushCommand(1), { timeoutMs: 1000 });
    const b = q.submit(flushCommand(1), { timeoutMs: 1000 });
    const backlogged = q.submit(flushCommand(1), { timeoutMs: 1000 });
    await conn.command();
    await conn.command();
    expect(q.inflight).toBe(3);
    conn.send(encodeTermReq(PduType.C2HTermReq, Fes.InvalidHeaderField, 2, Buffer.alloc(8)));
    const outcomes: QueueOutcome[] = await Promise.all([a, b, backlogged]);
    expect(outcomes.map((o) => o.kind)).toEqual(['path-error', 'path-error', 'path-error']);
    expect(outcomes.map((o) => o.kind === 'path-error' && o.mayHaveExecuted)).toEqual([true, true, false]);
    expect(outcomes[0]).toMatchObject({ reason: expect.stringMatching(/C2HTermReq.*InvalidHeaderField/) });
    expect(q.error?.code).toBe('TERM_REQ');
    await conn.waitClosed();
    expect(closes.length).toBe(1);
    expect(await q.submit(flushCommand(1), { timeoutMs: 1000 })).toMatchObject({ kind: 'path-error', mayHaveExecuted: false });
  });

  it('fails commands in flight when the target closes the connection', async () => {
    const { q, conn } = await open();
    const a = q.submit(flushCommand(1), { timeoutMs: 1000 });
    await conn.command();
    conn.socket.destroy();
    expect(await a).toMatchObject({ kind: 'path-error', mayHaveExecuted: true });
    expect(q.error?.code).toBe('CONNECTION_CLOSED');
  });
});

describe('command ids', () => {
  it('carries a generation counter so a reused tag gets a new cid', async () => {
    const { q, conn } = await open({ depth: 1 });
    const cids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const f = q.submit(flushCommand(1), { timeoutMs: 1000 });
      const c = await conn.command();
      cids.push(c.sqe.cid);
      conn.respond(c.sqe.cid);
      await f;
    }
    expect(new Set(cids.map((c) => c & 0xfff)).size).toBe(1);
    expect(new Set(cids).size).toBe(3);
  });

  it('rejects a stale completion (old generation of a tag in use) instead of completing the new command', async () => {
    const { q, conn } = await open({ depth: 1 });
    const f1 = q.submit(flushCommand(1), { timeoutMs: 1000 });
    const c1 = await conn.command();
    conn.respond(c1.sqe.cid);
    await f1;
    const f2 = q.submit(flushCommand(1), { timeoutMs: 1000 });
    const c2 = await conn.command();
    expect(c2.sqe.cid & 0xfff).toBe(c1.sqe.cid & 0xfff);
    conn.respond(c1.sqe.cid); // the old cid again
    expect(await f2).toMatchObject({ kind: 'path-error' });
    expect(q.error?.message).toMatch(/stale generation/);
  });

  it('rejects a completion for an unknown command id', async () => {
    const { q, conn } = await open();
    const f = q.submit(flushCommand(1), { timeoutMs: 1000 });
    const c = await conn.command();
    conn.respond((c.sqe.cid + 1) & 0xffff);
    expect(await f).toMatchObject({ kind: 'path-error' });
    expect(q.error?.message).toMatch(/no such command/);
  });
});

describe('timeouts, batching and back-pressure', () => {
  it('times a command out on the installed clock and ends the queue', async () => {
    const clock = new ManualClock();
    const { q, conn } = await open({ clock });
    const slow = q.submit(flushCommand(1), { timeoutMs: 30_000 });
    const aer = q.submit(flushCommand(1), { timeoutMs: 0 });
    await conn.command();
    await conn.command();
    await clock.advance(29_999);
    expect(q.closed).toBe(false);
    await clock.advance(1);
    expect(await slow).toMatchObject({ kind: 'path-error', mayHaveExecuted: true });
    expect(await aer).toMatchObject({ kind: 'path-error' });
    expect(q.error?.code).toBe('COMMAND_TIMEOUT');
  });

  it('writes the commands of one event-loop turn together', async () => {
    const { q, conn } = await open();
    const before = conn.chunks.length;
    const all = [
      q.submit(flushCommand(1), { timeoutMs: 1000 }),
      q.submit(flushCommand(1), { timeoutMs: 1000 }),
      q.submit(flushCommand(1), { timeoutMs: 1000 }),
    ];
    const cs = [await conn.command(), await conn.command(), await conn.command()];
    expect(conn.chunks.length - before).toBe(1);
    expect(conn.chunks[before]!.length).toBe(3 * 72);
    for (const c of cs) conn.respond(c.sqe.cid);
    await Promise.all(all);
  });

  it('keeps commands beyond the queue depth waiting until a tag frees', async () => {
    const { q, conn } = await open({ depth: 2 });
    const outs = [0, 1, 2, 3].map(() => q.submit(flushCommand(1), { timeoutMs: 1000 }));
    const first = [await conn.command(), await conn.command()];
    await new Promise((r) => setTimeout(r, 30));
    expect(conn.pending).toBe(0);
    expect(q.inflight).toBe(4);
    expect(q.waiting).toBe(2);
    conn.respond(first[0]!.sqe.cid);
    const third = await conn.command();
    conn.respond(first[1]!.sqe.cid);
    conn.respond(third.sqe.cid);
    const fourth = await conn.command();
    conn.respond(fourth.sqe.cid);
    expect((await Promise.all(outs)).every((o) => o.kind === 'completed')).toBe(true);
  });

  it('waits for drain when the socket is full', async () => {
    const { q, conn } = await open({ depth: 64, inCapsuleSize: 1 << 20 });
    conn.socket.pause(); // the target stops reading: the host's socket fills up
    const big = pattern(512 * 1024);
    const outs = Array.from({ length: 16 }, () => q.submit(writeCommand(1, 0, 1024, big.length, true), { data: big, timeoutMs: 10_000 }));
    await new Promise((r) => setTimeout(r, 50));
    // Not all 16 (8 MiB) went to the socket: the rest wait for 'drain'.
    expect(q.inflight).toBe(16);
    expect(q.waiting).toBeGreaterThan(0);
    conn.socket.resume();
    const seen: number[] = [];
    for (let i = 0; i < 16; i++) {
      const c = await conn.command();
      seen.push(c.sqe.cid);
      conn.respond(c.sqe.cid);
    }
    expect((await Promise.all(outs)).every((o) => o.kind === 'completed')).toBe(true);
    expect(new Set(seen).size).toBe(16);
  });
});
