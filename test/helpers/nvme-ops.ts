/**
 * Small helpers on top of RawClient for the admin / I/O / ANA / discovery /
 * control integration tests: log pages with offsets, features, AER tracking,
 * controller pairs (admin + one I/O queue), polling, and cleanup.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Cns } from '../../shared/identify.ts';
import { encodeGetLogPageDwords, decodeAnaLog, LogPageId, type AnaLog } from '../../shared/log-pages.ts';
import { FeatureId } from '../../shared/features.ts';
import {
  asyncEventRequestCommand,
  getFeaturesCommand,
  getLogPageCommand,
  identifyCommand,
  keepAliveCommand,
  setFeaturesCommand,
  type Sqe,
} from '../../shared/sqe.ts';
import { transportSgl } from '../../shared/sgl.ts';
import { ControlServer, type ControlAddress } from '../../target/control.ts';
import type { Target } from '../../target/target.ts';
import { silentLogger } from '../../target/logger.ts';
import { RawClient, type CommandResult } from './raw-client.ts';
import type { ClientFactory, CommandClient } from './loop-client.ts';
export { waitFor } from './wait.ts';

/** Status without DNR/More/CRD: SCT << 8 | SC. */
export function sc(r: CommandResult): number {
  return r.cqe.status & 0x7ff;
}
export function dnr(r: CommandResult): boolean {
  return (r.cqe.status & 0x4000) !== 0;
}

/** Everything a test opens, closed in afterEach. */
export class Resources {
  readonly clients: CommandClient[] = [];
  readonly targets: Target[] = [];
  readonly controls: ControlServer[] = [];
  readonly dirs: string[] = [];

  track<T extends CommandClient>(c: T): T {
    this.clients.push(c);
    return c;
  }

  async tmpdir(prefix = 'nvmets-it-'): Promise<string> {
    const d = await mkdtemp(path.join(os.tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }

  async control(target: Target): Promise<ControlAddress> {
    const dir = await this.tmpdir('nvmets-ctl-');
    const server = new ControlServer(target, silentLogger);
    const addr: ControlAddress = { kind: 'unix', path: path.join(dir, 'ctl.sock') };
    await server.listen(addr);
    this.controls.push(server);
    return addr;
  }

  async cleanup(): Promise<void> {
    for (const c of this.clients.splice(0)) c.close();
    for (const s of this.controls.splice(0)) await s.close();
    for (const t of this.targets.splice(0)) await t.stop();
    for (const d of this.dirs.splice(0)) await rm(d, { recursive: true, force: true });
  }
}

/** An admin queue and one I/O queue of one controller. */
export interface Pair<C extends CommandClient = RawClient> {
  admin: C;
  io: C;
  cntlid: number;
}

export async function connectPair(res: Resources, port: number, subnqn: string, opts?: { hostnqn?: string; kato?: number }): Promise<Pair>;
/** The same over another transport (`via`: RawClient or LoopClient, see loop-client.ts). */
export async function connectPair(
  res: Resources,
  port: number,
  subnqn: string,
  opts: { hostnqn?: string; kato?: number; via: ClientFactory },
): Promise<Pair<CommandClient>>;
export async function connectPair(
  res: Resources,
  port: number,
  subnqn: string,
  opts: { hostnqn?: string; kato?: number; via?: ClientFactory } = {},
): Promise<Pair<CommandClient>> {
  const via = opts.via ?? RawClient;
  const admin = res.track(await via.admin(port, { subnqn, hostnqn: opts.hostnqn, kato: opts.kato }));
  const io = res.track(await via.io(port, { subnqn, cntlid: admin.cntlid, qid: 1, hostnqn: opts.hostnqn }));
  return { admin, io, cntlid: admin.cntlid };
}

export async function identify(c: CommandClient, cns: number, nsid = 0, csi = 0): Promise<CommandResult> {
  return c.command(identifyCommand({ cns, nsid, csi }));
}

export async function identifyData(c: CommandClient, cns: number, nsid = 0): Promise<Buffer> {
  const r = await identify(c, cns, nsid);
  if (r.cqe.status !== 0) throw new Error(`Identify CNS ${cns} nsid ${nsid}: status 0x${r.cqe.status.toString(16)}`);
  return r.data;
}

export interface LogRead {
  lid: number;
  length: number;
  offset?: number;
  lsp?: number;
  rae?: boolean;
  nsid?: number;
  /** SGL length when it should differ from NUMD (tests of the mismatch). */
  sglLength?: number;
}

export function getLogSqe(l: LogRead): Sqe {
  const dw = encodeGetLogPageDwords({ lid: l.lid, numdBytes: l.length, offset: l.offset ?? 0, lsp: l.lsp ?? 0, rae: l.rae ?? false });
  const s = getLogPageCommand({ ...dw, nsid: l.nsid ?? 0 }, l.length);
  return l.sglLength === undefined ? s : { ...s, sgl: transportSgl(l.sglLength) };
}

export function getLog(c: CommandClient, l: LogRead): Promise<CommandResult> {
  return c.command(getLogSqe(l));
}

export async function getLogData(c: CommandClient, l: LogRead): Promise<Buffer> {
  const r = await getLog(c, l);
  if (r.cqe.status !== 0) throw new Error(`Get Log Page 0x${l.lid.toString(16)}: status 0x${r.cqe.status.toString(16)}`);
  return r.data;
}

/** The ANA log as Linux reads it (NSID 0xFFFFFFFF), RAE set unless told. */
export async function anaLog(c: CommandClient, opts: { rgo?: boolean; rae?: boolean } = {}): Promise<AnaLog> {
  const data = await getLogData(c, { lid: LogPageId.Ana, length: 4096, lsp: opts.rgo ? 1 : 0, rae: opts.rae ?? true, nsid: 0xffffffff });
  return decodeAnaLog(data);
}

export async function anaStateOf(c: CommandClient, grpid: number): Promise<number | undefined> {
  return (await anaLog(c)).groups.find((g) => g.anagrpid === grpid)?.state;
}

export function setFeature(c: CommandClient, fid: number, cdw11: number, opts: { save?: boolean } = {}): Promise<CommandResult> {
  return c.command(setFeaturesCommand(fid, cdw11, opts));
}

export function getFeature(c: CommandClient, fid: number, opts: { sel?: number; cdw11?: number; data?: number } = {}): Promise<CommandResult> {
  return c.command(getFeaturesCommand(fid, opts));
}

export async function enableAec(c: CommandClient, bits: number): Promise<void> {
  const r = await setFeature(c, FeatureId.AsyncEventConfig, bits >>> 0);
  if (r.cqe.status !== 0) throw new Error(`Set Features AEC: status 0x${r.cqe.status.toString(16)}`);
}

/** A parked Asynchronous Event Request whose completion can be checked without waiting. */
export class PendingAer {
  result: CommandResult | null = null;
  error: Error | null = null;
  readonly promise: Promise<CommandResult>;

  constructor(c: CommandClient) {
    this.promise = c.command(asyncEventRequestCommand());
    this.promise.then(
      (r) => {
        this.result = r;
      },
      (e: Error) => {
        this.error = e;
      },
    );
  }

  get done(): boolean {
    return this.result !== null;
  }

  /** DW0 once completed (waits up to timeoutMs). */
  async dw0(timeoutMs = 3000): Promise<number> {
    const r = await withTimeout(this.promise, timeoutMs, 'AER completion');
    if (r.cqe.status !== 0) throw new Error(`AER failed: status 0x${r.cqe.status.toString(16)}`);
    return r.cqe.result >>> 0;
  }
}

/**
 * A Keep Alive round trip on the same admin queue: every completion the target
 * produced before handling it (an AER included) has then arrived.
 */
export async function roundTrip(c: CommandClient): Promise<void> {
  const r = await c.command(keepAliveCommand());
  if (r.cqe.status !== 0) throw new Error('Keep Alive failed');
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
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

export { Cns, LogPageId };
