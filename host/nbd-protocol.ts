/**
 * The NBD wire format (fixed newstyle handshake, simple and structured
 * replies): constants, encoders and decoders only. No sockets, no state; the
 * server in nbd.ts drives these. Numbers are big-endian on the wire; 64-bit
 * fields (magics, sizes, offsets, handles) are bigint here.
 *
 * Handshake (server first):
 *   S: 'NBDMAGIC' u64, 'IHAVEOPT' u64, handshake flags u16
 *   C: client flags u32
 *   C: 'IHAVEOPT' u64, option u32, length u32, data          (repeated)
 *   S: 0x3e889045565a9 u64, option u32, reply type u32, length u32, data
 *   ...until NBD_OPT_EXPORT_NAME (answered by size u64, flags u16, [124 zeroes])
 *   or a successful NBD_OPT_GO (NBD_REP_INFO... then NBD_REP_ACK).
 * Transmission:
 *   C: 0x25609513 u32, command flags u16, type u16, handle u64, offset u64, length u32, [data]
 *   S: simple reply 0x67446698 u32, error u32, handle u64, [data]
 *   S: structured chunk 0x668e33ef u32, flags u16, type u16, handle u64, length u32, payload
 */

// ---------------------------------------------------------------- magics

export const NBD_MAGIC = 0x4e42444d41474943n; // 'NBDMAGIC'
export const NBD_OPTS_MAGIC = 0x49484156454f5054n; // 'IHAVEOPT'
export const NBD_REP_MAGIC = 0x3e889045565a9n;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

// ---------------------------------------------------------------- handshake flags

/** Server handshake flags (u16). */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
/** Client flags (u32). */
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

// ---------------------------------------------------------------- transmission flags (u16)

export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_FLAG_SEND_RESIZE = 1 << 9;
export const NBD_FLAG_SEND_CACHE = 1 << 10;
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

// ---------------------------------------------------------------- options

export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_PEEK_EXPORT = 4;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;
export const NBD_OPT_EXTENDED_HEADERS = 11;

const OPT_NAMES: Record<number, string> = {
  [NBD_OPT_EXPORT_NAME]: 'EXPORT_NAME',
  [NBD_OPT_ABORT]: 'ABORT',
  [NBD_OPT_LIST]: 'LIST',
  [NBD_OPT_PEEK_EXPORT]: 'PEEK_EXPORT',
  [NBD_OPT_STARTTLS]: 'STARTTLS',
  [NBD_OPT_INFO]: 'INFO',
  [NBD_OPT_GO]: 'GO',
  [NBD_OPT_STRUCTURED_REPLY]: 'STRUCTURED_REPLY',
  [NBD_OPT_LIST_META_CONTEXT]: 'LIST_META_CONTEXT',
  [NBD_OPT_SET_META_CONTEXT]: 'SET_META_CONTEXT',
  [NBD_OPT_EXTENDED_HEADERS]: 'EXTENDED_HEADERS',
};
export function optionName(opt: number): string {
  return OPT_NAMES[opt] ?? `option ${opt}`;
}

// ---------------------------------------------------------------- option replies

export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
const NBD_REP_FLAG_ERROR = 0x80000000;
export const NBD_REP_ERR_UNSUP = NBD_REP_FLAG_ERROR + 1;
export const NBD_REP_ERR_POLICY = NBD_REP_FLAG_ERROR + 2;
export const NBD_REP_ERR_INVALID = NBD_REP_FLAG_ERROR + 3;
export const NBD_REP_ERR_PLATFORM = NBD_REP_FLAG_ERROR + 4;
export const NBD_REP_ERR_TLS_REQD = NBD_REP_FLAG_ERROR + 5;
export const NBD_REP_ERR_UNKNOWN = NBD_REP_FLAG_ERROR + 6;
export const NBD_REP_ERR_SHUTDOWN = NBD_REP_FLAG_ERROR + 7;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = NBD_REP_FLAG_ERROR + 8;
export const NBD_REP_ERR_TOO_BIG = NBD_REP_FLAG_ERROR + 9;

export function isErrorReply(type: number): boolean {
  return (type & NBD_REP_FLAG_ERROR) !== 0;
}

// ---------------------------------------------------------------- NBD_REP_INFO types

export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

// ---------------------------------------------------------------- commands

export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;
export const NBD_CMD_RESIZE = 8;

const CMD_NAMES: Record<number, string> = {
  [NBD_CMD_READ]: 'READ',
  [NBD_CMD_WRITE]: 'WRITE',
  [NBD_CMD_DISC]: 'DISC',
  [NBD_CMD_FLUSH]: 'FLUSH',
  [NBD_CMD_TRIM]: 'TRIM',
  [NBD_CMD_CACHE]: 'CACHE',
  [NBD_CMD_WRITE_ZEROES]: 'WRITE_ZEROES',
  [NBD_CMD_BLOCK_STATUS]: 'BLOCK_STATUS',
  [NBD_CMD_RESIZE]: 'RESIZE',
};
export function commandName(type: number): string {
  return CMD_NAMES[type] ?? `command ${type}`;
}

/** Command flags (u16). */
export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4;
export const NBD_CMD_FLAG_PAYLOAD_LEN = 1 << 5;

// ---------------------------------------------------------------- structured replies

export const NBD_REPLY_FLAG_DONE = 1 << 0;
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR = (1 << 15) + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

// ---------------------------------------------------------------- error values

export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_ENOMEM = 12;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

const ERR_NAMES: Record<number, string> = {
  [NBD_EPERM]: 'EPERM',
  [NBD_EIO]: 'EIO',
  [NBD_ENOMEM]: 'ENOMEM',
  [NBD_EINVAL]: 'EINVAL',
  [NBD_ENOSPC]: 'ENOSPC',
  [NBD_EOVERFLOW]: 'EOVERFLOW',
  [NBD_ENOTSUP]: 'ENOTSUP',
  [NBD_ESHUTDOWN]: 'ESHUTDOWN',
};
export function errorName(err: number): string {
  return ERR_NAMES[err] ?? `error ${err}`;
}

// ---------------------------------------------------------------- sizes

/** Server greeting: NBDMAGIC, IHAVEOPT, handshake flags. */
export const GREETING_LENGTH = 18;
export const CLIENT_FLAGS_LENGTH = 4;
export const OPTION_HEADER_LENGTH = 16;
export const OPTION_REPLY_HEADER_LENGTH = 20;
export const REQUEST_HEADER_LENGTH = 28;
export const SIMPLE_REPLY_HEADER_LENGTH = 16;
export const STRUCTURED_REPLY_HEADER_LENGTH = 20;
/** Strings (export names, messages) MUST NOT be longer than this. */
export const NBD_MAX_STRING = 4096;
/** Default maximum payload (2^25): a client may always send this much. */
export const NBD_DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;

// ---------------------------------------------------------------- handshake encoders/decoders

export function encodeGreeting(handshakeFlags: number): Buffer {
  const b = Buffer.alloc(GREETING_LENGTH);
  b.writeBigUInt64BE(NBD_MAGIC, 0);
  b.writeBigUInt64BE(NBD_OPTS_MAGIC, 8);
  b.writeUInt16BE(handshakeFlags & 0xffff, 16);
  return b;
}

export function decodeClientFlags(b: Buffer): number {
  return b.readUInt32BE(0);
}

export interface OptionHeader {
  readonly magic: bigint;
  readonly option: number;
  readonly length: number;
}

export function decodeOptionHeader(b: Buffer): OptionHeader {
  return { magic: b.readBigUInt64BE(0), option: b.readUInt32BE(8), length: b.readUInt32BE(12) };
}

/** Client side: one option request (used by tests and tools). */
export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(OPTION_HEADER_LENGTH + data.length);
  b.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(data.length, 12);
  data.copy(b, OPTION_HEADER_LENGTH);
  return b;
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(OPTION_REPLY_HEADER_LENGTH + data.length);
  b.writeBigUInt64BE(NBD_REP_MAGIC, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, OPTION_REPLY_HEADER_LENGTH);
  return b;
}

export interface OptionReply {
  readonly magic: bigint;
  readonly option: number;
  readonly type: number;
  readonly length: number;
}

export function decodeOptionReplyHeader(b: Buffer): OptionReply {
  return { magic: b.readBigUInt64BE(0), option: b.readUInt32BE(8), type: b.readUInt32BE(12), length: b.readUInt32BE(16) };
}

/** An error reply carrying a human-readable message. */
export function encodeOptionError(option: number, type: number, message: string): Buffer {
  return encodeOptionReply(option, type, Buffer.from(truncateUtf8(message, NBD_MAX_STRING)));
}

/** NBD_REP_SERVER data: name length u32, name, optional description. */
export function encodeRepServer(name: string, description = ''): Buffer {
  const n = Buffer.from(name);
  const d = Buffer.from(description);
  const b = Buffer.alloc(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

/** NBD_REP_INFO / NBD_INFO_EXPORT data: type u16, size u64, transmission flags u16. */
export function encodeInfoExport(size: number | bigint, transmissionFlags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(NBD_INFO_EXPORT, 0);
  b.writeBigUInt64BE(BigInt(size), 2);
  b.writeUInt16BE(transmissionFlags & 0xffff, 10);
  return b;
}

/** NBD_REP_INFO / NBD_INFO_BLOCK_SIZE data: type u16, minimum u32, preferred u32, maximum payload u32. */
export function encodeInfoBlockSize(minimum: number, preferred: number, maximum: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
  b.writeUInt32BE(minimum >>> 0, 2);
  b.writeUInt32BE(preferred >>> 0, 6);
  b.writeUInt32BE(maximum >>> 0, 10);
  return b;
}

/** NBD_REP_INFO with NBD_INFO_NAME or NBD_INFO_DESCRIPTION: type u16, string. */
export function encodeInfoString(type: typeof NBD_INFO_NAME | typeof NBD_INFO_DESCRIPTION, text: string): Buffer {
  const s = Buffer.from(truncateUtf8(text, NBD_MAX_STRING));
  const b = Buffer.alloc(2 + s.length);
  b.writeUInt16BE(type, 0);
  s.copy(b, 2);
  return b;
}

/** The reply to NBD_OPT_EXPORT_NAME: size u64, transmission flags u16, 124 zeroes unless NO_ZEROES was agreed. */
export function encodeExportNameReply(size: number | bigint, transmissionFlags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(noZeroes ? 10 : 134);
  b.writeBigUInt64BE(BigInt(size), 0);
  b.writeUInt16BE(transmissionFlags & 0xffff, 8);
  return b;
}

export interface InfoRequest {
  readonly name: string;
  /** NBD_INFO_* types the client asked for. */
  readonly requests: readonly number[];
}

/**
 * Decode the data of NBD_OPT_INFO / NBD_OPT_GO: name length u32, name,
 * request count u16, requests u16 each. Returns a string describing the
 * problem when the data is malformed (answer NBD_REP_ERR_INVALID).
 */
export function decodeInfoRequest(data: Buffer): InfoRequest | string {
  if (data.length < 6) return `option data of ${data.length} bytes is shorter than 6`;
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 6) return `export name length ${nameLength} exceeds the option data (${data.length} bytes)`;
  if (nameLength > NBD_MAX_STRING) return `export name of ${nameLength} bytes is longer than ${NBD_MAX_STRING}`;
  const nameBytes = data.subarray(4, 4 + nameLength);
  if (nameBytes.includes(0)) return 'export name contains NUL';
  const count = data.readUInt16BE(4 + nameLength);
  const expected = 4 + nameLength + 2 + 2 * count;
  if (data.length !== expected) return `${count} information request(s) need ${expected} bytes of option data, got ${data.length}`;
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(data.readUInt16BE(4 + nameLength + 2 + 2 * i));
  return { name: nameBytes.toString('utf8'), requests };
}

/** Client side: the data of NBD_OPT_INFO / NBD_OPT_GO. */
export function encodeInfoRequest(name: string, requests: readonly number[] = []): Buffer {
  const n = Buffer.from(name);
  const b = Buffer.alloc(4 + n.length + 2 + 2 * requests.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(requests.length, 4 + n.length);
  requests.forEach((r, i) => b.writeUInt16BE(r, 4 + n.length + 2 + 2 * i));
  return b;
}

// ---------------------------------------------------------------- transmission

export interface RequestHeader {
  readonly magic: number;
  readonly flags: number;
  readonly type: number;
  readonly handle: bigint;
  readonly offset: bigint;
  readonly length: number;
}

export function decodeRequestHeader(b: Buffer): RequestHeader {
  return {
    magic: b.readUInt32BE(0),
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    handle: b.readBigUInt64BE(8),
    offset: b.readBigUInt64BE(16),
    length: b.readUInt32BE(24),
  };
}

/** Client side: a request header (the WRITE payload follows separately). */
export function encodeRequestHeader(r: { flags?: number; type: number; handle: bigint; offset: bigint | number; length: number }): Buffer {
  const b = Buffer.alloc(REQUEST_HEADER_LENGTH);
  b.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  b.writeUInt16BE(r.flags ?? 0, 4);
  b.writeUInt16BE(r.type, 6);
  b.writeBigUInt64BE(r.handle, 8);
  b.writeBigUInt64BE(BigInt(r.offset), 16);
  b.writeUInt32BE(r.length >>> 0, 24);
  return b;
}

/** Simple reply header: magic, error, handle (READ data follows when error is 0). */
export function encodeSimpleReply(error: number, handle: bigint): Buffer {
  const b = Buffer.alloc(SIMPLE_REPLY_HEADER_LENGTH);
  b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error >>> 0, 4);
  b.writeBigUInt64BE(handle, 8);
  return b;
}

export interface SimpleReply {
  readonly magic: number;
  readonly error: number;
  readonly handle: bigint;
}

export function decodeSimpleReply(b: Buffer): SimpleReply {
  return { magic: b.readUInt32BE(0), error: b.readUInt32BE(4), handle: b.readBigUInt64BE(8) };
}

/** Structured reply chunk header: magic, flags, type, handle, payload length. */
export function encodeStructuredHeader(flags: number, type: number, handle: bigint, length: number): Buffer {
  const b = Buffer.alloc(STRUCTURED_REPLY_HEADER_LENGTH);
  b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(handle, 8);
  b.writeUInt32BE(length >>> 0, 16);
  return b;
}

export interface StructuredHeader {
  readonly magic: number;
  readonly flags: number;
  readonly type: number;
  readonly handle: bigint;
  readonly length: number;
}

export function decodeStructuredHeader(b: Buffer): StructuredHeader {
  return { magic: b.readUInt32BE(0), flags: b.readUInt16BE(4), type: b.readUInt16BE(6), handle: b.readBigUInt64BE(8), length: b.readUInt32BE(16) };
}

/**
 * NBD_REPLY_TYPE_OFFSET_DATA chunk: header plus the offset u64; the data
 * (length - 8 bytes) is sent right after, as its own buffer (not copied).
 */
export function encodeOffsetDataHeader(flags: number, handle: bigint, offset: bigint, dataLength: number): Buffer {
  const b = Buffer.alloc(STRUCTURED_REPLY_HEADER_LENGTH + 8);
  encodeStructuredHeader(flags, NBD_REPLY_TYPE_OFFSET_DATA, handle, 8 + dataLength).copy(b, 0);
  b.writeBigUInt64BE(offset, STRUCTURED_REPLY_HEADER_LENGTH);
  return b;
}

/** NBD_REPLY_TYPE_ERROR chunk: error u32, message length u16, message. */
export function encodeErrorChunk(flags: number, handle: bigint, error: number, message: string): Buffer {
  const m = Buffer.from(truncateUtf8(message, 0xffff));
  const b = Buffer.alloc(STRUCTURED_REPLY_HEADER_LENGTH + 6 + m.length);
  encodeStructuredHeader(flags, NBD_REPLY_TYPE_ERROR, handle, 6 + m.length).copy(b, 0);
  b.writeUInt32BE(error >>> 0, STRUCTURED_REPLY_HEADER_LENGTH);
  b.writeUInt16BE(m.length, STRUCTURED_REPLY_HEADER_LENGTH + 4);
  m.copy(b, STRUCTURED_REPLY_HEADER_LENGTH + 6);
  return b;
}

/** NBD_REPLY_TYPE_NONE chunk (always with NBD_REPLY_FLAG_DONE). */
export function encodeNoneChunk(handle: bigint): Buffer {
  return encodeStructuredHeader(NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, handle, 0);
}

/** Cut a string so that its UTF-8 encoding fits in maxBytes (on a character boundary). */
export function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let out = '';
  let used = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (used + n > maxBytes) break;
    out += ch;
    used += n;
  }
  return out;
}
