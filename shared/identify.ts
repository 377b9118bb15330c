/**
 * Identify data structures (Admin opcode 06h): typed encoders and decoders.
 *
 * Offsets follow the NVMe Base Specification 2.x (Identify Controller, Identify
 * Namespace, Namespace Identification Descriptor list, the NVM Command Set
 * specific structures) as mirrored by Linux's include/linux/nvme.h and libnvme.
 * Every multi-byte field is little-endian. ASCII fields (SN, MN, FR) are
 * space padded; NQNs are NUL padded; decoders trim both.
 *
 * Encoders take a partial object (missing numbers are 0, strings empty, byte
 * fields zero) and return exactly IDENTIFY_DATA_SIZE bytes. Decoders accept any
 * buffer at least that size and throw a RangeError if it is shorter.
 */

import { readAscii, readNqn, readU128, requireLength, uint, writeAscii, writeNqn, writeU128, writeU64 } from './fields.ts';
export const IDENTIFY_DATA_SIZE = 4096;

/** Controller or Namespace Structure (CDW10 bits 7:0). */
export const Cns = {
  Namespace: 0x00,
  Controller: 0x01,
  ActiveNamespaceList: 0x02,
  NamespaceDescriptorList: 0x03,
  CsiNamespace: 0x05,
  CsiController: 0x06,
  CsiActiveNamespaceList: 0x07,
  CsIndependentNamespace: 0x08,
  AllocatedNamespaceList: 0x10,
  AllocatedNamespace: 0x11,
  NamespaceControllerList: 0x12,
  ControllerList: 0x13,
} as const;
export type CnsValue = (typeof Cns)[keyof typeof Cns];

/** Command Set Identifier. */
export const Csi = { Nvm: 0x00, KeyValue: 0x01, Zoned: 0x02 } as const;

/** Identify Controller CMIC (byte 76). */
export const Cmic = {
  MultiPort: 1 << 0,
  MultiController: 1 << 1,
  SrIov: 1 << 2,
  Ana: 1 << 3,
} as const;

/** Identify Controller OAES (bytes 95:92); same bit positions as Set Features 0Bh. */
export const Oaes = {
  NamespaceAttribute: 1 << 8,
  FirmwareActivation: 1 << 9,
  AnaChange: 1 << 11,
  PredictableLatencyLogChange: 1 << 12,
  LbaStatusInformation: 1 << 13,
  EnduranceGroupLogChange: 1 << 14,
  NormalSubsystemShutdown: 1 << 15,
  TemperatureThresholdHysteresisRecovery: 1 << 16,
  ReachabilityGroupsChange: 1 << 17,
  AllocatedNamespaceAttribute: 1 << 19,
  ZoneDescriptorChanged: 1 << 27,
  DiscoveryLogChange: 0x80000000,
} as const;

/** Identify Controller CTRATT (bytes 99:96). */
export const Ctratt = {
  HostId128: 1 << 0,
  NonOperationalPowerStatePermissive: 1 << 1,
  NvmSets: 1 << 2,
  ReadRecoveryLevels: 1 << 3,
  EnduranceGroups: 1 << 4,
  PredictableLatency: 1 << 5,
  Tbkas: 1 << 6,
  NamespaceGranularity: 1 << 7,
  SqAssociations: 1 << 8,
  UuidList: 1 << 9,
  MultiDomainSubsystem: 1 << 10,
  FixedCapacityManagement: 1 << 11,
  VariableCapacityManagement: 1 << 12,
  DeleteEnduranceGroup: 1 << 13,
  DeleteNvmSet: 1 << 14,
  ExtendedLbaFormats: 1 << 15,
  MdtsExcludesMetadata: 1 << 16,
  HmbRestrictNonOperational: 1 << 17,
  ReservationsHostIdInteraction: 1 << 18,
  FlexibleDataPlacement: 1 << 19,
} as const;

/** Identify Controller CNTRLTYPE (byte 111). */
export const CntrlType = { NotReported: 0, Io: 1, Discovery: 2, Administrative: 3 } as const;

/** Identify Controller OACS (bytes 257:256). */
export const Oacs = {
  SecuritySendReceive: 1 << 0,
  FormatNvm: 1 << 1,
  FirmwareDownload: 1 << 2,
  NamespaceManagement: 1 << 3,
  DeviceSelfTest: 1 << 4,
  Directives: 1 << 5,
  NvmeMi: 1 << 6,
  VirtualizationManagement: 1 << 7,
  DoorbellBufferConfig: 1 << 8,
  GetLbaStatus: 1 << 9,
} as const;

/** Identify Controller LPA (byte 261). */
export const Lpa = {
  SmartPerNamespace: 1 << 0,
  CommandEffects: 1 << 1,
  ExtendedData: 1 << 2,
  Telemetry: 1 << 3,
  PersistentEvent: 1 << 4,
} as const;

/** Identify Controller ANACAP (byte 343). */
export const Anacap = {
  Optimized: 1 << 0,
  NonOptimized: 1 << 1,
  Inaccessible: 1 << 2,
  PersistentLoss: 1 << 3,
  Change: 1 << 4,
  GrpidNotChangeable: 1 << 6,
  NonZeroGrpidInNsManagement: 1 << 7,
} as const;

/** Identify Controller ONCS (bytes 521:520). */
export const Oncs = {
  Compare: 1 << 0,
  WriteUncorrectable: 1 << 1,
  DatasetManagement: 1 << 2,
  WriteZeroes: 1 << 3,
  SaveSelect: 1 << 4,
  Reservations: 1 << 5,
  Timestamp: 1 << 6,
  Verify: 1 << 7,
  Copy: 1 << 8,
} as const;

/** Identify Controller VWC (byte 525). */
export const Vwc = { Present: 1 << 0, FlushBroadcastMask: 0x6 } as const;

/** Identify Controller SGLS (bytes 539:536). */
export const Sgls = {
  SupportedByteAligned: 0x1,
  SupportedDwordAligned: 0x2,
  SupportMask: 0x3,
  KeyedDataBlock: 1 << 2,
  BitBucket: 1 << 16,
  MptrByteAligned: 1 << 17,
  Oversize: 1 << 18,
  MptrSgl: 1 << 19,
  AddressAsOffset: 1 << 20,
  TransportDataBlock: 1 << 21,
} as const;

/** Identify Namespace NMIC (byte 30). */
export const Nmic = { Shared: 1 << 0 } as const;

/** Identify Namespace NSFEAT (byte 24). */
export const NsFeat = {
  ThinProvisioning: 1 << 0,
  NamespaceAtomics: 1 << 1,
  Dulbe: 1 << 2,
  IdReuse: 1 << 3,
  OptimalIo: 1 << 4,
} as const;

/** Identify Namespace NSATTR (byte 99). */
export const NsAttr = { WriteProtected: 1 << 0 } as const;

/** I/O Command Set Independent Identify Namespace NSFEAT (byte 0); not the same bits as CNS 00h's. */
export const CsIndepNsFeat = { IdReuse: 1 << 3, RotationalMedia: 1 << 4, VolatileWriteCacheNotPresent: 1 << 5 } as const;

/** I/O Command Set Independent Identify Namespace NSTAT (byte 14). */
export const Nstat = { Ready: 1 << 0 } as const;

/** The VS property and Identify Controller VER: major in bits 31:16, minor 15:8, tertiary 7:0. */
export function nvmeVersion(major: number, minor: number, tertiary = 0): number {
  return ((uint(major, 16, 'major') << 16) | (uint(minor, 8, 'minor') << 8) | uint(tertiary, 8, 'tertiary')) >>> 0;
}

/** "1.3", "2.1", "1.2.1": the tertiary number only when it is not zero. */
export function formatNvmeVersion(vs: number): string {
  const t = vs & 0xff;
  return `${vs >>> 16}.${(vs >>> 8) & 0xff}${t ? `.${t}` : ''}`;
}

// ---------------------------------------------------------------------------
// Types

export interface PowerStateDescriptor {
  /** Maximum Power, in 0.01 W (or 0.0001 W when mxps). */
  readonly mp: number;
  readonly mxps: boolean;
  readonly nops: boolean;
  readonly enlat: number;
  readonly exlat: number;
  readonly rrt: number;
  readonly rrl: number;
  readonly rwt: number;
  readonly rwl: number;
  readonly idlp: number;
  readonly ips: number;
  readonly actp: number;
  readonly apw: number;
  readonly aps: number;
  /** Emergency Power Fail Recovery Time and its scale (2.1). */
  readonly epfrt: number;
  readonly epfrts: number;
  /** Forced Quiescence Vault Time and its scale (2.1). */
  readonly fqvt: number;
  readonly fqvts: number;
  /** Emergency Power Fail Vault Time and its scale (2.1). */
  readonly epfvt: number;
  readonly epfvts: number;
}

export interface IdentifyController {
  readonly vid: number;
  readonly ssvid: number;
  readonly sn: string;
  readonly mn: string;
  readonly fr: string;
  readonly rab: number;
  /** IEEE OUI, 24-bit little-endian as on the wire. */
  readonly ieee: number;
  readonly cmic: number;
  readonly mdts: number;
  readonly cntlid: number;
  readonly ver: number;
  readonly rtd3r: number;
  readonly rtd3e: number;
  readonly oaes: number;
  readonly ctratt: number;
  readonly rrls: number;
  /** Boot Partition Capabilities (2.0). */
  readonly bpcap: number;
  /** NVM Subsystem Shutdown Latency, microseconds (2.0). */
  readonly nssl: number;
  /** Power Loss Signaling Information (2.1). */
  readonly plsi: number;
  readonly cntrltype: number;
  readonly fguid: Buffer;
  readonly crdt1: number;
  readonly crdt2: number;
  readonly crdt3: number;
  /** Controller Reachability Capabilities (2.1). */
  readonly crcap: number;
  readonly nvmsr: number;
  readonly vwci: number;
  readonly mec: number;
  readonly oacs: number;
  readonly acl: number;
  readonly aerl: number;
  readonly frmw: number;
  readonly lpa: number;
  readonly elpe: number;
  readonly npss: number;
  readonly avscc: number;
  readonly apsta: number;
  readonly wctemp: number;
  readonly cctemp: number;
  readonly mtfa: number;
  readonly hmpre: number;
  readonly hmmin: number;
  readonly tnvmcap: bigint;
  readonly unvmcap: bigint;
  readonly rpmbs: number;
  readonly edstt: number;
  readonly dsto: number;
  readonly fwug: number;
  readonly kas: number;
  readonly hctma: number;
  readonly mntmt: number;
  readonly mxtmt: number;
  readonly sanicap: number;
  readonly hmminds: number;
  readonly hmmaxd: number;
  readonly nsetidmax: number;
  readonly endgidmax: number;
  readonly anatt: number;
  readonly anacap: number;
  readonly anagrpmax: number;
  readonly nanagrpid: number;
  readonly pels: number;
  readonly domainid: number;
  /** Key Per I/O Capabilities (2.1). */
  readonly kpioc: number;
  /** Maximum Processing Time for Firmware Activation Without Reset, 100 ms units (2.1). */
  readonly mptfawr: number;
  readonly megcap: bigint;
  /** Temperature Threshold Hysteresis Attributes (2.1). */
  readonly tmpthha: number;
  /** Command Quiesce Time, ms (2.1). */
  readonly cqt: number;
  readonly sqes: number;
  readonly cqes: number;
  readonly maxcmd: number;
  readonly nn: number;
  readonly oncs: number;
  readonly fuses: number;
  readonly fna: number;
  readonly vwc: number;
  readonly awun: number;
  readonly awupf: number;
  readonly nvscc: number;
  readonly nwpc: number;
  readonly acwu: number;
  readonly ocfs: number;
  readonly sgls: number;
  readonly mnan: number;
  readonly maxdna: bigint;
  readonly maxcna: number;
  /** Optimal Aggregated Queue Depth (2.1). */
  readonly oaqd: number;
  /** Recommended Host-Initiated Refresh Interval, days (2.1). */
  readonly rhiri: number;
  /** Host-Initiated Refresh Time, minutes (2.1). */
  readonly hirt: number;
  /** Live migration (TP 4159, in 2.1 errata): memory range tracking and user data migration queues. */
  readonly cmmrtd: number;
  readonly nmmrtd: number;
  readonly minmrtg: number;
  readonly maxmrtg: number;
  readonly trattr: number;
  readonly mcudmq: number;
  readonly mnsudmq: number;
  readonly mcmr: number;
  readonly nmcmr: number;
  readonly mcdqpc: number;
  readonly subnqn: string;
  readonly ioccsz: number;
  readonly iorcsz: number;
  readonly icdoff: number;
  readonly fcatt: number;
  readonly msdbd: number;
  readonly ofcs: number;
  readonly dctype: number;
  /** Power state descriptors; the decoder returns npss + 1 of them (psd[0] is PSD0). */
  readonly psd: readonly PowerStateDescriptor[];
}

export interface LbaFormat {
  /** Metadata size in bytes. */
  readonly ms: number;
  /** LBA data size as a power of two (9 = 512 bytes, 12 = 4096). */
  readonly lbads: number;
  /** Relative performance, 0 best .. 3 degraded. */
  readonly rp: number;
}

export interface IdentifyNamespace {
  readonly nsze: bigint;
  readonly ncap: bigint;
  readonly nuse: bigint;
  readonly nsfeat: number;
  /** Number of LBA formats, 0's based. */
  readonly nlbaf: number;
  readonly flbas: number;
  readonly mc: number;
  readonly dpc: number;
  readonly dps: number;
  readonly nmic: number;
  readonly rescap: number;
  readonly fpi: number;
  readonly dlfeat: number;
  readonly nawun: number;
  readonly nawupf: number;
  readonly nacwu: number;
  readonly nabsn: number;
  readonly nabo: number;
  readonly nabspf: number;
  readonly noiob: number;
  readonly nvmcap: bigint;
  readonly npwg: number;
  readonly npwa: number;
  readonly npdg: number;
  readonly npda: number;
  readonly nows: number;
  readonly mssrl: number;
  readonly mcl: number;
  readonly msrc: number;
  /** Key Per I/O Status (2.1). */
  readonly kpios: number;
  readonly nulbaf: number;
  /** Key Per I/O Data Access Alignment and Granularity (2.1). */
  readonly kpiodaag: number;
  readonly anagrpid: number;
  readonly nsattr: number;
  readonly nvmsetid: number;
  readonly endgid: number;
  readonly nguid: Buffer;
  readonly eui64: Buffer;
  /** LBA formats; the decoder returns nlbaf + 1 of them (at most 64). */
  readonly lbaf: readonly LbaFormat[];
}

/** Input for encodeIdentifyNamespace: nlbaf defaults to lbaf.length - 1. */
export type IdentifyNamespaceInput = Partial<IdentifyNamespace>;
export type IdentifyControllerInput = Partial<Omit<IdentifyController, 'psd'>> & {
  readonly psd?: readonly Partial<PowerStateDescriptor>[];
};

/** Namespace Identifier Type. */
export const NsIdType = { Eui64: 1, Nguid: 2, Uuid: 3, Csi: 4 } as const;
export type NsIdTypeValue = (typeof NsIdType)[keyof typeof NsIdType];
const NID_LENGTH: Readonly<Record<NsIdTypeValue, number>> = { 1: 8, 2: 16, 3: 16, 4: 1 };

export interface NsIdDescriptor {
  readonly nidt: NsIdTypeValue;
  readonly nid: Buffer;
}

/** I/O Command Set specific Identify Namespace, NVM Command Set (CNS 05h, CSI 00h). */
export interface IdentifyNamespaceNvm {
  readonly lbstm: bigint;
  readonly pic: number;
  /** Extended LBA format entries (LE32 each, at byte 12). */
  readonly elbaf: readonly number[];
}

/** I/O Command Set specific Identify Controller, NVM Command Set (CNS 06h, CSI 00h). */
export interface IdentifyControllerNvm {
  readonly vsl: number;
  readonly wzsl: number;
  readonly wusl: number;
  readonly dmrl: number;
  readonly dmrsl: number;
  readonly dmsl: bigint;
}

/** I/O Command Set Independent Identify Namespace (CNS 08h). */
export interface IdentifyNamespaceCsIndependent {
  readonly nsfeat: number;
  readonly nmic: number;
  readonly rescap: number;
  readonly fpi: number;
  readonly anagrpid: number;
  readonly nsattr: number;
  readonly nvmsetid: number;
  readonly endgid: number;
  readonly nstat: number;
  /** Key Per I/O Status, Maximum Key Tag, Reachability Group Identifier (2.1). */
  readonly kpios: number;
  readonly maxkt: number;
  readonly rgrpid: number;
}

// ---------------------------------------------------------------------------
// Field layout engine (module private)

type FieldKind = 'u8' | 'u16' | 'u24' | 'u32' | 'u64' | 'u128' | { readonly ascii: number } | { readonly nqn: number } | { readonly bytes: number };

interface Field<T> {
  readonly name: keyof T & string;
  readonly off: number;
  readonly kind: FieldKind;
}

function writeField(buf: Buffer, base: number, kind: FieldKind, value: unknown, name: string): void {
  const off = base;
  if (typeof kind === 'object') {
    if ('ascii' in kind || 'nqn' in kind) {
      // Checked like the numeric kinds below: a non-string would be written as its String() form ('[object Object]').
      const text = value === undefined ? '' : value;
      if (typeof text !== 'string') throw new RangeError(`${name}: expected a string`);
      if ('ascii' in kind) writeAscii(buf, off, kind.ascii, text, name);
      else writeNqn(buf, off, kind.nqn, text, name);
    } else {
      if (value === undefined) return;
      if (!Buffer.isBuffer(value) || value.length !== kind.bytes) {
        throw new RangeError(`${name}: expected a Buffer of ${kind.bytes} bytes`);
      }
      value.copy(buf, off);
    }
    return;
  }
  if (kind === 'u64' || kind === 'u128') {
    const v = value === undefined ? 0n : value;
    if (typeof v !== 'bigint') throw new RangeError(`${name}: expected a bigint`);
    if (kind === 'u64') writeU64(buf, off, v, name);
    else writeU128(buf, off, v, name);
    return;
  }
  const n = value === undefined ? 0 : value;
  if (typeof n !== 'number') throw new RangeError(`${name}: expected a number`);
  switch (kind) {
    case 'u8':
      buf.writeUInt8(uint(n, 8, name), off);
      break;
    case 'u16':
      buf.writeUInt16LE(uint(n, 16, name), off);
      break;
    case 'u24':
      buf.writeUIntLE(uint(n, 24, name), off, 3);
      break;
    case 'u32':
      buf.writeUInt32LE(uint(n, 32, name), off);
      break;
  }
}

function readField(buf: Buffer, off: number, kind: FieldKind): unknown {
  if (typeof kind === 'object') {
    if ('ascii' in kind) return readAscii(buf, off, kind.ascii);
    if ('nqn' in kind) return readNqn(buf, off, kind.nqn);
    return Buffer.from(buf.subarray(off, off + kind.bytes));
  }
  switch (kind) {
    case 'u8':
      return buf.readUInt8(off);
    case 'u16':
      return buf.readUInt16LE(off);
    case 'u24':
      return buf.readUIntLE(off, 3);
    case 'u32':
      return buf.readUInt32LE(off);
    case 'u64':
      return buf.readBigUInt64LE(off);
    case 'u128':
      return readU128(buf, off);
  }
}

function encodeLayout<T>(buf: Buffer, layout: readonly Field<T>[], obj: Partial<T>, base = 0): void {
  const rec = obj as Readonly<Record<string, unknown>>;
  for (const f of layout) writeField(buf, base + f.off, f.kind, rec[f.name], f.name);
}

function decodeLayout<T>(buf: Buffer, layout: readonly Field<T>[], base = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of layout) out[f.name] = readField(buf, base + f.off, f.kind);
  return out;
}

// ---------------------------------------------------------------------------
// Identify Controller (CNS 01h)

const CTRL_LAYOUT: readonly Field<IdentifyController>[] = [
  { name: 'vid', off: 0, kind: 'u16' },
  { name: 'ssvid', off: 2, kind: 'u16' },
  { name: 'sn', off: 4, kind: { ascii: 20 } },
  { name: 'mn', off: 24, kind: { ascii: 40 } },
  { name: 'fr', off: 64, kind: { ascii: 8 } },
  { name: 'rab', off: 72, kind: 'u8' },
  { name: 'ieee', off: 73, kind: 'u24' },
  { name: 'cmic', off: 76, kind: 'u8' },
  { name: 'mdts', off: 77, kind: 'u8' },
  { name: 'cntlid', off: 78, kind: 'u16' },
  { name: 'ver', off: 80, kind: 'u32' },
  { name: 'rtd3r', off: 84, kind: 'u32' },
  { name: 'rtd3e', off: 88, kind: 'u32' },
  { name: 'oaes', off: 92, kind: 'u32' },
  { name: 'ctratt', off: 96, kind: 'u32' },
  { name: 'rrls', off: 100, kind: 'u16' },
  { name: 'bpcap', off: 102, kind: 'u8' },
  { name: 'nssl', off: 104, kind: 'u32' },
  { name: 'plsi', off: 110, kind: 'u8' },
  { name: 'cntrltype', off: 111, kind: 'u8' },
  { name: 'fguid', off: 112, kind: { bytes: 16 } },
  { name: 'crdt1', off: 128, kind: 'u16' },
  { name: 'crdt2', off: 130, kind: 'u16' },
  { name: 'crdt3', off: 132, kind: 'u16' },
  { name: 'crcap', off: 134, kind: 'u8' },
  { name: 'nvmsr', off: 253, kind: 'u8' },
  { name: 'vwci', off: 254, kind: 'u8' },
  { name: 'mec', off: 255, kind: 'u8' },
  { name: 'oacs', off: 256, kind: 'u16' },
  { name: 'acl', off: 258, kind: 'u8' },
  { name: 'aerl', off: 259, kind: 'u8' },
  { name: 'frmw', off: 260, kind: 'u8' },
  { name: 'lpa', off: 261, kind: 'u8' },
  { name: 'elpe', off: 262, kind: 'u8' },
  { name: 'npss', off: 263, kind: 'u8' },
  { name: 'avscc', off: 264, kind: 'u8' },
  { name: 'apsta', off: 265, kind: 'u8' },
  { name: 'wctemp', off: 266, kind: 'u16' },
  { name: 'cctemp', off: 268, kind: 'u16' },
  { name: 'mtfa', off: 270, kind: 'u16' },
  { name: 'hmpre', off: 272, kind: 'u32' },
  { name: 'hmmin', off: 276, kind: 'u32' },
  { name: 'tnvmcap', off: 280, kind: 'u128' },
  { name: 'unvmcap', off: 296, kind: 'u128' },
  { name: 'rpmbs', off: 312, kind: 'u32' },
  { name: 'edstt', off: 316, kind: 'u16' },
  { name: 'dsto', off: 318, kind: 'u8' },
  { name: 'fwug', off: 319, kind: 'u8' },
  { name: 'kas', off: 320, kind: 'u16' },
  { name: 'hctma', off: 322, kind: 'u16' },
  { name: 'mntmt', off: 324, kind: 'u16' },
  { name: 'mxtmt', off: 326, kind: 'u16' },
  { name: 'sanicap', off: 328, kind: 'u32' },
  { name: 'hmminds', off: 332, kind: 'u32' },
  { name: 'hmmaxd', off: 336, kind: 'u16' },
  { name: 'nsetidmax', off: 338, kind: 'u16' },
  { name: 'endgidmax', off: 340, kind: 'u16' },
  { name: 'anatt', off: 342, kind: 'u8' },
  { name: 'anacap', off: 343, kind: 'u8' },
  { name: 'anagrpmax', off: 344, kind: 'u32' },
  { name: 'nanagrpid', off: 348, kind: 'u32' },
  { name: 'pels', off: 352, kind: 'u32' },
  { name: 'domainid', off: 356, kind: 'u16' },
  { name: 'kpioc', off: 358, kind: 'u8' },
  { name: 'mptfawr', off: 360, kind: 'u16' },
  { name: 'megcap', off: 368, kind: 'u128' },
  { name: 'tmpthha', off: 384, kind: 'u8' },
  { name: 'cqt', off: 386, kind: 'u16' },
  { name: 'sqes', off: 512, kind: 'u8' },
  { name: 'cqes', off: 513, kind: 'u8' },
  { name: 'maxcmd', off: 514, kind: 'u16' },
  { name: 'nn', off: 516, kind: 'u32' },
  { name: 'oncs', off: 520, kind: 'u16' },
  { name: 'fuses', off: 522, kind: 'u16' },
  { name: 'fna', off: 524, kind: 'u8' },
  { name: 'vwc', off: 525, kind: 'u8' },
  { name: 'awun', off: 526, kind: 'u16' },
  { name: 'awupf', off: 528, kind: 'u16' },
  { name: 'nvscc', off: 530, kind: 'u8' },
  { name: 'nwpc', off: 531, kind: 'u8' },
  { name: 'acwu', off: 532, kind: 'u16' },
  { name: 'ocfs', off: 534, kind: 'u16' },
  { name: 'sgls', off: 536, kind: 'u32' },
  { name: 'mnan', off: 540, kind: 'u32' },
  { name: 'maxdna', off: 544, kind: 'u128' },
  { name: 'maxcna', off: 560, kind: 'u32' },
  { name: 'oaqd', off: 564, kind: 'u32' },
  { name: 'rhiri', off: 568, kind: 'u8' },
  { name: 'hirt', off: 569, kind: 'u8' },
  { name: 'cmmrtd', off: 570, kind: 'u16' },
  { name: 'nmmrtd', off: 572, kind: 'u16' },
  { name: 'minmrtg', off: 574, kind: 'u8' },
  { name: 'maxmrtg', off: 575, kind: 'u8' },
  { name: 'trattr', off: 576, kind: 'u8' },
  { name: 'mcudmq', off: 578, kind: 'u16' },
  { name: 'mnsudmq', off: 580, kind: 'u16' },
  { name: 'mcmr', off: 582, kind: 'u16' },
  { name: 'nmcmr', off: 584, kind: 'u16' },
  { name: 'mcdqpc', off: 586, kind: 'u16' },
  { name: 'subnqn', off: 768, kind: { nqn: 256 } },
  { name: 'ioccsz', off: 1792, kind: 'u32' },
  { name: 'iorcsz', off: 1796, kind: 'u32' },
  { name: 'icdoff', off: 1800, kind: 'u16' },
  { name: 'fcatt', off: 1802, kind: 'u8' },
  { name: 'msdbd', off: 1803, kind: 'u8' },
  { name: 'ofcs', off: 1804, kind: 'u16' },
  { name: 'dctype', off: 1806, kind: 'u8' },
];

/** Byte offset of the first power state descriptor; each is 32 bytes, 32 of them. */
export const PSD_OFFSET = 2048;
export const PSD_SIZE = 32;
const MAX_PSD = 32;

function encodePsd(buf: Buffer, off: number, p: Partial<PowerStateDescriptor>, i: number): void {
  const n = (name: string): string => `psd[${i}].${name}`;
  buf.writeUInt16LE(uint(p.mp ?? 0, 16, n('mp')), off);
  buf.writeUInt8((p.mxps ? 1 : 0) | (p.nops ? 2 : 0), off + 3);
  buf.writeUInt32LE(uint(p.enlat ?? 0, 32, n('enlat')), off + 4);
  buf.writeUInt32LE(uint(p.exlat ?? 0, 32, n('exlat')), off + 8);
  buf.writeUInt8(uint(p.rrt ?? 0, 5, n('rrt')), off + 12);
  buf.writeUInt8(uint(p.rrl ?? 0, 5, n('rrl')), off + 13);
  buf.writeUInt8(uint(p.rwt ?? 0, 5, n('rwt')), off + 14);
  buf.writeUInt8(uint(p.rwl ?? 0, 5, n('rwl')), off + 15);
  buf.writeUInt16LE(uint(p.idlp ?? 0, 16, n('idlp')), off + 16);
  buf.writeUInt8(uint(p.ips ?? 0, 2, n('ips')) << 6, off + 18);
  buf.writeUInt16LE(uint(p.actp ?? 0, 16, n('actp')), off + 20);
  buf.writeUInt8(uint(p.apw ?? 0, 3, n('apw')) | (uint(p.aps ?? 0, 2, n('aps')) << 6), off + 22);
  buf.writeUInt8(uint(p.epfrt ?? 0, 8, n('epfrt')), off + 23);
  buf.writeUInt8(uint(p.fqvt ?? 0, 8, n('fqvt')), off + 24);
  buf.writeUInt8(uint(p.epfvt ?? 0, 8, n('epfvt')), off + 25);
  buf.writeUInt8(uint(p.epfrts ?? 0, 4, n('epfrts')) | (uint(p.fqvts ?? 0, 4, n('fqvts')) << 4), off + 26);
  buf.writeUInt8(uint(p.epfvts ?? 0, 4, n('epfvts')), off + 27);
}

function decodePsd(buf: Buffer, off: number): PowerStateDescriptor {
  const flags = buf.readUInt8(off + 3);
  const apwAps = buf.readUInt8(off + 22);
  return {
    mp: buf.readUInt16LE(off),
    mxps: (flags & 1) !== 0,
    nops: (flags & 2) !== 0,
    enlat: buf.readUInt32LE(off + 4),
    exlat: buf.readUInt32LE(off + 8),
    rrt: buf.readUInt8(off + 12) & 0x1f,
    rrl: buf.readUInt8(off + 13) & 0x1f,
    rwt: buf.readUInt8(off + 14) & 0x1f,
    rwl: buf.readUInt8(off + 15) & 0x1f,
    idlp: buf.readUInt16LE(off + 16),
    ips: buf.readUInt8(off + 18) >> 6,
    actp: buf.readUInt16LE(off + 20),
    apw: apwAps & 0x7,
    aps: apwAps >> 6,
    epfrt: buf.readUInt8(off + 23),
    epfrts: buf.readUInt8(off + 26) & 0xf,
    fqvt: buf.readUInt8(off + 24),
    fqvts: buf.readUInt8(off + 26) >> 4,
    epfvt: buf.readUInt8(off + 25),
    epfvts: buf.readUInt8(off + 27) & 0xf,
  };
}

export function encodeIdentifyController(c: IdentifyControllerInput): Buffer {
  const buf = Buffer.alloc(IDENTIFY_DATA_SIZE);
  encodeLayout<IdentifyController>(buf, CTRL_LAYOUT, c as Partial<IdentifyController>);
  const psd = c.psd ?? [];
  if (psd.length > MAX_PSD) throw new RangeError(`psd: at most ${MAX_PSD} power state descriptors`);
  psd.forEach((p, i) => encodePsd(buf, PSD_OFFSET + i * PSD_SIZE, p, i));
  return buf;
}

export function decodeIdentifyController(buf: Buffer): IdentifyController {
  requireLength(buf, IDENTIFY_DATA_SIZE, 'Identify Controller');
  const rec = decodeLayout<IdentifyController>(buf, CTRL_LAYOUT);
  const npss = Math.min(rec['npss'] as number, MAX_PSD - 1);
  const psd: PowerStateDescriptor[] = [];
  for (let i = 0; i <= npss; i++) psd.push(decodePsd(buf, PSD_OFFSET + i * PSD_SIZE));
  rec['psd'] = psd;
  return rec as unknown as IdentifyController;
}

// ---------------------------------------------------------------------------
// Identify Namespace (CNS 00h)

const NS_LAYOUT: readonly Field<IdentifyNamespace>[] = [
  { name: 'nsze', off: 0, kind: 'u64' },
  { name: 'ncap', off: 8, kind: 'u64' },
  { name: 'nuse', off: 16, kind: 'u64' },
  { name: 'nsfeat', off: 24, kind: 'u8' },
  { name: 'nlbaf', off: 25, kind: 'u8' },
  { name: 'flbas', off: 26, kind: 'u8' },
  { name: 'mc', off: 27, kind: 'u8' },
  { name: 'dpc', off: 28, kind: 'u8' },
  { name: 'dps', off: 29, kind: 'u8' },
  { name: 'nmic', off: 30, kind: 'u8' },
  { name: 'rescap', off: 31, kind: 'u8' },
  { name: 'fpi', off: 32, kind: 'u8' },
  { name: 'dlfeat', off: 33, kind: 'u8' },
  { name: 'nawun', off: 34, kind: 'u16' },
  { name: 'nawupf', off: 36, kind: 'u16' },
  { name: 'nacwu', off: 38, kind: 'u16' },
  { name: 'nabsn', off: 40, kind: 'u16' },
  { name: 'nabo', off: 42, kind: 'u16' },
  { name: 'nabspf', off: 44, kind: 'u16' },
  { name: 'noiob', off: 46, kind: 'u16' },
  { name: 'nvmcap', off: 48, kind: 'u128' },
  { name: 'npwg', off: 64, kind: 'u16' },
  { name: 'npwa', off: 66, kind: 'u16' },
  { name: 'npdg', off: 68, kind: 'u16' },
  { name: 'npda', off: 70, kind: 'u16' },
  { name: 'nows', off: 72, kind: 'u16' },
  { name: 'mssrl', off: 74, kind: 'u16' },
  { name: 'mcl', off: 76, kind: 'u32' },
  { name: 'msrc', off: 80, kind: 'u8' },
  { name: 'kpios', off: 81, kind: 'u8' },
  { name: 'nulbaf', off: 82, kind: 'u8' },
  { name: 'kpiodaag', off: 84, kind: 'u32' },
  { name: 'anagrpid', off: 92, kind: 'u32' },
  { name: 'nsattr', off: 99, kind: 'u8' },
  { name: 'nvmsetid', off: 100, kind: 'u16' },
  { name: 'endgid', off: 102, kind: 'u16' },
  { name: 'nguid', off: 104, kind: { bytes: 16 } },
  { name: 'eui64', off: 120, kind: { bytes: 8 } },
];

export const LBAF_OFFSET = 128;
export const MAX_LBAF = 64;

/** The LBA format index selected by FLBAS (bits 3:0, plus bits 6:5 as the high bits). */
export function flbasIndex(flbas: number): number {
  return (flbas & 0xf) | ((flbas & 0x60) >> 1);
}

export function encodeIdentifyNamespace(ns: IdentifyNamespaceInput): Buffer {
  const buf = Buffer.alloc(IDENTIFY_DATA_SIZE);
  const lbaf = ns.lbaf ?? [];
  if (lbaf.length > MAX_LBAF) throw new RangeError(`lbaf: at most ${MAX_LBAF} LBA formats`);
  const nlbaf = ns.nlbaf ?? Math.max(lbaf.length - 1, 0);
  encodeLayout<IdentifyNamespace>(buf, NS_LAYOUT, { ...ns, nlbaf });
  lbaf.forEach((f, i) => {
    const off = LBAF_OFFSET + i * 4;
    buf.writeUInt16LE(uint(f.ms, 16, `lbaf[${i}].ms`), off);
    buf.writeUInt8(uint(f.lbads, 8, `lbaf[${i}].lbads`), off + 2);
    buf.writeUInt8(uint(f.rp, 2, `lbaf[${i}].rp`), off + 3);
  });
  return buf;
}

export function decodeIdentifyNamespace(buf: Buffer): IdentifyNamespace {
  requireLength(buf, IDENTIFY_DATA_SIZE, 'Identify Namespace');
  const rec = decodeLayout<IdentifyNamespace>(buf, NS_LAYOUT);
  const count = Math.min((rec['nlbaf'] as number) + 1, MAX_LBAF);
  const lbaf: LbaFormat[] = [];
  for (let i = 0; i < count; i++) {
    const off = LBAF_OFFSET + i * 4;
    lbaf.push({ ms: buf.readUInt16LE(off), lbads: buf.readUInt8(off + 2), rp: buf.readUInt8(off + 3) & 0x3 });
  }
  rec['lbaf'] = lbaf;
  return rec as unknown as IdentifyNamespace;
}

// ---------------------------------------------------------------------------
// Active Namespace ID list (CNS 02h, and 07h for a CSI)

export const MAX_NAMESPACE_LIST = 1024;

/**
 * The list the controller returns for CNS 02h: NSIDs strictly greater than
 * `startAfter` (the command's NSID), ascending, at most 1024, zero filled.
 */
export function encodeNamespaceList(nsids: readonly number[], startAfter = 0): Buffer {
  for (const id of nsids) {
    if (!Number.isInteger(id) || id < 1 || id > 0xfffffffe) {
      throw new RangeError(`namespace list: ${id} is not a valid NSID`);
    }
  }
  const sorted = [...new Set(nsids)].filter((id) => id > startAfter).sort((a, b) => a - b);
  const buf = Buffer.alloc(IDENTIFY_DATA_SIZE);
  sorted.slice(0, MAX_NAMESPACE_LIST).forEach((id, i) => buf.writeUInt32LE(id, i * 4));
  return buf;
}

export function decodeNamespaceList(buf: Buffer): number[] {
  requireLength(buf, IDENTIFY_DATA_SIZE, 'Namespace List');
  const out: number[] = [];
  for (let i = 0; i < MAX_NAMESPACE_LIST; i++) {
    const id = buf.readUInt32LE(i * 4);
    if (id === 0) break;
    out.push(id);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Namespace Identification Descriptor list (CNS 03h)

export function encodeNsIdDescriptors(descs: readonly NsIdDescriptor[]): Buffer {
  const buf = Buffer.alloc(IDENTIFY_DATA_SIZE);
  let off = 0;
  for (const d of descs) {
    const len = NID_LENGTH[d.nidt];
    if (len === undefined) throw new RangeError(`NS descriptor: unknown nidt ${String(d.nidt)}`);
    if (d.nid.length !== len) {
      throw new RangeError(`NS descriptor: nidt ${d.nidt} needs ${len} bytes, got ${d.nid.length}`);
    }
    // Keep room for the terminating zero header.
    if (off + 4 + len > IDENTIFY_DATA_SIZE - 4) throw new RangeError('NS descriptor list: too many descriptors');
    buf.writeUInt8(d.nidt, off);
    buf.writeUInt8(len, off + 1);
    d.nid.copy(buf, off + 4);
    off += 4 + len;
  }
  return buf;
}

/** Decodes descriptors until a zero NIDT; unknown types are skipped. */
export function decodeNsIdDescriptors(buf: Buffer): NsIdDescriptor[] {
  requireLength(buf, IDENTIFY_DATA_SIZE, 'NS Identification Descriptor list');
  const out: NsIdDescriptor[] = [];
  let off = 0;
  while (off + 4 <= IDENTIFY_DATA_SIZE) {
    const nidt = buf.readUInt8(off);
    if (nidt === 0) break;
    const nidl = buf.readUInt8(off + 1);
    if (off + 4 + nidl > IDENTIFY_DATA_SIZE) {
      throw new RangeError(`NS descriptor at ${off}: length ${nidl} runs past the end`);
    }
    if (nidt >= 1 && nidt <= 4) {
      const t = nidt as NsIdTypeValue;
      if (nidl !== NID_LENGTH[t]) throw new RangeError(`NS descriptor at ${off}: nidt ${nidt} with nidl ${nidl}`);
      out.push({ nidt: t, nid: Buffer.from(buf.subarray(off + 4, off + 4 + nidl)) });
    }
    off += 4 + nidl;
  }
  return out;
}

function hexToBytes(hex: string, bytes: number, what: string): Buffer {
  if (hex.length !== bytes * 2 || !/^[0-9a-fA-F]+$/.test(hex)) {
    throw new RangeError(`${what}: expected ${bytes * 2} hex digits, got "${hex}"`);
  }
  return Buffer.from(hex, 'hex');
}

/** "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (or 32 bare hex digits) to 16 bytes. */
export function uuidToBytes(uuid: string): Buffer {
  const s = uuid.trim();
  if (s.includes('-') && !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s)) {
    throw new RangeError(`UUID: "${uuid}" is not in 8-4-4-4-12 form`);
  }
  return hexToBytes(s.replace(/-/g, ''), 16, 'UUID');
}

/** 16 bytes to the lowercase 8-4-4-4-12 form. */
export function bytesToUuid(bytes: Buffer): string {
  if (bytes.length !== 16) throw new RangeError(`UUID: expected 16 bytes, got ${bytes.length}`);
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** 32 hex digits (dashes ignored) to a 16-byte NGUID. */
export function nguidToBytes(nguid: string): Buffer {
  return hexToBytes(nguid.trim().replace(/-/g, ''), 16, 'NGUID');
}

/** 16-byte NGUID to 32 lowercase hex digits. */
export function bytesToNguid(bytes: Buffer): string {
  if (bytes.length !== 16) throw new RangeError(`NGUID: expected 16 bytes, got ${bytes.length}`);
  return bytes.toString('hex');
}

/** 16 hex digits (dashes or colons ignored) to an 8-byte EUI-64. */
export function eui64ToBytes(eui: string): Buffer {
  return hexToBytes(eui.trim().replace(/[-:]/g, ''), 8, 'EUI-64');
}

export function bytesToEui64(bytes: Buffer): string {
  if (bytes.length !== 8) throw new RangeError(`EUI-64: expected 8 bytes, got ${bytes.length}`);
  return bytes.toString('hex');
}

// ---------------------------------------------------------------------------
// CNS 05h / 06h, NVM Command Set (CSI 00h)

const ELBAF_OFFSET = 12;

export function encodeIdentifyNamespaceNvm(ns: Partial<IdentifyNamespaceNvm>): Buffer {
  const buf = Buffer.alloc(IDENTIFY_DATA_SIZE);
  writeU64(buf, 0, ns.lbstm ?? 0n, 'lbstm');
  buf.writeUInt8(uint(ns.pic ?? 0, 8, 'pic'), 8);
  const elbaf = ns.elbaf ?? [];
  if (elbaf.length > MAX_LBAF) throw new RangeError(`elbaf: at most ${MAX_LBAF} entries`);
  elbaf.forEach((v, i) => buf.writeUInt32LE(uint(v, 32, `elbaf[${i}]`), ELBAF_OFFSET + i * 4));
  return buf;
}

/** `count` is how many ELBAF entries to return (nlbaf + 1 of the namespace); default all 64. */
export function decodeIdentifyNamespaceNvm(buf: Buffer, count = MAX_LBAF): IdentifyNamespaceNvm {
  requireLength(buf, IDENTIFY_DATA_SIZE, 'Identify Namespace (NVM command set)');
  const elbaf: number[] = [];
  for (let i = 0; i < Math.min(count, MAX_LBAF); i++) elbaf.push(buf.readUInt32LE(ELBAF_OFFSET + i * 4));
  return { lbstm: buf.readBigUInt64LE(0), pic: buf.readUInt8(8), elbaf };
}

const CTRL_NVM_LAYOUT: readonly Field<IdentifyControllerNvm>[] = [
  { name: 'vsl', off: 0, kind: 'u8' },
  { name: 'wzsl', off: 1, kind: 'u8' },
  { name: 'wusl', off: 2, kind: 'u8' },
  { name: 'dmrl', off: 3, kind: 'u8' },
  { name: 'dmrsl', off: 4, kind: 'u32' },
  { name: 'dmsl', off: 8, kind: 'u64' },
];

export function encodeIdentifyControllerNvm(c: Partial<IdentifyControllerNvm>): Buffer {
  const buf = Buffer.alloc(IDENTIFY_DATA_SIZE);
  encodeLayout(buf, CTRL_NVM_LAYOUT, c);
  return buf;
}

export function decodeIdentifyControllerNvm(buf: Buffer): IdentifyControllerNvm {
  requireLength(buf, IDENTIFY_DATA_SIZE, 'Identify Controller (NVM command set)');
  return decodeLayout(buf, CTRL_NVM_LAYOUT) as unknown as IdentifyControllerNvm;
}

// ---------------------------------------------------------------------------
// CNS 08h, I/O Command Set Independent Identify Namespace

const CS_INDEP_LAYOUT: readonly Field<IdentifyNamespaceCsIndependent>[] = [
  { name: 'nsfeat', off: 0, kind: 'u8' },
  { name: 'nmic', off: 1, kind: 'u8' },
  { name: 'rescap', off: 2, kind: 'u8' },
  { name: 'fpi', off: 3, kind: 'u8' },
  { name: 'anagrpid', off: 4, kind: 'u32' },
  { name: 'nsattr', off: 8, kind: 'u8' },
  { name: 'nvmsetid', off: 10, kind: 'u16' },
  { name: 'endgid', off: 12, kind: 'u16' },
  { name: 'nstat', off: 14, kind: 'u8' },
  { name: 'kpios', off: 15, kind: 'u8' },
  { name: 'maxkt', off: 16, kind: 'u16' },
  { name: 'rgrpid', off: 20, kind: 'u32' },
];

export function encodeIdentifyNamespaceCsIndependent(ns: Partial<IdentifyNamespaceCsIndependent>): Buffer {
  const buf = Buffer.alloc(IDENTIFY_DATA_SIZE);
  encodeLayout(buf, CS_INDEP_LAYOUT, ns);
  return buf;
}

export function decodeIdentifyNamespaceCsIndependent(buf: Buffer): IdentifyNamespaceCsIndependent {
  requireLength(buf, IDENTIFY_DATA_SIZE, 'I/O Command Set Independent Identify Namespace');
  return decodeLayout(buf, CS_INDEP_LAYOUT) as unknown as IdentifyNamespaceCsIndependent;
}

// ---------------------------------------------------------------------------
// Identify command dwords

export interface IdentifyDwordsInput {
  readonly cns: number;
  /** Controller Identifier, CDW10 bits 31:16. */
  readonly cntid?: number;
  /** CNS Specific Identifier, CDW11 bits 15:0. */
  readonly cnssid?: number;
  /** Command Set Identifier, CDW11 bits 31:24. */
  readonly csi?: number;
  /** UUID Index, CDW14 bits 6:0. */
  readonly uuidIndex?: number;
}

export interface IdentifyDwords {
  readonly cns: number;
  readonly cntid: number;
  readonly cnssid: number;
  readonly csi: number;
  readonly uuidIndex: number;
}

export function encodeIdentifyDwords(p: IdentifyDwordsInput): { cdw10: number; cdw11: number; cdw14: number } {
  const cns = uint(p.cns, 8, 'cns');
  const cntid = uint(p.cntid ?? 0, 16, 'cntid');
  const cnssid = uint(p.cnssid ?? 0, 16, 'cnssid');
  const csi = uint(p.csi ?? 0, 8, 'csi');
  const uuidIndex = uint(p.uuidIndex ?? 0, 7, 'uuidIndex');
  return {
    cdw10: (cns | (cntid << 16)) >>> 0,
    cdw11: (cnssid | (csi << 24)) >>> 0,
    cdw14: uuidIndex,
  };
}

export function decodeIdentifyDwords(cdw10: number, cdw11 = 0, cdw14 = 0): IdentifyDwords {
  return {
    cns: cdw10 & 0xff,
    cntid: (cdw10 >>> 16) & 0xffff,
    cnssid: cdw11 & 0xffff,
    csi: (cdw11 >>> 24) & 0xff,
    uuidIndex: cdw14 & 0x7f,
  };
}
