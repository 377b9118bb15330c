/**
 * What a parsed configuration is: the public types, the error that lists
 * every problem, and the limits and defaults the section tables apply.
 */
import os from 'node:os';
import path from 'node:path';
import type { DhGroupIdValue, HashIdValue } from '../../shared/auth.ts';

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
export const MAX_INLINE_DATA_SIZE = 1 << 20;
/** Linux nvmet-tcp: NVMET_TCP_MAXH2CDATA. */
export const MAX_MAXH2CDATA = 0x400000;
export const MIN_QUEUE_SIZE = 16;
export const MAX_QUEUE_SIZE = 1024;
export const DEFAULT_ETCD_ENDPOINT = 'http://127.0.0.1:2379';
export const DEFAULT_LEASE_TTL_MS = 2000;
export const DEFAULT_CLUSTER_PREFIX = '/nvmets';

export const ANA_STATES = ['optimized', 'non-optimized', 'inaccessible', 'persistent-loss', 'change'] as const satisfies readonly AnaStateName[];

export function defaultControlSocketPath(): string {
  const uid = typeof process.getuid === 'function' ? String(process.getuid()) : 'user';
  return path.join(os.tmpdir(), `nvmet-ts-${uid}.sock`);
}
