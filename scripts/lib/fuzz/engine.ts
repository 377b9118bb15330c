/**
 * The fuzz engine: starts a target in this process on 127.0.0.1, opens the
 * long-lived lanes and a separate healthy admin + I/O queue pair, then runs
 * inputs in batches. Command inputs go to their lane (pipelined), scenario
 * inputs each get a connection of their own. After every batch:
 *  - the healthy pair does a verified write + read;
 *  - the target holds exactly the connections and controllers the fuzzer
 *    keeps open (nothing leaked by the inputs);
 *  - RSS stays under the bound;
 *  - the target logged no internal error.
 * Every failure names the seed and the input index: `scripts/fuzz.ts --seed S
 * --replay I` runs that input again alone.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { decodeCqe } from '../../../shared/cqe.ts';
import { PduType, fesName, type Pdu } from '../../../shared/pdu.ts';
import { AERL } from '../../../target/controller.ts';
import { DEFAULT_SUBSYSTEM_NQN as SUBNQN, defaultConfigDocument, parseConfig } from '../../../target/config/index.ts';
import { Target } from '../../../target/target.ts';
import type { ConfigDoc } from '../config-doc.ts';
import {
  LANES,
  generate,
  sqeOf,
  type CmdInput,
  type ConnInput,
  type ConnectRuntime,
  type Driver,
  type Input,
  type LaneSpec,
  type Setup,
} from './generators.ts';
import {
  SC,
  describePattern,
  expectCommand,
  matches,
  scName,
  type ControllerFact,
  type LaneCtx,
  type Observed,
  type PortProfile,
  type Profile,
  type RespPattern,
  type TermPattern,
} from './oracle.ts';
import { FuzzConn, capsulePdu, h2cPdu } from './wire.ts';

export const FUZZ_HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:f0220000-0000-4000-8000-00000000f022';
const HEALTH_HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:4ea17400-0000-4000-8000-000000004ea1';
const ALLOWED_HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:a110ed00-0000-4000-8000-00000000a110';
const RESTRICTED_NQN = 'nqn.2026-11.io.nvmets:restricted';
const DISCOVERY_NQN = 'nqn.2014-08.org.nvmexpress.discovery';

export interface FuzzOptions {
  seed: string;
  /** Stop after this many inputs ... */
  inputs: number;
  /** ... or after this many seconds, whichever comes first. */
  seconds: number;
  /** Only these input indexes (replay). */
  only?: number[];
  batch?: number;
  /** Scenario inputs (fresh connections) in flight at once. */
  concurrency?: number;
  /** Share of scenario inputs. */
  connShare?: number;
  rssLimitMb?: number;
  stallTimeoutMs?: number;
  setupTimeoutMs?: number;
  /** Progress lines (and the report) go here. */
  log?: (line: string) => void;
  progressEveryMs?: number;
  /** Stop early after this many failures. */
  maxFailures?: number;
}

export interface Failure {
  index: number | null;
  cls: string;
  desc: string;
  problem: string;
  trace?: string[];
}

export interface FuzzReport {
  seed: string;
  inputs: number;
  elapsedMs: number;
  batches: number;
  healthChecks: number;
  byClass: Record<string, { n: number; failed: number }>;
  outcomes: Record<string, number>;
  failures: Failure[];
  failureCount: number;
  commands: number;
  scenarios: number;
  skipped: number;
  peakRssMb: number;
  rssLimitMb: number;
  targetErrors: string[];
  /** The target's warning log lines (protocol errors, refusals, stalls), numbers folded. */
  targetWarnings: Record<string, number>;
  connections: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Mismatch extends Error {}

// ---------------------------------------------------------------- setup requests

/** One command on a connection nobody else reads from (setup): its completion, data collected. */
async function request(
  conn: FuzzConn,
  sqe: Buffer,
  capsule: Buffer | null,
  timeoutMs = 5000,
): Promise<{ status: number; dw0: number; dw1: number; data: Buffer }> {
  const cid = sqe.readUInt16LE(2);
  conn.write(capsulePdu(sqe, capsule, conn.wire));
  const parts: Buffer[] = [];
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const p = await conn.next(Math.max(1, deadline - Date.now()));
    if (!p) break;
    if (p.type === PduType.C2HData && p.cccid === cid) {
      parts.push(Buffer.from(p.data));
      if (p.success) return { status: 0, dw0: 0, dw1: 0, data: Buffer.concat(parts) };
      continue;
    }
    if (p.type === PduType.CapsuleResp) {
      const cqe = decodeCqe(p.cqe);
      if (cqe.cid === cid) return { status: cqe.status, dw0: cqe.result, dw1: cqe.dw1, data: Buffer.concat(parts) };
    }
    throw new Error(`setup: unexpected PDU type ${p.type}`);
  }
  throw new Error(`setup: no completion for cid ${cid}${conn.closed ? ' (connection closed)' : ''}`);
}

function connectData(subnqn: string, hostnqn: string, cntlid: number): Buffer {
  const d = Buffer.alloc(1024);
  Buffer.from('f0220000000040008000f0220000f022', 'hex').copy(d, 0);
  d.writeUInt16LE(cntlid, 16);
  d.write(subnqn, 256, 'utf8');
  d.write(hostnqn, 512, 'utf8');
  return d;
}

async function connectQueue(
  conn: FuzzConn,
  o: { qid: number; subnqn: string; hostnqn: string; cntlid: number; sqsize: number; cattr?: number; kato?: number },
): Promise<number> {
  const sqe = sqeOf({ opcode: 0x7f, nsid: 0x01, cdw: { 10: o.qid << 16, 11: o.sqsize | ((o.cattr ?? 0) << 16), 12: o.kato ?? 0 }, sglId: 0x01, sglLen: 1024 });
  sqe.writeUInt16LE(0x7001, 2);
  const r = await request(conn, sqe, connectData(o.subnqn, o.hostnqn, o.cntlid));
  if (r.status !== 0) throw new Error(`setup: Connect qid ${o.qid} refused, status 0x${r.status.toString(16)}`);
  return r.dw0 & 0xffff;
}

async function enable(conn: FuzzConn): Promise<void> {
  const set = sqeOf({ opcode: 0x7f, nsid: 0x00, cdw: { 11: 0x14, 12: 0x00460001 } });
  set.writeUInt16LE(0x7002, 2);
  if ((await request(conn, set, null)).status !== 0) throw new Error('setup: Property Set CC refused');
  const get = sqeOf({ opcode: 0x7f, nsid: 0x04, cdw: { 11: 0x1c } });
  get.writeUInt16LE(0x7003, 2);
  const csts = await request(conn, get, null);
  if ((csts.dw0 & 1) !== 1) throw new Error('setup: controller not ready after CC.EN');
}

// ---------------------------------------------------------------- lanes

type CmdOutcome =
  { kind: 'resp'; obs: Observed } | { kind: 'term'; fes: number; fei: number } | { kind: 'close' } | { kind: 'timeout' } | { kind: 'error'; msg: string };

interface Pending {
  sgl: number;
  h2c: Buffer | null;
  badH2cDdgst: boolean;
  data: number;
  keep: Buffer[] | null;
  resolve: (o: CmdOutcome) => void;
  timer: NodeJS.Timeout;
}

const PARKED_AER_CIDS = [0xfff0, 0xfff1, 0xfff2, 0xfff3];

class Lane {
  readonly spec: LaneSpec;
  conn: FuzzConn | null = null;
  cntlid = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #waiters: (() => void)[] = [];
  /** Preconnect lanes: the queue got connected, open a fresh one before the next input. */
  #spent = false;
  #openedAt = 0;
  readonly depth: number;
  readonly #engine: Engine;
  discoveryLogLength = 0;

  constructor(spec: LaneSpec, engine: Engine) {
    this.spec = spec;
    this.#engine = engine;
    this.depth = spec.kind === 'preconnect' ? 1 : spec.kind === 'io' ? 32 : 16;
  }

  get alive(): boolean {
    return this.conn !== null && !this.conn.closed;
  }

  get port(): PortProfile {
    return this.#engine.P.ports[this.spec.port]!;
  }

  /** Open (or re-open) the connection: IC, Connect, enable, parked AERs, as the lane kind needs. */
  async open(): Promise<void> {
    this.conn?.destroy();
    this.conn = null;
    this.#spent = false;
    const s = this.spec;
    const conn = await FuzzConn.open(this.port.tcp);
    try {
      await conn.ic({ hdgst: s.hdgst, ddgst: s.ddgst });
      const E = this.#engine;
      if (s.kind === 'io') {
        const admin = (s.name as string) === 'health-io' ? E.health.admin : E.adminLane(s.port);
        await connectQueue(conn, {
          qid: s.qid!,
          subnqn: SUBNQN,
          hostnqn: s.name.startsWith('health') ? HEALTH_HOSTNQN : FUZZ_HOSTNQN,
          cntlid: admin.cntlid,
          sqsize: 127,
          cattr: s.cattr,
        });
        this.cntlid = admin.cntlid;
      } else if (s.kind === 'admin' || s.kind === 'disabled') {
        this.cntlid = await connectQueue(conn, {
          qid: 0,
          subnqn: SUBNQN,
          hostnqn: s.name.startsWith('health') ? HEALTH_HOSTNQN : FUZZ_HOSTNQN,
          cntlid: 0xffff,
          sqsize: 31,
        });
        if (s.kind === 'admin') await enable(conn);
      } else if (s.kind === 'discovery') {
        this.cntlid = await connectQueue(conn, { qid: 0, subnqn: DISCOVERY_NQN, hostnqn: FUZZ_HOSTNQN, cntlid: 0xffff, sqsize: 31 });
        await enable(conn);
        const get = sqeOf({ opcode: 0x02, cdw: { 10: 0x70 | (255 << 16) }, sglLen: 1024 });
        get.writeUInt16LE(0x7004, 2);
        const log = await request(conn, get, null);
        this.discoveryLogLength = 1024 + 1024 * Number(log.data.readBigUInt64LE(8));
      }
      if ((s.kind === 'admin' || s.kind === 'discovery') && !s.name.startsWith('health')) {
        for (const cid of PARKED_AER_CIDS) conn.write(capsulePdu(withCid(sqeOf({ opcode: 0x0c }), cid), null, conn.wire));
      }
      // Anything left over from setup is unexpected.
      if (conn.inbox.length > 0) throw new Error(`setup: stray PDU type ${conn.inbox[0]!.type}`);
    } catch (err) {
      conn.destroy();
      throw err;
    }
    conn.onPdu = (p) => this.#onPdu(p);
    conn.onClose = () => this.#onClose();
    this.conn = conn;
    this.#openedAt = Date.now();
  }

  /** Preconnect lanes re-open before the target's setup timeout could close them, and after a Connect succeeded. */
  async #ensure(): Promise<boolean> {
    const fresh = this.spec.kind === 'preconnect' && (this.#spent || Date.now() - this.#openedAt > this.#engine.setupTimeoutMs / 2);
    if (this.alive && !fresh) return true;
    if (!this.alive && this.spec.kind !== 'preconnect') return false; // a dead long-lived lane is re-opened between batches
    try {
      await this.open();
      return true;
    } catch (err) {
      this.#engine.fail(null, `lane:${this.spec.name}`, 're-open', `cannot re-open the lane: ${(err as Error).message}`);
      return false;
    }
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Wait until the cid is free and the pipeline has room; the caller registers it without awaiting in between. */
  async #slot(cid: number): Promise<void> {
    for (let i = 0; i < 100_000 && (this.#pending.size >= this.depth || this.#pending.has(cid)); i++) {
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  #free(cid: number): boolean {
    return this.#pending.size < this.depth && !this.#pending.has(cid);
  }

  /** Send one command and wait for its outcome. */
  async command(
    sqe: Buffer,
    cmd: { capsule: Buffer | null; h2c: Buffer | null; badCapsuleDdgst?: boolean; badH2cDdgst?: boolean },
    o: { keep?: boolean; timeoutMs?: number } = {},
  ): Promise<{ outcome: CmdOutcome; kept: Buffer | null }> {
    const cid = sqe.readUInt16LE(2);
    // Re-check after every await: another input with the same cid may have taken it meanwhile.
    for (let i = 0; i < 100_000 && !this.#free(cid); i++) await this.#slot(cid);
    if (!this.alive || !this.#free(cid)) return { outcome: { kind: 'close' }, kept: null };
    const keep = o.keep ? ([] as Buffer[]) : null;
    const outcome = await new Promise<CmdOutcome>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(cid);
        resolve({ kind: 'timeout' });
        this.#wake();
      }, o.timeoutMs ?? 15_000);
      this.#pending.set(cid, { sgl: sqe.readUInt32LE(32), h2c: cmd.h2c, badH2cDdgst: !!cmd.badH2cDdgst, data: 0, keep, resolve, timer });
      this.conn!.write(capsulePdu(sqe, cmd.capsule, this.conn!.wire, { badDdgst: !!cmd.badCapsuleDdgst }));
    });
    return { outcome, kept: keep ? Buffer.concat(keep) : null };
  }

  #finish(cid: number, o: CmdOutcome): void {
    const p = this.#pending.get(cid);
    if (!p) return;
    clearTimeout(p.timer);
    this.#pending.delete(cid);
    p.resolve(o);
    this.#wake();
  }

  #anomaly(problem: string): void {
    this.#engine.fail(null, `lane:${this.spec.name}`, `lane ${this.spec.name}`, problem);
    this.conn?.destroy();
  }

  #onPdu(p: Pdu): void {
    switch (p.type) {
      case PduType.CapsuleResp: {
        const cqe = decodeCqe(p.cqe);
        const pend = this.#pending.get(cqe.cid);
        if (!pend) {
          if (PARKED_AER_CIDS.includes(cqe.cid) && this.spec.kind !== 'io')
            return this.#anomaly(`a parked AER (cid 0x${cqe.cid.toString(16)}) completed: status ${scName(cqe.status & 0x7ff)}`);
          return this.#anomaly(`CapsuleResp for cid ${cqe.cid}, which is not outstanding (status ${scName(cqe.status & 0x7ff)})`);
        }
        // A Connect's completion carries the queue id it connected (preconnect lanes: any).
        const qid = this.spec.kind === 'io' ? this.spec.qid! : 0;
        if (cqe.sqid !== qid && this.spec.kind !== 'preconnect') return this.#anomaly(`CapsuleResp SQID ${cqe.sqid} on queue ${qid}`);
        this.#finish(cqe.cid, { kind: 'resp', obs: { sc: cqe.status & 0x7ff, dnr: (cqe.status & 0x4000) !== 0, dw0: cqe.result >>> 0, data: pend.data } });
        return;
      }
      case PduType.C2HData: {
        const pend = this.#pending.get(p.cccid);
        if (!pend) return this.#anomaly(`C2HData for cid ${p.cccid}, which is not outstanding`);
        if (p.datao !== pend.data) return this.#anomaly(`C2HData offset ${p.datao}, expected ${pend.data}`);
        if (p.dataDigestError) return this.#anomaly('C2HData with a bad data digest');
        pend.data += p.data.length;
        pend.keep?.push(Buffer.from(p.data));
        if (pend.data > pend.sgl) return this.#anomaly(`C2HData beyond the SGL length ${pend.sgl}`);
        if (p.success) this.#finish(p.cccid, { kind: 'resp', obs: { sc: 0, dnr: false, dw0: 0, data: pend.data } });
        return;
      }
      case PduType.R2T: {
        const pend = this.#pending.get(p.cccid);
        if (!pend) return this.#anomaly(`R2T for cid ${p.cccid}, which is not outstanding`);
        if (p.r2tl === 0 || p.r2to + p.r2tl > pend.sgl) return this.#anomaly(`R2T ${p.r2to}+${p.r2tl} outside the SGL length ${pend.sgl}`);
        if (p.r2tl > this.#engine.P.mdtsBytes) return this.#anomaly(`R2T for ${p.r2tl} bytes, more than MDTS (${this.#engine.P.mdtsBytes})`);
        const data = Buffer.alloc(p.r2tl);
        pend.h2c?.copy(data, 0, p.r2to, p.r2to + p.r2tl);
        const conn = this.conn!;
        const chunk = conn.maxh2cdata;
        let first = true;
        for (let off = 0; off < p.r2tl; off += chunk) {
          const end = Math.min(p.r2tl, off + chunk);
          conn.write(
            h2cPdu({ cccid: p.cccid, ttag: p.ttag, datao: p.r2to + off, last: end === p.r2tl }, data.subarray(off, end), conn.wire, {
              badDdgst: first && pend.badH2cDdgst,
            }),
          );
          first = false;
        }
        return;
      }
      case PduType.C2HTermReq:
        this.conn?.destroy(); // dead from now on, whether or not the close has arrived yet
        for (const cid of [...this.#pending.keys()]) this.#finish(cid, { kind: 'term', fes: p.fes, fei: p.fei });
        return;
      default:
        return this.#anomaly(`unexpected PDU type ${p.type}`);
    }
  }

  #onClose(): void {
    if (this.conn?.malformed)
      this.#engine.fail(null, `lane:${this.spec.name}`, `lane ${this.spec.name}`, `the target sent a malformed PDU: ${this.conn.malformed}`);
    for (const cid of [...this.#pending.keys()]) this.#finish(cid, { kind: 'close' });
  }

  /** A command input: build, judge with the oracle, send, compare. */
  async run(inp: CmdInput): Promise<void> {
    const E = this.#engine;
    if (!(await this.#ensure())) {
      E.skip(inp);
      return;
    }
    const built = inp.build(E.runtime);
    try {
      const sqe = Buffer.from(built.cmd.sqe);
      sqe.writeUInt16LE(inp.cid, 2);
      const ctx: LaneCtx = { kind: this.spec.kind, port: this.port, controllers: E.controllerFacts() };
      const P = this.spec.kind === 'discovery' ? { ...E.P, discoveryLogLength: this.discoveryLogLength } : E.P;
      const exp = expectCommand(P, ctx, {
        ...built.cmd,
        sqe,
        badCapsuleDdgst: built.cmd.badCapsuleDdgst && this.spec.ddgst,
        badH2cDdgst: built.cmd.badH2cDdgst && this.spec.ddgst,
      });
      const isConnect = sqe[0] === 0x7f && sqe[4] === 0x01 && this.spec.kind === 'preconnect';
      const { outcome } = await this.command(sqe, {
        ...built.cmd,
        badCapsuleDdgst: built.cmd.badCapsuleDdgst && this.spec.ddgst,
        badH2cDdgst: built.cmd.badH2cDdgst && this.spec.ddgst,
      });
      if (outcome.kind === 'resp' && isConnect && outcome.obs.sc === 0) {
        this.#spent = true; // the queue is connected now: not a preconnect lane any more
        this.conn?.destroy();
      }
      E.judgeCmd(inp, exp.accept, exp.why, outcome);
    } finally {
      built.release?.();
    }
  }
}

function withCid(s: Buffer, cid: number): Buffer {
  s.writeUInt16LE(cid & 0xffff, 2);
  return s;
}

// ---------------------------------------------------------------- scenario driver

class ConnDriver implements Driver {
  readonly P: Profile;
  readonly port: PortProfile;
  readonly conn: FuzzConn;
  readonly trace: string[] = [];
  qid = -1;
  outcome = 'none';

  constructor(P: Profile, port: PortProfile, conn: FuzzConn) {
    this.P = P;
    this.port = port;
    this.conn = conn;
  }

  get wire() {
    return this.conn.wire;
  }
  get maxh2c() {
    return this.conn.maxh2cdata || this.port.maxh2c;
  }

  send(b: Buffer): void {
    this.trace.push(`> ${b.length} bytes ${b.subarray(0, Math.min(b.length, 12)).toString('hex')}`);
    this.conn.write(b);
  }

  fin(): void {
    this.trace.push('> FIN');
    this.conn.fin();
  }

  #describe(p: Pdu | 'closed' | 'timeout'): string {
    if (p === 'closed') return this.conn.malformed ? `malformed PDU from the target (${this.conn.malformed})` : 'connection closed';
    if (p === 'timeout') return 'nothing';
    switch (p.type) {
      case PduType.C2HTermReq:
        return `C2HTermReq ${fesName(p.fes)} (FES ${p.fes}) FEI ${p.fei}`;
      case PduType.CapsuleResp: {
        const c = decodeCqe(p.cqe);
        return `CapsuleResp cid ${c.cid} ${scName(c.status & 0x7ff)}${c.status & 0x4000 ? '+DNR' : ''} dw0 0x${(c.result >>> 0).toString(16)}`;
      }
      case PduType.C2HData:
        return `C2HData cid ${p.cccid} ${p.datao}+${p.datal}${p.last ? ' LAST' : ''}${p.success ? ' SUCCESS' : ''}`;
      case PduType.R2T:
        return `R2T cid ${p.cccid} ttag ${p.ttag} ${p.r2to}+${p.r2tl}`;
      case PduType.ICResp:
        return `ICResp pfv ${p.pfv} cpda ${p.cpda} hdgst ${p.hdgst} ddgst ${p.ddgst} maxh2cdata ${p.maxh2cdata}`;
      default:
        return `PDU type ${p.type}`;
    }
  }

  async #next(timeoutMs: number): Promise<Pdu | 'closed' | 'timeout'> {
    await this.conn.until(() => this.conn.inbox.length > 0 || this.conn.closed, timeoutMs);
    const p = this.conn.inbox.shift();
    const r = p ?? (this.conn.closed ? 'closed' : 'timeout');
    this.trace.push(`< ${this.#describe(r)}`);
    return r;
  }

  #miss(expected: string, got: Pdu | 'closed' | 'timeout'): never {
    throw new Mismatch(`expected ${expected}, got ${this.#describe(got)}`);
  }

  async expectR2T(cid: number): Promise<{ ttag: number; r2to: number; r2tl: number }> {
    const p = await this.#next(5000);
    if (p === 'closed' || p === 'timeout' || p.type !== PduType.R2T || p.cccid !== cid) this.#miss(`R2T for cid ${cid}`, p);
    return { ttag: p.ttag, r2to: p.r2to, r2tl: p.r2tl };
  }

  async expectResp(cid: number, accept: RespPattern[]): Promise<{ sc: number; dw0: number }> {
    let data = 0;
    const want = `completion of cid ${cid}: ${accept.map(describePattern).join(' | ')}`;
    for (let i = 0; i < 10_000; i++) {
      const p = await this.#next(5000);
      if (p === 'closed' || p === 'timeout') this.#miss(want, p);
      if (p.type === PduType.C2HData && p.cccid === cid) {
        if (p.datao !== data) this.#miss(`C2HData at offset ${data}`, p);
        data += p.data.length;
        if (!p.success) continue;
        const obs = { sc: 0, dnr: false, dw0: 0, data };
        if (!accept.some((a) => matches(a, obs))) this.#miss(want, p);
        this.outcome = 'resp:ok';
        return { sc: 0, dw0: 0 };
      }
      if (p.type !== PduType.CapsuleResp) this.#miss(want, p);
      const c = decodeCqe(p.cqe);
      const obs: Observed = { sc: c.status & 0x7ff, dnr: (c.status & 0x4000) !== 0, dw0: c.result >>> 0, data };
      if (c.cid !== cid || !accept.some((a) => matches(a, obs))) this.#miss(want, p);
      this.outcome = `resp:${scName(obs.sc)}`;
      return { sc: obs.sc, dw0: obs.dw0 };
    }
    this.#miss(want, 'timeout');
  }

  #termMatches(p: Pdu, accept: TermPattern[]): boolean {
    return p.type === PduType.C2HTermReq && accept.some((a) => a.fes === p.fes && (a.fei === undefined || a.fei >>> 0 === p.fei >>> 0));
  }

  async #termThenClose(p: Pdu): Promise<void> {
    if (p.type !== PduType.C2HTermReq) return;
    this.outcome = `term:FES${p.fes}`;
    const after = await this.#next(3000);
    if (after !== 'closed') this.#miss('the connection to close after the C2HTermReq', after);
  }

  async expectTerm(accept: TermPattern[], o: { withinMs?: number; allowR2T?: boolean } = {}): Promise<void> {
    const want = `C2HTermReq ${accept.map((a) => `FES ${a.fes}${a.fei === undefined ? '' : ` FEI ${a.fei >>> 0}`}`).join(' | ')}`;
    const deadline = Date.now() + (o.withinMs ?? 3000);
    for (let i = 0; i < 10_000; i++) {
      const p = await this.#next(Math.max(1, deadline - Date.now()));
      if (p !== 'closed' && p !== 'timeout' && p.type === PduType.R2T && o.allowR2T) continue;
      if (p === 'closed' || p === 'timeout' || !this.#termMatches(p, accept)) this.#miss(want, p);
      return this.#termThenClose(p);
    }
  }

  async expectClose(o: { withinMs?: number; minMs?: number; allowTerm?: TermPattern[] } = {}): Promise<void> {
    const t0 = Date.now();
    const p = await this.#next(o.withinMs ?? 3000);
    if (p !== 'closed' && p !== 'timeout' && o.allowTerm?.length && this.#termMatches(p, o.allowTerm)) return this.#termThenClose(p);
    if (p !== 'closed') this.#miss('the connection to close, with no PDU', p);
    if (this.conn.malformed) this.#miss('the connection to close, with no PDU', p);
    if (o.minMs !== undefined && Date.now() - t0 < o.minMs)
      throw new Mismatch(`closed after ${Date.now() - t0} ms, before the stall timeout (expected >= ${Math.round(o.minMs)} ms)`);
    this.outcome = 'close';
  }

  async expectEither(o: { terms: TermPattern[]; resp?: { cid: number; accept: RespPattern[] }; close?: boolean; icresp?: boolean }): Promise<string> {
    const p = this.conn.inbox[0] ?? (await this.conn.until(() => this.conn.inbox.length > 0 || this.conn.closed, 5000), this.conn.inbox[0]);
    const want = [
      o.terms.length ? `C2HTermReq ${o.terms.map((a) => `FES ${a.fes}`).join('/')}` : '',
      o.resp ? `completion of cid ${o.resp.cid}: ${o.resp.accept.map(describePattern).join(' | ')}` : '',
      o.close ? 'close' : '',
      o.icresp ? 'ICResp' : '',
    ]
      .filter(Boolean)
      .join(' or ');
    if (!p) {
      const got = await this.#next(1);
      if (got === 'closed' && o.close && !this.conn.malformed) {
        this.outcome = 'close';
        return 'close';
      }
      this.#miss(want, got);
    }
    if (p.type === PduType.C2HTermReq) {
      const got = await this.#next(1);
      if (got === 'closed' || got === 'timeout' || !this.#termMatches(got, o.terms)) this.#miss(want, got);
      await this.#termThenClose(got);
      return 'term';
    }
    if (o.resp && (p.type === PduType.CapsuleResp || p.type === PduType.C2HData)) {
      await this.expectResp(o.resp.cid, o.resp.accept);
      return 'resp';
    }
    if (o.icresp && p.type === PduType.ICResp) {
      await this.expectIcResp({ hdgst: p.hdgst, ddgst: p.ddgst });
      return 'icresp';
    }
    this.#miss(want, await this.#next(1));
  }

  async expectIcResp(o: { hdgst: boolean; ddgst: boolean }): Promise<void> {
    const p = await this.#next(5000);
    if (p === 'closed' || p === 'timeout' || p.type !== PduType.ICResp) this.#miss('ICResp', p);
    const bad: string[] = [];
    if (p.pfv !== 0) bad.push(`PFV ${p.pfv}`);
    if (p.cpda !== 0) bad.push(`CPDA ${p.cpda}`);
    if (p.hdgst !== o.hdgst || p.ddgst !== o.ddgst) bad.push(`digests ${p.hdgst}/${p.ddgst} for ${o.hdgst}/${o.ddgst}`);
    if (p.maxh2cdata % 4 !== 0 || p.maxh2cdata < 4096) bad.push(`MAXH2CDATA ${p.maxh2cdata}`);
    if (p.maxh2cdata !== this.port.maxh2c) bad.push(`MAXH2CDATA ${p.maxh2cdata}, port configured ${this.port.maxh2c}`);
    if (bad.length) throw new Mismatch(`ICResp fields: ${bad.join(', ')}`);
    this.outcome = 'icresp';
  }

  async expectQuiet(ms: number): Promise<void> {
    const p = await this.#next(ms);
    if (p !== 'timeout') this.#miss(`nothing for ${ms} ms`, p);
  }

  async r2tsOrTerm(n: number, accept: TermPattern[]): Promise<'all' | 'term'> {
    let got = 0;
    for (let i = 0; i < 100_000 && got < n; i++) {
      const p = await this.#next(5000);
      if (p !== 'closed' && p !== 'timeout' && p.type === PduType.R2T) {
        got++;
        continue;
      }
      if (p === 'closed' || p === 'timeout' || !this.#termMatches(p, accept))
        this.#miss(`${n} R2Ts or C2HTermReq ${accept.map((a) => `FES ${a.fes}`).join('/')}`, p);
      await this.#termThenClose(p);
      return 'term';
    }
    return 'all';
  }

  async countR2T(ms: number): Promise<number> {
    const deadline = Date.now() + ms;
    let n = 0;
    for (let i = 0; i < 100_000; i++) {
      await this.conn.until(() => this.conn.inbox.length > 0 || this.conn.closed, Math.max(1, deadline - Date.now()));
      const p = this.conn.inbox[0];
      if (!p || p.type !== PduType.R2T) break;
      this.conn.inbox.shift();
      n++;
      if (Date.now() >= deadline) break;
    }
    this.trace.push(`< ${n} R2Ts`);
    return n;
  }
}

// ---------------------------------------------------------------- engine

class Engine {
  readonly o: Required<Omit<FuzzOptions, 'only' | 'log'>> & Pick<FuzzOptions, 'only' | 'log'>;
  P!: Profile;
  target!: Target;
  readonly lanes = new Map<string, Lane>();
  health!: { admin: Lane; io: Lane };
  readonly byClass: Record<string, { n: number; failed: number }> = {};
  readonly outcomes: Record<string, number> = {};
  readonly failures: Failure[] = [];
  failureCount = 0;
  skipped = 0;
  commands = 0;
  scenarios = 0;
  readonly targetErrors: string[] = [];
  readonly targetWarnings: Record<string, number> = {};
  #newTargetErrors: string[] = [];
  peakRss = 0;
  healthChecks = 0;
  readonly #reservedQids = [new Set<number>(), new Set<number>()];
  #healthGen = 0;

  constructor(o: FuzzOptions) {
    this.o = {
      batch: 1000,
      concurrency: 64,
      connShare: 0.3,
      rssLimitMb: 1024,
      stallTimeoutMs: 1000,
      setupTimeoutMs: 4000,
      progressEveryMs: 2000,
      maxFailures: 50,
      ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)),
    } as Engine['o'];
  }

  get setupTimeoutMs(): number {
    return this.o.setupTimeoutMs;
  }

  // ---------------------------------------------------------------- target

  async start(): Promise<void> {
    // The built-in default config (ports on 0: the OS picks), made to hold every case the generators aim at.
    const doc = defaultConfigDocument({ ports: [0, 0], sizeBytes: 64 * 1024 * 1024 }) as ConfigDoc;
    {
      const [sub] = doc.subsystems;
      const [port0, port1] = doc.ports;
      if (!sub?.namespaces[0] || !port0 || !port1) throw new Error('the default config document lacks a subsystem with a namespace, or two ports');
      sub.ext = { mode: 'ana' };
      sub.namespaces[0].ext['size'] = 16 * 1024 * 1024;
      sub.namespaces.push({ nsid: 2, enable: 1, ana_grpid: 1, device: {}, ext: { store: 'memory', size: 4 * 1024 * 1024, block_size: 4096 } });
      for (const p of doc.ports) p.ana_groups = [{ grpid: 1, ana: { state: 'optimized' } }];
      port1.param['inline_data_size'] = '4096';
      port1.ext = { maxh2cdata: 8192 };
      doc.hosts = [{ nqn: ALLOWED_HOSTNQN }];
      doc.subsystems.push({ nqn: RESTRICTED_NQN, attr: { allow_any_host: '0' }, allowed_hosts: [ALLOWED_HOSTNQN], namespaces: [], ext: { mode: 'ana' } });
      port0.subsystems.push(RESTRICTED_NQN);
    }
    const config = parseConfig(doc);
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (!line) continue;
          try {
            const j = JSON.parse(line) as { level: number; msg: string; err?: unknown };
            if (j.level >= 50) this.#newTargetErrors.push(`${j.msg}${j.err ? `: ${JSON.stringify(j.err).slice(0, 300)}` : ''}`);
            else {
              const key = j.msg
                .replace(/0x[0-9a-f]+/gi, 'X')
                .replace(/\d+/g, 'N')
                .slice(0, 100);
              this.targetWarnings[key] = (this.targetWarnings[key] ?? 0) + 1;
            }
          } catch {
            this.#newTargetErrors.push(line.slice(0, 300));
          }
        }
        cb();
      },
    });
    const log = pino({ level: 'warn', base: undefined }, sink);
    const target = await Target.create(config, { log, limits: { setupTimeoutMs: this.o.setupTimeoutMs, stallTimeoutMs: this.o.stallTimeoutMs } });
    await target.start();
    const ports = config.ports.map((p) => target.boundPort(p.portid));
    this.target = target;
    const mqes = (pc: (typeof config.ports)[number]) => (pc.maxQueueSize ? Math.min(target.limits.mqes, pc.maxQueueSize - 1) : target.limits.mqes);
    this.P = {
      subnqn: SUBNQN,
      restrictedNqn: RESTRICTED_NQN,
      allowedHost: ALLOWED_HOSTNQN,
      hostnqn: FUZZ_HOSTNQN,
      discoveryNqn: DISCOVERY_NQN,
      namespaces: [
        { nsid: 1, bs: 512, nblocks: (16 * 1024 * 1024) / 512 },
        { nsid: 2, bs: 4096, nblocks: (4 * 1024 * 1024) / 4096 },
      ],
      ports: config.ports.map((pc, index) => ({ index, tcp: ports[index]!, inline: pc.inlineDataSize, maxh2c: pc.maxh2cdata, mqes: mqes(pc) })),
      mdtsBytes: 4096 * 2 ** target.limits.mdts,
      aerSlots: AERL + 1,
      maxQid: target.limits.maxIoQueues,
      anaGroups: 1,
      discoveryLogLength: 0,
      adminInCapsule: 8192,
    };
    for (const spec of Object.values(LANES)) this.lanes.set(spec.name, new Lane(spec, this));
    this.health = {
      admin: new Lane({ name: 'health-admin' as never, kind: 'admin', port: 0, hdgst: true, ddgst: true }, this),
      io: new Lane({ name: 'health-io' as never, kind: 'io', port: 0, hdgst: true, ddgst: true, qid: 1, cattr: 0 }, this),
    };
    await this.reopenLanes(true);
  }

  adminLane(port: number): Lane {
    return this.lanes.get(port === 0 ? 'admin0' : 'admin1')!;
  }

  /** Open every long-lived lane that is not alive (admin queues before their I/O queues). */
  async reopenLanes(initial = false): Promise<void> {
    const order: Lane[] = [
      this.health.admin,
      this.health.io,
      ...['admin0', 'admin1', 'disabled', 'disc', 'io0', 'io0d', 'io1', 'io1d', 'pre0', 'pre1'].map((n) => this.lanes.get(n)!),
    ];
    const reopened = new Set<Lane>();
    for (const lane of order) {
      const admin = lane === this.health.io ? this.health.admin : lane.spec.kind === 'io' ? this.adminLane(lane.spec.port) : null;
      const adminNew = admin !== null && reopened.has(admin);
      if (lane.alive && !adminNew) continue;
      if (lane.alive) lane.conn!.destroy();
      reopened.add(lane);
      try {
        if (!initial && lane.spec.kind === 'io') await this.#waitQueueFree(lane);
        await lane.open();
      } catch (err) {
        if (initial) throw err;
        this.fail(null, `lane:${lane.spec.name}`, 're-open', `cannot re-open the lane: ${(err as Error).message}`);
      }
    }
  }

  /** Wait until the target no longer has the lane's queue id connected (after its connection died). */
  async #waitQueueFree(lane: Lane): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const admin = lane === this.health.io ? this.health.admin : this.adminLane(lane.spec.port);
      const ctrl = this.target.subsystems.get(SUBNQN)?.controllers.get(admin.cntlid);
      if (!ctrl || !ctrl.queues.has(lane.spec.qid!)) return;
      await sleep(10);
    }
  }

  readonly runtime: ConnectRuntime = {
    fuzzCntlid: (port) => this.adminLane(port).cntlid,
    disabledCntlid: () => this.lanes.get('disabled')!.cntlid,
    unusedCntlid: (cntlid) => {
      const live = this.target.subsystems.get(SUBNQN)!.controllers;
      let id = cntlid;
      for (let i = 0; i < 0x10000 && live.has(id); i++) id = (id + 1) & 0xffff;
      return id;
    },
    reserveQid: (port) => this.reserveQid(port),
    releaseQid: (port, qid) => this.#reservedQids[port]!.delete(qid),
    busyQid: () => 1,
  };

  reserveQid(port: number): number {
    const ctrl = this.target.subsystems.get(SUBNQN)?.controllers.get(this.adminLane(port).cntlid);
    for (let q = 3; q <= this.P.maxQid; q++) {
      if (this.#reservedQids[port]!.has(q) || ctrl?.queues.has(q)) continue;
      this.#reservedQids[port]!.add(q);
      return q;
    }
    return 1; // all in use: the Connect is expected to fail (QID in use)
  }

  controllerFacts(): ControllerFact[] {
    const subsys = this.target.subsystems.get(SUBNQN)!;
    const fact = (lane: Lane, hostnqn: string, ready: boolean): ControllerFact => ({
      cntlid: lane.cntlid,
      port: lane.spec.port,
      hostnqn,
      ready,
      usedQids: new Set(subsys.controllers.get(lane.cntlid)?.queues.keys() ?? []),
    });
    return [
      fact(this.adminLane(0), FUZZ_HOSTNQN, true),
      fact(this.adminLane(1), FUZZ_HOSTNQN, true),
      fact(this.lanes.get('disabled')!, FUZZ_HOSTNQN, false),
      fact(this.health.admin, HEALTH_HOSTNQN, true),
    ];
  }

  // ---------------------------------------------------------------- bookkeeping

  #count(cls: string, failed: boolean): void {
    const c = (this.byClass[cls] ??= { n: 0, failed: 0 });
    c.n++;
    if (failed) c.failed++;
  }

  #outcome(name: string): void {
    this.outcomes[name] = (this.outcomes[name] ?? 0) + 1;
  }

  fail(index: number | null, cls: string, desc: string, problem: string, trace?: string[]): void {
    this.failureCount++;
    if (this.failures.length < this.o.maxFailures) this.failures.push({ index, cls, desc, problem, trace });
    const where = index === null ? '' : ` input ${index}`;
    this.o.log?.(
      `FAIL${where} [${cls}] ${desc}\n     ${problem}${index === null ? '' : `\n     reproduce: npx tsx scripts/fuzz.ts --seed ${this.o.seed} --replay ${index}`}`,
    );
  }

  skip(inp: Input): void {
    this.skipped++;
    this.#count(inp.cls, false);
    this.#outcome('skipped (lane down)');
  }

  judgeCmd(inp: CmdInput, accept: RespPattern[], why: string[], o: CmdOutcome): void {
    let ok = false;
    let got: string;
    if (o.kind === 'resp') {
      ok = accept.some((a) => matches(a, o.obs));
      got = `${scName(o.obs.sc)}${o.obs.dnr ? '+DNR' : ''} dw0 0x${o.obs.dw0.toString(16)} data ${o.obs.data}`;
      this.#outcome(o.obs.sc === 0 ? 'resp:ok' : `resp:${scName(o.obs.sc)}`);
    } else if (o.kind === 'term') {
      got = `C2HTermReq FES ${o.fes} FEI ${o.fei} (the lane was terminated)`;
      this.#outcome('lane-terminated');
    } else got = o.kind === 'error' ? o.msg : o.kind === 'timeout' ? 'no completion within 15 s' : 'the connection closed';
    this.#count(inp.cls, !ok);
    if (!ok)
      this.fail(
        inp.index,
        inp.cls,
        inp.desc,
        `expected ${accept.map(describePattern).join(' | ')}; got ${got}${why.length ? `\n     rules: ${why.join('; ')}` : ''}`,
      );
  }

  // ---------------------------------------------------------------- scenarios

  async runConn(inp: ConnInput): Promise<void> {
    const s = inp.setup;
    const port = this.P.ports[s.port]!;
    let conn: FuzzConn;
    let qid = -1;
    try {
      conn = await FuzzConn.open(port.tcp);
    } catch (err) {
      this.#count(inp.cls, true);
      this.fail(inp.index, inp.cls, inp.desc, `cannot connect: ${(err as Error).message}`);
      return;
    }
    const d = new ConnDriver(this.P, port, conn);
    try {
      await this.#setupConn(conn, s, d, (q) => (qid = q));
      if (conn.inbox.length) throw new Error(`setup left PDU type ${conn.inbox[0]!.type}`);
      await withDeadline(inp.run(d), 30_000, 'scenario did not finish within 30 s');
      if (conn.malformed) throw new Mismatch(`the target sent a malformed PDU: ${conn.malformed}`);
      this.#count(inp.cls, false);
      this.#outcome(d.outcome);
    } catch (err) {
      this.#count(inp.cls, true);
      const kind = err instanceof Mismatch ? '' : 'error: ';
      this.fail(inp.index, inp.cls, inp.desc, `${kind}${(err as Error).message}`, d.trace);
    } finally {
      conn.destroy();
      if (qid > 0) this.#reservedQids[s.port]!.delete(qid);
    }
  }

  async #setupConn(conn: FuzzConn, s: Setup, d: ConnDriver, onQid: (q: number) => void): Promise<void> {
    if (s.stage === 'tcp') return;
    await conn.ic({ hdgst: s.hdgst, ddgst: s.ddgst });
    if (s.stage === 'ic') return;
    if (s.stage === 'io') {
      const qid = this.reserveQid(s.port);
      onQid(qid);
      d.qid = qid;
      await connectQueue(conn, { qid, subnqn: SUBNQN, hostnqn: FUZZ_HOSTNQN, cntlid: this.adminLane(s.port).cntlid, sqsize: s.sqsize ?? 127, cattr: s.cattr });
      return;
    }
    d.qid = 0;
    if (s.stage === 'discovery') {
      await connectQueue(conn, { qid: 0, subnqn: DISCOVERY_NQN, hostnqn: FUZZ_HOSTNQN, cntlid: 0xffff, sqsize: 31 });
      await enable(conn);
      return;
    }
    await connectQueue(conn, { qid: 0, subnqn: SUBNQN, hostnqn: FUZZ_HOSTNQN, cntlid: 0xffff, sqsize: 31 });
    if (s.stage === 'enabled') await enable(conn);
  }

  // ---------------------------------------------------------------- invariants

  /** The healthy pair: a verified write (R2T) and read back, and an Identify. */
  async healthCheck(): Promise<void> {
    this.healthChecks++;
    const { admin, io } = this.health;
    if (!admin.alive || !io.alive) {
      this.fail(null, 'invariant:health', 'healthy pair', 'the healthy admin or I/O connection was closed');
      return;
    }
    const gen = ++this.#healthGen;
    const nlb = 8 + (gen % 120);
    const slba = this.P.namespaces[0]!.nblocks - 256 + (gen % 64);
    const data = Buffer.alloc(nlb * 512);
    for (let i = 0; i < nlb; i++) {
      data.writeUInt32LE(slba + i, i * 512);
      data.writeUInt32LE(gen, i * 512 + 4);
      data.fill(gen & 0xff, i * 512 + 8, i * 512 + 512);
    }
    const cid = gen & 0x7fff;
    const w = await io.command(
      withCid(sqeOf({ opcode: 0x01, nsid: 1, cdw: { 10: slba, 12: nlb - 1 }, sglLen: data.length }), cid),
      { capsule: null, h2c: data },
      { timeoutMs: 5000 },
    );
    const r = await io.command(
      withCid(sqeOf({ opcode: 0x02, nsid: 1, cdw: { 10: slba, 12: nlb - 1 }, sglLen: data.length }), cid),
      { capsule: null, h2c: null },
      { keep: true, timeoutMs: 5000 },
    );
    const id = await admin.command(
      withCid(sqeOf({ opcode: 0x06, cdw: { 10: 1 }, sglLen: 4096 }), cid),
      { capsule: null, h2c: null },
      { keep: true, timeoutMs: 5000 },
    );
    const okResp = (o: CmdOutcome) => o.kind === 'resp' && o.obs.sc === 0;
    if (!okResp(w.outcome) || !okResp(r.outcome) || !r.kept?.equals(data)) {
      this.fail(
        null,
        'invariant:health',
        'healthy pair',
        `verified write+read failed: write ${JSON.stringify(w.outcome)}, read ${JSON.stringify(r.outcome)}, data ${r.kept?.equals(data) ? 'equal' : 'DIFFERENT'}`,
      );
    }
    if (!okResp(id.outcome) || id.kept?.length !== 4096 || id.kept.readUInt16LE(78) !== admin.cntlid) {
      this.fail(null, 'invariant:health', 'healthy pair', `Identify Controller failed: ${JSON.stringify(id.outcome)}`);
    }
  }

  #liveConnections(): number {
    return this.target.snapshot().ports.reduce((n, p) => n + p.connections, 0);
  }

  /** Connections and controllers return to exactly what the fuzzer holds open. */
  async checkResources(): Promise<void> {
    const lanes = [...this.lanes.values(), this.health.admin, this.health.io];
    const expectConns = () => lanes.filter((l) => l.alive).length;
    const expectCtrls = () => [this.adminLane(0), this.adminLane(1), this.lanes.get('disabled')!, this.health.admin].filter((l) => l.alive).length;
    const expectDisc = () => (this.lanes.get('disc')!.alive ? 1 : 0);
    let conns = -1;
    let ctrls = -1;
    let disc = -1;
    let restricted = -1;
    for (let i = 0; i < 300; i++) {
      conns = this.#liveConnections();
      ctrls = this.target.subsystems.get(SUBNQN)!.controllers.size;
      restricted = this.target.subsystems.get(RESTRICTED_NQN)!.controllers.size;
      disc = this.target.discovery.controllers.size;
      if (conns === expectConns() && ctrls === expectCtrls() && disc === expectDisc() && restricted === 0) return;
      await sleep(10);
    }
    this.fail(
      null,
      'invariant:resources',
      'connections and controllers',
      `target holds ${conns} connections (expected ${expectConns()}), ${ctrls} controllers (expected ${expectCtrls()}), ${disc} discovery controllers (expected ${expectDisc()}), ${restricted} in the restricted subsystem (expected 0)`,
    );
  }

  checkMemory(): void {
    const rss = process.memoryUsage().rss;
    this.peakRss = Math.max(this.peakRss, rss);
    if (rss > this.o.rssLimitMb * 1024 * 1024)
      this.fail(null, 'invariant:memory', 'RSS', `RSS ${(rss / 2 ** 20).toFixed(0)} MiB above the bound of ${this.o.rssLimitMb} MiB`);
  }

  checkTargetLog(): void {
    for (const e of this.#newTargetErrors.splice(0)) {
      this.targetErrors.push(e);
      this.fail(null, 'invariant:target-log', 'target error log', `the target logged an internal error: ${e}`);
    }
  }

  // ---------------------------------------------------------------- the run

  async runBatch(indexes: number[]): Promise<void> {
    const inputs = indexes.map((i) => generate(this.P, this.o.seed, i, { stallTimeoutMs: this.o.stallTimeoutMs, connShare: this.o.connShare }));
    for (const inp of inputs) {
      if (inp.kind === 'cmd') this.commands++;
      else this.scenarios++;
    }
    const byLane = new Map<string, CmdInput[]>();
    const conns: ConnInput[] = [];
    for (const inp of inputs) {
      if (inp.kind === 'cmd') {
        const list = byLane.get(inp.lane) ?? [];
        list.push(inp);
        byLane.set(inp.lane, list);
      } else conns.push(inp);
    }
    const jobs: Promise<void>[] = [];
    for (const [name, list] of byLane) {
      const lane = this.lanes.get(name)!;
      jobs.push(pool(list, lane.depth, (inp) => lane.run(inp)));
    }
    jobs.push(pool(conns, this.o.concurrency, (inp) => this.runConn(inp)));
    await Promise.all(jobs);
  }

  async run(): Promise<FuzzReport> {
    const t0 = Date.now();
    const deadline = t0 + this.o.seconds * 1000;
    const all = this.o.only ?? null;
    const total = all ? all.length : this.o.inputs;
    let done = 0;
    let batches = 0;
    let lastProgress = t0;
    const log = this.o.log;
    log?.(`fuzz: seed ${this.o.seed}, up to ${total} inputs or ${this.o.seconds} s, target on 127.0.0.1:${this.P.ports.map((p) => p.tcp).join(',')}`);
    for (let b = 0; b < 1_000_000_000 && done < total && Date.now() < deadline && this.failureCount < this.o.maxFailures; b++) {
      const n = Math.min(this.o.batch, total - done);
      const indexes = all ? all.slice(done, done + n) : Array.from({ length: n }, (_, i) => done + i);
      await this.runBatch(indexes);
      done += n;
      batches++;
      await this.reopenLanes();
      await this.healthCheck();
      await this.checkResources();
      this.checkMemory();
      this.checkTargetLog();
      if (Date.now() - lastProgress >= this.o.progressEveryMs) {
        lastProgress = Date.now();
        const s = (Date.now() - t0) / 1000;
        log?.(
          `fuzz: ${done}/${total} inputs, ${(done / s).toFixed(0)}/s, ${this.failureCount} failures, rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB, ${this.#liveConnections()} connections`,
        );
      }
    }
    const report: FuzzReport = {
      seed: this.o.seed,
      inputs: done,
      elapsedMs: Date.now() - t0,
      batches,
      healthChecks: this.healthChecks,
      byClass: this.byClass,
      outcomes: this.outcomes,
      failures: this.failures,
      failureCount: this.failureCount,
      commands: this.commands,
      scenarios: this.scenarios,
      skipped: this.skipped,
      peakRssMb: Math.round(this.peakRss / 2 ** 20),
      rssLimitMb: this.o.rssLimitMb,
      targetErrors: this.targetErrors,
      targetWarnings: this.targetWarnings,
      connections: this.#liveConnections(),
    };
    return report;
  }

  async stop(): Promise<void> {
    for (const l of [...this.lanes.values(), this.health?.admin, this.health?.io]) l?.conn?.destroy();
    await this.target?.stop();
  }
}

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(what)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Run the fuzzer; always stops the target it started. */
export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const e = new Engine(o);
  const onUnhandled = (err: unknown) => e.fail(null, 'invariant:process', 'process', `unhandled error in the process: ${(err as Error)?.stack ?? String(err)}`);
  process.on('uncaughtException', onUnhandled);
  process.on('unhandledRejection', onUnhandled);
  try {
    await e.start();
    return await e.run();
  } finally {
    await e.stop();
    process.off('uncaughtException', onUnhandled);
    process.off('unhandledRejection', onUnhandled);
  }
}

/** The report as text: per-class counts, outcomes, failures, and one closing summary line. */
export function formatReport(r: FuzzReport): string {
  const lines: string[] = [];
  const classes = Object.entries(r.byClass).sort((a, b) => b[1].n - a[1].n);
  lines.push(`classes (${classes.length}):`);
  for (const [cls, c] of classes) lines.push(`  ${cls.padEnd(28)} ${String(c.n).padStart(9)}${c.failed ? `  FAILED ${c.failed}` : ''}`);
  lines.push('outcomes:');
  for (const [k, v] of Object.entries(r.outcomes).sort((a, b) => b[1] - a[1])) lines.push(`  ${k.padEnd(28)} ${String(v).padStart(9)}`);
  lines.push('target warnings (log lines, numbers folded):');
  for (const [k, v] of Object.entries(r.targetWarnings).sort((a, b) => b[1] - a[1])) lines.push(`  ${String(v).padStart(9)}  ${k}`);
  if (r.failures.length) {
    lines.push(`failures (${r.failureCount}, first ${r.failures.length}):`);
    for (const f of r.failures) {
      lines.push(`  #${f.index ?? '-'} [${f.cls}] ${f.desc}`, `      ${f.problem}`);
      if (f.trace?.length) lines.push(`      trace: ${f.trace.slice(-12).join(' | ')}`);
      if (f.index !== null) lines.push(`      reproduce: npx tsx scripts/fuzz.ts --seed ${r.seed} --replay ${f.index}`);
    }
  }
  lines.push(
    `fuzz summary: seed=${r.seed} inputs=${r.inputs} classes=${classes.length} commands=${r.commands} scenarios=${r.scenarios} skipped=${r.skipped} failures=${r.failureCount} ` +
      `elapsed=${(r.elapsedMs / 1000).toFixed(1)}s rate=${(r.inputs / (r.elapsedMs / 1000)).toFixed(0)}/s batches=${r.batches} health-checks=${r.healthChecks} ` +
      `peak-rss=${r.peakRssMb}MiB (bound ${r.rssLimitMb}) target-errors=${r.targetErrors.length}`,
  );
  return lines.join('\n');
}

export { SC };
