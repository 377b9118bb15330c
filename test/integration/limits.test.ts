/**
 * Limits and their errors, over real sockets: connections per port,
 * controllers per subsystem, queue depth (MQES, port max_queue_size, commands
 * outstanding), transfer size (MDTS, Fabrics commands included), in-capsule
 * size, MAXH2CDATA, R2T buffers per connection, and stalled senders (a PDU
 * begun and never finished, an R2T never answered in full) closed by the
 * stall timeout without holding memory. A PDU claiming a huge PLEN is refused
 * from its header: nothing is allocated for it.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Cns } from '../../shared/identify.ts';
import { Property } from '../../shared/fabrics.ts';
import { encodeSqe, identifyCommand, propertyGetCommand, readCommand, withCid, writeCommand, type Sqe } from '../../shared/sqe.ts';
import { transportSgl } from '../../shared/sgl.ts';
import { STALL_TIMEOUT_MS, R2T_BUFFER_BUDGET } from '../../target/tcp.ts';
import type { Target, TargetOptions } from '../../target/target.ts';
import { ByteTap, RawClient, handCapsule, handH2CData, handIcReq, patternBlocks, rawSocket, termReqFields } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

const T = { ICResp: 0x01, C2HTermReq: 0x03, CapsuleResp: 0x05, R2T: 0x09 } as const;
const DNR = 0x4000;
const INVALID_FIELD = 0x002;
const SGL_OFFSET_INVALID = 0x016;
const CONNECT_CONTROLLER_BUSY = 0x181;
const CONNECT_INVALID_PARAMETERS = 0x182;
const MIB = 1024 * 1024;

let target: Target | null = null;
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await target?.stop();
  target = null;
});

/** The target's log lines, as parsed JSON. */
function logSink(): { log: pino.Logger; lines: { level: number; msg: string; [k: string]: unknown }[] } {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
      cb();
    },
  });
  return { log: pino({ level: 'info', base: undefined }, sink), lines };
}

async function boot(edit?: (doc: Record<string, any>) => void, opts: TargetOptions = {}): Promise<number[]> {
  const t = await startTarget(
    testConfig((doc) => {
      doc['subsystems'][0].ext = { mode: 'ana' };
      for (const p of doc['ports']) p.ana_groups = [{ grpid: 1, ana: { state: 'optimized' } }];
      edit?.(doc);
    }),
    opts,
  );
  target = t.target;
  return t.ports;
}

async function admin(port: number, o: { sqsize?: number } = {}): Promise<RawClient> {
  const c = await RawClient.admin(port, { subnqn: SUBNQN, kato: 0, sqsize: o.sqsize });
  closers.push(() => c.close());
  return c;
}

async function io(port: number, adm: RawClient, qid: number, sqsize?: number): Promise<RawClient> {
  const c = await RawClient.io(port, { subnqn: SUBNQN, cntlid: adm.cntlid, qid, sqsize });
  closers.push(() => c.close());
  return c;
}

async function tapped(port: number): Promise<ByteTap> {
  const tap = await rawSocket(port);
  closers.push(() => tap.socket.destroy());
  return tap;
}

/** A raw connection through ICReq and an I/O Connect, read by hand from then on. */
async function rawIo(port: number, adm: RawClient, qid: number, sqsize = 127): Promise<{ c: RawClient; tap: ByteTap }> {
  const c = await io(port, adm, qid, sqsize);
  return { c, tap: new ByteTap(c.socket) };
}

const sqeBytes = (s: Sqe, cid: number) => encodeSqe(withCid(s, cid));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const connections = () => target!.snapshot().ports.reduce((n, p) => n + p.connections, 0);

// ---------------------------------------------------------------------------

describe('connections per port', () => {
  it('beyond TargetLimits.maxConnectionsPerPort a new connection is closed at once, with a log line; a freed slot is usable again', async () => {
    const { log, lines } = logSink();
    const [p1, p2] = await boot(undefined, { log, limits: { maxConnectionsPerPort: 3 } });
    const held: ByteTap[] = [];
    for (let i = 0; i < 3; i++) {
      const t = await tapped(p1!);
      t.socket.write(handIcReq());
      await t.pdu(T.ICResp);
      held.push(t);
    }
    const extra = await tapped(p1!);
    extra.socket.write(handIcReq());
    await extra.waitClosed(2000);
    expect(extra.pdus()).toHaveLength(0);
    const refusal = lines.find((l) => /maximum number of connections/.test(l.msg));
    expect(refusal).toBeDefined();
    expect(refusal!['port']).toBe(1);
    expect(refusal!['limit']).toBe(3);
    // The limit is per port: port 2 still accepts.
    const other = await admin(p2!);
    expect((await other.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
    // Existing connections are unaffected; closing one frees a slot.
    for (const t of held) expect(t.closed).toBe(false);
    held[0]!.socket.destroy();
    await waitFor(() => target!.snapshot().ports[0]!.connections === 2, 'the slot to free');
    const again = await admin(p1!);
    expect((await again.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
  });
});

describe('controllers per subsystem', () => {
  it('ext.max_controllers: the next admin Connect gets Controller Busy (with a log line); one going away makes room', async () => {
    const { log, lines } = logSink();
    const [p1] = await boot(
      (doc) => {
        doc['subsystems'][0].ext.max_controllers = 2;
      },
      { log },
    );
    const a = await admin(p1!);
    await admin(p1!);
    const c = await RawClient.connect(p1!);
    closers.push(() => c.close());
    await c.initialize();
    const r = await c.connectQueue({ qid: 0, subnqn: SUBNQN, sqsize: 31 });
    expect(r.cqe.status & 0x7ff).toBe(CONNECT_CONTROLLER_BUSY);
    expect(r.cqe.status & DNR).toBe(DNR);
    expect(lines.some((l) => /controller limit/.test(l.msg))).toBe(true);
    expect(target!.snapshot().subsystems[0]!.controllers).toHaveLength(2);
    // The refused connection may try again once a controller is gone.
    a.close();
    await waitFor(() => target!.snapshot().subsystems[0]!.controllers.length === 1, 'the controller to go');
    const again = await c.connectQueue({ qid: 0, subnqn: SUBNQN, sqsize: 31 });
    expect(again.cqe.status).toBe(0);
  });
});

describe('queue depth', () => {
  it('SQSIZE above CAP.MQES: Connect Invalid Parameters pointing at SQSIZE (SQE offset 44); MQES itself is accepted', async () => {
    const [p1] = await boot(undefined, { limits: { mqes: 63 } });
    const a = await admin(p1!);
    const cap = await a.command(propertyGetCommand(Property.CAP, 8));
    expect(cap.cqe.result & 0xffff).toBe(63);
    for (const [sqsize, ok] of [
      [64, false],
      [1000, false],
      [63, true],
    ] as const) {
      const c = await RawClient.connect(p1!);
      closers.push(() => c.close());
      await c.initialize();
      const r = await c.connectQueue({ qid: 1, subnqn: SUBNQN, cntlid: a.cntlid, sqsize });
      if (ok) expect(r.cqe.status).toBe(0);
      else {
        expect(r.cqe.status & 0x7ff).toBe(CONNECT_INVALID_PARAMETERS);
        expect(r.cqe.result & 0x1ffffff).toBe(44); // IATTR 0 (SQE), IPO 44 (SQSIZE)
      }
    }
  });

  it('a port with param.max_queue_size lowers MQES there', async () => {
    const [p1, p2] = await boot((doc) => {
      doc['ports'][1].param.max_queue_size = '32';
    });
    for (const [port, mqes] of [
      [p1!, 1023],
      [p2!, 31],
    ] as const) {
      const a = await admin(port);
      expect((await a.command(propertyGetCommand(Property.CAP, 8))).cqe.result & 0xffff).toBe(mqes);
      const c = await RawClient.connect(port);
      closers.push(() => c.close());
      await c.initialize();
      expect((await c.connectQueue({ qid: 1, subnqn: SUBNQN, cntlid: a.cntlid, sqsize: 32 })).cqe.status & 0x7ff).toBe(
        port === p2 ? CONNECT_INVALID_PARAMETERS : 0,
      );
    }
  });

  it('commands outstanding: SQSIZE+1 are accepted; beyond twice the queue size the connection ends with C2HTermReq FES 2', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const sqsize = 3; // 4 entries
    const within = await rawIo(p1!, a, 1, sqsize);
    within.c.socket.write(Buffer.concat(Array.from({ length: 4 }, (_, i) => handCapsule(sqeBytes(writeCommand(1, i * 8, 8, 4096, false), 0x100 + i), null))));
    await within.tap.until(() => within.tap.pdus().filter((p) => p.type === T.R2T).length === 4 || undefined, 3000, '4 R2Ts');
    expect(within.tap.closed).toBe(false);

    const over = await rawIo(p1!, a, 2, sqsize);
    over.c.socket.write(Buffer.concat(Array.from({ length: 9 }, (_, i) => handCapsule(sqeBytes(writeCommand(1, i * 8, 8, 4096, false), 0x200 + i), null))));
    const term = await over.tap.pdu(T.C2HTermReq);
    expect(termReqFields(term).fes).toBe(2);
    await over.tap.waitClosed();
    // The 8 accepted before the 9th got their R2Ts; nothing else came.
    expect(over.tap.pdus().filter((p) => p.type === T.R2T)).toHaveLength(8);
    expect(over.tap.pdus().filter((p) => p.type === T.CapsuleResp)).toHaveLength(0);
    // The controller and its other queue live on.
    expect((await a.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
    expect(within.tap.closed).toBe(false);
  });
});

describe('transfer size', () => {
  it('more than MDTS: Invalid Field before any data moves; exactly MDTS works', async () => {
    const [p1] = await boot(undefined, { limits: { mdts: 2 } }); // 16 KiB
    const a = await admin(p1!);
    const q = await io(p1!, a, 1);
    const tap = new ByteTap(q.socket);
    const r = await q.command(readCommand(1, 0, 33, 33 * 512));
    expect(r.cqe.status).toBe(DNR | INVALID_FIELD);
    const w = await q.command(writeCommand(1, 0, 33, 33 * 512, false), { data: Buffer.alloc(33 * 512) });
    expect(w.cqe.status).toBe(DNR | INVALID_FIELD);
    expect(tap.pdus().filter((p) => p.type === T.R2T)).toHaveLength(0);
    const data = patternBlocks(0, 32, 512, 1);
    expect((await q.command(writeCommand(1, 0, 32, data.length, false), { data })).cqe.status).toBe(0);
    expect((await q.command(readCommand(1, 0, 32, data.length))).data.equals(data)).toBe(true);
  });

  it('a Fabrics command with a huge SGL is refused like any other (no R2T, no allocation)', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const tap = new ByteTap(a.socket);
    const before = process.memoryUsage().arrayBuffers;
    // Connect on the live admin queue, data by R2T, 4 GiB - 1.
    const connect = { ...identifyCommand({ cns: 1 }), opcode: 0x7f, nsid: 0x01, cdw10: 0, cdw11: 31, sgl: transportSgl(0xffffffff) };
    const r = await a.command(connect);
    expect(r.cqe.status).toBe(DNR | INVALID_FIELD);
    expect(tap.pdus().filter((p) => p.type === T.R2T)).toHaveLength(0);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * MIB);
    // Same on a connection still waiting for its Connect: the Connect itself.
    const c = await tapped(p1!);
    c.socket.write(handIcReq());
    await c.pdu(T.ICResp);
    c.socket.write(handCapsule(sqeBytes({ ...connect, cdw11: 31 }, 7), null));
    const resp = await c.pdu(T.CapsuleResp);
    expect((resp.bytes.readUInt16LE(8 + 14) >> 1) & 0x7ff).toBe(INVALID_FIELD);
    expect(c.pdus().some((p) => p.type === T.R2T)).toBe(false);
  });

  it('a Connect whose data comes by R2T works (the H2CData before the queue is live is the answer the target asked for)', async () => {
    const [p1] = await boot();
    const c = await RawClient.connect(p1!);
    closers.push(() => c.close());
    await c.initialize();
    const tap = new ByteTap(c.socket);
    const { encodeConnectData } = await import('../../shared/fabrics.ts');
    const data = encodeConnectData({
      hostid: Buffer.alloc(16, 7),
      cntlid: 0xffff,
      subnqn: SUBNQN,
      hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000c0de',
    });
    const connect = { ...identifyCommand({ cns: 1 }), opcode: 0x7f, nsid: 0x01, cdw10: 0, cdw11: 31, sgl: transportSgl(1024) };
    const r = await c.command(connect, { data, inCapsule: false });
    expect(r.cqe.status).toBe(0);
    expect(r.r2ts).toBe(1);
    expect(tap.pdus().some((p) => p.type === T.C2HTermReq)).toBe(false);
  });
});

describe('in-capsule data and MAXH2CDATA', () => {
  it('in-capsule data above inline_data_size: SGL Offset Invalid; a capsule above what the port accepts at all: FES 5 from the header', async () => {
    const [p1] = await boot((doc) => {
      doc['ports'][0].param.inline_data_size = '4096';
    });
    const a = await admin(p1!);
    const q = await io(p1!, a, 1);
    const r = await q.command(writeCommand(1, 0, 16, 8192, true), { data: Buffer.alloc(8192), inCapsule: true });
    expect(r.cqe.status).toBe(DNR | SGL_OFFSET_INVALID);
    const { tap, c } = await rawIo(p1!, a, 2);
    const big = handCapsule(sqeBytes(writeCommand(1, 0, 24, 12288, true), 9), Buffer.alloc(12288)); // > max(8 KiB, inline)
    c.socket.write(big.subarray(0, 72)); // the header is enough
    const term = await tap.pdu(T.C2HTermReq, () => true, 1000);
    expect(termReqFields(term).fes).toBe(5);
  });

  it('an H2CData PDU larger than MAXH2CDATA: FES 5', async () => {
    const [p1] = await boot((doc) => {
      doc['ports'][0].ext = { maxh2cdata: 4096 };
    });
    const a = await admin(p1!);
    const { c, tap } = await rawIo(p1!, a, 1);
    c.socket.write(handCapsule(sqeBytes(writeCommand(1, 0, 16, 8192, false), 5), null));
    const r2t = await tap.pdu(T.R2T);
    c.socket.write(handH2CData({ cccid: 5, ttag: r2t.bytes.readUInt16LE(10), datao: 0, last: true }, Buffer.alloc(8192)).subarray(0, 24));
    expect(termReqFields(await tap.pdu(T.C2HTermReq, () => true, 1000)).fes).toBe(5);
  });
});

describe('a PDU claiming a huge PLEN', () => {
  it('PLEN 0xFFFFFFF0: C2HTermReq at once, from the header alone; RSS and buffers do not grow', async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    globalThis.gc?.();
    const rss0 = process.memoryUsage().rss;
    const ab0 = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 8; i++) {
      const { c, tap } = await rawIo(p1!, a, i + 1);
      const header = handCapsule(sqeBytes(writeCommand(1, 0, 8, 4096, true), 1), Buffer.alloc(4096), { plen: 0xfffffff0 }).subarray(0, 72);
      const t0 = Date.now();
      c.socket.write(header);
      const term = await tap.pdu(T.C2HTermReq, () => true, 1000);
      expect(Date.now() - t0).toBeLessThan(500);
      expect([1, 5]).toContain(termReqFields(term).fes);
      expect(termReqFields(term).errorData.subarray(0, 8).equals(header.subarray(0, 8))).toBe(true);
      await tap.waitClosed();
    }
    expect(process.memoryUsage().arrayBuffers - ab0).toBeLessThan(32 * MIB);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(64 * MIB);
    expect((await a.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
  });
});

describe('R2T buffers per connection', () => {
  it(`many large writes at once: at most ${R2T_BUFFER_BUDGET / MIB} MiB of R2T buffers; the rest get their R2T as transfers finish, and all complete`, async () => {
    const [p1] = await boot();
    const a = await admin(p1!);
    const { c, tap } = await rawIo(p1!, a, 1);
    const n = 40;
    const ab0 = process.memoryUsage().arrayBuffers;
    c.socket.write(Buffer.concat(Array.from({ length: n }, (_, i) => handCapsule(sqeBytes(writeCommand(1, i * 2048, 2048, MIB, false), i), null))));
    await tap.until(() => tap.pdus().filter((p) => p.type === T.R2T).length === R2T_BUFFER_BUDGET / MIB || undefined, 3000, 'the first R2Ts');
    await sleep(100);
    const r2ts = tap.pdus().filter((p) => p.type === T.R2T);
    expect(r2ts).toHaveLength(R2T_BUFFER_BUDGET / MIB);
    expect(process.memoryUsage().arrayBuffers - ab0).toBeLessThan(R2T_BUFFER_BUDGET + 24 * MIB);
    // Answer every R2T as it comes: all 40 writes complete.
    const answered = new Set<number>();
    const results = Array.from({ length: n }, (_, i) => c.track(i));
    const pump = () => {
      for (const p of tap.pdus()) {
        if (p.type !== T.R2T) continue;
        const cid = p.bytes.readUInt16LE(8);
        if (answered.has(cid)) continue;
        answered.add(cid);
        const ttag = p.bytes.readUInt16LE(10);
        for (let off = 0; off < MIB; off += 131072)
          c.socket.write(handH2CData({ cccid: cid, ttag, datao: off, last: off + 131072 >= MIB }, Buffer.alloc(131072, cid)));
      }
    };
    const timer = setInterval(pump, 5);
    try {
      const done = await Promise.all(results);
      expect(done.every((r) => r.cqe.status === 0)).toBe(true);
    } finally {
      clearInterval(timer);
    }
    expect(answered.size).toBe(n);
    const back = await c.command(readCommand(1, 39 * 2048, 1, 512));
    expect(back.data.every((b) => b === 39)).toBe(true);
  });
});

describe('stalled senders', () => {
  const STALL = 300;

  it(`the default stall timeout is 30 s (${STALL_TIMEOUT_MS} ms), configurable through TargetLimits.stallTimeoutMs`, async () => {
    expect(STALL_TIMEOUT_MS).toBe(30_000);
    const [p1] = await boot();
    const a = await admin(p1!);
    const { c, tap } = await rawIo(p1!, a, 1);
    c.socket.write(handCapsule(sqeBytes(writeCommand(1, 0, 8, 4096, true), 1), Buffer.alloc(4096)).subarray(0, 1000));
    await sleep(1000);
    expect(tap.closed).toBe(false);
  });

  it('a PDU begun and never completed: the connection is closed after the stall timeout, with a log line, nothing held', async () => {
    const { log, lines } = logSink();
    const [p1] = await boot(undefined, { log, limits: { stallTimeoutMs: STALL } });
    const a = await admin(p1!);
    const { c, tap } = await rawIo(p1!, a, 1);
    const before = connections();
    const t0 = Date.now();
    c.socket.write(handCapsule(sqeBytes(writeCommand(1, 0, 16, 8192, true), 1), Buffer.alloc(8192)).subarray(0, 4000));
    await tap.waitClosed(3000);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(STALL - 20);
    expect(elapsed).toBeLessThan(STALL + 1500);
    expect(tap.pdus().some((p) => p.type === T.C2HTermReq)).toBe(false);
    const line = lines.find((l) => /stalled sender: a PDU begun/.test(l.msg));
    expect(line).toBeDefined();
    expect(line!['qid']).toBe(1);
    await waitFor(() => connections() === before - 1, 'the connection to be released');
    // The controller and its admin queue are untouched.
    expect((await a.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
  });

  it('a PDU trickled byte by byte is timed from its first byte: bytes arriving do not extend it', async () => {
    const [p1] = await boot(undefined, { limits: { stallTimeoutMs: STALL } });
    const a = await admin(p1!);
    const { c, tap } = await rawIo(p1!, a, 1);
    const pdu = handCapsule(sqeBytes(writeCommand(1, 0, 8, 4096, true), 1), Buffer.alloc(4096));
    const t0 = Date.now();
    for (let i = 0; i < pdu.length && !tap.closed && Date.now() - t0 < 3000; i++) {
      c.socket.write(pdu.subarray(i, i + 1));
      await sleep(10);
    }
    expect(tap.closed).toBe(true);
    expect(Date.now() - t0).toBeLessThan(STALL + 1500);
  });

  it('an R2T whose H2CData never finishes: closed after the stall timeout, with a log line', async () => {
    const { log, lines } = logSink();
    const [p1] = await boot(undefined, { log, limits: { stallTimeoutMs: STALL } });
    const a = await admin(p1!);
    const { c, tap } = await rawIo(p1!, a, 1);
    c.socket.write(handCapsule(sqeBytes(writeCommand(1, 0, 64, 32768, false), 3), null));
    const r2t = await tap.pdu(T.R2T);
    const t0 = Date.now();
    c.socket.write(handH2CData({ cccid: 3, ttag: r2t.bytes.readUInt16LE(10), datao: 0, last: false }, Buffer.alloc(8192)));
    await tap.waitClosed(3000);
    expect(Date.now() - t0).toBeLessThan(STALL + 1500);
    expect(lines.some((l) => /stalled sender: the data asked for by R2T/.test(l.msg))).toBe(true);
    expect(tap.pdus().some((p) => p.type === T.CapsuleResp)).toBe(false);
  });

  it('an idle connection between complete PDUs is not a stalled sender; a blackholed (frozen) one is not closed by the stall timer', async () => {
    const [p1, p2] = await boot(undefined, { limits: { stallTimeoutMs: STALL } });
    const a = await admin(p1!);
    const q = await io(p1!, a, 1);
    await sleep(STALL * 3);
    expect(q.closed).toBe(false);
    const data = patternBlocks(10, 8, 512, 1);
    expect((await q.command(writeCommand(1, 10, 8, data.length, false), { data })).cqe.status).toBe(0);
    // A partial PDU on a port the target blackholes: it is the target that stopped reading.
    const b = await admin(p2!);
    const { c, tap } = await rawIo(p2!, b, 1);
    c.socket.write(handCapsule(sqeBytes(writeCommand(1, 0, 8, 4096, true), 1), Buffer.alloc(4096)).subarray(0, 200));
    await sleep(20);
    target!.setBlackhole(2, true);
    await sleep(STALL * 3);
    expect(tap.closed).toBe(false);
    target!.setBlackhole(2, false);
    c.socket.write(handCapsule(sqeBytes(writeCommand(1, 0, 8, 4096, true), 1), Buffer.alloc(4096)).subarray(200));
    const resp = await tap.pdu(T.CapsuleResp, () => true, 2000);
    expect(resp.bytes.readUInt16LE(8 + 14) >> 1).toBe(0);
  });
});
