/**
 * Connect options and their defaults, the Linux fabrics ones
 * (drivers/nvme/host/fabrics.h): kato 5 s, reconnect_delay 10 s,
 * ctrl_loss_tmo 600 s, fast_io_fail_tmo off, queue_size 128, digests off,
 * io_timeout 30 s, admin_timeout 60 s. Times here are in milliseconds.
 *
 * resolveConnectOptions() checks everything at once against one zod schema
 * per controller kind and throws one HostError('OPTIONS_INVALID') listing
 * every problem, each named by its option.
 */
import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import pino, { type Logger } from 'pino';
import { z } from 'zod';
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

// ---------------------------------------------------------------- the options schema

/** An integer option; -1 also where it means "off". */
function intIn(min: number, max: number, allowMinusOne = false) {
  const expected = (iss: { input?: unknown }) => `${String(iss.input)} is not an integer in ${min}..${max}${allowMinusOne ? ' (or -1 for off)' : ''}`;
  const n = z.number({ error: expected }).int({ error: expected });
  const inRange = n.min(min, { error: expected }).max(max, { error: expected });
  return allowMinusOne ? z.union([z.literal(-1), inRange], { error: expected }) : inRange;
}

/** An NQN option: the problem says what is wrong with the value as given. */
const nqnOption = z
  .string({ error: (iss) => `"${String(iss.input)}" is not a string` })
  .refine((v) => nqnProblem(v) === null, { error: (iss) => `"${String(iss.input)}" ${nqnProblem(iss.input as string)}` });

const trueOrFalse = z.boolean({ error: 'must be true or false' });

const dhchapSecret = z.string({ error: (iss) => `${String(iss.input)} is not a DH-HMAC-CHAP secret` }).transform((v, ctx): DhchapKey => {
  try {
    return parseDhchapKey(v);
  } catch (err) {
    if (!(err instanceof DhchapKeyError)) throw err;
    ctx.issues.push({ code: 'custom', input: v, message: err.message });
    return z.NEVER;
  }
});

const MS = 2 ** 31 - 1;

/** The options of one controller kind, in the order problems are listed; absent means the default. */
function connectSchema(kind: 'io' | 'discovery') {
  return z.object({
    traddr: z
      .string({ error: 'required (IP address or host name)' })
      .refine((v) => v.trim() !== '', { error: 'required (IP address or host name)', abort: true })
      .refine((v) => isIP(v) !== 0 || /^[A-Za-z0-9.-]+$/.test(v), { error: (iss) => `"${String(iss.input)}" is neither an IP address nor a host name` }),
    // nvme-cli's trsvcid is text: digits are a port number; anything else is reported as given.
    trsvcid: z
      .preprocess((v) => (typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : v), intIn(1, 65535))
      .default(kind === 'discovery' ? DISCOVERY_PORT : NVME_PORT),
    subnqn:
      kind === 'discovery'
        ? nqnOption.default(DISCOVERY_NQN)
        : nqnOption.default('').refine((v) => v !== DISCOVERY_NQN, { error: 'the discovery NQN names a discovery controller: use discover()' }),
    hostnqn: nqnOption.optional(),
    hostid: z
      .string({ error: (iss) => `"${String(iss.input)}" is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)` })
      .regex(UUID_RE, { error: (iss) => `"${String(iss.input)}" is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)` })
      .optional(),
    katoMs: intIn(0, 0xffffffff).default(kind === 'discovery' ? 0 : DEFAULTS.katoMs),
    reconnectDelayMs: intIn(1, MS).default(DEFAULTS.reconnectDelayMs),
    ctrlLossTmoMs: intIn(0, MS, true).default(DEFAULTS.ctrlLossTmoMs),
    fastIoFailTmoMs: intIn(0, MS, true).default(DEFAULTS.fastIoFailTmoMs),
    nrIoQueues:
      kind === 'discovery'
        ? z
            .unknown()
            .optional()
            .transform(() => 0)
        : intIn(1, MAX_IO_QUEUES).optional(),
    queueSize: intIn(MIN_QUEUE_SIZE, MAX_QUEUE_SIZE).default(DEFAULTS.queueSize),
    ioTimeoutMs: intIn(1, MS).default(DEFAULTS.ioTimeoutMs),
    adminTimeoutMs: intIn(1, MS).default(DEFAULTS.adminTimeoutMs),
    connectTimeoutMs: intIn(1, MS).default(DEFAULTS.connectTimeoutMs),
    instance: intIn(0, MS).optional(),
    hdrDigest: trueOrFalse.default(DEFAULTS.hdrDigest),
    dataDigest: trueOrFalse.default(DEFAULTS.dataDigest),
    disableSqflow: trueOrFalse.default(DEFAULTS.disableSqflow),
    ioQueuePolicy: z
      .enum(['round-robin', 'least-inflight'], { error: (iss) => `"${String(iss.input)}" is not round-robin or least-inflight` })
      .default(DEFAULTS.ioQueuePolicy),
    dhchapKey: dhchapSecret.optional(),
    dhchapCtrlKey: dhchapSecret.optional(),
  });
}
const SCHEMAS = { io: connectSchema('io'), discovery: connectSchema('discovery') };

/** New keys for Controller.reauthenticate(): absent keeps the key in use; a null dhchapCtrlKey drops the controller key. */
export interface ReauthKeys {
  readonly dhchapKey?: string;
  readonly dhchapCtrlKey?: string | null;
}

const reauthSchema = z.object({ dhchapKey: dhchapSecret.optional(), dhchapCtrlKey: dhchapSecret.nullable().optional() }).strict();

/**
 * New keys for a re-authentication, parsed: absent fields are absent here
 * too (the caller keeps its key), a null dhchapCtrlKey stays null. Throws
 * HostError OPTIONS_INVALID listing every problem (nothing is changed then).
 */
export function parseReauthKeys(keys: ReauthKeys): { key?: DhchapKey; ctrlKey?: DhchapKey | null } {
  const r = reauthSchema.safeParse(keys);
  if (!r.success) throw reauthKeysInvalid(r.error.issues.map((i) => `${i.path.map(String).join('.') || 'keys'}: ${i.message}`));
  return {
    ...(r.data.dhchapKey !== undefined ? { key: r.data.dhchapKey } : {}),
    ...(r.data.dhchapCtrlKey !== undefined ? { ctrlKey: r.data.dhchapCtrlKey } : {}),
  };
}

export function reauthKeysInvalid(problems: string[]): HostError {
  return new HostError(
    'OPTIONS_INVALID',
    `invalid re-authentication keys (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`,
  );
}

/** Fill in defaults and validate; throws HostError OPTIONS_INVALID listing every problem. */
export function resolveConnectOptions(o: ConnectOptions, kind: 'io' | 'discovery' = 'io'): ResolvedConnectOptions {
  const r = SCHEMAS[kind].safeParse(o);
  const problems = r.success ? [] : r.error.issues.map((i) => `${i.path.map(String).join('.')}: ${i.message}`);
  if (o.dhchapCtrlKey !== undefined && o.dhchapKey === undefined && !problems.some((p) => p.startsWith('dhchapCtrlKey:'))) {
    problems.push('dhchapCtrlKey: needs dhchapKey too (the host authenticates first)');
  }
  if (!r.success || problems.length) {
    throw new HostError(
      'OPTIONS_INVALID',
      `invalid connect options (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`,
    );
  }
  const v = r.data;
  const ident = v.hostnqn !== undefined && v.hostid !== undefined ? null : defaultHostIdentity();
  const hostnqn = v.hostnqn ?? ident!.hostnqn;
  const hostidText = v.hostid ?? ident!.hostid;
  const logger = o.logger ?? silentLogger;
  if (v.fastIoFailTmoMs > v.ctrlLossTmoMs && v.ctrlLossTmoMs !== -1) {
    logger.warn({ fastIoFailTmoMs: v.fastIoFailTmoMs, ctrlLossTmoMs: v.ctrlLossTmoMs }, 'fast_io_fail_tmo is longer than ctrl_loss_tmo: it never takes effect');
  }
  return {
    traddr: o.traddr,
    trsvcid: v.trsvcid,
    subnqn: v.subnqn,
    hostnqn,
    hostid: Buffer.from(hostidText.replace(/-/g, ''), 'hex'),
    katoMs: v.katoMs,
    reconnectDelayMs: v.reconnectDelayMs,
    ctrlLossTmoMs: v.ctrlLossTmoMs,
    fastIoFailTmoMs: v.fastIoFailTmoMs,
    nrIoQueues: v.nrIoQueues ?? defaultNrIoQueues(),
    queueSize: v.queueSize,
    hdrDigest: v.hdrDigest,
    dataDigest: v.dataDigest,
    disableSqflow: v.disableSqflow,
    ioTimeoutMs: v.ioTimeoutMs,
    adminTimeoutMs: v.adminTimeoutMs,
    connectTimeoutMs: v.connectTimeoutMs,
    ioQueuePolicy: v.ioQueuePolicy,
    logger,
    dhchapKey: v.dhchapKey ?? null,
    dhchapCtrlKey: v.dhchapCtrlKey ?? null,
    instance: v.instance ?? null,
    maxReconnects: v.ctrlLossTmoMs === -1 ? -1 : Math.ceil(v.ctrlLossTmoMs / v.reconnectDelayMs),
  };
}
