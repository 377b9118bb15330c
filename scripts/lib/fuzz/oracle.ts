/**
 * The fuzzer's oracle: what the NVMe / NVMe-oF / NVMe/TCP specifications say
 * the target must answer to a command or a PDU, computed from the bytes alone.
 *
 * For a command the oracle lists every rule the command breaks, each with the
 * status the specification gives for it. When a command breaks several rules
 * the order in which a controller checks them is implementation-defined, so
 * any of those statuses is accepted; a command that breaks none must get the
 * base answer. Fields the specification reserves, or fields a controller may
 * ignore, add "optional" answers (usually Invalid Field) that are accepted in
 * either case. The oracle never looks at the target's code paths: it is a
 * model of the specification, plus the facts of this target's configuration
 * (namespaces, limits, ports) that the fuzzer sets up itself.
 */

/** Status as SCT << 8 | SC (DNR and the phase bit left out). */
export const SC = {
  ok: 0x000,
  invalidOpcode: 0x001,
  invalidField: 0x002,
  cidConflict: 0x003,
  invalidNs: 0x00b,
  seqError: 0x00c,
  sglSegment: 0x00d,
  sglCount: 0x00e,
  sglLength: 0x00f,
  sglType: 0x011,
  sglOffset: 0x016,
  hostIdFormat: 0x018,
  transient: 0x022,
  lbaRange: 0x080,
  aerLimit: 0x105,
  notSaveable: 0x10d,
  notNsSpecific: 0x10f,
  connectFormat: 0x180,
  connectBusy: 0x181,
  connectInvalid: 0x182,
  connectHost: 0x184,
  compareFailure: 0x285,
} as const;

const scNames = new Map<number, string>(Object.entries(SC).map(([k, v]) => [v, k]));
export function scName(sc: number): string {
  return scNames.get(sc) ?? `0x${sc.toString(16).padStart(3, '0')}`;
}

/** One accepted completion. */
export interface RespPattern {
  sc: number;
  /** When set, the DNR bit must be exactly this. */
  dnr?: boolean;
  /** Success only: exact number of data bytes the host must receive. */
  data?: number;
  /** DW0 & dw0Mask must equal dw0. */
  dw0?: number;
  dw0Mask?: number;
}

export function describePattern(p: RespPattern): string {
  let s = scName(p.sc);
  if (p.dnr !== undefined) s += p.dnr ? '+DNR' : '-DNR';
  if (p.data !== undefined) s += ` data=${p.data}`;
  if (p.dw0 !== undefined) s += ` dw0&0x${(p.dw0Mask ?? 0xffffffff).toString(16)}=0x${p.dw0.toString(16)}`;
  return s;
}

export interface Observed {
  sc: number;
  dnr: boolean;
  dw0: number;
  data: number;
}

export function matches(p: RespPattern, o: Observed): boolean {
  if (p.sc !== o.sc) return false;
  if (p.dnr !== undefined && p.dnr !== o.dnr) return false;
  if (o.sc === 0 && p.data !== undefined && p.data !== o.data) return false;
  if (o.sc === 0 && p.data === undefined && o.data !== 0) return false;
  if (p.dw0 !== undefined && (o.dw0 & (p.dw0Mask ?? 0xffffffff)) >>> 0 !== p.dw0 >>> 0) return false;
  return true;
}

// ---------------------------------------------------------------- target facts

export interface NsProfile {
  nsid: number;
  bs: number;
  nblocks: number;
}

export interface PortProfile {
  index: number;
  /** TCP port (filled in once the target listens). */
  tcp: number;
  /** Bytes of in-capsule data on I/O queues (IOCCSZ). */
  inline: number;
  /** MAXH2CDATA of the ICResp. */
  maxh2c: number;
  /** CAP.MQES on this port (0's based). */
  mqes: number;
}

export interface Profile {
  subnqn: string;
  /** A subsystem that allows only `allowedHost`, exported on port index 0 only. */
  restrictedNqn: string;
  allowedHost: string;
  /** The host NQN of every fuzzer connection. */
  hostnqn: string;
  discoveryNqn: string;
  namespaces: NsProfile[];
  ports: PortProfile[];
  mdtsBytes: number;
  /** Outstanding AERs a controller accepts (AERL + 1). */
  aerSlots: number;
  /** Highest I/O queue id. */
  maxQid: number;
  /** ANA groups reported by a controller, and the discovery log length for the fuzzer's host. */
  anaGroups: number;
  discoveryLogLength: number;
  /** Fabrics and the admin queue always accept this much in-capsule data (Linux: 8 KiB). */
  adminInCapsule: number;
}

/** Largest in-capsule data a port accepts in any capsule (beyond it the PDU itself is refused). */
export function capsuleLimit(P: Profile, port: PortProfile): number {
  return Math.max(P.adminInCapsule, port.inline);
}

// ---------------------------------------------------------------- commands

export type LaneKind = 'io' | 'admin' | 'disabled' | 'discovery' | 'preconnect';

/** What the Connect oracle needs to know about live controllers (resolved when the input runs). */
export interface ControllerFact {
  cntlid: number;
  port: number;
  hostnqn: string;
  ready: boolean;
  usedQids: ReadonlySet<number>;
}

export interface LaneCtx {
  kind: LaneKind;
  port: PortProfile;
  controllers?: readonly ControllerFact[];
}

export interface CmdBytes {
  sqe: Buffer;
  /** In-capsule data, as sent. */
  capsule: Buffer | null;
  /** What the fuzzer answers an R2T with (padded with zeros / cut to R2TL). */
  h2c: Buffer | null;
  /** Corrupt the capsule's data digest / the first H2CData's data digest (lanes with DDGST). */
  badCapsuleDdgst?: boolean;
  badH2cDdgst?: boolean;
}

export interface Expectation {
  accept: RespPattern[];
  /** The rules broken, for the report. */
  why: string[];
}

class Verdict {
  readonly viol: RespPattern[] = [];
  readonly opt: RespPattern[] = [];
  base: RespPattern[] = [{ sc: SC.ok }];
  readonly why: string[] = [];

  v(sc: number, why: string, extra: Partial<RespPattern> = {}): void {
    this.viol.push({ sc, ...extra });
    this.why.push(`${why} -> ${scName(sc)}`);
  }
  o(why: string, ...scs: number[]): void {
    for (const sc of scs) this.opt.push({ sc });
    this.why.push(`${why} -> maybe ${scs.map(scName).join('/')}`);
  }
  result(): Expectation {
    const accept = this.viol.length > 0 ? [...this.viol, ...this.opt.filter((p) => p.sc !== 0)] : [...this.base, ...this.opt];
    return { accept: dedupe(accept), why: this.why };
  }
}

function dedupe(ps: RespPattern[]): RespPattern[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    const k = JSON.stringify(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export type Direction = 'none' | 'out' | 'in' | 'bidi';

/** Data direction: opcode bits 1:0 (Fabrics: FCTYPE bits 1:0); the project's vendor 0xFE moves none, 0xFC returns data. */
export function directionOf(opcode: number, fctype: number): Direction {
  const op = opcode === 0x7f ? fctype : opcode;
  if (opcode === 0xfe) return 'none';
  if (opcode === 0xfc) return 'in';
  return (['none', 'out', 'in', 'bidi'] as const)[op & 3]!;
}

const dw = (sqe: Buffer, n: number) => sqe.readUInt32LE(n * 4);
const NSID_ALL = 0xffffffff;

function activeNs(P: Profile, nsid: number): NsProfile | undefined {
  return P.namespaces.find((n) => n.nsid === nsid);
}

/** Non-zero bits outside `used` in the dwords listed: reserved (or ignorable) fields, Invalid Field allowed. */
function reserved(V: Verdict, sqe: Buffer, masks: Record<number, number>): void {
  for (const [d, mask] of Object.entries(masks)) {
    const v = dw(sqe, Number(d)) & mask;
    if (v !== 0) V.o(`reserved bits in CDW${d} (0x${(v >>> 0).toString(16)})`, SC.invalidField);
  }
}

/**
 * The accepted answers to one command on a queue of `lane` kind. `sqe` is the
 * 64-byte SQE as sent; the data the command sees is the capsule data (SGL
 * 01h) or the R2T data (SGL 5Ah).
 */
export function expectCommand(P: Profile, lane: LaneCtx, cmd: CmdBytes): Expectation {
  const V = new Verdict();
  const { sqe } = cmd;
  const op = sqe[0]!;
  const flags = sqe[1]!;
  const fctype = sqe[4]!;
  const isFabrics = op === 0x7f;
  const isConnect = isFabrics && fctype === 0x01;
  const L = sqe.readUInt32LE(32);
  const sglId = sqe[39]!;
  const addr = sqe.readBigUInt64LE(24);
  const D = cmd.capsule?.length ?? 0;

  // ---- transport and generic command rules (NVMe Base 4.x, NVMe/TCP 3.x)
  if (lane.kind === 'preconnect' && !isConnect) V.v(SC.seqError, 'command before Connect');
  if ((flags & 0xc0) !== 0x40) V.v(SC.invalidField, `PSDT ${(flags >> 6) & 3} (fabrics: SGL only)`);
  if (flags & 0x03) V.v(SC.invalidField, `FUSE ${flags & 3} (fused operations not supported)`);
  if (flags & 0x3c) V.o('reserved CDW0 flag bits', SC.invalidField);
  if (dw(sqe, 2) || dw(sqe, 3)) V.o('CDW2/CDW3 set', SC.invalidField);
  if (sqe.readBigUInt64LE(16) !== 0n) V.o('MPTR set (no metadata)', SC.invalidField);
  const dir = directionOf(op, fctype);
  if (dir === 'bidi') V.v(SC.invalidField, 'bidirectional data transfer');
  if (L > P.mdtsBytes) V.v(SC.invalidField, `transfer ${L} > MDTS ${P.mdtsBytes}`);
  // A capsule whose DDGST does not match its data (the data may be empty: DDGSTF set, 4 bytes after PDO).
  if (cmd.badCapsuleDdgst && cmd.capsule !== null) V.v(SC.transient, 'capsule data digest error', { dnr: false });
  if (sqe[36] || sqe[37] || sqe[38]) V.o('reserved SGL descriptor bytes', SC.invalidField, SC.sglType);
  const sglType = sglId >> 4;
  let data: Buffer | null = null;
  if (L > 0) {
    if (dir === 'out') {
      if (sglId === 0x01) {
        const limit = isFabrics || lane.kind !== 'io' ? capsuleLimit(P, lane.port) : lane.port.inline;
        if (addr !== 0n) V.v(SC.sglOffset, `in-capsule offset ${addr}`, {});
        if (L > limit) V.v(SC.sglOffset, `in-capsule length ${L} > ${limit}`);
        if (addr !== 0n || L > limit) V.o('in-capsule data not where the SGL says', SC.sglLength, SC.invalidField);
        else if (D < L) V.v(SC.sglLength, `in-capsule data ${D} < SGL length ${L}`);
        else {
          if (D > L) V.o(`in-capsule data ${D} > SGL length ${L}`, SC.sglLength);
          data = cmd.capsule!.subarray(0, L);
        }
      } else if (sglId === 0x5a) {
        if (D > 0) {
          V.v(SC.invalidField, 'capsule data with a transport SGL');
          V.o('capsule data with a transport SGL', SC.sglLength, SC.sglType);
        } else {
          data = Buffer.alloc(L);
          cmd.h2c?.copy(data, 0, 0, L);
          if (cmd.badH2cDdgst) V.v(SC.transient, 'H2CData data digest error', { dnr: false });
        }
      } else {
        V.v(SC.sglType, `SGL descriptor 0x${sglId.toString(16)} for host data`);
        if (sglType === 2 || sglType === 3) V.o('SGL segment descriptor', SC.sglSegment, SC.sglCount);
      }
    } else if (dir === 'in') {
      if (sglId === 0x01) {
        V.v(SC.invalidField, 'in-capsule SGL for controller-to-host data');
        V.o('in-capsule SGL for controller-to-host data', SC.sglType);
      } else if (sglId !== 0x5a) {
        V.v(SC.sglType, `SGL descriptor 0x${sglId.toString(16)} for controller data`);
        if (sglType === 2 || sglType === 3) V.o('SGL segment descriptor', SC.sglSegment, SC.sglCount);
      }
      if (D > 0) V.o('capsule data on a read', SC.invalidField, SC.sglLength);
    } else {
      V.o(`SGL length ${L} on a command without data`, SC.sglLength, SC.invalidField, SC.sglType);
    }
  } else {
    if (sglId !== 0x5a && sglId !== 0x01) V.o(`SGL descriptor 0x${sglId.toString(16)} with length 0`, SC.sglType);
    if (D > 0) V.o('capsule data with a zero-length SGL', SC.invalidField, SC.sglLength);
  }

  // ---- the command itself
  if (isFabrics) fabrics(P, lane, V, sqe, L, data);
  else if (lane.kind === 'preconnect') {
    // Already refused above; a controller may also reject what it would reject later.
  } else if (lane.kind === 'disabled') {
    V.v(SC.seqError, 'controller not enabled (CC.EN 0)');
  } else if (lane.kind === 'io') io(P, V, sqe, L, data);
  else if (lane.kind === 'admin') admin(P, V, sqe, L);
  else discovery(P, V, sqe, L);
  return V.result();
}

function fabrics(P: Profile, lane: LaneCtx, V: Verdict, sqe: Buffer, L: number, data: Buffer | null): void {
  const fctype = sqe[4]!;
  if (sqe[5] || sqe[6] || sqe[7]) V.o('reserved bytes 5-7 of a Fabrics command', SC.invalidField);
  if (fctype === 0x01) {
    if (lane.kind === 'preconnect') return connect(P, lane, V, sqe, L, data);
    V.v(SC.seqError, 'Connect on a connected queue');
    return;
  }
  if (lane.kind === 'preconnect') return;
  if ((fctype === 0x04 || fctype === 0x00) && lane.kind !== 'io') {
    const attrib = dw(sqe, 10) & 0x7;
    const size = attrib === 1 ? 8 : 4;
    const offset = dw(sqe, 11);
    reserved(V, sqe, { 10: 0xfffffff8, 14: 0xffffffff, 15: 0xffffffff });
    if (attrib > 1) V.v(SC.invalidField, `property ATTRIB ${attrib}`);
    if (fctype === 0x04) {
      reserved(V, sqe, { 12: 0xffffffff, 13: 0xffffffff });
      const known = size === 8 ? offset === 0x00 : offset === 0x08 || offset === 0x14 || offset === 0x1c;
      if (!known) V.v(SC.invalidField, `Property Get of ${size}-byte property 0x${offset.toString(16)}`);
    } else {
      if (size !== 4 || offset !== 0x14) V.v(SC.invalidField, `Property Set of ${size}-byte property 0x${offset.toString(16)} (only CC is writable)`);
    }
    return;
  }
  V.v(SC.invalidOpcode, `Fabrics command type 0x${fctype.toString(16)} ${lane.kind === 'io' ? 'on an I/O queue' : 'not supported'}`);
}

/** NVMe-oF Connect: qid 0 creates a controller, qid > 0 joins the one named by CNTLID. */
function connect(P: Profile, lane: LaneCtx, V: Verdict, sqe: Buffer, L: number, data: Buffer | null): void {
  const invalidData = (off: number, why: string) => V.v(SC.connectInvalid, why, { dw0: (1 << 16) | off, dw0Mask: 0x1ffffff });
  reserved(V, sqe, { 11: 0xf8000000, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
  if (L !== 1024) {
    V.v(SC.sglLength, `Connect data length ${L} != 1024`);
    return;
  }
  if (!data) return; // refused by the transport rules
  const recfmt = dw(sqe, 10) & 0xffff;
  const qid = dw(sqe, 10) >>> 16;
  const sqsize = dw(sqe, 11) & 0xffff;
  if (recfmt !== 0) V.v(SC.connectFormat, `RECFMT ${recfmt}`);
  const hostnqn = nqnField(data, 512);
  const subnqn = nqnField(data, 256);
  const cntlid = data.readUInt16LE(16);
  const hp = nqnFieldProblem(data, 512);
  // An empty host NQN, or one without the "nqn." prefix, is a host like any other (nvmet and SPDK's target accept both).
  if (hp && hp !== 'empty' && hp !== NO_NQN_PREFIX) invalidData(512, `host NQN ${hp}`);
  if (sqsize === 0 || sqsize > lane.port.mqes) V.v(SC.connectInvalid, `SQSIZE ${sqsize} (MQES ${lane.port.mqes})`, { dw0: 44, dw0Mask: 0x1ffffff });
  if (qid === 0) {
    if (cntlid !== 0xffff) invalidData(16, `admin Connect CNTLID 0x${cntlid.toString(16)} (dynamic model: FFFFh)`);
    if (subnqn === P.discoveryNqn || subnqn === P.subnqn) {
      V.base = [{ sc: SC.ok }];
    } else if (subnqn === P.restrictedNqn) {
      if (lane.port.index !== 0) invalidData(256, 'subsystem not exported on this port');
      else if (hostnqn !== P.allowedHost) V.v(SC.connectHost, 'host not allowed by the subsystem', { dw0: (1 << 16) | 512, dw0Mask: 0x1ffffff });
    } else invalidData(256, 'unknown subsystem NQN');
    return;
  }
  const ctrl = subnqn === P.subnqn ? lane.controllers?.find((c) => c.cntlid === cntlid) : undefined;
  if (!ctrl) {
    invalidData(16, `I/O Connect to controller 0x${cntlid.toString(16)} that does not exist in that subsystem`);
    if (subnqn !== P.subnqn) V.o('unknown subsystem', SC.connectInvalid);
    return;
  }
  if (hostnqn !== ctrl.hostnqn) invalidData(512, 'I/O Connect from another host NQN than the controller');
  if (ctrl.port !== lane.port.index) invalidData(16, 'I/O Connect to a controller of another port');
  if (!ctrl.ready) V.v(SC.seqError, 'I/O Connect to a controller not enabled');
  if (qid > P.maxQid) V.v(SC.connectInvalid, `QID ${qid} > ${P.maxQid}`, { dw0: 42, dw0Mask: 0x1ffffff });
  else if (ctrl.usedQids.has(qid)) V.v(SC.seqError, `QID ${qid} already connected`);
  V.base = [{ sc: SC.ok, dw0: cntlid, dw0Mask: 0xffff }];
}

function nqnField(data: Buffer, off: number): string {
  const f = data.subarray(off, off + 256);
  const end = f.indexOf(0);
  return f.subarray(0, end === -1 ? 256 : end).toString('utf8');
}

const NO_NQN_PREFIX = 'does not start with "nqn."';

/** NVMe Base 4.5: an NQN is a NUL-terminated UTF-8 string of at most 223 bytes starting "nqn.". */
export function nqnFieldProblem(data: Buffer, off: number): string | null {
  const f = data.subarray(off, off + 256);
  const end = f.indexOf(0);
  if (end === -1) return 'not NUL-terminated within 256 bytes';
  const bytes = f.subarray(0, end);
  if (bytes.length === 0) return 'empty';
  if (bytes.length > 223) return `${bytes.length} bytes (> 223)`;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return 'not UTF-8';
  }
  if (!bytes.subarray(0, 4).equals(Buffer.from('nqn.'))) return NO_NQN_PREFIX;
  return null;
}

// ---------------------------------------------------------------- NVM I/O command set

function io(P: Profile, V: Verdict, sqe: Buffer, L: number, data: Buffer | null): void {
  const op = sqe[0]!;
  const nsid = dw(sqe, 1);
  const ns = activeNs(P, nsid);
  const known = [0x00, 0x01, 0x02, 0x05, 0x08, 0x09];
  if (!known.includes(op)) {
    V.v(SC.invalidOpcode, `I/O opcode 0x${op.toString(16)} not supported`);
    if (!ns) V.o('and an inactive NSID', SC.invalidNs);
    return;
  }
  if (op === 0x00) {
    reserved(V, sqe, { 10: 0xffffffff, 11: 0xffffffff, 12: 0xffffffff, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
    if (L > 0) V.o('SGL on Flush', SC.sglLength);
    if (nsid !== NSID_ALL && !ns) V.v(SC.invalidNs, `Flush of inactive NSID ${nsid}`);
    return;
  }
  if (!ns) {
    V.v(SC.invalidNs, `NSID ${nsid} is not an active namespace`);
    return;
  }
  if (op === 0x09) {
    reserved(V, sqe, { 10: 0xffffff00, 11: 0xfffffff8, 12: 0xffffffff, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
    const nr = (dw(sqe, 10) & 0xff) + 1;
    const need = nr * 16;
    const deallocate = (dw(sqe, 11) & 4) !== 0;
    if (L < need || (data && data.length < need)) {
      V.v(SC.sglLength, `DSM with ${nr} ranges needs ${need} bytes, SGL ${L}`);
      return;
    }
    if (!data) return;
    for (let i = 0; i < nr; i++) {
      const nlb = data.readUInt32LE(i * 16 + 4);
      const slba = data.readBigUInt64LE(i * 16 + 8);
      if (nlb > 0 && slba + BigInt(nlb) > BigInt(ns.nblocks)) {
        if (deallocate) V.v(SC.lbaRange, `DSM range ${i} (${slba}+${nlb}) beyond ${ns.nblocks} blocks`);
        else V.o('DSM range beyond the namespace without deallocate', SC.lbaRange);
      }
    }
    return;
  }
  const slba = BigInt(dw(sqe, 11)) * 0x100000000n + BigInt(dw(sqe, 10));
  const nlb = (dw(sqe, 12) & 0xffff) + 1;
  if (slba + BigInt(nlb) > BigInt(ns.nblocks)) V.v(SC.lbaRange, `LBA ${slba}+${nlb} beyond ${ns.nblocks} blocks`);
  if (op === 0x08) {
    reserved(V, sqe, { 12: 0xfdff0000, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
    if (L > 0) V.o('SGL on Write Zeroes', SC.sglLength);
    return;
  }
  reserved(V, sqe, { 12: 0xbfff0000, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
  const bytes = nlb * ns.bs;
  if (L !== bytes) V.v(SC.sglLength, `SGL length ${L} != ${nlb} x ${ns.bs}`);
  if (op === 0x02) V.base = [{ sc: SC.ok, data: L }];
  if (op === 0x05) V.base = [{ sc: SC.ok }, { sc: SC.compareFailure }];
}

// ---------------------------------------------------------------- admin command set (I/O controller)

const LOG_LENGTH: Record<number, (P: Profile, lsp: number) => number> = {
  0x01: () => 128 * 64,
  0x02: () => 512,
  0x03: () => 512,
  0x04: () => 4096,
  0x05: () => 4096,
  0x0c: (P, lsp) => 16 + 32 * P.anaGroups + ((lsp & 1) !== 0 ? 0 : 4 * P.namespaces.length),
};

function logWindow(V: Verdict, sqe: Buffer, L: number, full: number): void {
  const numdBytes = ((dw(sqe, 11) & 0xffff) * 0x10000 + (dw(sqe, 10) >>> 16) + 1) * 4;
  const offset = BigInt(dw(sqe, 13)) * 0x100000000n + BigInt(dw(sqe, 12));
  const ot = (dw(sqe, 14) >>> 23) & 1;
  if (L !== numdBytes) V.v(SC.sglLength, `SGL length ${L} != NUMD ${numdBytes} bytes`);
  if (ot) V.v(SC.invalidField, 'log page offset type (index) not supported');
  if (offset % 4n !== 0n) V.v(SC.invalidField, `log page offset ${offset} not dword aligned`);
  if (offset > BigInt(full)) V.v(SC.invalidField, `log page offset ${offset} beyond the log (${full} bytes)`);
  V.base = [{ sc: SC.ok, data: L }];
}

function admin(P: Profile, V: Verdict, sqe: Buffer, L: number): void {
  const op = sqe[0]!;
  const nsid = dw(sqe, 1);
  const ns = activeNs(P, nsid);
  switch (op) {
    case 0x06: {
      const cns = dw(sqe, 10) & 0xff;
      const csi = dw(sqe, 11) >>> 24;
      reserved(V, sqe, { 10: 0x0000ff00, 11: 0x00ff0000, 12: 0xffffffff, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
      if (L !== 4096) V.v(SC.sglLength, `Identify with SGL length ${L}`);
      V.base = [{ sc: SC.ok, data: L }];
      switch (cns) {
        case 0x00:
          if (nsid === 0 || nsid === NSID_ALL) V.v(SC.invalidNs, `Identify Namespace NSID 0x${nsid.toString(16)}`);
          return;
        case 0x01:
        case 0x06:
          if (cns === 0x06 && csi !== 0) V.v(SC.invalidField, `Identify CNS 06h CSI ${csi}`);
          if (nsid !== 0) V.o('NSID on a controller Identify', SC.invalidNs, SC.invalidField);
          return;
        case 0x02:
          if (nsid >= 0xfffffffe) V.v(SC.invalidNs, `Active Namespace List from NSID 0x${nsid.toString(16)}`);
          return;
        case 0x03:
        case 0x05:
          if (cns === 0x05 && csi !== 0) V.v(SC.invalidField, `Identify CNS 05h CSI ${csi}`);
          if (!ns) V.v(SC.invalidNs, `Identify CNS ${cns} of inactive NSID ${nsid}`);
          return;
        default:
          V.v(SC.invalidField, `Identify CNS 0x${cns.toString(16)} not supported`);
          return;
      }
    }
    case 0x02: {
      const lid = dw(sqe, 10) & 0xff;
      const lsp = (dw(sqe, 10) >>> 8) & 0x7f;
      reserved(V, sqe, { 11: 0xffff0000, 14: 0x007fffff | 0xff000000, 15: 0xffffffff });
      const len = LOG_LENGTH[lid];
      if (!len) {
        V.v(SC.invalidField, `log page 0x${lid.toString(16)} not supported`);
        if (L !== ((dw(sqe, 11) & 0xffff) * 0x10000 + (dw(sqe, 10) >>> 16) + 1) * 4) V.o('and SGL length != NUMD', SC.sglLength);
        return;
      }
      if (lid !== 0x0c && lsp !== 0) V.o(`LSP ${lsp} on log 0x${lid.toString(16)}`, SC.invalidField);
      if (lid === 0x0c && lsp > 1) V.o(`ANA log LSP ${lsp}`, SC.invalidField);
      if (lid === 0x02) {
        if (nsid !== 0 && nsid !== NSID_ALL && !ns) V.v(SC.invalidNs, `SMART log of inactive NSID ${nsid}`);
      } else if (nsid !== 0 && nsid !== NSID_ALL) V.o(`NSID ${nsid} on log 0x${lid.toString(16)}`, SC.invalidNs, SC.invalidField);
      logWindow(V, sqe, L, len(P, lsp));
      return;
    }
    case 0x09:
      return setFeatures(V, sqe, 'io');
    case 0x0a:
      return getFeatures(V, sqe, L, 'io');
    case 0x0c:
      V.v(SC.aerLimit, `more than ${P.aerSlots} outstanding AERs`);
      return;
    case 0x18:
      reserved(V, sqe, { 1: 0xffffffff, 10: 0xffffffff, 11: 0xffffffff, 12: 0xffffffff, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
      return;
    case 0x08:
      reserved(V, sqe, { 1: 0xffffffff, 11: 0xffffffff, 12: 0xffffffff, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
      V.base = [{ sc: SC.ok, dw0: 1, dw0Mask: 1 }]; // nothing to abort there: DW0 bit 0 set
      return;
    case 0xfc:
      reserved(V, sqe, { 10: 0xffffffff, 11: 0xffffffff, 12: 0xffffffff, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
      if (!ns) V.v(SC.invalidNs, `0xFC of inactive NSID ${nsid}`);
      if (L === 0) V.v(SC.sglLength, '0xFC without a data buffer');
      V.base = [{ sc: SC.ok, data: L }];
      return;
    case 0xfe:
      // Set Namespace Active exists in active-standby mode only; the fuzzed subsystem is in ana mode.
      V.v(SC.invalidOpcode, '0xFE on an ana-mode subsystem');
      V.o('0xFE fields', SC.invalidField, SC.invalidNs);
      return;
    default:
      V.v(SC.invalidOpcode, `admin opcode 0x${op.toString(16)} not supported`);
      return;
  }
}

function setFeatures(V: Verdict, sqe: Buffer, kind: 'io' | 'discovery'): void {
  const fid = dw(sqe, 10) & 0xff;
  const save = dw(sqe, 10) >>> 31 === 1;
  reserved(V, sqe, { 10: 0x7fffff00, 12: 0xffffffff, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
  if (dw(sqe, 1) !== 0) V.o('NSID on a controller feature', SC.invalidNs, SC.invalidField, SC.notNsSpecific);
  if (save) V.v(SC.notSaveable, 'SV: no feature is saveable');
  const supported = kind === 'io' ? [0x07, 0x0b, 0x0f, 0x06] : [0x0b, 0x0f];
  if (fid === 0x81) V.v(SC.seqError, 'Host Identifier is set by Connect on fabrics');
  else if (!supported.includes(fid)) V.v(SC.invalidField, `Set Features FID 0x${fid.toString(16)} not supported`);
  else if (fid === 0x07 && (dw(sqe, 11) & 0xffff) === 0xffff) V.v(SC.invalidField, 'Number of Queues 65536');
  else if (fid === 0x07 && dw(sqe, 11) >>> 16 === 0xffff) V.v(SC.invalidField, 'Number of Queues 65536');
}

function getFeatures(V: Verdict, sqe: Buffer, L: number, kind: 'io' | 'discovery'): void {
  const fid = dw(sqe, 10) & 0xff;
  const sel = (dw(sqe, 10) >>> 8) & 0x7;
  reserved(V, sqe, { 10: 0xfffff800, 12: 0xffffffff, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
  if (dw(sqe, 1) !== 0) V.o('NSID on a controller feature', SC.invalidNs, SC.invalidField, SC.notNsSpecific);
  const known = kind === 'io' ? [0x07, 0x0b, 0x0f, 0x06, 0x81] : [0x0b, 0x0f];
  if (!known.includes(fid)) {
    V.v(SC.invalidField, `Get Features FID 0x${fid.toString(16)} not supported`);
    return;
  }
  if (sel > 3) V.v(SC.invalidField, `SEL ${sel}`);
  if (fid === 0x81 && sel !== 3) {
    if ((dw(sqe, 11) & 1) === 0) V.v(SC.hostIdFormat, 'Host Identifier with EXHID 0 (only 128-bit host ids)');
    if (L !== 16) V.v(SC.sglLength, `Host Identifier needs 16 bytes, SGL ${L}`);
    V.base = [{ sc: SC.ok, data: L }];
    return;
  }
  if (dw(sqe, 11) !== 0 && fid !== 0x81) V.o('CDW11 of Get Features', SC.invalidField);
  if (L > 0) V.o('data buffer on a feature without data', SC.sglLength);
}

// ---------------------------------------------------------------- discovery controller

function discovery(P: Profile, V: Verdict, sqe: Buffer, L: number): void {
  const op = sqe[0]!;
  switch (op) {
    case 0x06: {
      const cns = dw(sqe, 10) & 0xff;
      reserved(V, sqe, { 1: 0xffffffff, 10: 0xffffff00, 11: 0xffffffff, 12: 0xffffffff, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
      if (cns !== 0x01) V.v(SC.invalidField, `discovery controller Identify CNS ${cns}`);
      if (L !== 4096) V.v(SC.sglLength, `Identify with SGL length ${L}`);
      V.base = [{ sc: SC.ok, data: L }];
      return;
    }
    case 0x02: {
      const lid = dw(sqe, 10) & 0xff;
      reserved(V, sqe, { 1: 0xffffffff, 10: 0x00007f00, 11: 0xffff0000, 14: 0x007fffff | 0xff000000, 15: 0xffffffff });
      if (lid !== 0x70) {
        V.v(SC.invalidField, `discovery controller log 0x${lid.toString(16)}`);
        return;
      }
      logWindow(V, sqe, L, P.discoveryLogLength);
      return;
    }
    case 0x09:
      return setFeatures(V, sqe, 'discovery');
    case 0x0a:
      return getFeatures(V, sqe, L, 'discovery');
    case 0x0c:
      V.v(SC.aerLimit, `more than ${P.aerSlots} outstanding AERs`);
      return;
    case 0x18:
      reserved(V, sqe, { 1: 0xffffffff, 10: 0xffffffff, 11: 0xffffffff, 12: 0xffffffff, 13: 0xffffffff, 14: 0xffffffff, 15: 0xffffffff });
      return;
    default:
      V.v(SC.invalidOpcode, `opcode 0x${op.toString(16)} on a discovery controller`);
      return;
  }
}

// ---------------------------------------------------------------- PDU headers

/** A C2HTermReq the target may answer with (FEI undefined: any). */
export interface TermPattern {
  fes: number;
  fei?: number;
}

export type ConnState = 'await-ic' | 'await-connect' | 'live';

export interface HeaderVerdict {
  /** Header violations: the TermReqs accepted (immediately, from the header alone). */
  terms: TermPattern[];
  /** Reserved-field oddities: a TermReq (FES 1) is accepted too, besides the normal outcome. */
  optionalTerms: TermPattern[];
  why: string[];
  /** The header is acceptable: the PDU's data length. */
  dataLength: number;
}

const HLEN: Record<number, number> = { 0x00: 128, 0x02: 24, 0x04: 72, 0x06: 24 };

/**
 * Check a PDU common header the way NVMe/TCP 1.0 (7.4.x, "Transport Errors")
 * says a controller must, before the rest of the PDU is buffered. `limits`:
 * largest data in a CapsuleCmd / an H2CData.
 */
export function checkHeader(h: Buffer, digests: { hdgst: boolean; ddgst: boolean }, limits: { capsule: number; h2c: number }): HeaderVerdict {
  const out: HeaderVerdict = { terms: [], optionalTerms: [], why: [], dataLength: 0 };
  const type = h[0]!;
  const flags = h[1]!;
  const hlen = h[2]!;
  const pdo = h[3]!;
  const plen = h.readUInt32LE(4);
  const term = (fes: number, fei: number | undefined, why: string) => {
    out.terms.push(fei === undefined ? { fes } : { fes, fei });
    out.why.push(`${why} -> FES ${fes}${fei === undefined ? '' : ` FEI ${fei}`}`);
  };
  if (HLEN[type] === undefined) {
    term(1, 0, `PDU type 0x${type.toString(16)} is not one a controller receives`);
    return out;
  }
  if (hlen !== HLEN[type]) term(1, 2, `HLEN ${hlen} for type ${type}`);
  if (type === 0x00) {
    if (plen !== 128) term(1, 4, `ICReq PLEN ${plen}`);
    if (flags) out.optionalTerms.push({ fes: 1, fei: 1 });
    if (pdo) out.optionalTerms.push({ fes: 1, fei: 3 });
    return out;
  }
  if (type === 0x02) {
    if (plen < 24 || plen > 152) term(1, 4, `H2CTermReq PLEN ${plen}`);
    return out;
  }
  const hd = (flags & 0x01) !== 0;
  const dd = (flags & 0x02) !== 0;
  if (hd !== digests.hdgst) term(1, 1, `HDGSTF ${hd ? 'set' : 'clear'}, header digest ${digests.hdgst ? '' : 'not '}negotiated`);
  if (dd && !digests.ddgst) term(1, 1, 'DDGSTF set, data digest not negotiated');
  const headerEnd = hlen + (hd ? 4 : 0);
  if (plen < headerEnd) {
    term(1, 4, `PLEN ${plen} shorter than the header (${headerEnd})`);
    return out;
  }
  let dataLen = 0;
  if (plen > headerEnd) {
    if (pdo < headerEnd || pdo + (dd ? 4 : 0) > plen) term(1, 3, `PDO ${pdo} with HLEN ${hlen} PLEN ${plen}`);
    else {
      dataLen = plen - pdo - (dd ? 4 : 0);
      if (pdo > headerEnd) out.optionalTerms.push({ fes: 1, fei: 3 }); // padding while CPDA is 0
      if (dd && dataLen === 0) out.optionalTerms.push({ fes: 1, fei: 1 }); // a data digest over no data
      if (digests.ddgst && dataLen > 0 && !dd) term(1, 1, 'DDGSTF clear on a PDU with data, data digest negotiated');
    }
  } else {
    if (dd) term(1, 1, 'DDGSTF set on a PDU without data');
    if (pdo !== 0) out.optionalTerms.push({ fes: 1, fei: 3 });
  }
  const limit = type === 0x04 ? limits.capsule : limits.h2c;
  if (dataLen > limit) {
    term(5, undefined, `${dataLen} data bytes, limit ${limit}`);
    if (type === 0x04) out.terms.push({ fes: 1 });
  }
  if (type === 0x04 && flags & 0xfc) out.optionalTerms.push({ fes: 1, fei: 1 });
  if (type === 0x06 && flags & 0xf8) out.optionalTerms.push({ fes: 1, fei: 1 });
  out.dataLength = dataLen;
  return out;
}
