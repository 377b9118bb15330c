/**
 * Discovery: connect to a discovery controller (the well-known NQN, kato 0 as
 * Linux's non-persistent discovery), read the discovery log the way libnvme's
 * nvme_discovery_log() does (the 1024-byte header at offset 0, the entries
 * from offset 1024 in 4 KiB chunks, then the header again: if GENCTR moved,
 * start over), follow referrals (bounded depth, each address once), and
 * connect to every NVM subsystem entry (connectAll, as `nvme connect-all`).
 */
import type { Logger } from 'pino';
import { CNTLID_DYNAMIC, DISCOVERY_NQN } from '../shared/fabrics.ts';
import { CntrlType, Cns, decodeIdentifyController } from '../shared/identify.ts';
import {
  DISCOVERY_LOG_ENTRY_SIZE,
  DISCOVERY_LOG_HEADER_SIZE,
  LogPageId,
  SubType,
  TrType,
  decodeDiscoveryLogEntry,
  decodeDiscoveryLogHeader,
  type DiscoveryLog,
  type DiscoveryLogEntry,
} from '../shared/log-pages.ts';
import { enableController, getLogPage, identify, shutdownController } from './admin.ts';
import { Controller } from './controller.ts';
import { HostError } from './errors.ts';
import { hostContext, type HostContext } from './context.ts';
import { ADMIN_QUEUE_DEPTH, resolveConnectOptions, type ConnectOptions } from './options.ts';
import { TcpQueue } from './tcp-queue.ts';

export interface DiscoverOptions {
  readonly traddr: string;
  /** Default 8009. */
  readonly trsvcid?: number | string;
  /** Default: the well-known discovery NQN. */
  readonly subnqn?: string;
  readonly hostnqn?: string;
  readonly hostid?: string;
  /** Default 0 (no keep-alive: the association is short). */
  readonly katoMs?: number;
  readonly hdrDigest?: boolean;
  readonly dataDigest?: boolean;
  readonly adminTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  /** Referral levels followed (nvme-cli's MAX_DISC_LEVEL). Default 10. */
  readonly maxReferralDepth?: number;
  /** GENCTR changes tolerated before giving up. Default 10. */
  readonly maxRetries?: number;
  readonly logger?: Logger;
}

export interface DiscoveredEntry extends DiscoveryLogEntry {
  /** "traddr:trsvcid" of the discovery controller that reported it. */
  readonly source: string;
}

const CHUNK = 4096;

/**
 * Read one discovery controller's log. The header, entries and header again;
 * retried while GENCTR changes underneath.
 */
export async function readDiscoveryLog(q: TcpQueue, timeoutMs: number, maxRetries = 10): Promise<DiscoveryLog> {
  const lid = LogPageId.Discovery;
  for (let attempt = 0; ; attempt++) {
    const head = decodeDiscoveryLogHeader(await getLogPage(q, { lid, numdBytes: DISCOVERY_LOG_HEADER_SIZE, offset: 0, rae: true }, 0, timeoutMs));
    const numrec = Number(head.numrec);
    const body = Buffer.alloc(numrec * DISCOVERY_LOG_ENTRY_SIZE);
    for (let off = 0; off < body.length; off += CHUNK) {
      const len = Math.min(CHUNK, body.length - off);
      const chunk = await getLogPage(q, { lid, numdBytes: len, offset: DISCOVERY_LOG_HEADER_SIZE + off, rae: true }, 0, timeoutMs);
      chunk.copy(body, off);
    }
    const again = decodeDiscoveryLogHeader(await getLogPage(q, { lid, numdBytes: DISCOVERY_LOG_HEADER_SIZE, offset: 0, rae: false }, 0, timeoutMs));
    if (again.genctr === head.genctr && again.numrec === head.numrec) {
      const entries: DiscoveryLogEntry[] = [];
      for (let i = 0; i < numrec; i++) entries.push(decodeDiscoveryLogEntry(body, i * DISCOVERY_LOG_ENTRY_SIZE));
      return { genctr: head.genctr, recfmt: head.recfmt, entries };
    }
    if (attempt >= maxRetries)
      throw new HostError('DISCOVERY_FAILED', `discovery log kept changing (genctr ${head.genctr} -> ${again.genctr}) over ${maxRetries + 1} reads`);
  }
}

/** Connect to one discovery controller, read its log, shut it down. */
export async function fetchDiscoveryLog(opts: DiscoverOptions, ctx: HostContext = hostContext()): Promise<DiscoveryLog> {
  const o = resolveConnectOptions({ ...opts, subnqn: opts.subnqn ?? DISCOVERY_NQN, queueSize: undefined }, 'discovery');
  const q = await TcpQueue.open({
    host: o.traddr,
    port: o.trsvcid,
    qid: 0,
    depth: ADMIN_QUEUE_DEPTH,
    hdgst: o.hdrDigest,
    ddgst: o.dataDigest,
    inCapsuleSize: 0,
    connectTimeoutMs: o.connectTimeoutMs,
    subnqn: o.subnqn,
    hostnqn: o.hostnqn,
    hostid: o.hostid,
    cntlid: CNTLID_DYNAMIC,
    katoMs: o.katoMs,
    cattr: 0,
    log: o.logger,
    clock: ctx.clock,
    directReads: ctx.directReads,
    stats: ctx.stats,
  });
  try {
    await enableController(q, o.adminTimeoutMs);
    const id = decodeIdentifyController(await identify(q, Cns.Controller, 0, o.adminTimeoutMs));
    if (id.cntrltype !== CntrlType.Discovery && id.subnqn !== DISCOVERY_NQN) {
      throw new HostError('DISCOVERY_FAILED', `${o.traddr}:${o.trsvcid} is not a discovery controller (CNTRLTYPE ${id.cntrltype}, SUBNQN ${id.subnqn})`);
    }
    const log = await readDiscoveryLog(q, o.adminTimeoutMs, opts.maxRetries ?? 10);
    try {
      await shutdownController(q, o.adminTimeoutMs, 5000);
    } catch (err) {
      o.logger.debug({ err: (err as Error).message }, 'discovery controller shutdown failed');
    }
    return log;
  } finally {
    q.close('discovery done');
  }
}

/**
 * Discover: every entry of the discovery log at opts.traddr/trsvcid and of the
 * discovery controllers it refers to (depth-bounded, each address visited
 * once). Referral entries themselves are followed, not returned; duplicates
 * (same subtype, NQN, address) are returned once.
 */
export async function discover(opts: DiscoverOptions, ctx: HostContext = hostContext()): Promise<DiscoveredEntry[]> {
  const maxDepth = opts.maxReferralDepth ?? 10;
  const log = opts.logger;
  const visited = new Set<string>();
  const seen = new Set<string>();
  const out: DiscoveredEntry[] = [];
  const walk = async (traddr: string, trsvcid: number | string | undefined, depth: number): Promise<void> => {
    const key = `${traddr}:${trsvcid ?? 8009}`;
    if (visited.has(key)) return;
    visited.add(key);
    const page = await fetchDiscoveryLog({ ...opts, traddr, trsvcid }, ctx);
    for (const e of page.entries) {
      if (e.subtype === SubType.Referral) {
        if (e.trtype !== TrType.Tcp) continue;
        if (depth >= maxDepth) {
          log?.warn({ referral: `${e.traddr}:${e.trsvcid}` }, 'referral depth limit reached');
          continue;
        }
        try {
          await walk(e.traddr, e.trsvcid, depth + 1);
        } catch (err) {
          log?.warn({ referral: `${e.traddr}:${e.trsvcid}`, err: (err as Error).message }, 'referral not reachable');
        }
        continue;
      }
      const id = `${e.subtype}\u0000${e.subnqn}\u0000${e.trtype}\u0000${e.traddr}\u0000${e.trsvcid}`;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({ ...e, source: key });
    }
  };
  await walk(opts.traddr, opts.trsvcid, 0);
  return out;
}

export interface ConnectAllOptions extends DiscoverOptions {
  /** Options for every I/O controller (address and NQN come from the entry; host identity from the discovery options). */
  readonly connect?: Omit<ConnectOptions, 'traddr' | 'trsvcid' | 'subnqn'>;
}

export interface ConnectAllResult {
  readonly entries: DiscoveredEntry[];
  readonly controllers: Controller[];
  readonly failures: { readonly entry: DiscoveredEntry; readonly error: Error }[];
}

/** Discover, then connect to every TCP NVM subsystem entry (failures are collected, not thrown). */
export async function connectAll(opts: ConnectAllOptions, ctx: HostContext = hostContext()): Promise<ConnectAllResult> {
  const entries = await discover(opts, ctx);
  const targets = entries.filter((e) => e.subtype === SubType.Nvme && e.trtype === TrType.Tcp);
  const settled = await Promise.allSettled(
    targets.map((e) =>
      Controller.connect(
        {
          hostnqn: opts.hostnqn,
          hostid: opts.hostid,
          hdrDigest: opts.hdrDigest,
          dataDigest: opts.dataDigest,
          logger: opts.logger,
          ...opts.connect,
          traddr: e.traddr,
          trsvcid: e.trsvcid,
          subnqn: e.subnqn,
        },
        ctx,
      ),
    ),
  );
  const controllers: Controller[] = [];
  const failures: { entry: DiscoveredEntry; error: Error }[] = [];
  settled.forEach((r, i) => {
    if (r.status === 'fulfilled') controllers.push(r.value);
    else failures.push({ entry: targets[i]!, error: r.reason as Error });
  });
  return { entries, controllers, failures };
}
