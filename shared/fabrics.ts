/**
 * NVMe over Fabrics structures: Connect data, controller properties
 * (CAP, VS, CC, CSTS), well-known names.
 */

export const DISCOVERY_NQN = 'nqn.2014-08.org.nvmexpress.discovery';
export const NQN_MAX_LENGTH = 223;
export const CONNECT_DATA_LENGTH = 1024;
/** Connect data cntlid asking the subsystem to allocate one (admin queue). */
export const CNTLID_DYNAMIC = 0xffff;
/** Controller IDs above this are reserved. */
export const CNTLID_MAX = 0xffef;

export interface ConnectData {
  /** 16 bytes. */
  readonly hostid: Buffer;
  readonly cntlid: number;
  readonly subnqn: string;
  readonly hostnqn: string;
}

function readNqn(b: Buffer, offset: number): string {
  const field = b.subarray(offset, offset + 256);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? 256 : end).toString('utf8');
}

/** Offsets inside the Connect data, for IPO in Invalid Parameters responses. */
export const ConnectDataOffset = { hostid: 0, cntlid: 16, subnqn: 256, hostnqn: 512 } as const;

export function decodeConnectData(b: Buffer): ConnectData {
  if (b.length < CONNECT_DATA_LENGTH) throw new RangeError(`Connect data needs ${CONNECT_DATA_LENGTH} bytes, got ${b.length}`);
  return {
    hostid: Buffer.from(b.subarray(0, 16)),
    cntlid: b.readUInt16LE(16),
    subnqn: readNqn(b, 256),
    hostnqn: readNqn(b, 512),
  };
}

export function encodeConnectData(d: ConnectData): Buffer {
  const b = Buffer.alloc(CONNECT_DATA_LENGTH);
  d.hostid.copy(b, 0, 0, 16);
  b.writeUInt16LE(d.cntlid, 16);
  b.write(d.subnqn, 256, 255, 'utf8');
  b.write(d.hostnqn, 512, 255, 'utf8');
  return b;
}

/**
 * Connect response DW0 for Connect Invalid Parameters: IPO (bits 15:0) is the
 * offset of the bad field, IATTR (bits 23:16) 0 for the SQE, 1 for the data.
 */
export function connectInvalidParam(where: 'sqe' | 'data', offset: number): number {
  return ((where === 'data' ? 1 : 0) << 16) | (offset & 0xffff);
}
export function decodeConnectInvalidParam(dw0: number): { where: 'sqe' | 'data'; offset: number } {
  return { where: (dw0 >>> 16) & 1 ? 'data' : 'sqe', offset: dw0 & 0xffff };
}

// ---------------------------------------------------------------- Properties

export const Property = {
  CAP: 0x00,
  VS: 0x08,
  INTMS: 0x0c,
  INTMC: 0x10,
  CC: 0x14,
  CSTS: 0x1c,
  NSSR: 0x20,
} as const;

export interface Cap {
  /** Maximum queue entries supported, 0's based. */
  readonly mqes: number;
  readonly cqr: boolean;
  readonly ams: number;
  /** Worst-case time to ready, in 500 ms units. */
  readonly to: number;
  readonly dstrd: number;
  readonly nssrs: boolean;
  /** Command sets supported bitmap (bit 0: NVM). */
  readonly css: number;
  readonly mpsmin: number;
  readonly mpsmax: number;
}

export function encodeCap(c: Cap): bigint {
  return (
    BigInt(c.mqes & 0xffff) |
    (BigInt(c.cqr ? 1 : 0) << 16n) |
    (BigInt(c.ams & 0x3) << 17n) |
    (BigInt(c.to & 0xff) << 24n) |
    (BigInt(c.dstrd & 0xf) << 32n) |
    (BigInt(c.nssrs ? 1 : 0) << 36n) |
    (BigInt(c.css & 0xff) << 37n) |
    (BigInt(c.mpsmin & 0xf) << 48n) |
    (BigInt(c.mpsmax & 0xf) << 52n)
  );
}

export function decodeCap(v: bigint): Cap {
  const bits = (shift: bigint, mask: bigint) => Number((v >> shift) & mask);
  return {
    mqes: bits(0n, 0xffffn),
    cqr: bits(16n, 1n) === 1,
    ams: bits(17n, 3n),
    to: bits(24n, 0xffn),
    dstrd: bits(32n, 0xfn),
    nssrs: bits(36n, 1n) === 1,
    css: bits(37n, 0xffn),
    mpsmin: bits(48n, 0xfn),
    mpsmax: bits(52n, 0xfn),
  };
}

export function encodeVersion(major: number, minor: number, tertiary = 0): number {
  return ((major & 0xffff) << 16) | ((minor & 0xff) << 8) | (tertiary & 0xff);
}
export function decodeVersion(vs: number): { major: number; minor: number; tertiary: number } {
  return { major: vs >>> 16, minor: (vs >>> 8) & 0xff, tertiary: vs & 0xff };
}

export const ShutdownNotification = { None: 0, Normal: 1, Abrupt: 2 } as const;
export const ShutdownStatus = { Normal: 0, Occurring: 1, Complete: 2 } as const;

export interface Cc {
  readonly en: boolean;
  readonly css: number;
  readonly mps: number;
  readonly ams: number;
  readonly shn: number;
  readonly iosqes: number;
  readonly iocqes: number;
}

export function decodeCc(v: number): Cc {
  return {
    en: (v & 1) === 1,
    css: (v >>> 4) & 0x7,
    mps: (v >>> 7) & 0xf,
    ams: (v >>> 11) & 0x7,
    shn: (v >>> 14) & 0x3,
    iosqes: (v >>> 16) & 0xf,
    iocqes: (v >>> 20) & 0xf,
  };
}
export function encodeCc(c: Cc): number {
  return (
    ((c.en ? 1 : 0) |
      ((c.css & 0x7) << 4) |
      ((c.mps & 0xf) << 7) |
      ((c.ams & 0x7) << 11) |
      ((c.shn & 0x3) << 14) |
      ((c.iosqes & 0xf) << 16) |
      ((c.iocqes & 0xf) << 20)) >>>
    0
  );
}

export interface Csts {
  readonly rdy: boolean;
  readonly cfs: boolean;
  readonly shst: number;
  readonly nssro: boolean;
}
export function decodeCsts(v: number): Csts {
  return { rdy: (v & 1) === 1, cfs: (v & 2) === 2, shst: (v >>> 2) & 0x3, nssro: (v & 0x10) === 0x10 };
}
export function encodeCsts(c: Csts): number {
  return (c.rdy ? 1 : 0) | (c.cfs ? 2 : 0) | ((c.shst & 0x3) << 2) | (c.nssro ? 0x10 : 0);
}

/** NQN syntax check (NVMe Base 4.5): "nqn." prefix, at most 223 bytes. */
export function nqnProblem(nqn: string): string | null {
  if (nqn.length === 0) return 'is empty';
  if (Buffer.byteLength(nqn, 'utf8') > NQN_MAX_LENGTH) return `is longer than ${NQN_MAX_LENGTH} bytes`;
  if (!nqn.startsWith('nqn.')) return 'does not start with "nqn."';
  return null;
}
