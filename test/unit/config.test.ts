import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_INLINE_DATA_SIZE,
  defaultConfig,
  defaultConfigDocument,
  deriveNamespaceIds,
  deriveSerial,
  loadConfigFile,
  parseConfig,
  parseSize,
  type TargetConfig,
} from '../../target/config/index.ts';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/config');
const HOST = 'nqn.2014-08.org.nvmexpress:uuid:5b3e8f0c-2d4a-4f39-9d1e-6c7a8b9c0d1e';
const NQN = 'nqn.2026-11.io.nvmets:test';

type Doc = Record<string, any>;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'nvmets-config-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function fixture(name: string): Doc {
  return JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8'));
}

/** A valid ana-mode document: two ports, groups 1 and 2, two memory namespaces. */
function base(): Doc {
  return {
    hosts: [{ nqn: HOST }],
    ports: [1, 2].map((portid) => ({
      portid,
      addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '127.0.0.1', trsvcid: String(4419 + portid), treq: 'not specified' },
      param: { inline_data_size: '16384' },
      ana_groups: [
        { grpid: 1, ana: { state: 'optimized' } },
        { grpid: 2, ana: { state: portid === 1 ? 'optimized' : 'non-optimized' } },
      ],
      referrals: [],
      subsystems: [NQN],
    })),
    subsystems: [
      {
        nqn: NQN,
        attr: { allow_any_host: '0' },
        allowed_hosts: [HOST],
        namespaces: [
          { nsid: 1, enable: 1, ana_grpid: 1, device: {}, ext: { store: 'memory', size: '16M' } },
          { nsid: 2, enable: 1, ana_grpid: 2, device: {}, ext: { store: 'null', size: '1G', block_size: 4096 } },
        ],
      },
    ],
  };
}

function problemsOf(doc: unknown, opts?: { baseDir?: string }): string[] {
  try {
    parseConfig(doc, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

function activeStandby(doc: Doc): Doc {
  doc.subsystems[0].ext = { mode: 'active-standby' };
  return doc;
}

describe('parseSize', () => {
  it('accepts numbers and binary-unit strings', () => {
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('4K')).toBe(4096);
    expect(parseSize('512M')).toBe(512 * 2 ** 20);
    expect(parseSize('1G')).toBe(2 ** 30);
    expect(parseSize('1g')).toBe(2 ** 30);
    expect(parseSize('1GiB')).toBe(2 ** 30);
    expect(parseSize('1T')).toBe(2 ** 40);
    expect(parseSize('1.5G')).toBe(1.5 * 2 ** 30);
    expect(parseSize(' 2 M ')).toBe(2 * 2 ** 20);
  });
  it('rejects junk, zero, negatives, fractions of a byte and unsafe numbers', () => {
    for (const bad of ['', 'G', '1X', '-1', '0', 0, -512, 1.5, '0.3', '1.0000001K', 2 ** 60, '1e3', '99999P']) {
      expect(() => parseSize(bad), String(bad)).toThrow(RangeError);
    }
  });
});

describe('derived identifiers', () => {
  it('are stable and well formed', () => {
    const a = deriveNamespaceIds(NQN, 1);
    expect(deriveNamespaceIds(NQN, 1)).toEqual(a);
    expect(a.nguid).toMatch(/^[0-9a-f]{32}$/);
    expect(a.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.eui64).toMatch(/^[0-9a-f]{16}$/);
    expect(parseInt(a.eui64.slice(0, 2), 16) & 0x03).toBe(0x02); // locally administered, unicast
    expect(deriveSerial(NQN)).toMatch(/^[0-9a-f]{16}$/);
    expect(deriveSerial(NQN)).toBe(deriveSerial(NQN));
  });
  it('differ per nsid and per subsystem', () => {
    const a = deriveNamespaceIds(NQN, 1);
    const b = deriveNamespaceIds(NQN, 2);
    const c = deriveNamespaceIds(`${NQN}x`, 1);
    for (const k of ['nguid', 'uuid', 'eui64'] as const) {
      expect(b[k]).not.toBe(a[k]);
      expect(c[k]).not.toBe(a[k]);
    }
  });
  it('are what parseConfig reports when the file has none, identically on every parse', () => {
    const one = parseConfig(base());
    const two = parseConfig(base());
    expect(one.subsystems[0]!.namespaces).toEqual(two.subsystems[0]!.namespaces);
    const ns = one.subsystems[0]!.namespaces[1]!;
    expect({ nguid: ns.nguid, uuid: ns.uuid, eui64: ns.eui64 }).toEqual(deriveNamespaceIds(NQN, 2));
  });
  it('given ids are normalized; all-zero ids (nvmetcli "unset") are derived', () => {
    const doc = base();
    doc.subsystems[0].namespaces[0].device = {
      nguid: 'EF90689C-6C46-D44C-89C1-4067801309A8',
      uuid: 'D592CDF3-5D1C-44E0-8412-3FCF7D99DF27',
      eui64: '00:11:22:33:44:55:66:77',
    };
    doc.subsystems[0].namespaces[1].device = { nguid: '00000000-0000-0000-0000-000000000000' };
    const cfg = parseConfig(doc);
    const [n1, n2] = cfg.subsystems[0]!.namespaces;
    expect(n1!.nguid).toBe('ef90689c6c46d44c89c14067801309a8');
    expect(n1!.uuid).toBe('d592cdf3-5d1c-44e0-8412-3fcf7d99df27');
    expect(n1!.eui64).toBe('0011223344556677');
    expect(n2!.nguid).toBe(deriveNamespaceIds(NQN, 2).nguid);
    expect(cfg.notes.some((n) => n.includes('device.nguid: all zero'))).toBe(true);
  });
});

describe('defaults', () => {
  it('defaultConfig() is the documented array', () => {
    const cfg = defaultConfig();
    expect(cfg.discoveryNqn).toBe('nqn.2014-08.org.nvmexpress.discovery');
    expect(cfg.control).toEqual({ kind: 'unix', path: expect.stringMatching(/nvmet-ts-.+\.sock$/) });
    expect(cfg.ports.map((p) => [p.portid, p.traddr, p.trsvcid, p.adrfam])).toEqual([
      [1, '127.0.0.1', 4420, 'ipv4'],
      [2, '127.0.0.1', 4421, 'ipv4'],
    ]);
    for (const p of cfg.ports) {
      expect(p.advertise).toEqual({ traddr: p.traddr, trsvcid: p.trsvcid });
      expect(p.inlineDataSize).toBe(DEFAULT_INLINE_DATA_SIZE);
      expect(p.maxh2cdata).toBe(131072);
      expect(p.subsystems).toEqual(['nqn.2026-11.io.nvmets:array0']);
      expect(p.anaGroups.map((g) => g.grpid)).toEqual([1]);
    }
    expect(cfg.subsystems).toHaveLength(1);
    const s = cfg.subsystems[0]!;
    expect(s).toMatchObject({
      nqn: 'nqn.2026-11.io.nvmets:array0',
      allowAnyHost: true,
      allowedHosts: [],
      model: 'nvmets array',
      firmware: '0.1.0',
      mode: 'active-standby',
      promotion: 'implicit',
      persistActive: false,
      initialActivePort: 1,
      cntlidMin: 1,
      cntlidMax: 0xffef,
      serial: deriveSerial('nqn.2026-11.io.nvmets:array0'),
    });
    expect(s.namespaces).toHaveLength(1);
    expect(s.namespaces[0]).toMatchObject({
      nsid: 1,
      enabled: true,
      anaGrpid: 1,
      initialActivePort: 1,
      store: { kind: 'memory', sizeBytes: 2 ** 30, blockSize: 512, createIfMissing: false },
      ...deriveNamespaceIds('nqn.2026-11.io.nvmets:array0', 1),
    });
  });
  it('takes overrides', () => {
    const cfg = defaultConfig({ traddr: '::1', ports: [5000, 5001, 5002], sizeBytes: 2 ** 20, nqn: 'nqn.2026-11.com.example:x' });
    expect(cfg.ports.map((p) => [p.portid, p.adrfam, p.traddr, p.trsvcid])).toEqual([
      [1, 'ipv6', '::1', 5000],
      [2, 'ipv6', '::1', 5001],
      [3, 'ipv6', '::1', 5002],
    ]);
    expect(cfg.subsystems[0]!.nqn).toBe('nqn.2026-11.com.example:x');
    expect(cfg.subsystems[0]!.namespaces[0]!.store.sizeBytes).toBe(2 ** 20);
    expect(() => defaultConfig({ sizeBytes: 1000 })).toThrow(ConfigError);
    expect(() => defaultConfig({ nqn: 'array0' })).toThrow(/must start with "nqn\."/);
  });
  it('the default document round-trips through JSON', () => {
    const doc = JSON.parse(JSON.stringify(defaultConfigDocument()));
    expect(parseConfig(doc)).toEqual(defaultConfig());
  });
});

describe('example files', () => {
  it('ana-two-ports.json (pure nvmetcli) with its image files present', () => {
    const doc = fixture('ana-two-ports.json');
    const d1 = path.join(tmp, 'disk1.img');
    const d2 = path.join(tmp, 'disk2.img');
    writeFileSync(d1, Buffer.alloc(1 << 20));
    writeFileSync(d2, Buffer.alloc(2 << 20));
    doc.subsystems[0].namespaces[0].device.path = d1;
    doc.subsystems[0].namespaces[1].device.path = d2;
    const cfg = parseConfig(doc);
    const bs = statSync(d1).blksize >= 4096 ? 4096 : 512;

    expect(cfg.hosts).toEqual([HOST]);
    expect(cfg.ports.map((p) => p.traddr)).toEqual(['192.168.122.10', '192.168.123.10']);
    expect(cfg.ports[0]!.anaGroups).toEqual([
      { grpid: 1, state: 'optimized' },
      { grpid: 2, state: 'optimized' },
      { grpid: 3, state: 'non-optimized' },
    ]);
    expect(cfg.ports[1]!.anaGroups[2]).toEqual({ grpid: 3, state: 'optimized' });
    expect(cfg.ports[0]!.maxQueueSize).toBe(1024);
    const s = cfg.subsystems[0]!;
    expect(s).toMatchObject({
      mode: 'ana',
      initialActivePort: null,
      allowAnyHost: false,
      allowedHosts: [HOST],
      serial: '5f3c1a9e2b7d4c60',
      model: 'Linux',
      firmware: '6.8.0',
      version: '1.3',
      ieeeOui: 0,
      ports: [1, 2],
    });
    expect(s.namespaces[0]).toMatchObject({
      nsid: 1,
      anaGrpid: 2,
      nguid: '6b1f0c3e9a424d7e8c152f9e0a7b3d41',
      uuid: '0f8e2d9c-4b6a-4e1f-a3c7-5d9b1e2f4a60',
      initialActivePort: null,
      store: { kind: 'file', path: d1, sizeBytes: 1 << 20, blockSize: bs, createIfMissing: false },
    });
    expect(s.namespaces[1]!.nguid).toBe(deriveNamespaceIds(s.nqn, 2).nguid); // all-zero in the file
    expect(s.namespaces[1]!.store.sizeBytes).toBe(2 << 20);
  });

  it('ana-two-ports.json as shipped names the missing image files', async () => {
    await expect(loadConfigFile(path.join(FIXTURES, 'ana-two-ports.json'))).rejects.toThrow(
      /namespaces\[0\]\.device\.path: \/var\/lib\/nvmet\/disk1\.img does not exist/,
    );
  });

  it('active-standby-qemu.json', async () => {
    const cfg = await loadConfigFile(path.join(FIXTURES, 'active-standby-qemu.json'));
    expect(cfg.control).toEqual({ kind: 'unix', path: '/tmp/nvmet-ts-qemu.sock' });
    expect(cfg.ports.map((p) => [p.traddr, p.trsvcid, p.advertise])).toEqual([
      ['127.0.0.1', 4420, { traddr: '10.0.2.2', trsvcid: 4420 }],
      ['127.0.0.1', 4421, { traddr: '10.0.2.2', trsvcid: 4421 }],
    ]);
    const s = cfg.subsystems[0]!;
    expect(s).toMatchObject({
      mode: 'active-standby',
      promotion: 'implicit',
      persistActive: false,
      initialActivePort: 1,
      maxControllers: 16,
      serial: 'NVMETS0001',
    });
    expect(s.namespaces.map((n) => [n.nsid, n.anaGrpid, n.initialActivePort, n.store.kind, n.store.sizeBytes, n.store.blockSize])).toEqual([
      [1, 2, 1, 'memory', 2 ** 30, 512],
      [2, 3, 2, 'null', 64 * 2 ** 30, 4096],
    ]);
    // groups 2 and 3 added to both ports; initial (informational) states follow the active port
    expect(cfg.ports[0]!.anaGroups).toEqual([
      { grpid: 1, state: 'optimized' },
      { grpid: 2, state: 'optimized' },
      { grpid: 3, state: 'inaccessible' },
    ]);
    expect(cfg.ports[1]!.anaGroups).toEqual([
      { grpid: 1, state: 'optimized' },
      { grpid: 2, state: 'inaccessible' },
      { grpid: 3, state: 'optimized' },
    ]);
  });

  it('docs/configuration.md shows both example files verbatim', () => {
    const docs = readFileSync(path.resolve(FIXTURES, '../../../docs/configuration.md'), 'utf8');
    for (const name of ['ana-two-ports.json', 'active-standby-qemu.json']) {
      expect(docs.includes(readFileSync(path.join(FIXTURES, name), 'utf8').trimEnd()), name).toBe(true);
    }
  });

  it.each([
    [
      'bad-rdma-loop.json',
      [
        'ports[0].addr.trtype: "rdma" is not supported',
        'ports[1].addr.trtype: "loop"',
        'subsystems[0].nqn: "testnqn"',
        'hosts[0].nqn',
        'subsystems[0].namespaces[0].device.path: /dev/null is not a regular file (it is a character device)',
      ],
    ],
    [
      'bad-many.json',
      [
        'ports[0].addr.trsvcid: "44x" is not a port number',
        'ports[1].portid: duplicate portid 1',
        'ports[0].subsystems[0]: unknown subsystem',
        'subsystems[0].attr.serial',
        'subsystems[0].namespaces[2].nsid: duplicate nsid 2',
        'subsystems[0].namespaces[0].nsid: 0 is out of range',
        'subsystems[0].ext.mode',
      ],
    ],
    ['bad-unknown-top-key.json', ['namespaces: unknown top-level key']],
    ['bad-ana-group-missing.json', ['subsystems[0].namespaces[0].ana_grpid: ANA group 2 is not configured on port 2']],
  ])('%s is refused with every problem listed', async (name, expected) => {
    const file = path.join(FIXTURES, name);
    const err = await loadConfigFile(file).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.message.startsWith(`${file}: invalid configuration`)).toBe(true);
    for (const want of expected) {
      expect(
        e.problems.some((p) => p.includes(want)),
        `${want}\n${e.problems.join('\n')}`,
      ).toBe(true);
    }
  });
});

describe('nvmetcli files without ext', () => {
  it('serve a regular file as a file store, ana mode, nvmet defaults', () => {
    const img = path.join(tmp, 'pure.img');
    writeFileSync(img, Buffer.alloc(3 * 4096 + 100));
    const doc = {
      hosts: [],
      ports: [
        {
          addr: { adrfam: 'ipv4', traddr: '127.0.0.1', treq: 'not specified', trsvcid: '4420', trtype: 'tcp' },
          portid: 1,
          referrals: [],
          subsystems: [NQN],
        },
      ],
      subsystems: [
        {
          allowed_hosts: [],
          attr: { allow_any_host: '1', some_future_attr: '7' },
          namespaces: [{ device: { path: img }, enable: 1, nsid: 1 }],
          nqn: NQN,
        },
      ],
    };
    const cfg = parseConfig(doc);
    const bs = statSync(img).blksize >= 4096 ? 4096 : 512;
    const p = cfg.ports[0]!;
    expect(p.anaGroups).toEqual([{ grpid: 1, state: 'optimized' }]); // nvmet's default group 1
    expect(p.inlineDataSize).toBe(16384);
    expect(p.treq).toBe('not specified');
    const s = cfg.subsystems[0]!;
    expect(s.mode).toBe('ana');
    expect(s.version).toBe('1.4');
    expect(s.namespaces[0]!.anaGrpid).toBe(1);
    expect(s.namespaces[0]!.store).toEqual({
      kind: 'file',
      path: img,
      sizeBytes: Math.floor((3 * 4096 + 100) / bs) * bs,
      blockSize: bs,
      createIfMissing: false,
    });
    expect(cfg.notes.some((n) => n.startsWith('subsystems[0].attr.some_future_attr: unknown nvmetcli attribute'))).toBe(true);
    expect(cfg.notes.some((n) => n.includes('not a multiple of'))).toBe(true);
  });

  it('resolve relative device paths against the config file directory', async () => {
    const dir = path.join(tmp, 'rel');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'disk.img'), Buffer.alloc(65536));
    const doc = base();
    doc.subsystems[0].namespaces[0] = { nsid: 1, enable: 1, device: { path: 'disk.img' }, ext: { block_size: 512 } };
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(doc));
    const cfg = await loadConfigFile(path.join(dir, 'config.json'));
    expect(cfg.subsystems[0]!.namespaces[0]!.store).toEqual({
      kind: 'file',
      path: path.join(dir, 'disk.img'),
      sizeBytes: 65536,
      blockSize: 512,
      createIfMissing: false,
    });
  });

  it('ext.store "file" creates a missing file with ext.size; memory/null ignore the path', () => {
    const doc = base();
    doc.subsystems[0].namespaces[0] = { nsid: 1, device: { path: path.join(tmp, 'new.img') }, ext: { store: 'file', size: '8M' } };
    doc.subsystems[0].namespaces[1].device = { path: '/dev/nvme0n1' };
    const cfg = parseConfig(doc);
    expect(cfg.subsystems[0]!.namespaces[0]!.store).toEqual({
      kind: 'file',
      path: path.join(tmp, 'new.img'),
      sizeBytes: 8 << 20,
      blockSize: 512,
      createIfMissing: true,
    });
    expect(cfg.subsystems[0]!.namespaces[1]!.store.kind).toBe('null');
    expect(cfg.subsystems[0]!.namespaces[1]!.store.path).toBeUndefined();
  });
});

describe('active-standby', () => {
  it('defaults to the first port (in ports order) exporting the subsystem', () => {
    const doc = activeStandby(base());
    doc.ports.reverse();
    const cfg = parseConfig(doc);
    expect(cfg.subsystems[0]!.initialActivePort).toBe(2);
    expect(cfg.subsystems[0]!.ports).toEqual([2, 1]);
    expect(cfg.subsystems[0]!.promotion).toBe('implicit');
    expect(cfg.subsystems[0]!.persistActive).toBe(false);
  });
  it('subsystem and namespace initial_active_port', () => {
    const doc = activeStandby(base());
    doc.subsystems[0].ext = { mode: 'active-standby', initial_active_port: 2, promotion: 'explicit', persist_active: true };
    doc.subsystems[0].namespaces[1].ext.initial_active_port = 1;
    const cfg: TargetConfig = parseConfig(doc);
    const s = cfg.subsystems[0]!;
    expect(s).toMatchObject({ initialActivePort: 2, promotion: 'explicit', persistActive: true });
    expect(s.namespaces.map((n) => n.initialActivePort)).toEqual([2, 1]);
  });
  it('adds the groups its namespaces use to every exporting port', () => {
    const doc = activeStandby(base());
    for (const p of doc.ports) p.ana_groups = [];
    doc.subsystems[0].namespaces[1].ana_grpid = 5;
    const cfg = parseConfig(doc);
    expect(cfg.ports[0]!.anaGroups).toEqual([
      { grpid: 1, state: 'optimized' },
      { grpid: 5, state: 'optimized' },
    ]);
    expect(cfg.ports[1]!.anaGroups).toEqual([
      { grpid: 1, state: 'optimized' },
      { grpid: 5, state: 'inaccessible' },
    ]);
  });
});

describe('validation: every rule names the field', () => {
  const LONG_NQN = `nqn.2026-11.io.nvmets:${'x'.repeat(210)}`;
  const cases: [string, (d: Doc) => void, string][] = [
    [
      'unknown top-level key',
      (d) => {
        d.extras = 1;
      },
      'extras: unknown top-level key',
    ],
    [
      'top-level not an object',
      (d) => {
        d.ports = {};
      },
      'ports: must be an array',
    ],
    [
      'unknown ext key',
      (d) => {
        d.ext = { kato: 5 };
      },
      'ext.kato: unknown key',
    ],
    [
      'bad control port',
      (d) => {
        d.ext = { control: { host: '127.0.0.1', port: 'x' } };
      },
      'ext.control.port: "x" is not a port number',
    ],
    [
      'bad control shape',
      (d) => {
        d.ext = { control: {} };
      },
      'ext.control: must be',
    ],
    [
      'trtype rdma',
      (d) => {
        d.ports[1].addr.trtype = 'rdma';
      },
      'ports[1].addr.trtype: "rdma" is not supported; only "tcp"',
    ],
    [
      'trtype missing',
      (d) => {
        delete d.ports[0].addr.trtype;
      },
      'ports[0].addr.trtype: missing',
    ],
    [
      'adrfam',
      (d) => {
        d.ports[0].addr.adrfam = 'ib';
      },
      'ports[0].addr.adrfam: "ib" is not supported',
    ],
    [
      'trsvcid',
      (d) => {
        d.ports[1].addr.trsvcid = '44x';
      },
      'ports[1].addr.trsvcid: "44x" is not a port number',
    ],
    [
      'advertised trsvcid 0',
      (d) => {
        d.ports[1].ext = { advertise: { traddr: '10.0.2.100', trsvcid: '0' } };
      },
      'ports[1].ext.advertise.trsvcid: "0" is not a port number',
    ],
    [
      'trsvcid too big',
      (d) => {
        d.ports[1].addr.trsvcid = '65536';
      },
      'ports[1].addr.trsvcid: "65536" is not a port number',
    ],
    [
      'traddr host name',
      (d) => {
        d.ports[0].addr.traddr = 'localhost';
      },
      'ports[0].addr.traddr: "localhost" is not an IP address',
    ],
    [
      'traddr family',
      (d) => {
        d.ports[0].addr.traddr = '::1';
      },
      'ports[0].addr.traddr: "::1" is not an IPv4 address',
    ],
    [
      'treq required',
      (d) => {
        d.ports[0].addr.treq = 'required';
      },
      'ports[0].addr.treq: "required"',
    ],
    [
      'treq junk',
      (d) => {
        d.ports[0].addr.treq = 'maybe';
      },
      'ports[0].addr.treq: "maybe" is not one of',
    ],
    [
      'tls',
      (d) => {
        d.ports[0].addr.tsas = 'tls1.3';
      },
      'ports[0].addr.tsas: "tls1.3" is not supported',
    ],
    [
      'portid missing',
      (d) => {
        delete d.ports[0].portid;
      },
      'ports[0].portid: missing',
    ],
    [
      'portid junk',
      (d) => {
        d.ports[0].portid = 'one';
      },
      'ports[0].portid: "one" is not a port id',
    ],
    [
      'duplicate portid',
      (d) => {
        d.ports[1].portid = 1;
      },
      'ports[1].portid: duplicate portid 1 (also ports[0])',
    ],
    [
      'duplicate listen address',
      (d) => {
        d.ports[1].addr.trsvcid = '4420';
      },
      'ports[1].addr: listen address 127.0.0.1:4420 conflicts with ports[0]',
    ],
    [
      'wildcard overlaps',
      (d) => {
        d.ports[1].addr.trsvcid = '4420';
        d.ports[1].addr.traddr = '0.0.0.0';
      },
      'ports[1].addr: listen address 0.0.0.0:4420 conflicts',
    ],
    [
      'duplicate advertised address',
      (d) => {
        d.ports[1].ext = { advertise: { trsvcid: '4420' } };
      },
      'ports[1].ext.advertise: advertised address 127.0.0.1:4420 is also advertised by ports[0]',
    ],
    [
      'advertise host name',
      (d) => {
        d.ports[0].ext = { advertise: { traddr: 'gw' } };
      },
      'ports[0].ext.advertise.traddr: "gw" is not an IP address',
    ],
    [
      'advertise wildcard',
      (d) => {
        d.ports[0].ext = { advertise: { traddr: '0.0.0.0' } };
      },
      'ports[0].ext.advertise.traddr: "0.0.0.0" is a wildcard',
    ],
    [
      'advertise bad port',
      (d) => {
        d.ports[0].ext = { advertise: { trsvcid: 'http' } };
      },
      'ports[0].ext.advertise.trsvcid: "http" is not a port number',
    ],
    [
      'port ext unknown key',
      (d) => {
        d.ports[0].ext = { advertize: {} };
      },
      'ports[0].ext.advertize: unknown key',
    ],
    [
      'maxh2cdata not multiple of 4',
      (d) => {
        d.ports[0].ext = { maxh2cdata: 4098 };
      },
      'ports[0].ext.maxh2cdata: 4098 is not a multiple of 4',
    ],
    [
      'maxh2cdata too small',
      (d) => {
        d.ports[0].ext = { maxh2cdata: 1024 };
      },
      'ports[0].ext.maxh2cdata: 1024 is out of range',
    ],
    [
      'inline_data_size junk',
      (d) => {
        d.ports[0].param.inline_data_size = 'big';
      },
      'ports[0].param.inline_data_size: "big" is not an inline data size',
    ],
    [
      'inline_data_size not /16',
      (d) => {
        d.ports[0].param.inline_data_size = '5000';
      },
      'ports[0].param.inline_data_size: 5000 is not a multiple of 16',
    ],
    [
      'inline_data_size too big',
      (d) => {
        d.ports[0].param.inline_data_size = String(2 ** 21);
      },
      'ports[0].param.inline_data_size: "2097152" is out of range',
    ],
    [
      'port pi_enable',
      (d) => {
        d.ports[0].param.pi_enable = '1';
      },
      'ports[0].param.pi_enable: protection information',
    ],
    [
      'max_queue_size',
      (d) => {
        d.ports[0].param.max_queue_size = '8';
      },
      'ports[0].param.max_queue_size: 8 is out of range',
    ],
    [
      'unknown subsystem on port',
      (d) => {
        d.ports[1].subsystems.push('nqn.2026-11.io.nvmets:nope');
      },
      'ports[1].subsystems[1]: unknown subsystem "nqn.2026-11.io.nvmets:nope"',
    ],
    [
      'subsystem twice on a port',
      (d) => {
        d.ports[1].subsystems.push(NQN);
      },
      'ports[1].subsystems[1]: subsystem',
    ],
    [
      'ana state',
      (d) => {
        d.ports[0].ana_groups[1].ana.state = 'standby';
      },
      'ports[0].ana_groups[1].ana.state: "standby" is not an ANA state',
    ],
    [
      'ana grpid 0',
      (d) => {
        d.ports[0].ana_groups[1].grpid = 0;
      },
      'ports[0].ana_groups[1].grpid: 0 is out of range (1..128)',
    ],
    [
      'ana grpid duplicate',
      (d) => {
        d.ports[0].ana_groups[1].grpid = 1;
      },
      'ports[0].ana_groups[1].grpid: duplicate ANA group 1',
    ],
    [
      'ns group missing on a port (ana mode)',
      (d) => {
        d.ports[1].ana_groups.pop();
      },
      'subsystems[0].namespaces[1].ana_grpid: ANA group 2 is not configured on port 2',
    ],
    [
      'ns grpid out of range',
      (d) => {
        d.subsystems[0].namespaces[1].ana_grpid = 129;
      },
      'subsystems[0].namespaces[1].ana_grpid: 129 is out of range',
    ],
    [
      'ns ana.grpid disagrees',
      (d) => {
        d.subsystems[0].namespaces[1].ana = { grpid: '3' };
      },
      'subsystems[0].namespaces[1].ana_grpid: 2 disagrees with ana.grpid 3',
    ],
    [
      'referral trtype',
      (d) => {
        d.ports[0].referrals = [{ name: 'r', addr: { trtype: 'rdma', adrfam: 'ipv4', traddr: '10.0.0.1', trsvcid: '4420' } }];
      },
      'ports[0].referrals[0].addr.trtype: "rdma"',
    ],
    [
      'referral traddr',
      (d) => {
        d.ports[0].referrals = [{ name: 'r', addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: 'x', trsvcid: '4420' } }];
      },
      'ports[0].referrals[0].addr.traddr: "x"',
    ],
    [
      'referral name',
      (d) => {
        d.ports[0].referrals = [{ addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '10.0.0.1', trsvcid: '4420' } }];
      },
      'ports[0].referrals[0].name: missing',
    ],
    [
      'subsystem nqn prefix',
      (d) => {
        d.subsystems[0].nqn = 'testnqn';
      },
      'subsystems[0].nqn: "testnqn" is not a valid NQN',
    ],
    [
      'subsystem nqn too long',
      (d) => {
        d.subsystems[0].nqn = LONG_NQN;
      },
      'subsystems[0].nqn: NQN is 232 bytes long (at most 223 allowed)',
    ],
    [
      'subsystem nqn whitespace',
      (d) => {
        d.subsystems[0].nqn = 'nqn.2026-11.io.nvmets:a b';
      },
      'subsystems[0].nqn: "nqn.2026-11.io.nvmets:a b" is not a valid NQN (contains whitespace',
    ],
    [
      'subsystem nqn missing',
      (d) => {
        delete d.subsystems[0].nqn;
      },
      'subsystems[0].nqn: missing',
    ],
    [
      'discovery nqn as subsystem',
      (d) => {
        d.subsystems[0].nqn = 'nqn.2014-08.org.nvmexpress.discovery';
      },
      'subsystems[0].nqn: "nqn.2014-08.org.nvmexpress.discovery" is the discovery subsystem NQN',
    ],
    [
      'duplicate subsystem',
      (d) => {
        d.subsystems.push(d.subsystems[0]);
      },
      'subsystems[1].nqn: duplicate subsystem',
    ],
    [
      'discovery nqn invalid',
      (d) => {
        d.discovery = { nqn: 'disc' };
      },
      'discovery.nqn: "disc" is not a valid NQN',
    ],
    [
      'host nqn invalid',
      (d) => {
        d.hosts.push({ nqn: 'hostnqn' });
      },
      'hosts[1].nqn: "hostnqn" is not a valid NQN',
    ],
    [
      'host duplicate',
      (d) => {
        d.hosts.push({ nqn: HOST });
      },
      'hosts[1].nqn: duplicate host',
    ],
    [
      'allowed host invalid',
      (d) => {
        d.subsystems[0].allowed_hosts.push('host1');
      },
      'subsystems[0].allowed_hosts[1]: "host1" is not a valid NQN',
    ],
    [
      'allowed host unknown',
      (d) => {
        d.subsystems[0].allowed_hosts.push('nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001');
      },
      'subsystems[0].allowed_hosts[1]: host "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001" is not listed in the top-level "hosts"',
    ],
    [
      'allow_any_host with hosts',
      (d) => {
        d.subsystems[0].attr.allow_any_host = '1';
      },
      'subsystems[0].allowed_hosts: must be empty when attr.allow_any_host is 1',
    ],
    [
      'allow_any_host junk',
      (d) => {
        d.subsystems[0].attr.allow_any_host = 'perhaps';
      },
      'subsystems[0].attr.allow_any_host: "perhaps" is not a boolean',
    ],
    [
      'serial too long',
      (d) => {
        d.subsystems[0].attr.serial = 'S'.repeat(21);
      },
      'subsystems[0].attr.serial: "SSSSSSSSSSSSSSSSSSSSS" is 21 characters; the serial number is at most 20',
    ],
    [
      'serial non-ascii',
      (d) => {
        d.subsystems[0].attr.serial = 'séria';
      },
      'subsystems[0].attr.serial: "séria": the serial number must be printable ASCII',
    ],
    [
      'serial empty',
      (d) => {
        d.subsystems[0].attr.serial = '';
      },
      'subsystems[0].attr.serial: the serial number must not be empty',
    ],
    [
      'model too long',
      (d) => {
        d.subsystems[0].attr.model = 'M'.repeat(41);
      },
      'subsystems[0].attr.model: "' + 'M'.repeat(41) + '" is 41 characters; the model number is at most 40',
    ],
    [
      'firmware too long',
      (d) => {
        d.subsystems[0].attr.firmware = '6.8.0-45-generic';
      },
      'subsystems[0].attr.firmware: "6.8.0-45-generic" is 16 characters; the firmware revision is at most 8',
    ],
    [
      'ext firmware too long',
      (d) => {
        d.subsystems[0].ext = { firmware: '123456789' };
      },
      'subsystems[0].ext.firmware: "123456789" is 9 characters',
    ],
    [
      'version',
      (d) => {
        d.subsystems[0].attr.version = 'v2';
      },
      'subsystems[0].attr.version: "v2" is not an NVMe version',
    ],
    [
      'ieee_oui',
      (d) => {
        d.subsystems[0].attr.ieee_oui = '0x1000000';
      },
      'subsystems[0].attr.ieee_oui: "0x1000000" is out of range',
    ],
    [
      'qid_max',
      (d) => {
        d.subsystems[0].attr.qid_max = '0';
      },
      'subsystems[0].attr.qid_max: "0" is out of range (1..128)',
    ],
    [
      'cntlid_min > cntlid_max',
      (d) => {
        d.subsystems[0].attr.cntlid_min = '10';
        d.subsystems[0].attr.cntlid_max = '5';
      },
      'subsystems[0].attr.cntlid_min: 10 is greater than cntlid_max 5',
    ],
    [
      'cntlid_min 0',
      (d) => {
        d.subsystems[0].attr.cntlid_min = '0';
      },
      'subsystems[0].attr.cntlid_min: "0" is out of range (1..65519)',
    ],
    [
      'cntlid_max reserved',
      (d) => {
        d.subsystems[0].attr.cntlid_max = String(0xfff0);
      },
      'subsystems[0].attr.cntlid_max: "65520" is out of range (1..65519)',
    ],
    [
      'passthru',
      (d) => {
        d.subsystems[0].passthru = [{ device: { path: '/dev/nvme0' }, enable: 1 }];
      },
      'subsystems[0].passthru[0]: passthru subsystems are not supported',
    ],
    [
      'subsystem ext unknown key',
      (d) => {
        d.subsystems[0].ext = { moda: 'ana' };
      },
      'subsystems[0].ext.moda: unknown key',
    ],
    [
      'mode',
      (d) => {
        d.subsystems[0].ext = { mode: 'alua' };
      },
      'subsystems[0].ext.mode: "alua" is not a mode',
    ],
    [
      'promotion',
      (d) => {
        d.subsystems[0].ext = { mode: 'active-standby', promotion: 'auto' };
      },
      'subsystems[0].ext.promotion: "auto" is not a promotion policy',
    ],
    [
      'persist_active',
      (d) => {
        d.subsystems[0].ext = { mode: 'active-standby', persist_active: 1 };
      },
      'subsystems[0].ext.persist_active: 1 is not true or false',
    ],
    [
      'max_controllers',
      (d) => {
        d.subsystems[0].attr.cntlid_max = '8';
        d.subsystems[0].ext = { max_controllers: 9 };
      },
      'subsystems[0].ext.max_controllers: 9 is more than the 8 controller ids',
    ],
    [
      'initial_active_port unknown',
      (d) => {
        d.subsystems[0].ext = { mode: 'active-standby', initial_active_port: 9 };
      },
      'subsystems[0].ext.initial_active_port: unknown port 9',
    ],
    [
      'initial_active_port not exporting',
      (d) => {
        d.ports[1].subsystems = [];
        d.subsystems[0].ext = { mode: 'active-standby', initial_active_port: 2 };
      },
      `subsystems[0].ext.initial_active_port: port 2 does not export ${NQN}`,
    ],
    [
      'ns initial_active_port not exporting',
      (d) => {
        activeStandby(d);
        d.ports[1].subsystems = [];
        d.subsystems[0].namespaces[1].ext.initial_active_port = 2;
      },
      'subsystems[0].namespaces[1].ext.initial_active_port: port 2 does not export',
    ],
    [
      'group split across ports',
      (d) => {
        activeStandby(d);
        d.subsystems[0].namespaces[1].ana_grpid = 1;
        d.subsystems[0].namespaces[1].ext.initial_active_port = 2;
      },
      'subsystems[0].namespaces[1].ext.initial_active_port: namespaces in ANA group 1 move together',
    ],
    [
      'nsid 0',
      (d) => {
        d.subsystems[0].namespaces[0].nsid = 0;
      },
      'subsystems[0].namespaces[0].nsid: 0 is out of range (1..4294967294)',
    ],
    [
      'nsid broadcast',
      (d) => {
        d.subsystems[0].namespaces[0].nsid = 0xffffffff;
      },
      'subsystems[0].namespaces[0].nsid: 4294967295 is out of range',
    ],
    [
      'nsid missing',
      (d) => {
        delete d.subsystems[0].namespaces[0].nsid;
      },
      'subsystems[0].namespaces[0].nsid: missing',
    ],
    [
      'duplicate nsid',
      (d) => {
        d.subsystems[0].namespaces[1].nsid = 1;
      },
      'subsystems[0].namespaces[1].nsid: duplicate nsid 1 (also subsystems[0].namespaces[0])',
    ],
    [
      'enable junk',
      (d) => {
        d.subsystems[0].namespaces[0].enable = 2;
      },
      'subsystems[0].namespaces[0].enable: 2 is not a boolean',
    ],
    [
      'nguid format',
      (d) => {
        d.subsystems[0].namespaces[0].device.nguid = '1234';
      },
      'subsystems[0].namespaces[0].device.nguid: "1234" is not an NGUID',
    ],
    [
      'uuid format',
      (d) => {
        d.subsystems[0].namespaces[0].device.uuid = 'd592cdf35d1c44e084123fcf7d99df27';
      },
      'subsystems[0].namespaces[0].device.uuid: "d592cdf35d1c44e084123fcf7d99df27" is not a UUID',
    ],
    [
      'eui64 format',
      (d) => {
        d.subsystems[0].namespaces[0].device.eui64 = 'zz';
      },
      'subsystems[0].namespaces[0].device.eui64: "zz" is not an EUI-64',
    ],
    [
      'duplicate nguid',
      (d) => {
        d.subsystems[0].namespaces[0].device.nguid = 'ef90689c-6c46-d44c-89c1-4067801309a8';
        d.subsystems[0].namespaces[1].device.nguid = 'ef90689c6c46d44c89c14067801309a8';
      },
      'subsystems[0].namespaces[1].device.nguid: ef90689c6c46d44c89c14067801309a8 is already used by subsystems[0].namespaces[0]',
    ],
    [
      'duplicate uuid',
      (d) => {
        d.subsystems[0].namespaces[0].device.uuid = 'd592cdf3-5d1c-44e0-8412-3fcf7d99df27';
        d.subsystems[0].namespaces[1].device.uuid = 'D592CDF3-5D1C-44E0-8412-3FCF7D99DF27';
      },
      'subsystems[0].namespaces[1].device.uuid: d592cdf3-5d1c-44e0-8412-3fcf7d99df27 is already used by subsystems[0].namespaces[0]',
    ],
    [
      'ns ext unknown key',
      (d) => {
        d.subsystems[0].namespaces[0].ext.sise = '1G';
      },
      'subsystems[0].namespaces[0].ext.sise: unknown key',
    ],
    [
      'store kind',
      (d) => {
        d.subsystems[0].namespaces[0].ext.store = 'tape';
      },
      'subsystems[0].namespaces[0].ext.store: "tape" is not a store kind',
    ],
    [
      'memory without size',
      (d) => {
        delete d.subsystems[0].namespaces[0].ext.size;
      },
      'subsystems[0].namespaces[0].ext.size: missing: a memory store needs ext.size',
    ],
    [
      'size junk',
      (d) => {
        d.subsystems[0].namespaces[0].ext.size = '1Q';
      },
      'subsystems[0].namespaces[0].ext.size: "1Q" is not a size',
    ],
    [
      'size not a block multiple',
      (d) => {
        d.subsystems[0].namespaces[1].ext.size = '6K';
      },
      'subsystems[0].namespaces[1].ext.size: 6144 bytes is not a multiple of the block size 4096',
    ],
    [
      'block_size',
      (d) => {
        d.subsystems[0].namespaces[0].ext.block_size = 1024;
      },
      'subsystems[0].namespaces[0].ext.block_size: 1024 is not a supported block size',
    ],
    [
      'no store, no path',
      (d) => {
        d.subsystems[0].namespaces[0] = { nsid: 1, device: {} };
      },
      'subsystems[0].namespaces[0].device.path: missing',
    ],
    [
      'no store, character device',
      (d) => {
        d.subsystems[0].namespaces[0] = { nsid: 1, device: { path: '/dev/null' } };
      },
      'subsystems[0].namespaces[0].device.path: /dev/null is not a regular file (it is a character device); set ext.store to "memory" or "null" with ext.size to emulate it',
    ],
    [
      'no store, missing file',
      (d) => {
        d.subsystems[0].namespaces[0] = { nsid: 1, device: { path: '/nonexistent/nvme0n1' } };
      },
      'subsystems[0].namespaces[0].device.path: /nonexistent/nvme0n1 does not exist; set ext.store to "file" with ext.size to create it',
    ],
    [
      'no store, directory',
      (d) => {
        d.subsystems[0].namespaces[0] = { nsid: 1, device: { path: os.tmpdir() } };
      },
      'is not a regular file (it is a directory)',
    ],
    [
      'file store, missing file, no size',
      (d) => {
        d.subsystems[0].namespaces[0] = { nsid: 1, device: { path: '/nonexistent-dir-x/a.img' }, ext: { store: 'file' } };
      },
      'subsystems[0].namespaces[0].ext.size: missing: /nonexistent-dir-x/a.img does not exist',
    ],
    [
      'file store, missing directory',
      (d) => {
        d.subsystems[0].namespaces[0] = { nsid: 1, device: { path: '/nonexistent-dir-x/a.img' }, ext: { store: 'file', size: '1M' } };
      },
      'subsystems[0].namespaces[0].device.path: cannot create /nonexistent-dir-x/a.img: directory /nonexistent-dir-x does not exist',
    ],
    [
      'file store, character device',
      (d) => {
        d.subsystems[0].namespaces[0] = { nsid: 1, device: { path: '/dev/null' }, ext: { store: 'file' } };
      },
      'subsystems[0].namespaces[0].device.path: /dev/null is not a regular file (it is a character device); a file store needs a regular file',
    ],
  ];

  it.each(cases)('%s', (_name, mutate, expected) => {
    const doc = base();
    mutate(doc);
    const problems = problemsOf(doc);
    expect(
      problems.some((p) => p.includes(expected)),
      `want: ${expected}\ngot:\n${problems.join('\n')}`,
    ).toBe(true);
  });

  it('the base document used above is valid', () => {
    expect(() => parseConfig(base())).not.toThrow();
  });

  it('collects all problems into one ConfigError', () => {
    const doc = base();
    doc.bogus = true;
    doc.ports[0].addr.trsvcid = '44x';
    doc.ports[1].addr.trtype = 'fc';
    doc.subsystems[0].attr.model = 'M'.repeat(50);
    doc.subsystems[0].namespaces[0].nsid = 0;
    doc.subsystems[0].namespaces[1].device.uuid = 'nope';
    let err: unknown;
    try {
      parseConfig(doc);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.problems).toHaveLength(6);
    expect(e.message).toMatch(/^invalid configuration \(6 problems\):\n {2}- /);
    for (const p of e.problems) expect(e.message).toContain(p);
    for (const field of [
      'bogus',
      'ports[0].addr.trsvcid',
      'ports[1].addr.trtype',
      'subsystems[0].attr.model',
      'subsystems[0].namespaces[0].nsid',
      'subsystems[0].namespaces[1].device.uuid',
    ]) {
      expect(
        e.problems.some((p) => p.startsWith(`${field}: `)),
        field,
      ).toBe(true);
    }
  });

  it('ignored nvmetcli attributes are notes, not errors', () => {
    const doc = base();
    doc.hosts[0].dhchap = { key: '', ctrl_key: '', hash: 'hmac(sha256)', dhgroup: 'null', tls_key: 'x' };
    doc.subsystems[0].attr.pi_enable = '1';
    doc.subsystems[0].namespaces[0].resv = { enable: '1' };
    doc.subsystems[0].namespaces[0].p2pmem = 'auto';
    doc.ports[0].addr.tsas = 'none';
    doc.ports[0].referrals = [{ name: 'r1', enable: 0, addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '10.0.0.9', trsvcid: '4420', portid: '3' } }];
    doc.ports[1].referrals = [{ name: 'r2', addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '10.0.0.9', trsvcid: '8009', portid: '7', treq: 'not specified' } }];
    const cfg = parseConfig(doc);
    for (const want of [
      'hosts[0].dhchap',
      'subsystems[0].attr.pi_enable',
      'subsystems[0].namespaces[0].resv.enable',
      'subsystems[0].namespaces[0].p2pmem',
      'ports[0].referrals[0]',
    ]) {
      expect(
        cfg.notes.some((n) => n.startsWith(want)),
        want,
      ).toBe(true);
    }
    expect(cfg.ports[0]!.referrals).toEqual([]);
    expect(cfg.ports[1]!.referrals).toEqual([{ name: 'r2', portid: 7, trtype: 'tcp', adrfam: 'ipv4', traddr: '10.0.0.9', trsvcid: 8009 }]);
  });

  it('accepts numbers where nvmetcli writes strings and vice versa', () => {
    const doc = base();
    doc.ports[0].portid = '1';
    doc.ports[0].addr.trsvcid = 4420;
    doc.ports[0].param.inline_data_size = 8192;
    doc.subsystems[0].attr.cntlid_max = 100;
    doc.subsystems[0].attr.ieee_oui = '0x0a1b2c';
    doc.subsystems[0].namespaces[0].nsid = '1';
    doc.subsystems[0].namespaces[0].enable = true;
    doc.subsystems[0].namespaces[0].ext.size = 16 << 20;
    const cfg = parseConfig(doc);
    expect(cfg.ports[0]!.inlineDataSize).toBe(8192);
    expect(cfg.subsystems[0]!.cntlidMax).toBe(100);
    expect(cfg.subsystems[0]!.maxControllers).toBe(100);
    expect(cfg.subsystems[0]!.ieeeOui).toBe(0x0a1b2c);
  });
});

describe('loadConfigFile', () => {
  it('reports JSON syntax errors with the file name, line and column', async () => {
    const file = path.join(FIXTURES, 'bad-syntax.json');
    const err = await loadConfigFile(file).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} at line 4 column \\d+: invalid JSON`));
  });
  it('reports truncated JSON at the end of the file', async () => {
    const file = path.join(tmp, 'truncated.json');
    writeFileSync(file, '{\n  "hosts": [\n');
    await expect(loadConfigFile(file)).rejects.toThrow(/truncated\.json at line 3 column 1: invalid JSON/);
  });
  it('reports an unreadable file', async () => {
    await expect(loadConfigFile(path.join(tmp, 'nope.json'))).rejects.toThrow(
      /nope\.json: invalid configuration \(1 problem\):\n {2}- cannot read the file: ENOENT/,
    );
  });
  it('resolves a relative control socket against the file directory', async () => {
    const file = path.join(tmp, 'ctl.json');
    writeFileSync(file, JSON.stringify({ ...base(), ext: { control: { socket: 'run/t.sock' } } }));
    expect((await loadConfigFile(file)).control).toEqual({ kind: 'unix', path: path.join(tmp, 'run/t.sock') });
    writeFileSync(file, JSON.stringify({ ...base(), ext: { control: { host: '127.0.0.1', port: 4419 } } }));
    expect((await loadConfigFile(file)).control).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 4419 });
  });
});
