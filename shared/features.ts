/**
 * Get/Set Features (Admin opcodes 0Ah / 09h) dword encodings and the
 * Asynchronous Event Request completion Dword 0.
 *
 * Layouts per NVMe Base Specification 2.x (Feature Identifiers, Get Features
 * CDW10, Set Features CDW10/CDW11 per feature, AER completion DW0), checked
 * against Linux's include/linux/nvme.h and libnvme. All values are unsigned
 * 32-bit numbers (the encoders return `>>> 0` results).
 */

import { uintStrict as uint } from './fields.ts';
export const FeatureId = {
  Arbitration: 0x01,
  PowerManagement: 0x02,
  LbaRangeType: 0x03,
  TemperatureThreshold: 0x04,
  ErrorRecovery: 0x05,
  VolatileWriteCache: 0x06,
  NumberOfQueues: 0x07,
  InterruptCoalescing: 0x08,
  InterruptVectorConfig: 0x09,
  WriteAtomicity: 0x0a,
  AsyncEventConfig: 0x0b,
  AutonomousPowerStateTransition: 0x0c,
  HostMemoryBuffer: 0x0d,
  Timestamp: 0x0e,
  KeepAliveTimer: 0x0f,
  HostIdentifier: 0x81,
  ReservationNotificationMask: 0x82,
  ReservationPersistence: 0x83,
} as const;
export type FeatureIdValue = (typeof FeatureId)[keyof typeof FeatureId];

// ---------------------------------------------------------------------------
// CDW10 of Get Features / Set Features

/** Get Features SEL (CDW10 bits 10:8). */
export const FeatureSelect = {
  Current: 0,
  Default: 1,
  Saved: 2,
  SupportedCapabilities: 3,
} as const;
export type FeatureSelectValue = (typeof FeatureSelect)[keyof typeof FeatureSelect];

/** Completion DW0 bits for SEL = Supported Capabilities. */
export const FeatureCapability = {
  Saveable: 1 << 0,
  NamespaceSpecific: 1 << 1,
  Changeable: 1 << 2,
} as const;

export interface GetFeaturesCdw10 {
  readonly fid: number;
  readonly sel: number;
}

export function encodeGetFeaturesCdw10(p: { fid: number; sel?: number }): number {
  return (uint(p.fid, 8, 'fid') | (uint(p.sel ?? 0, 3, 'sel') << 8)) >>> 0;
}

export function decodeGetFeaturesCdw10(cdw10: number): GetFeaturesCdw10 {
  return { fid: cdw10 & 0xff, sel: (cdw10 >>> 8) & 0x7 };
}

export interface SetFeaturesCdw10 {
  readonly fid: number;
  /** Save (CDW10 bit 31). */
  readonly sv: boolean;
}

export function encodeSetFeaturesCdw10(p: { fid: number; sv?: boolean }): number {
  return (uint(p.fid, 8, 'fid') | ((p.sv ? 1 : 0) << 31)) >>> 0;
}

export function decodeSetFeaturesCdw10(cdw10: number): SetFeaturesCdw10 {
  return { fid: cdw10 & 0xff, sv: cdw10 >>> 31 === 1 };
}

// ---------------------------------------------------------------------------
// Number of Queues (07h): CDW11 NSQR 15:0 / NCQR 31:16, completion DW0 NSQA / NCQA,
// all 0's based.

export interface NumberOfQueues {
  /** Number of I/O submission queues (1's based count; encoded 0's based). */
  readonly submissionQueues: number;
  /** Number of I/O completion queues (1's based count; encoded 0's based). */
  readonly completionQueues: number;
}

/** Same layout for the Set Features CDW11 (requested) and completion DW0 (allocated). */
export function encodeNumberOfQueues(q: NumberOfQueues): number {
  const check = (n: number, name: string): number => {
    if (!Number.isInteger(n) || n < 1 || n > 0xffff) throw new RangeError(`${name}: ${n} is not in 1..65535`);
    return n - 1;
  };
  return (check(q.submissionQueues, 'submissionQueues') | (check(q.completionQueues, 'completionQueues') << 16)) >>> 0;
}

export function decodeNumberOfQueues(dw: number): NumberOfQueues {
  return { submissionQueues: (dw & 0xffff) + 1, completionQueues: ((dw >>> 16) & 0xffff) + 1 };
}

// ---------------------------------------------------------------------------
// Asynchronous Event Configuration (0Bh), CDW11

export const AsyncEventConfigBit = {
  SmartCriticalWarningsMask: 0xff,
  NamespaceAttribute: 1 << 8,
  FirmwareActivation: 1 << 9,
  TelemetryLog: 1 << 10,
  AnaChange: 1 << 11,
  PredictableLatencyLogChange: 1 << 12,
  LbaStatusInformation: 1 << 13,
  EnduranceGroupLogChange: 1 << 14,
  NormalSubsystemShutdown: 1 << 15,
  ZoneDescriptorChanged: 1 << 27,
  DiscoveryLogChange: 0x80000000,
} as const;

export interface AsyncEventConfig {
  /** Bits 7:0: SMART / Health critical warnings that trigger an event. */
  readonly smartCriticalWarnings: number;
  readonly namespaceAttribute: boolean;
  readonly firmwareActivation: boolean;
  readonly telemetryLog: boolean;
  readonly anaChange: boolean;
  readonly predictableLatencyLogChange: boolean;
  readonly lbaStatusInformation: boolean;
  readonly enduranceGroupLogChange: boolean;
  readonly normalSubsystemShutdown: boolean;
  readonly zoneDescriptorChanged: boolean;
  readonly discoveryLogChange: boolean;
  /** Any other set bits, kept so that decode/encode is lossless. */
  readonly otherBits: number;
}

const AEC_FLAGS: readonly (readonly [keyof AsyncEventConfig, number])[] = [
  ['namespaceAttribute', AsyncEventConfigBit.NamespaceAttribute],
  ['firmwareActivation', AsyncEventConfigBit.FirmwareActivation],
  ['telemetryLog', AsyncEventConfigBit.TelemetryLog],
  ['anaChange', AsyncEventConfigBit.AnaChange],
  ['predictableLatencyLogChange', AsyncEventConfigBit.PredictableLatencyLogChange],
  ['lbaStatusInformation', AsyncEventConfigBit.LbaStatusInformation],
  ['enduranceGroupLogChange', AsyncEventConfigBit.EnduranceGroupLogChange],
  ['normalSubsystemShutdown', AsyncEventConfigBit.NormalSubsystemShutdown],
  ['zoneDescriptorChanged', AsyncEventConfigBit.ZoneDescriptorChanged],
  ['discoveryLogChange', AsyncEventConfigBit.DiscoveryLogChange],
];
const AEC_KNOWN: number = AEC_FLAGS.reduce<number>((m, [, bit]) => (m | bit) >>> 0, AsyncEventConfigBit.SmartCriticalWarningsMask);

export function encodeAsyncEventConfig(c: Partial<AsyncEventConfig>): number {
  let v = uint(c.smartCriticalWarnings ?? 0, 8, 'smartCriticalWarnings');
  for (const [name, bit] of AEC_FLAGS) if (c[name] === true) v = (v | bit) >>> 0;
  const other = uint(c.otherBits ?? 0, 32, 'otherBits');
  if ((other & AEC_KNOWN) !== 0) throw new RangeError('otherBits: overlaps named async event bits');
  return (v | other) >>> 0;
}

export function decodeAsyncEventConfig(cdw11: number): AsyncEventConfig {
  const v = cdw11 >>> 0;
  const has = (bit: number): boolean => (v & bit) >>> 0 !== 0;
  return {
    smartCriticalWarnings: v & 0xff,
    namespaceAttribute: has(AsyncEventConfigBit.NamespaceAttribute),
    firmwareActivation: has(AsyncEventConfigBit.FirmwareActivation),
    telemetryLog: has(AsyncEventConfigBit.TelemetryLog),
    anaChange: has(AsyncEventConfigBit.AnaChange),
    predictableLatencyLogChange: has(AsyncEventConfigBit.PredictableLatencyLogChange),
    lbaStatusInformation: has(AsyncEventConfigBit.LbaStatusInformation),
    enduranceGroupLogChange: has(AsyncEventConfigBit.EnduranceGroupLogChange),
    normalSubsystemShutdown: has(AsyncEventConfigBit.NormalSubsystemShutdown),
    zoneDescriptorChanged: has(AsyncEventConfigBit.ZoneDescriptorChanged),
    discoveryLogChange: has(AsyncEventConfigBit.DiscoveryLogChange),
    otherBits: (v & ~AEC_KNOWN) >>> 0,
  };
}

// ---------------------------------------------------------------------------
// Keep Alive Timer (0Fh): CDW11 = KATO in milliseconds

export function encodeKeepAliveTimer(katoMs: number): number {
  return uint(katoMs, 32, 'kato');
}

export function decodeKeepAliveTimer(cdw11: number): number {
  return cdw11 >>> 0;
}

// ---------------------------------------------------------------------------
// Volatile Write Cache (06h): CDW11 bit 0 WCE

export function encodeVolatileWriteCache(p: { wce: boolean }): number {
  return p.wce ? 1 : 0;
}

export function decodeVolatileWriteCache(dw: number): { wce: boolean } {
  return { wce: (dw & 1) === 1 };
}

// ---------------------------------------------------------------------------
// Host Identifier (81h): CDW11 bit 0 EXHID; data is 16 bytes with EXHID, else 8.

export function encodeHostIdentifierCdw11(p: { exhid: boolean }): number {
  return p.exhid ? 1 : 0;
}

export function decodeHostIdentifierCdw11(cdw11: number): { exhid: boolean } {
  return { exhid: (cdw11 & 1) === 1 };
}

export function hostIdentifierSize(exhid: boolean): 8 | 16 {
  return exhid ? 16 : 8;
}

/** The data buffer for a 64-bit (8 bytes) or 128-bit (16 bytes) host identifier. */
export function encodeHostIdentifierData(hostid: Buffer): Buffer {
  if (hostid.length !== 8 && hostid.length !== 16) {
    throw new RangeError(`host identifier: expected 8 or 16 bytes, got ${hostid.length}`);
  }
  return Buffer.from(hostid);
}

export function decodeHostIdentifierData(buf: Buffer, exhid: boolean): Buffer {
  const size = hostIdentifierSize(exhid);
  if (buf.length < size) throw new RangeError(`host identifier: buffer is ${buf.length} bytes, need ${size}`);
  return Buffer.from(buf.subarray(0, size));
}

// ---------------------------------------------------------------------------
// Smaller features

export interface Arbitration {
  /** Arbitration Burst, bits 2:0 (7 = no limit). */
  readonly ab: number;
  readonly lpw: number;
  readonly mpw: number;
  readonly hpw: number;
}

export function encodeArbitration(a: Partial<Arbitration>): number {
  return (uint(a.ab ?? 0, 3, 'ab') | (uint(a.lpw ?? 0, 8, 'lpw') << 8) | (uint(a.mpw ?? 0, 8, 'mpw') << 16) | (uint(a.hpw ?? 0, 8, 'hpw') << 24)) >>> 0;
}

export function decodeArbitration(dw: number): Arbitration {
  return { ab: dw & 0x7, lpw: (dw >>> 8) & 0xff, mpw: (dw >>> 16) & 0xff, hpw: (dw >>> 24) & 0xff };
}

export interface PowerManagement {
  /** Power State, bits 4:0. */
  readonly ps: number;
  /** Workload Hint, bits 7:5. */
  readonly wh: number;
}

export function encodePowerManagement(p: Partial<PowerManagement>): number {
  return uint(p.ps ?? 0, 5, 'ps') | (uint(p.wh ?? 0, 3, 'wh') << 5);
}

export function decodePowerManagement(dw: number): PowerManagement {
  return { ps: dw & 0x1f, wh: (dw >>> 5) & 0x7 };
}

export const ThresholdType = { Over: 0, Under: 1 } as const;

export interface TemperatureThreshold {
  /** Kelvin, bits 15:0. */
  readonly tmpth: number;
  /** Threshold Temperature Select, bits 19:16 (0 composite, 1..8 sensors, Fh all). */
  readonly tmpsel: number;
  /** Threshold Type Select, bits 21:20 (0 over, 1 under). */
  readonly thsel: number;
}

export function encodeTemperatureThreshold(t: Partial<TemperatureThreshold>): number {
  return (uint(t.tmpth ?? 0, 16, 'tmpth') | (uint(t.tmpsel ?? 0, 4, 'tmpsel') << 16) | (uint(t.thsel ?? 0, 2, 'thsel') << 20)) >>> 0;
}

export function decodeTemperatureThreshold(dw: number): TemperatureThreshold {
  return { tmpth: dw & 0xffff, tmpsel: (dw >>> 16) & 0xf, thsel: (dw >>> 20) & 0x3 };
}

export interface ErrorRecovery {
  /** Time Limited Error Recovery, 100 ms units, bits 15:0. */
  readonly tler: number;
  /** Deallocated or Unwritten Logical Block Error Enable, bit 16. */
  readonly dulbe: boolean;
}

export function encodeErrorRecovery(e: Partial<ErrorRecovery>): number {
  return (uint(e.tler ?? 0, 16, 'tler') | ((e.dulbe ? 1 : 0) << 16)) >>> 0;
}

export function decodeErrorRecovery(dw: number): ErrorRecovery {
  return { tler: dw & 0xffff, dulbe: ((dw >>> 16) & 1) === 1 };
}

export interface InterruptCoalescing {
  /** Aggregation Threshold, bits 7:0 (0's based). */
  readonly thr: number;
  /** Aggregation Time, 100 µs units, bits 15:8. */
  readonly time: number;
}

export function encodeInterruptCoalescing(c: Partial<InterruptCoalescing>): number {
  return uint(c.thr ?? 0, 8, 'thr') | (uint(c.time ?? 0, 8, 'time') << 8);
}

export function decodeInterruptCoalescing(dw: number): InterruptCoalescing {
  return { thr: dw & 0xff, time: (dw >>> 8) & 0xff };
}

/** Write Atomicity Normal (0Ah): bit 0 DN (Disable Normal). */
export function encodeWriteAtomicity(p: { dn: boolean }): number {
  return p.dn ? 1 : 0;
}

export function decodeWriteAtomicity(dw: number): { dn: boolean } {
  return { dn: (dw & 1) === 1 };
}

// ---------------------------------------------------------------------------
// Asynchronous Event Request completion Dword 0:
// bits 2:0 event type, 15:8 event information, 23:16 log page identifier.

export const AerType = {
  Error: 0,
  SmartHealth: 1,
  Notice: 2,
  Immediate: 3,
  OneShot: 4,
  IoCommandSet: 6,
  VendorSpecific: 7,
} as const;

/** Event information values for AerType.Notice. */
export const AerInfo = {
  NamespaceAttributeChanged: 0x00,
  FirmwareActivationStarting: 0x01,
  TelemetryLogChanged: 0x02,
  AnaChange: 0x03,
  PredictableLatencyEventAggregateLogChange: 0x04,
  LbaStatusInformationAlert: 0x05,
  EnduranceGroupEventAggregateLogChange: 0x06,
  DiscoveryLogChange: 0xf0,
} as const;

export interface AerResult {
  readonly type: number;
  readonly info: number;
  readonly lid: number;
}

export function encodeAerResult(r: AerResult): number {
  return (uint(r.type, 3, 'type') | (uint(r.info, 8, 'info') << 8) | (uint(r.lid, 8, 'lid') << 16)) >>> 0;
}

export function decodeAerResult(dw0: number): AerResult {
  return { type: dw0 & 0x7, info: (dw0 >>> 8) & 0xff, lid: (dw0 >>> 16) & 0xff };
}

/** Ready-made AER completion DW0 values (see linux-interop-facts.md). */
export const AerResultValue = {
  /** Notice, ANA change, log 0Ch. */
  AnaChange: 0x000c0302,
  /** Notice, namespace attribute changed, log 04h (Changed Namespace List). */
  NamespaceAttributeChanged: 0x00040002,
  /** Notice, discovery log change, log 70h. */
  DiscoveryLogChange: 0x0070f002,
} as const;
