/**
 * Input generators. Input i is generate(profile, seed, i): every random choice
 * comes from Rng(seed, i), so one input is reproducible from the seed and its
 * index alone.
 *
 * Two kinds of input:
 *  - CmdInput: one command (an SQE, in-capsule data, R2T data) for one of the
 *    long-lived lanes (I/O queue, admin queue, a controller never enabled, a
 *    discovery controller, a connection waiting for its Connect). Commands
 *    never end the connection: the answer is a completion, whose accepted
 *    statuses the oracle (oracle.ts) computes from the bytes.
 *  - ConnInput: a scenario on a connection of its own (bad PDUs, H2CData
 *    violations, truncated and stalled PDUs, AER floods, property sequences,
 *    duplicate command ids, queue-depth overflow ...), each with the outcome
 *    the specification gives stated in the generator (expectTerm, expectResp,
 *    expectClose ... in engine.ts).
 */
import { Rng } from '../rng.ts';
import {
  SC,
  capsuleLimit,
  checkHeader,
  expectCommand,
  type CmdBytes,
  type ConnState,
  type LaneKind,
  type PortProfile,
  type Profile,
  type RespPattern,
  type TermPattern,
} from './oracle.ts';
import { buildPdu, capsulePdu, h2cPdu, h2cTermReq, icReq } from './wire.ts';
import { crc32cOf as crc } from '../../../shared/digest.ts';
import type { WireOptions } from '../../../shared/pdu.ts';

// ---------------------------------------------------------------- lanes

export type LaneName = 'io0' | 'io0d' | 'io1' | 'io1d' | 'admin0' | 'admin1' | 'disabled' | 'disc' | 'pre0' | 'pre1';

export interface LaneSpec {
  name: LaneName;
  kind: LaneKind;
  port: number;
  hdgst: boolean;
  ddgst: boolean;
  /** I/O lanes: queue id; CATTR (bit 2: SQ flow control disabled). */
  qid?: number;
  cattr?: number;
}

export const LANES: Record<LaneName, LaneSpec> = {
  io0: { name: 'io0', kind: 'io', port: 0, hdgst: false, ddgst: false, qid: 1, cattr: 0 },
  io0d: { name: 'io0d', kind: 'io', port: 0, hdgst: true, ddgst: true, qid: 2, cattr: 4 },
  io1: { name: 'io1', kind: 'io', port: 1, hdgst: false, ddgst: true, qid: 1, cattr: 0 },
  io1d: { name: 'io1d', kind: 'io', port: 1, hdgst: true, ddgst: false, qid: 2, cattr: 0 },
  admin0: { name: 'admin0', kind: 'admin', port: 0, hdgst: false, ddgst: false },
  admin1: { name: 'admin1', kind: 'admin', port: 1, hdgst: true, ddgst: true },
  disabled: { name: 'disabled', kind: 'disabled', port: 0, hdgst: false, ddgst: true },
  disc: { name: 'disc', kind: 'discovery', port: 1, hdgst: false, ddgst: false },
  pre0: { name: 'pre0', kind: 'preconnect', port: 0, hdgst: false, ddgst: false },
  pre1: { name: 'pre1', kind: 'preconnect', port: 1, hdgst: true, ddgst: true },
};

/** What a Connect generator names symbolically; the lane resolves it when the input runs. */
export interface ConnectRuntime {
  fuzzCntlid(port: number): number;
  disabledCntlid(): number;
  /**
   * The given controller id, or the next one up that no live controller of the
   * main subsystem has: a random CNTLID must not name a controller some other
   * lane's admin Connect just created (the oracle does not model those).
   */
  unusedCntlid(cntlid: number): number;
  /** A queue id free on the port's fuzz controller, reserved until release(). */
  reserveQid(port: number): number;
  releaseQid(port: number, qid: number): void;
  busyQid(port: number): number;
}

export interface CmdInput {
  kind: 'cmd';
  index: number;
  cls: string;
  desc: string;
  lane: LaneName;
  cid: number;
  /** The bytes (cid not yet set); for Connect inputs, resolved against the runtime. */
  build(rt: ConnectRuntime): { cmd: CmdBytes; release?: () => void };
}

export interface Setup {
  port: number;
  stage: 'tcp' | 'ic' | 'io' | 'admin' | 'enabled' | 'discovery';
  hdgst: boolean;
  ddgst: boolean;
  sqsize?: number;
  cattr?: number;
}

/** What a scenario can do with its connection (implemented in engine.ts). */
export interface Driver {
  readonly P: Profile;
  /** The port this connection is on. */
  readonly port: PortProfile;
  readonly wire: WireOptions;
  readonly maxh2c: number;
  readonly qid: number;
  send(b: Buffer): void;
  fin(): void;
  /** The next PDU must be an R2T for cid; returns its fields. */
  expectR2T(cid: number): Promise<{ ttag: number; r2to: number; r2tl: number }>;
  /** The next PDUs must be the completion of cid (C2HData first for reads) matching one pattern. */
  expectResp(cid: number, accept: RespPattern[]): Promise<{ sc: number; dw0: number }>;
  /** A C2HTermReq matching one pattern, then the connection closes (nothing else arrives first but what `allow` lets through). */
  expectTerm(accept: TermPattern[], o?: { withinMs?: number; allowR2T?: boolean }): Promise<void>;
  /** The connection closes without any PDU (within withinMs); minMs: not before. */
  expectClose(o?: { withinMs?: number; minMs?: number; allowTerm?: TermPattern[] }): Promise<void>;
  /** Either a TermReq from `terms`, or the completion of cid from `resp` (then we FIN and it must close). */
  expectEither(o: { terms: TermPattern[]; resp?: { cid: number; accept: RespPattern[] }; close?: boolean; icresp?: boolean }): Promise<string>;
  /** ICResp with the fields the spec and the port require. */
  expectIcResp(o: { hdgst: boolean; ddgst: boolean }): Promise<void>;
  /** Nothing arrives for ms. */
  expectQuiet(ms: number): Promise<void>;
  /** Count R2Ts arriving within ms (and nothing else). */
  countR2T(ms: number): Promise<number>;
  /** Either n R2Ts, or R2Ts then a C2HTermReq from `accept` and the close. */
  r2tsOrTerm(n: number, accept: TermPattern[]): Promise<'all' | 'term'>;
}

export interface ConnInput {
  kind: 'conn';
  index: number;
  cls: string;
  desc: string;
  setup: Setup;
  run(d: Driver): Promise<void>;
}

export type Input = CmdInput | ConnInput;

// ---------------------------------------------------------------- SQE helpers

interface SqeFields {
  opcode: number;
  flags?: number;
  nsid?: number;
  cdw?: Partial<Record<2 | 3 | 10 | 11 | 12 | 13 | 14 | 15, number>>;
  sglId?: number;
  sglLen?: number;
}

export function sqeOf(f: SqeFields): Buffer {
  const b = Buffer.alloc(64);
  b[0] = f.opcode;
  b[1] = f.flags ?? 0x40;
  b.writeUInt32LE((f.nsid ?? 0) >>> 0, 4);
  for (const [k, v] of Object.entries(f.cdw ?? {})) b.writeUInt32LE(v >>> 0, Number(k) * 4);
  b.writeUInt32LE((f.sglLen ?? 0) >>> 0, 32);
  b[39] = f.sglId ?? 0x5a;
  return b;
}

function fill(n: number, rng: Rng): Buffer {
  // Cheap, varied content: a random byte repeated, with a random dword at the start.
  const b = Buffer.alloc(n, rng.int(0, 255));
  if (n >= 4) b.writeUInt32LE(rng.u32(), 0);
  return b;
}

interface Tmpl {
  name: string;
  cmd: CmdBytes;
}

// ---------------------------------------------------------------- templates

function rwTemplate(P: Profile, rng: Rng, lane: LaneSpec): Tmpl {
  const ns = rng.pick(P.namespaces);
  const port = P.ports[lane.port]!;
  const maxNlb = rng.chance(0.05) ? Math.min(256, Math.floor(P.mdtsBytes / ns.bs)) : Math.max(1, Math.floor(16384 / ns.bs));
  const nlb = rng.int(1, maxNlb);
  const slba = rng.int(0, ns.nblocks - nlb);
  const L = nlb * ns.bs;
  const cdw = { 10: slba, 11: 0, 12: nlb - 1 };
  const kind = rng.weighted([
    ['read', 4],
    ['write', 4],
    ['compare', 1],
    ['wz', 1],
    ['dsm', 1],
    ['flush', 1],
  ] as const);
  switch (kind) {
    case 'read':
      return { name: `read ns${ns.nsid} ${slba}+${nlb}`, cmd: { sqe: sqeOf({ opcode: 0x02, nsid: ns.nsid, cdw, sglLen: L }), capsule: null, h2c: null } };
    case 'write':
    case 'compare': {
      const op = kind === 'write' ? 0x01 : 0x05;
      const data = fill(L, rng);
      if (L <= port.inline && rng.chance(0.6)) {
        return {
          name: `${kind} in-capsule ns${ns.nsid} ${slba}+${nlb}`,
          cmd: {
            sqe: sqeOf({ opcode: op, nsid: ns.nsid, cdw: { ...cdw, 12: cdw[12] | (rng.chance(0.2) ? 0x40000000 : 0) }, sglId: 0x01, sglLen: L }),
            capsule: data,
            h2c: null,
          },
        };
      }
      return { name: `${kind} r2t ns${ns.nsid} ${slba}+${nlb}`, cmd: { sqe: sqeOf({ opcode: op, nsid: ns.nsid, cdw, sglLen: L }), capsule: null, h2c: data } };
    }
    case 'wz': {
      const n = rng.int(1, Math.min(65536, ns.nblocks));
      const s = rng.int(0, ns.nblocks - n);
      return {
        name: `write-zeroes ns${ns.nsid} ${s}+${n}`,
        cmd: { sqe: sqeOf({ opcode: 0x08, nsid: ns.nsid, cdw: { 10: s, 12: (n - 1) | (rng.chance(0.3) ? 0x02000000 : 0) } }), capsule: null, h2c: null },
      };
    }
    case 'dsm': {
      const nr = rng.int(1, 4);
      const data = Buffer.alloc(nr * 16);
      for (let i = 0; i < nr; i++) {
        const n = rng.int(0, 64);
        data.writeUInt32LE(n, i * 16 + 4);
        data.writeBigUInt64LE(BigInt(rng.int(0, ns.nblocks - n)), i * 16 + 8);
      }
      const ad = rng.chance(0.7) ? 4 : 0;
      return {
        name: `dsm ns${ns.nsid} nr ${nr}${ad ? ' deallocate' : ''}`,
        cmd: { sqe: sqeOf({ opcode: 0x09, nsid: ns.nsid, cdw: { 10: nr - 1, 11: ad }, sglId: 0x01, sglLen: data.length }), capsule: data, h2c: null },
      };
    }
    default: {
      const nsid = rng.chance(0.3) ? 0xffffffff : ns.nsid;
      return { name: `flush ${nsid}`, cmd: { sqe: sqeOf({ opcode: 0x00, nsid, sglLen: 0 }), capsule: null, h2c: null } };
    }
  }
}

function adminTemplate(P: Profile, rng: Rng, kind: 'io' | 'discovery'): Tmpl {
  const none = (sqe: Buffer, name: string): Tmpl => ({ name, cmd: { sqe, capsule: null, h2c: null } });
  if (kind === 'discovery') {
    switch (rng.int(0, 6)) {
      case 0:
        return none(sqeOf({ opcode: 0x06, cdw: { 10: 1 }, sglLen: 4096 }), 'identify controller');
      case 1:
      case 2: {
        const len = rng.pick([1024, 2048, 4096, 8192]);
        const off = rng.pick([0, 0, 1024, 4096]);
        return none(
          sqeOf({ opcode: 0x02, cdw: { 10: 0x70 | ((len / 4 - 1) << 16) | (rng.chance(0.5) ? 0x8000 : 0), 12: off }, sglLen: len }),
          `discovery log ${off}+${len}`,
        );
      }
      case 3:
        return none(sqeOf({ opcode: 0x0a, cdw: { 10: rng.pick([0x0b, 0x0f]) | (rng.int(0, 3) << 8) } }), 'get features');
      case 4:
        return none(sqeOf({ opcode: 0x09, cdw: { 10: 0x0b, 11: rng.u32() } }), 'set features AEC');
      case 5:
        return none(sqeOf({ opcode: 0x18 }), 'keep alive');
      default:
        return none(sqeOf({ opcode: 0x7f, nsid: 0x04, cdw: rng.chance(0.5) ? { 10: 1, 11: 0 } : { 10: 0, 11: rng.pick([0x08, 0x14, 0x1c]) } }), 'property get');
    }
  }
  switch (rng.int(0, 13)) {
    case 0:
    case 1: {
      const cns = rng.pick([0, 1, 2, 3, 5, 6]);
      const nsid = cns === 1 || cns === 6 ? 0 : cns === 2 ? rng.int(0, 3) : rng.pick(P.namespaces).nsid;
      return none(sqeOf({ opcode: 0x06, nsid, cdw: { 10: cns }, sglLen: 4096 }), `identify cns ${cns} nsid ${nsid}`);
    }
    case 2:
    case 3: {
      const lid = rng.pick([0x01, 0x02, 0x03, 0x04, 0x05, 0x0c]);
      const len = 4 * rng.int(1, lid === 0x01 ? 2048 : 1024);
      const rgo = lid === 0x0c && rng.chance(0.5) ? 1 : 0;
      const off = rng.chance(0.7) ? 0 : 4 * rng.int(0, 12);
      const nsid = lid === 0x02 ? rng.pick([0, 0xffffffff, 1]) : lid === 0x0c ? 0xffffffff : 0;
      const numd = len / 4 - 1;
      return none(
        sqeOf({
          opcode: 0x02,
          nsid,
          cdw: { 10: lid | (rgo << 8) | (rng.chance(0.5) ? 0x8000 : 0) | ((numd & 0xffff) << 16), 11: numd >>> 16, 12: off },
          sglLen: len,
        }),
        `get log 0x${lid.toString(16)} ${off}+${len}`,
      );
    }
    case 4: {
      if (rng.chance(0.2)) return none(sqeOf({ opcode: 0x0a, cdw: { 10: 0x81, 11: 1 }, sglLen: 16 }), 'get features host id');
      return none(sqeOf({ opcode: 0x0a, cdw: { 10: rng.pick([0x07, 0x0b, 0x0f, 0x06]) | (rng.int(0, 3) << 8) } }), 'get features');
    }
    case 5: {
      const fid = rng.pick([0x0b, 0x06, 0x07, 0x0f, 0x81]);
      return none(sqeOf({ opcode: 0x09, cdw: { 10: fid, 11: fid === 0x06 ? rng.int(0, 1) : rng.u32() & 0xffff } }), `set features 0x${fid.toString(16)}`);
    }
    case 6:
      return none(sqeOf({ opcode: 0x18 }), 'keep alive');
    case 7:
      return none(sqeOf({ opcode: 0x08, cdw: { 10: 0x100 + rng.int(0, 0xfe00) } }), 'abort (no such queue)');
    case 8:
      return none(sqeOf({ opcode: 0x0c }), 'aer (limit reached)');
    case 9:
      return none(sqeOf({ opcode: 0xfc, nsid: rng.pick(P.namespaces).nsid, sglLen: rng.pick([1024, 16, 4096]) }), '0xFC persistent id');
    case 10:
      return none(sqeOf({ opcode: 0xfe, nsid: 1 }), '0xFE set active');
    case 11:
      return none(sqeOf({ opcode: 0x7f, nsid: 0x04, cdw: rng.chance(0.5) ? { 10: 1, 11: 0 } : { 10: 0, 11: rng.pick([0x08, 0x14, 0x1c]) } }), 'property get');
    case 12:
      return none(
        sqeOf({ opcode: 0x7f, nsid: 0x00, cdw: { 10: rng.pick([0, 1]), 11: rng.pick([0x00, 0x08, 0x1c, 0x20, rng.u32() & 0xfff]), 12: rng.u32() } }),
        'property set (read-only / size)',
      );
    default: {
      const data = Buffer.alloc(1024);
      return {
        name: 'connect on a connected queue',
        cmd: { sqe: sqeOf({ opcode: 0x7f, nsid: 0x01, cdw: { 11: 31 }, sglId: 0x01, sglLen: 1024 }), capsule: data, h2c: null },
      };
    }
  }
}

// ---------------------------------------------------------------- mutations

const SGL_IDS = [0x00, 0x01, 0x02, 0x0a, 0x10, 0x20, 0x21, 0x30, 0x40, 0x41, 0x4a, 0x50, 0x51, 0x5a, 0x5f, 0xa5, 0xf0, 0xff];
const ADMIN_KNOWN = [0x02, 0x06, 0x08, 0x09, 0x0a, 0x0c, 0x18, 0x7f, 0xfc, 0xfe];
const IO_KNOWN = [0x00, 0x01, 0x02, 0x05, 0x08, 0x09, 0x7f];

function mutate(P: Profile, rng: Rng, lane: LaneSpec, t: Tmpl): string[] {
  const { cmd } = t;
  const s = cmd.sqe;
  const notes: string[] = [];
  const n = rng.weighted([
    [1, 6],
    [2, 3],
    [3, 1],
  ] as const);
  for (let k = 0; k < n; k++) {
    const m = rng.weighted([
      ['sgl-id', 3],
      ['sgl-len', 3],
      ['psdt', 1],
      ['fuse', 1],
      ['flags-rsvd', 1],
      ['reserved', 3],
      ['nsid', 2],
      ['lba', 2],
      ['nlb', 2],
      ['opcode', 3],
      ['fctype', 1],
      ['cdw', 3],
      ['byte', 3],
      ['capsule-len', 2],
      ['ddgst', lane.ddgst ? 2 : 0],
    ] as const);
    switch (m) {
      case 'sgl-id':
        s[39] = rng.chance(0.7) ? rng.pick(SGL_IDS) : rng.int(0, 255);
        notes.push(`SGL id 0x${s[39].toString(16)}`);
        break;
      case 'sgl-len': {
        const v = rng.weighted([
          [0, 2],
          [rng.int(1, 8192), 3],
          [s.readUInt32LE(32) + rng.pick([-1, 1, 512, -512]), 3],
          [rng.edgy32(), 2],
          [P.mdtsBytes + rng.pick([1, 4096]), 1],
        ] as const);
        s.writeUInt32LE(Math.max(0, v) >>> 0, 32);
        notes.push(`SGL length ${s.readUInt32LE(32)}`);
        break;
      }
      case 'psdt':
        s[1] = (s[1]! & 0x3f) | (rng.pick([0, 2, 3]) << 6);
        notes.push(`PSDT ${s[1] >> 6}`);
        break;
      case 'fuse':
        s[1] = s[1]! | rng.int(1, 3);
        notes.push(`FUSE ${s[1] & 3}`);
        break;
      case 'flags-rsvd':
        s[1] = s[1]! | (rng.int(1, 15) << 2);
        notes.push('reserved flag bits');
        break;
      case 'reserved': {
        const where = rng.pick(['cdw2', 'cdw3', 'mptr', 'sgl-rsvd', 'cdw13', 'cdw14', 'cdw15'] as const);
        if (where === 'cdw2') s.writeUInt32LE((rng.u32() | 1) >>> 0, 8);
        else if (where === 'cdw3') s.writeUInt32LE((rng.u32() | 1) >>> 0, 12);
        else if (where === 'mptr') s.writeUInt32LE((rng.u32() | 1) >>> 0, 16 + rng.pick([0, 4]));
        else if (where === 'sgl-rsvd') s[rng.int(36, 38)] = rng.int(1, 255);
        else s.writeUInt32LE((rng.u32() | 1) >>> 0, { cdw13: 52, cdw14: 56, cdw15: 60 }[where]);
        notes.push(`reserved ${where}`);
        break;
      }
      case 'nsid':
        s.writeUInt32LE((rng.chance(0.5) ? rng.pick([0, 3, 0xfffffffe, 0xffffffff, 1, 2]) : rng.edgy32()) >>> 0, 4);
        notes.push(`NSID 0x${s.readUInt32LE(4).toString(16)}`);
        break;
      case 'lba': {
        const ns = P.namespaces.find((x) => x.nsid === s.readUInt32LE(4)) ?? P.namespaces[0]!;
        if (rng.chance(0.5)) {
          s.writeUInt32LE(Math.max(0, ns.nblocks - rng.int(0, 3)) >>> 0, 40);
          s.writeUInt32LE(0 >>> 0, 44);
        } else {
          s.writeUInt32LE(rng.u32() >>> 0, 40);
          s.writeUInt32LE(rng.edgy32() >>> 0, 44);
        }
        notes.push(`SLBA ${s.readUInt32LE(44)}:${s.readUInt32LE(40)}`);
        break;
      }
      case 'nlb':
        s.writeUInt16LE(rng.chance(0.5) ? rng.int(0, 64) : rng.int(0, 0xffff), 48);
        notes.push(`NLB ${s.readUInt16LE(48) + 1}`);
        break;
      case 'opcode': {
        const known = lane.kind === 'io' ? IO_KNOWN : ADMIN_KNOWN;
        s[0] = rng.chance(0.3) ? rng.pick(known) : rng.int(0, 255);
        notes.push(`opcode 0x${s[0].toString(16)}`);
        break;
      }
      case 'fctype':
        s[0] = 0x7f;
        s[4] = rng.chance(0.5) ? rng.pick([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x0c, 0x7f, 0xc0, 0xff]) : rng.int(0, 255);
        notes.push(`fabrics fctype 0x${s[4].toString(16)}`);
        break;
      case 'cdw': {
        const d = rng.pick([10, 11, 12]);
        s.writeUInt32LE((rng.chance(0.5) ? rng.edgy32() : s.readUInt32LE(d * 4) ^ (1 << rng.int(0, 31))) >>> 0, d * 4);
        notes.push(`CDW${d} 0x${s.readUInt32LE(d * 4).toString(16)}`);
        break;
      }
      case 'byte': {
        let at = rng.int(0, 63);
        if (at === 2 || at === 3) at = 5;
        s[at] = rng.int(0, 255);
        notes.push(`SQE byte ${at} = 0x${s[at]!.toString(16)}`);
        break;
      }
      case 'capsule-len': {
        const limit = capsuleLimit(P, P.ports[lane.port]!);
        const len = rng.weighted([
          [0, 1],
          [rng.int(1, 64), 2],
          [rng.int(0, limit), 2],
          [(cmd.capsule?.length ?? 0) + rng.pick([-1, 1, 16]), 2],
        ] as const);
        cmd.capsule = len > 0 ? fill(Math.min(limit, Math.max(1, len)), rng) : null;
        notes.push(`in-capsule data ${cmd.capsule?.length ?? 0}`);
        break;
      }
      case 'ddgst':
        if (cmd.capsule && cmd.capsule.length > 0) cmd.badCapsuleDdgst = true;
        else cmd.badH2cDdgst = true;
        notes.push('bad data digest');
        break;
    }
  }
  return notes;
}

/**
 * Keep long-lived lanes long-lived: no command may change the state other
 * inputs rely on (the fuzz controllers' queue count and keep-alive, CC of the
 * enabled and the disabled controller, commands in flight on other lanes).
 */
function makeSafe(s: Buffer, lane: LaneSpec): void {
  if (lane.kind === 'preconnect') return;
  const op = s[0]!;
  // Authentication Send/Receive may end the controller when a transaction fails (NVMe Base 8.3.4.5, nvmet
  // tears it down): not on long-lived lanes. Same direction bits, unknown type.
  if (op === 0x7f && (s[4] === 0x05 || s[4] === 0x06)) s[4] = s[4] | 0x40;
  if (lane.kind === 'io') return;
  if (op === 0x09) {
    const fid = s.readUInt32LE(40) & 0xff;
    if (fid === 0x07 || fid === 0x0f) s.writeUInt32LE((s.readUInt32LE(40) | 0x80000000) >>> 0, 40); // SV: refused, not applied
  }
  if (op === 0x7f && s[4] === 0x00) {
    const attrib = s.readUInt32LE(40) & 7;
    if (attrib <= 1) s.writeUInt32LE(((s.readUInt32LE(40) & ~7) | (2 + (s.readUInt32LE(44) % 6))) >>> 0, 40);
  }
  if (op === 0x08) s.writeUInt16LE(s.readUInt16LE(40) | 0x100, 40); // Abort: never a live queue
}

// ---------------------------------------------------------------- command inputs

function cmdInput(P: Profile, rng: Rng, index: number): CmdInput {
  const lane =
    LANES[
      rng.weighted([
        ['io0', 6],
        ['io0d', 4],
        ['io1', 4],
        ['io1d', 3],
        ['admin0', 4],
        ['admin1', 3],
        ['disabled', 2],
        ['disc', 2],
        ['pre0', 2],
        ['pre1', 1],
      ] as const)
    ];
  const cid = lane.kind === 'io' ? rng.int(0, 0xffff) : rng.int(0, 0xffef);
  if (lane.kind === 'preconnect') return connectInput(P, rng, index, lane, cid);
  let t: Tmpl;
  if (lane.kind === 'io') t = rwTemplate(P, rng, lane);
  else t = adminTemplate(P, rng, lane.kind === 'discovery' ? 'discovery' : 'io');
  const valid = rng.chance(0.25);
  const notes = valid ? [] : mutate(P, rng, lane, t);
  makeSafe(t.cmd.sqe, lane);
  const cls = valid ? `${lane.kind}:valid` : `${lane.kind}:${classOf(notes)}`;
  const cmd = t.cmd;
  return {
    kind: 'cmd',
    index,
    cls,
    desc: `${lane.name} cid ${cid} ${t.name}${notes.length ? ` [${notes.join(', ')}]` : ''}`,
    lane: lane.name,
    cid,
    build: () => ({ cmd }),
  };
}

function classOf(notes: string[]): string {
  const n = notes[0] ?? '';
  if (n.startsWith('SGL')) return 'sgl';
  if (n.startsWith('PSDT') || n.startsWith('FUSE') || n.startsWith('reserved')) return 'reserved-flags';
  if (n.startsWith('NSID')) return 'nsid';
  if (n.startsWith('SLBA') || n.startsWith('NLB')) return 'lba-length';
  if (n.startsWith('opcode')) return 'opcode';
  if (n.startsWith('fabrics')) return 'fctype';
  if (n.startsWith('in-capsule')) return 'capsule-data';
  if (n.startsWith('bad data digest')) return 'data-digest';
  return 'fields';
}

const BAD_NQNS: [string, () => Buffer][] = [
  ['empty', () => Buffer.alloc(0)],
  ['no "nqn." prefix', () => Buffer.from('iqn.2026-11.io.nvmets:host')],
  ['224 bytes', () => Buffer.from(`nqn.2014-08.org.nvmexpress:uuid:${'a'.repeat(224 - 33)}`)],
  ['255 bytes', () => Buffer.from(`nqn.${'b'.repeat(251)}`)],
  ['no NUL in 256 bytes', () => Buffer.from(`nqn.${'c'.repeat(252)}`)],
  ['invalid UTF-8', () => Buffer.concat([Buffer.from('nqn.2026-11.io.nvmets:'), Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0x80])])],
  ['truncated UTF-8 sequence', () => Buffer.concat([Buffer.from('nqn.2026-11.io.nvmets:host-'), Buffer.from([0xe2, 0x82])])],
  ['overlong UTF-8', () => Buffer.concat([Buffer.from('nqn.2026-11.io.nvmets:'), Buffer.from([0xc0, 0xaf])])],
];

function nqnBytes(field: Buffer, at: number, value: Buffer): void {
  field.fill(0, at, at + 256);
  value.copy(field, at, 0, Math.min(256, value.length));
}

/** Connect (admin or I/O) with bad NQNs, CNTLIDs, QIDs, SQSIZE, RECFMT, data placement; and commands before Connect. */
function connectInput(P: Profile, rng: Rng, index: number, lane: LaneSpec, cid: number): CmdInput {
  const port = P.ports[lane.port]!;
  if (rng.chance(0.15)) {
    const t = rng.chance(0.5) ? adminTemplate(P, rng, 'io') : rwTemplate(P, rng, { ...LANES.io0, port: lane.port });
    const notes = rng.chance(0.5) ? mutate(P, rng, lane, t) : [];
    const cmd = t.cmd;
    return {
      kind: 'cmd',
      index,
      cls: 'connect:before-connect',
      desc: `${lane.name} cid ${cid} ${t.name} before Connect${notes.length ? ` [${notes.join(', ')}]` : ''}`,
      lane: lane.name,
      cid,
      build: () => ({ cmd }),
    };
  }
  const admin = rng.chance(0.45);
  const notes: string[] = [];
  const subChoice = rng.weighted([
    ['main', 10],
    ['discovery', admin ? 2 : 0],
    ['restricted', 2],
    ['unknown', 1],
    ['bad', 2],
  ] as const);
  const badSub = rng.pick(BAD_NQNS);
  const hostChoice = rng.weighted([
    ['fuzz', 10],
    ['allowed', 1],
    ['other', 1],
    ['bad', 4],
  ] as const);
  const badHost = rng.pick(BAD_NQNS);
  const qidChoice = admin
    ? 'admin'
    : rng.weighted([
        ['free', 6],
        ['busy', 1],
        ['over', 1],
        ['random', 1],
      ] as const);
  const cntlChoice = admin
    ? rng.chance(0.85)
      ? 'dynamic'
      : 'random'
    : rng.weighted([
        ['fuzz', 7],
        ['other-port', 1],
        ['disabled', 1],
        ['random', 1],
      ] as const);
  const randomQid = rng.int(1, 0xffff);
  const randomCntlid = rng.int(0, 0xffff);
  const recfmt = rng.chance(0.9) ? 0 : rng.int(1, 0xffff);
  const sqsize = rng.weighted([
    [rng.int(1, Math.min(127, port.mqes)), 8],
    [0, 1],
    [port.mqes + rng.int(1, 1000), 1],
    [rng.int(0, 0xffff), 1],
  ] as const);
  const kato = rng.chance(0.7) ? 0 : rng.edgy32();
  const cattr = rng.chance(0.8) ? rng.pick([0, 4]) : rng.int(0, 255);
  const placement = rng.weighted([
    ['incapsule', 18],
    ['short-sgl', 1],
    ['long-capsule', 1],
    ['short-capsule', 1],
    ['transport', 1],
  ] as const);
  const hostid = rng.bytes(16);
  const zeroHostId = rng.chance(0.02);
  const shortSgl = rng.int(0, 1023);
  const longBy = rng.int(1, 1024);
  const shortCapsule = rng.int(0, 1023);
  notes.push(
    `sub ${subChoice === 'bad' ? `bad (${badSub[0]})` : subChoice}`,
    `host ${hostChoice === 'bad' ? `bad (${badHost[0]})` : hostChoice}`,
    `qid ${qidChoice}`,
    `cntlid ${cntlChoice}`,
  );
  if (recfmt) notes.push(`recfmt ${recfmt}`);
  notes.push(`sqsize ${sqsize}`, `kato ${kato}`, `cattr ${cattr}`, `data ${placement}`);
  const t = rng.chance(0.2) ? mutateConnectSqe(rng) : null;
  if (t) notes.push(t.note);
  const cls = `connect:${hostChoice === 'bad' || subChoice === 'bad' ? 'bad-nqn' : subChoice === 'restricted' ? 'restricted' : qidChoice === 'admin' ? 'admin' : 'io'}`;
  return {
    kind: 'cmd',
    index,
    cls,
    desc: `${lane.name} cid ${cid} ${admin ? 'admin' : 'I/O'} Connect [${notes.join(', ')}]`,
    lane: lane.name,
    cid,
    build: (rt) => {
      let release: (() => void) | undefined;
      let qid = 0;
      if (!admin) {
        if (qidChoice === 'free') {
          qid = rt.reserveQid(lane.port);
          release = () => rt.releaseQid(lane.port, qid);
        } else if (qidChoice === 'busy') qid = rt.busyQid(lane.port);
        else if (qidChoice === 'over') qid = P.maxQid + 1 + (randomQid % 1000);
        else qid = randomQid;
      }
      let cntlid = 0xffff;
      if (cntlChoice === 'random') cntlid = rt.unusedCntlid(randomCntlid);
      else if (cntlChoice === 'fuzz') cntlid = rt.fuzzCntlid(lane.port);
      else if (cntlChoice === 'other-port') cntlid = rt.fuzzCntlid(1 - lane.port);
      else if (cntlChoice === 'disabled') cntlid = rt.disabledCntlid();
      const data = Buffer.alloc(1024);
      (zeroHostId ? Buffer.alloc(16) : hostid).copy(data, 0);
      data.writeUInt16LE(cntlid, 16);
      const sub =
        subChoice === 'main'
          ? P.subnqn
          : subChoice === 'discovery'
            ? P.discoveryNqn
            : subChoice === 'restricted'
              ? P.restrictedNqn
              : subChoice === 'unknown'
                ? 'nqn.2026-11.io.nvmets:nosuch'
                : null;
      nqnBytes(data, 256, sub !== null ? Buffer.from(sub) : badSub[1]());
      const host =
        hostChoice === 'fuzz'
          ? P.hostnqn
          : hostChoice === 'allowed'
            ? P.allowedHost
            : hostChoice === 'other'
              ? 'nqn.2014-08.org.nvmexpress:uuid:99999999-0000-4000-8000-000000000009'
              : null;
      nqnBytes(data, 512, host !== null ? Buffer.from(host) : badHost[1]());
      const sqe = sqeOf({ opcode: 0x7f, nsid: 0x01, cdw: { 10: recfmt | (qid << 16), 11: sqsize | (cattr << 16), 12: kato }, sglId: 0x01, sglLen: 1024 });
      t?.apply(sqe);
      let capsule: Buffer | null = data;
      let h2c: Buffer | null = null;
      if (placement === 'short-sgl') sqe.writeUInt32LE(shortSgl, 32);
      else if (placement === 'long-capsule') capsule = Buffer.concat([data, Buffer.alloc(longBy)]);
      else if (placement === 'short-capsule') capsule = data.subarray(0, shortCapsule);
      else if (placement === 'transport') {
        sqe[39] = 0x5a;
        capsule = null;
        h2c = data;
      }
      return { cmd: { sqe, capsule, h2c }, release };
    },
  };
}

function mutateConnectSqe(rng: Rng): { note: string; apply: (s: Buffer) => void } {
  const which = rng.pick(['psdt', 'sgl-id', 'reserved', 'fctype-rsvd'] as const);
  const v = rng.int(1, 255);
  const psdt = rng.pick([0, 2, 3]);
  const id = rng.pick(SGL_IDS.filter((x) => x !== 0x01));
  const at = rng.int(52, 63);
  return {
    note: `Connect ${which}`,
    apply: (s) => {
      if (which === 'psdt') s[1] = psdt << 6;
      else if (which === 'sgl-id') s[39] = id;
      else if (which === 'reserved') s[at] = v;
      else s[5] = v;
    },
  };
}

// ---------------------------------------------------------------- connection scenarios

const rand = (rng: Rng) => ({ hdgst: rng.chance(0.4), ddgst: rng.chance(0.4) });

/** Before ICReq: ICReq fields, reserved bits, other PDUs first, garbage. */
function preIc(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const setup: Setup = { port, stage: 'tcp', hdgst: false, ddgst: false };
  const v = rng.weighted([
    ['valid', 3],
    ['fields', 3],
    ['reserved', 2],
    ['header', 3],
    ['other-first', 3],
    ['garbage', 3],
    ['silent', 1],
  ] as const);
  const base = (cls: string, desc: string, run: (d: Driver) => Promise<void>): ConnInput => ({
    kind: 'conn',
    index,
    cls: `pre-ic:${cls}`,
    desc: `port ${port}: ${desc}`,
    setup,
    run,
  });
  if (v === 'valid') {
    const dg = rand(rng);
    const b = icReq({ ...dg, hpda: rng.int(0, 31), maxr2t: rng.u32() });
    const cuts = rng.chance(0.5) ? [rng.int(1, 127)] : [];
    return base('valid', `ICReq ${JSON.stringify(dg)} in ${cuts.length + 1} writes`, async (d) => {
      let at = 0;
      for (const c of cuts) {
        d.send(b.subarray(at, c));
        at = c;
      }
      d.send(b.subarray(at));
      await d.expectIcResp(dg);
      d.fin();
      await d.expectClose();
    });
  }
  if (v === 'fields') {
    const pfv = rng.chance(0.6) ? rng.int(1, 0xffff) : 0;
    const hpda = pfv === 0 || rng.chance(0.4) ? rng.int(32, 255) : rng.int(0, 31);
    const b = icReq({ hdgst: false, ddgst: false, pfv, hpda });
    const terms: TermPattern[] = [];
    if (pfv) terms.push({ fes: 6, fei: 8 });
    if (hpda > 31) terms.push({ fes: 1, fei: 10 });
    return base('fields', `ICReq PFV ${pfv} HPDA ${hpda}`, async (d) => {
      d.send(b);
      await d.expectTerm(terms);
    });
  }
  if (v === 'reserved') {
    const b = icReq(rand(rng));
    const where = rng.pick(['flags', 'pdo', 'dgst', 'tail'] as const);
    if (where === 'flags') b[1] = rng.int(1, 255);
    else if (where === 'pdo') b[3] = rng.int(1, 255);
    else if (where === 'dgst') b[11] = b[11]! | (rng.int(1, 63) << 2);
    else b[rng.int(16, 127)] = rng.int(1, 255);
    return base('reserved', `ICReq with reserved ${where} set`, async (d) => {
      d.send(b);
      const got = await d.expectEither({ terms: [{ fes: 1 }], icresp: true });
      if (got === 'icresp') {
        d.fin();
        await d.expectClose();
      }
    });
  }
  if (v === 'header') {
    const b = icReq(rand(rng));
    if (rng.chance(0.5)) b[2] = rng.pick([0, 8, 24, 72, 127, 129, 255]);
    if (b[2] === 128 || rng.chance(0.5)) b.writeUInt32LE(rng.pick([0, 8, 24, 127, 129, 132, 256, 0xffffffff]), 4);
    const hv = checkHeader(b, { hdgst: false, ddgst: false }, { capsule: 0, h2c: 0 });
    return base('header', `ICReq HLEN ${b[2]} PLEN ${b.readUInt32LE(4)}`, async (d) => {
      d.send(b);
      await d.expectTerm(hv.terms);
    });
  }
  if (v === 'other-first') {
    const type = rng.weighted([
      [0x04, 4],
      [0x06, 2],
      [0x02, 2],
      [rng.int(0, 255), 2],
    ] as const);
    let b: Buffer;
    if (type === 0x04)
      b = capsulePdu(sqeOf({ opcode: 0x06, cdw: { 10: 1 }, sglLen: 4096 }), rng.chance(0.3) ? fill(rng.int(1, 256), rng) : null, {
        hdgst: false,
        ddgst: false,
      });
    else if (type === 0x06)
      b = h2cPdu({ cccid: rng.int(0, 0xffff), ttag: rng.int(0, 0xffff), datao: 0, last: true }, fill(rng.int(1, 512), rng), { hdgst: false, ddgst: false });
    else if (type === 0x02) b = h2cTermReq(rng.int(0, 7));
    else b = buildPdu({ type, hlen: 24, hdgst: false, ddgst: false, data: rng.chance(0.5) ? fill(16, rng) : null });
    return base('other-first', `PDU type 0x${type.toString(16)} before ICReq`, async (d) => {
      d.send(b);
      await expectWholePdu(d, b, 'await-ic', { capsule: capsuleLimit(P, P.ports[port]!), h2c: P.ports[port]!.maxh2c });
    });
  }
  if (v === 'garbage') {
    const len = rng.weighted([
      [rng.int(1, 7), 1],
      [rng.int(8, 64), 2],
      [rng.int(65, 400), 2],
    ] as const);
    const b = rng.bytes(len);
    if (rng.chance(0.5)) b[0] = rng.pick([0x00, 0x02, 0x04, 0x06]);
    return base('garbage', `${len} random bytes first ${b.subarray(0, 8).toString('hex')}`, async (d) => {
      await sendAndClassify(d, b, 'await-ic', { capsule: capsuleLimit(P, P.ports[port]!), h2c: P.ports[port]!.maxh2c });
    });
  }
  return base('silent', 'nothing, then FIN', async (d) => {
    d.fin();
    await d.expectClose();
  });
}

/**
 * Send bytes that may be anything: classify the first PDU by its header. A
 * header the spec refuses: TermReq. A valid header with fewer bytes than PLEN:
 * we FIN, the connection must just close. Otherwise exactly PLEN bytes are
 * sent and the whole PDU is judged.
 */
async function sendAndClassify(d: Driver, bytes: Buffer, state: ConnState, limits: { capsule: number; h2c: number }): Promise<void> {
  if (bytes.length < 8) {
    d.send(bytes);
    d.fin();
    await d.expectClose();
    return;
  }
  const hv = checkHeader(bytes, d.wire, limits);
  if (hv.terms.length > 0) {
    d.send(bytes);
    await d.expectTerm([...hv.terms, ...hv.optionalTerms]);
    return;
  }
  const plen = bytes.readUInt32LE(4);
  if (bytes.length < plen) {
    d.send(bytes);
    // A data PDU whose header, digest and padding are all in has its header
    // digest checked then, before its data (as Linux's nvmet does): a bad one
    // is answered at once. Otherwise the target waits for the rest, and the close.
    const hlen = bytes[2]!;
    const pdo = bytes[3]!;
    if (bytes[1]! & 1 && hv.dataLength > 0 && bytes.length >= pdo && pdo >= hlen + 4 && bytes.readUInt32LE(hlen) !== crc(bytes.subarray(0, hlen))) {
      await d.expectTerm([{ fes: 3, fei: bytes.readUInt32LE(hlen) }, ...hv.optionalTerms]);
      return;
    }
    d.fin();
    await d.expectClose({ allowTerm: hv.optionalTerms });
    return;
  }
  const pdu = bytes.subarray(0, plen);
  d.send(pdu);
  await expectWholePdu(d, pdu, state, limits);
}

/** The outcome of one complete PDU whose common header is acceptable. */
async function expectWholePdu(d: Driver, pdu: Buffer, state: ConnState, limits: { capsule: number; h2c: number }): Promise<void> {
  const hv = checkHeader(pdu, d.wire, limits);
  if (hv.terms.length > 0) return d.expectTerm([...hv.terms, ...hv.optionalTerms]);
  const type = pdu[0]!;
  const hlen = pdu[2]!;
  const flags = pdu[1]!;
  const opt = hv.optionalTerms;
  if (type === 0x02) return d.expectClose({ allowTerm: opt });
  if (type === 0x00) {
    if (state !== 'await-ic') return d.expectTerm([{ fes: 2 }, ...opt]);
    const terms: TermPattern[] = [];
    if (pdu.readUInt16LE(8) !== 0) terms.push({ fes: 6, fei: 8 });
    if (pdu[10]! > 31) terms.push({ fes: 1, fei: 10 });
    if (terms.length) return d.expectTerm([...terms, ...opt]);
    const got = await d.expectEither({ terms: [{ fes: 1 }, ...opt], icresp: true });
    if (got === 'icresp') {
      d.fin();
      await d.expectClose();
    }
    return;
  }
  // IC and Term PDUs carry no digest; the others have theirs checked once complete (FEI: the digest received).
  if (flags & 1 && pdu.length >= hlen + 4 && pdu.readUInt32LE(hlen) !== crc(pdu.subarray(0, hlen))) {
    return d.expectTerm([{ fes: 3, fei: pdu.readUInt32LE(hlen) }, ...(state === 'await-ic' ? [{ fes: 2 }] : []), ...opt]);
  }
  if (state === 'await-ic') return d.expectTerm([{ fes: 2 }, ...opt]);
  const dataStart = hv.dataLength > 0 ? pdu[3]! : pdu.length;
  const dd = (flags & 2) !== 0;
  const data = pdu.subarray(dataStart, Math.max(dataStart, pdu.length - (dd ? 4 : 0)));
  if (type === 0x06) {
    const terms: TermPattern[] = [];
    const datal = pdu.readUInt32LE(16);
    if (datal !== data.length || datal === 0) terms.push({ fes: 1, fei: 16 });
    if (state !== 'live') terms.push({ fes: 2 });
    else terms.push({ fes: 1, fei: 10 }); // no R2T is outstanding on this connection
    return d.expectTerm([...terms, ...opt]);
  }
  // CapsuleCmd on a live I/O queue: judged as a command.
  const hasData = pdu.length > hlen + (flags & 1 ? 4 : 0);
  const badDd = dd && hasData && pdu.readUInt32LE(pdu.length - 4) !== crc(data);
  const sqe = Buffer.from(pdu.subarray(8, 72));
  const e = expectCommand(
    d.P,
    { kind: state === 'live' ? 'io' : 'preconnect', port: d.port },
    { sqe, capsule: data.length || badDd ? data : null, h2c: null, badCapsuleDdgst: badDd },
  );
  const got = await d.expectEither({ terms: opt, resp: { cid: sqe.readUInt16LE(2), accept: e.accept } });
  if (got === 'resp') {
    d.fin();
    await d.expectClose();
  }
}

/** Common-header fields mutated on a live I/O queue. */
function header(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const dg = rand(rng);
  const setup: Setup = { port, stage: 'io', ...dg };
  const limits = { capsule: capsuleLimit(P, P.ports[port]!), h2c: P.ports[port]!.maxh2c };
  const what = rng.weighted([
    ['capsule', 6],
    ['h2c', 2],
    ['icreq', 1],
    ['termreq', 1],
    ['type', 1],
  ] as const);
  const notes: string[] = [what];
  const cid = rng.int(0, 0xffff);
  const flush = sqeOf({ opcode: 0x00, nsid: 1 });
  flush.writeUInt16LE(cid, 2);
  const dataLen = rng.chance(0.4) ? rng.int(1, 300) : 0;
  const data = dataLen ? fill(dataLen, rng) : null;
  const pad = rng.chance(0.1) ? rng.int(1, 16) : 0;
  const spec: Parameters<typeof buildPdu>[0] =
    what === 'capsule'
      ? { type: 0x04, hlen: 72, fill: (h) => flush.copy(h, 8), data, pad, ...dg }
      : what === 'h2c'
        ? {
            type: 0x06,
            hlen: 24,
            flags: 0x04,
            fill: (h) => {
              h.writeUInt16LE(cid, 8);
              h.writeUInt32LE(dataLen, 16);
            },
            data,
            ...dg,
          }
        : what === 'icreq'
          ? { type: 0x00, hlen: 128, fill: () => undefined, hdgst: false, ddgst: false }
          : what === 'termreq'
            ? { type: 0x02, hlen: 24, fill: (h) => h.writeUInt16LE(rng.int(0, 6), 8), hdgst: false, ddgst: false }
            : { type: rng.int(0, 255), hlen: 24, data, ...dg };
  const nm = rng.weighted([
    [1, 5],
    [2, 2],
    [0, 1],
  ] as const);
  for (let i = 0; i < nm; i++) {
    const f = rng.pick(['flags', 'hlen', 'pdo', 'plen', 'type', 'hdgst'] as const);
    if (f === 'flags') spec.forceFlags = rng.chance(0.5) ? rng.int(0, 255) : (dg.hdgst ? 1 : 0) | (dg.ddgst && data ? 2 : 0) | (1 << rng.int(0, 7));
    else if (f === 'hlen') spec.hlenField = rng.pick([0, 8, 23, 25, 64, 71, 73, 128, 255]);
    else if (f === 'pdo') spec.pdo = rng.int(0, 255);
    else if (f === 'plen')
      spec.plen = rng.weighted([
        [rng.int(0, 100), 2],
        [rng.int(100, 20000), 1],
        [rng.edgy32(), 1],
      ] as const);
    else if (f === 'type') spec.typeField = rng.pick([0x00, 0x01, 0x03, 0x05, 0x07, 0x08, 0x09, 0x0a, 0x80, 0xff]);
    else spec.badHdgst = dg.hdgst;
    notes.push(f);
  }
  const bytes = buildPdu(spec);
  return {
    kind: 'conn',
    index,
    cls: 'header',
    desc: `port ${port} ${JSON.stringify(dg)}: ${notes.join(' ')} -> ${bytes.subarray(0, 8).toString('hex')}`,
    setup,
    run: (d) => sendAndClassify(d, bytes, 'live', limits),
  };
}

/** Header digest errors (FES 3, FEI = the digest received). */
function hdgst(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const setup: Setup = { port, stage: 'io', hdgst: true, ddgst: rng.chance(0.5) };
  const onH2C = rng.chance(0.3);
  const cid = rng.int(0, 0xffff);
  const L = 512 * rng.int(1, 16);
  return {
    kind: 'conn',
    index,
    cls: 'hdgst',
    desc: `port ${port}: bad header digest on ${onH2C ? 'H2CData' : 'CapsuleCmd'}`,
    setup,
    run: async (d) => {
      let b: Buffer;
      if (onH2C) {
        const w = sqeOf({ opcode: 0x01, nsid: 1, cdw: { 12: L / 512 - 1 }, sglLen: L });
        w.writeUInt16LE(cid, 2);
        d.send(capsulePdu(w, null, d.wire));
        const r = await d.expectR2T(cid);
        b = h2cPdu({ cccid: cid, ttag: r.ttag, datao: 0, last: true }, Buffer.alloc(L), d.wire, { badHdgst: true });
      } else {
        const s = sqeOf({ opcode: 0x02, nsid: 1, cdw: { 12: L / 512 - 1 }, sglLen: L });
        s.writeUInt16LE(cid, 2);
        b = capsulePdu(s, null, d.wire, { badHdgst: true });
      }
      d.send(b);
      await d.expectTerm([{ fes: 3, fei: b.readUInt32LE(b[2]) }]);
    },
  };
}

/** R2T / H2CData: wrong TTAG, CCCID, offsets, lengths, LAST, sizes, digests; H2CData without R2T. */
function h2c(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const dg = rand(rng);
  const v = rng.weighted([
    ['valid', 2],
    ['ttag', 2],
    ['cccid', 2],
    ['gap', 1],
    ['overlap', 1],
    ['beyond', 2],
    ['last-missing', 1],
    ['last-early', 1],
    ['datal', 2],
    ['zero', 1],
    ['too-big', 2],
    ['bad-ddgst', dg.ddgst ? 2 : 0],
    ['after-done', 1],
    ['no-r2t', 2],
    ['before-connect', 1],
  ] as const);
  const setup: Setup = { port, stage: v === 'before-connect' ? 'ic' : 'io', ...dg };
  const cid = rng.int(0, 0xffff);
  const ns = rng.pick(P.namespaces);
  const nlb = rng.int(1, Math.max(1, Math.floor(65536 / ns.bs)));
  const L = nlb * ns.bs;
  const slba = rng.int(0, ns.nblocks - nlb);
  const xorTtag = rng.int(1, 0xffff);
  const xorCid = rng.int(1, 0xffff);
  const pickChunk = rng.float();
  return {
    kind: 'conn',
    index,
    cls: `h2cdata:${v}`,
    desc: `port ${port} ${JSON.stringify(dg)}: write ns${ns.nsid} ${slba}+${nlb} (${L} bytes) cid ${cid}, H2CData ${v}`,
    setup,
    run: async (d) => {
      if (v === 'no-r2t' || v === 'before-connect') {
        d.send(h2cPdu({ cccid: cid, ttag: xorTtag, datao: 0, last: true }, Buffer.alloc(Math.min(L, d.maxh2c || 4096)), d.wire));
        await d.expectTerm(v === 'no-r2t' ? [{ fes: 1, fei: 10 }] : [{ fes: 2 }]);
        return;
      }
      const w = sqeOf({ opcode: 0x01, nsid: ns.nsid, cdw: { 10: slba, 12: nlb - 1 }, sglLen: L });
      w.writeUInt16LE(cid, 2);
      d.send(capsulePdu(w, null, d.wire));
      const r = await d.expectR2T(cid);
      if (r.r2to !== 0 || r.r2tl === 0 || r.r2to + r.r2tl > L) throw new Error(`R2T R2TO ${r.r2to} R2TL ${r.r2tl} for a ${L}-byte write`);
      const chunk = d.maxh2c;
      const chunks: { off: number; len: number }[] = [];
      for (let off = r.r2to; off < r.r2to + r.r2tl; off += chunk) chunks.push({ off, len: Math.min(chunk, r.r2to + r.r2tl - off) });
      const bad = Math.floor(pickChunk * chunks.length);
      const end = r.r2to + r.r2tl;
      const send = (i: number, o: { ttag?: number; cccid?: number; datao?: number; len?: number; last?: boolean; datal?: number; badDdgst?: boolean } = {}) => {
        const c = chunks[i]!;
        const len = o.len ?? c.len;
        const off = o.datao ?? c.off;
        d.send(
          h2cPdu(
            { cccid: o.cccid ?? cid, ttag: o.ttag ?? r.ttag, datao: off, last: o.last ?? off + len >= end, datal: o.datal },
            Buffer.alloc(len, 0xa5),
            d.wire,
            { badDdgst: o.badDdgst },
          ),
        );
      };
      for (let i = 0; i < bad; i++) send(i);
      switch (v) {
        case 'valid':
        case 'after-done':
        case 'bad-ddgst':
          for (let i = bad; i < chunks.length; i++) send(i, { badDdgst: v === 'bad-ddgst' && i === bad });
          await d.expectResp(cid, v === 'bad-ddgst' ? [{ sc: SC.transient, dnr: false }] : [{ sc: SC.ok }]);
          if (v === 'after-done') {
            send(0);
            await d.expectTerm([{ fes: 1, fei: 10 }]);
            return;
          }
          d.fin();
          await d.expectClose();
          return;
        case 'ttag':
          send(bad, { ttag: r.ttag ^ xorTtag });
          return d.expectTerm([{ fes: 1, fei: 10 }]);
        case 'cccid':
          send(bad, { cccid: cid ^ xorCid });
          return d.expectTerm([{ fes: 1, fei: 8 }]);
        case 'gap': {
          // The offset skips data: out of range (LAST is consistent with the PDU's own end).
          const datao = chunks[bad]!.off + 4 * (1 + (xorCid % 64));
          send(bad, { datao, len: Math.max(1, Math.min(chunks[bad]!.len, end - datao)) });
          return d.expectTerm([{ fes: 4 }]);
        }
        case 'overlap':
          if (bad === 0) {
            send(0, { datao: 0, len: Math.min(chunks[0]!.len, 4), last: false });
            send(0, { datao: 0, len: chunks[0]!.len });
          } else send(bad, { datao: chunks[bad]!.off - 4 });
          return d.expectTerm([{ fes: 4 }]);
        case 'beyond': {
          // The final PDU runs past the end of what the R2T asked for.
          const last = chunks.length - 1;
          for (let i = bad; i < last; i++) send(i);
          const extra = 1 + (xorCid % 512);
          const m = Math.min(end - chunks[last]!.off, d.maxh2c - extra);
          if (end - m > chunks[last]!.off) send(last, { len: end - m - chunks[last]!.off, last: false });
          send(last, { datao: end - m, len: m + extra, last: true });
          return d.expectTerm([{ fes: 4 }]);
        }
        case 'last-missing':
          for (let i = bad; i < chunks.length - 1; i++) send(i);
          send(chunks.length - 1, { last: false });
          return d.expectTerm([{ fes: 1 }]);
        case 'last-early':
          if (bad === chunks.length - 1) send(bad, { len: chunks[bad]!.len - 4, last: true });
          else send(bad, { last: true });
          return d.expectTerm([{ fes: 1 }]);
        case 'datal':
          send(bad, { datal: chunks[bad]!.len + (xorCid % 2 ? 4 : -4) });
          return d.expectTerm([{ fes: 1, fei: 16 }]);
        case 'zero':
          d.send(h2cPdu({ cccid: cid, ttag: r.ttag, datao: chunks[bad]!.off, last: false }, Buffer.alloc(0), d.wire));
          return d.expectTerm([{ fes: 1, fei: 16 }, { fes: 4 }]);
        case 'too-big': {
          const big = h2cPdu({ cccid: cid, ttag: r.ttag, datao: chunks[bad]!.off, last: false }, Buffer.alloc(d.maxh2c + 4 * (1 + (xorCid % 1024))), d.wire);
          d.send(big.subarray(0, 24 + (d.wire.hdgst ? 4 : 0)));
          return d.expectTerm([{ fes: 5 }], { withinMs: 1500 });
        }
      }
    },
  };
}

/** PDUs claiming more than the port accepts: refused from the header alone, at once. */
function oversize(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const dg = rand(rng);
  const pp = P.ports[port]!;
  const limit = capsuleLimit(P, pp);
  const v = rng.weighted([
    ['capsule-plen', 3],
    ['capsule-data', 2],
    ['h2c-plen', 2],
    ['icreq-plen', 1],
  ] as const);
  const plen = rng.chance(0.3) ? 0xfffffff0 : rng.int(limit + 200, 0xffffffff);
  const setup: Setup = { port, stage: 'io', ...dg };
  return {
    kind: 'conn',
    index,
    cls: `oversize:${v}`,
    desc: `port ${port} ${JSON.stringify(dg)}: ${v} PLEN ${plen}`,
    setup,
    run: async (d) => {
      const hd = d.wire.hdgst ? 4 : 0;
      const dd = d.wire.ddgst ? 4 : 0;
      if (v === 'capsule-data') {
        const n = limit + 1 + (plen % 4096);
        const b = capsulePdu(sqeOf({ opcode: 0x01, nsid: 1, sglId: 0x01, sglLen: n }), Buffer.alloc(n), d.wire);
        d.send(b);
        await d.expectTerm([{ fes: 5 }, { fes: 1 }]);
        return;
      }
      let h: Buffer;
      if (v === 'icreq-plen') {
        h = icReq({ hdgst: false, ddgst: false });
        h.writeUInt32LE(plen, 4);
        d.send(h);
        await d.expectTerm([{ fes: 1, fei: 4 }, { fes: 2 }]);
        return;
      }
      if (v === 'capsule-plen') h = capsulePdu(sqeOf({ opcode: 0x01, nsid: 1, sglId: 0x01, sglLen: 4096 }), null, d.wire, { pdo: 72 + hd, plen });
      else
        h = h2cPdu({ cccid: 1, ttag: 1, datao: 0, last: true }, Buffer.alloc(0), d.wire, {
          pdo: 24 + hd,
          plen,
          forceFlags: (d.wire.hdgst ? 1 : 0) | (dd ? 2 : 0) | 4,
        });
      d.send(h);
      const hv = checkHeader(h, d.wire, { capsule: limit, h2c: pp.maxh2c });
      await d.expectTerm(hv.terms.length ? hv.terms : [{ fes: 5 }], { withinMs: 1500 });
    },
  };
}

/** A PDU cut short, then FIN: the connection just closes. */
function truncated(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const dg = rand(rng);
  const v = rng.weighted([
    ['capsule', 3],
    ['h2c', 2],
    ['icreq', 1],
  ] as const);
  const setup: Setup = { port, stage: v === 'icreq' ? 'tcp' : 'io', ...dg };
  const cut = rng.float();
  const cid = rng.int(0, 0xffff);
  return {
    kind: 'conn',
    index,
    cls: `truncated:${v}`,
    desc: `port ${port} ${JSON.stringify(dg)}: ${v} cut at ${cut.toFixed(3)}, then FIN`,
    setup,
    run: async (d) => {
      let b: Buffer;
      if (v === 'icreq') b = icReq({ hdgst: false, ddgst: false });
      else if (v === 'capsule') {
        const s = sqeOf({ opcode: 0x01, nsid: 1, cdw: { 12: 7 }, sglId: 0x01, sglLen: 4096 });
        s.writeUInt16LE(cid, 2);
        b = capsulePdu(s, Buffer.alloc(4096, 1), d.wire);
      } else {
        const s = sqeOf({ opcode: 0x01, nsid: 1, cdw: { 12: 15 }, sglLen: 8192 });
        s.writeUInt16LE(cid, 2);
        d.send(capsulePdu(s, null, d.wire));
        const r = await d.expectR2T(cid);
        b = h2cPdu({ cccid: cid, ttag: r.ttag, datao: 0, last: r.r2tl <= d.maxh2c }, Buffer.alloc(Math.min(r.r2tl, d.maxh2c)), d.wire);
      }
      d.send(b.subarray(0, Math.max(1, Math.floor(cut * (b.length - 1)))));
      d.fin();
      await d.expectClose();
    },
  };
}

/** A partial PDU, or an R2T never answered in full, and then silence: closed by the stall timeout. */
function stall(P: Profile, rng: Rng, index: number, stallMs: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const dg = rand(rng);
  const v = rng.weighted([
    ['partial-pdu', 2],
    ['r2t-none', 1],
    ['r2t-partial', 1],
    ['header-only', 1],
  ] as const);
  const setup: Setup = { port, stage: 'io', ...dg };
  const cid = rng.int(0, 0xffff);
  return {
    kind: 'conn',
    index,
    cls: `stall:${v}`,
    desc: `port ${port} ${JSON.stringify(dg)}: ${v}, then silence`,
    setup,
    run: async (d) => {
      const started = Date.now();
      if (v === 'partial-pdu' || v === 'header-only') {
        const s = sqeOf({ opcode: 0x01, nsid: 1, cdw: { 12: 7 }, sglId: 0x01, sglLen: 4096 });
        const b = capsulePdu(s, Buffer.alloc(4096), d.wire);
        d.send(b.subarray(0, v === 'header-only' ? 8 : 72 + 100));
      } else {
        const s = sqeOf({ opcode: 0x01, nsid: 1, cdw: { 12: 31 }, sglLen: 16384 });
        s.writeUInt16LE(cid, 2);
        d.send(capsulePdu(s, null, d.wire));
        const r = await d.expectR2T(cid);
        if (v === 'r2t-partial') d.send(h2cPdu({ cccid: cid, ttag: r.ttag, datao: 0, last: false }, Buffer.alloc(Math.min(4096, r.r2tl - 4)), d.wire));
      }
      await d.expectClose({ withinMs: stallMs + 3000, minMs: Math.max(0, stallMs * 0.9 - (Date.now() - started)) });
    },
  };
}

/** More AERs than AERL allows: the first AERL+1 stay outstanding, the rest fail with AER Limit Exceeded. */
function aerFlood(P: Profile, rng: Rng, index: number): ConnInput {
  const stage = rng.weighted([
    ['enabled', 3],
    ['discovery', 1],
    ['admin', 1],
  ] as const);
  const port = rng.int(0, P.ports.length - 1);
  const setup: Setup = { port, stage, ...rand(rng) };
  const k = rng.int(1, 40);
  const base = rng.int(0, 0xff00);
  const cids = Array.from({ length: k }, (_, i) => (base + i * 7) & 0xffff);
  const kaAt = rng.chance(0.3) ? rng.int(0, k) : -1;
  return {
    kind: 'conn',
    index,
    cls: `aer-flood:${stage}`,
    desc: `port ${port} ${stage} controller: ${k} AERs${kaAt >= 0 ? `, Keep Alive after ${kaAt}` : ''}`,
    setup,
    run: async (d) => {
      const parts: Buffer[] = [];
      const kaCid = (base + 0x8000) & 0xffff;
      cids.forEach((cid, i) => {
        if (i === kaAt) parts.push(capsulePdu(withCid(sqeOf({ opcode: 0x18 }), kaCid), null, d.wire));
        parts.push(capsulePdu(withCid(sqeOf({ opcode: 0x0c }), cid), null, d.wire));
      });
      if (kaAt === k) parts.push(capsulePdu(withCid(sqeOf({ opcode: 0x18 }), kaCid), null, d.wire));
      d.send(Buffer.concat(parts));
      const order: { cid: number; sc: number }[] = [];
      cids.forEach((cid, i) => {
        if (i === kaAt) order.push({ cid: kaCid, sc: stage === 'admin' ? SC.seqError : SC.ok });
        if (stage === 'admin') order.push({ cid, sc: SC.seqError });
        else if (i >= P.aerSlots) order.push({ cid, sc: SC.aerLimit });
      });
      if (kaAt === k) order.push({ cid: kaCid, sc: stage === 'admin' ? SC.seqError : SC.ok });
      for (const o of order) await d.expectResp(o.cid, [{ sc: o.sc }]);
      await d.expectQuiet(20);
      d.fin();
      await d.expectClose();
    },
  };
}

function withCid(s: Buffer, cid: number): Buffer {
  s.writeUInt16LE(cid & 0xffff, 2);
  return s;
}

/** Property writes in any order on a controller not enabled: each answer, then CSTS and command acceptance follow the CC model. */
function propertySeq(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const setup: Setup = { port, stage: 'admin', ...rand(rng) };
  const VALID = 0x00460001;
  type Op =
    | { kind: 'set-cc'; v: number }
    | { kind: 'set-bad'; attrib: number; off: number }
    | { kind: 'get'; size: 4 | 8; off: number }
    | { kind: 'identify' }
    | { kind: 'ka' };
  const ops: Op[] = [];
  const n = rng.int(1, 12);
  for (let i = 0; i < n; i++) {
    ops.push(
      rng.weighted<Op>([
        [
          {
            kind: 'set-cc',
            v: rng.weighted([
              [VALID, 4],
              [VALID & ~1, 2],
              [VALID | (rng.int(1, 2) << 14), 2],
              [(VALID & ~0x00ff0000) | (rng.int(0, 255) << 16), 1],
              [VALID | (rng.int(1, 7) << 4), 1],
              [VALID | (rng.int(1, 15) << 7), 1],
              [rng.u32(), 2],
            ] as const),
          },
          6,
        ],
        [{ kind: 'set-bad', attrib: rng.pick([0, 1, 2, 7]), off: rng.pick([0x00, 0x08, 0x1c, 0x20, 0x14]) }, 1],
        [{ kind: 'get', size: 4, off: 0x1c }, 3],
        [{ kind: 'get', size: 4, off: 0x14 }, 1],
        [{ kind: 'get', size: 8, off: 0x00 }, 1],
        [{ kind: 'get', size: rng.pick([4, 8] as const), off: rng.int(0, 0x40) & ~3 }, 1],
        [{ kind: 'identify' }, 2],
        [{ kind: 'ka' }, 1],
      ]),
    );
  }
  return {
    kind: 'conn',
    index,
    cls: 'property-seq',
    desc: `port ${port}: ${ops.map((o) => (o.kind === 'set-cc' ? `CC=0x${(o.v >>> 0).toString(16)}` : o.kind === 'get' ? `get${o.size}@0x${o.off.toString(16)}` : o.kind === 'set-bad' ? `set a${o.attrib}@0x${o.off.toString(16)}` : o.kind)).join(' ')}`,
    setup,
    run: async (d) => {
      // The model (NVMe Base 3.1, 7.6.1/7.6.2): CC.EN 0->1 with supported CSS/MPS/IOSQES/IOCQES makes the controller
      // ready; unsupported values leave it not ready (CSTS.CFS may be set); EN 1->0 resets CSTS; SHN starts a shutdown.
      let cc = 0;
      let ready = false;
      let badEnable = false;
      let cid = rng.int(0, 0x7fff);
      for (const op of ops) {
        cid = (cid + 1) & 0xffff;
        if (op.kind === 'set-cc') {
          d.send(capsulePdu(withCid(sqeOf({ opcode: 0x7f, nsid: 0x00, cdw: { 10: 0, 11: 0x14, 12: op.v } }), cid), null, d.wire));
          await d.expectResp(cid, [{ sc: SC.ok }]);
          const prevEn = (cc & 1) === 1;
          const nextEn = (op.v & 1) === 1;
          if (nextEn && !prevEn) {
            const css = (op.v >>> 4) & 7;
            const mps = (op.v >>> 7) & 0xf;
            const iosqes = (op.v >>> 16) & 0xf;
            const iocqes = (op.v >>> 20) & 0xf;
            const ok = css === 0 && mps === 0 && iosqes === 6 && iocqes === 4;
            ready = ok;
            badEnable = !ok;
          } else if (!nextEn && prevEn) {
            ready = false;
            badEnable = false;
          }
          cc = op.v >>> 0;
        } else if (op.kind === 'set-bad') {
          if (op.attrib === 0 && op.off === 0x14) op.attrib = 2; // CC with size 4 would be valid
          d.send(capsulePdu(withCid(sqeOf({ opcode: 0x7f, nsid: 0x00, cdw: { 10: op.attrib, 11: op.off, 12: 1 } }), cid), null, d.wire));
          const valid = op.attrib === 0 && op.off === 0x14;
          if (valid) throw new Error('generator: set-bad must be invalid');
          await d.expectResp(cid, [{ sc: SC.invalidField }]);
        } else if (op.kind === 'get') {
          d.send(capsulePdu(withCid(sqeOf({ opcode: 0x7f, nsid: 0x04, cdw: { 10: op.size === 8 ? 1 : 0, 11: op.off } }), cid), null, d.wire));
          const known = op.size === 8 ? op.off === 0 : [0x08, 0x14, 0x1c].includes(op.off);
          if (!known) {
            await d.expectResp(cid, [{ sc: SC.invalidField }]);
            continue;
          }
          const r = await d.expectResp(cid, [{ sc: SC.ok }]);
          if (op.size === 8 && (r.dw0 & 0xffff) !== d.P.ports[port]!.mqes) throw new Error(`CAP.MQES ${r.dw0 & 0xffff}, expected ${d.P.ports[port]!.mqes}`);
          if (op.off === 0x14 && r.dw0 >>> 0 !== cc && r.dw0 >>> 0 !== (cc & 0x01fffff1) >>> 0)
            throw new Error(`CC reads 0x${(r.dw0 >>> 0).toString(16)}, written 0x${cc.toString(16)}`);
          if (op.off === 0x1c && op.size === 4) {
            const rdy = r.dw0 & 1;
            const cfs = (r.dw0 >>> 1) & 1;
            const shst = (r.dw0 >>> 2) & 3;
            const shn = (cc >>> 14) & 3;
            if (rdy !== (ready ? 1 : 0)) throw new Error(`CSTS.RDY ${rdy}, expected ${ready ? 1 : 0} (CC 0x${cc.toString(16)})`);
            if (cfs && !badEnable) throw new Error(`CSTS.CFS set without a failed enable (CC 0x${cc.toString(16)})`);
            if (shn === 0 && shst !== 0) throw new Error(`CSTS.SHST ${shst} without a shutdown request`);
            if (shst === 3) throw new Error('CSTS.SHST 11b (reserved)');
          }
        } else {
          const s = op.kind === 'identify' ? sqeOf({ opcode: 0x06, cdw: { 10: 1 }, sglLen: 4096 }) : sqeOf({ opcode: 0x18 });
          d.send(capsulePdu(withCid(s, cid), null, d.wire));
          await d.expectResp(cid, [ready ? { sc: SC.ok, data: op.kind === 'identify' ? 4096 : undefined } : { sc: SC.seqError }]);
        }
      }
      d.fin();
      await d.expectClose();
    },
  };
}

/**
 * A command id reused while the first command is in flight: Command ID Conflict, the first unaffected.
 * On the admin queue the first is a parked AER: the host abandoned it, so the reuse executes (Keep Alive: success).
 */
function dupCid(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const onAdmin = rng.chance(0.25);
  const setup: Setup = { port, stage: onAdmin ? 'enabled' : 'io', ...rand(rng) };
  const cid = rng.int(0, 0xffff);
  const k = rng.int(1, 3);
  const kinds = Array.from({ length: k }, () => (onAdmin ? 'ka' : rng.pick(['read', 'flush', 'write-ic', 'ka'] as const)));
  return {
    kind: 'conn',
    index,
    cls: `dup-cid:${onAdmin ? 'admin' : 'io'}`,
    desc: `port ${port}: cid ${cid} reused ${k} times (${kinds.join(', ')}) while ${onAdmin ? 'an AER' : 'a write waiting for its data'} holds it`,
    setup,
    run: async (d) => {
      if (onAdmin) d.send(capsulePdu(withCid(sqeOf({ opcode: 0x0c }), cid), null, d.wire));
      else d.send(capsulePdu(withCid(sqeOf({ opcode: 0x01, nsid: 1, cdw: { 12: 7 }, sglLen: 4096 }), cid), null, d.wire));
      const r = onAdmin ? null : await d.expectR2T(cid);
      if (onAdmin) await d.expectQuiet(10);
      for (const kind of kinds) {
        const s =
          kind === 'read'
            ? sqeOf({ opcode: 0x02, nsid: 1, sglLen: 512 })
            : kind === 'flush'
              ? sqeOf({ opcode: 0x00, nsid: 1 })
              : kind === 'ka'
                ? sqeOf({ opcode: 0x18 })
                : sqeOf({ opcode: 0x01, nsid: 1, sglId: 0x01, sglLen: 512 });
        d.send(capsulePdu(withCid(s, cid), kind === 'write-ic' ? Buffer.alloc(512) : null, d.wire));
        await d.expectResp(cid, [{ sc: onAdmin ? SC.ok : SC.cidConflict }]);
      }
      if (r) {
        d.send(h2cPdu({ cccid: cid, ttag: r.ttag, datao: 0, last: true }, Buffer.alloc(4096), d.wire));
        await d.expectResp(cid, [{ sc: SC.ok }]);
      }
      d.fin();
      await d.expectClose();
    },
  };
}

/**
 * More commands outstanding than the queue holds. Up to SQSIZE+1 must be
 * accepted; the target allows twice that (as Linux nvmet allocates) and
 * terminates the connection beyond it.
 */
function queueDepth(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const sqsize = rng.int(1, 15);
  const setup: Setup = { port, stage: 'io', ...rand(rng), sqsize };
  const entries = sqsize + 1;
  const n = rng.weighted([
    [rng.int(1, entries), 2],
    [rng.int(entries + 1, 2 * entries), 1],
    [rng.int(2 * entries + 1, 3 * entries + 2), 2],
  ] as const);
  const base = rng.int(0, 0xffff);
  return {
    kind: 'conn',
    index,
    cls: `queue-depth:${n <= entries ? 'within' : n <= 2 * entries ? 'slack' : 'over'}`,
    desc: `port ${port}: SQSIZE ${sqsize}, ${n} writes outstanding`,
    setup,
    run: async (d) => {
      const cids = Array.from({ length: n }, (_, i) => (base + i) & 0xffff);
      d.send(Buffer.concat(cids.map((cid) => capsulePdu(withCid(sqeOf({ opcode: 0x01, nsid: 1, cdw: { 12: 7 }, sglLen: 4096 }), cid), null, d.wire))));
      if (n <= entries) {
        for (const cid of cids) await d.expectR2T(cid);
        d.fin();
        await d.expectClose();
      } else if (n > 2 * entries) {
        await d.expectTerm([{ fes: 2 }, { fes: 5 }], { allowR2T: true });
      } else {
        // Beyond SQSIZE+1 and within the target's slack: all accepted, or the connection terminated.
        const got = await d.r2tsOrTerm(n, [{ fes: 2 }, { fes: 5 }]);
        if (got === 'all') {
          d.fin();
          await d.expectClose();
        }
      }
    },
  };
}

/** H2CTermReq from the host, in any state: the controller closes without answering. */
function hostTerm(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const stage = rng.pick(['tcp', 'ic', 'io', 'enabled'] as const);
  const setup: Setup = { port, stage, ...rand(rng) };
  const plen = rng.chance(0.8) ? rng.int(24, 152) : rng.pick([0, 8, 23, 153, 1000, 0xffffffff]);
  const fes = rng.chance(0.7) ? rng.int(1, 6) : rng.int(0, 0xffff);
  return {
    kind: 'conn',
    index,
    cls: 'h2ctermreq',
    desc: `port ${port} ${stage}: H2CTermReq FES ${fes} PLEN ${plen}`,
    setup,
    run: async (d) => {
      const b = Buffer.alloc(plen >= 24 && plen <= 152 ? plen : 24);
      b[0] = 0x02;
      b[2] = 24;
      b[3] = plen > 24 && plen <= 152 ? 24 : 0;
      b.writeUInt32LE(plen >>> 0, 4);
      b.writeUInt16LE(fes, 8);
      d.send(b);
      if (plen < 24 || plen > 152) await d.expectEither({ terms: [{ fes: 1, fei: 4 }], close: true });
      else await d.expectClose();
    },
  };
}

/** Many large writes at once: R2T buffers stay within the connection's budget (memory bounded). */
function r2tFlood(P: Profile, rng: Rng, index: number): ConnInput {
  const port = rng.int(0, P.ports.length - 1);
  const setup: Setup = { port, stage: 'io', hdgst: false, ddgst: false, sqsize: 127 };
  const n = rng.int(16, 200);
  const L = P.mdtsBytes;
  return {
    kind: 'conn',
    index,
    cls: 'r2t-flood',
    desc: `port ${port}: ${n} writes of ${L} bytes with no data sent`,
    setup,
    run: async (d) => {
      d.send(
        Buffer.concat(
          Array.from({ length: n }, (_, i) => capsulePdu(withCid(sqeOf({ opcode: 0x01, nsid: 1, cdw: { 12: L / 512 - 1 }, sglLen: L }), i), null, d.wire)),
        ),
      );
      await d.expectR2T(0);
      const got = 1 + (await d.countR2T(300));
      // The specification lets the controller pace R2Ts; this target keeps at most R2T_BUFFER_BUDGET (8 MiB) of R2T buffers per connection.
      if (got < 1 || got > Math.max(1, Math.floor((8 * 1024 * 1024) / L))) throw new Error(`${got} R2Ts outstanding for ${n} writes of ${L} bytes`);
      d.fin();
      await d.expectClose();
    },
  };
}

// ---------------------------------------------------------------- the mix

export interface GenOptions {
  stallTimeoutMs: number;
  /** Weight of scenario inputs (fresh connections) against lane commands. */
  connShare: number;
}

export function generate(P: Profile, seed: string, index: number, o: GenOptions): Input {
  const rng = new Rng(seed, index);
  if (!rng.chance(o.connShare)) return cmdInput(P, rng, index);
  const g = rng.weighted([
    ['pre-ic', 8],
    ['header', 12],
    ['hdgst', 3],
    ['h2c', 12],
    ['oversize', 4],
    ['truncated', 4],
    ['stall', 0.15],
    ['aer', 3],
    ['prop', 4],
    ['dup', 3],
    ['depth', 3],
    ['term', 2],
    ['r2tflood', 0.3],
  ] as const);
  switch (g) {
    case 'pre-ic':
      return preIc(P, rng, index);
    case 'header':
      return header(P, rng, index);
    case 'hdgst':
      return hdgst(P, rng, index);
    case 'h2c':
      return h2c(P, rng, index);
    case 'oversize':
      return oversize(P, rng, index);
    case 'truncated':
      return truncated(P, rng, index);
    case 'stall':
      return stall(P, rng, index, o.stallTimeoutMs);
    case 'aer':
      return aerFlood(P, rng, index);
    case 'prop':
      return propertySeq(P, rng, index);
    case 'dup':
      return dupCid(P, rng, index);
    case 'depth':
      return queueDepth(P, rng, index);
    case 'term':
      return hostTerm(P, rng, index);
    default:
      return r2tFlood(P, rng, index);
  }
}

export { expectCommand };
