/**
 * NVMe completion status.
 *
 * A status is held as the 15 bits above the phase tag in CQE DW3[31:17], the way
 * Linux holds it: SC in bits 7:0, SCT in bits 10:8, CRD 12:11, More 13, DNR 14.
 * 0 is success.
 */

export const StatusCodeType = {
  Generic: 0x0,
  CommandSpecific: 0x1,
  MediaError: 0x2,
  Path: 0x3,
  Vendor: 0x7,
} as const;

export const DNR = 0x4000;
export const MORE = 0x2000;

const sct = (type: number, code: number) => (type << 8) | code;

/** Named status values (without DNR). */
export const Status = {
  Success: 0x0000,
  // Generic (SCT 0)
  InvalidOpcode: sct(0, 0x01),
  InvalidField: sct(0, 0x02),
  CommandIdConflict: sct(0, 0x03),
  DataTransferError: sct(0, 0x04),
  AbortedPowerLoss: sct(0, 0x05),
  InternalError: sct(0, 0x06),
  AbortRequested: sct(0, 0x07),
  AbortedSqDeleted: sct(0, 0x08),
  InvalidNamespaceOrFormat: sct(0, 0x0b),
  CommandSequenceError: sct(0, 0x0c),
  InvalidSglLastSegment: sct(0, 0x0d),
  InvalidSglCount: sct(0, 0x0e),
  DataSglLengthInvalid: sct(0, 0x0f),
  MetadataSglLengthInvalid: sct(0, 0x10),
  SglDescriptorTypeInvalid: sct(0, 0x11),
  SglOffsetInvalid: sct(0, 0x16),
  HostIdInconsistentFormat: sct(0, 0x18),
  KeepAliveTimerExpired: sct(0, 0x19),
  KeepAliveTimeoutInvalid: sct(0, 0x1a),
  NamespaceWriteProtected: sct(0, 0x20),
  CommandInterrupted: sct(0, 0x21),
  TransientTransportError: sct(0, 0x22),
  LbaOutOfRange: sct(0, 0x80),
  CapacityExceeded: sct(0, 0x81),
  NamespaceNotReady: sct(0, 0x82),
  ReservationConflict: sct(0, 0x83),
  // Command specific (SCT 1)
  InvalidQueueIdentifier: sct(1, 0x01),
  InvalidQueueSize: sct(1, 0x02),
  AbortCommandLimitExceeded: sct(1, 0x03),
  AsyncEventRequestLimitExceeded: sct(1, 0x05),
  InvalidLogPage: sct(1, 0x09),
  FeatureIdNotSaveable: sct(1, 0x0d),
  FeatureNotChangeable: sct(1, 0x0e),
  FeatureNotNamespaceSpecific: sct(1, 0x0f),
  ConnectIncompatibleFormat: sct(1, 0x80),
  ConnectControllerBusy: sct(1, 0x81),
  ConnectInvalidParameters: sct(1, 0x82),
  ConnectRestartDiscovery: sct(1, 0x83),
  ConnectInvalidHost: sct(1, 0x84),
  InvalidQueueType: sct(1, 0x85),
  DiscoverRestart: sct(1, 0x90),
  AuthenticationRequired: sct(1, 0x91),
  ConflictingAttributes: sct(1, 0x80),
  // Media and data integrity (SCT 2)
  WriteFault: sct(2, 0x80),
  UnrecoveredReadError: sct(2, 0x81),
  CompareFailure: sct(2, 0x85),
  AccessDenied: sct(2, 0x86),
  // Path related (SCT 3)
  InternalPathError: sct(3, 0x00),
  AnaPersistentLoss: sct(3, 0x01),
  AnaInaccessible: sct(3, 0x02),
  AnaTransition: sct(3, 0x03),
  ControllerPathingError: sct(3, 0x60),
  HostPathingError: sct(3, 0x70),
  AbortedByHost: sct(3, 0x71),
} as const;

export type StatusValue = number;

export function statusCode(status: number): number {
  return status & 0xff;
}
export function statusCodeType(status: number): number {
  return (status >> 8) & 0x7;
}
export function isDnr(status: number): boolean {
  return (status & DNR) !== 0;
}
export function withDnr(status: number): number {
  return status | DNR;
}
/** Path-related status (SCT 3): the command may succeed through another path. */
export function isPathError(status: number): boolean {
  return statusCodeType(status) === StatusCodeType.Path;
}
export function isAnaError(status: number): boolean {
  const s = status & 0x7ff;
  return s === Status.AnaPersistentLoss || s === Status.AnaInaccessible || s === Status.AnaTransition;
}

// Names, for logs and CLI output. Codes that share a value in different
// contexts (e.g. 0x180) are named by the generic meaning plus the context one.
const names = new Map<number, string>();
for (const [name, value] of Object.entries(Status)) {
  const prev = names.get(value);
  names.set(value, prev ? `${prev}/${name}` : name);
}

export function statusName(status: number): string {
  const base = status & 0x7ff;
  const name = names.get(base) ?? `SCT${statusCodeType(status)}/SC0x${statusCode(status).toString(16).padStart(2, '0')}`;
  return isDnr(status) ? `${name} (DNR)` : name;
}

/** "InvalidField (0x4002, DNR)"-style text for errors and logs. */
export function describeStatus(status: number): string {
  return `${statusName(status)} [0x${status.toString(16).padStart(4, '0')}]`;
}
