import { describe, expect, it } from 'vitest';
import { decodeCqe, encodeCqe, result64 } from '../../shared/cqe.ts';
import {
  Property,
  connectInvalidParam,
  decodeCap,
  decodeCc,
  decodeConnectData,
  decodeCsts,
  encodeCap,
  encodeCc,
  encodeConnectData,
  encodeCsts,
  nqnProblem,
} from '../../shared/fabrics.ts';
import {
  connectCommand,
  datasetManagementCommand,
  decodeConnect,
  decodeDsm,
  decodeDsmRanges,
  decodeProperty,
  decodeRw,
  decodeSqe,
  encodeDsmRanges,
  encodeSqe,
  propertySetCommand,
  readCommand,
  writeCommand,
  writeZeroesCommand,
} from '../../shared/sqe.ts';
import { SGL_INCAPSULE, SGL_TRANSPORT } from '../../shared/sgl.ts';
import { DNR, Status, describeStatus, isAnaError, isPathError, statusCode, statusCodeType, withDnr } from '../../shared/status.ts';

describe('SQE', () => {
  it('encodes a Read at the spec offsets (independent byte vector)', () => {
    const b = encodeSqe({ ...readCommand(1, 0x1_0000_0002, 8, 4096), cid: 0xbeef });
    const want = Buffer.alloc(64);
    want[0] = 0x02; // opcode
    want[1] = 0x40; // PSDT 01b: SGL
    want.writeUInt16LE(0xbeef, 2);
    want.writeUInt32LE(1, 4);
    want.writeUInt32LE(4096, 24 + 8); // SGL length
    want[24 + 15] = 0x5a; // transport data block
    want.writeUInt32LE(2, 40); // SLBA low
    want.writeUInt32LE(1, 44); // SLBA high
    want.writeUInt16LE(7, 48); // NLB 0's based
    expect(b).toEqual(want);
    const rw = decodeRw(decodeSqe(b));
    expect(rw).toMatchObject({ nsid: 1, slba: 0x1_0000_0002, nlb: 8, fua: false });
  });

  it('Write in-capsule vs R2T SGL, FUA; Write Zeroes DEAC', () => {
    expect(writeCommand(1, 0, 1, 512, true).sgl.id).toBe(SGL_INCAPSULE);
    expect(writeCommand(1, 0, 1, 512, false).sgl.id).toBe(SGL_TRANSPORT);
    expect(decodeRw(decodeSqe(encodeSqe(writeCommand(1, 0, 1, 512, true, true)))).fua).toBe(true);
    expect(decodeRw(decodeSqe(encodeSqe(writeZeroesCommand(1, 0, 1, true)))).deac).toBe(true);
    expect(() => readCommand(1, 0, 0x10001, 1)).toThrow(RangeError);
  });

  it('Connect: fctype at byte 4, fields at 40..51', () => {
    const b = encodeSqe(connectCommand({ recfmt: 0, qid: 3, sqsize: 127, cattr: 4, kato: 5000 }));
    expect(b[0]).toBe(0x7f);
    expect(b[4]).toBe(0x01);
    expect(b.readUInt16LE(42)).toBe(3);
    expect(b.readUInt16LE(44)).toBe(127);
    expect(b[46]).toBe(4);
    expect(b.readUInt32LE(48)).toBe(5000);
    expect(decodeConnect(decodeSqe(b))).toEqual({ recfmt: 0, qid: 3, sqsize: 127, cattr: 4, kato: 5000 });
  });

  it('Property Set 4 and 8 bytes', () => {
    const p = decodeProperty(propertySetCommand(Property.CC, 0x460001, 4));
    expect(p).toMatchObject({ size: 4, offset: 0x14, value: 0x460001n, attribInvalid: false });
    const q = decodeProperty(propertySetCommand(0, 0x1_0000_0001n, 8));
    expect(q.size).toBe(8);
    expect(q.value).toBe(0x1_0000_0001n);
  });

  it("DSM ranges round-trip and NR is 0's based", () => {
    const ranges = [
      { cattr: 0, nlb: 8, slba: 100 },
      { cattr: 0, nlb: 1, slba: 2 ** 40 },
    ];
    const s = datasetManagementCommand(1, ranges, true);
    expect(decodeDsm(s)).toMatchObject({ nr: 2, deallocate: true });
    const data = encodeDsmRanges(ranges);
    expect(data.readUInt32LE(4)).toBe(8);
    expect(decodeDsmRanges(data, 2)).toEqual(ranges);
  });
});

describe('CQE and status', () => {
  it('status sits above the phase bit; DNR is bit 14 of the 15-bit field', () => {
    const status = withDnr(Status.ConnectInvalidHost);
    const b = encodeCqe({ result: 0x10010, dw1: 0, sqhd: 5, sqid: 0, cid: 0xffff, status });
    expect(b.readUInt16LE(14)).toBe((0x4184 << 1) & 0xffff);
    const c = decodeCqe(b);
    expect(c.status).toBe(status);
    expect(statusCodeType(c.status)).toBe(1);
    expect(statusCode(c.status)).toBe(0x84);
    expect(c.status & DNR).toBe(DNR);
    expect(describeStatus(c.status)).toMatch(/ConnectInvalidHost.*DNR/);
    expect(result64({ ...c, result: 1, dw1: 2 })).toBe(0x2_0000_0001n);
  });

  it('classifies path errors', () => {
    expect(isPathError(Status.AnaInaccessible)).toBe(true);
    expect(isAnaError(Status.AnaTransition)).toBe(true);
    expect(isAnaError(Status.HostPathingError)).toBe(false);
    expect(isPathError(Status.LbaOutOfRange)).toBe(false);
  });
});

describe('Fabrics structures', () => {
  it('Connect data: hostid @0, cntlid @16, subnqn @256, hostnqn @512', () => {
    const hostid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const b = encodeConnectData({ hostid, cntlid: 0xffff, subnqn: 'nqn.a:sub', hostnqn: 'nqn.b:host' });
    expect(b.length).toBe(1024);
    expect(b.subarray(0, 16)).toEqual(hostid);
    expect(b.readUInt16LE(16)).toBe(0xffff);
    expect(b.toString('utf8', 256, 265)).toBe('nqn.a:sub');
    expect(b[265]).toBe(0);
    expect(b.toString('utf8', 512, 522)).toBe('nqn.b:host');
    expect(decodeConnectData(b)).toEqual({ hostid, cntlid: 0xffff, subnqn: 'nqn.a:sub', hostnqn: 'nqn.b:host' });
    expect(connectInvalidParam('data', 512)).toBe(0x10200);
  });

  it('CAP, CC, CSTS bit fields', () => {
    const cap = encodeCap({ mqes: 1023, cqr: true, ams: 0, to: 15, dstrd: 0, nssrs: false, css: 1, mpsmin: 0, mpsmax: 0 });
    expect(cap & 0xffffn).toBe(1023n);
    expect((cap >> 24n) & 0xffn).toBe(15n);
    expect((cap >> 37n) & 0xffn).toBe(1n);
    expect(decodeCap(cap).mqes).toBe(1023);
    const cc = encodeCc({ en: true, css: 0, mps: 0, ams: 0, shn: 1, iosqes: 6, iocqes: 4 });
    expect(cc).toBe(0x464001);
    expect(decodeCc(cc)).toMatchObject({ en: true, shn: 1, iosqes: 6, iocqes: 4 });
    expect(encodeCsts({ rdy: true, cfs: false, shst: 2, nssro: false })).toBe(0x9);
    expect(decodeCsts(0x9)).toMatchObject({ rdy: true, shst: 2 });
  });

  it('NQN rules', () => {
    expect(nqnProblem('nqn.2014-08.org.nvmexpress.discovery')).toBeNull();
    expect(nqnProblem('testnqn')).toMatch(/nqn\./);
    expect(nqnProblem(`nqn.${'x'.repeat(220)}`)).toMatch(/223/);
    expect(nqnProblem('')).toMatch(/empty/);
  });
});
