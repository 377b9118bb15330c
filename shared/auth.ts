/**
 * NVMe in-band authentication, DH-HMAC-CHAP (NVMe Base Specification 2.0,
 * "NVMe over Fabrics In-band Authentication"): the Authentication Send /
 * Receive commands, the messages they carry, the DHHC-1 secret format of
 * nvme-cli, and the computations both sides make.
 *
 * Byte layouts and the exact HMAC input order were checked against Linux
 * (include/linux/nvme.h, drivers/nvme/common/auth.c, drivers/nvme/host/auth.c,
 * drivers/nvme/target/auth.c and fabrics-cmd-auth.c) and libnvme.
 *
 *   transformed key  Kx = HMAC(H of the key, K, NQN || "NVMe-over-Fabrics")
 *                         (K itself when the key's transform id is 00);
 *                         the host key with the host NQN, the controller key
 *                         with the subsystem NQN
 *   DH exchange      session key Ks = g^xy mod p (big-endian, the prime's size)
 *   augmented chal.  Ca = HMAC(H, H(Ks), C)         (C itself with the null group)
 *   host response    R1 = HMAC(H, Kh, Ca1 || le32(S1) || le16(T_ID) || u8(SC_C)
 *                          || "HostHost" || NQNh || 0x00 || NQNc)
 *   ctrl response    R2 = HMAC(H, Kc, Ca2 || le32(S2) || le16(T_ID) || u8(SC_C)
 *                          || "Controller" || NQNc || 0x00 || NQNh)
 *
 * H is the hash the controller picked in the challenge. Only shared/ reads or
 * writes these bytes; nothing here keeps state.
 */
import { createDiffieHellman, createHash, createHmac, randomBytes } from 'node:crypto';
import { AdminOpcode, FabricsType } from './opcodes.ts';
import { inCapsuleSgl, transportSgl } from './sgl.ts';
import { sqe, type Sqe } from './sqe.ts';

// ---------------------------------------------------------------- identifiers

/** SECP of Authentication Send/Receive for DH-HMAC-CHAP. */
export const AUTH_SECP_DHCHAP = 0xe9;
/** SPSP0 and SPSP1 for DH-HMAC-CHAP. */
export const AUTH_SPSP_DHCHAP = 0x01;

/** AUTH-Type: byte 0 of every message. */
export const AuthType = { Common: 0x00, DhChap: 0x01 } as const;
/** AUTH-Id: byte 1. Negotiate and the failures are common messages, the rest DH-HMAC-CHAP ones. */
export const AuthMessageId = {
  Negotiate: 0x00,
  Challenge: 0x01,
  Reply: 0x02,
  Success1: 0x03,
  Success2: 0x04,
  Failure2: 0xf0,
  Failure1: 0xf1,
} as const;
/** AUTHID of the DH-HMAC-CHAP protocol descriptor in AUTH_Negotiate. */
export const DHCHAP_AUTH_ID = 0x01;
/** SC_C: no secure channel concatenation (the only value supported here). */
export const SC_C_NONE = 0x00;

export const HashId = { Sha256: 0x01, Sha384: 0x02, Sha512: 0x03 } as const;
export type HashIdValue = (typeof HashId)[keyof typeof HashId];
export const DhGroupId = { Null: 0x00, Ffdhe2048: 0x01, Ffdhe3072: 0x02, Ffdhe4096: 0x03, Ffdhe6144: 0x04, Ffdhe8192: 0x05 } as const;
export type DhGroupIdValue = (typeof DhGroupId)[keyof typeof DhGroupId];

/** Failure REASON CODE: the only one defined. */
export const FailureReason = { AuthenticationFailure: 0x01 } as const;
/** Failure REASON CODE EXPLANATION. */
export const FailureExplanation = {
  Failed: 0x01,
  NotUsable: 0x02,
  ConcatMismatch: 0x03,
  HashUnusable: 0x04,
  DhGroupUnusable: 0x05,
  IncorrectPayload: 0x06,
  IncorrectMessage: 0x07,
} as const;

const explanationNames = new Map<number, string>([
  [0x01, 'authentication failed'],
  [0x02, 'authentication protocol not usable'],
  [0x03, 'secure channel concatenation mismatch'],
  [0x04, 'hash function not usable'],
  [0x05, 'DH group not usable'],
  [0x06, 'incorrect payload'],
  [0x07, 'incorrect protocol message'],
]);
export function failureExplanationName(code: number): string {
  return explanationNames.get(code) ?? `reason 0x${code.toString(16).padStart(2, '0')}`;
}

/** Connect response DW0: AUTHREQ.ATR (authentication required) and ASCR (secure channel required). */
export const CONNECT_AUTHREQ_ATR = 1 << 17;
export const CONNECT_AUTHREQ_ASCR = 1 << 18;

interface HashInfo {
  readonly node: string;
  /** The configfs / nvmetcli name. */
  readonly name: string;
  readonly length: number;
}
const HASHES = new Map<number, HashInfo>([
  [HashId.Sha256, { node: 'sha256', name: 'hmac(sha256)', length: 32 }],
  [HashId.Sha384, { node: 'sha384', name: 'hmac(sha384)', length: 48 }],
  [HashId.Sha512, { node: 'sha512', name: 'hmac(sha512)', length: 64 }],
]);

export function isHashId(id: number): id is HashIdValue {
  return HASHES.has(id);
}
/** Digest length of a hash id; 0 when the id is unknown. */
export function hashLength(id: number): number {
  return HASHES.get(id)?.length ?? 0;
}
/** "hmac(sha256)" (the name configfs and nvmetcli use), or null. */
export function hashName(id: number): string | null {
  return HASHES.get(id)?.name ?? null;
}
export function hashIdByName(name: string): HashIdValue | null {
  for (const [id, h] of HASHES) if (h.name === name) return id as HashIdValue;
  return null;
}
function nodeHash(id: number): string {
  const h = HASHES.get(id);
  if (!h) throw new RangeError(`unknown DH-HMAC-CHAP hash id ${id}`);
  return h.node;
}

const DH_GROUP_NAMES = ['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'] as const;
export function isDhGroupId(id: number): id is DhGroupIdValue {
  return Number.isInteger(id) && id >= 0 && id < DH_GROUP_NAMES.length;
}
/** "null", "ffdhe2048", ... (configfs names), or null. */
export function dhGroupName(id: number): string | null {
  return isDhGroupId(id) ? DH_GROUP_NAMES[id] : null;
}
export function dhGroupIdByName(name: string): DhGroupIdValue | null {
  const i = (DH_GROUP_NAMES as readonly string[]).indexOf(name);
  return i < 0 ? null : (i as DhGroupIdValue);
}
export const ALL_HASH_IDS: readonly HashIdValue[] = [HashId.Sha256, HashId.Sha384, HashId.Sha512];
export const ALL_DH_GROUP_IDS: readonly DhGroupIdValue[] = [0, 1, 2, 3, 4, 5];

// ---------------------------------------------------------------- commands

/**
 * Authentication Send (host to controller, TL bytes) and Receive (controller
 * to host, AL bytes). CDW10: SPSP0 byte 41, SPSP1 byte 42, SECP byte 43;
 * CDW11: TL or AL.
 */
export const AuthCommandOffset = { spsp0: 41, spsp1: 42, secp: 43, length: 44 } as const;

export interface AuthCommand {
  readonly secp: number;
  readonly spsp0: number;
  readonly spsp1: number;
  /** TL (Send) or AL (Receive). */
  readonly length: number;
}

export function decodeAuthCommand(s: Sqe): AuthCommand {
  return {
    spsp0: (s.cdw10 >>> 8) & 0xff,
    spsp1: (s.cdw10 >>> 16) & 0xff,
    secp: (s.cdw10 >>> 24) & 0xff,
    length: s.cdw11 >>> 0,
  };
}

function authCdw10(): number {
  return ((AUTH_SPSP_DHCHAP << 8) | (AUTH_SPSP_DHCHAP << 16) | (AUTH_SECP_DHCHAP << 24)) >>> 0;
}

export function authSendCommand(tl: number): Sqe {
  return sqe({ opcode: AdminOpcode.Fabrics, nsid: FabricsType.AuthenticationSend, sgl: inCapsuleSgl(tl), cdw10: authCdw10(), cdw11: tl });
}
export function authReceiveCommand(al: number): Sqe {
  return sqe({ opcode: AdminOpcode.Fabrics, nsid: FabricsType.AuthenticationReceive, sgl: transportSgl(al), cdw10: authCdw10(), cdw11: al });
}

// ---------------------------------------------------------------- messages

/** One protocol descriptor of AUTH_Negotiate (64 bytes; at most 30 hash and 30 DH group ids). */
export interface DhchapProtocol {
  readonly authId: number;
  readonly hashIds: readonly number[];
  readonly dhGroupIds: readonly number[];
}

export interface NegotiateMessage {
  readonly type: 'negotiate';
  readonly tid: number;
  readonly scC: number;
  readonly protocols: readonly DhchapProtocol[];
}
export interface ChallengeMessage {
  readonly type: 'challenge';
  readonly tid: number;
  readonly hashId: number;
  readonly dhGroupId: number;
  readonly seqnum: number;
  /** C1, HL bytes. */
  readonly challenge: Buffer;
  /** The controller's DH value g^x mod p; empty with the null group. */
  readonly dhValue: Buffer;
}
export interface ReplyMessage {
  readonly type: 'reply';
  readonly tid: number;
  /** S2: 0 when the host does not authenticate the controller. */
  readonly seqnum: number;
  /** R1, HL bytes. */
  readonly response: Buffer;
  /** C2 when CVALID is set (bidirectional), else null (the field is then zero on the wire). */
  readonly challenge: Buffer | null;
  /** The host's DH value g^y mod p; empty with the null group. */
  readonly dhValue: Buffer;
}
export interface Success1Message {
  readonly type: 'success1';
  readonly tid: number;
  readonly hl: number;
  /** R2 when RVALID is set, else null. */
  readonly response: Buffer | null;
}
export interface Success2Message {
  readonly type: 'success2';
  readonly tid: number;
}
export interface FailureMessage {
  readonly type: 'failure1' | 'failure2';
  readonly tid: number;
  readonly reason: number;
  readonly explanation: number;
}
export type AuthMessage = NegotiateMessage | ChallengeMessage | ReplyMessage | Success1Message | Success2Message | FailureMessage;

/** A message that cannot be decoded; `explanation` is the failure code to answer with. */
export class AuthMessageError extends Error {
  readonly explanation: number;
  constructor(explanation: number, message: string) {
    super(message);
    this.name = 'AuthMessageError';
    this.explanation = explanation;
  }
}

export const NEGOTIATE_HEADER_LENGTH = 8;
export const PROTOCOL_DESCRIPTOR_LENGTH = 64;
/** Hash ids live at idlist[0..29], DH group ids at idlist[30..59]. */
const IDLIST_OFFSET = 4;
const MAX_IDS = 30;
export const DHCHAP_HEADER_LENGTH = 16;
export const FAILURE_LENGTH = 8;

function header(length: number, type: number, id: number, tid: number): Buffer {
  const b = Buffer.alloc(length);
  b[0] = type;
  b[1] = id;
  b.writeUInt16LE(tid & 0xffff, 4);
  return b;
}

export function encodeAuthMessage(m: AuthMessage): Buffer {
  switch (m.type) {
    case 'negotiate': {
      const b = header(NEGOTIATE_HEADER_LENGTH + m.protocols.length * PROTOCOL_DESCRIPTOR_LENGTH, AuthType.Common, AuthMessageId.Negotiate, m.tid);
      b[6] = m.scC;
      b[7] = m.protocols.length;
      m.protocols.forEach((p, i) => {
        if (p.hashIds.length > MAX_IDS || p.dhGroupIds.length > MAX_IDS) throw new RangeError('at most 30 hash and 30 DH group ids per protocol');
        const o = NEGOTIATE_HEADER_LENGTH + i * PROTOCOL_DESCRIPTOR_LENGTH;
        b[o] = p.authId;
        b[o + 2] = p.hashIds.length;
        b[o + 3] = p.dhGroupIds.length;
        p.hashIds.forEach((id, j) => (b[o + IDLIST_OFFSET + j] = id));
        p.dhGroupIds.forEach((id, j) => (b[o + IDLIST_OFFSET + MAX_IDS + j] = id));
      });
      return b;
    }
    case 'challenge': {
      const hl = m.challenge.length;
      const b = header(DHCHAP_HEADER_LENGTH + hl + m.dhValue.length, AuthType.DhChap, AuthMessageId.Challenge, m.tid);
      b[6] = hl;
      b[8] = m.hashId;
      b[9] = m.dhGroupId;
      b.writeUInt16LE(m.dhValue.length, 10);
      b.writeUInt32LE(m.seqnum >>> 0, 12);
      m.challenge.copy(b, DHCHAP_HEADER_LENGTH);
      m.dhValue.copy(b, DHCHAP_HEADER_LENGTH + hl);
      return b;
    }
    case 'reply': {
      const hl = m.response.length;
      if (m.challenge && m.challenge.length !== hl) throw new RangeError('C2 must be as long as R1');
      const b = header(DHCHAP_HEADER_LENGTH + 2 * hl + m.dhValue.length, AuthType.DhChap, AuthMessageId.Reply, m.tid);
      b[6] = hl;
      b[8] = m.challenge ? 1 : 0;
      b.writeUInt16LE(m.dhValue.length, 10);
      b.writeUInt32LE(m.seqnum >>> 0, 12);
      m.response.copy(b, DHCHAP_HEADER_LENGTH);
      m.challenge?.copy(b, DHCHAP_HEADER_LENGTH + hl);
      m.dhValue.copy(b, DHCHAP_HEADER_LENGTH + 2 * hl);
      return b;
    }
    case 'success1': {
      const b = header(DHCHAP_HEADER_LENGTH + (m.response ? m.response.length : 0), AuthType.DhChap, AuthMessageId.Success1, m.tid);
      b[6] = m.hl;
      b[8] = m.response ? 1 : 0;
      m.response?.copy(b, DHCHAP_HEADER_LENGTH);
      return b;
    }
    case 'success2':
      return header(DHCHAP_HEADER_LENGTH, AuthType.DhChap, AuthMessageId.Success2, m.tid);
    case 'failure1':
    case 'failure2': {
      const b = header(FAILURE_LENGTH, AuthType.Common, m.type === 'failure1' ? AuthMessageId.Failure1 : AuthMessageId.Failure2, m.tid);
      b[6] = m.reason;
      b[7] = m.explanation;
      return b;
    }
  }
}

const payload = (what: string) => new AuthMessageError(FailureExplanation.IncorrectPayload, what);

/**
 * Decode one message. Bytes past the message's own length are ignored (an
 * AUTH_Receive buffer is zero-filled to AL). Throws AuthMessageError.
 */
export function decodeAuthMessage(b: Buffer): AuthMessage {
  if (b.length < FAILURE_LENGTH) throw payload(`message of ${b.length} bytes is shorter than 8`);
  const type = b[0]!;
  const id = b[1]!;
  const tid = b.readUInt16LE(4);
  if (type === AuthType.Common) {
    if (id === AuthMessageId.Negotiate) {
      const napd = b[7]!;
      if (b.length < NEGOTIATE_HEADER_LENGTH + napd * PROTOCOL_DESCRIPTOR_LENGTH) {
        throw payload(
          `AUTH_Negotiate with ${napd} protocol descriptors needs ${NEGOTIATE_HEADER_LENGTH + napd * PROTOCOL_DESCRIPTOR_LENGTH} bytes, got ${b.length}`,
        );
      }
      const protocols: DhchapProtocol[] = [];
      for (let i = 0; i < napd; i++) {
        const o = NEGOTIATE_HEADER_LENGTH + i * PROTOCOL_DESCRIPTOR_LENGTH;
        const halen = b[o + 2]!;
        const dhlen = b[o + 3]!;
        if (halen > MAX_IDS || dhlen > MAX_IDS) throw payload(`protocol descriptor ${i}: HALEN ${halen} / DHLEN ${dhlen} above 30`);
        const ids = b.subarray(o + IDLIST_OFFSET, o + PROTOCOL_DESCRIPTOR_LENGTH);
        protocols.push({ authId: b[o]!, hashIds: [...ids.subarray(0, halen)], dhGroupIds: [...ids.subarray(MAX_IDS, MAX_IDS + dhlen)] });
      }
      return { type: 'negotiate', tid, scC: b[6]!, protocols };
    }
    if (id === AuthMessageId.Failure1 || id === AuthMessageId.Failure2) {
      return { type: id === AuthMessageId.Failure1 ? 'failure1' : 'failure2', tid, reason: b[6]!, explanation: b[7]! };
    }
    throw new AuthMessageError(FailureExplanation.IncorrectMessage, `unknown common message id 0x${id.toString(16)}`);
  }
  if (type !== AuthType.DhChap) throw new AuthMessageError(FailureExplanation.IncorrectMessage, `unknown AUTH-Type 0x${type.toString(16)}`);
  if (id === AuthMessageId.Failure1 || id === AuthMessageId.Failure2) {
    // Linux sends the failures as common messages; accept either type.
    return { type: id === AuthMessageId.Failure1 ? 'failure1' : 'failure2', tid, reason: b[6]!, explanation: b[7]! };
  }
  if (b.length < DHCHAP_HEADER_LENGTH) throw payload(`DH-HMAC-CHAP message of ${b.length} bytes is shorter than 16`);
  const hl = b[6]!;
  switch (id) {
    case AuthMessageId.Challenge: {
      const dhvlen = b.readUInt16LE(10);
      if (b.length < DHCHAP_HEADER_LENGTH + hl + dhvlen) throw payload(`DH-HMAC-CHAP_Challenge (HL ${hl}, DHVLEN ${dhvlen}) truncated at ${b.length} bytes`);
      const o = DHCHAP_HEADER_LENGTH;
      return {
        type: 'challenge',
        tid,
        hashId: b[8]!,
        dhGroupId: b[9]!,
        seqnum: b.readUInt32LE(12),
        challenge: Buffer.from(b.subarray(o, o + hl)),
        dhValue: Buffer.from(b.subarray(o + hl, o + hl + dhvlen)),
      };
    }
    case AuthMessageId.Reply: {
      const dhvlen = b.readUInt16LE(10);
      if (b.length < DHCHAP_HEADER_LENGTH + 2 * hl + dhvlen) throw payload(`DH-HMAC-CHAP_Reply (HL ${hl}, DHVLEN ${dhvlen}) truncated at ${b.length} bytes`);
      const o = DHCHAP_HEADER_LENGTH;
      return {
        type: 'reply',
        tid,
        seqnum: b.readUInt32LE(12),
        response: Buffer.from(b.subarray(o, o + hl)),
        challenge: b[8] !== 0 ? Buffer.from(b.subarray(o + hl, o + 2 * hl)) : null,
        dhValue: Buffer.from(b.subarray(o + 2 * hl, o + 2 * hl + dhvlen)),
      };
    }
    case AuthMessageId.Success1: {
      const rvalid = b[8] !== 0;
      if (rvalid && b.length < DHCHAP_HEADER_LENGTH + hl) throw payload(`DH-HMAC-CHAP_Success1 (HL ${hl}) truncated at ${b.length} bytes`);
      return { type: 'success1', tid, hl, response: rvalid ? Buffer.from(b.subarray(DHCHAP_HEADER_LENGTH, DHCHAP_HEADER_LENGTH + hl)) : null };
    }
    case AuthMessageId.Success2:
      return { type: 'success2', tid };
    default:
      throw new AuthMessageError(FailureExplanation.IncorrectMessage, `unknown DH-HMAC-CHAP message id 0x${id.toString(16)}`);
  }
}

// ---------------------------------------------------------------- DHHC-1 secrets

/**
 * A DH-HMAC-CHAP secret as nvme-cli writes it:
 * `DHHC-1:XX:<base64(secret || CRC-32(secret) little-endian)>:` where XX is
 * the hash of the key transformation (00 none, 01 SHA-256, 02 SHA-384,
 * 03 SHA-512) and the secret is 32, 48 or 64 bytes.
 */
export interface DhchapKey {
  readonly transform: 0 | 1 | 2 | 3;
  readonly secret: Buffer;
}

export class DhchapKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DhchapKeyError';
  }
}

export const DHCHAP_KEY_LENGTHS = [32, 48, 64] as const;

const CRC32_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 as zlib (reflected polynomial 0xEDB88320, init and final xor ~0). */
export function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC32_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const KEY_RE = /^DHHC-1:([^:]*):([^:]*)(:?)$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Parse a DHHC-1 secret; throws DhchapKeyError saying what is wrong. */
export function parseDhchapKey(text: string): DhchapKey {
  if (typeof text !== 'string') throw new DhchapKeyError('is not a string');
  const m = KEY_RE.exec(text.trim());
  if (!m) throw new DhchapKeyError('is not a DH-HMAC-CHAP secret "DHHC-1:XX:<base64>:"');
  const [, xx, b64] = m as unknown as [string, string, string];
  if (!/^0[0-3]$/.test(xx)) throw new DhchapKeyError(`key transformation "${xx}" is not 00 (none), 01 (SHA-256), 02 (SHA-384) or 03 (SHA-512)`);
  if (b64.length === 0 || !BASE64_RE.test(b64)) throw new DhchapKeyError('the key is not valid base64');
  const raw = Buffer.from(b64, 'base64');
  const len = raw.length - 4;
  if (!(DHCHAP_KEY_LENGTHS as readonly number[]).includes(len)) {
    throw new DhchapKeyError(`the key is ${Math.max(len, 0)} bytes; it must be 32, 48 or 64 (followed by its 4-byte CRC-32)`);
  }
  const secret = raw.subarray(0, len);
  const crc = raw.readUInt32LE(len);
  if (crc !== crc32(secret)) throw new DhchapKeyError('CRC-32 mismatch: the key is corrupted or mistyped');
  return { transform: Number(xx) as DhchapKey['transform'], secret: Buffer.from(secret) };
}

export function formatDhchapKey(key: DhchapKey): string {
  if (!(DHCHAP_KEY_LENGTHS as readonly number[]).includes(key.secret.length)) throw new RangeError('a DH-HMAC-CHAP secret is 32, 48 or 64 bytes');
  if (![0, 1, 2, 3].includes(key.transform)) throw new RangeError('key transformation must be 0..3');
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(key.secret), 0);
  return `DHHC-1:0${key.transform}:${Buffer.concat([key.secret, crc]).toString('base64')}:`;
}

/**
 * A new random secret in DHHC-1 form (as `nvme gen-dhchap-key`). Default
 * length: the transform hash's digest length, 32 for no transform.
 */
export function generateDhchapKey(opts: { transform?: 0 | 1 | 2 | 3; length?: 32 | 48 | 64 } = {}): string {
  const transform = opts.transform ?? 1;
  const length = opts.length ?? (transform === 0 ? 32 : hashLength(transform));
  return formatDhchapKey({ transform, secret: randomBytes(length) });
}

// ---------------------------------------------------------------- computations

/**
 * The key used in the responses: the secret itself (transform 00) or
 * HMAC(hash of the transform, secret, NQN || "NVMe-over-Fabrics").
 */
export function transformKey(key: DhchapKey, nqn: string): Buffer {
  if (key.transform === 0) return Buffer.from(key.secret);
  return createHmac(nodeHash(key.transform), key.secret).update(nqn, 'utf8').update('NVMe-over-Fabrics', 'latin1').digest();
}

/** Ca = HMAC(H, H(Ks), C): the challenge as modified by the DH exchange. */
export function augmentChallenge(hashId: number, sessionKey: Buffer, challenge: Buffer): Buffer {
  const h = nodeHash(hashId);
  return createHmac(h, createHash(h).update(sessionKey).digest()).update(challenge).digest();
}

export interface ResponseParams {
  /** Hash chosen in the challenge. */
  readonly hashId: number;
  /** The host's key for R1, the controller's for R2. */
  readonly key: DhchapKey;
  readonly hostnqn: string;
  readonly subnqn: string;
  /** C1 for R1, C2 for R2. */
  readonly challenge: Buffer;
  /** S1 for R1, S2 for R2. */
  readonly seqnum: number;
  readonly tid: number;
  readonly scC?: number;
  /** The DH session key g^xy mod p, or null with the null group. */
  readonly sessionKey: Buffer | null;
}

/**
 * R1 (role 'host': proves the host knows its key) or R2 (role 'controller').
 * See the formulas at the top of this file.
 */
export function dhchapResponse(role: 'host' | 'controller', p: ResponseParams): Buffer {
  const h = nodeHash(p.hashId);
  const k = transformKey(p.key, role === 'host' ? p.hostnqn : p.subnqn);
  const c = p.sessionKey ? augmentChallenge(p.hashId, p.sessionKey, p.challenge) : p.challenge;
  const fixed = Buffer.alloc(7);
  fixed.writeUInt32LE(p.seqnum >>> 0, 0);
  fixed.writeUInt16LE(p.tid & 0xffff, 4);
  fixed[6] = p.scC ?? SC_C_NONE;
  const [label, first, second] = role === 'host' ? ['HostHost', p.hostnqn, p.subnqn] : ['Controller', p.subnqn, p.hostnqn];
  return createHmac(h, k).update(c).update(fixed).update(label, 'latin1').update(first, 'utf8').update(Buffer.of(0)).update(second, 'utf8').digest();
}

/** A random non-zero 32-bit sequence number (0 means "no controller authentication" in the reply). */
export function randomSeqnum(): number {
  for (;;) {
    const n = randomBytes(4).readUInt32LE(0);
    if (n !== 0) return n;
  }
}

// ---------------------------------------------------------------- finite field DH groups

// The ffdhe groups of RFC 7919 (Negotiated Finite Field Diffie-Hellman
// Ephemeral Parameters for TLS), Appendix A: p = 2^b - 2^(b-64) +
// {[2^(b-130) e] + X} * 2^64 - 1, generator g = 2. The hexadecimal values of p
// below are those of the RFC; test/unit/auth.test.ts recomputes each from the
// formula and checks that p and (p-1)/2 are prime.
const FFDHE_PRIMES: Record<1 | 2 | 3 | 4 | 5, string> = {
  // A.1. ffdhe2048
  1: `
    FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695
    A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A
    D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935
    984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A
    BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4
    AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61
    9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005
    C58EF1837D1683B2C6F34A26C1B2EFFA886B423861285C97FFFFFFFFFFFFFFFF
  `,
  // A.2. ffdhe3072
  2: `
    FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695
    A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A
    D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935
    984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A
    BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4
    AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61
    9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005
    C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B
    BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C
    AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF
    5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E
    0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B66C62E37FFFFFFFFFFFFFFFF
  `,
  // A.3. ffdhe4096
  3: `
    FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695
    A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A
    D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935
    984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A
    BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4
    AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61
    9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005
    C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B
    BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C
    AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF
    5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E
    0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B669E1EF16E6F52C3164DF4FB
    7930E9E4E58857B6AC7D5F42D69F6D187763CF1D5503400487F55BA57E31CC7A
    7135C886EFB4318AED6A1E012D9E6832A907600A918130C46DC778F971AD0038
    092999A333CB8B7A1A1DB93D7140003C2A4ECEA9F98D0ACC0A8291CDCEC97DCF
    8EC9B55A7F88A46B4DB5A851F44182E1C68A007E5E655F6AFFFFFFFFFFFFFFFF
  `,
  // A.4. ffdhe6144
  4: `
    FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695
    A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A
    D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935
    984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A
    BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4
    AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61
    9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005
    C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B
    BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C
    AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF
    5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E
    0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B669E1EF16E6F52C3164DF4FB
    7930E9E4E58857B6AC7D5F42D69F6D187763CF1D5503400487F55BA57E31CC7A
    7135C886EFB4318AED6A1E012D9E6832A907600A918130C46DC778F971AD0038
    092999A333CB8B7A1A1DB93D7140003C2A4ECEA9F98D0ACC0A8291CDCEC97DCF
    8EC9B55A7F88A46B4DB5A851F44182E1C68A007E5E0DD9020BFD64B645036C7A
    4E677D2C38532A3A23BA4442CAF53EA63BB454329B7624C8917BDD64B1C0FD4C
    B38E8C334C701C3ACDAD0657FCCFEC719B1F5C3E4E46041F388147FB4CFDB477
    A52471F7A9A96910B855322EDB6340D8A00EF092350511E30ABEC1FFF9E3A26E
    7FB29F8C183023C3587E38DA0077D9B4763E4E4B94B2BBC194C6651E77CAF992
    EEAAC0232A281BF6B3A739C1226116820AE8DB5847A67CBEF9C9091B462D538C
    D72B03746AE77F5E62292C311562A846505DC82DB854338AE49F5235C95B9117
    8CCF2DD5CACEF403EC9D1810C6272B045B3B71F9DC6B80D63FDD4A8E9ADB1E69
    62A69526D43161C1A41D570D7938DAD4A40E329CD0E40E65FFFFFFFFFFFFFFFF
  `,
  // A.5. ffdhe8192
  5: `
    FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695
    A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A
    D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935
    984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A
    BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4
    AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61
    9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005
    C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B
    BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C
    AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF
    5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E
    0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B669E1EF16E6F52C3164DF4FB
    7930E9E4E58857B6AC7D5F42D69F6D187763CF1D5503400487F55BA57E31CC7A
    7135C886EFB4318AED6A1E012D9E6832A907600A918130C46DC778F971AD0038
    092999A333CB8B7A1A1DB93D7140003C2A4ECEA9F98D0ACC0A8291CDCEC97DCF
    8EC9B55A7F88A46B4DB5A851F44182E1C68A007E5E0DD9020BFD64B645036C7A
    4E677D2C38532A3A23BA4442CAF53EA63BB454329B7624C8917BDD64B1C0FD4C
    B38E8C334C701C3ACDAD0657FCCFEC719B1F5C3E4E46041F388147FB4CFDB477
    A52471F7A9A96910B855322EDB6340D8A00EF092350511E30ABEC1FFF9E3A26E
    7FB29F8C183023C3587E38DA0077D9B4763E4E4B94B2BBC194C6651E77CAF992
    EEAAC0232A281BF6B3A739C1226116820AE8DB5847A67CBEF9C9091B462D538C
    D72B03746AE77F5E62292C311562A846505DC82DB854338AE49F5235C95B9117
    8CCF2DD5CACEF403EC9D1810C6272B045B3B71F9DC6B80D63FDD4A8E9ADB1E69
    62A69526D43161C1A41D570D7938DAD4A40E329CCFF46AAA36AD004CF600C838
    1E425A31D951AE64FDB23FCEC9509D43687FEB69EDD1CC5E0B8CC3BDF64B10EF
    86B63142A3AB8829555B2F747C932665CB2C0F1CC01BD70229388839D2AF05E4
    54504AC78B7582822846C0BA35C35F5C59160CC046FD8251541FC68C9C86B022
    BB7099876A460E7451A8A93109703FEE1C217E6C3826E52C51AA691E0E423CFC
    99E9E31650C1217B624816CDAD9A95F9D5B8019488D9C0A0A1FE3075A577E231
    83F81D4A3F2FA4571EFC8CE0BA8A4FE8B6855DFE72B0A66EDED2FBABFBE58A30
    FAFABE1C5D71A87E2F741EF8C1FE86FEA6BBFDE530677F0D97D11D49F7A8443D
    0822E506A9F4614E011E2A94838FF88CD68C8BB7C5C6424CFFFFFFFFFFFFFFFF
  `,
};
export const FFDHE_GENERATOR = 2;

const primeCache = new Map<number, Buffer>();
/** The group's prime p, big-endian; throws for the null group or an unknown id. */
export function ffdhePrime(groupId: number): Buffer {
  let p = primeCache.get(groupId);
  if (!p) {
    const hex = FFDHE_PRIMES[groupId as 1 | 2 | 3 | 4 | 5];
    if (!hex) throw new RangeError(`DH group ${groupId} has no prime`);
    p = Buffer.from(hex.replace(/\s+/g, ''), 'hex');
    primeCache.set(groupId, p);
  }
  return p;
}

/** DHVLEN of a group: the prime's size in bytes, 0 for the null group. */
export function dhValueLength(groupId: number): number {
  return groupId === DhGroupId.Null ? 0 : ffdhePrime(groupId).length;
}

function leftPad(b: Buffer, length: number): Buffer {
  if (b.length === length) return b;
  if (b.length > length) throw new RangeError('DH value longer than the prime');
  return Buffer.concat([Buffer.alloc(length - b.length), b]);
}

/**
 * Check a peer's DH value: exactly the prime's size, and 1 < y < p - 1 (the
 * values 0, 1 and p - 1 would make the session key predictable).
 */
export function dhValueProblem(groupId: number, value: Buffer): string | null {
  const p = ffdhePrime(groupId);
  if (value.length !== p.length) return `DH value of ${value.length} bytes; ${dhGroupName(groupId)} needs ${p.length}`;
  const y = BigInt(`0x${value.toString('hex') || '0'}`);
  const pn = BigInt(`0x${p.toString('hex')}`);
  if (y <= 1n || y >= pn - 1n) return 'DH value out of range (must be 1 < y < p-1)';
  return null;
}

/** One side's ephemeral DH key pair in an ffdhe group. */
export interface DhKeyPair {
  readonly groupId: number;
  /** g^x mod p, the prime's size, big-endian. */
  readonly publicValue: Buffer;
  /** g^xy mod p from the peer's value, the prime's size; throws RangeError on a bad value. */
  sessionKey(peerValue: Buffer): Buffer;
}

export function createDhKeyPair(groupId: number): DhKeyPair {
  const p = ffdhePrime(groupId);
  const dh = createDiffieHellman(p, FFDHE_GENERATOR);
  const publicValue = leftPad(dh.generateKeys(), p.length);
  return {
    groupId,
    publicValue,
    sessionKey(peerValue: Buffer): Buffer {
      const problem = dhValueProblem(groupId, peerValue);
      if (problem) throw new RangeError(problem);
      return leftPad(dh.computeSecret(peerValue), p.length);
    },
  };
}
