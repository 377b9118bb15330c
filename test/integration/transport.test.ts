/**
 * NVMe/TCP transport conformance of the target, over real sockets: the IC
 * exchange, digests, in-capsule and R2T/H2CData data, C2HData, command ids,
 * malformed PDUs, PDU framing across TCP segments, and the setup timeout.
 *
 * Where the bytes matter the PDUs are built by hand (handPdu & co. in
 * raw-client.ts, with their own CRC32C) and the target's answers are cut and
 * read by hand from the byte stream (ByteTap), not by shared/.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Cns } from '../../shared/identify.ts';
import { encodeCapsuleCmd } from '../../shared/pdu.ts';
import { encodeSqe, identifyCommand, readCommand, setFeaturesCommand, withCid, writeCommand, type Sqe } from '../../shared/sqe.ts';
import {
  ByteTap,
  RawClient,
  handCapsule,
  handH2CData,
  handIcReq,
  handPdu,
  patternBlocks,
  rawSocket,
  refCrc32c,
  termReqFields,
  writeByteByByte,
  type RawPdu,
} from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import type { Target, TargetOptions } from '../../target/target.ts';

const NSID = 1;
const BS = 512;
const T = { ICResp: 0x01, C2HTermReq: 0x03, CapsuleResp: 0x05, C2HData: 0x07, R2T: 0x09 } as const;
const F = { HDGSTF: 0x01, DDGSTF: 0x02, LAST: 0x04, SUCCESS: 0x08 } as const;
// Statuses as the CQE carries them (SCT << 8 | SC, DNR 0x4000).
const DNR = 0x4000;
const SGL_OFFSET_INVALID = 0x016;
const DATA_SGL_LENGTH_INVALID = 0x00f;
const TRANSIENT_TRANSPORT_ERROR = 0x022;
const COMMAND_ID_CONFLICT = 0x003;
const LBA_OUT_OF_RANGE = 0x080;

let target: Target | null = null;
const clients: { close(): void }[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await target?.stop();
  target = null;
});

/** Both ports serve I/O: ANA mode with group 1 optimized everywhere. */
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

async function admin(port: number, opts: { hdgst?: boolean; ddgst?: boolean } = {}): Promise<RawClient> {
  const c = await RawClient.admin(port, { subnqn: SUBNQN, kato: 0, ...opts });
  clients.push(c);
  return c;
}

async function io(port: number, adm: RawClient, qid: number, opts: { hdgst?: boolean; ddgst?: boolean; cattr?: number } = {}): Promise<RawClient> {
  const c = await RawClient.io(port, { subnqn: SUBNQN, cntlid: adm.cntlid, qid, ...opts });
  clients.push(c);
  return c;
}

async function tapped(port: number): Promise<ByteTap> {
  const tap = await rawSocket(port);
  clients.push({ close: () => tap.socket.destroy() });
  return tap;
}

/** SQE bytes with the given cid. */
function sqeBytes(s: Sqe, cid: number): Buffer {
  return encodeSqe(withCid(s, cid));
}

/** Write with R2T and read back: the queue moves data correctly. */
async function verifiedRoundTrip(c: RawClient, slba: number, nlb: number, generation: number): Promise<void> {
  const data = patternBlocks(slba, nlb, BS, generation);
  const w = await c.command(writeCommand(NSID, slba, nlb, data.length, false), { data });
  expect(w.cqe.status).toBe(0);
  const r = await c.command(readCommand(NSID, slba, nlb, data.length));
  expect(r.cqe.status).toBe(0);
  expect(r.data.equals(data)).toBe(true);
}

/**
 * The connection ends with exactly one C2HTermReq (the last PDU received) and
 * is closed. Returns FES and FEI read by hand. With `offending`, the TermReq's
 * error data must be a copy of that PDU's header: `headerLength` bytes when
 * given, else at least the 8-byte common header.
 */
async function expectTermination(
  tap: ByteTap,
  fes: number | number[],
  fei?: number,
  offending?: Buffer,
  headerLength?: number,
): Promise<{ fes: number; fei: number }> {
  const term = await tap.pdu(T.C2HTermReq, () => true, 3000);
  await tap.waitClosed(3000);
  const pdus = tap.pdus();
  expect(pdus.filter((p) => p.type === T.C2HTermReq)).toHaveLength(1);
  expect(pdus[pdus.length - 1]!.type).toBe(T.C2HTermReq);
  expect(term.hlen).toBe(24);
  expect(term.flags).toBe(0); // Term PDUs never carry digests
  const f = termReqFields(term);
  if (Array.isArray(fes)) expect(fes).toContain(f.fes);
  else expect(f.fes).toBe(fes);
  if (fei !== undefined) expect(f.fei).toBe(fei);
  // Whole Term PDU at most 152 bytes (Linux drops a longer one as malformed).
  expect(term.plen).toBeLessThanOrEqual(152);
  expect(term.pdo).toBe(f.errorData.length ? 24 : 0);
  if (offending) {
    if (headerLength !== undefined) expect(f.errorData.length).toBe(headerLength);
    else expect(f.errorData.length).toBeGreaterThanOrEqual(8);
    expect(f.errorData.equals(offending.subarray(0, f.errorData.length))).toBe(true);
  }
  return f;
}

/** Every PDU carries exactly the digests negotiated, and they are right (checked with our own CRC32C). */
function checkDigests(pdus: RawPdu[], d: { hdgst: boolean; ddgst: boolean }): void {
  for (const p of pdus) {
    expect(!!(p.flags & F.HDGSTF), `HDGSTF on PDU type ${p.type}`).toBe(d.hdgst);
    const hd = d.hdgst ? 4 : 0;
    if (d.hdgst) expect(p.bytes.readUInt32LE(p.hlen)).toBe(refCrc32c(p.bytes.subarray(0, p.hlen)));
    const hasData = p.plen > p.hlen + hd;
    if (!hasData) {
      expect(p.flags & F.DDGSTF).toBe(0);
      continue;
    }
    expect(p.pdo).toBeGreaterThanOrEqual(p.hlen + hd);
    expect(!!(p.flags & F.DDGSTF), `DDGSTF on PDU type ${p.type}`).toBe(d.ddgst);
    const end = p.plen - (d.ddgst ? 4 : 0);
    const data = p.bytes.subarray(p.pdo, end);
    if (p.type === T.C2HData) expect(p.bytes.readUInt32LE(16)).toBe(data.length);
    if (d.ddgst) expect(p.bytes.readUInt32LE(end)).toBe(refCrc32c(data));
  }
}

function settled<T>(p: Promise<T>): () => boolean {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return () => done;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------

describe('ICReq / ICResp', () => {
  it('ICReq with PFV != 0: C2HTermReq FES 6 (Unsupported Parameter), FEI 8, then close', async () => {
    const [p1] = await boot();
    const tap = await tapped(p1!);
    const ic = handIcReq({ pfv: 1 });
    tap.socket.write(ic);
    await expectTermination(tap, 6, 8, ic, 128);
    expect(tap.pdus().some((p) => p.type === T.ICResp)).toBe(false);
  });

  it('ICReq with HPDA > 31: C2HTermReq FES 1, FEI 10', async () => {
    const [p1] = await boot();
    const tap = await tapped(p1!);
    const ic = handIcReq({ hpda: 32 });
    tap.socket.write(ic);
    await expectTermination(tap, 1, 10, ic, 128);
  });

  it('ICReq with PLEN != 128: C2HTermReq FES 1', async () => {
    const [p1] = await boot();
    const tap = await tapped(p1!);
    const ic = Buffer.concat([handIcReq({ plen: 132 }), Buffer.alloc(4)]);
    tap.socket.write(ic);
    await expectTermination(tap, 1, 4, ic);
  });

  it('a second ICReq: C2HTermReq FES 2 (PDU Sequence Error)', async () => {
    const [p1] = await boot();
    const tap = await tapped(p1!);
    tap.socket.write(handIcReq());
    await tap.pdu(T.ICResp);
    const again = handIcReq({ hdgst: true });
    tap.socket.write(again);
    await expectTermination(tap, 2, undefined, again, 128);
  });

  it('a CapsuleCmd before ICReq: C2HTermReq FES 2', async () => {
    const [p1] = await boot();
    const tap = await tapped(p1!);
    const capsule = handCapsule(sqeBytes(identifyCommand({ cns: Cns.Controller }), 1), null);
    tap.socket.write(capsule);
    await expectTermination(tap, 2, undefined, capsule, 72);
    expect(tap.pdus().some((p) => p.type === T.CapsuleResp)).toBe(false);
  });

  it('ICResp: PLEN 128, PFV 0, CPDA 0, digests mirror the request, MAXH2CDATA a multiple of 4 and >= 4096', async () => {
    const [p1, p2] = await boot((doc) => {
      doc['ports'][1].ext = { maxh2cdata: 8192 };
    });
    for (const port of [p1!, p2!]) {
      for (const [hdgst, ddgst] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const) {
        const tap = await tapped(port);
        tap.socket.write(handIcReq({ hdgst, ddgst, hpda: 0, maxr2t: 0 }));
        const r = await tap.pdu(T.ICResp);
        const b = r.bytes;
        expect(b.length).toBe(128);
        expect([b[0], b[1], b[2], b[3]]).toEqual([0x01, 0x00, 128, 0]);
        expect(b.readUInt32LE(4)).toBe(128);
        expect(b.readUInt16LE(8)).toBe(0); // PFV
        expect(b[10]).toBe(0); // CPDA
        expect(b[11]).toBe((hdgst ? 1 : 0) | (ddgst ? 2 : 0));
        const maxh2c = b.readUInt32LE(12);
        expect(maxh2c % 4).toBe(0);
        expect(maxh2c).toBeGreaterThanOrEqual(4096);
        expect(maxh2c).toBe(port === p2 ? 8192 : 131072);
        expect(tap.closed).toBe(false);
        tap.socket.destroy();
      }
    }
  });
});

describe('PDU data alignment and host termination', () => {
  it.each([
    { hpda: 1, hdgst: false },
    { hpda: 7, hdgst: true },
  ])('ICReq HPDA $hpda (hdgst $hdgst): C2HData data starts at a multiple of (HPDA+1)*4, padded with zeros', async ({ hpda, hdgst }) => {
    const [p1] = await boot();
    const adm = await admin(p1!);
    const data = patternBlocks(900, 16, BS, 1);
    const w = await io(p1!, adm, 1);
    expect((await w.command(writeCommand(NSID, 900, 16, data.length, false), { data })).cqe.status).toBe(0);
    const q = await RawClient.connect(p1!);
    clients.push(q);
    await q.initialize({ hpda, hdgst });
    expect((await q.connectQueue({ qid: 2, subnqn: SUBNQN, cntlid: adm.cntlid, sqsize: 127 })).cqe.status).toBe(0);
    const tap = new ByteTap(q.socket);
    const r = await q.command(readCommand(NSID, 900, 16, data.length));
    expect(r.data.equals(data)).toBe(true);
    const c2h = tap.pdus().filter((p) => p.type === T.C2HData);
    expect(c2h.length).toBeGreaterThan(0);
    const align = (hpda + 1) * 4;
    const headerEnd = 24 + (hdgst ? 4 : 0);
    for (const p of c2h) {
      expect(p.pdo % align).toBe(0);
      expect(p.pdo).toBeGreaterThanOrEqual(headerEnd);
      expect(p.bytes.subarray(headerEnd, p.pdo).equals(Buffer.alloc(p.pdo - headerEnd))).toBe(true);
      expect(p.plen).toBe(p.pdo + p.bytes.readUInt32LE(16));
    }
    checkDigests(tap.pdus(), { hdgst, ddgst: false });
  });

  it('an H2CTermReq from the host: the target closes the connection without answering', async () => {
    const [p1] = await boot();
    const adm = await admin(p1!);
    const q = await io(p1!, adm, 1);
    const tap = new ByteTap(q.socket);
    const term = handPdu({ type: 0x02, hlen: 24, fill: (h) => h.writeUInt16LE(2, 8) });
    q.socket.write(term);
    await tap.waitClosed(3000);
    expect(tap.bytes.length).toBe(0);
    expect((await adm.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
  });
});

describe('digests', () => {
  it.each([
    { hdgst: true, ddgst: false },
    { hdgst: false, ddgst: true },
    { hdgst: true, ddgst: true },
  ])('write/read round trip with %o: every PDU carries correct digests', async (d) => {
    const [p1] = await boot();
    const adm = await admin(p1!, d);
    const admTap = new ByteTap(adm.socket);
    const idc = await adm.command(identifyCommand({ cns: Cns.Controller }));
    expect(idc.cqe.status).toBe(0);
    expect(idc.data.length).toBe(4096);
    const q = await io(p1!, adm, 1, d);
    const tap = new ByteTap(q.socket);
    // In-capsule write built by hand (our own CRC32C): the target must accept our digests.
    const small = patternBlocks(10, 8, BS, 1);
    const done = q.track(0x100);
    q.socket.write(handCapsule(sqeBytes(writeCommand(NSID, 10, 8, small.length, true), 0x100), small, d));
    expect((await done).cqe.status).toBe(0);
    // R2T write over several H2CData PDUs, and a read over several C2HData PDUs.
    const big = patternBlocks(1000, 600, BS, 2);
    const w = await q.command(writeCommand(NSID, 1000, 600, big.length, false), { data: big });
    expect(w.cqe.status).toBe(0);
    expect(w.r2ts).toBe(1);
    const r1 = await q.command(readCommand(NSID, 10, 8, small.length));
    expect(r1.data.equals(small)).toBe(true);
    const r2 = await q.command(readCommand(NSID, 1000, 600, big.length));
    expect(r2.data.equals(big)).toBe(true);
    expect(r2.c2hPdus).toBeGreaterThan(1);
    const pdus = tap.pdus();
    expect(pdus.filter((p) => p.type === T.C2HData).length).toBeGreaterThanOrEqual(3);
    expect(pdus.filter((p) => p.type === T.R2T)).toHaveLength(1);
    checkDigests(pdus, d);
    checkDigests(admTap.pdus(), d);
  });

  it('a corrupted header digest: C2HTermReq FES 3 (Header Digest Error)', async () => {
    const [p1] = await boot();
    const adm = await admin(p1!, { hdgst: true });
    const tap = new ByteTap(adm.socket);
    const bad = handCapsule(sqeBytes(identifyCommand({ cns: Cns.Controller }), 0x200), null, { hdgst: true, badHdgst: 0x1 });
    adm.socket.write(bad);
    // FEI of a header digest error is the HDGST value received.
    await expectTermination(tap, 3, bad.readUInt32LE(72), bad, 72);
    expect(tap.pdus().some((p) => p.type === T.CapsuleResp || p.type === T.C2HData)).toBe(false);
  });

  it('a corrupted data digest on an in-capsule write: Transient Transport Error, nothing written, connection usable', async () => {
    const [p1] = await boot();
    const d = { hdgst: true, ddgst: true };
    const adm = await admin(p1!, d);
    const q = await io(p1!, adm, 1, d);
    const a = patternBlocks(200, 4, BS, 1);
    expect((await q.command(writeCommand(NSID, 200, 4, a.length, true), { data: a, inCapsule: true })).cqe.status).toBe(0);
    const b = patternBlocks(200, 4, BS, 2);
    const res = q.track(0x300);
    q.socket.write(handCapsule(sqeBytes(writeCommand(NSID, 200, 4, b.length, true), 0x300), b, { ...d, badDdgst: 0x80 }));
    const r = await res;
    expect(r.cqe.cid).toBe(0x300);
    expect(r.cqe.status).toBe(TRANSIENT_TRANSPORT_ERROR); // SCT 0, SC 22h, DNR clear: the host may retry
    const back = await q.command(readCommand(NSID, 200, 4, a.length));
    expect(back.cqe.status).toBe(0);
    expect(back.data.equals(a)).toBe(true);
    expect((await q.command(writeCommand(NSID, 200, 4, b.length, true), { data: b, inCapsule: true })).cqe.status).toBe(0);
    expect((await q.command(readCommand(NSID, 200, 4, b.length))).data.equals(b)).toBe(true);
  });

  it('a corrupted data digest on an H2CData PDU: Transient Transport Error after the last PDU, connection usable', async () => {
    const [p1] = await boot();
    const d = { hdgst: false, ddgst: true };
    const adm = await admin(p1!, d);
    const q = await io(p1!, adm, 1, d);
    const tap = new ByteTap(q.socket);
    const a = patternBlocks(300, 32, BS, 1);
    expect((await q.command(writeCommand(NSID, 300, 32, a.length, false), { data: a })).cqe.status).toBe(0);
    const b = patternBlocks(300, 32, BS, 2);
    const cid = 0x301;
    const res = q.track(cid);
    const isDone = settled(res);
    q.socket.write(handCapsule(sqeBytes(writeCommand(NSID, 300, 32, b.length, false), cid), null, d));
    const r2t = await tap.pdu(T.R2T, (p) => p.bytes.readUInt16LE(8) === cid);
    const ttag = r2t.bytes.readUInt16LE(10);
    const half = b.length / 2;
    q.socket.write(handH2CData({ cccid: cid, ttag, datao: 0, last: false }, b.subarray(0, half), { ...d, badDdgst: 0x1 }));
    await sleep(100);
    expect(isDone()).toBe(false); // the command waits for the rest of its data
    q.socket.write(handH2CData({ cccid: cid, ttag, datao: half, last: true }, b.subarray(half), d));
    const r = await res;
    expect(r.cqe.status).toBe(TRANSIENT_TRANSPORT_ERROR);
    const back = await q.command(readCommand(NSID, 300, 32, a.length));
    expect(back.data.equals(a)).toBe(true);
    await verifiedRoundTrip(q, 300, 32, 3);
  });

  it('HDGSTF missing while header digests are negotiated: C2HTermReq FES 1', async () => {
    const [p1] = await boot();
    const adm = await admin(p1!, { hdgst: true });
    const tap = new ByteTap(adm.socket);
    const bad = handCapsule(sqeBytes(identifyCommand({ cns: Cns.Controller }), 0x201), null, { hdgst: false });
    adm.socket.write(bad);
    await expectTermination(tap, 1, 1, bad);
  });
});

describe('in-capsule data', () => {
  const edit = (doc: Record<string, any>) => {
    doc['ports'][0].param.inline_data_size = '4096';
    doc['ports'][1].param.inline_data_size = '0';
  };

  it('I/O queues accept in-capsule data up to inline_data_size; more is SGL Offset Invalid (DNR)', async () => {
    const [p1, p2] = await boot(edit);
    const adm = await admin(p1!);
    const q = await io(p1!, adm, 1);
    const a = patternBlocks(40, 8, BS, 1); // exactly 4096
    expect((await q.command(writeCommand(NSID, 40, 8, a.length, true), { data: a, inCapsule: true })).cqe.status).toBe(0);
    expect((await q.command(readCommand(NSID, 40, 8, a.length))).data.equals(a)).toBe(true);
    for (const nlb of [9, 16]) {
      const b = patternBlocks(40, nlb, BS, 2);
      const r = await q.command(writeCommand(NSID, 40, nlb, b.length, true), { data: b, inCapsule: true });
      expect(r.cqe.status).toBe(DNR | SGL_OFFSET_INVALID);
    }
    // Nothing was written, and the same data is fine by R2T.
    expect((await q.command(readCommand(NSID, 40, 8, a.length))).data.equals(a)).toBe(true);
    await verifiedRoundTrip(q, 40, 16, 3);

    // inline_data_size 0: the I/O Connect (1024 bytes in-capsule) still works, a write in-capsule does not.
    const adm2 = await admin(p2!);
    const q2 = await io(p2!, adm2, 1);
    const c = patternBlocks(50, 1, BS, 1);
    expect((await q2.command(writeCommand(NSID, 50, 1, c.length, true), { data: c, inCapsule: true })).cqe.status).toBe(DNR | SGL_OFFSET_INVALID);
    await verifiedRoundTrip(q2, 50, 1, 2);
  });

  it('the admin queue and Connect accept 8 KiB in-capsule whatever inline_data_size says', async () => {
    const [, p2] = await boot(edit);
    const adm = await admin(p2!); // Connect on a port with inline_data_size 0
    const r = await adm.command(setFeaturesCommand(0x0f, 0, { data: 8192 }), { data: Buffer.alloc(8192, 0xa5), inCapsule: true });
    expect(r.cqe.status).toBe(0);
    const q = await io(p2!, adm, 1);
    expect(q.cntlid).toBe(adm.cntlid);
  });

  it('an SGL longer than the capsule data: Data SGL Length Invalid', async () => {
    const [p1] = await boot();
    const adm = await admin(p1!);
    const q = await io(p1!, adm, 1);
    const r = await q.command(writeCommand(NSID, 60, 4, 2048, true), { data: Buffer.alloc(1024, 1), inCapsule: true });
    expect(r.cqe.status).toBe(DNR | DATA_SGL_LENGTH_INVALID);
    const ra = await adm.command(setFeaturesCommand(0x0f, 0, { data: 4096 }), { data: Buffer.alloc(1024), inCapsule: true });
    expect(ra.cqe.status).toBe(DNR | DATA_SGL_LENGTH_INVALID);
    await verifiedRoundTrip(q, 60, 4, 1);
  });
});

describe('R2T and H2CData', () => {
  const MAXH2C = 8192;
  const edit = (doc: Record<string, any>) => {
    doc['ports'][0].ext = { maxh2cdata: MAXH2C };
  };

  /** An I/O queue with a write waiting for its data: the R2T read by hand. */
  async function pendingWrite(nlb: number, cid = 0x2222) {
    const [p1] = await boot(edit);
    const adm = await admin(p1!);
    const q = await io(p1!, adm, 1);
    const tap = new ByteTap(q.socket);
    const data = patternBlocks(500, nlb, BS, 7);
    const result = q.track(cid);
    result.catch(() => undefined);
    q.socket.write(handCapsule(sqeBytes(writeCommand(NSID, 500, nlb, data.length, false), cid), null));
    const r2t = await tap.pdu(T.R2T);
    return { adm, q, tap, data, cid, result, r2t, ttag: r2t.bytes.readUInt16LE(10) };
  }

  it('one R2T for the whole transfer (R2TO 0, R2TL = length); H2CData chunks of MAXH2CDATA accepted', async () => {
    const w = await pendingWrite(80); // 40 KiB = 5 x MAXH2CDATA
    const b = w.r2t.bytes;
    expect(w.r2t.hlen).toBe(24);
    expect(w.r2t.plen).toBe(24);
    expect(b.readUInt16LE(8)).toBe(w.cid);
    expect(b.readUInt32LE(12)).toBe(0);
    expect(b.readUInt32LE(16)).toBe(w.data.length);
    for (let off = 0; off < w.data.length; off += MAXH2C) {
      const last = off + MAXH2C >= w.data.length;
      w.q.socket.write(handH2CData({ cccid: w.cid, ttag: w.ttag, datao: off, last }, w.data.subarray(off, off + MAXH2C)));
    }
    const r = await w.result;
    expect(r.cqe.status).toBe(0);
    expect(w.tap.pdus().filter((p) => p.type === T.R2T)).toHaveLength(1);
    const back = await w.q.command(readCommand(NSID, 500, 80, w.data.length));
    expect(back.data.equals(w.data)).toBe(true);
  });

  it('H2CData with an unknown TTAG: FES 1, FEI 10', async () => {
    const w = await pendingWrite(8);
    const bad = handH2CData({ cccid: w.cid, ttag: w.ttag ^ 0x5a5a, datao: 0, last: true }, w.data);
    w.q.socket.write(bad);
    await expectTermination(w.tap, 1, 10, bad, 24);
  });

  it('H2CData whose CCCID does not match the TTAG: FES 1', async () => {
    const w = await pendingWrite(8);
    const bad = handH2CData({ cccid: w.cid + 1, ttag: w.ttag, datao: 0, last: true }, w.data);
    w.q.socket.write(bad);
    await expectTermination(w.tap, 1, 8, bad, 24);
  });

  it('H2CData leaving a gap: FES 4 (Data Transfer Out of Range)', async () => {
    const w = await pendingWrite(48);
    w.q.socket.write(handH2CData({ cccid: w.cid, ttag: w.ttag, datao: 0, last: false }, w.data.subarray(0, MAXH2C)));
    const bad = handH2CData({ cccid: w.cid, ttag: w.ttag, datao: 2 * MAXH2C, last: false }, w.data.subarray(2 * MAXH2C, 3 * MAXH2C));
    w.q.socket.write(bad);
    await expectTermination(w.tap, 4, undefined, bad, 24);
  });

  it('H2CData overlapping data already sent: FES 4', async () => {
    const w = await pendingWrite(48);
    w.q.socket.write(handH2CData({ cccid: w.cid, ttag: w.ttag, datao: 0, last: false }, w.data.subarray(0, MAXH2C)));
    const bad = handH2CData({ cccid: w.cid, ttag: w.ttag, datao: 4096, last: false }, w.data.subarray(4096, 4096 + MAXH2C));
    w.q.socket.write(bad);
    await expectTermination(w.tap, 4, undefined, bad, 24);
  });

  it('H2CData beyond what the R2T asked for: FES 4', async () => {
    const w = await pendingWrite(24); // 12 KiB
    w.q.socket.write(handH2CData({ cccid: w.cid, ttag: w.ttag, datao: 0, last: false }, w.data.subarray(0, MAXH2C)));
    const bad = handH2CData({ cccid: w.cid, ttag: w.ttag, datao: MAXH2C, last: true }, Buffer.alloc(MAXH2C, 0xee));
    w.q.socket.write(bad);
    await expectTermination(w.tap, 4, undefined, bad, 24);
  });

  it('LAST_PDU missing on the final H2CData: FES 1', async () => {
    const w = await pendingWrite(32);
    w.q.socket.write(handH2CData({ cccid: w.cid, ttag: w.ttag, datao: 0, last: false }, w.data.subarray(0, MAXH2C)));
    const bad = handH2CData({ cccid: w.cid, ttag: w.ttag, datao: MAXH2C, last: false }, w.data.subarray(MAXH2C));
    w.q.socket.write(bad);
    await expectTermination(w.tap, 1, undefined, bad, 24);
    expect(w.tap.pdus().some((p) => p.type === T.CapsuleResp)).toBe(false);
  });

  it('LAST_PDU set before all data was sent: FES 1', async () => {
    const w = await pendingWrite(32);
    const bad = handH2CData({ cccid: w.cid, ttag: w.ttag, datao: 0, last: true }, w.data.subarray(0, MAXH2C));
    w.q.socket.write(bad);
    await expectTermination(w.tap, 1, undefined, bad, 24);
    expect(w.tap.pdus().some((p) => p.type === T.CapsuleResp)).toBe(false);
  });

  it('H2CData larger than MAXH2CDATA: FES 5, answered from the header alone', async () => {
    const w = await pendingWrite(32);
    const pdu = handH2CData({ cccid: w.cid, ttag: w.ttag, datao: 0, last: false }, w.data.subarray(0, MAXH2C + 4));
    w.q.socket.write(pdu.subarray(0, 24)); // the header only: the rest never comes
    await expectTermination(w.tap, 5, undefined, pdu);
  });
});

describe('C2HData', () => {
  it('a read larger than 128 KiB: several C2HData PDUs, LAST only on the final one, then a CapsuleResp', async () => {
    const [p1] = await boot();
    const adm = await admin(p1!);
    const q = await io(p1!, adm, 1);
    const data = patternBlocks(2000, 640, BS, 1); // 320 KiB
    expect((await q.command(writeCommand(NSID, 2000, 640, data.length, false), { data })).cqe.status).toBe(0);
    const tap = new ByteTap(q.socket);
    const cid = 0x4321;
    const r = await q.command(readCommand(NSID, 2000, 640, data.length), { cid });
    expect(r.cqe.status).toBe(0);
    const pdus = tap.pdus();
    const c2h = pdus.filter((p) => p.type === T.C2HData);
    expect(c2h.length).toBeGreaterThanOrEqual(3);
    let expectOffset = 0;
    const parts: Buffer[] = [];
    c2h.forEach((p, i) => {
      expect(p.bytes.readUInt16LE(8)).toBe(cid);
      expect(p.bytes.readUInt32LE(12)).toBe(expectOffset);
      const datal = p.bytes.readUInt32LE(16);
      expect(datal).toBeLessThanOrEqual(131072);
      parts.push(p.bytes.subarray(p.pdo, p.pdo + datal));
      expectOffset += datal;
      expect(!!(p.flags & F.LAST)).toBe(i === c2h.length - 1);
      expect(p.flags & F.SUCCESS).toBe(0);
    });
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    const respIndex = pdus.findIndex((p) => p.type === T.CapsuleResp);
    expect(respIndex).toBe(pdus.length - 1);
    expect(pdus.indexOf(c2h[c2h.length - 1]!)).toBeLessThan(respIndex);
  });

  it('SQ flow control disabled (CATTR bit 2): SUCCESS|LAST on the final C2HData and no CapsuleResp; a failed read still gets one', async () => {
    const [p1] = await boot();
    const adm = await admin(p1!);
    const q = await io(p1!, adm, 1, { cattr: 0x04 });
    const data = patternBlocks(3000, 600, BS, 1);
    expect((await q.command(writeCommand(NSID, 3000, 600, data.length, false), { data })).cqe.status).toBe(0);
    const tap = new ByteTap(q.socket);
    const cid = 0x5150;
    const r = await q.command(readCommand(NSID, 3000, 600, data.length), { cid });
    expect(r.successFlag).toBe(true);
    expect(r.data.equals(data)).toBe(true);
    // A later command completes; by then a stray CapsuleResp for the read would have arrived.
    const fail = await q.command(readCommand(NSID, 131072 - 2, 4, 4 * BS), { cid: 0x5151 });
    expect(fail.cqe.status & 0x7ff).toBe(LBA_OUT_OF_RANGE);
    await sleep(50);
    const pdus = tap.pdus();
    const c2h = pdus.filter((p) => p.type === T.C2HData && p.bytes.readUInt16LE(8) === cid);
    expect(c2h.length).toBeGreaterThan(1);
    c2h.forEach((p, i) => {
      const final = i === c2h.length - 1;
      expect(p.flags & (F.LAST | F.SUCCESS)).toBe(final ? F.LAST | F.SUCCESS : 0);
    });
    const resps = pdus.filter((p) => p.type === T.CapsuleResp).map((p) => p.bytes.readUInt16LE(8 + 12));
    expect(resps).not.toContain(cid);
    expect(resps).toEqual([0x5151]);
    expect(pdus.some((p) => p.type === T.C2HData && p.bytes.readUInt16LE(8) === 0x5151)).toBe(false);
    // A write still completes with a CapsuleResp.
    await verifiedRoundTrip(q, 3000, 8, 2);
  });
});

describe('command identifiers', () => {
  it('are echoed unchanged, high bits included, in CapsuleResp, R2T and C2HData', async () => {
    const [p1] = await boot();
    const adm = await admin(p1!);
    const q = await io(p1!, adm, 1);
    const tap = new ByteTap(q.socket);
    const cids = [0xabcd, 0xffff, 0x0000, 0x8000, 0x7fff, 0xc001];
    for (const [i, cid] of cids.entries()) {
      tap.clear();
      const data = patternBlocks(4000 + i * 64, 32, BS, 1);
      const w = await q.command(writeCommand(NSID, 4000 + i * 64, 32, data.length, false), { data, cid });
      expect(w.cqe.cid).toBe(cid);
      expect(w.cqe.status).toBe(0);
      const wi = await q.command(writeCommand(NSID, 4000 + i * 64, 1, BS, true), { data: data.subarray(0, BS), inCapsule: true, cid });
      expect(wi.cqe.cid).toBe(cid);
      const r = await q.command(readCommand(NSID, 4000 + i * 64, 32, data.length), { cid });
      expect(r.cqe.cid).toBe(cid);
      expect(r.data.equals(data)).toBe(true);
      const ad = await adm.command(identifyCommand({ cns: Cns.Controller }), { cid });
      expect(ad.cqe.cid).toBe(cid);
      for (const p of tap.pdus()) {
        if (p.type === T.CapsuleResp) expect(p.bytes.readUInt16LE(20)).toBe(cid);
        else expect(p.bytes.readUInt16LE(8)).toBe(cid); // R2T CCCID, C2HData CCCID
      }
      expect(tap.pdus().filter((p) => p.type === T.CapsuleResp)).toHaveLength(3);
    }
  });

  it('a command id still in flight is refused with Command ID Conflict; the first command is unaffected', async () => {
    const [p1] = await boot();
    const adm = await admin(p1!);
    const q = await io(p1!, adm, 1);
    const tap = new ByteTap(q.socket);
    const cid = 0x0777;
    const data = patternBlocks(5000, 16, BS, 1);
    const first = q.track(cid);
    q.socket.write(handCapsule(sqeBytes(writeCommand(NSID, 5000, 16, data.length, false), cid), null));
    const r2t = await tap.pdu(T.R2T);
    // The write waits for its data; a second command with the same id arrives.
    q.socket.write(handCapsule(sqeBytes(readCommand(NSID, 5000, 16, data.length), cid), null));
    const dup = await first; // the only completion that can arrive now is the duplicate's
    expect(dup.cqe.status & 0x7ff).toBe(COMMAND_ID_CONFLICT);
    expect(dup.data.length).toBe(0);
    const second = q.track(cid);
    q.socket.write(handH2CData({ cccid: cid, ttag: r2t.bytes.readUInt16LE(10), datao: 0, last: true }, data));
    expect((await second).cqe.status).toBe(0);
    expect((await q.command(readCommand(NSID, 5000, 16, data.length))).data.equals(data)).toBe(true);
  });
});

describe('malformed PDUs', () => {
  const sqe = () => sqeBytes(writeCommand(NSID, 10, 1, BS, true), 0x0909);
  const cases: { name: string; bytes: () => Buffer; fes: number[]; fei?: number; partial?: boolean }[] = [
    { name: 'unknown PDU type 0x0A', bytes: () => handPdu({ type: 0x0a, hlen: 24 }), fes: [1], fei: 0 },
    { name: 'a PDU only the target sends (CapsuleResp)', bytes: () => handPdu({ type: 0x05, hlen: 24 }), fes: [1], fei: 0 },
    { name: 'CapsuleCmd with HLEN 64', bytes: () => handPdu({ type: 0x04, hlen: 64, fill: (h) => sqe().copy(h, 8, 0, 56) }), fes: [1], fei: 2 },
    { name: 'CapsuleCmd with PDO inside the header', bytes: () => handCapsule(sqe(), Buffer.alloc(BS), { pdo: 40 }), fes: [1], fei: 3 },
    {
      name: 'CapsuleCmd with PLEN 0xFFFFFFF0 (header only, the rest never sent)',
      bytes: () => handCapsule(sqe(), Buffer.alloc(BS), { plen: 0xfffffff0 }).subarray(0, 72),
      fes: [1, 5],
      partial: true,
    },
  ];

  it.each(cases)('$name: only that connection closes; other queues and controllers keep working', async (c) => {
    const [p1, p2] = await boot();
    const a = await admin(p1!);
    const a1 = await io(p1!, a, 1);
    const a2 = await io(p1!, a, 2);
    const b = await admin(p2!);
    const b1 = await io(p2!, b, 1);
    const tap = new ByteTap(a1.socket);
    const started = Date.now();
    const bytes = c.bytes();
    a1.socket.write(bytes);
    await expectTermination(tap, c.fes, c.fei, bytes);
    if (c.partial) expect(Date.now() - started).toBeLessThan(1000);

    expect((await a.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
    await verifiedRoundTrip(a2, 6000, 16, 1);
    expect((await b.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
    await verifiedRoundTrip(b1, 6100, 16, 1);
    const ctrls = target!.snapshot().subsystems[0]!.controllers;
    expect(
      ctrls
        .find((x) => x.cntlid === a.cntlid)!
        .queues.map((x) => x.qid)
        .sort(),
    ).toEqual([0, 2]);
    expect(
      ctrls
        .find((x) => x.cntlid === b.cntlid)!
        .queues.map((x) => x.qid)
        .sort(),
    ).toEqual([0, 1]);
    // The lost queue can be connected again.
    const again = await io(p1!, a, 1);
    await verifiedRoundTrip(again, 6200, 8, 1);
  });
});

describe('framing across TCP segments', () => {
  it('PDUs split at every byte boundary (digests on): in-capsule write, R2T write and read', async () => {
    const [p1] = await boot();
    const d = { hdgst: true, ddgst: true };
    const adm = await admin(p1!, d);
    const q = await io(p1!, adm, 1, d);
    const tap = new ByteTap(q.socket);
    const small = patternBlocks(7000, 1, BS, 1);
    let res = q.track(0x31);
    await writeByteByByte(q.socket, Buffer.concat(encodeCapsuleCmd(sqeBytes(writeCommand(NSID, 7000, 1, BS, true), 0x31), small, q.wire)));
    expect((await res).cqe.status).toBe(0);

    const big = patternBlocks(7001, 8, BS, 2);
    res = q.track(0x32);
    await writeByteByByte(q.socket, handCapsule(sqeBytes(writeCommand(NSID, 7001, 8, big.length, false), 0x32), null, d));
    const r2t = await tap.pdu(T.R2T);
    await writeByteByByte(q.socket, handH2CData({ cccid: 0x32, ttag: r2t.bytes.readUInt16LE(10), datao: 0, last: true }, big, d));
    expect((await res).cqe.status).toBe(0);

    res = q.track(0x33);
    await writeByteByByte(q.socket, handCapsule(sqeBytes(readCommand(NSID, 7000, 9, 9 * BS), 0x33), null, d));
    const r = await res;
    expect(r.cqe.status).toBe(0);
    expect(r.data.equals(Buffer.concat([small, big]))).toBe(true);
  });

  it('several PDUs packed in one TCP write', async () => {
    const [p1] = await boot();
    const adm = await admin(p1!);
    const q = await io(p1!, adm, 1);
    const tap = new ByteTap(q.socket);
    // Data already on the namespace, read back by commands inside the packed write.
    const old = patternBlocks(8100, 64, BS, 1);
    expect((await q.command(writeCommand(NSID, 8100, 64, old.length, false), { data: old })).cqe.status).toBe(0);
    const big = patternBlocks(8000, 64, BS, 2);
    const wBig = q.track(0x41);
    q.socket.write(handCapsule(sqeBytes(writeCommand(NSID, 8000, 64, big.length, false), 0x41), null));
    const r2t = await tap.pdu(T.R2T, (p) => p.bytes.readUInt16LE(8) === 0x41);
    const ttag = r2t.bytes.readUInt16LE(10);
    const small = patternBlocks(8064, 4, BS, 2);
    const promises = [wBig, q.track(0x42), q.track(0x43), q.track(0x44), q.track(0x45)];
    q.socket.write(
      Buffer.concat([
        handH2CData({ cccid: 0x41, ttag, datao: 0, last: false }, big.subarray(0, 16384)),
        handCapsule(sqeBytes(writeCommand(NSID, 8064, 4, small.length, true), 0x42), small),
        handH2CData({ cccid: 0x41, ttag, datao: 16384, last: true }, big.subarray(16384)),
        handCapsule(sqeBytes(readCommand(NSID, 8100, 4, 4 * BS), 0x43), null),
        handCapsule(sqeBytes(readCommand(NSID, 131072 - 1, 2, 2 * BS), 0x44), null), // fails on its own
        handCapsule(sqeBytes(readCommand(NSID, 8100, 64, old.length), 0x45), null),
      ]),
    );
    const [rBig, rSmall, readSmall, outOfRange, readOld] = await Promise.all(promises);
    expect(rBig!.cqe.status).toBe(0);
    expect(rSmall!.cqe.status).toBe(0);
    expect(readSmall!.data.equals(old.subarray(0, 4 * BS))).toBe(true);
    expect(outOfRange!.cqe.status & 0x7ff).toBe(LBA_OUT_OF_RANGE);
    expect(readOld!.data.equals(old)).toBe(true);
    const back = await q.command(readCommand(NSID, 8000, 68, 68 * BS));
    expect(back.data.equals(Buffer.concat([big, small]))).toBe(true);
  });
});

describe('setup timeout', () => {
  it('a connection that never sends ICReq, or never Connects, is closed; a connected one is not', async () => {
    const [p1] = await boot(undefined, { limits: { setupTimeoutMs: 300 } });
    const started = Date.now();
    const silent = await tapped(p1!);
    const icOnly = await tapped(p1!);
    icOnly.socket.write(handIcReq());
    await icOnly.pdu(T.ICResp);
    const adm = await admin(p1!);
    await silent.waitClosed(3000);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    await icOnly.waitClosed(3000);
    await sleep(400);
    expect(adm.closed).toBe(false);
    expect((await adm.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
  });
});
