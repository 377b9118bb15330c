/** Command opcodes: admin, NVM I/O, Fabrics, and the active-standby vendor commands. */

export const AdminOpcode = {
  DeleteIoSq: 0x00,
  CreateIoSq: 0x01,
  GetLogPage: 0x02,
  DeleteIoCq: 0x04,
  CreateIoCq: 0x05,
  Identify: 0x06,
  Abort: 0x08,
  SetFeatures: 0x09,
  GetFeatures: 0x0a,
  AsyncEventRequest: 0x0c,
  NamespaceManagement: 0x0d,
  FirmwareCommit: 0x10,
  FirmwareDownload: 0x11,
  NamespaceAttachment: 0x15,
  KeepAlive: 0x18,
  DirectiveSend: 0x19,
  DirectiveReceive: 0x1a,
  Fabrics: 0x7f,
  /** Vendor: Get Persistent Namespace Id (1024 bytes, NGUID in bytes 0-15). */
  GetPersistentNsId: 0xfc,
  /** Vendor: Set Namespace Active (active-standby multipath). */
  SetNamespaceActive: 0xfe,
} as const;

export const IoOpcode = {
  Flush: 0x00,
  Write: 0x01,
  Read: 0x02,
  WriteUncorrectable: 0x04,
  Compare: 0x05,
  WriteZeroes: 0x08,
  DatasetManagement: 0x09,
  Verify: 0x0c,
  ReservationRegister: 0x0d,
  ReservationReport: 0x0e,
  ReservationAcquire: 0x11,
  ReservationRelease: 0x15,
} as const;

export const FabricsType = {
  PropertySet: 0x00,
  Connect: 0x01,
  PropertyGet: 0x04,
  AuthenticationSend: 0x05,
  AuthenticationReceive: 0x06,
  Disconnect: 0x08,
} as const;

const adminNames = new Map<number, string>(Object.entries(AdminOpcode).map(([k, v]) => [v, k]));
const ioNames = new Map<number, string>(Object.entries(IoOpcode).map(([k, v]) => [v, k]));
const fabricsNames = new Map<number, string>(Object.entries(FabricsType).map(([k, v]) => [v, k]));

export function adminOpcodeName(opcode: number): string {
  return adminNames.get(opcode) ?? `admin-0x${opcode.toString(16).padStart(2, '0')}`;
}
export function ioOpcodeName(opcode: number): string {
  return ioNames.get(opcode) ?? `io-0x${opcode.toString(16).padStart(2, '0')}`;
}
export function fabricsTypeName(fctype: number): string {
  return fabricsNames.get(fctype) ?? `fabrics-0x${fctype.toString(16).padStart(2, '0')}`;
}
