/**
 * Target configuration.
 *
 * Input: the JSON document Linux `nvmetcli save` writes (and `nvmetcli
 * restore` reads), unchanged, plus our extensions, which live in an optional
 * `"ext"` object at the top level and in each port, subsystem and namespace.
 * Output: a validated, normalized `TargetConfig`.
 *
 * The nvmetcli format is a dump of the kernel's configfs tree
 * (/sys/kernel/config/nvmet): every writable attribute file `<group>_<name>`
 * becomes `"<group>": { "<name>": "<value as string>" }`, e.g. the port file
 * `addr_trsvcid` is `port.addr.trsvcid`, `attr_serial` is
 * `subsystem.attr.serial`. Values are therefore strings ("4420", "1"), except
 * the few numbers nvmetcli writes itself (portid, nsid, grpid, ana_grpid,
 * enable). We accept numbers and strings for all of them.
 *
 * Which attributes a dump contains depends on the kernel version, so unknown
 * keys inside nvmetcli objects are ignored with a note (TargetConfig.notes);
 * unknown keys at the top level and inside our own `ext` objects are errors.
 *
 * All problems are collected and thrown together as one ConfigError, each
 * message starting with the path of the offending field
 * (`ports[1].addr.trsvcid: "44x" is not a port number`).
 *
 * See docs/configuration.md for the user-facing description.
 */
import { createHash } from 'node:crypto';
import { statSync, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DhchapKeyError, dhGroupIdByName, hashIdByName, parseDhchapKey, type DhGroupIdValue, type HashIdValue } from '../shared/auth.ts';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

export type AnaStateName = 'optimized' | 'non-optimized' | 'inaccessible' | 'persistent-loss' | 'change';

export interface TargetConfig {
  ports: PortConfig[];
  subsystems: SubsystemConfig[];
  /** Host NQNs known to the config (the top-level "hosts" list). */
  hosts: string[];
  /** DH-HMAC-CHAP settings of the hosts that have a key (hosts[].dhchap); absent or empty: none. */
  hostAuth?: HostAuthConfig[];
  control: { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };
  /** 'nqn.2014-08.org.nvmexpress.discovery' unless the file sets discovery.nqn. */
  discoveryNqn: string;
  /** ext.cluster: this process is one node of a multi-node target (docs/cluster.md); null = a single node. */
  cluster: ClusterConfig | null;
  /** Informational notes: ignored nvmetcli attributes, derived values. Not errors. */
  notes: string[];
}

/** One host's DH-HMAC-CHAP settings (docs/security.md). */
export interface HostAuthConfig {
  nqn: string;
  /** The host's secret, DHHC-1 form (validated). */
  key: string;
  /** The controller's secret for bidirectional authentication, or null. */
  ctrlKey: string | null;
  /** Hash the controller asks for in its challenge (dhchap.hash, default hmac(sha256)). */
  hashId: HashIdValue;
  /** DH group the controller asks for (dhchap.dhgroup, default null: no DH exchange). */
  dhGroupId: DhGroupIdValue;
}

export interface PortConfig {
  portid: number;
  trtype: 'tcp';
  adrfam: 'ipv4' | 'ipv6';
  /** Listen address (a literal IP). */
  traddr: string;
  trsvcid: number;
  treq: 'not specified' | 'required' | 'not required';
  /** Address reported in the discovery log; = listen address unless ext.advertise. */
  advertise: { traddr: string; trsvcid: number };
  /** Bytes of in-capsule data accepted on I/O queues; IOCCSZ = (inlineDataSize + 64) / 16. */
  inlineDataSize: number;
  /** MAXH2CDATA reported in ICResp. */
  maxh2cdata: number;
  /** param.max_queue_size; null = the target's default. */
  maxQueueSize: number | null;
  /** Sorted by grpid; always contains group 1. */
  anaGroups: { grpid: number; state: AnaStateName }[];
  referrals: { name: string; portid: number; trtype: 'tcp'; adrfam: 'ipv4' | 'ipv6'; traddr: string; trsvcid: number }[];
  /** NQNs exported on this port. */
  subsystems: string[];
  /**
   * ext.node: the cluster node that serves (listens on) this port; null
   * without ext.cluster. Ports of other nodes are "remote": known for their
   * portid (ANA groups, the active port are global), never listened on.
   */
  node: string | null;
}

/** Top-level ext.cluster: one node of a target whose nodes coordinate through etcd. */
export interface ClusterConfig {
  /** This node's name (ports name their node in ext.node). */
  node: string;
  /** etcd v3 client endpoints (http://host:port), tried in order. */
  etcd: string[];
  /** TTL of this node's liveness lease; etcd counts in whole seconds. */
  leaseTtlMs: number;
  /** Longest a cross-node activation (0xFE) waits for the old node's fence; default 2 x leaseTtlMs. */
  fenceTimeoutMs: number;
  /** Key prefix in etcd (default "/nvmets"). */
  prefix: string;
}

export interface SubsystemConfig {
  nqn: string;
  allowAnyHost: boolean;
  allowedHosts: string[];
  serial: string;
  model: string;
  firmware: string;
  /** NVMe version reported in VS / Identify Controller, e.g. '1.4' or '2.0.1'. */
  version: string;
  ieeeOui: number;
  cntlidMin: number;
  cntlidMax: number;
  maxControllers: number;
  /** attr.qid_max: maximum number of I/O queues per controller. */
  qidMax: number;
  mode: 'active-standby' | 'ana';
  promotion: 'explicit' | 'implicit';
  persistActive: boolean;
  /** portid; null in 'ana' mode (and when no port exports the subsystem). */
  initialActivePort: number | null;
  /** portids exporting this subsystem, in the order of the ports array. */
  ports: number[];
  namespaces: NamespaceConfig[];
}

export interface NamespaceConfig {
  nsid: number;
  enabled: boolean;
  anaGrpid: number;
  /** 32 lowercase hex digits. */
  nguid: string;
  /** Canonical lowercase 8-4-4-4-12. */
  uuid: string;
  /** 16 lowercase hex digits. */
  eui64: string;
  store: {
    kind: 'memory' | 'file' | 'null';
    path?: string;
    sizeBytes?: number;
    blockSize: 512 | 4096;
    createIfMissing: boolean;
  };
  /** portid active for this namespace's ANA group at start; null in 'ana' mode. */
  initialActivePort: number | null;
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[], source?: string) {
    const n = problems.length;
    const head = `${source ? `${source}: ` : ''}invalid configuration (${n} problem${n === 1 ? '' : 's'})`;
    super(`${head}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

export const DISCOVERY_NQN = 'nqn.2014-08.org.nvmexpress.discovery';
export const DEFAULT_SUBSYSTEM_NQN = 'nqn.2026-11.io.nvmets:array0';
export const DEFAULT_MODEL = 'nvmets array';
export const DEFAULT_FIRMWARE = '0.1.0';
export const DEFAULT_VERSION = '1.4';
/** Linux nvmet-tcp: NVMET_TCP_DEF_INLINE_DATA_SIZE = 4 * PAGE_SIZE (16 KiB with 4 KiB pages). */
export const DEFAULT_INLINE_DATA_SIZE = 16384;
export const DEFAULT_MAXH2CDATA = 131072;
/** NVME_CNTLID_MAX: controller ids 0xFFF0..0xFFFF are reserved. */
export const CNTLID_MAX = 0xffef;
/** Linux nvmet: NVMET_MAX_ANAGRPS. */
export const MAX_ANA_GRPID = 128;
/** Linux nvmet: NVMET_NR_QUEUES (default and maximum attr_qid_max). */
export const MAX_QID = 128;
export const NQN_MAX_BYTES = 223;
export const SERIAL_MAX = 20;
export const MODEL_MAX = 40;
export const FIRMWARE_MAX = 8;
const MAX_INLINE_DATA_SIZE = 1 << 20;
/** Linux nvmet-tcp: NVMET_TCP_MAXH2CDATA. */
const MAX_MAXH2CDATA = 0x400000;
const MIN_QUEUE_SIZE = 16;
const MAX_QUEUE_SIZE = 1024;

const ANA_STATES: readonly AnaStateName[] = ['optimized', 'non-optimized', 'inaccessible', 'persistent-loss', 'change'];

export function defaultControlSocketPath(): string {
  const uid = typeof process.getuid === 'function' ? String(process.getuid()) : 'user';
  return path.join(os.tmpdir(), `nvmet-ts-${uid}.sock`);
}

// ---------------------------------------------------------------------------
// Sizes and identifiers
// ---------------------------------------------------------------------------

const SIZE_UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/**
 * Parse a size: a number of bytes, or a string "4096", "512K", "512M", "1G",
 * "1T", "1.5G" (binary units; "GiB", "GB", "g" are accepted and mean the same).
 * Throws RangeError unless the result is a positive safe integer.
 */
export function parseSize(text: string | number): number {
  let bytes: number;
  if (typeof text === 'number') {
    bytes = text;
  } else if (typeof text === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(text);
    if (!m) throw new RangeError(`${JSON.stringify(text)} is not a size (examples: 4096, "512M", "1G", "1T")`);
    bytes = Number(m[1]) * SIZE_UNITS[m[2]!.toUpperCase()]!;
  } else {
    throw new RangeError(`${show(text)} is not a size (a number of bytes or a string like "1G")`);
  }
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new RangeError(`${show(text)} is not a positive whole number of bytes`);
  }
  return bytes;
}

function sha256(...parts: string[]): Buffer {
  return createHash('sha256').update(parts.join('\n')).digest();
}

/**
 * Stable namespace identifiers derived from the subsystem NQN and the nsid:
 * SHA-256 based, so every process reading the same config reports the same
 * ids on every path and across restarts.
 *  - nguid: 16 hash bytes;
 *  - uuid: 16 hash bytes with RFC 9562 version 8 (custom) and variant bits;
 *  - eui64: 8 hash bytes with the locally-administered bit set, multicast clear.
 */
export function deriveNamespaceIds(subsysNqn: string, nsid: number): { nguid: string; uuid: string; eui64: string } {
  const nguid = sha256('nvmets/nguid', subsysNqn, String(nsid)).subarray(0, 16);
  const u = Buffer.from(sha256('nvmets/uuid', subsysNqn, String(nsid)).subarray(0, 16));
  u[6] = (u[6]! & 0x0f) | 0x80;
  u[8] = (u[8]! & 0x3f) | 0x80;
  const e = Buffer.from(sha256('nvmets/eui64', subsysNqn, String(nsid)).subarray(0, 8));
  e[0] = (e[0]! & 0xfc) | 0x02;
  const uh = u.toString('hex');
  return {
    nguid: nguid.toString('hex'),
    uuid: `${uh.slice(0, 8)}-${uh.slice(8, 12)}-${uh.slice(12, 16)}-${uh.slice(16, 20)}-${uh.slice(20)}`,
    eui64: e.toString('hex'),
  };
}

/** Stable default serial number for a subsystem: 16 hex digits derived from the NQN. */
export function deriveSerial(subsysNqn: string): string {
  return sha256('nvmets/serial', subsysNqn).subarray(0, 8).toString('hex');
}

/** nguid/eui64 text: hex digits, optionally separated by '-' or ':' (as nvmet accepts). */
function parseHexId(text: string, bytes: number): string | null {
  const t = text.trim();
  if (!/^[0-9a-fA-F]{2}([-:]?[0-9a-fA-F]{2})*$/.test(t)) return null;
  const hex = t.replace(/[-:]/g, '').toLowerCase();
  return hex.length === bytes * 2 ? hex : null;
}

function parseUuid(text: string): string | null {
  const t = text.trim();
  return /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(t) ? t.toLowerCase() : null;
}

/** A valid NQN: starts with "nqn.", at most 223 bytes of UTF-8, no whitespace or control characters. */
export function nqnProblem(v: unknown): string | null {
  if (typeof v !== 'string') return `${show(v)} is not an NQN (a string "nqn.yyyy-mm.reverse.domain:name")`;
  if (!v.startsWith('nqn.')) return `${JSON.stringify(v)} is not a valid NQN (must start with "nqn.", e.g. "nqn.2026-11.com.example:disk1")`;
  const len = Buffer.byteLength(v, 'utf8');
  if (len > NQN_MAX_BYTES) return `NQN is ${len} bytes long (at most ${NQN_MAX_BYTES} allowed)`;
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(v)) return `${JSON.stringify(v)} is not a valid NQN (contains whitespace or control characters)`;
  return null;
}

// ---------------------------------------------------------------------------
// Parsing context and small helpers
// ---------------------------------------------------------------------------

type Obj = Record<string, unknown>;

class Ctx {
  readonly problems: string[] = [];
  readonly notes: string[] = [];
  constructor(readonly baseDir: string) {}
  err(p: string, msg: string): void {
    this.problems.push(`${p}: ${msg}`);
  }
  note(p: string, msg: string): void {
    this.notes.push(`${p}: ${msg}`);
  }
}

function show(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? 'undefined' : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function join(p: string, key: string | number): string {
  return typeof key === 'number' ? `${p}[${key}]` : p ? `${p}.${key}` : key;
}

/** Optional object: undefined when absent/null; error when not an object. */
function optObj(ctx: Ctx, v: unknown, p: string): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) {
    ctx.err(p, `must be an object, got ${show(v)}`);
    return undefined;
  }
  return v;
}

function optArr(ctx: Ctx, v: unknown, p: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    ctx.err(p, `must be an array, got ${show(v)}`);
    return [];
  }
  return v;
}

/** Unknown keys in an nvmetcli object: noted and ignored. */
function noteUnknown(ctx: Ctx, o: Obj, p: string, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) ctx.note(join(p, k), `unknown nvmetcli attribute ${show(o[k])} ignored`);
  }
}

/** Unknown keys in one of our objects: errors. */
function rejectUnknown(ctx: Ctx, o: Obj, p: string, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) ctx.err(join(p, k), `unknown key (expected one of: ${known.join(', ')})`);
  }
}

/**
 * Integer from a number or a string (nvmetcli writes configfs values as
 * strings). hex: also accept "0x..." (kernel kstrto* with base 0).
 */
function int(
  ctx: Ctx,
  v: unknown,
  p: string,
  min: number,
  max: number,
  what = 'an integer',
  hex = false,
): number | undefined {
  let n: number | undefined;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const t = v.trim();
    if (/^[+-]?\d+$/.test(t)) n = Number(t);
    else if (hex && /^0x[0-9a-f]+$/i.test(t)) n = Number.parseInt(t.slice(2), 16);
  }
  if (n === undefined || !Number.isSafeInteger(n)) {
    ctx.err(p, `${show(v)} is not ${what}`);
    return undefined;
  }
  if (n < min || n > max) {
    ctx.err(p, `${show(v)} is out of range (${min}..${max})`);
    return undefined;
  }
  return n;
}

/** Boolean like the kernel's kstrtobool: true/false, 1/0, "1"/"0", "y"/"n", "on"/"off". */
function bool(ctx: Ctx, v: unknown, p: string): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (v === 1 || v === 0) return v === 1;
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase();
    if (['1', 'y', 'yes', 'on', 'true'].includes(t)) return true;
    if (['0', 'n', 'no', 'off', 'false'].includes(t)) return false;
  }
  ctx.err(p, `${show(v)} is not a boolean (use 0 or 1)`);
  return undefined;
}

function str(ctx: Ctx, v: unknown, p: string): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  ctx.err(p, `must be a string, got ${show(v)}`);
  return undefined;
}

/** nvmet's nvmet_is_ascii(): printable ASCII 0x20..0x7e. */
function asciiField(ctx: Ctx, v: unknown, p: string, max: number, what: string): string | undefined {
  const s = str(ctx, v, p);
  if (s === undefined) return undefined;
  if (s.length === 0) {
    ctx.err(p, `${what} must not be empty`);
    return undefined;
  }
  if (!/^[\x20-\x7e]*$/.test(s)) {
    ctx.err(p, `${JSON.stringify(s)}: ${what} must be printable ASCII`);
    return undefined;
  }
  if (s.length > max) {
    ctx.err(p, `${JSON.stringify(s)} is ${s.length} characters; ${what} is at most ${max}`);
    return undefined;
  }
  return s;
}

function portNumber(ctx: Ctx, v: unknown, p: string, allowEphemeral = false): number | undefined {
  const t = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : undefined;
  const min = allowEphemeral ? 0 : 1;
  if (t === undefined || !/^\d{1,5}$/.test(t) || Number(t) < min || Number(t) > 65535) {
    ctx.err(p, `${show(v)} is not a port number (${min}..65535)`);
    return undefined;
  }
  return Number(t);
}

function ipAddress(ctx: Ctx, v: unknown, p: string, adrfam: 'ipv4' | 'ipv6' | undefined): string | undefined {
  if (typeof v !== 'string' || v.trim() === '') {
    ctx.err(p, `${show(v)} is not an IP address (a literal IPv4 or IPv6 address is required)`);
    return undefined;
  }
  const t = v.trim();
  const fam = isIP(t);
  if (fam === 0) {
    ctx.err(p, `${JSON.stringify(t)} is not an IP address (a literal IPv4 or IPv6 address is required, not a host name)`);
    return undefined;
  }
  if (adrfam === 'ipv4' && fam !== 4) {
    ctx.err(p, `${JSON.stringify(t)} is not an IPv4 address but adrfam is "ipv4"`);
    return undefined;
  }
  if (adrfam === 'ipv6' && fam !== 6) {
    ctx.err(p, `${JSON.stringify(t)} is not an IPv6 address but adrfam is "ipv6"`);
    return undefined;
  }
  return t;
}

function isWildcard(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::' || /^(0{1,4}:){7}0{1,4}$/.test(addr) || addr === '::0';
}

function adrfamOf(addr: string): 'ipv4' | 'ipv6' {
  return isIP(addr) === 6 ? 'ipv6' : 'ipv4';
}

// ---------------------------------------------------------------------------
// Raw (per-object) parsing
// ---------------------------------------------------------------------------

/** What could be parsed of a port: portid and subsystems even when other fields are invalid. */
interface PortParse {
  p: string;
  portid: number | undefined;
  subsystems: string[];
  full: RawPort | undefined;
}

interface RawPort {
  p: string;
  cfg: PortConfig;
  /** ana_groups grpids as configured (before implicit group 1). */
  configuredGroups: Set<number>;
  /** ext.advertise given. */
  hasAdvertise: boolean;
}

interface RawNamespace {
  p: string;
  cfg: NamespaceConfig;
  /** ext.initial_active_port as given (validated against ports later). */
  extInitialPort: number | undefined;
  extInitialPortPath: string;
  /** Which ids were given in the file (the rest are derived). */
  given: { nguid: boolean; uuid: boolean; eui64: boolean };
}

interface RawSubsystem {
  p: string;
  cfg: SubsystemConfig;
  namespaces: RawNamespace[];
  extInitialPort: number | undefined;
}

const TOP_KEYS = ['hosts', 'ports', 'subsystems', 'discovery', 'ext'] as const;

function parseTopExt(ctx: Ctx, v: unknown): TargetConfig['control'] {
  const fallback: TargetConfig['control'] = { kind: 'unix', path: defaultControlSocketPath() };
  const ext = optObj(ctx, v, 'ext');
  if (!ext) return fallback;
  rejectUnknown(ctx, ext, 'ext', ['control', 'cluster']);
  const c = optObj(ctx, ext['control'], 'ext.control');
  if (!c) return fallback;
  if ('socket' in c) {
    rejectUnknown(ctx, c, 'ext.control', ['socket']);
    const s = c['socket'];
    if (typeof s !== 'string' || s === '') {
      ctx.err('ext.control.socket', `${show(s)} is not a socket path`);
      return fallback;
    }
    return { kind: 'unix', path: path.resolve(ctx.baseDir, s) };
  }
  if ('host' in c || 'port' in c) {
    rejectUnknown(ctx, c, 'ext.control', ['host', 'port']);
    const host = c['host'] === undefined ? '127.0.0.1' : ipAddress(ctx, c['host'], 'ext.control.host', undefined);
    const port = portNumber(ctx, c['port'], 'ext.control.port');
    if (host === undefined || port === undefined) return fallback;
    return { kind: 'tcp', host, port };
  }
  ctx.err('ext.control', `must be { "socket": "/path.sock" } or { "host": "127.0.0.1", "port": 4419 }`);
  return fallback;
}

export const DEFAULT_ETCD_ENDPOINT = 'http://127.0.0.1:2379';
export const DEFAULT_LEASE_TTL_MS = 2000;
export const DEFAULT_CLUSTER_PREFIX = '/nvmets';
/** A cluster node name: used in etcd keys and in ports' ext.node. */
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

function nodeName(ctx: Ctx, v: unknown, p: string): string | undefined {
  if (typeof v === 'string' && NODE_NAME.test(v)) return v;
  ctx.err(p, `${show(v)} is not a node name (1..63 of A-Z a-z 0-9 _ . -, starting with a letter or digit)`);
  return undefined;
}

/** Top-level ext.cluster (docs/cluster.md). */
function parseCluster(ctx: Ctx, v: unknown): ClusterConfig | null {
  const ext = isObj(v) ? v : undefined;
  const c = ext ? optObj(ctx, ext['cluster'], 'ext.cluster') : undefined;
  if (!c) return null;
  const p = 'ext.cluster';
  rejectUnknown(ctx, c, p, ['node', 'etcd', 'lease_ttl_ms', 'fence_timeout_ms', 'prefix']);
  const node = c['node'] === undefined ? (ctx.err(join(p, 'node'), 'missing: the name of this node (ports name their node in ext.node)'), undefined)
    : nodeName(ctx, c['node'], join(p, 'node'));
  let etcd: string[] | undefined = [DEFAULT_ETCD_ENDPOINT];
  if (c['etcd'] !== undefined) {
    const list = typeof c['etcd'] === 'string' ? [c['etcd']] : Array.isArray(c['etcd']) ? c['etcd'] : undefined;
    if (!list || list.length === 0) {
      ctx.err(join(p, 'etcd'), `${show(c['etcd'])} is not an etcd endpoint ("http://127.0.0.1:2379") or a non-empty list of them`);
      etcd = undefined;
    } else {
      etcd = [];
      list.forEach((e, i) => {
        const ep = typeof c['etcd'] === 'string' ? join(p, 'etcd') : join(join(p, 'etcd'), i);
        let url: URL | undefined;
        try {
          url = typeof e === 'string' ? new URL(e) : undefined;
        } catch {
          url = undefined;
        }
        if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.port || (url.pathname !== '/' && url.pathname !== '') || url.search || url.username) {
          ctx.err(ep, `${show(e)} is not an etcd client URL (http://host:port, e.g. "http://127.0.0.1:2379")`);
          etcd = undefined;
        } else etcd?.push(`${url.protocol}//${url.host}`);
      });
    }
  }
  let leaseTtlMs: number | undefined = DEFAULT_LEASE_TTL_MS;
  if (c['lease_ttl_ms'] !== undefined) {
    leaseTtlMs = int(ctx, c['lease_ttl_ms'], join(p, 'lease_ttl_ms'), 2000, 60_000, 'a lease TTL in milliseconds');
    if (leaseTtlMs !== undefined && leaseTtlMs % 1000 !== 0) {
      ctx.err(join(p, 'lease_ttl_ms'), `${leaseTtlMs} is not a whole number of seconds (etcd lease TTLs are in seconds)`);
      leaseTtlMs = undefined;
    }
  }
  let fenceTimeoutMs: number | undefined;
  if (c['fence_timeout_ms'] !== undefined) {
    fenceTimeoutMs = int(ctx, c['fence_timeout_ms'], join(p, 'fence_timeout_ms'), 100, 600_000, 'a timeout in milliseconds');
  }
  let prefix: string | undefined = DEFAULT_CLUSTER_PREFIX;
  if (c['prefix'] !== undefined) {
    const s = c['prefix'];
    if (typeof s !== 'string' || !/^(\/[A-Za-z0-9_.:-]+)+$/.test(s)) {
      ctx.err(join(p, 'prefix'), `${show(s)} is not a key prefix ("/name" or "/a/b": no trailing "/", no spaces)`);
      prefix = undefined;
    } else prefix = s;
  }
  if (node === undefined || etcd === undefined || leaseTtlMs === undefined || prefix === undefined
    || (c['fence_timeout_ms'] !== undefined && fenceTimeoutMs === undefined)) return null;
  return { node, etcd, leaseTtlMs, fenceTimeoutMs: fenceTimeoutMs ?? 2 * leaseTtlMs, prefix };
}

function parseHosts(ctx: Ctx, v: unknown, auth: HostAuthConfig[] = []): string[] {
  const out: string[] = [];
  optArr(ctx, v, 'hosts').forEach((h, i) => {
    const p = join('hosts', i);
    if (!isObj(h)) {
      ctx.err(p, `must be an object { "nqn": "..." }, got ${show(h)}`);
      return;
    }
    noteUnknown(ctx, h, p, ['nqn', 'dhchap', ...DHCHAP_ATTRS.map((a) => `dhchap_${a}`)]);
    const bad = nqnProblem(h['nqn']);
    let nqn: string | null = null;
    if (h['nqn'] === undefined) ctx.err(join(p, 'nqn'), 'missing');
    else if (bad) ctx.err(join(p, 'nqn'), bad);
    else if (out.includes(h['nqn'] as string)) ctx.err(join(p, 'nqn'), `duplicate host ${JSON.stringify(h['nqn'])}`);
    else out.push((nqn = h['nqn'] as string));
    parseHostDhchap(ctx, h, p, nqn, auth);
  });
  return out;
}

const DHCHAP_ATTRS = ['key', 'ctrl_key', 'hash', 'dhgroup'] as const;

/**
 * A host's DH-HMAC-CHAP attributes: nvmetcli's attribute group
 * "dhchap": { "key", "ctrl_key", "hash", "dhgroup" } (configfs files
 * dhchap_key, ...), also accepted flat under those file names. Empty values
 * are unset (nvmetcli saves a host without keys that way).
 */
function parseHostDhchap(ctx: Ctx, h: Obj, p: string, nqn: string | null, out: HostAuthConfig[]): void {
  const gp = join(p, 'dhchap');
  const group = optObj(ctx, h['dhchap'], gp);
  if (group) noteUnknown(ctx, group, gp, DHCHAP_ATTRS);
  const v: Partial<Record<(typeof DHCHAP_ATTRS)[number], { value: string; path: string }>> = {};
  for (const a of DHCHAP_ATTRS) {
    const flat = h[`dhchap_${a}`];
    const nested = group?.[a];
    if (flat !== undefined && nested !== undefined) {
      ctx.err(join(p, `dhchap_${a}`), `given twice (also as ${join(gp, a)})`);
      continue;
    }
    const fp = flat !== undefined ? join(p, `dhchap_${a}`) : join(gp, a);
    const raw = flat ?? nested;
    if (raw === undefined || raw === null) continue;
    if (typeof raw !== 'string') ctx.err(fp, `must be a string, got ${show(raw)}`);
    else if (raw.trim() !== '') v[a] = { value: raw.trim(), path: fp };
  }
  const key = (a: 'key' | 'ctrl_key'): string | null => {
    const x = v[a];
    if (!x) return null;
    try {
      parseDhchapKey(x.value);
      return x.value;
    } catch (err) {
      if (!(err instanceof DhchapKeyError)) throw err;
      ctx.err(x.path, `not a usable DH-HMAC-CHAP secret: ${err.message} (generate one with: nvme gen-dhchap-key)`);
      return null;
    }
  };
  const hostKey = key('key');
  const ctrlKey = key('ctrl_key');
  let hashId: HashIdValue = 1;
  if (v.hash) {
    const id = hashIdByName(v.hash.value);
    if (id === null) ctx.err(v.hash.path, `${show(v.hash.value)} is not hmac(sha256), hmac(sha384) or hmac(sha512)`);
    else hashId = id;
  }
  let dhGroupId: DhGroupIdValue = 0;
  if (v.dhgroup) {
    const id = dhGroupIdByName(v.dhgroup.value);
    if (id === null) ctx.err(v.dhgroup.path, `${show(v.dhgroup.value)} is not null, ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144 or ffdhe8192`);
    else dhGroupId = id;
  }
  if (v.ctrl_key && !v.key) {
    ctx.err(v.ctrl_key.path, 'a controller key needs the host key too (bidirectional authentication starts with the host\'s)');
  }
  if (hostKey && ctrlKey && hostKey === ctrlKey) {
    ctx.note(v.ctrl_key!.path, 'is the same secret as the host key: use a different one for each direction');
  }
  if (nqn !== null && hostKey) out.push({ nqn, key: hostKey, ctrlKey, hashId, dhGroupId });
}

function parseDiscovery(ctx: Ctx, v: unknown): string {
  const d = optObj(ctx, v, 'discovery');
  if (!d) return DISCOVERY_NQN;
  noteUnknown(ctx, d, 'discovery', ['nqn']);
  if (d['nqn'] === undefined || d['nqn'] === '') return DISCOVERY_NQN;
  const bad = nqnProblem(d['nqn']);
  if (bad) {
    ctx.err('discovery.nqn', bad);
    return DISCOVERY_NQN;
  }
  return d['nqn'] as string;
}

function parseAnaState(ctx: Ctx, v: unknown, p: string): AnaStateName | undefined {
  if (typeof v === 'string' && (ANA_STATES as readonly string[]).includes(v.trim())) return v.trim() as AnaStateName;
  ctx.err(p, `${show(v)} is not an ANA state (one of: ${ANA_STATES.join(', ')})`);
  return undefined;
}

function parseTrtype(ctx: Ctx, v: unknown, p: string): 'tcp' | undefined {
  if (v === 'tcp') return 'tcp';
  if (v === undefined || v === '') ctx.err(p, 'missing; only "tcp" is supported');
  else ctx.err(p, `${show(v)} is not supported; only "tcp" is supported`);
  return undefined;
}

function parseAdrfam(ctx: Ctx, v: unknown, p: string, traddr: unknown): 'ipv4' | 'ipv6' | undefined {
  if (v === 'ipv4' || v === 'ipv6') return v;
  if (v === undefined || v === '') {
    if (typeof traddr === 'string' && isIP(traddr.trim())) {
      const fam = adrfamOf(traddr.trim());
      ctx.note(p, `not set; "${fam}" inferred from traddr`);
      return fam;
    }
    return undefined; // traddr error reported separately
  }
  ctx.err(p, `${show(v)} is not supported; use "ipv4" or "ipv6"`);
  return undefined;
}

function parsePort(ctx: Ctx, v: unknown, i: number): PortParse {
  const p = join('ports', i);
  if (!isObj(v)) {
    ctx.err(p, `must be an object, got ${show(v)}`);
    return { p, portid: undefined, subsystems: [], full: undefined };
  }
  noteUnknown(ctx, v, p, ['portid', 'addr', 'param', 'ana_groups', 'referrals', 'subsystems', 'ext']);
  const portid = v['portid'] === undefined ? (ctx.err(join(p, 'portid'), 'missing'), undefined)
    : int(ctx, v['portid'], join(p, 'portid'), 0, 65535, 'a port id (0..65535)');

  // addr
  const ap = join(p, 'addr');
  const addr = optObj(ctx, v['addr'], ap);
  if (!addr) {
    if (v['addr'] === undefined) ctx.err(ap, 'missing (needs trtype, adrfam, traddr, trsvcid)');
  } else {
    noteUnknown(ctx, addr, ap, ['trtype', 'adrfam', 'traddr', 'trsvcid', 'treq', 'tsas']);
  }
  const a = addr ?? {};
  const trtype = addr ? parseTrtype(ctx, a['trtype'], join(ap, 'trtype')) : undefined;
  const adrfam = addr ? parseAdrfam(ctx, a['adrfam'], join(ap, 'adrfam'), a['traddr']) : undefined;
  const traddr = addr ? ipAddress(ctx, a['traddr'], join(ap, 'traddr'), adrfam) : undefined;
  // A listen port of 0 lets the OS choose (tests); the advertised port follows it.
  const trsvcid = addr ? portNumber(ctx, a['trsvcid'], join(ap, 'trsvcid'), true) : undefined;
  let treq: PortConfig['treq'] = 'not specified';
  if (addr && a['treq'] !== undefined && a['treq'] !== '') {
    if (a['treq'] === 'not specified' || a['treq'] === 'not required') treq = a['treq'];
    else if (a['treq'] === 'required') ctx.err(join(ap, 'treq'), '"required" (secure channel required) is not supported: this target has no TLS');
    else ctx.err(join(ap, 'treq'), `${show(a['treq'])} is not one of "not specified", "required", "not required"`);
  }
  if (addr && a['tsas'] !== undefined && a['tsas'] !== '' && a['tsas'] !== 'none') {
    if (a['tsas'] === 'tls1.3') ctx.err(join(ap, 'tsas'), '"tls1.3" is not supported: this target has no TLS');
    else ctx.err(join(ap, 'tsas'), `${show(a['tsas'])} is not a TCP security type (only "none" is supported)`);
  }

  // param
  const pp = join(p, 'param');
  const param = optObj(ctx, v['param'], pp);
  let inlineDataSize = DEFAULT_INLINE_DATA_SIZE;
  let maxQueueSize: number | null = null;
  if (param) {
    noteUnknown(ctx, param, pp, ['inline_data_size', 'max_queue_size', 'pi_enable']);
    if (param['inline_data_size'] !== undefined) {
      const n = int(ctx, param['inline_data_size'], join(pp, 'inline_data_size'), -1, MAX_INLINE_DATA_SIZE,
        `an inline data size in bytes (-1 for the default ${DEFAULT_INLINE_DATA_SIZE})`);
      if (n !== undefined && n !== -1) {
        if (n % 16 !== 0) ctx.err(join(pp, 'inline_data_size'), `${n} is not a multiple of 16 (IOCCSZ is in 16-byte units)`);
        else inlineDataSize = n;
      }
    }
    if (param['max_queue_size'] !== undefined) {
      const n = int(ctx, param['max_queue_size'], join(pp, 'max_queue_size'), -1, MAX_QUEUE_SIZE, 'a queue size (-1 for the default)');
      if (n !== undefined && n !== -1) {
        if (n < MIN_QUEUE_SIZE) ctx.err(join(pp, 'max_queue_size'), `${n} is out of range (${MIN_QUEUE_SIZE}..${MAX_QUEUE_SIZE}, or -1)`);
        else maxQueueSize = n;
      }
    }
    if (param['pi_enable'] !== undefined) {
      const pi = bool(ctx, param['pi_enable'], join(pp, 'pi_enable'));
      if (pi) ctx.err(join(pp, 'pi_enable'), 'protection information (T10-PI) is not supported by the TCP transport');
    }
  }

  // ana_groups
  const anaGroups: PortConfig['anaGroups'] = [];
  const configuredGroups = new Set<number>();
  optArr(ctx, v['ana_groups'], join(p, 'ana_groups')).forEach((g, j) => {
    const gp = join(join(p, 'ana_groups'), j);
    if (!isObj(g)) {
      ctx.err(gp, `must be an object { "grpid": N, "ana": { "state": "optimized" } }, got ${show(g)}`);
      return;
    }
    noteUnknown(ctx, g, gp, ['grpid', 'ana']);
    const grpid = g['grpid'] === undefined ? (ctx.err(join(gp, 'grpid'), 'missing'), undefined)
      : int(ctx, g['grpid'], join(gp, 'grpid'), 1, MAX_ANA_GRPID, `an ANA group id (1..${MAX_ANA_GRPID})`);
    const ana = optObj(ctx, g['ana'], join(gp, 'ana'));
    let state: AnaStateName | undefined = grpid === 1 ? 'optimized' : 'inaccessible'; // nvmet's defaults
    if (ana) {
      noteUnknown(ctx, ana, join(gp, 'ana'), ['state']);
      if (ana['state'] !== undefined) state = parseAnaState(ctx, ana['state'], join(gp, 'ana.state'));
    }
    if (grpid === undefined || state === undefined) return;
    if (configuredGroups.has(grpid)) {
      ctx.err(join(gp, 'grpid'), `duplicate ANA group ${grpid} on this port`);
      return;
    }
    configuredGroups.add(grpid);
    anaGroups.push({ grpid, state });
  });
  if (!configuredGroups.has(1)) anaGroups.push({ grpid: 1, state: 'optimized' });

  // referrals
  const referrals: PortConfig['referrals'] = [];
  optArr(ctx, v['referrals'], join(p, 'referrals')).forEach((r, j) => {
    const rp = join(join(p, 'referrals'), j);
    if (!isObj(r)) {
      ctx.err(rp, `must be an object, got ${show(r)}`);
      return;
    }
    noteUnknown(ctx, r, rp, ['name', 'addr', 'enable', 'portid']);
    const name = r['name'] === undefined ? (ctx.err(join(rp, 'name'), 'missing'), undefined) : str(ctx, r['name'], join(rp, 'name'));
    const rap = join(rp, 'addr');
    const ra = optObj(ctx, r['addr'], rap);
    if (!ra) {
      if (r['addr'] === undefined) ctx.err(rap, 'missing');
      return;
    }
    noteUnknown(ctx, ra, rap, ['trtype', 'adrfam', 'traddr', 'trsvcid', 'treq', 'portid', 'tsas']);
    const rtrtype = parseTrtype(ctx, ra['trtype'], join(rap, 'trtype'));
    const radrfam = parseAdrfam(ctx, ra['adrfam'], join(rap, 'adrfam'), ra['traddr']);
    const rtraddr = ipAddress(ctx, ra['traddr'], join(rap, 'traddr'), radrfam);
    const rsvc = portNumber(ctx, ra['trsvcid'], join(rap, 'trsvcid'));
    const rawPortid = ra['portid'] ?? r['portid'];
    const rportid = rawPortid === undefined ? 0 : int(ctx, rawPortid, join(rap, 'portid'), 0, 65535, 'a port id (0..65535)');
    const enabled = r['enable'] === undefined ? true : bool(ctx, r['enable'], join(rp, 'enable'));
    if (name === undefined || rtrtype === undefined || radrfam === undefined || rtraddr === undefined
      || rsvc === undefined || rportid === undefined || enabled === undefined) return;
    if (!enabled) {
      ctx.note(rp, `referral ${JSON.stringify(name)} is disabled (enable = 0) and is not reported`);
      return;
    }
    if (referrals.some((x) => x.name === name)) {
      ctx.err(join(rp, 'name'), `duplicate referral name ${JSON.stringify(name)}`);
      return;
    }
    referrals.push({ name, portid: rportid, trtype: rtrtype, adrfam: radrfam, traddr: rtraddr, trsvcid: rsvc });
  });

  // subsystems
  const subsystems: string[] = [];
  optArr(ctx, v['subsystems'], join(p, 'subsystems')).forEach((s, j) => {
    const sp = join(join(p, 'subsystems'), j);
    if (typeof s !== 'string') {
      ctx.err(sp, `must be a subsystem NQN string, got ${show(s)}`);
      return;
    }
    if (subsystems.includes(s)) ctx.err(sp, `subsystem ${JSON.stringify(s)} listed twice`);
    else subsystems.push(s);
  });

  // ext
  const ep = join(p, 'ext');
  const ext = optObj(ctx, v['ext'], ep);
  let maxh2cdata = DEFAULT_MAXH2CDATA;
  let advertise: { traddr: string; trsvcid: number } | undefined;
  let advOk = true;
  let hasAdvertise = false;
  let node: string | null = null;
  let nodeOk = true;
  if (ext) {
    rejectUnknown(ctx, ext, ep, ['advertise', 'maxh2cdata', 'node']);
    if (ext['node'] !== undefined) {
      node = nodeName(ctx, ext['node'], join(ep, 'node')) ?? null;
      nodeOk = node !== null;
    }
    if (ext['maxh2cdata'] !== undefined) {
      const n = int(ctx, ext['maxh2cdata'], join(ep, 'maxh2cdata'), 4096, MAX_MAXH2CDATA, 'a byte count');
      if (n !== undefined) {
        if (n % 4 !== 0) ctx.err(join(ep, 'maxh2cdata'), `${n} is not a multiple of 4`);
        else maxh2cdata = n;
      }
    }
    const adv = optObj(ctx, ext['advertise'], join(ep, 'advertise'));
    if (adv) {
      hasAdvertise = true;
      rejectUnknown(ctx, adv, join(ep, 'advertise'), ['traddr', 'trsvcid']);
      const at = adv['traddr'] === undefined ? traddr : ipAddress(ctx, adv['traddr'], join(ep, 'advertise.traddr'), adrfam);
      const as = adv['trsvcid'] === undefined ? trsvcid : portNumber(ctx, adv['trsvcid'], join(ep, 'advertise.trsvcid'));
      if (at !== undefined && isWildcard(at)) {
        ctx.err(join(ep, 'advertise.traddr'), `${JSON.stringify(at)} is a wildcard address; advertise an address hosts can connect to`);
        advOk = false;
      } else if (at !== undefined && as !== undefined) advertise = { traddr: at, trsvcid: as };
      else advOk = false;
    }
  }

  if (portid === undefined || trtype === undefined || adrfam === undefined || traddr === undefined
    || trsvcid === undefined || !advOk || !nodeOk) return { p, portid, subsystems, full: undefined };
  if (!hasAdvertise && isWildcard(traddr)) {
    ctx.note(ap, `listening on the wildcard address ${traddr}: the discovery log will report ${traddr}; set ext.advertise`);
  }
  anaGroups.sort((x, y) => x.grpid - y.grpid);
  const full: RawPort = {
    p,
    configuredGroups,
    hasAdvertise,
    cfg: {
      portid, trtype, adrfam, traddr, trsvcid, treq,
      advertise: advertise ?? { traddr, trsvcid },
      inlineDataSize, maxh2cdata, maxQueueSize, anaGroups, referrals, subsystems, node,
    },
  };
  return { p, portid, subsystems, full };
}

function parseNamespace(ctx: Ctx, v: unknown, p: string, subsysNqn: string): RawNamespace | undefined {
  if (!isObj(v)) {
    ctx.err(p, `must be an object, got ${show(v)}`);
    return undefined;
  }
  noteUnknown(ctx, v, p, ['nsid', 'enable', 'ana_grpid', 'ana', 'device', 'resv', 'buffered_io', 'ext']);
  const nsid = v['nsid'] === undefined ? (ctx.err(join(p, 'nsid'), 'missing'), undefined)
    : int(ctx, v['nsid'], join(p, 'nsid'), 1, 0xfffffffe, 'a namespace id (1..4294967294)');
  const enabled = v['enable'] === undefined ? true : bool(ctx, v['enable'], join(p, 'enable'));

  // ANA group: "ana_grpid" (written by nvmetcli) and/or "ana": { "grpid": "N" } (the configfs attr group).
  let anaGrpid: number | undefined = 1;
  const anaObj = optObj(ctx, v['ana'], join(p, 'ana'));
  if (anaObj) noteUnknown(ctx, anaObj, join(p, 'ana'), ['grpid']);
  const g1 = v['ana_grpid'] === undefined ? undefined
    : int(ctx, v['ana_grpid'], join(p, 'ana_grpid'), 1, MAX_ANA_GRPID, `an ANA group id (1..${MAX_ANA_GRPID})`);
  const g2 = anaObj?.['grpid'] === undefined ? undefined
    : int(ctx, anaObj['grpid'], join(p, 'ana.grpid'), 1, MAX_ANA_GRPID, `an ANA group id (1..${MAX_ANA_GRPID})`);
  if (g1 !== undefined && g2 !== undefined && g1 !== g2) {
    ctx.err(join(p, 'ana_grpid'), `${g1} disagrees with ana.grpid ${g2}`);
    anaGrpid = undefined;
  } else if (v['ana_grpid'] !== undefined && g1 === undefined) anaGrpid = undefined;
  else if (anaObj?.['grpid'] !== undefined && g2 === undefined) anaGrpid = undefined;
  else anaGrpid = g1 ?? g2 ?? 1;

  const resv = optObj(ctx, v['resv'], join(p, 'resv'));
  if (resv && resv['enable'] !== undefined && bool(ctx, resv['enable'], join(p, 'resv.enable'))) {
    ctx.note(join(p, 'resv.enable'), 'persistent reservations are not supported; ignored');
  }

  // device
  const dp = join(p, 'device');
  const dev = optObj(ctx, v['device'], dp) ?? {};
  noteUnknown(ctx, dev, dp, ['path', 'nguid', 'uuid', 'eui64']);
  const derived = nsid !== undefined ? deriveNamespaceIds(subsysNqn, nsid) : undefined;
  const given = { nguid: false, uuid: false, eui64: false };
  const idField = (key: 'nguid' | 'uuid' | 'eui64'): string | undefined => {
    const raw = dev[key];
    if (raw === undefined || raw === null || raw === '') return derived?.[key];
    if (typeof raw !== 'string') {
      ctx.err(join(dp, key), `must be a string, got ${show(raw)}`);
      return undefined;
    }
    const val = key === 'uuid' ? parseUuid(raw) : parseHexId(raw, key === 'nguid' ? 16 : 8);
    if (val === null) {
      const fmt = key === 'uuid' ? 'a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)'
        : key === 'nguid' ? 'an NGUID (32 hex digits, optionally separated by "-" or ":")'
          : 'an EUI-64 (16 hex digits, optionally separated by "-" or ":")';
      ctx.err(join(dp, key), `${JSON.stringify(raw)} is not ${fmt}`);
      return undefined;
    }
    if (/^[0-]*$/.test(val)) {
      // nvmetcli writes all-zero ids for "not set".
      if (derived) ctx.note(join(dp, key), `all zero (not set); using derived ${derived[key]}`);
      return derived?.[key];
    }
    given[key] = true;
    return val;
  };
  const nguid = idField('nguid');
  const uuid = idField('uuid');
  const eui64 = idField('eui64');

  if (v['buffered_io'] !== undefined) ctx.note(join(p, 'buffered_io'), 'ignored');

  // ext
  const ep = join(p, 'ext');
  const ext = optObj(ctx, v['ext'], ep);
  if (ext) rejectUnknown(ctx, ext, ep, ['store', 'size', 'block_size', 'initial_active_port']);
  const e = ext ?? {};
  let storeKind: 'memory' | 'file' | 'null' | undefined;
  if (e['store'] !== undefined) {
    if (e['store'] === 'memory' || e['store'] === 'file' || e['store'] === 'null') storeKind = e['store'];
    else ctx.err(join(ep, 'store'), `${show(e['store'])} is not a store kind ("memory", "file" or "null")`);
  }
  let blockSize: 512 | 4096 | undefined;
  let blockSizeOk = true;
  if (e['block_size'] !== undefined) {
    const b = typeof e['block_size'] === 'string' ? Number(e['block_size'].trim()) : e['block_size'];
    if (b === 512 || b === 4096) blockSize = b;
    else {
      ctx.err(join(ep, 'block_size'), `${show(e['block_size'])} is not a supported block size (512 or 4096)`);
      blockSizeOk = false;
    }
  }
  let sizeBytes: number | undefined;
  let sizeOk = true;
  if (e['size'] !== undefined) {
    try {
      sizeBytes = parseSize(e['size'] as string | number);
    } catch (err) {
      ctx.err(join(ep, 'size'), (err as Error).message);
      sizeOk = false;
    }
  }
  let extInitialPort: number | undefined;
  if (e['initial_active_port'] !== undefined) {
    extInitialPort = int(ctx, e['initial_active_port'], join(ep, 'initial_active_port'), 0, 65535, 'a port id');
  }

  const store = resolveStore(ctx, p, dev['path'], storeKind, e['store'] !== undefined, blockSize, blockSizeOk, sizeBytes, sizeOk);

  if (nsid === undefined || enabled === undefined || anaGrpid === undefined || nguid === undefined
    || uuid === undefined || eui64 === undefined || store === undefined) return undefined;
  return {
    p,
    cfg: { nsid, enabled, anaGrpid, nguid, uuid, eui64, store, initialActivePort: null },
    extInitialPort,
    extInitialPortPath: join(ep, 'initial_active_port'),
    given,
  };
}

function describeNonRegular(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function statOrNull(ctx: Ctx, file: string, p: string): Stats | null | undefined {
  try {
    return statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    ctx.err(p, `cannot stat ${file}: ${(err as Error).message}`);
    return undefined;
  }
}

function resolveStore(
  ctx: Ctx,
  p: string,
  rawPath: unknown,
  kind: 'memory' | 'file' | 'null' | undefined,
  kindGiven: boolean,
  blockSize: 512 | 4096 | undefined,
  blockSizeOk: boolean,
  sizeBytes: number | undefined,
  sizeOk: boolean,
): NamespaceConfig['store'] | undefined {
  const pathP = join(p, 'device.path');
  const sizeP = join(p, 'ext.size');
  if (kindGiven && kind === undefined) return undefined; // bad ext.store already reported
  const checkMultiple = (bs: number): boolean => {
    if (sizeBytes !== undefined && sizeBytes % bs !== 0) {
      ctx.err(sizeP, `${sizeBytes} bytes is not a multiple of the block size ${bs}`);
      return false;
    }
    return true;
  };

  if (kind === 'memory' || kind === 'null') {
    const bs = blockSize ?? 512;
    if (sizeBytes === undefined) {
      if (sizeOk) ctx.err(sizeP, `missing: a ${kind} store needs ext.size (e.g. "1G")`);
      return undefined;
    }
    if (typeof rawPath === 'string' && rawPath !== '') {
      ctx.note(pathP, `ignored: the namespace is served by a ${kind} store`);
    }
    if (!blockSizeOk || !checkMultiple(bs)) return undefined;
    return { kind, sizeBytes, blockSize: bs, createIfMissing: false };
  }

  // file store: explicit (ext.store "file") or implied (no ext.store, like nvmet).
  if (rawPath === undefined || rawPath === null || rawPath === '') {
    ctx.err(pathP, kindGiven
      ? 'missing: a file store needs device.path'
      : 'missing: set device.path to a regular file, or ext.store to "memory" or "null" with ext.size');
    return undefined;
  }
  if (typeof rawPath !== 'string') {
    ctx.err(pathP, `must be a string, got ${show(rawPath)}`);
    return undefined;
  }
  const file = path.resolve(ctx.baseDir, rawPath);
  const st = statOrNull(ctx, file, pathP);
  if (st === undefined) return undefined;
  if (st !== null && !st.isFile()) {
    const what = describeNonRegular(st);
    ctx.err(pathP, kindGiven
      ? `${rawPath} is not a regular file (it is ${what}); a file store needs a regular file`
      : `${rawPath} is not a regular file (it is ${what}); set ext.store to "memory" or "null" with ext.size to emulate it`);
    return undefined;
  }
  if (st === null) {
    if (!kindGiven) {
      ctx.err(pathP, `${rawPath} does not exist; set ext.store to "file" with ext.size to create it, `
        + 'or to "memory" or "null" with ext.size to emulate it');
      return undefined;
    }
    if (sizeBytes === undefined) {
      if (sizeOk) ctx.err(sizeP, `missing: ${rawPath} does not exist and ext.size is needed to create it`);
      return undefined;
    }
    const dir = path.dirname(file);
    const dst = statOrNull(ctx, dir, pathP);
    if (dst === null || (dst && !dst.isDirectory())) {
      ctx.err(pathP, `cannot create ${rawPath}: directory ${dir} does not exist`);
      return undefined;
    }
    const bs = blockSize ?? 512;
    if (!blockSizeOk || !checkMultiple(bs)) return undefined;
    return { kind: 'file', path: file, sizeBytes, blockSize: bs, createIfMissing: true };
  }

  // Existing regular file. Block size: ext.block_size; otherwise, for a plain
  // nvmetcli namespace, what nvmet uses for a file (min(i_blkbits, 12): 4096
  // on common file systems), and 512 when ext.store is given.
  const bs: 512 | 4096 = blockSize ?? (!kindGiven && st.blksize >= 4096 ? 4096 : 512);
  if (!blockSizeOk) return undefined;
  if (sizeBytes !== undefined) {
    if (!checkMultiple(bs)) return undefined;
    // The file store extends a smaller file; a larger one is used partially.
    return { kind: 'file', path: file, sizeBytes, blockSize: bs, createIfMissing: false };
  }
  const whole = Math.floor(st.size / bs) * bs;
  if (whole <= 0) {
    ctx.err(pathP, `${rawPath} is ${st.size} bytes, smaller than one ${bs}-byte block`);
    return undefined;
  }
  if (whole !== st.size) {
    ctx.note(pathP, `${rawPath} is ${st.size} bytes, not a multiple of ${bs}; the namespace is ${whole} bytes`);
  }
  return { kind: 'file', path: file, sizeBytes: whole, blockSize: bs, createIfMissing: false };
}

function parseSubsystem(ctx: Ctx, v: unknown, i: number): RawSubsystem | undefined {
  const p = join('subsystems', i);
  if (!isObj(v)) {
    ctx.err(p, `must be an object, got ${show(v)}`);
    return undefined;
  }
  noteUnknown(ctx, v, p, ['nqn', 'attr', 'allowed_hosts', 'namespaces', 'passthru', 'ext']);
  let nqn: string | undefined;
  if (v['nqn'] === undefined) ctx.err(join(p, 'nqn'), 'missing');
  else {
    const bad = nqnProblem(v['nqn']);
    if (bad) ctx.err(join(p, 'nqn'), bad);
    else nqn = v['nqn'] as string;
  }

  // attr
  const atp = join(p, 'attr');
  const attr = optObj(ctx, v['attr'], atp) ?? {};
  noteUnknown(ctx, attr, atp, ['allow_any_host', 'serial', 'model', 'version', 'cntlid_min', 'cntlid_max',
    'pi_enable', 'firmware', 'ieee_oui', 'qid_max']);
  const allowAnyHost = attr['allow_any_host'] === undefined ? false : bool(ctx, attr['allow_any_host'], join(atp, 'allow_any_host'));
  const serial = attr['serial'] === undefined ? (nqn ? deriveSerial(nqn) : undefined)
    : asciiField(ctx, attr['serial'], join(atp, 'serial'), SERIAL_MAX, 'the serial number');
  const model = attr['model'] === undefined ? DEFAULT_MODEL : asciiField(ctx, attr['model'], join(atp, 'model'), MODEL_MAX, 'the model number');
  let version: string | undefined = DEFAULT_VERSION;
  if (attr['version'] !== undefined) {
    const s = str(ctx, attr['version'], join(atp, 'version'));
    const m = s === undefined ? null : /^(\d+)\.(\d+)(?:\.(\d+))?$/.exec(s.trim());
    if (!m || Number(m[1]) > 65535 || Number(m[1]) < 1 || Number(m[2]) > 255 || Number(m[3] ?? 0) > 255) {
      if (s !== undefined) ctx.err(join(atp, 'version'), `${show(attr['version'])} is not an NVMe version ("major.minor" or "major.minor.tertiary", e.g. "1.4")`);
      version = undefined;
    } else {
      version = `${Number(m[1])}.${Number(m[2])}${m[3] !== undefined && Number(m[3]) !== 0 ? `.${Number(m[3])}` : ''}`;
    }
  }
  const cntlidMin = attr['cntlid_min'] === undefined ? 1 : int(ctx, attr['cntlid_min'], join(atp, 'cntlid_min'), 1, CNTLID_MAX, 'a controller id');
  const cntlidMax = attr['cntlid_max'] === undefined ? CNTLID_MAX : int(ctx, attr['cntlid_max'], join(atp, 'cntlid_max'), 1, CNTLID_MAX, 'a controller id');
  if (cntlidMin !== undefined && cntlidMax !== undefined && cntlidMin > cntlidMax) {
    ctx.err(join(atp, 'cntlid_min'), `${cntlidMin} is greater than cntlid_max ${cntlidMax}`);
  }
  const ieeeOui = attr['ieee_oui'] === undefined ? 0 : int(ctx, attr['ieee_oui'], join(atp, 'ieee_oui'), 0, 0xffffff, 'an IEEE OUI (24-bit, e.g. "0x001122")', true);
  const qidMax = attr['qid_max'] === undefined ? MAX_QID : int(ctx, attr['qid_max'], join(atp, 'qid_max'), 1, MAX_QID, 'a queue count');
  if (attr['pi_enable'] !== undefined && bool(ctx, attr['pi_enable'], join(atp, 'pi_enable'))) {
    ctx.note(join(atp, 'pi_enable'), 'protection information is not supported; ignored');
  }
  let firmware: string | undefined = DEFAULT_FIRMWARE;
  if (attr['firmware'] !== undefined) firmware = asciiField(ctx, attr['firmware'], join(atp, 'firmware'), FIRMWARE_MAX, 'the firmware revision');

  // allowed_hosts
  const allowedHosts: string[] = [];
  optArr(ctx, v['allowed_hosts'], join(p, 'allowed_hosts')).forEach((h, j) => {
    const hp = join(join(p, 'allowed_hosts'), j);
    const bad = nqnProblem(h);
    if (bad) ctx.err(hp, bad);
    else if (allowedHosts.includes(h as string)) ctx.err(hp, `duplicate host ${JSON.stringify(h)}`);
    else allowedHosts.push(h as string);
  });
  if (allowAnyHost && allowedHosts.length > 0) {
    ctx.err(join(p, 'allowed_hosts'), 'must be empty when attr.allow_any_host is 1 (nvmet refuses both)');
  }
  if (allowAnyHost === false && allowedHosts.length === 0) {
    ctx.note(p, 'allow_any_host is 0 and allowed_hosts is empty: no host can connect');
  }

  // passthru
  optArr(ctx, v['passthru'], join(p, 'passthru')).forEach((pt, j) => {
    const ptp = join(join(p, 'passthru'), j);
    if (isObj(pt) && pt['enable'] !== undefined && bool(ctx, pt['enable'], join(ptp, 'enable'))) {
      ctx.err(ptp, 'passthru subsystems are not supported');
    } else {
      ctx.note(ptp, 'disabled passthru settings ignored');
    }
  });

  // ext
  const ep = join(p, 'ext');
  const ext = optObj(ctx, v['ext'], ep);
  if (ext) rejectUnknown(ctx, ext, ep, ['mode', 'promotion', 'persist_active', 'initial_active_port', 'firmware', 'max_controllers']);
  const e = ext ?? {};
  let mode: SubsystemConfig['mode'] | undefined = 'ana';
  if (e['mode'] !== undefined) {
    if (e['mode'] === 'ana' || e['mode'] === 'active-standby') mode = e['mode'];
    else {
      ctx.err(join(ep, 'mode'), `${show(e['mode'])} is not a mode ("ana" or "active-standby")`);
      mode = undefined;
    }
  }
  let promotion: SubsystemConfig['promotion'] | undefined = 'implicit';
  if (e['promotion'] !== undefined) {
    if (e['promotion'] === 'explicit' || e['promotion'] === 'implicit') promotion = e['promotion'];
    else {
      ctx.err(join(ep, 'promotion'), `${show(e['promotion'])} is not a promotion policy ("explicit" or "implicit")`);
      promotion = undefined;
    }
  }
  let persistActive: boolean | undefined = false;
  if (e['persist_active'] !== undefined) {
    if (typeof e['persist_active'] === 'boolean') persistActive = e['persist_active'];
    else {
      ctx.err(join(ep, 'persist_active'), `${show(e['persist_active'])} is not true or false`);
      persistActive = undefined;
    }
  }
  if (mode === 'ana') {
    for (const k of ['promotion', 'persist_active', 'initial_active_port']) {
      if (e[k] !== undefined) ctx.note(join(ep, k), 'has no effect in "ana" mode');
    }
  }
  const extInitialPort = e['initial_active_port'] === undefined ? undefined
    : int(ctx, e['initial_active_port'], join(ep, 'initial_active_port'), 0, 65535, 'a port id');
  if (e['firmware'] !== undefined) {
    const fw = asciiField(ctx, e['firmware'], join(ep, 'firmware'), FIRMWARE_MAX, 'the firmware revision');
    if (fw !== undefined && attr['firmware'] !== undefined && firmware !== undefined && fw !== firmware) {
      ctx.note(join(ep, 'firmware'), `overrides attr.firmware ${JSON.stringify(firmware)}`);
    }
    firmware = fw;
  }
  let maxControllers: number | undefined;
  const cntlidRange = cntlidMin !== undefined && cntlidMax !== undefined && cntlidMin <= cntlidMax ? cntlidMax - cntlidMin + 1 : undefined;
  if (e['max_controllers'] !== undefined) {
    maxControllers = int(ctx, e['max_controllers'], join(ep, 'max_controllers'), 1, CNTLID_MAX, 'a controller count');
    if (maxControllers !== undefined && cntlidRange !== undefined && maxControllers > cntlidRange) {
      ctx.err(join(ep, 'max_controllers'), `${maxControllers} is more than the ${cntlidRange} controller ids in cntlid_min..cntlid_max`);
      maxControllers = undefined;
    }
  } else {
    maxControllers = cntlidRange;
  }

  // namespaces
  const namespaces: RawNamespace[] = [];
  const seenNsid = new Map<number, string>();
  optArr(ctx, v['namespaces'], join(p, 'namespaces')).forEach((n, j) => {
    const np = join(join(p, 'namespaces'), j);
    const rawNsid = isObj(n) ? int(new Ctx(ctx.baseDir), n['nsid'], '', 1, 0xfffffffe) : undefined;
    let dup = false;
    if (rawNsid !== undefined) {
      const prev = seenNsid.get(rawNsid);
      if (prev !== undefined) {
        ctx.err(join(np, 'nsid'), `duplicate nsid ${rawNsid} (also ${prev})`);
        dup = true;
      } else seenNsid.set(rawNsid, np);
    }
    const ns = parseNamespace(ctx, n, np, nqn ?? '');
    if (ns && !dup) namespaces.push(ns);
  });

  if (nqn === undefined || allowAnyHost === undefined || serial === undefined || model === undefined
    || version === undefined || cntlidMin === undefined || cntlidMax === undefined || ieeeOui === undefined
    || qidMax === undefined || firmware === undefined || maxControllers === undefined || mode === undefined
    || promotion === undefined || persistActive === undefined) return undefined;
  return {
    p,
    namespaces,
    extInitialPort,
    cfg: {
      nqn, allowAnyHost, allowedHosts, serial, model, firmware, version, ieeeOui, cntlidMin, cntlidMax,
      maxControllers, qidMax, mode, promotion, persistActive, initialActivePort: null, ports: [],
      namespaces: namespaces.map((n) => n.cfg),
    },
  };
}

// ---------------------------------------------------------------------------
// parseConfig: per-object parsing, then cross-object checks
// ---------------------------------------------------------------------------

/**
 * Validate and normalize a configuration document (nvmetcli JSON + ext).
 * opts.baseDir: directory relative device paths and socket paths are resolved
 * against (default: the current directory). Throws ConfigError listing every
 * problem found.
 */
export function parseConfig(json: unknown, opts: { baseDir?: string } = {}): TargetConfig {
  const ctx = new Ctx(path.resolve(opts.baseDir ?? process.cwd()));
  if (!isObj(json)) throw new ConfigError([`(top level): must be a JSON object, got ${show(json)}`]);

  for (const k of Object.keys(json)) {
    if (!(TOP_KEYS as readonly string[]).includes(k)) {
      ctx.err(k, `unknown top-level key (expected: ${TOP_KEYS.join(', ')})`);
    }
  }
  const control = parseTopExt(ctx, json['ext']);
  const cluster = parseCluster(ctx, json['ext']);
  const discoveryNqn = parseDiscovery(ctx, json['discovery']);
  const hostAuth: HostAuthConfig[] = [];
  const hosts = parseHosts(ctx, json['hosts'], hostAuth);
  const subs = optArr(ctx, json['subsystems'], 'subsystems').map((s, i) => parseSubsystem(ctx, s, i));
  const ports = optArr(ctx, json['ports'], 'ports').map((p, i) => parsePort(ctx, p, i));

  // --- subsystems: unique NQNs, not the discovery NQN, allowed hosts known
  const subByNqn = new Map<string, RawSubsystem>();
  for (const s of subs) {
    if (!s) continue;
    const nqnP = join(s.p, 'nqn');
    if (s.cfg.nqn === discoveryNqn || s.cfg.nqn === DISCOVERY_NQN) {
      ctx.err(nqnP, `${JSON.stringify(s.cfg.nqn)} is the discovery subsystem NQN`);
    } else if (subByNqn.has(s.cfg.nqn)) {
      ctx.err(nqnP, `duplicate subsystem ${JSON.stringify(s.cfg.nqn)} (also ${subByNqn.get(s.cfg.nqn)!.p})`);
    } else subByNqn.set(s.cfg.nqn, s);
    s.cfg.allowedHosts.forEach((h, j) => {
      if (!hosts.includes(h)) {
        ctx.err(join(join(s.p, 'allowed_hosts'), j), `host ${JSON.stringify(h)} is not listed in the top-level "hosts"`);
      }
    });
  }
  // (subsystems whose nqn failed to parse cannot be referenced, but ports naming them should not
  // produce a second, misleading "unknown subsystem" error)
  const unparsedSubNqns = new Set<string>();
  optArr(new Ctx(ctx.baseDir), json['subsystems'], '').forEach((s) => {
    if (isObj(s) && typeof s['nqn'] === 'string' && !subByNqn.has(s['nqn'])) unparsedSubNqns.add(s['nqn']);
  });

  // --- ports: unique portids and addresses, subsystems exist
  const portById = new Map<number, PortParse>();
  const listenSeen: RawPort[] = [];
  const advSeen = new Map<string, RawPort>();
  for (const pp of ports) {
    if (pp.portid === undefined) continue;
    if (portById.has(pp.portid)) {
      ctx.err(join(pp.p, 'portid'), `duplicate portid ${pp.portid} (also ${portById.get(pp.portid)!.p})`);
      continue;
    }
    portById.set(pp.portid, pp);
    if (pp.subsystems.length === 0) ctx.note(pp.p, 'exports no subsystem (Linux nvmet would not listen on it)');
    pp.subsystems.forEach((nqn, j) => {
      const s = subByNqn.get(nqn);
      if (s) s.cfg.ports.push(pp.portid!);
      else if (!unparsedSubNqns.has(nqn)) {
        ctx.err(join(join(pp.p, 'subsystems'), j), `unknown subsystem ${JSON.stringify(nqn)} (not in "subsystems")`);
      }
    });
    const rp = pp.full;
    if (!rp) continue;
    const c = rp.cfg;
    if (c.node !== null && !cluster && !(isObj(json['ext']) && json['ext']['cluster'] !== undefined)) {
      ctx.err(join(rp.p, 'ext.node'), 'needs the top-level ext.cluster (a port names its node only in a multi-node target)');
    } else if (c.node === null && cluster) {
      ctx.err(join(rp.p, 'ext.node'), `missing: with ext.cluster every port names the node that serves it (this node is ${JSON.stringify(cluster.node)})`);
    }
    // Ports of different nodes listen in different processes (usually on different machines).
    const clash = c.trsvcid === 0 ? undefined : listenSeen.find((o) => o.cfg.node === c.node && o.cfg.trsvcid === c.trsvcid && o.cfg.adrfam === c.adrfam
      && (o.cfg.traddr === c.traddr || isWildcard(o.cfg.traddr) || isWildcard(c.traddr)));
    if (clash) {
      ctx.err(join(rp.p, 'addr'), `listen address ${fmtAddr(c.traddr, c.trsvcid)} conflicts with ${clash.p} (${fmtAddr(clash.cfg.traddr, clash.cfg.trsvcid)})`);
    }
    listenSeen.push(rp);
    const advKey = fmtAddr(c.advertise.traddr, c.advertise.trsvcid);
    const advClash = advSeen.get(advKey);
    if (advClash && !clash && c.advertise.trsvcid !== 0) {
      ctx.err(join(rp.p, rp.hasAdvertise ? 'ext.advertise' : 'addr'), `advertised address ${advKey} is also advertised by ${advClash.p}`);
    }
    if (!advClash && c.advertise.trsvcid !== 0) advSeen.set(advKey, rp);
  }

  // --- per subsystem: initial active ports, ANA groups
  for (const s of subByNqn.values()) {
    const sc = s.cfg;
    if (sc.ports.length === 0) ctx.note(s.p, 'not exported on any port');
    const checkPort = (pid: number, p: string): boolean => {
      if (!portById.has(pid)) {
        ctx.err(p, `unknown port ${pid} (no port with that portid)`);
        return false;
      }
      if (!sc.ports.includes(pid)) {
        ctx.err(p, `port ${pid} does not export ${sc.nqn}`);
        return false;
      }
      return true;
    };

    if (sc.mode === 'active-standby') {
      if (s.extInitialPort !== undefined) {
        if (checkPort(s.extInitialPort, join(s.p, 'ext.initial_active_port'))) sc.initialActivePort = s.extInitialPort;
      } else {
        sc.initialActivePort = sc.ports[0] ?? null;
      }
      // Namespaces: override, then per-group consistency (a group moves as a whole).
      const groupPort = new Map<number, { port: number | null; p: string }>();
      for (const n of s.namespaces) {
        let port = sc.initialActivePort;
        if (n.extInitialPort !== undefined) {
          port = checkPort(n.extInitialPort, n.extInitialPortPath) ? n.extInitialPort : null;
        }
        n.cfg.initialActivePort = port;
        const prev = groupPort.get(n.cfg.anaGrpid);
        if (prev && prev.port !== port) {
          ctx.err(n.extInitialPort !== undefined ? n.extInitialPortPath : join(n.p, 'ana_grpid'),
            `namespaces in ANA group ${n.cfg.anaGrpid} move together but this one starts active on port ${port} `
            + `and ${prev.p} on port ${prev.port}; use one initial_active_port per group or separate ANA groups`);
        } else if (!prev) groupPort.set(n.cfg.anaGrpid, { port, p: n.p });
      }
      // Each exporting port gets the groups the namespaces use (states are derived at runtime).
      for (const [grpid, { port: active }] of groupPort) {
        for (const pid of sc.ports) {
          const rp = portById.get(pid)!.full;
          if (rp && !rp.cfg.anaGroups.some((g) => g.grpid === grpid)) {
            const state: AnaStateName = pid === active ? 'optimized' : 'inaccessible';
            rp.cfg.anaGroups.push({ grpid, state });
            rp.cfg.anaGroups.sort((x, y) => x.grpid - y.grpid);
            ctx.note(join(rp.p, 'ana_groups'), `ANA group ${grpid} added for ${sc.nqn} (initial state ${state})`);
          }
        }
      }
    } else {
      for (const n of s.namespaces) {
        if (n.extInitialPort !== undefined) ctx.note(n.extInitialPortPath, 'has no effect in "ana" mode');
        if (n.cfg.anaGrpid === 1) continue;
        for (const pid of sc.ports) {
          const rp = portById.get(pid)!.full;
          if (rp && !rp.configuredGroups.has(n.cfg.anaGrpid)) {
            ctx.err(join(n.p, 'ana_grpid'), `ANA group ${n.cfg.anaGrpid} is not configured on port ${pid} `
              + `(add { "grpid": ${n.cfg.anaGrpid}, "ana": { "state": ... } } to ${rp.p}.ana_groups)`);
          }
        }
      }
    }
  }

  // --- namespace ids unique across the whole configuration
  const ids = { nguid: new Map<string, string>(), uuid: new Map<string, string>(), eui64: new Map<string, string>() };
  for (const s of subByNqn.values()) {
    for (const n of s.namespaces) {
      for (const key of ['nguid', 'uuid', 'eui64'] as const) {
        const val = n.cfg[key];
        const prev = ids[key].get(val);
        if (prev !== undefined) ctx.err(join(n.p, `device.${key}`), `${val} is already used by ${prev}`);
        else ids[key].set(val, n.p);
      }
      if (!n.given.nguid || !n.given.uuid || !n.given.eui64) {
        const which = (['nguid', 'uuid', 'eui64'] as const).filter((k) => !n.given[k]);
        ctx.note(n.p, `derived ${which.map((k) => `${k} ${n.cfg[k]}`).join(', ')}`);
      }
    }
  }

  // --- cluster: this node serves some port; shared namespaces need a shared store
  if (cluster) {
    const mine = [...portById.values()].filter((pp) => pp.full?.cfg.node === cluster.node);
    if (mine.length === 0) ctx.note('ext.cluster.node', `no port names node ${JSON.stringify(cluster.node)}: this node serves no port`);
    for (const s of subByNqn.values()) {
      if (s.cfg.mode !== 'active-standby') {
        ctx.note(s.p, 'ana mode: not coordinated across cluster nodes (each node reports its ports\' configured states)');
        continue;
      }
      if (s.cfg.persistActive) ctx.note(join(s.p, 'ext.persist_active'), 'ignored with ext.cluster: the active paths are kept in etcd');
      for (const n of s.namespaces) {
        if (n.cfg.store.kind === 'memory') {
          ctx.err(join(n.p, 'ext.store'), '"memory" is private to one process; with ext.cluster the nodes must share the namespace: use a "file" store every node opens');
        }
      }
    }
  }

  // --- DH-HMAC-CHAP applies where a keyed host is named in allowed_hosts (as nvmet)
  if (hostAuth.length > 0) {
    for (const s of subByNqn.values()) {
      if (s.cfg.allowAnyHost) {
        ctx.note(join(s.p, 'attr.allow_any_host'), 'is 1: hosts connecting to this subsystem are not authenticated (as nvmet, DH-HMAC-CHAP applies to hosts listed in allowed_hosts)');
      }
    }
  }

  if (ctx.problems.length > 0) throw new ConfigError(ctx.problems);
  return {
    ports: ports.flatMap((p) => (p.full ? [p.full.cfg] : [])),
    subsystems: [...subByNqn.values()].map((s) => s.cfg),
    hosts,
    hostAuth,
    control,
    discoveryNqn,
    cluster,
    notes: ctx.notes,
  };
}

function fmtAddr(traddr: string, trsvcid: number): string {
  return isIP(traddr) === 6 ? `[${traddr}]:${trsvcid}` : `${traddr}:${trsvcid}`;
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/** Line and column (1-based) of a character offset. */
function lineCol(text: string, pos: number): { line: number; col: number } {
  const before = text.slice(0, Math.max(0, Math.min(pos, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, col: lines[lines.length - 1]!.length + 1 };
}

/**
 * Read and parse a configuration file. Relative paths inside it (device
 * paths, control socket) are resolved against the file's directory. Throws
 * ConfigError: unreadable file, JSON syntax error (with line and column), or
 * the validation problems (message prefixed with the file name).
 */
export async function loadConfigFile(file: string): Promise<TargetConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read the file: ${(err as Error).message}`], file);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    const m = /at position (\d+)/.exec(msg);
    const pos = m ? Number(m[1]) : /end of JSON input/i.test(msg) ? text.length : undefined;
    let where = '';
    if (pos !== undefined) {
      const { line, col } = lineCol(text, pos);
      where = ` at line ${line} column ${col}`;
    }
    const problem = `${file}${where}: invalid JSON: ${msg.replace(/\s*in JSON at position \d+.*$/, '')}`;
    const e = new ConfigError([problem]);
    e.message = problem;
    throw e;
  }
  try {
    return parseConfig(json, { baseDir: path.dirname(path.resolve(file)) });
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.problems, file);
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Built-in defaults
// ---------------------------------------------------------------------------

export interface DefaultConfigOverrides {
  /** Listen address of every port (default 127.0.0.1). */
  traddr?: string;
  /** TCP port numbers, one target port each, portids 1, 2, ... (default [4420, 4421]). */
  ports?: number[];
  /** Size of the memory namespace (default 1 GiB). */
  sizeBytes?: number;
  /** Subsystem NQN (default nqn.2026-11.io.nvmets:array0). */
  nqn?: string;
}

/**
 * The built-in configuration as a config document (nvmetcli format + ext),
 * suitable for printing as a starting point for a config file.
 */
export function defaultConfigDocument(overrides: DefaultConfigOverrides = {}): Record<string, unknown> {
  const traddr = overrides.traddr ?? '127.0.0.1';
  const svcs = overrides.ports ?? [4420, 4421];
  const nqn = overrides.nqn ?? DEFAULT_SUBSYSTEM_NQN;
  const size = overrides.sizeBytes ?? 2 ** 30;
  const subExt: Record<string, unknown> = { mode: 'active-standby', promotion: 'implicit', persist_active: false };
  if (svcs.length > 0) subExt['initial_active_port'] = 1;
  return {
    hosts: [],
    ports: svcs.map((svc, i) => ({
      portid: i + 1,
      addr: { trtype: 'tcp', adrfam: isIP(traddr) === 6 ? 'ipv6' : 'ipv4', traddr, trsvcid: String(svc), treq: 'not specified' },
      param: { inline_data_size: String(DEFAULT_INLINE_DATA_SIZE) },
      ana_groups: [{ grpid: 1, ana: { state: i === 0 ? 'optimized' : 'inaccessible' } }],
      referrals: [],
      subsystems: [nqn],
    })),
    subsystems: [{
      nqn,
      attr: { allow_any_host: '1', model: DEFAULT_MODEL, version: DEFAULT_VERSION },
      allowed_hosts: [],
      namespaces: [{ nsid: 1, enable: 1, ana_grpid: 1, device: {}, ext: { store: 'memory', size, block_size: 512 } }],
      ext: { ...subExt, firmware: DEFAULT_FIRMWARE },
    }],
  };
}

/**
 * Built-in defaults: subsystem nqn.2026-11.io.nvmets:array0 (allow any host,
 * model "nvmets array", firmware "0.1.0", derived serial), one 1 GiB memory
 * namespace (nsid 1, 512-byte blocks, ANA group 1), ports 1 and 2 on
 * 127.0.0.1:4420 and :4421, mode active-standby with port 1 active, implicit
 * promotion. Throws ConfigError for invalid overrides.
 */
export function defaultConfig(overrides: DefaultConfigOverrides = {}): TargetConfig {
  return parseConfig(defaultConfigDocument(overrides));
}
