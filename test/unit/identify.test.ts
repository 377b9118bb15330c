import { describe, it, expect } from 'vitest';
import {
  IDENTIFY_DATA_SIZE,
  Cns,
  Cmic,
  Oaes,
  Ctratt,
  Anacap,
  Oncs,
  Lpa,
  NsIdType,
  encodeIdentifyController,
  decodeIdentifyController,
  encodeIdentifyNamespace,
  decodeIdentifyNamespace,
  encodeNamespaceList,
  decodeNamespaceList,
  encodeNsIdDescriptors,
  decodeNsIdDescriptors,
  uuidToBytes,
  bytesToUuid,
  nguidToBytes,
  bytesToNguid,
  eui64ToBytes,
  bytesToEui64,
  encodeIdentifyNamespaceNvm,
  decodeIdentifyNamespaceNvm,
  encodeIdentifyControllerNvm,
  decodeIdentifyControllerNvm,
  encodeIdentifyNamespaceCsIndependent,
  decodeIdentifyNamespaceCsIndependent,
  encodeIdentifyDwords,
  decodeIdentifyDwords,
  flbasIndex,
  type IdentifyControllerInput,
  type IdentifyNamespaceInput,
} from '../../shared/identify.ts';
import { Rng } from '../helpers/rng.ts';

const SUBNQN = 'nqn.2014-08.org.example:subsys-1';
const FGUID = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

/** nvmet-like controller, as the target would fill it. */
const ctrlInput: IdentifyControllerInput = {
  vid: 0x1b36,
  ssvid: 0x1af4,
  sn: 'a1b2c3d4e5f6',
  mn: 'Linux',
  fr: '6.1.0',
  rab: 6,
  ieee: 0x0025d8,
  cmic: Cmic.MultiPort | Cmic.MultiController | Cmic.Ana,
  mdts: 5,
  cntlid: 0x0007,
  ver: 0x00010400,
  rtd3r: 1000,
  rtd3e: 2000,
  oaes: Oaes.NamespaceAttribute | Oaes.AnaChange,
  ctratt: Ctratt.HostId128 | Ctratt.Tbkas,
  cntrltype: 1,
  fguid: FGUID,
  oacs: 0,
  acl: 3,
  aerl: 3,
  frmw: 0x3,
  lpa: Lpa.SmartPerNamespace | Lpa.CommandEffects | Lpa.ExtendedData,
  elpe: 127,
  npss: 0,
  wctemp: 343,
  cctemp: 373,
  kas: 10,
  anatt: 10,
  anacap: 0x1f,
  anagrpmax: 128,
  nanagrpid: 128,
  sqes: 0x66,
  cqes: 0x44,
  maxcmd: 1024,
  nn: 1024,
  oncs: Oncs.DatasetManagement | Oncs.WriteZeroes,
  fuses: 0,
  fna: 0,
  vwc: 1,
  awun: 0,
  awupf: 0,
  nvscc: 1,
  acwu: 0,
  ocfs: 0,
  sgls: 0x1 | (1 << 2) | (1 << 20),
  mnan: 1024,
  subnqn: SUBNQN,
  ioccsz: 260,
  iorcsz: 1,
  icdoff: 0,
  fcatt: 0,
  msdbd: 1,
  ofcs: 0,
  psd: [{ mp: 0x9c4, enlat: 0x10, exlat: 0x4 }],
};

/** The same controller, written byte by byte from the spec offsets. */
function ctrlFixture(): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt16LE(0x1b36, 0);
  b.writeUInt16LE(0x1af4, 2);
  b.write('a1b2c3d4e5f6        ', 4, 'latin1'); // 20, space padded
  b.write('Linux' + ' '.repeat(35), 24, 'latin1'); // 40
  b.write('6.1.0   ', 64, 'latin1'); // 8
  b[72] = 6;
  b[73] = 0xd8;
  b[74] = 0x25;
  b[75] = 0x00;
  b[76] = 0x0b;
  b[77] = 5;
  b.writeUInt16LE(7, 78);
  b.writeUInt32LE(0x00010400, 80);
  b.writeUInt32LE(1000, 84);
  b.writeUInt32LE(2000, 88);
  b.writeUInt32LE(0x900, 92);
  b.writeUInt32LE(0x41, 96);
  b[111] = 1;
  FGUID.copy(b, 112);
  b[258] = 3; // acl
  b[259] = 3; // aerl
  b[260] = 3; // frmw
  b[261] = 0x07; // lpa
  b[262] = 127; // elpe
  b[263] = 0; // npss
  b.writeUInt16LE(343, 266);
  b.writeUInt16LE(373, 268);
  b.writeUInt16LE(10, 320); // kas
  b[342] = 10; // anatt
  b[343] = 0x1f; // anacap
  b.writeUInt32LE(128, 344); // anagrpmax
  b.writeUInt32LE(128, 348); // nanagrpid
  b[512] = 0x66;
  b[513] = 0x44;
  b.writeUInt16LE(1024, 514);
  b.writeUInt32LE(1024, 516);
  b.writeUInt16LE(0x0c, 520);
  b[525] = 1;
  b[530] = 1;
  b.writeUInt32LE(0x00100005, 536);
  b.writeUInt32LE(1024, 540);
  b.write(SUBNQN, 768, 'utf8'); // NUL padded: the rest stays 0
  b.writeUInt32LE(260, 1792);
  b.writeUInt32LE(1, 1796);
  b.writeUInt16LE(0, 1800);
  b[1803] = 1;
  b.writeUInt16LE(0x9c4, 2048);
  b.writeUInt32LE(0x10, 2052);
  b.writeUInt32LE(0x4, 2056);
  return b;
}

/** Deterministic random bytes, for all-fields round trips. */
const pattern = (size: number, seed: number): Buffer => new Rng(seed).bytes(size);

describe('constants', () => {
  it('has the CNS values and the data size', () => {
    expect(IDENTIFY_DATA_SIZE).toBe(4096);
    expect(Cns).toMatchObject({
      Namespace: 0x00,
      Controller: 0x01,
      ActiveNamespaceList: 0x02,
      NamespaceDescriptorList: 0x03,
      CsiNamespace: 0x05,
      CsiController: 0x06,
    });
  });
  it('reproduces nvmet reference bit values', () => {
    expect(Cmic.MultiPort | Cmic.MultiController | Cmic.Ana).toBe(0x0b);
    expect(Oaes.NamespaceAttribute | Oaes.AnaChange).toBe(0x900);
    expect(Oaes.DiscoveryLogChange).toBe(0x80000000);
    expect(Ctratt.HostId128 | Ctratt.Tbkas).toBe(0x41);
    expect(Anacap.Optimized | Anacap.NonOptimized | Anacap.Inaccessible | Anacap.PersistentLoss | Anacap.Change).toBe(0x1f);
    expect(Oncs.DatasetManagement | Oncs.WriteZeroes).toBe(0x0c);
    expect(Lpa.SmartPerNamespace | Lpa.CommandEffects | Lpa.ExtendedData).toBe(0x07);
  });
});

describe('Identify Controller (CNS 01h)', () => {
  it('encodes to the hand-built fixture', () => {
    const enc = encodeIdentifyController(ctrlInput);
    expect(enc.length).toBe(4096);
    expect(enc.equals(ctrlFixture())).toBe(true);
  });

  it('decodes the fixture back to the same values', () => {
    const d = decodeIdentifyController(ctrlFixture());
    const { psd: _psd, ...scalars } = ctrlInput;
    expect(d).toMatchObject(scalars);
    expect(d.psd).toHaveLength(1);
    expect(d.psd[0]).toEqual({
      mp: 0x9c4,
      mxps: false,
      nops: false,
      enlat: 0x10,
      exlat: 0x4,
      rrt: 0,
      rrl: 0,
      rwt: 0,
      rwl: 0,
      idlp: 0,
      ips: 0,
      actp: 0,
      apw: 0,
      aps: 0,
      epfrt: 0,
      epfrts: 0,
      fqvt: 0,
      fqvts: 0,
      epfvt: 0,
      epfvts: 0,
    });
    expect(d.tnvmcap).toBe(0n);
    expect(d.fguid.equals(FGUID)).toBe(true);
  });

  it('puts the fields Linux checks at their byte offsets', () => {
    const b = encodeIdentifyController(ctrlInput);
    expect(b[76]).toBe(0x0b); // cmic
    expect(b[77]).toBe(5); // mdts
    expect(b.readUInt16LE(78)).toBe(7); // cntlid
    expect(b.readUInt16LE(320)).toBe(10); // kas
    expect(b[342]).toBe(10); // anatt
    expect(b[343]).toBe(0x1f); // anacap
    expect(b.readUInt32LE(344)).toBe(128); // anagrpmax
    expect(b.readUInt32LE(348)).toBe(128); // nanagrpid
    expect(b[512]).toBe(0x66); // sqes
    expect(b[513]).toBe(0x44); // cqes
    expect(b.readUInt16LE(514)).toBe(1024); // maxcmd
    expect(b.readUInt32LE(516)).toBe(1024); // nn
    expect(b.readUInt32LE(536)).toBe(0x00100005); // sgls
    expect(b.readUInt32LE(540)).toBe(1024); // mnan
    expect(b.toString('utf8', 768, 768 + SUBNQN.length)).toBe(SUBNQN); // subnqn
    expect(b[768 + SUBNQN.length]).toBe(0);
    expect(b.readUInt32LE(1792)).toBe(260); // ioccsz
    expect(b.readUInt32LE(1796)).toBe(1); // iorcsz
    expect(b.readUInt16LE(1800)).toBe(0); // icdoff
    expect(b[1803]).toBe(1); // msdbd
  });

  it('space-pads SN/MN/FR and NUL-pads SUBNQN; decoders trim', () => {
    const b = encodeIdentifyController({ sn: 'X', mn: 'M', fr: '1', subnqn: 'nqn.x' });
    expect(b.subarray(4, 24).toString('latin1')).toBe('X' + ' '.repeat(19));
    expect(b.subarray(24, 64).toString('latin1')).toBe('M' + ' '.repeat(39));
    expect(b.subarray(64, 72).toString('latin1')).toBe('1' + ' '.repeat(7));
    expect(b.subarray(773, 1024).every((x) => x === 0)).toBe(true);
    const d = decodeIdentifyController(b);
    expect([d.sn, d.mn, d.fr, d.subnqn]).toEqual(['X', 'M', '1', 'nqn.x']);
  });

  it('decoder also trims NUL padding in ASCII fields (tolerant)', () => {
    const b = Buffer.alloc(4096);
    b.write('SER', 4, 'latin1');
    expect(decodeIdentifyController(b).sn).toBe('SER');
  });

  it('accepts the signed result of bitwise ORs in 32-bit fields', () => {
    const b = encodeIdentifyController({ oaes: Oaes.NamespaceAttribute | Oaes.DiscoveryLogChange });
    expect(b.readUInt32LE(92)).toBe(0x80000100);
    expect(decodeIdentifyController(b).oaes).toBe(0x80000100);
  });

  it('round-trips every field with a dense byte pattern', () => {
    const raw = pattern(4096, 12345);
    raw.write('SERIAL-NUMBER-ABCDEF', 4, 'latin1');
    raw.write('MODEL'.padEnd(40, 'm'), 24, 'latin1');
    raw.write('FW-REV-1', 64, 'latin1');
    raw.fill(0, 768, 1024);
    raw.write(SUBNQN, 768, 'utf8');
    raw[263] = 3; // npss: four descriptors
    const d1 = decodeIdentifyController(raw);
    expect(d1.psd).toHaveLength(4);
    const d2 = decodeIdentifyController(encodeIdentifyController(d1));
    expect(d2).toEqual(d1);
    expect(d1.tnvmcap).toBe(raw.readBigUInt64LE(280) | (raw.readBigUInt64LE(288) << 64n));
    expect(d1.ieee).toBe(raw[73]! | (raw[74]! << 8) | (raw[75]! << 16));
  });

  it('throws RangeError on short buffers and bad values', () => {
    expect(() => decodeIdentifyController(Buffer.alloc(4095))).toThrow(RangeError);
    expect(() => encodeIdentifyController({ sn: 'x'.repeat(21) })).toThrow(RangeError);
    expect(() => encodeIdentifyController({ mn: 'caf\u00e9' })).toThrow(RangeError);
    expect(() => encodeIdentifyController({ subnqn: 'n'.repeat(256) })).toThrow(RangeError);
    expect(() => encodeIdentifyController({ cntlid: 0x10000 })).toThrow(RangeError);
    expect(() => encodeIdentifyController({ fguid: Buffer.alloc(8) })).toThrow(RangeError);
    expect(() => encodeIdentifyController({ psd: new Array(33).fill({}) })).toThrow(RangeError);
  });

  it('accepts a larger buffer', () => {
    const big = Buffer.concat([ctrlFixture(), Buffer.alloc(100, 0xff)]);
    expect(decodeIdentifyController(big).cntlid).toBe(7);
  });
});

const NGUID = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');
const EUI64 = Buffer.from('a0a1a2a3a4a5a6a7', 'hex');

const nsInput: IdentifyNamespaceInput = {
  nsze: 0x200000n,
  ncap: 0x200000n,
  nuse: 0x100000n,
  nsfeat: 0,
  nlbaf: 1,
  flbas: 1,
  nmic: 1,
  nvmcap: (1n << 64n) + 5n,
  anagrpid: 2,
  nguid: NGUID,
  eui64: EUI64,
  lbaf: [
    { ms: 0, lbads: 9, rp: 0 },
    { ms: 8, lbads: 12, rp: 2 },
  ],
};

function nsFixture(): Buffer {
  const b = Buffer.alloc(4096);
  b.writeBigUInt64LE(0x200000n, 0);
  b.writeBigUInt64LE(0x200000n, 8);
  b.writeBigUInt64LE(0x100000n, 16);
  b[25] = 1; // nlbaf
  b[26] = 1; // flbas
  b[30] = 1; // nmic
  b.writeBigUInt64LE(5n, 48); // nvmcap low
  b.writeBigUInt64LE(1n, 56); // nvmcap high
  b.writeUInt32LE(2, 92); // anagrpid
  NGUID.copy(b, 104);
  EUI64.copy(b, 120);
  b.writeUInt16LE(0, 128);
  b[130] = 9;
  b[131] = 0;
  b.writeUInt16LE(8, 132);
  b[134] = 12;
  b[135] = 2;
  return b;
}

describe('Identify Namespace (CNS 00h)', () => {
  it('encodes to the hand-built fixture', () => {
    expect(encodeIdentifyNamespace(nsInput).equals(nsFixture())).toBe(true);
  });

  it('decodes the fixture', () => {
    const d = decodeIdentifyNamespace(nsFixture());
    expect(d).toMatchObject({ ...nsInput, nguid: NGUID, eui64: EUI64 });
    expect(d.lbaf).toEqual(nsInput.lbaf);
    expect(d.mc).toBe(0);
  });

  it('puts nmic, anagrpid, nguid, eui64 and lbaf at their byte offsets', () => {
    const b = encodeIdentifyNamespace(nsInput);
    expect(b[30]).toBe(1);
    expect(b.readUInt32LE(92)).toBe(2);
    expect(b.subarray(104, 120).equals(NGUID)).toBe(true);
    expect(b.subarray(120, 128).equals(EUI64)).toBe(true);
    expect(b.readUInt32LE(128)).toBe(0x00090000);
    expect(b.readUInt32LE(132)).toBe(0x020c0008);
  });

  it('defaults nlbaf from the lbaf list', () => {
    const b = encodeIdentifyNamespace({
      lbaf: [
        { ms: 0, lbads: 9, rp: 0 },
        { ms: 0, lbads: 12, rp: 0 },
        { ms: 0, lbads: 13, rp: 0 },
      ],
    });
    expect(b[25]).toBe(2);
    expect(decodeIdentifyNamespace(b).lbaf).toHaveLength(3);
  });

  it('round-trips every field with a dense byte pattern', () => {
    const raw = pattern(4096, 777);
    raw[25] = 15; // 16 formats
    const d1 = decodeIdentifyNamespace(raw);
    expect(d1.lbaf).toHaveLength(16);
    expect(decodeIdentifyNamespace(encodeIdentifyNamespace(d1))).toEqual(d1);
  });

  it('flbasIndex combines the low and high bits', () => {
    expect(flbasIndex(0x01)).toBe(1);
    expect(flbasIndex(0x11)).toBe(1); // bit 4 is the extended-metadata flag
    expect(flbasIndex(0x61)).toBe(0x31);
  });

  it('throws RangeError on short buffers and oversized lists', () => {
    expect(() => decodeIdentifyNamespace(Buffer.alloc(100))).toThrow(RangeError);
    expect(() => encodeIdentifyNamespace({ lbaf: new Array(65).fill({ ms: 0, lbads: 9, rp: 0 }) })).toThrow(RangeError);
    expect(() => encodeIdentifyNamespace({ nguid: Buffer.alloc(15) })).toThrow(RangeError);
    expect(() => encodeIdentifyNamespace({ nsze: -1n })).toThrow(RangeError);
  });
});

describe('Active Namespace ID list (CNS 02h)', () => {
  it('lists NSIDs greater than startAfter, ascending', () => {
    const b = encodeNamespaceList([9, 1, 5, 3, 5], 3);
    const exp = Buffer.alloc(4096);
    exp.writeUInt32LE(5, 0);
    exp.writeUInt32LE(9, 4);
    expect(b.equals(exp)).toBe(true);
    expect(decodeNamespaceList(b)).toEqual([5, 9]);
    expect(decodeNamespaceList(encodeNamespaceList([2, 1]))).toEqual([1, 2]);
  });

  it('returns at most 1024 entries', () => {
    const ids = Array.from({ length: 1100 }, (_, i) => i + 1);
    const b = encodeNamespaceList(ids, 0);
    expect(b.length).toBe(4096);
    expect(b.readUInt32LE(4092)).toBe(1024);
    expect(decodeNamespaceList(b)).toHaveLength(1024);
  });

  it('is empty past the last NSID', () => {
    expect(encodeNamespaceList([1, 2], 2).every((x) => x === 0)).toBe(true);
    expect(decodeNamespaceList(Buffer.alloc(4096))).toEqual([]);
  });

  it('rejects invalid NSIDs and short buffers', () => {
    expect(() => encodeNamespaceList([0])).toThrow(RangeError);
    expect(() => encodeNamespaceList([0xffffffff])).toThrow(RangeError);
    expect(() => decodeNamespaceList(Buffer.alloc(4))).toThrow(RangeError);
  });
});

describe('Namespace Identification Descriptors (CNS 03h)', () => {
  const UUID = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';
  const uuidBytes = Buffer.from('6ba7b8109dad11d180b400c04fd430c8', 'hex');

  function descFixture(): Buffer {
    const b = Buffer.alloc(4096);
    let o = 0;
    b[o] = 1;
    b[o + 1] = 8;
    EUI64.copy(b, o + 4);
    o += 12;
    b[o] = 2;
    b[o + 1] = 16;
    NGUID.copy(b, o + 4);
    o += 20;
    b[o] = 3;
    b[o + 1] = 16;
    uuidBytes.copy(b, o + 4);
    o += 20;
    b[o] = 4;
    b[o + 1] = 1;
    b[o + 4] = 0;
    return b;
  }

  const descs = [
    { nidt: NsIdType.Eui64, nid: EUI64 },
    { nidt: NsIdType.Nguid, nid: NGUID },
    { nidt: NsIdType.Uuid, nid: uuidBytes },
    { nidt: NsIdType.Csi, nid: Buffer.from([0]) },
  ] as const;

  it('encodes header (nidt, nidl, 2 reserved) then nid', () => {
    expect(encodeNsIdDescriptors(descs).equals(descFixture())).toBe(true);
  });

  it('decodes until nidt 0', () => {
    expect(decodeNsIdDescriptors(descFixture())).toEqual(descs);
    expect(decodeNsIdDescriptors(Buffer.alloc(4096))).toEqual([]);
  });

  it('skips unknown descriptor types', () => {
    const b = Buffer.alloc(4096);
    b[0] = 9;
    b[1] = 2;
    b[6] = 2;
    b[7] = 16;
    NGUID.copy(b, 10);
    expect(decodeNsIdDescriptors(b)).toEqual([{ nidt: 2, nid: NGUID }]);
  });

  it('rejects wrong lengths', () => {
    expect(() => encodeNsIdDescriptors([{ nidt: NsIdType.Uuid, nid: Buffer.alloc(8) }])).toThrow(RangeError);
    const b = Buffer.alloc(4096);
    b[0] = 3;
    b[1] = 8;
    expect(() => decodeNsIdDescriptors(b)).toThrow(RangeError);
    expect(() => decodeNsIdDescriptors(Buffer.alloc(16))).toThrow(RangeError);
  });

  it('converts UUID, NGUID and EUI-64 strings', () => {
    expect(uuidToBytes(UUID).equals(uuidBytes)).toBe(true);
    expect(uuidToBytes(UUID.toUpperCase()).equals(uuidBytes)).toBe(true);
    expect(bytesToUuid(uuidBytes)).toBe(UUID);
    expect(nguidToBytes('0102030405060708090a0b0c0d0e0f10').equals(NGUID)).toBe(true);
    expect(bytesToNguid(NGUID)).toBe('0102030405060708090a0b0c0d0e0f10');
    expect(eui64ToBytes('a0:a1:a2:a3:a4:a5:a6:a7').equals(EUI64)).toBe(true);
    expect(bytesToEui64(EUI64)).toBe('a0a1a2a3a4a5a6a7');
    expect(() => uuidToBytes('6ba7b810-9dad-11d1-80b4')).toThrow(RangeError);
    expect(() => uuidToBytes('6ba7b8109-dad-11d1-80b4-00c04fd430c8')).toThrow(RangeError);
    expect(() => nguidToBytes('xyz')).toThrow(RangeError);
    expect(() => bytesToUuid(Buffer.alloc(15))).toThrow(RangeError);
  });
});

describe('NVM command set specific Identify (CNS 05h / 06h) and CNS 08h', () => {
  it('CNS 05h: lbstm @0, pic @8, elbaf @12', () => {
    const exp = Buffer.alloc(4096);
    exp.writeBigUInt64LE(0xffff0000n, 0);
    exp[8] = 0x3;
    exp.writeUInt32LE(0x80, 12);
    exp.writeUInt32LE(0x100, 16);
    const obj = { lbstm: 0xffff0000n, pic: 3, elbaf: [0x80, 0x100] };
    expect(encodeIdentifyNamespaceNvm(obj).equals(exp)).toBe(true);
    expect(decodeIdentifyNamespaceNvm(exp, 2)).toEqual(obj);
    expect(decodeIdentifyNamespaceNvm(exp).elbaf).toHaveLength(64);
    expect(encodeIdentifyNamespaceNvm({}).every((x) => x === 0)).toBe(true);
  });

  it('CNS 06h: vsl, wzsl, wusl, dmrl, dmrsl LE32 @4, dmsl LE64 @8', () => {
    const exp = Buffer.from('01020304' + '00100000' + '0000000001000000', 'hex');
    const full = Buffer.concat([exp, Buffer.alloc(4096 - exp.length)]);
    const obj = { vsl: 1, wzsl: 2, wusl: 3, dmrl: 4, dmrsl: 0x1000, dmsl: 0x100000000n };
    expect(encodeIdentifyControllerNvm(obj).equals(full)).toBe(true);
    expect(decodeIdentifyControllerNvm(full)).toEqual(obj);
    expect(() => decodeIdentifyControllerNvm(exp)).toThrow(RangeError);
  });

  it('CNS 08h: I/O command set independent namespace', () => {
    const exp = Buffer.alloc(4096);
    exp[0] = 0x10;
    exp[1] = 1;
    exp[2] = 0xff;
    exp[3] = 0x80;
    exp.writeUInt32LE(7, 4);
    exp[8] = 1;
    exp.writeUInt16LE(3, 10);
    exp.writeUInt16LE(4, 12);
    exp[14] = 1;
    const obj = { nsfeat: 0x10, nmic: 1, rescap: 0xff, fpi: 0x80, anagrpid: 7, nsattr: 1, nvmsetid: 3, endgid: 4, nstat: 1, kpios: 0, maxkt: 0, rgrpid: 0 };
    expect(encodeIdentifyNamespaceCsIndependent(obj).equals(exp)).toBe(true);
    expect(decodeIdentifyNamespaceCsIndependent(exp)).toEqual(obj);
  });
});

describe('Identify command dwords', () => {
  it('packs CNS, CNTID, CNSSID, CSI', () => {
    const d = encodeIdentifyDwords({ cns: Cns.CsiNamespace, cntid: 0xffff, cnssid: 0x1234, csi: 2 });
    expect(d).toEqual({ cdw10: 0xffff0005, cdw11: 0x02001234, cdw14: 0 });
    expect(decodeIdentifyDwords(0xffff0005, 0x02001234)).toEqual({
      cns: 5,
      cntid: 0xffff,
      cnssid: 0x1234,
      csi: 2,
      uuidIndex: 0,
    });
    expect(encodeIdentifyDwords({ cns: Cns.Controller })).toEqual({ cdw10: 1, cdw11: 0, cdw14: 0 });
  });
});
