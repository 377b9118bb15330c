import { describe, it, expect } from 'vitest';
import {
  LogPageId,
  encodeErrorLog,
  decodeErrorLog,
  encodeErrorLogEntry,
  decodeErrorLogEntry,
  encodeSmartLog,
  decodeSmartLog,
  encodeFirmwareSlotLog,
  decodeFirmwareSlotLog,
  encodeChangedNamespaceList,
  decodeChangedNamespaceList,
  CHANGED_NS_LIST_OVERFLOW,
  CmdEffects,
  encodeEffectsLog,
  decodeEffectsLog,
  AnaState,
  AnaLsp,
  anaStateName,
  parseAnaState,
  isAnaState,
  anaLogSize,
  encodeAnaLog,
  decodeAnaLog,
  TrType,
  AdrFam,
  SubType,
  Treq,
  TcpSecType,
  tcpTsas,
  encodeDiscoveryLogEntry,
  decodeDiscoveryLogEntry,
  encodeDiscoveryLogHeader,
  decodeDiscoveryLogHeader,
  encodeDiscoveryLog,
  decodeDiscoveryLog,
  sliceLogPage,
  encodeGetLogPageDwords,
  decodeGetLogPageDwords,
  type ErrorLogEntry,
  type SmartLog,
  type AnaLog,
  type DiscoveryLogEntry,
} from '../../shared/log-pages.ts';

describe('LogPageId', () => {
  it('has the spec identifiers', () => {
    expect(LogPageId).toMatchObject({
      ErrorInformation: 0x01,
      Smart: 0x02,
      FirmwareSlot: 0x03,
      ChangedNamespaceList: 0x04,
      CommandsSupportedEffects: 0x05,
      Ana: 0x0c,
      Discovery: 0x70,
    });
  });
});

describe('Error Information log (LID 01h)', () => {
  const entry: ErrorLogEntry = {
    errorCount: 0x1_0000_0001n,
    sqid: 1,
    cid: 0x1234,
    status: 0x4002, // DNR | Invalid Field in Command
    phaseTag: true,
    parameterErrorLocation: 0x0128, // bit 1 of byte 40
    lba: 0xdeadbeefn,
    nsid: 7,
    vendorSpecificInfo: 0x80,
    trtype: 3,
    csi: 0,
    opcode: 0x02,
    commandSpecificInfo: 0xabcdn,
    trtypeSpecificInfo: 0x55aa,
    logPageVersion: 1,
  };

  function fixture(): Buffer {
    const b = Buffer.alloc(64);
    b.writeBigUInt64LE(0x1_0000_0001n, 0);
    b.writeUInt16LE(1, 8);
    b.writeUInt16LE(0x1234, 10);
    b.writeUInt16LE((0x4002 << 1) | 1, 12); // status in bits 15:1, phase tag bit 0
    b.writeUInt16LE(0x0128, 14);
    b.writeBigUInt64LE(0xdeadbeefn, 16);
    b.writeUInt32LE(7, 24);
    b[28] = 0x80;
    b[29] = 3;
    b[30] = 0;
    b[31] = 2;
    b.writeBigUInt64LE(0xabcdn, 32);
    b.writeUInt16LE(0x55aa, 40);
    b[63] = 1;
    return b;
  }

  it('encodes one entry to the fixture and decodes it back', () => {
    expect(encodeErrorLogEntry(entry).equals(fixture())).toBe(true);
    expect(decodeErrorLogEntry(fixture())).toEqual(entry);
  });

  it('encodes n entries to n*64 bytes, zero-filling up to minEntries', () => {
    const b = encodeErrorLog([entry, { errorCount: 2n }], 4);
    expect(b.length).toBe(256);
    expect(b.subarray(0, 64).equals(fixture())).toBe(true);
    expect(b.readBigUInt64LE(64)).toBe(2n);
    expect(b.subarray(128).every((x) => x === 0)).toBe(true);
    const d = decodeErrorLog(b);
    expect(d).toHaveLength(4);
    expect(d[0]).toEqual(entry);
    expect(d[3]!.errorCount).toBe(0n);
    expect(encodeErrorLog([]).length).toBe(0);
  });

  it('rejects a status wider than 15 bits and short buffers', () => {
    expect(() => encodeErrorLogEntry({ status: 0x8000 })).toThrow(RangeError);
    expect(() => decodeErrorLogEntry(Buffer.alloc(63))).toThrow(RangeError);
  });
});

describe('SMART / Health log (LID 02h)', () => {
  const smart: SmartLog = {
    criticalWarning: 0x01,
    compositeTemperature: 310,
    availableSpare: 100,
    availableSpareThreshold: 10,
    percentageUsed: 3,
    enduranceGroupCriticalWarning: 0,
    dataUnitsRead: (1n << 100n) + 7n,
    dataUnitsWritten: 2n,
    hostReadCommands: 3n,
    hostWriteCommands: 4n,
    controllerBusyTime: 5n,
    powerCycles: 6n,
    powerOnHours: 7n,
    unsafeShutdowns: 8n,
    mediaErrors: 9n,
    numErrorLogEntries: 10n,
    warningTempTime: 11,
    criticalCompTime: 12,
    temperatureSensors: [300, 301, 0, 0, 0, 0, 0, 302],
    thermalMgmtTemp1TransitionCount: 13,
    thermalMgmtTemp2TransitionCount: 14,
    thermalMgmtTemp1TotalTime: 15,
    thermalMgmtTemp2TotalTime: 16,
  };

  function fixture(): Buffer {
    const b = Buffer.alloc(512);
    b[0] = 1;
    b.writeUInt16LE(310, 1);
    b[3] = 100;
    b[4] = 10;
    b[5] = 3;
    b.writeBigUInt64LE(7n, 32);
    b.writeBigUInt64LE(1n << 36n, 40); // high half of 2^100 + 7
    for (let i = 1; i < 10; i++) b.writeBigUInt64LE(BigInt(i + 1), 32 + i * 16);
    b.writeUInt32LE(11, 192);
    b.writeUInt32LE(12, 196);
    b.writeUInt16LE(300, 200);
    b.writeUInt16LE(301, 202);
    b.writeUInt16LE(302, 214);
    b.writeUInt32LE(13, 216);
    b.writeUInt32LE(14, 220);
    b.writeUInt32LE(15, 224);
    b.writeUInt32LE(16, 228);
    return b;
  }

  it('encodes to the fixture and decodes back (128-bit counters)', () => {
    expect(encodeSmartLog(smart).equals(fixture())).toBe(true);
    expect(decodeSmartLog(fixture())).toEqual(smart);
  });

  it('defaults to zeros and rejects out-of-range counters', () => {
    expect(encodeSmartLog({}).every((x) => x === 0)).toBe(true);
    expect(() => encodeSmartLog({ powerOnHours: 1n << 128n })).toThrow(RangeError);
    expect(() => decodeSmartLog(Buffer.alloc(511))).toThrow(RangeError);
  });
});

describe('Firmware Slot Information log (LID 03h)', () => {
  it('space-pads revisions, leaves empty slots zero', () => {
    const exp = Buffer.alloc(512);
    exp[0] = 0x01;
    exp.write('1.0     ', 8, 'latin1');
    exp.write('2.0-rc1 ', 24, 'latin1');
    const log = { afi: 1, frs: ['1.0', '', '2.0-rc1', '', '', '', ''] };
    expect(encodeFirmwareSlotLog(log).equals(exp)).toBe(true);
    expect(decodeFirmwareSlotLog(exp)).toEqual(log);
    expect(() => encodeFirmwareSlotLog({ frs: ['123456789'] })).toThrow(RangeError);
  });
});

describe('Changed Namespace List (LID 04h)', () => {
  it('lists changed NSIDs ascending', () => {
    const exp = Buffer.alloc(4096);
    exp.writeUInt32LE(2, 0);
    exp.writeUInt32LE(5, 4);
    const b = encodeChangedNamespaceList([5, 2, 5]);
    expect(b.equals(exp)).toBe(true);
    expect(decodeChangedNamespaceList(b)).toEqual([2, 5]);
  });

  it('keeps exactly 1024, overflows to FFFFFFFFh past that', () => {
    const ids = Array.from({ length: 1025 }, (_, i) => i + 1);
    const full = encodeChangedNamespaceList(ids.slice(0, 1024));
    expect(full.readUInt32LE(4092)).toBe(1024);
    const over = encodeChangedNamespaceList(ids);
    const exp = Buffer.alloc(4096);
    exp.writeUInt32LE(0xffffffff, 0);
    expect(over.equals(exp)).toBe(true);
    expect(decodeChangedNamespaceList(over)).toEqual([CHANGED_NS_LIST_OVERFLOW]);
  });
});

describe('Commands Supported and Effects log (LID 05h)', () => {
  it('has the effect bits', () => {
    expect([CmdEffects.CSUPP, CmdEffects.LBCC, CmdEffects.NCC, CmdEffects.NIC, CmdEffects.CCC]).toEqual([1, 2, 4, 8, 16]);
    expect(CmdEffects.CSE_MASK).toBe(0x70000);
    expect(CmdEffects.CSE_SINGLE_NS).toBe(0x10000);
    expect(CmdEffects.UUID_SEL).toBe(0x80000);
  });

  it('acs[] at 0, iocs[] at 1024, LE32', () => {
    const acs: number[] = [];
    acs[0x06] = CmdEffects.CSUPP;
    acs[0x09] = CmdEffects.CSUPP | CmdEffects.CCC | CmdEffects.NCC | CmdEffects.NIC;
    const iocs: number[] = [];
    iocs[0x01] = CmdEffects.CSUPP | CmdEffects.LBCC;
    iocs[0xff] = 0xffffffff;
    const exp = Buffer.alloc(4096);
    exp.writeUInt32LE(1, 0x06 * 4);
    exp.writeUInt32LE(0x1d, 0x09 * 4);
    exp.writeUInt32LE(3, 1024 + 4);
    exp.writeUInt32LE(0xffffffff, 1024 + 0xff * 4);
    const b = encodeEffectsLog({ acs, iocs });
    expect(b.equals(exp)).toBe(true);
    const d = decodeEffectsLog(b);
    expect(d.acs).toHaveLength(256);
    expect(d.acs[9]).toBe(0x1d);
    expect(d.iocs[1]).toBe(3);
    expect(d.iocs[0xff]).toBe(0xffffffff);
    expect(d.acs[0]).toBe(0);
  });
});

describe('ANA log (LID 0Ch)', () => {
  const log: AnaLog = {
    chgcnt: 42n,
    groups: [
      { anagrpid: 1, chgcnt: 40n, state: AnaState.Optimized, nsids: [1, 2] },
      { anagrpid: 2, chgcnt: 41n, state: AnaState.Inaccessible, nsids: [3] },
      { anagrpid: 3, chgcnt: 0n, state: AnaState.Change, nsids: [] },
    ],
  };

  it('encodes header + descriptors + NSID lists', () => {
    const exp = Buffer.alloc(16 + 32 + 8 + 32 + 4 + 32);
    exp.writeBigUInt64LE(42n, 0);
    exp.writeUInt16LE(3, 8);
    let o = 16;
    exp.writeUInt32LE(1, o);
    exp.writeUInt32LE(2, o + 4);
    exp.writeBigUInt64LE(40n, o + 8);
    exp[o + 16] = 0x01;
    exp.writeUInt32LE(1, o + 32);
    exp.writeUInt32LE(2, o + 36);
    o += 40;
    exp.writeUInt32LE(2, o);
    exp.writeUInt32LE(1, o + 4);
    exp.writeBigUInt64LE(41n, o + 8);
    exp[o + 16] = 0x03;
    exp.writeUInt32LE(3, o + 32);
    o += 36;
    exp.writeUInt32LE(3, o);
    exp.writeUInt32LE(0, o + 4);
    exp[o + 16] = 0x0f;
    const b = encodeAnaLog(log);
    expect(b.length).toBe(anaLogSize(3, 3));
    expect(b.equals(exp)).toBe(true);
    expect(decodeAnaLog(exp)).toEqual(log);
  });

  it('with RGO: NNSIDS 0 and no NSID lists', () => {
    const exp = Buffer.alloc(16 + 3 * 32);
    exp.writeBigUInt64LE(42n, 0);
    exp.writeUInt16LE(3, 8);
    const states = [1, 3, 0x0f];
    const chg = [40n, 41n, 0n];
    for (let i = 0; i < 3; i++) {
      const o = 16 + i * 32;
      exp.writeUInt32LE(i + 1, o);
      exp.writeBigUInt64LE(chg[i]!, o + 8);
      exp[o + 16] = states[i]!;
    }
    const b = encodeAnaLog(log, { rgo: true });
    expect(b.length).toBe(anaLogSize(3, 3, true));
    expect(b.equals(exp)).toBe(true);
    expect(decodeAnaLog(b)).toEqual({ chgcnt: 42n, groups: log.groups.map((g) => ({ ...g, nsids: [] })) });
    expect(AnaLsp.Rgo).toBe(1);
  });

  it('an empty log is a 16-byte header', () => {
    const b = encodeAnaLog({ chgcnt: 0n, groups: [] });
    expect(b.equals(Buffer.alloc(16))).toBe(true);
    expect(decodeAnaLog(b)).toEqual({ chgcnt: 0n, groups: [] });
  });

  it('decode tolerates trailing bytes and rejects truncation', () => {
    const b = encodeAnaLog(log);
    expect(decodeAnaLog(Buffer.concat([b, Buffer.alloc(64)]))).toEqual(log);
    expect(() => decodeAnaLog(b.subarray(0, b.length - 1))).toThrow(RangeError);
    expect(() => decodeAnaLog(Buffer.alloc(8))).toThrow(RangeError);
  });

  it('names the states both ways', () => {
    const pairs = [
      [0x01, 'optimized'],
      [0x02, 'non-optimized'],
      [0x03, 'inaccessible'],
      [0x04, 'persistent-loss'],
      [0x0f, 'change'],
    ] as const;
    for (const [v, n] of pairs) {
      expect(anaStateName(v)).toBe(n);
      expect(parseAnaState(n)).toBe(v);
      expect(isAnaState(v)).toBe(true);
    }
    expect(isAnaState(5)).toBe(false);
    expect(() => anaStateName(5)).toThrow(RangeError);
    expect(() => parseAnaState('Optimized')).toThrow(RangeError);
  });
});

describe('Discovery log (LID 70h)', () => {
  const NQN = 'nqn.2014-08.org.example:subsys-1';
  const entry: DiscoveryLogEntry = {
    trtype: TrType.Tcp,
    adrfam: AdrFam.Ipv4,
    subtype: SubType.Nvme,
    treq: Treq.NotSpecified | Treq.DisableSqFlow,
    portid: 1,
    cntlid: 0xffff,
    asqsz: 32,
    eflags: 0,
    trsvcid: '4420',
    subnqn: NQN,
    traddr: '192.168.1.10',
    tsas: tcpTsas(TcpSecType.None),
  };

  function entryFixture(): Buffer {
    const b = Buffer.alloc(1024);
    b[0] = 3; // trtype TCP
    b[1] = 1; // adrfam IPv4
    b[2] = 2; // subtype NVM subsystem
    b[3] = 0x04; // treq
    b.writeUInt16LE(1, 4);
    b.writeUInt16LE(0xffff, 6);
    b.writeUInt16LE(32, 8);
    b.writeUInt16LE(0, 10);
    b.fill(0x20, 32, 64);
    b.write('4420', 32, 'latin1');
    b.write(NQN, 256, 'utf8');
    b.fill(0x20, 512, 768);
    b.write('192.168.1.10', 512, 'latin1');
    b[768] = 0; // sectype none
    return b;
  }

  it('has the constants', () => {
    expect([TrType.Tcp, AdrFam.Ipv4, AdrFam.Ipv6]).toEqual([3, 1, 2]);
    expect([SubType.Referral, SubType.Nvme, SubType.CurrentDiscovery]).toEqual([1, 2, 3]);
    expect([Treq.NotSpecified, Treq.Required, Treq.NotRequired, Treq.DisableSqFlow]).toEqual([0, 1, 2, 4]);
  });

  it('puts entry fields at their offsets', () => {
    const b = encodeDiscoveryLogEntry(entry);
    expect(b.equals(entryFixture())).toBe(true);
    expect(b.subarray(12, 32).every((x) => x === 0)).toBe(true);
    expect(b.toString('latin1', 32, 64)).toBe('4420' + ' '.repeat(28));
    expect(b[256 + NQN.length]).toBe(0);
    expect(b.toString('latin1', 512, 524)).toBe('192.168.1.10');
    expect(b[524]).toBe(0x20);
  });

  it('decodes an entry, trimming space and NUL padding', () => {
    expect(decodeDiscoveryLogEntry(entryFixture())).toEqual(entry);
    // nvmet-style NUL padding of trsvcid/traddr decodes the same
    const nul = entryFixture();
    nul.fill(0, 32, 64);
    nul.write('4420', 32, 'latin1');
    nul.fill(0, 512, 768);
    nul.write('192.168.1.10', 512, 'latin1');
    expect(decodeDiscoveryLogEntry(nul)).toEqual(entry);
  });

  it('defaults cntlid to FFFFh and asqsz to 32', () => {
    const b = encodeDiscoveryLogEntry({
      trtype: TrType.Tcp,
      adrfam: AdrFam.Ipv6,
      subtype: SubType.CurrentDiscovery,
      trsvcid: '8009',
      traddr: '::1',
      subnqn: 'nqn.2014-08.org.nvmexpress.discovery',
    });
    expect(b.readUInt16LE(6)).toBe(0xffff);
    expect(b.readUInt16LE(8)).toBe(32);
    expect(b[1]).toBe(2);
    expect(b[2]).toBe(3);
  });

  it('header: genctr @0, numrec @8, recfmt @16, 1024 bytes', () => {
    const exp = Buffer.alloc(1024);
    exp.writeBigUInt64LE(9n, 0);
    exp.writeBigUInt64LE(2n, 8);
    exp.writeUInt16LE(0, 16);
    const h = { genctr: 9n, numrec: 2n, recfmt: 0 };
    expect(encodeDiscoveryLogHeader(h).equals(exp)).toBe(true);
    expect(decodeDiscoveryLogHeader(exp)).toEqual(h);
  });

  it('whole log: header then entries at 1024-byte strides', () => {
    const second = { ...entry, subtype: SubType.CurrentDiscovery, subnqn: 'nqn.2014-08.org.nvmexpress.discovery' };
    const b = encodeDiscoveryLog({ genctr: 9n, entries: [entry, second] });
    expect(b.length).toBe(3072);
    expect(b.readBigUInt64LE(0)).toBe(9n);
    expect(b.readBigUInt64LE(8)).toBe(2n);
    expect(b.subarray(1024, 2048).equals(entryFixture())).toBe(true);
    expect(b[2048 + 2]).toBe(3);
    expect(decodeDiscoveryLog(b)).toEqual({ genctr: 9n, recfmt: 0, entries: [entry, second] });
    expect(() => decodeDiscoveryLog(b.subarray(0, 2048))).toThrow(RangeError);
    expect(decodeDiscoveryLogHeader(b.subarray(0, 1024)).numrec).toBe(2n);
  });

  it('rejects over-long strings', () => {
    expect(() => encodeDiscoveryLogEntry({ ...entry, trsvcid: '1'.repeat(33) })).toThrow(RangeError);
    expect(() => encodeDiscoveryLogEntry({ ...entry, subnqn: 'n'.repeat(256) })).toThrow(RangeError);
  });

  it('serves libnvme-style partial reads through sliceLogPage', () => {
    const full = encodeDiscoveryLog({ genctr: 5n, entries: [entry, entry, entry] });
    const hdr = sliceLogPage(full, 0, 1024);
    expect(decodeDiscoveryLogHeader(hdr).numrec).toBe(3n);
    const chunk = sliceLogPage(full, 1024, 4096);
    expect(chunk.length).toBe(4096);
    expect(decodeDiscoveryLogEntry(chunk, 2048)).toEqual(entry);
    expect(chunk.subarray(3072).every((x) => x === 0)).toBe(true);
  });
});

describe('sliceLogPage', () => {
  const full = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

  it('returns the part inside the page', () => {
    expect([...sliceLogPage(full, 0, 4)]).toEqual([1, 2, 3, 4]);
    expect([...sliceLogPage(full, 3, 3)]).toEqual([4, 5, 6]);
    expect([...sliceLogPage(full, 2n, 5)]).toEqual([3, 4, 5, 6, 7]);
  });

  it('zero-fills past the end', () => {
    expect([...sliceLogPage(full, 8, 4)]).toEqual([9, 10, 0, 0]);
    expect([...sliceLogPage(full, 0, 13)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0, 0]);
  });

  it('is all zero at and past the end', () => {
    expect([...sliceLogPage(full, 10, 3)]).toEqual([0, 0, 0]);
    expect([...sliceLogPage(full, 11, 2)]).toEqual([0, 0]);
    expect([...sliceLogPage(full, 1n << 40n, 4)]).toEqual([0, 0, 0, 0]);
  });

  it('handles zero length and returns a copy', () => {
    expect(sliceLogPage(full, 5, 0).length).toBe(0);
    const s = sliceLogPage(full, 0, 2);
    s[0] = 99;
    expect(full[0]).toBe(1);
  });

  it('rejects negative values', () => {
    expect(() => sliceLogPage(full, -1, 4)).toThrow(RangeError);
    expect(() => sliceLogPage(full, 0, -4)).toThrow(RangeError);
  });
});

describe('Get Log Page dwords', () => {
  it('packs LID, LSP, RAE, NUMDL into CDW10 and NUMDU, LSI into CDW11', () => {
    const d = encodeGetLogPageDwords({ lid: 0x70, numdBytes: 4096 });
    expect(d).toEqual({ cdw10: 0x03ff0070, cdw11: 0, cdw12: 0, cdw13: 0, cdw14: 0 });
    const ana = encodeGetLogPageDwords({ lid: 0x0c, numdBytes: 16, lsp: 1, rae: true });
    expect(ana.cdw10).toBe(0x0003_0000 | 0x8000 | 0x0100 | 0x0c);
  });

  it('splits NUMD across CDW10/CDW11 and LPO across CDW12/CDW13', () => {
    const d = encodeGetLogPageDwords({
      lid: 0x02,
      numdBytes: 0x40000 * 4, // numd = 0x3ffff
      offset: (1n << 32n) + 1024n,
      lsi: 0xabcd,
      csi: 2,
      uuidIndex: 5,
      ot: true,
    });
    expect(d).toEqual({
      cdw10: 0xffff0002,
      cdw11: 0xabcd0003,
      cdw12: 1024,
      cdw13: 1,
      cdw14: 0x02800005,
    });
    expect(decodeGetLogPageDwords(d.cdw10, d.cdw11, d.cdw12, d.cdw13, d.cdw14)).toEqual({
      lid: 2,
      lsp: 0,
      rae: false,
      numd: 0x3ffff,
      numdBytes: 0x40000 * 4,
      lsi: 0xabcd,
      offset: (1n << 32n) + 1024n,
      csi: 2,
      uuidIndex: 5,
      ot: true,
    });
  });

  it('decodes the largest NUMD without overflow', () => {
    const d = decodeGetLogPageDwords(0xffff0001, 0xffff);
    expect(d.numd).toBe(0xffffffff);
    expect(d.numdBytes).toBe(2 ** 34);
    expect(encodeGetLogPageDwords({ lid: 1, numdBytes: 2 ** 34 })).toMatchObject({ cdw10: 0xffff0001, cdw11: 0xffff });
  });

  it('round-trips a number offset and the defaults', () => {
    const d = encodeGetLogPageDwords({ lid: 0x70, numdBytes: 1024, offset: 1024, lsp: 0x7f });
    const back = decodeGetLogPageDwords(d.cdw10, d.cdw11, d.cdw12, d.cdw13, d.cdw14);
    expect(back).toMatchObject({ lid: 0x70, numdBytes: 1024, offset: 1024n, lsp: 0x7f, rae: false });
    expect(decodeGetLogPageDwords(0x00ff0002)).toMatchObject({ numdBytes: 1024, offset: 0n, lsi: 0 });
  });

  it('rejects lengths that are not whole dwords', () => {
    expect(() => encodeGetLogPageDwords({ lid: 2, numdBytes: 0 })).toThrow(RangeError);
    expect(() => encodeGetLogPageDwords({ lid: 2, numdBytes: 6 })).toThrow(RangeError);
    expect(() => encodeGetLogPageDwords({ lid: 2, numdBytes: 2 ** 34 + 4 })).toThrow(RangeError);
    expect(() => encodeGetLogPageDwords({ lid: 2, numdBytes: 4, lsp: 0x80 })).toThrow(RangeError);
    expect(() => encodeGetLogPageDwords({ lid: 2, numdBytes: 4, offset: -1 })).toThrow(RangeError);
  });
});
