/**
 * ext.cluster and ports' ext.node in the configuration (docs/configuration.md,
 * docs/cluster.md): defaults, normalization, and every refusal naming its field.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../target/config/index.ts';
import { EtcdClient } from '../../target/etcd.ts';

const NQN = 'nqn.2026-11.io.nvmets:c';
type Doc = Record<string, any>;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'nvmets-cluster-config-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function doc(node = 'a'): Doc {
  return {
    hosts: [],
    ports: [
      { portid: 1, addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '127.0.0.1', trsvcid: '4420' }, subsystems: [NQN], ext: { node: 'a' } },
      // Another node may listen on the same address and port (another machine).
      {
        portid: 2,
        addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '127.0.0.1', trsvcid: '4420' },
        subsystems: [NQN],
        ext: { node: 'b', advertise: { traddr: '127.0.0.2' } },
      },
    ],
    subsystems: [
      {
        nqn: NQN,
        attr: { allow_any_host: '1', cntlid_min: '1', cntlid_max: '100' },
        allowed_hosts: [],
        namespaces: [{ nsid: 1, device: { path: path.join(tmp, 'shared.img') }, ext: { store: 'file', size: '1M' } }],
        ext: { mode: 'active-standby' },
      },
    ],
    ext: { cluster: { node } },
  };
}

function problemsOf(d: Doc): string[] {
  try {
    parseConfig(d);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('ext.cluster', () => {
  it('defaults: etcd on 127.0.0.1:2379, 2 s lease, fence timeout 2 x TTL, prefix /nvmets; ports carry their node', () => {
    const cfg = parseConfig(doc());
    expect(cfg.cluster).toEqual({ node: 'a', etcd: ['http://127.0.0.1:2379'], leaseTtlMs: 2000, fenceTimeoutMs: 4000, prefix: '/nvmets' });
    expect(cfg.ports.map((p) => [p.portid, p.node])).toEqual([
      [1, 'a'],
      [2, 'b'],
    ]);
    expect(cfg.subsystems[0]!.initialActivePort).toBe(1);
  });

  it('explicit values, a list of endpoints', () => {
    const d = doc('b');
    d['ext'].cluster = {
      node: 'b',
      etcd: ['http://10.0.0.1:2379/', 'https://etcd.example:2379'],
      lease_ttl_ms: 5000,
      fence_timeout_ms: 1234,
      prefix: '/arrays/one',
    };
    expect(parseConfig(d).cluster).toEqual({
      node: 'b',
      etcd: ['http://10.0.0.1:2379', 'https://etcd.example:2379'],
      leaseTtlMs: 5000,
      fenceTimeoutMs: 1234,
      prefix: '/arrays/one',
    });
  });

  it('without ext.cluster there is no cluster and ports have no node', () => {
    const d = doc();
    delete d['ext'];
    for (const p of d['ports']) delete p.ext.node;
    d['ports'][1].addr.trsvcid = '4421';
    const cfg = parseConfig(d);
    expect(cfg.cluster).toBeNull();
    expect(cfg.ports.map((p) => p.node)).toEqual([null, null]);
  });

  const bad: [string, (d: Doc) => void, string][] = [
    [
      'node missing',
      (d) => {
        d.ext.cluster = {};
      },
      'ext.cluster.node: missing',
    ],
    [
      'node not a name',
      (d) => {
        d.ext.cluster.node = 'a/b';
      },
      'ext.cluster.node: "a/b" is not a node name',
    ],
    [
      'unknown key',
      (d) => {
        d.ext.cluster.ttl = 1;
      },
      'ext.cluster.ttl: unknown key',
    ],
    [
      'etcd not a URL',
      (d) => {
        d.ext.cluster.etcd = 'localhost:2379';
      },
      'ext.cluster.etcd: "localhost:2379" is not an etcd client URL',
    ],
    [
      'etcd without port',
      (d) => {
        d.ext.cluster.etcd = 'http://127.0.0.1';
      },
      'ext.cluster.etcd: "http://127.0.0.1" is not an etcd client URL',
    ],
    [
      'etcd list entry',
      (d) => {
        d.ext.cluster.etcd = ['http://127.0.0.1:2379', 7];
      },
      'ext.cluster.etcd[1]: 7 is not an etcd client URL',
    ],
    [
      'etcd empty list',
      (d) => {
        d.ext.cluster.etcd = [];
      },
      'ext.cluster.etcd: [] is not an etcd endpoint',
    ],
    [
      'ttl too short',
      (d) => {
        d.ext.cluster.lease_ttl_ms = 1000;
      },
      'ext.cluster.lease_ttl_ms: 1000 is out of range (2000..60000)',
    ],
    [
      'ttl not whole seconds',
      (d) => {
        d.ext.cluster.lease_ttl_ms = 2500;
      },
      'ext.cluster.lease_ttl_ms: 2500 is not a whole number of seconds',
    ],
    [
      'fence timeout',
      (d) => {
        d.ext.cluster.fence_timeout_ms = 10;
      },
      'ext.cluster.fence_timeout_ms: 10 is out of range',
    ],
    [
      'prefix with trailing slash',
      (d) => {
        d.ext.cluster.prefix = '/x/';
      },
      'ext.cluster.prefix: "/x/" is not a key prefix',
    ],
    [
      'port without node',
      (d) => {
        delete d.ports[1].ext.node;
      },
      'ports[1].ext.node: missing: with ext.cluster every port names the node that serves it',
    ],
    [
      'port node not a name',
      (d) => {
        d.ports[0].ext.node = '';
      },
      'ports[0].ext.node: "" is not a node name',
    ],
    [
      'port node without cluster',
      (d) => {
        delete d.ext;
        d.ports[1].addr.trsvcid = '4421';
      },
      'ports[0].ext.node: needs the top-level ext.cluster',
    ],
    [
      'same node, same address',
      (d) => {
        d.ports[1].ext.node = 'a';
      },
      'ports[1].addr: listen address 127.0.0.1:4420 conflicts with ports[0]',
    ],
    [
      'memory store',
      (d) => {
        d.subsystems[0].namespaces[0].ext = { store: 'memory', size: '1M' };
      },
      'subsystems[0].namespaces[0].ext.store: "memory" is private to one process',
    ],
  ];
  for (const [name, edit, expected] of bad) {
    it(`refused: ${name}`, () => {
      const d = doc();
      edit(d);
      const problems = problemsOf(d);
      expect(
        problems.some((p) => p.startsWith(expected)),
        `${expected}\n  in: ${problems.join('\n      ')}`,
      ).toBe(true);
    });
  }

  it('notes: persist_active ignored, ana-mode subsystems not coordinated, a node with no port', () => {
    const d = doc('c');
    d.subsystems[0].ext.persist_active = true;
    const notes = parseConfig(d).notes.join('\n');
    expect(notes).toContain('subsystems[0].ext.persist_active: ignored with ext.cluster');
    expect(notes).toContain('ext.cluster.node: no port names node "c"');
    const e = doc();
    e.subsystems[0].ext.mode = 'ana';
    expect(parseConfig(e).notes.join('\n')).toContain('ana mode: not coordinated across cluster nodes');
  });
});

describe('etcd client helpers', () => {
  it('prefix range end: last byte + 1', () => {
    const end = (s: string) => Buffer.from(EtcdClient.prefixEnd(s), 'base64').toString('latin1');
    expect(end('/nvmets/')).toBe('/nvmets0');
    expect(end('a')).toBe('b');
    expect(Buffer.from(EtcdClient.prefixEnd('a\u00ff'), 'base64')).toEqual(Buffer.from([0x61, 0xc3, 0xc0]));
  });
});
