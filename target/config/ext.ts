/**
 * The top-level "ext" section: ours, not nvmetcli's. ext.control (where the
 * control endpoint listens) and ext.cluster (docs/cluster.md).
 */
import path from 'node:path';
import { z } from 'zod';
import { int, ipAddress, need, nodeName, ours, portNumber, show, type Ctx, type Read } from './fields.ts';
import {
  DEFAULT_CLUSTER_PREFIX,
  DEFAULT_ETCD_ENDPOINT,
  DEFAULT_LEASE_TTL_MS,
  defaultControlSocketPath,
  type ClusterConfig,
  type TargetConfig,
} from './types.ts';

/** Any JSON object; which table reads it depends on its keys. */
const anyObject = z.record(z.string(), z.unknown(), { error: (iss) => `must be an object, got ${show(iss.input)}` });

const notSocketPath = (iss: { input?: unknown }) => `${show(iss.input)} is not a socket path`;
const socketControl = ours({ socket: need(z.string({ error: notSocketPath }).min(1, { error: notSocketPath })) });
const tcpControl = ours({ host: ipAddress, port: need(portNumber(), 'missing (a port number, 1..65535)') });

const etcdUrl = z.unknown().transform((e, ctx): string => {
  let url: URL | undefined;
  try {
    url = typeof e === 'string' ? new URL(e) : undefined;
  } catch {
    url = undefined;
  }
  if (
    !url ||
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    !url.port ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search ||
    url.username
  ) {
    ctx.issues.push({ code: 'custom', input: e, message: `${show(e)} is not an etcd client URL (http://host:port, e.g. "http://127.0.0.1:2379")` });
    return z.NEVER;
  }
  return `${url.protocol}//${url.host}`;
});

const oneEndpoint = etcdUrl.transform((u) => [u]);
const endpointList = z.array(etcdUrl);

/** One endpoint (its problem at ext.cluster.etcd), or a non-empty list of them (at ext.cluster.etcd[i]). */
const etcdEndpoints = z.unknown().transform((v, ctx): string[] => {
  const form = typeof v === 'string' ? oneEndpoint : Array.isArray(v) && v.length > 0 ? endpointList : undefined;
  const r = form?.safeParse(v);
  if (r?.success) return r.data;
  if (r) ctx.issues.push(...r.error.issues.map((i) => ({ code: 'custom' as const, input: v, path: i.path, message: i.message })));
  else ctx.issues.push({ code: 'custom', input: v, message: `${show(v)} is not an etcd endpoint ("http://127.0.0.1:2379") or a non-empty list of them` });
  return z.NEVER;
});

const leaseTtl = int(2000, 60_000, 'a lease TTL in milliseconds').pipe(
  z.number().refine((n) => n % 1000 === 0, { error: (iss) => `${String(iss.input)} is not a whole number of seconds (etcd lease TTLs are in seconds)` }),
);

const notKeyPrefix = (iss: { input?: unknown }) => `${show(iss.input)} is not a key prefix ("/name" or "/a/b": no trailing "/", no spaces)`;
const keyPrefix = z.string({ error: notKeyPrefix }).regex(/^(\/[A-Za-z0-9_.:-]+)+$/, { error: notKeyPrefix });

export const clusterSection = ours({
  node: need(nodeName, 'missing: the name of this node (ports name their node in ext.node)'),
  etcd: etcdEndpoints,
  lease_ttl_ms: leaseTtl,
  fence_timeout_ms: int(100, 600_000, 'a timeout in milliseconds'),
  prefix: keyPrefix,
});

export const extSection = ours({ control: anyObject, cluster: clusterSection });

export interface TopExt {
  control: TargetConfig['control'];
  /** null: a single node (or a refused ext.cluster, reported). */
  cluster: ClusterConfig | null;
  /** ext.cluster was written, valid or not (a port's ext.node is then not "without a cluster"). */
  clusterGiven: boolean;
}

export function resolveExt(ctx: Ctx, doc: unknown): TopExt {
  const fallback: TargetConfig['control'] = { kind: 'unix', path: defaultControlSocketPath() };
  const ext = ctx.section(extSection, doc, 'ext');
  return {
    control: ext?.v.control ? (resolveControl(ctx, ext.v.control) ?? fallback) : fallback,
    cluster: ext?.v.cluster ? resolveCluster(ext.v.cluster) : null,
    clusterGiven: ext?.raw['cluster'] !== undefined,
  };
}

function resolveControl(ctx: Ctx, c: Record<string, unknown>): TargetConfig['control'] | undefined {
  if ('socket' in c) {
    const s = ctx.section(socketControl, c, 'ext.control');
    return s?.v.socket !== undefined ? { kind: 'unix', path: path.resolve(ctx.baseDir, s.v.socket) } : undefined;
  }
  if ('host' in c || 'port' in c) {
    const t = ctx.section(tcpControl, c, 'ext.control');
    if (!t || t.bad.size > 0 || t.v.port === undefined) return undefined;
    return { kind: 'tcp', host: t.v.host ?? '127.0.0.1', port: t.v.port };
  }
  ctx.err('ext.control', `must be { "socket": "/path.sock" } or { "host": "127.0.0.1", "port": 4419 }`);
  return undefined;
}

function resolveCluster(c: Read<typeof clusterSection.fields>): ClusterConfig | null {
  const { node, etcd, lease_ttl_ms, fence_timeout_ms, prefix } = c.v;
  if (node === undefined || c.bad.size > 0) return null;
  const leaseTtlMs = lease_ttl_ms ?? DEFAULT_LEASE_TTL_MS;
  return {
    node,
    etcd: etcd ?? [DEFAULT_ETCD_ENDPOINT],
    leaseTtlMs,
    fenceTimeoutMs: fence_timeout_ms ?? 2 * leaseTtlMs,
    prefix: prefix ?? DEFAULT_CLUSTER_PREFIX,
  };
}
