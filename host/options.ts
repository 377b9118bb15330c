/**
 * Connect options and their defaults, the Linux fabrics ones
 * (drivers/nvme/host/fabrics.h): kato 5 s, reconnect_delay 10 s,
 * ctrl_loss_tmo 600 s, fast_io_fail_tmo off, queue_size 128, digests off,
 * io_timeout 30 s, admin_timeout 60 s. Times here are in milliseconds.
 *
 * resolveConnectOptions() checks everything at once and throws one
 * HostError('OPTIONS_INVALID') listing every problem.
 */
import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import pino, { type Logger } from 'pino';
import { DhchapKeyError, parseDhchapKey, type DhchapKey } from '../shared/auth.ts';
import { DISCOVERY_NQN, nqnProblem } from '../shared/fabrics.ts';
import { HostError } from './errors.ts';

export type IoQueuePolicy = 'round-robin' | 'least-inflight';

export interface ConnectOptions {
  /** Target address: IPv4/IPv6 literal or host name. */
  readonly traddr: string;
  /** TCP port; default 4420 (8009 for discovery). */
  readonly trsvcid?: number | string;
  readonly subnqn: string;
  /** Default: /etc/nvme/hostnqn, else a uuid NQN generated once per process. */
  readonly hostnqn?: string;
  /** 8-4-4-4-12 UUID. Default: /etc/nvme/hostid, else the uuid of a uuid hostnqn, else generated once per process. */
  readonly hostid?: string;
  /** Keep-alive timeout in ms sent in Connect; Keep Alive goes every kato/2. 0 disables. Default 5000. */
  readonly katoMs?: number;
  /** Delay between reconnect attempts, ms. Default 10000. */
  readonly reconnectDelayMs?: number;
  /** Give up reconnecting after this long, ms; -1 = never. Default 600000. */
  readonly ctrlLossTmoMs?: number;
  /** After this long reconnecting, I/O fails fast; -1 = off (default). */
  readonly fastIoFailTmoMs?: number;
  /** Default min(2, cores). */
  readonly nrIoQueues?: number;
  /** I/O queue depth asked for (bounded by CAP.MQES + 1). Default 128. */
  readonly queueSize?: number;
  readonly hdrDigest?: boolean;
  readonly dataDigest?: boolean;
  /** Connect CATTR bit 2: disable SQ flow control (lets the target use C2HData SUCCESS). Default false. */
  readonly disableSqflow?: boolean;
  readonly ioTimeoutMs?: number;
  readonly adminTimeoutMs?: number;
  /** TCP connect plus ICResp wait, ms. Default 10000 (Linux waits 10 s for ICResp). */
  readonly connectTimeoutMs?: number;
  /** How a path picks an I/O queue. Default round-robin. */
  readonly ioQueuePolicy?: IoQueuePolicy;
  /**
   * Controller instance, the N of its name nvmeN. Default: the next number of
   * a per-process counter. A session that names its controllers (the CLI
   * agent) passes the lowest free number, as Linux reuses freed instances.
   */
  readonly instance?: number;
  /**
   * DH-HMAC-CHAP secret of this host, "DHHC-1:XX:<base64>:" (nvme-cli's
   * --dhchap-secret). Used when the target asks for authentication.
   */
  readonly dhchapKey?: string;
  /**
   * The controller's secret (nvme-cli's --dhchap-ctrl-secret): the host then
   * also authenticates the controller (bidirectional), and insists on it even
   * when the target does not ask for authentication. Needs dhchapKey.
   */
  readonly dhchapCtrlKey?: string;
  /** pino logger; silent by default. */
  readonly logger?: Logger;
}

export interface ResolvedConnectOptions {
  readonly traddr: string;
  readonly trsvcid: number;
  readonly subnqn: string;
  readonly hostnqn: string;
  readonly hostid: Buffer;
  readonly katoMs: number;
  readonly reconnectDelayMs: number;
  readonly ctrlLossTmoMs: number;
  readonly fastIoFailTmoMs: number;
  readonly nrIoQueues: number;
  readonly queueSize: number;
  readonly hdrDigest: boolean;
  readonly dataDigest: boolean;
  readonly disableSqflow: boolean;
  readonly ioTimeoutMs: number;
  readonly adminTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly ioQueuePolicy: IoQueuePolicy;
  readonly logger: Logger;
  /** Parsed DH-HMAC-CHAP secrets, or null. */
  readonly dhchapKey: DhchapKey | null;
  readonly dhchapCtrlKey: DhchapKey | null;
  /** Requested controller instance, or null for the next one. */
  readonly instance: number | null;
  /** Linux's max_reconnects: ceil(ctrl_loss_tmo / reconnect_delay), -1 = forever. */
  readonly maxReconnects: number;
}

export const NVME_PORT = 4420;
export const DISCOVERY_PORT = 8009;
export const DEFAULTS = {
  katoMs: 5000,
  reconnectDelayMs: 10_000,
  ctrlLossTmoMs: 600_000,
  fastIoFailTmoMs: -1,
  queueSize: 128,
  hdrDigest: false,
  dataDigest: false,
  disableSqflow: false,
  ioTimeoutMs: 30_000,
  adminTimeoutMs: 60_000,
  connectTimeoutMs: 10_000,
  ioQueuePolicy: 'round-robin' as IoQueuePolicy,
} as const;
/** Linux NVMF_MIN_QUEUE_SIZE / NVMF_MAX_QUEUE_SIZE. */
export const MIN_QUEUE_SIZE = 16;
export const MAX_QUEUE_SIZE = 1024;
/** Linux NVME_AQ_DEPTH. */
export const ADMIN_QUEUE_DEPTH = 32;
export const MAX_IO_QUEUES = 128;

export function defaultNrIoQueues(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const UUID_NQN_PREFIX = 'nqn.2014-08.org.nvmexpress:uuid:';

let hostIdentity: { hostnqn: string; hostid: string } | null = null;

function readTrimmed(file: string): string | null {
  try {
    if (!existsSync(file)) return null;
    const v = readFileSync(file, 'utf8').trim();
    return v.length > 0 ? v : null;
  } catch {
    return null;
  }
}

/**
 * This host's NQN and host id, as nvme-cli finds them: /etc/nvme/hostnqn and
 * /etc/nvme/hostid when present; otherwise one uuid NQN generated per process
 * (every controller of the process then shares it, as they must).
 */
export function defaultHostIdentity(): { hostnqn: string; hostid: string } {
  if (hostIdentity) return hostIdentity;
  const fileNqn = readTrimmed('/etc/nvme/hostnqn');
  const fileId = readTrimmed('/etc/nvme/hostid');
  const hostnqn = fileNqn && nqnProblem(fileNqn) === null ? fileNqn : `${UUID_NQN_PREFIX}${randomUUID()}`;
  let hostid = fileId && UUID_RE.test(fileId) ? fileId : null;
  if (!hostid && hostnqn.startsWith(UUID_NQN_PREFIX) && UUID_RE.test(hostnqn.slice(UUID_NQN_PREFIX.length))) {
    hostid = hostnqn.slice(UUID_NQN_PREFIX.length);
  }
  hostIdentity = { hostnqn, hostid: hostid ?? randomUUID() };
  return hostIdentity;
}

export const silentLogger: Logger = pino({ level: 'silent' });

function intIn(problems: string[], name: string, v: unknown, min: number, max: number, allowMinusOne = false): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || ((v < min || v > max) && !(allowMinusOne && v === -1))) {
    problems.push(`${name}: ${String(v)} is not an integer in ${min}..${max}${allowMinusOne ? ' (or -1 for off)' : ''}`);
    return min;
  }
  return v;
}

function parsePort(problems: string[], v: number | string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : v;
  return intIn(problems, 'trsvcid', n, 1, 65535);
}

function dhchapOption(problems: string[], name: string, v: string | undefined): DhchapKey | null {
  if (v === undefined) return null;
  try {
    return parseDhchapKey(v);
  } catch (err) {
    if (!(err instanceof DhchapKeyError)) throw err;
    problems.push(`${name}: ${err.message}`);
    return null;
  }
}

/** Fill in defaults and validate; throws HostError OPTIONS_INVALID listing every problem. */
export function resolveConnectOptions(o: ConnectOptions, kind: 'io' | 'discovery' = 'io'): ResolvedConnectOptions {
  const problems: string[] = [];
  if (typeof o.traddr !== 'string' || o.traddr.trim() === '') problems.push('traddr: required (IP address or host name)');
  else if (isIP(o.traddr) === 0 && !/^[A-Za-z0-9.-]+$/.test(o.traddr)) problems.push(`traddr: "${o.traddr}" is neither an IP address nor a host name`);
  const trsvcid = parsePort(problems, o.trsvcid, kind === 'discovery' ? DISCOVERY_PORT : NVME_PORT);
  const subnqn = o.subnqn ?? (kind === 'discovery' ? DISCOVERY_NQN : '');
  const subProblem = typeof subnqn === 'string' ? nqnProblem(subnqn) : 'is not a string';
  if (subProblem) problems.push(`subnqn: "${String(subnqn)}" ${subProblem}`);
  if (kind === 'io' && subnqn === DISCOVERY_NQN) problems.push('subnqn: the discovery NQN names a discovery controller: use discover()');
  const ident = o.hostnqn !== undefined && o.hostid !== undefined ? null : defaultHostIdentity();
  const hostnqn = o.hostnqn ?? ident!.hostnqn;
  const hnProblem = typeof hostnqn === 'string' ? nqnProblem(hostnqn) : 'is not a string';
  if (hnProblem) problems.push(`hostnqn: "${String(hostnqn)}" ${hnProblem}`);
  const hostidText = o.hostid ?? ident!.hostid;
  let hostid = Buffer.alloc(16);
  if (typeof hostidText !== 'string' || !UUID_RE.test(hostidText)) problems.push(`hostid: "${String(hostidText)}" is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
  else hostid = Buffer.from(hostidText.replace(/-/g, ''), 'hex');
  const katoMs = intIn(problems, 'katoMs', o.katoMs ?? (kind === 'discovery' ? 0 : DEFAULTS.katoMs), 0, 0xffffffff);
  const reconnectDelayMs = intIn(problems, 'reconnectDelayMs', o.reconnectDelayMs ?? DEFAULTS.reconnectDelayMs, 1, 2 ** 31 - 1);
  const ctrlLossTmoMs = intIn(problems, 'ctrlLossTmoMs', o.ctrlLossTmoMs ?? DEFAULTS.ctrlLossTmoMs, 0, 2 ** 31 - 1, true);
  const fastIoFailTmoMs = intIn(problems, 'fastIoFailTmoMs', o.fastIoFailTmoMs ?? DEFAULTS.fastIoFailTmoMs, 0, 2 ** 31 - 1, true);
  const nrIoQueues = kind === 'discovery' ? 0 : intIn(problems, 'nrIoQueues', o.nrIoQueues ?? defaultNrIoQueues(), 1, MAX_IO_QUEUES);
  const queueSize = intIn(problems, 'queueSize', o.queueSize ?? DEFAULTS.queueSize, MIN_QUEUE_SIZE, MAX_QUEUE_SIZE);
  const ioTimeoutMs = intIn(problems, 'ioTimeoutMs', o.ioTimeoutMs ?? DEFAULTS.ioTimeoutMs, 1, 2 ** 31 - 1);
  const adminTimeoutMs = intIn(problems, 'adminTimeoutMs', o.adminTimeoutMs ?? DEFAULTS.adminTimeoutMs, 1, 2 ** 31 - 1);
  const connectTimeoutMs = intIn(problems, 'connectTimeoutMs', o.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, 1, 2 ** 31 - 1);
  const instance = o.instance === undefined ? null : intIn(problems, 'instance', o.instance, 0, 2 ** 31 - 1);
  for (const k of ['hdrDigest', 'dataDigest', 'disableSqflow'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') problems.push(`${k}: must be true or false`);
  }
  const ioQueuePolicy = o.ioQueuePolicy ?? DEFAULTS.ioQueuePolicy;
  if (ioQueuePolicy !== 'round-robin' && ioQueuePolicy !== 'least-inflight') problems.push(`ioQueuePolicy: "${String(ioQueuePolicy)}" is not round-robin or least-inflight`);
  const dhchapKey = dhchapOption(problems, 'dhchapKey', o.dhchapKey);
  const dhchapCtrlKey = dhchapOption(problems, 'dhchapCtrlKey', o.dhchapCtrlKey);
  if (dhchapCtrlKey && o.dhchapKey === undefined) problems.push('dhchapCtrlKey: needs dhchapKey too (the host authenticates first)');
  if (problems.length) {
    throw new HostError('OPTIONS_INVALID', `invalid connect options (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`);
  }
  const logger = o.logger ?? silentLogger;
  if (fastIoFailTmoMs > ctrlLossTmoMs && ctrlLossTmoMs !== -1) {
    logger.warn({ fastIoFailTmoMs, ctrlLossTmoMs }, 'fast_io_fail_tmo is longer than ctrl_loss_tmo: it never takes effect');
  }
  return {
    traddr: o.traddr,
    trsvcid,
    subnqn,
    hostnqn,
    hostid,
    katoMs,
    reconnectDelayMs,
    ctrlLossTmoMs,
    fastIoFailTmoMs,
    nrIoQueues,
    queueSize,
    hdrDigest: o.hdrDigest ?? DEFAULTS.hdrDigest,
    dataDigest: o.dataDigest ?? DEFAULTS.dataDigest,
    disableSqflow: o.disableSqflow ?? DEFAULTS.disableSqflow,
    ioTimeoutMs,
    adminTimeoutMs,
    connectTimeoutMs,
    ioQueuePolicy,
    logger,
    dhchapKey,
    dhchapCtrlKey,
    instance,
    maxReconnects: ctrlLossTmoMs === -1 ? -1 : Math.ceil(ctrlLossTmoMs / reconnectDelayMs),
  };
}
