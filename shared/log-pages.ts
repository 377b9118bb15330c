/**
 * Log pages (Get Log Page, Admin opcode 02h): typed encoders and decoders,
 * the Get Log Page command dwords, and the offset/length slicer used to serve
 * partial reads.
 *
 * Offsets follow the NVMe Base Specification 2.x and NVMe over Fabrics as
 * mirrored by Linux's include/linux/nvme.h (nvme_smart_log, nvme_fw_slot_info_log,
 * nvme_effects_log, nvme_ana_rsp_hdr, nvme_ana_group_desc, nvmf_disc_rsp_page_*)
 * and libnvme's nvme_error_log_page. All multi-byte fields are little-endian.
 * Encoders take partial objects (missing fields are zero); decoders throw a
 * RangeError when the buffer is shorter than the structure.
 */

import { U64_MAX, readAscii, readNqn, readU128, requireLength, uint, writeAscii, writeNqn, writeU128, writeU64 } from './fields.ts';
export const LogPageId = {
  /** NVMe 2.0; Linux nvmet answers it from 6.13 on (7.2 here), 6.1 and 6.12 refuse it with Invalid Field. */
  SupportedLogPages: 0x00,
  ErrorInformation: 0x01,
  Smart: 0x02,
  FirmwareSlot: 0x03,
  ChangedNamespaceList: 0x04,
  CommandsSupportedEffects: 0x05,
  EnduranceGroupInformation: 0x09,
  Ana: 0x0c,
  FeatureIdsSupportedEffects: 0x12,
  RotationalMediaInformation: 0x16,
  Discovery: 0x70,
  ReservationNotification: 0x80,
} as const;
export type LogPageIdValue = (typeof LogPageId)[keyof typeof LogPageId];

// ---------------------------------------------------------------------------
// Module-private helpers

// ---------------------------------------------------------------------------
// Error Information (LID 01h): 64-byte entries

export const ERROR_LOG_ENTRY_SIZE = 64;

export interface ErrorLogEntry {
  readonly errorCount: bigint;
  readonly sqid: number;
  readonly cid: number;
  /** The 15-bit Status Field (SC 7:0, SCT 10:8, CRD 12:11, M 13, DNR 14); bits 15:1 on the wire. */
  readonly status: number;
  /** Bit 0 of bytes 13:12: the Phase Tag posted for the command. */
  readonly phaseTag: boolean;
  /** Byte (7:0) and bit (10:8) of the command parameter in error. */
  readonly parameterErrorLocation: number;
  readonly lba: bigint;
  readonly nsid: number;
  readonly vendorSpecificInfo: number;
  readonly trtype: number;
  readonly csi: number;
  readonly opcode: number;
  readonly commandSpecificInfo: bigint;
  readonly trtypeSpecificInfo: number;
  /** Log Page Version (byte 63); 1 when csi and opcode are valid. */
  readonly logPageVersion: number;
}

function encodeErrorEntryAt(buf: Buffer, off: number, e: Partial<ErrorLogEntry>, i: number): void {
  const n = (f: string): string => `error[${i}].${f}`;
  writeU64(buf, off, e.errorCount ?? 0n, n('errorCount'));
  buf.writeUInt16LE(uint(e.sqid ?? 0, 16, n('sqid')), off + 8);
  buf.writeUInt16LE(uint(e.cid ?? 0, 16, n('cid')), off + 10);
  buf.writeUInt16LE((uint(e.status ?? 0, 15, n('status')) << 1) | (e.phaseTag ? 1 : 0), off + 12);
  buf.writeUInt16LE(uint(e.parameterErrorLocation ?? 0, 16, n('parameterErrorLocation')), off + 14);
  writeU64(buf, off + 16, e.lba ?? 0n, n('lba'));
  buf.writeUInt32LE(uint(e.nsid ?? 0, 32, n('nsid')), off + 24);
  buf.writeUInt8(uint(e.vendorSpecificInfo ?? 0, 8, n('vendorSpecificInfo')), off + 28);
  buf.writeUInt8(uint(e.trtype ?? 0, 8, n('trtype')), off + 29);
  buf.writeUInt8(uint(e.csi ?? 0, 8, n('csi')), off + 30);
  buf.writeUInt8(uint(e.opcode ?? 0, 8, n('opcode')), off + 31);
  writeU64(buf, off + 32, e.commandSpecificInfo ?? 0n, n('commandSpecificInfo'));
  buf.writeUInt16LE(uint(e.trtypeSpecificInfo ?? 0, 16, n('trtypeSpecificInfo')), off + 40);
  buf.writeUInt8(uint(e.logPageVersion ?? 0, 8, n('logPageVersion')), off + 63);
}

function decodeErrorEntryAt(buf: Buffer, off: number): ErrorLogEntry {
  const sf = buf.readUInt16LE(off + 12);
  return {
    errorCount: buf.readBigUInt64LE(off),
    sqid: buf.readUInt16LE(off + 8),
    cid: buf.readUInt16LE(off + 10),
    status: sf >> 1,
    phaseTag: (sf & 1) !== 0,
    parameterErrorLocation: buf.readUInt16LE(off + 14),
    lba: buf.readBigUInt64LE(off + 16),
    nsid: buf.readUInt32LE(off + 24),
    vendorSpecificInfo: buf.readUInt8(off + 28),
    trtype: buf.readUInt8(off + 29),
    csi: buf.readUInt8(off + 30),
    opcode: buf.readUInt8(off + 31),
    commandSpecificInfo: buf.readBigUInt64LE(off + 32),
    trtypeSpecificInfo: buf.readUInt16LE(off + 40),
    logPageVersion: buf.readUInt8(off + 63),
  };
}

/**
 * Encodes entries back to back. `minEntries` zero-fills up to that many slots
 * (ELPE + 1 in a full log), so unused slots read as error count 0 (invalid).
 */
export function encodeErrorLog(entries: readonly Partial<ErrorLogEntry>[], minEntries = 0): Buffer {
  const n = Math.max(entries.length, minEntries);
  const buf = Buffer.alloc(n * ERROR_LOG_ENTRY_SIZE);
  entries.forEach((e, i) => encodeErrorEntryAt(buf, i * ERROR_LOG_ENTRY_SIZE, e, i));
  return buf;
}

/** Decodes every whole 64-byte entry in `buf` (including empty ones, error count 0). */
export function decodeErrorLog(buf: Buffer): ErrorLogEntry[] {
  const out: ErrorLogEntry[] = [];
  for (let off = 0; off + ERROR_LOG_ENTRY_SIZE <= buf.length; off += ERROR_LOG_ENTRY_SIZE) {
    out.push(decodeErrorEntryAt(buf, off));
  }
  return out;
}

export function encodeErrorLogEntry(e: Partial<ErrorLogEntry>): Buffer {
  const buf = Buffer.alloc(ERROR_LOG_ENTRY_SIZE);
  encodeErrorEntryAt(buf, 0, e, 0);
  return buf;
}

export function decodeErrorLogEntry(buf: Buffer): ErrorLogEntry {
  requireLength(buf, ERROR_LOG_ENTRY_SIZE, 'Error Information entry');
  return decodeErrorEntryAt(buf, 0);
}

// ---------------------------------------------------------------------------
// SMART / Health Information (LID 02h), 512 bytes

export const SMART_LOG_SIZE = 512;

export const SmartCriticalWarning = {
  AvailableSpare: 1 << 0,
  Temperature: 1 << 1,
  Reliability: 1 << 2,
  ReadOnly: 1 << 3,
  VolatileMemoryBackup: 1 << 4,
  PersistentMemoryRegion: 1 << 5,
} as const;

export interface SmartLog {
  readonly criticalWarning: number;
  /** Kelvin. */
  readonly compositeTemperature: number;
  readonly availableSpare: number;
  readonly availableSpareThreshold: number;
  readonly percentageUsed: number;
  readonly enduranceGroupCriticalWarning: number;
  readonly dataUnitsRead: bigint;
  readonly dataUnitsWritten: bigint;
  readonly hostReadCommands: bigint;
  readonly hostWriteCommands: bigint;
  readonly controllerBusyTime: bigint;
  readonly powerCycles: bigint;
  readonly powerOnHours: bigint;
  readonly unsafeShutdowns: bigint;
  readonly mediaErrors: bigint;
  readonly numErrorLogEntries: bigint;
  readonly warningTempTime: number;
  readonly criticalCompTime: number;
  /** Temperature Sensors 1..8 (Kelvin, 0 = not implemented). */
  readonly temperatureSensors: readonly number[];
  readonly thermalMgmtTemp1TransitionCount: number;
  readonly thermalMgmtTemp2TransitionCount: number;
  readonly thermalMgmtTemp1TotalTime: number;
  readonly thermalMgmtTemp2TotalTime: number;
}

const SMART_U128: readonly (readonly [keyof SmartLog, number])[] = [
  ['dataUnitsRead', 32],
  ['dataUnitsWritten', 48],
  ['hostReadCommands', 64],
  ['hostWriteCommands', 80],
  ['controllerBusyTime', 96],
  ['powerCycles', 112],
  ['powerOnHours', 128],
  ['unsafeShutdowns', 144],
  ['mediaErrors', 160],
  ['numErrorLogEntries', 176],
];

export function encodeSmartLog(s: Partial<SmartLog>): Buffer {
  const buf = Buffer.alloc(SMART_LOG_SIZE);
  buf.writeUInt8(uint(s.criticalWarning ?? 0, 8, 'criticalWarning'), 0);
  buf.writeUInt16LE(uint(s.compositeTemperature ?? 0, 16, 'compositeTemperature'), 1);
  buf.writeUInt8(uint(s.availableSpare ?? 0, 8, 'availableSpare'), 3);
  buf.writeUInt8(uint(s.availableSpareThreshold ?? 0, 8, 'availableSpareThreshold'), 4);
  buf.writeUInt8(uint(s.percentageUsed ?? 0, 8, 'percentageUsed'), 5);
  buf.writeUInt8(uint(s.enduranceGroupCriticalWarning ?? 0, 8, 'enduranceGroupCriticalWarning'), 6);
  for (const [name, off] of SMART_U128) writeU128(buf, off, (s[name] as bigint | undefined) ?? 0n, name);
  buf.writeUInt32LE(uint(s.warningTempTime ?? 0, 32, 'warningTempTime'), 192);
  buf.writeUInt32LE(uint(s.criticalCompTime ?? 0, 32, 'criticalCompTime'), 196);
  const sensors = s.temperatureSensors ?? [];
  if (sensors.length > 8) throw new RangeError('temperatureSensors: at most 8');
  sensors.forEach((t, i) => buf.writeUInt16LE(uint(t, 16, `temperatureSensors[${i}]`), 200 + i * 2));
  buf.writeUInt32LE(uint(s.thermalMgmtTemp1TransitionCount ?? 0, 32, 'thermalMgmtTemp1TransitionCount'), 216);
  buf.writeUInt32LE(uint(s.thermalMgmtTemp2TransitionCount ?? 0, 32, 'thermalMgmtTemp2TransitionCount'), 220);
  buf.writeUInt32LE(uint(s.thermalMgmtTemp1TotalTime ?? 0, 32, 'thermalMgmtTemp1TotalTime'), 224);
  buf.writeUInt32LE(uint(s.thermalMgmtTemp2TotalTime ?? 0, 32, 'thermalMgmtTemp2TotalTime'), 228);
  return buf;
}

export function decodeSmartLog(buf: Buffer): SmartLog {
  requireLength(buf, SMART_LOG_SIZE, 'SMART / Health log');
  const sensors: number[] = [];
  for (let i = 0; i < 8; i++) sensors.push(buf.readUInt16LE(200 + i * 2));
  const big = (off: number): bigint => readU128(buf, off);
  return {
    criticalWarning: buf.readUInt8(0),
    compositeTemperature: buf.readUInt16LE(1),
    availableSpare: buf.readUInt8(3),
    availableSpareThreshold: buf.readUInt8(4),
    percentageUsed: buf.readUInt8(5),
    enduranceGroupCriticalWarning: buf.readUInt8(6),
    dataUnitsRead: big(32),
    dataUnitsWritten: big(48),
    hostReadCommands: big(64),
    hostWriteCommands: big(80),
    controllerBusyTime: big(96),
    powerCycles: big(112),
    powerOnHours: big(128),
    unsafeShutdowns: big(144),
    mediaErrors: big(160),
    numErrorLogEntries: big(176),
    warningTempTime: buf.readUInt32LE(192),
    criticalCompTime: buf.readUInt32LE(196),
    temperatureSensors: sensors,
    thermalMgmtTemp1TransitionCount: buf.readUInt32LE(216),
    thermalMgmtTemp2TransitionCount: buf.readUInt32LE(220),
    thermalMgmtTemp1TotalTime: buf.readUInt32LE(224),
    thermalMgmtTemp2TotalTime: buf.readUInt32LE(228),
  };
}

// ---------------------------------------------------------------------------
// Firmware Slot Information (LID 03h), 512 bytes

export const FIRMWARE_SLOT_LOG_SIZE = 512;

export interface FirmwareSlotLog {
  /** Active Firmware Info: bits 2:0 active slot, bits 6:4 slot activated at next reset. */
  readonly afi: number;
  /** Firmware Revision for slots 1..7; '' for an empty slot (all zero on the wire). */
  readonly frs: readonly string[];
}

export function encodeFirmwareSlotLog(f: Partial<FirmwareSlotLog>): Buffer {
  const buf = Buffer.alloc(FIRMWARE_SLOT_LOG_SIZE);
  buf.writeUInt8(uint(f.afi ?? 0, 8, 'afi'), 0);
  const frs = f.frs ?? [];
  if (frs.length > 7) throw new RangeError('frs: at most 7 firmware slots');
  frs.forEach((rev, i) => {
    if (rev !== '') writeAscii(buf, 8 + i * 8, 8, rev, `frs[${i}]`, 0x20);
  });
  return buf;
}

export function decodeFirmwareSlotLog(buf: Buffer): FirmwareSlotLog {
  requireLength(buf, FIRMWARE_SLOT_LOG_SIZE, 'Firmware Slot log');
  const frs: string[] = [];
  for (let i = 0; i < 7; i++) frs.push(readAscii(buf, 8 + i * 8, 8));
  return { afi: buf.readUInt8(0), frs };
}

// ---------------------------------------------------------------------------
// Changed Namespace List (LID 04h), 4096 bytes

export const CHANGED_NS_LIST_SIZE = 4096;
export const MAX_CHANGED_NAMESPACES = 1024;
/** First entry when more than 1024 namespaces changed. */
export const CHANGED_NS_LIST_OVERFLOW = 0xffffffff;

/**
 * Up to 1024 changed NSIDs, ascending and de-duplicated; if more than 1024
 * changed, the first entry is FFFFFFFFh and the rest are zero.
 */
export function encodeChangedNamespaceList(nsids: readonly number[]): Buffer {
  const buf = Buffer.alloc(CHANGED_NS_LIST_SIZE);
  const ids = [...new Set(nsids.map((id, i) => uint(id, 32, `nsids[${i}]`)))].sort((a, b) => a - b);
  if (ids.length > MAX_CHANGED_NAMESPACES) {
    buf.writeUInt32LE(CHANGED_NS_LIST_OVERFLOW, 0);
  } else {
    ids.forEach((id, i) => buf.writeUInt32LE(id, i * 4));
  }
  return buf;
}

/** The NSIDs up to the first zero; [0xFFFFFFFF] means "more than 1024 changed". */
export function decodeChangedNamespaceList(buf: Buffer): number[] {
  requireLength(buf, CHANGED_NS_LIST_SIZE, 'Changed Namespace List');
  const out: number[] = [];
  for (let i = 0; i < MAX_CHANGED_NAMESPACES; i++) {
    const id = buf.readUInt32LE(i * 4);
    if (id === 0) break;
    out.push(id);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Commands Supported and Effects (LID 05h), 4096 bytes

export const EFFECTS_LOG_SIZE = 4096;

export const CmdEffects = {
  CSUPP: 1 << 0,
  LBCC: 1 << 1,
  NCC: 1 << 2,
  NIC: 1 << 3,
  CCC: 1 << 4,
  CSER_MASK: 0x3 << 14,
  CSE_SHIFT: 16,
  CSE_MASK: 0x7 << 16,
  /** CSE 001b: no other command to the same namespace while this one runs. */
  CSE_SINGLE_NS: 1 << 16,
  /** CSE 010b: no other command to any namespace while this one runs. */
  CSE_SINGLE_CMD: 2 << 16,
  UUID_SEL: 1 << 19,
} as const;

export interface CommandsSupportedEffectsLog {
  /** Admin Command Supported, indexed by opcode (256 entries). */
  readonly acs: readonly number[];
  /** I/O Command Supported, indexed by opcode (256 entries). */
  readonly iocs: readonly number[];
}

/** Arrays may be sparse or shorter than 256; missing entries are 0. */
export function encodeEffectsLog(e: Partial<CommandsSupportedEffectsLog>): Buffer {
  const buf = Buffer.alloc(EFFECTS_LOG_SIZE);
  const put = (arr: readonly number[] | undefined, base: number, name: string): void => {
    if (!arr) return;
    if (arr.length > 256) throw new RangeError(`${name}: at most 256 entries`);
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      if (v !== undefined) buf.writeUInt32LE(uint(v, 32, `${name}[${i}]`), base + i * 4);
    }
  };
  put(e.acs, 0, 'acs');
  put(e.iocs, 1024, 'iocs');
  return buf;
}

export function decodeEffectsLog(buf: Buffer): CommandsSupportedEffectsLog {
  requireLength(buf, EFFECTS_LOG_SIZE, 'Commands Supported and Effects log');
  const acs: number[] = [];
  const iocs: number[] = [];
  for (let i = 0; i < 256; i++) {
    acs.push(buf.readUInt32LE(i * 4));
    iocs.push(buf.readUInt32LE(1024 + i * 4));
  }
  return { acs, iocs };
}

// ---------------------------------------------------------------------------
// Supported Log Pages (LID 00h) and Feature Identifiers Supported and Effects
// (LID 12h): 256 LE32 entries each, indexed by log page id / feature id

export const SUPPORTED_LOG_PAGES_SIZE = 1024;
export const FID_EFFECTS_LOG_SIZE = 1024;

/** LID Supported and Effects data structure. */
export const LidEffects = {
  LSUPP: 1 << 0,
  /** Index Offset Supported: LPO may be given in index units. */
  IOS: 1 << 1,
  LIDSP_SHIFT: 16,
} as const;

/** FID Supported and Effects data structure. */
export const FidEffects = {
  FSUPP: 1 << 0,
  UDCC: 1 << 1,
  NCC: 1 << 2,
  NIC: 1 << 3,
  CCC: 1 << 4,
  USS: 1 << 19,
  /** FID Scope, bits 31:20. */
  NamespaceScope: 1 << 20,
  ControllerScope: 1 << 21,
  NvmSetScope: 1 << 22,
  EnduranceGroupScope: 1 << 23,
  DomainScope: 1 << 24,
  NvmSubsystemScope: 1 << 25,
} as const;

function encodeEntries(entries: readonly (number | undefined)[], name: string): Buffer {
  if (entries.length > 256) throw new RangeError(`${name}: at most 256 entries`);
  const buf = Buffer.alloc(1024);
  entries.forEach((v, i) => {
    if (v !== undefined) buf.writeUInt32LE(uint(v, 32, `${name}[${i}]`), i * 4);
  });
  return buf;
}

function decodeEntries(buf: Buffer, what: string): number[] {
  requireLength(buf, 1024, what);
  const out: number[] = [];
  for (let i = 0; i < 256; i++) out.push(buf.readUInt32LE(i * 4));
  return out;
}

/** Entries indexed by LID; sparse or short arrays leave the rest 0. */
export function encodeSupportedLogPages(entries: readonly (number | undefined)[]): Buffer {
  return encodeEntries(entries, 'supported log pages');
}

export function decodeSupportedLogPages(buf: Buffer): number[] {
  return decodeEntries(buf, 'Supported Log Pages log');
}

/** The LIDs whose LSUPP bit is set, ascending. */
export function supportedLogIds(entries: readonly number[]): number[] {
  const out: number[] = [];
  entries.forEach((v, lid) => {
    if (v & LidEffects.LSUPP) out.push(lid);
  });
  return out;
}

/** Entries indexed by FID; sparse or short arrays leave the rest 0. */
export function encodeFidEffectsLog(entries: readonly (number | undefined)[]): Buffer {
  return encodeEntries(entries, 'FID effects');
}

export function decodeFidEffectsLog(buf: Buffer): number[] {
  return decodeEntries(buf, 'Feature Identifiers Supported and Effects log');
}

/** The FIDs whose FSUPP bit is set, ascending. */
export function supportedFeatureIds(entries: readonly number[]): number[] {
  const out: number[] = [];
  entries.forEach((v, fid) => {
    if (v & FidEffects.FSUPP) out.push(fid);
  });
  return out;
}

// ---------------------------------------------------------------------------
// Reservation Notification (LID 80h), 64 bytes

export const RESERVATION_NOTIFICATION_LOG_SIZE = 64;

/** Reservation Notification Log Page Type. */
export const ReservationNotificationType = { Empty: 0, RegistrationPreempted: 1, ReservationReleased: 2, ReservationPreempted: 3 } as const;

export interface ReservationNotificationLog {
  /** Log Page Count: increments with each new notification, 0 = none yet, wraps past 1 (never 0 again). */
  readonly lpc: bigint;
  readonly rnlpt: number;
  /** Number of Available Log Pages still queued behind this one. */
  readonly nalp: number;
  readonly nsid: number;
}

export function encodeReservationNotificationLog(r: Partial<ReservationNotificationLog>): Buffer {
  const buf = Buffer.alloc(RESERVATION_NOTIFICATION_LOG_SIZE);
  writeU64(buf, 0, r.lpc ?? 0n, 'lpc');
  buf.writeUInt8(uint(r.rnlpt ?? 0, 8, 'rnlpt'), 8);
  buf.writeUInt8(uint(r.nalp ?? 0, 8, 'nalp'), 9);
  buf.writeUInt32LE(uint(r.nsid ?? 0, 32, 'nsid'), 12);
  return buf;
}

export function decodeReservationNotificationLog(buf: Buffer): ReservationNotificationLog {
  requireLength(buf, RESERVATION_NOTIFICATION_LOG_SIZE, 'Reservation Notification log');
  return { lpc: buf.readBigUInt64LE(0), rnlpt: buf.readUInt8(8), nalp: buf.readUInt8(9), nsid: buf.readUInt32LE(12) };
}

// ---------------------------------------------------------------------------
// Asymmetric Namespace Access (LID 0Ch)

export const AnaState = {
  Optimized: 0x01,
  NonOptimized: 0x02,
  Inaccessible: 0x03,
  PersistentLoss: 0x04,
  Change: 0x0f,
} as const;
export type AnaStateValue = (typeof AnaState)[keyof typeof AnaState];
export type AnaStateName = 'optimized' | 'non-optimized' | 'inaccessible' | 'persistent-loss' | 'change';

const ANA_NAMES: ReadonlyMap<number, AnaStateName> = new Map<number, AnaStateName>([
  [AnaState.Optimized, 'optimized'],
  [AnaState.NonOptimized, 'non-optimized'],
  [AnaState.Inaccessible, 'inaccessible'],
  [AnaState.PersistentLoss, 'persistent-loss'],
  [AnaState.Change, 'change'],
]);

export function isAnaState(n: number): n is AnaStateValue {
  return ANA_NAMES.has(n);
}

/** 'optimized' | 'non-optimized' | 'inaccessible' | 'persistent-loss' | 'change'. */
export function anaStateName(state: number): AnaStateName {
  const name = ANA_NAMES.get(state);
  if (name === undefined) throw new RangeError(`ANA state ${state} is not defined`);
  return name;
}

/** The inverse of anaStateName (exact lowercase names, as in Linux sysfs ana_state). */
export function parseAnaState(name: string): AnaStateValue {
  for (const [value, n] of ANA_NAMES) if (n === name) return value as AnaStateValue;
  throw new RangeError(`"${name}" is not an ANA state name`);
}

/** Get Log Page LSP bits for LID 0Ch. */
export const AnaLsp = { Rgo: 1 << 0 } as const;

export const ANA_LOG_HEADER_SIZE = 16;
export const ANA_GROUP_DESC_SIZE = 32;

export interface AnaGroupDescriptor {
  readonly anagrpid: number;
  readonly chgcnt: bigint;
  readonly state: number;
  /** Empty when the log was read with RGO. */
  readonly nsids: readonly number[];
}

export interface AnaLog {
  readonly chgcnt: bigint;
  readonly groups: readonly AnaGroupDescriptor[];
}

export interface AnaLogOptions {
  /** Return Groups Only (LSP bit 0): NNSIDS 0 and no NSID lists. */
  readonly rgo?: boolean;
}

/** Size of the ANA log: 16 + 32 per group + 4 per NSID (NSIDs omitted with RGO). */
export function anaLogSize(groups: number, nsids: number, rgo = false): number {
  return ANA_LOG_HEADER_SIZE + groups * ANA_GROUP_DESC_SIZE + (rgo ? 0 : nsids * 4);
}

export function encodeAnaLog(log: AnaLog, opts: AnaLogOptions = {}): Buffer {
  const rgo = opts.rgo ?? false;
  if (log.groups.length > 0xffff) throw new RangeError('ANA log: more than 65535 groups');
  const totalNsids = log.groups.reduce((n, g) => n + g.nsids.length, 0);
  const buf = Buffer.alloc(anaLogSize(log.groups.length, totalNsids, rgo));
  writeU64(buf, 0, log.chgcnt, 'chgcnt');
  buf.writeUInt16LE(log.groups.length, 8);
  let off = ANA_LOG_HEADER_SIZE;
  log.groups.forEach((g, i) => {
    buf.writeUInt32LE(uint(g.anagrpid, 32, `groups[${i}].anagrpid`), off);
    buf.writeUInt32LE(rgo ? 0 : g.nsids.length, off + 4);
    writeU64(buf, off + 8, g.chgcnt, `groups[${i}].chgcnt`);
    buf.writeUInt8(uint(g.state, 8, `groups[${i}].state`), off + 16);
    off += ANA_GROUP_DESC_SIZE;
    if (!rgo) {
      g.nsids.forEach((id, j) => buf.writeUInt32LE(uint(id, 32, `groups[${i}].nsids[${j}]`), off + j * 4));
      off += g.nsids.length * 4;
    }
  });
  return buf;
}

export function decodeAnaLog(buf: Buffer): AnaLog {
  requireLength(buf, ANA_LOG_HEADER_SIZE, 'ANA log header');
  const chgcnt = buf.readBigUInt64LE(0);
  const ngrps = buf.readUInt16LE(8);
  const groups: AnaGroupDescriptor[] = [];
  let off = ANA_LOG_HEADER_SIZE;
  for (let i = 0; i < ngrps; i++) {
    requireLength(buf, off + ANA_GROUP_DESC_SIZE, `ANA group descriptor ${i}`);
    const anagrpid = buf.readUInt32LE(off);
    const nnsids = buf.readUInt32LE(off + 4);
    const gchgcnt = buf.readBigUInt64LE(off + 8);
    const state = buf.readUInt8(off + 16);
    off += ANA_GROUP_DESC_SIZE;
    requireLength(buf, off + nnsids * 4, `ANA group descriptor ${i} NSID list`);
    const nsids: number[] = [];
    for (let j = 0; j < nnsids; j++) nsids.push(buf.readUInt32LE(off + j * 4));
    off += nnsids * 4;
    groups.push({ anagrpid, chgcnt: gchgcnt, state, nsids });
  }
  return { chgcnt, groups };
}

// ---------------------------------------------------------------------------
// Discovery (LID 70h)

export const DISCOVERY_LOG_HEADER_SIZE = 1024;
export const DISCOVERY_LOG_ENTRY_SIZE = 1024;

export const TrType = { Rdma: 1, Fc: 2, Tcp: 3, Loop: 254 } as const;
export const AdrFam = { Pci: 0, Ipv4: 1, Ipv6: 2, Ib: 3, Fc: 4, Loop: 254 } as const;
export const SubType = { Referral: 1, Nvme: 2, CurrentDiscovery: 3 } as const;
/** TREQ: bits 1:0 secure channel requirement; bit 2 SQ flow control disable supported. */
export const Treq = {
  NotSpecified: 0,
  Required: 1,
  NotRequired: 2,
  SecureChannelMask: 0x3,
  DisableSqFlow: 1 << 2,
} as const;
export const EFlags = { DupRetInfo: 1 << 0, Epcsd: 1 << 1, Ncc: 1 << 2 } as const;
/** TSAS byte 0 for TCP. */
export const TcpSecType = { None: 0, Tls12: 1, Tls13: 2 } as const;

export interface DiscoveryLogHeader {
  readonly genctr: bigint;
  readonly numrec: bigint;
  readonly recfmt: number;
}

export interface DiscoveryLogEntry {
  readonly trtype: number;
  readonly adrfam: number;
  readonly subtype: number;
  readonly treq: number;
  readonly portid: number;
  readonly cntlid: number;
  readonly asqsz: number;
  readonly eflags: number;
  /** ASCII, space padded on the wire (32 bytes). */
  readonly trsvcid: string;
  /** NUL padded on the wire (256 bytes). */
  readonly subnqn: string;
  /** ASCII, space padded on the wire (256 bytes). */
  readonly traddr: string;
  /** Transport Specific Address Subtype, 256 bytes (TCP: byte 0 is SECTYPE). */
  readonly tsas: Buffer;
}

/** trtype..subnqn are required; cntlid defaults to FFFFh (dynamic), asqsz to 32, the rest to 0. */
export type DiscoveryLogEntryInput = Pick<DiscoveryLogEntry, 'trtype' | 'adrfam' | 'subtype' | 'trsvcid' | 'traddr' | 'subnqn'> & Partial<DiscoveryLogEntry>;

export interface DiscoveryLog {
  readonly genctr: bigint;
  readonly recfmt: number;
  readonly entries: readonly DiscoveryLogEntry[];
}

export interface DiscoveryLogInput {
  readonly genctr: bigint;
  readonly recfmt?: number;
  readonly entries: readonly DiscoveryLogEntryInput[];
}

/** A 256-byte TSAS for TCP with the given SECTYPE. */
export function tcpTsas(sectype: number = TcpSecType.None): Buffer {
  const b = Buffer.alloc(256);
  b.writeUInt8(uint(sectype, 8, 'sectype'), 0);
  return b;
}

function encodeDiscoveryEntryAt(buf: Buffer, off: number, e: DiscoveryLogEntryInput, name: string): void {
  buf.writeUInt8(uint(e.trtype, 8, `${name}.trtype`), off);
  buf.writeUInt8(uint(e.adrfam, 8, `${name}.adrfam`), off + 1);
  buf.writeUInt8(uint(e.subtype, 8, `${name}.subtype`), off + 2);
  buf.writeUInt8(uint(e.treq ?? 0, 8, `${name}.treq`), off + 3);
  buf.writeUInt16LE(uint(e.portid ?? 0, 16, `${name}.portid`), off + 4);
  buf.writeUInt16LE(uint(e.cntlid ?? 0xffff, 16, `${name}.cntlid`), off + 6);
  buf.writeUInt16LE(uint(e.asqsz ?? 32, 16, `${name}.asqsz`), off + 8);
  buf.writeUInt16LE(uint(e.eflags ?? 0, 16, `${name}.eflags`), off + 10);
  writeAscii(buf, off + 32, 32, e.trsvcid, `${name}.trsvcid`, 0x20);
  writeNqn(buf, off + 256, 256, e.subnqn, `${name}.subnqn`);
  writeAscii(buf, off + 512, 256, e.traddr, `${name}.traddr`, 0x20);
  if (e.tsas !== undefined) {
    if (e.tsas.length > 256) throw new RangeError(`${name}.tsas: at most 256 bytes`);
    e.tsas.copy(buf, off + 768);
  }
}

function decodeDiscoveryEntryAt(buf: Buffer, off: number): DiscoveryLogEntry {
  return {
    trtype: buf.readUInt8(off),
    adrfam: buf.readUInt8(off + 1),
    subtype: buf.readUInt8(off + 2),
    treq: buf.readUInt8(off + 3),
    portid: buf.readUInt16LE(off + 4),
    cntlid: buf.readUInt16LE(off + 6),
    asqsz: buf.readUInt16LE(off + 8),
    eflags: buf.readUInt16LE(off + 10),
    trsvcid: readAscii(buf, off + 32, 32),
    subnqn: readNqn(buf, off + 256, 256),
    traddr: readAscii(buf, off + 512, 256),
    tsas: Buffer.from(buf.subarray(off + 768, off + 1024)),
  };
}

export function encodeDiscoveryLogEntry(e: DiscoveryLogEntryInput): Buffer {
  const buf = Buffer.alloc(DISCOVERY_LOG_ENTRY_SIZE);
  encodeDiscoveryEntryAt(buf, 0, e, 'entry');
  return buf;
}

export function decodeDiscoveryLogEntry(buf: Buffer, offset = 0): DiscoveryLogEntry {
  requireLength(buf, offset + DISCOVERY_LOG_ENTRY_SIZE, 'Discovery log entry');
  return decodeDiscoveryEntryAt(buf, offset);
}

export function encodeDiscoveryLogHeader(h: DiscoveryLogHeader): Buffer {
  const buf = Buffer.alloc(DISCOVERY_LOG_HEADER_SIZE);
  writeU64(buf, 0, h.genctr, 'genctr');
  writeU64(buf, 8, h.numrec, 'numrec');
  buf.writeUInt16LE(uint(h.recfmt, 16, 'recfmt'), 16);
  return buf;
}

export function decodeDiscoveryLogHeader(buf: Buffer): DiscoveryLogHeader {
  requireLength(buf, 20, 'Discovery log header');
  return { genctr: buf.readBigUInt64LE(0), numrec: buf.readBigUInt64LE(8), recfmt: buf.readUInt16LE(16) };
}

/** The whole log: a 1024-byte header (numrec = entries.length) then 1024 bytes per entry. */
export function encodeDiscoveryLog(log: DiscoveryLogInput): Buffer {
  const buf = Buffer.alloc(DISCOVERY_LOG_HEADER_SIZE + log.entries.length * DISCOVERY_LOG_ENTRY_SIZE);
  writeU64(buf, 0, log.genctr, 'genctr');
  buf.writeBigUInt64LE(BigInt(log.entries.length), 8);
  buf.writeUInt16LE(uint(log.recfmt ?? 0, 16, 'recfmt'), 16);
  log.entries.forEach((e, i) => encodeDiscoveryEntryAt(buf, DISCOVERY_LOG_HEADER_SIZE + i * DISCOVERY_LOG_ENTRY_SIZE, e, `entries[${i}]`));
  return buf;
}

/** Decodes header and all numrec entries; throws a RangeError if the buffer does not hold them all. */
export function decodeDiscoveryLog(buf: Buffer): DiscoveryLog {
  const h = decodeDiscoveryLogHeader(buf);
  const need = BigInt(DISCOVERY_LOG_HEADER_SIZE) + h.numrec * BigInt(DISCOVERY_LOG_ENTRY_SIZE);
  if (BigInt(buf.length) < need) {
    throw new RangeError(`Discovery log: numrec ${h.numrec} needs ${need} bytes, buffer is ${buf.length}`);
  }
  const entries: DiscoveryLogEntry[] = [];
  for (let i = 0; i < Number(h.numrec); i++) {
    entries.push(decodeDiscoveryEntryAt(buf, DISCOVERY_LOG_HEADER_SIZE + i * DISCOVERY_LOG_ENTRY_SIZE));
  }
  return { genctr: h.genctr, recfmt: h.recfmt, entries };
}

// ---------------------------------------------------------------------------
// Partial reads and the Get Log Page command dwords

/**
 * Exactly `length` bytes of `full` starting at `offset`, zero filled past its
 * end (all zero when offset >= full.length). Always a fresh buffer.
 */
export function sliceLogPage(full: Buffer, offset: bigint | number, length: number): Buffer {
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`sliceLogPage: bad length ${length}`);
  const off = BigInt(offset);
  if (off < 0n) throw new RangeError(`sliceLogPage: negative offset ${off}`);
  const out = Buffer.alloc(length);
  if (off < BigInt(full.length)) {
    const start = Number(off);
    full.copy(out, 0, start, Math.min(full.length, start + length));
  }
  return out;
}

export interface GetLogPageParams {
  readonly lid: number;
  /** Transfer length in bytes: a non-zero multiple of 4 (NUMD is 0's based dwords). */
  readonly numdBytes: number;
  /** Log Page Offset in bytes (or an index when ot is set). */
  readonly offset?: bigint | number;
  /** Log Specific Parameter, CDW10 bits 14:8. */
  readonly lsp?: number;
  /** Retain Asynchronous Event, CDW10 bit 15. */
  readonly rae?: boolean;
  /** Log Specific Identifier, CDW11 bits 31:16. */
  readonly lsi?: number;
  /** Command Set Identifier, CDW14 bits 31:24. */
  readonly csi?: number;
  /** UUID Index, CDW14 bits 6:0. */
  readonly uuidIndex?: number;
  /** Offset Type, CDW14 bit 23. */
  readonly ot?: boolean;
}

export interface GetLogPageDwords {
  readonly cdw10: number;
  readonly cdw11: number;
  readonly cdw12: number;
  readonly cdw13: number;
  readonly cdw14: number;
}

export interface DecodedGetLogPage {
  readonly lid: number;
  readonly lsp: number;
  readonly rae: boolean;
  /** 0's based dword count (NUMDU:NUMDL). */
  readonly numd: number;
  /** (numd + 1) * 4. */
  readonly numdBytes: number;
  readonly lsi: number;
  readonly offset: bigint;
  readonly csi: number;
  readonly uuidIndex: number;
  readonly ot: boolean;
}

export function encodeGetLogPageDwords(p: GetLogPageParams): GetLogPageDwords {
  const lid = uint(p.lid, 8, 'lid');
  if (!Number.isInteger(p.numdBytes) || p.numdBytes < 4 || p.numdBytes % 4 !== 0 || p.numdBytes > 2 ** 34) {
    throw new RangeError(`numdBytes: ${p.numdBytes} is not a multiple of 4 between 4 and 2^34`);
  }
  const numd = p.numdBytes / 4 - 1;
  const lsp = uint(p.lsp ?? 0, 7, 'lsp');
  const lsi = uint(p.lsi ?? 0, 16, 'lsi');
  const csi = uint(p.csi ?? 0, 8, 'csi');
  const uuidIndex = uint(p.uuidIndex ?? 0, 7, 'uuidIndex');
  const offset = BigInt(p.offset ?? 0);
  if (offset < 0n || offset > U64_MAX) throw new RangeError(`offset: ${offset} does not fit in 64 bits`);
  return {
    cdw10: (lid | (lsp << 8) | ((p.rae ? 1 : 0) << 15) | ((numd & 0xffff) << 16)) >>> 0,
    cdw11: ((Math.floor(numd / 0x10000) & 0xffff) | (lsi << 16)) >>> 0,
    cdw12: Number(offset & 0xffffffffn),
    cdw13: Number(offset >> 32n),
    cdw14: (uuidIndex | ((p.ot ? 1 : 0) << 23) | (csi << 24)) >>> 0,
  };
}

export function decodeGetLogPageDwords(cdw10: number, cdw11 = 0, cdw12 = 0, cdw13 = 0, cdw14 = 0): DecodedGetLogPage {
  const numd = (cdw11 & 0xffff) * 0x10000 + ((cdw10 >>> 16) & 0xffff);
  return {
    lid: cdw10 & 0xff,
    lsp: (cdw10 >>> 8) & 0x7f,
    rae: ((cdw10 >>> 15) & 1) === 1,
    numd,
    numdBytes: (numd + 1) * 4,
    lsi: (cdw11 >>> 16) & 0xffff,
    offset: (BigInt(cdw13 >>> 0) << 32n) | BigInt(cdw12 >>> 0),
    csi: (cdw14 >>> 24) & 0xff,
    uuidIndex: cdw14 & 0x7f,
    ot: ((cdw14 >>> 23) & 1) === 1,
  };
}
