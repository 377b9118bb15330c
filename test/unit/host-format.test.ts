/**
 * host/format.ts against fixed strings: nvme-cli 2.4's text and JSON for
 * list-subsys, show-topology, discover, id-ctrl, id-ns, get-log and
 * admin-passthru (json-c pretty layout, printf's %#x, the hex dump), and our
 * own show and io output.
 */
import { describe, expect, it } from 'vitest';
import type { ControllerInfo, IoEvent, IoSummary, ShowResult, Topology } from '../../host/agent-protocol.ts';
import {
  adminCommandName,
  formatDiscoveryLog,
  formatGetLog,
  formatIdCtrl,
  formatIdNs,
  formatIoEvent,
  formatIoProgress,
  formatIoSummary,
  formatListSubsys,
  formatPassthruCommand,
  formatPassthruSuccess,
  formatShow,
  formatStatus,
  formatTopology,
  hexAlt,
  hexDump,
  jsonC,
  parseDuration,
  parseNumber,
  parseSize,
} from '../../host/format.ts';
import type { HeadSnapshot } from '../../host/multipath/index.ts';
import { encodeIdentifyController, encodeIdentifyNamespace } from '../../shared/identify.ts';
import { tcpTsas, type DiscoveryLog } from '../../shared/log-pages.ts';

const NQN = 'nqn.2026-11.io.nvmets:array0';
const lines = (...l: string[]) => `${l.join('\n')}\n`;

const topology: Topology = {
  hosts: [
    {
      hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:6f1c0d4e-0000-4000-8000-000000000001',
      hostid: '6f1c0d4e-0000-4000-8000-000000000001',
      subsystems: [
        {
          name: 'nvme-subsys0',
          nqn: NQN,
          iopolicy: 'queue-depth',
          controllers: [
            { name: 'nvme0', transport: 'tcp', address: 'traddr=127.0.0.1,trsvcid=4420', state: 'live' },
            { name: 'nvme1', transport: 'tcp', address: 'traddr=127.0.0.1,trsvcid=4421', state: 'live' },
          ],
          namespaces: [
            {
              nsid: 1,
              head: 'nvme0n1',
              paths: [
                {
                  controller: 'nvme0',
                  path: 'nvme0c0n1',
                  transport: 'tcp',
                  address: 'traddr=127.0.0.1,trsvcid=4420',
                  state: 'live',
                  ana: 'optimized',
                  active: false,
                },
                {
                  controller: 'nvme1',
                  path: 'nvme0c1n1',
                  transport: 'tcp',
                  address: 'traddr=127.0.0.1,trsvcid=4421',
                  state: 'live',
                  ana: 'inaccessible',
                  active: false,
                },
              ],
            },
          ],
        },
        {
          name: 'nvme-subsys1',
          nqn: 'nqn.2026-11.io.nvmets:empty',
          iopolicy: 'queue-depth',
          controllers: [{ name: 'nvme2', transport: 'tcp', address: 'traddr=10.0.0.2,trsvcid=4420', state: 'connecting' }],
          namespaces: [],
        },
      ],
    },
  ],
};

describe('json-c layout (nvme-cli -o json)', () => {
  it('two-space indent, "key":value, empty containers inline, bigints as numbers', () => {
    expect(jsonC({ a: 1, b: 'x/y "q"', c: [], d: {}, e: [{ f: true, g: null }], h: 2n ** 64n })).toBe(
      lines(
        '{',
        '  "a":1,',
        '  "b":"x/y \\"q\\"",',
        '  "c":[],',
        '  "d":{},',
        '  "e":[',
        '    {',
        '      "f":true,',
        '      "g":null',
        '    }',
        '  ],',
        '  "h":18446744073709551616',
        '}',
      ).trimEnd(),
    );
    expect(jsonC([])).toBe('[]');
  });

  it("printf's %#x", () => {
    expect([hexAlt(0), hexAlt(0xb), hexAlt(0x10400), hexAlt(0n), hexAlt(0x20000n)]).toEqual(['0', '0xb', '0x10400', '0', '0x20000']);
  });
});

describe('list-subsys and show-topology', () => {
  it('list-subsys text: the paths of the first namespace, controllers when there is none', () => {
    expect(formatListSubsys(topology)).toBe(
      lines(
        `nvme-subsys0 - NQN=${NQN}`,
        '\\',
        ' +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420 live optimized',
        ' +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421 live inaccessible',
        'nvme-subsys1 - NQN=nqn.2026-11.io.nvmets:empty',
        '\\',
        ' +- nvme2 tcp traddr=10.0.0.2,trsvcid=4420 connecting',
      ),
    );
    expect(formatListSubsys({ hosts: [] })).toBe('');
  });

  it('list-subsys JSON: HostNQN, HostID, Subsystems[].Paths[] {Name, Transport, Address, State, ANAState}', () => {
    expect(formatListSubsys(topology, true)).toBe(
      lines(
        '[',
        '  {',
        '    "HostNQN":"nqn.2014-08.org.nvmexpress:uuid:6f1c0d4e-0000-4000-8000-000000000001",',
        '    "HostID":"6f1c0d4e-0000-4000-8000-000000000001",',
        '    "Subsystems":[',
        '      {',
        '        "Name":"nvme-subsys0",',
        `        "NQN":"${NQN}",`,
        '        "Paths":[',
        '          {',
        '            "Name":"nvme0",',
        '            "Transport":"tcp",',
        '            "Address":"traddr=127.0.0.1,trsvcid=4420",',
        '            "State":"live",',
        '            "ANAState":"optimized"',
        '          },',
        '          {',
        '            "Name":"nvme1",',
        '            "Transport":"tcp",',
        '            "Address":"traddr=127.0.0.1,trsvcid=4421",',
        '            "State":"live",',
        '            "ANAState":"inaccessible"',
        '          }',
        '        ]',
        '      },',
        '      {',
        '        "Name":"nvme-subsys1",',
        '        "NQN":"nqn.2026-11.io.nvmets:empty",',
        '        "Paths":[',
        '          {',
        '            "Name":"nvme2",',
        '            "Transport":"tcp",',
        '            "Address":"traddr=10.0.0.2,trsvcid=4420",',
        '            "State":"connecting"',
        '          }',
        '        ]',
        '      }',
        '    ]',
        '  }',
        ']',
      ),
    );
  });

  it('show-topology, ranked by namespace and by controller', () => {
    const one: Topology = { hosts: [{ ...topology.hosts[0]!, subsystems: [topology.hosts[0]!.subsystems[0]!] }] };
    expect(formatTopology(one)).toBe(
      lines(
        `nvme-subsys0 - NQN=${NQN}`,
        '\\',
        ' +- ns 1',
        ' \\',
        '  +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420 live optimized',
        '  +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421 live inaccessible',
      ),
    );
    expect(formatTopology(one, { ranking: 'ctrl' })).toBe(
      lines(
        `nvme-subsys0 - NQN=${NQN}`,
        '\\',
        ' +- nvme0 tcp traddr=127.0.0.1,trsvcid=4420',
        ' \\',
        '  +- ns 1 live optimized',
        ' +- nvme1 tcp traddr=127.0.0.1,trsvcid=4421',
        ' \\',
        '  +- ns 1 live inaccessible',
      ),
    );
    const j = JSON.parse(formatTopology(one, { json: true })) as Record<string, any>[];
    expect(j[0]!['Subsystems'][0]).toEqual({
      Name: 'nvme-subsys0',
      NQN,
      Namespaces: [
        {
          NSID: 1,
          Paths: [
            { Name: 'nvme0', Transport: 'tcp', Address: 'traddr=127.0.0.1,trsvcid=4420', State: 'live', ANAState: 'optimized' },
            { Name: 'nvme1', Transport: 'tcp', Address: 'traddr=127.0.0.1,trsvcid=4421', State: 'live', ANAState: 'inaccessible' },
          ],
        },
      ],
    });
  });
});

describe('discover', () => {
  const log: DiscoveryLog = {
    genctr: 3n,
    recfmt: 0,
    entries: [
      {
        trtype: 3,
        adrfam: 1,
        subtype: 3,
        treq: 4,
        portid: 1,
        cntlid: 0xffff,
        asqsz: 32,
        eflags: 3,
        trsvcid: '4420',
        subnqn: 'nqn.2014-08.org.nvmexpress.discovery',
        traddr: '127.0.0.1',
        tsas: tcpTsas(),
      },
      {
        trtype: 3,
        adrfam: 1,
        subtype: 2,
        treq: 4,
        portid: 2,
        cntlid: 0xffff,
        asqsz: 32,
        eflags: 0,
        trsvcid: '4421',
        subnqn: NQN,
        traddr: '127.0.0.1',
        tsas: tcpTsas(),
      },
    ],
  };

  it('text, as nvme-cli prints the log', () => {
    expect(formatDiscoveryLog(log)).toBe(
      lines(
        '',
        'Discovery Log Number of Records 2, Generation counter 3',
        '=====Discovery Log Entry 0======',
        'trtype:  tcp',
        'adrfam:  ipv4',
        'subtype: current discovery subsystem',
        'treq:    not specified, sq flow control disable supported',
        'portid:  1',
        'trsvcid: 4420',
        'subnqn:  nqn.2014-08.org.nvmexpress.discovery',
        'traddr:  127.0.0.1',
        'eflags:  explicit discovery connections, duplicate discovery information',
        'sectype: none',
        '=====Discovery Log Entry 1======',
        'trtype:  tcp',
        'adrfam:  ipv4',
        'subtype: nvme subsystem',
        'treq:    not specified, sq flow control disable supported',
        'portid:  2',
        'trsvcid: 4421',
        `subnqn:  ${NQN}`,
        'traddr:  127.0.0.1',
        'eflags:  none',
        'sectype: none',
      ),
    );
  });

  it('JSON: genctr and records', () => {
    const j = formatDiscoveryLog(log, true);
    expect(j.startsWith('{\n  "genctr":3,\n  "records":[\n    {\n      "trtype":"tcp",\n      "adrfam":"ipv4",\n')).toBe(true);
    expect(JSON.parse(j).records[1]).toEqual({
      trtype: 'tcp',
      adrfam: 'ipv4',
      subtype: 'nvme subsystem',
      treq: 'not specified, sq flow control disable supported',
      portid: 2,
      trsvcid: '4421',
      subnqn: NQN,
      traddr: '127.0.0.1',
      eflags: 'none',
      sectype: 'none',
    });
  });
});

describe('id-ctrl and id-ns', () => {
  const ctrl = encodeIdentifyController({
    vid: 0x1b36,
    ssvid: 0x1af4,
    sn: 'SN123',
    mn: 'nvmets array',
    fr: '0.1.0',
    rab: 6,
    ieee: 0x525400,
    cmic: 0x0b,
    mdts: 8,
    cntlid: 2,
    ver: 0x10400,
    oaes: 0x900,
    ctratt: 0x41,
    cntrltype: 1,
    kas: 10,
    anatt: 10,
    anacap: 31,
    anagrpmax: 128,
    nanagrpid: 128,
    sqes: 0x66,
    cqes: 0x44,
    maxcmd: 128,
    nn: 1024,
    oncs: 0xd,
    vwc: 7,
    sgls: 0x100001,
    mnan: 1024,
    subnqn: NQN,
    ioccsz: 1028,
    iorcsz: 1,
    msdbd: 1,
    tnvmcap: 1073741824n,
    npss: 1,
    psd: [
      { mp: 2500, enlat: 16, exlat: 4 },
      { mp: 12345, mxps: true, nops: true, idlp: 50, ips: 2, actp: 700, aps: 1, apw: 2, epfrt: 5, epfrts: 5, fqvt: 120, fqvts: 6, epfvt: 9, epfvts: 13 },
    ],
    bpcap: 2,
    nssl: 1000,
    plsi: 3,
    crcap: 1,
    cqt: 50,
    oaqd: 256,
  });

  it('id-ctrl text: field lines, padded ASCII fields, %#x values, power states', () => {
    const text = formatIdCtrl(ctrl).split('\n');
    expect(text.slice(0, 12)).toEqual([
      'NVME Identify Controller:',
      'vid       : 0x1b36',
      'ssvid     : 0x1af4',
      'sn        : SN123               ',
      'mn        : nvmets array                            ',
      'fr        : 0.1.0   ',
      'rab       : 6',
      'ieee      : 525400',
      'cmic      : 0xb',
      'mdts      : 8',
      'cntlid    : 0x2',
      'ver       : 0x10400',
    ]);
    expect(text).toEqual(
      expect.arrayContaining([
        'rtd3r     : 0',
        'tnvmcap   : 1073741824',
        'anacap    : 31',
        'sgls      : 0x100001',
        `subnqn    : ${NQN}`,
        'icsvscc   : 0',
        'ofcs      : 0',
      ]),
    );
    expect(text.slice(-13)).toEqual([
      'ps      0 : mp:25.00W operational enlat:16 exlat:4 rrt:0 rrl:0',
      '            rwt:0 rwl:0 idle_power:- active_power:-',
      '            active_power_workload:-',
      '            emergency power fail recovery time: -',
      '            forced quiescence vault time: -',
      '            emergency power fail vault time: -',
      'ps      1 : mp:1.2345W non-operational enlat:0 exlat:0 rrt:0 rrl:0',
      '            rwt:0 rwl:0 idle_power:0.50W active_power:0.0700W',
      '            active_power_workload:80K 128KiB SW',
      '            emergency power fail recovery time: 5 (unit: 100 milliseconds)',
      '            forced quiescence vault time: reserved', // 120 is past 99
      '            emergency power fail vault time: 9 (unit: Reserved)',
      '',
    ]);
    // The 2.1 fields sit where nvme-cli 2.16 prints them.
    expect(text.slice(16, 21)).toEqual(['rrls      : 0', 'bpcap     : 0x2', 'nssl      : 0x3e8', 'plsi      : 3', 'cntrltype : 1']);
    expect(text).toEqual(expect.arrayContaining(['crcap     : 1', 'kpioc     : 0', 'cqt       : 50', 'oaqd      : 256', 'mcdqpc    : 0']));
    expect(text).toHaveLength(1 + 106 + 12 + 1); // title, the 106 fields of nvme-cli 2.16, two power states of 6 lines, end
  });

  it('id-ctrl JSON: nvme-cli keys and order, numbers, psds', () => {
    const json = formatIdCtrl(ctrl, true);
    expect(
      json.startsWith(
        '{\n  "vid":6966,\n  "ssvid":6900,\n  "sn":"SN123               ",\n  "mn":"nvmets array                            ",\n  "fr":"0.1.0   ",\n  "rab":6,\n  "ieee":5395456,\n',
      ),
    ).toBe(true);
    const j = JSON.parse(json) as Record<string, any>;
    expect(Object.keys(j).slice(-9)).toEqual(['mcdqpc', 'subnqn', 'ioccsz', 'iorcsz', 'icdoff', 'fcatt', 'msdbd', 'ofcs', 'psds']);
    expect(Object.keys(j).slice(15, 20)).toEqual(['rrls', 'bpcap', 'nssl', 'plsi', 'cntrltype']);
    expect(j).toMatchObject({ bpcap: 2, nssl: 1000, plsi: 3, crcap: 1, cqt: 50, oaqd: 256 });
    expect(j['psds'][1]).toEqual({
      max_power: 12345,
      max_power_scale: 1,
      'non-operational_state': 1,
      entry_lat: 0,
      exit_lat: 0,
      read_tput: 0,
      read_lat: 0,
      write_tput: 0,
      write_lat: 0,
      idle_power: 50,
      idle_scale: 2,
      active_power: 700,
      active_power_work: 2,
      active_scale: 1,
      emerg_power_fail_recover_time: 5,
      emerg_power_fail_recover_scale: 5,
      force_quiesce_vault_time: 120,
      force_quiesce_vault_scale: 6,
      emerg_power_fail_vault_time: 9,
      emerg_power_fail_vault_scale: 13,
    });
  });

  const ns = encodeIdentifyNamespace({
    nsze: 131072n,
    ncap: 131072n,
    nuse: 131072n,
    nsfeat: 0x10,
    nmic: 1,
    dlfeat: 9,
    anagrpid: 1,
    kpios: 1,
    kpiodaag: 4096,
    npwg: 7,
    nows: 7,
    nguid: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
    eui64: Buffer.from('0011223344556677', 'hex'),
    lbaf: [
      { ms: 0, lbads: 9, rp: 0 },
      { ms: 8, lbads: 12, rp: 2 },
    ],
    flbas: 1,
  });

  it('id-ns text', () => {
    expect(formatIdNs(ns, 1)).toBe(
      lines(
        'NVME Identify Namespace 1:',
        'nsze    : 0x20000',
        'ncap    : 0x20000',
        'nuse    : 0x20000',
        'nsfeat  : 0x10',
        'nlbaf   : 1',
        'flbas   : 0x1',
        'mc      : 0',
        'dpc     : 0',
        'dps     : 0',
        'nmic    : 0x1',
        'rescap  : 0',
        'fpi     : 0',
        'dlfeat  : 9',
        'nawun   : 0',
        'nawupf  : 0',
        'nacwu   : 0',
        'nabsn   : 0',
        'nabo    : 0',
        'nabspf  : 0',
        'noiob   : 0',
        'nvmcap  : 0',
        'npwg    : 7',
        'npwa    : 0',
        'npdg    : 0',
        'npda    : 0',
        'nows    : 7',
        'mssrl   : 0',
        'mcl     : 0',
        'msrc    : 0',
        'kpios   : 1',
        'nulbaf  : 0',
        'kpiodaag: 4096',
        'anagrpid: 1',
        'nsattr\t: 0',
        'nvmsetid: 0',
        'endgid  : 0',
        'nguid   : 00112233445566778899aabbccddeeff',
        'eui64   : 0011223344556677',
        'lbaf  0 : ms:0   lbads:9  rp:0 ',
        'lbaf  1 : ms:8   lbads:12 rp:0x2 (in use)',
      ),
    );
  });

  it('id-ns JSON', () => {
    const json = formatIdNs(ns, 1, true);
    expect(
      json.endsWith(
        '  "nguid":"00112233445566778899aabbccddeeff",\n  "eui64":"0011223344556677",\n  "lbafs":[\n    {\n      "lbaf":0,\n      "ms":0,\n      "ds":9,\n      "rp":0,\n      "in_use":0\n    },\n    {\n      "lbaf":1,\n      "ms":8,\n      "ds":12,\n      "rp":2,\n      "in_use":1\n    }\n  ],\n  "vs":[]\n}\n',
      ),
    ).toBe(true);
    const j = JSON.parse(json) as Record<string, unknown>;
    expect(Object.keys(j).slice(0, 6)).toEqual(['nsze', 'ncap', 'nuse', 'nsfeat', 'nlbaf', 'flbas']);
    expect(j).toMatchObject({ nsze: 131072, nmic: 1, npwg: 7, nows: 7, anagrpid: 1, kpios: 1, kpiodaag: 4096 });
    expect(Object.keys(j).slice(-10)).toEqual(['nulbaf', 'kpiodaag', 'anagrpid', 'nsattr', 'nvmsetid', 'endgid', 'nguid', 'eui64', 'lbafs', 'vs']);
  });

  it('id-ns JSON: the vendor specific area as 16-character strings up to its first NUL', () => {
    const withVs = Buffer.from(ns);
    withVs.write('vendor text, 20 chars!\x01', 384, 'latin1');
    const j = JSON.parse(formatIdNs(withVs, 1, true)) as { vs: string[] };
    expect(j.vs).toEqual(['vendor.text,.20.', 'chars!.']);
  });

  it('id-ns without NSFEAT bits 5:4 leaves NPWG..NOWS out; bit 5 alone prints them without NPDG', () => {
    const plain = encodeIdentifyNamespace({ nsze: 8n, nsfeat: 0, lbaf: [{ ms: 0, lbads: 9, rp: 0 }] });
    expect(formatIdNs(plain, 1)).not.toContain('npwg');
    expect(Object.keys(JSON.parse(formatIdNs(plain, 1, true)) as object)).not.toContain('npwg');
    const bit5 = encodeIdentifyNamespace({ nsze: 8n, nsfeat: 0x20, npwg: 3, lbaf: [{ ms: 0, lbads: 9, rp: 0 }] });
    const text = formatIdNs(bit5, 1);
    expect(text).toContain('npwg    : 3\n');
    expect(text).not.toContain('npdg');
    expect(Object.keys(JSON.parse(formatIdNs(bit5, 1, true)) as object)).toEqual(expect.arrayContaining(['npwg', 'npwa', 'npda', 'nows']));
  });
});

describe('get-log and admin-passthru', () => {
  it("nvme-cli's hex dump: full lines and a partial last line", () => {
    expect(hexDump(Buffer.from('Hello, NVMe world! \x00\x01', 'latin1'))).toBe(
      lines(
        '       0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f',
        '0000: 48 65 6c 6c 6f 2c 20 4e 56 4d 65 20 77 6f 72 6c "Hello,.NVMe.worl"',
        `0010: 64 21 20 00 01 ${' '.repeat(33)} "d!..."`,
      ),
    );
    expect(hexDump(Buffer.alloc(16, 0x41))).toBe(
      lines('       0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f', `0000:${' 41'.repeat(16)} "${'A'.repeat(16)}"`),
    );
  });

  it('get-log header', () => {
    expect(
      formatGetLog('nvme0', 12, 0xffffffff, Buffer.from([1, 0, 0, 0]))
        .split('\n')
        .slice(0, 3),
    ).toEqual([
      'Device:nvme0 log-id:12 namespace-id:0xffffffff',
      '       0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f',
      `0000: 01 00 00 00 ${' '.repeat(36)} "...."`,
    ]);
  });

  it('passthru messages', () => {
    expect(formatPassthruSuccess(0xfe, 0)).toBe('Admin Command Vendor Specific is Success and result: 0x00000000\n');
    expect(formatPassthruSuccess(0x06, 0x1234)).toBe('Admin Command Identify is Success and result: 0x00001234\n');
    expect(adminCommandName(0x02)).toBe('Get Log Page');
    expect(formatStatus(0x4002)).toBe('NVMe status: InvalidField(0x2) DNR\n');
    expect(
      formatPassthruCommand({
        opcode: 0xfe,
        flags: 0,
        rsvd: 0,
        nsid: 1,
        cdw2: 0,
        cdw3: 0,
        dataLen: 0,
        metadataLen: 0,
        cdw10: 0xabc,
        cdw11: 0,
        cdw12: 0,
        cdw13: 0,
        cdw14: 0,
        cdw15: 0,
        timeoutMs: 0,
      })
        .split('\n')
        .slice(0, 4),
    ).toEqual(['opcode       : fe', 'flags        : 00', 'rsvd1        : 0000', 'nsid         : 00000001']);
  });
});

describe('argument parsing', () => {
  it('sizes, durations and numbers', () => {
    expect([parseSize('4k'), parseSize('4096'), parseSize('64K'), parseSize('1m'), parseSize('1MiB')]).toEqual([4096, 4096, 65536, 1048576, 1048576]);
    expect(() => parseSize('4x')).toThrow(/not a size/);
    expect(() => parseSize('0')).toThrow(/positive/);
    expect([parseDuration('10s'), parseDuration('500ms'), parseDuration('2m'), parseDuration('3'), parseDuration('1.5s')]).toEqual([
      10000, 500, 120000, 3000, 1500,
    ]);
    expect(() => parseDuration('soon')).toThrow(/not a duration/);
    expect([parseNumber('0xfe'), parseNumber('254'), parseNumber('0376'), parseNumber('0')]).toEqual([254, 254, 254, 0]);
    expect(() => parseNumber('0xzz')).toThrow(/not a number/);
    expect(() => parseNumber('-1')).toThrow(/not a number/);
  });
});

describe('show and io (ours)', () => {
  const head = {
    name: 'nvme0n1',
    subnqn: NQN,
    nsid: 1,
    ids: { nguid: '00', uuid: '00', eui64: '00', csi: 0 },
    blockSize: 512,
    nblocks: 131072,
    policy: 'queue-depth',
    closed: false,
    activePath: null,
    activating: null,
    usable: true,
    noPathForMs: null,
    failover: null,
    queued: 0,
    fenced: 0,
    inflight: 2,
    options: { maxRetries: 5, noPathTimeoutMs: null, failoverIntervalMs: 0, numaNode: 0, suspectTimeoutMs: 1000, maxTransferBytes: 0 },
    counters: {
      ios: 1000,
      bytesRead: 2097152,
      bytesWritten: 1048576,
      failovers: 1,
      retries: 0,
      errors: 0,
      requeues: 8,
      fencedWrites: 1,
      activations: 0,
      noPathMs: 4,
    },
    paths: [
      {
        name: 'nvme0c1n1',
        address: 'tcp traddr=127.0.0.1 trsvcid=4421',
        cntlid: 2,
        nsid: 1,
        state: 'live',
        ana: 'optimized',
        active: false,
        usable: true,
        suspect: null,
        inflight: 2,
        pathInflight: 2,
        ios: 600,
        errors: 0,
        demotedAgoMs: null,
      },
      {
        name: 'nvme0c0n1',
        address: 'tcp traddr=127.0.0.1 trsvcid=4420',
        cntlid: 1,
        nsid: 1,
        state: 'connecting',
        ana: 'inaccessible',
        active: false,
        usable: false,
        suspect: 'path error: queue 1: write EPIPE',
        inflight: 0,
        pathInflight: 0,
        ios: 400,
        errors: 8,
        demotedAgoMs: 1500,
      },
    ],
  } as HeadSnapshot;
  const ctrl = (name: string, port: number, state: string, lastError: string | null): ControllerInfo => ({
    name,
    state,
    subnqn: NQN,
    subsystem: 'nvme-subsys0',
    transport: 'tcp',
    address: `traddr=127.0.0.1,trsvcid=${port}`,
    cntlid: port - 4419,
    hostnqn: 'nqn.h',
    hostid: 'x',
    katoMs: 5000,
    reconnectDelayMs: 10000,
    ctrlLossTmoMs: 600000,
    fastIoFailTmoMs: -1,
    ioQueues: 2,
    queueSize: 128,
    hdrDigest: false,
    dataDigest: false,
    lastError,
    paths: [`nvme0c${port - 4420}n1`],
  });

  it('show: the agent, controllers, heads with counters and per-path state', () => {
    const s: ShowResult = {
      agent: { pid: 42, socket: '/tmp/a.sock', log: '/tmp/a.log', uptimeMs: 65000, controllers: 2, heads: 1 },
      controllers: [ctrl('nvme0', 4420, 'connecting', 'queue 1: write EPIPE'), ctrl('nvme1', 4421, 'live', null)],
      heads: [head],
    };
    expect(formatShow(s)).toBe(
      lines(
        'host agent pid 42, up 1m05s, socket /tmp/a.sock, log /tmp/a.log',
        '',
        'Controllers',
        '  nvme0  connecting  tcp traddr=127.0.0.1,trsvcid=4420  nvme-subsys0  cntlid 1',
        '    kato 5 s, reconnect delay 10 s, ctrl loss tmo 600 s, fast io fail tmo off, 2 io queues of 128',
        '    paths nvme0c0n1',
        '    last error: queue 1: write EPIPE',
        '  nvme1  live  tcp traddr=127.0.0.1,trsvcid=4421  nvme-subsys0  cntlid 2',
        '    kato 5 s, reconnect delay 10 s, ctrl loss tmo 600 s, fast io fail tmo off, 2 io queues of 128',
        '    paths nvme0c1n1',
        '',
        'Namespaces (multipath heads)',
        `  nvme0n1  ${NQN} nsid 1  64.00 MiB (131072 x 512)  policy queue-depth  usable`,
        '    ios 1000, read 2.00 MiB, written 1.00 MiB, failovers 1, retries 0, errors 0, requeues 8, fenced writes 1, activations 0, time with no path 4 ms',
        '    now: inflight 2, queued 0',
        '    path       state       ANA           active  usable  inflight  ios  errors  held out',
        '    nvme0c0n1  connecting  inaccessible  no      no      0         400  8       path error: queue 1: write EPIPE',
        '    nvme0c1n1  live        optimized     no      yes     2         600  0       -',
      ),
    );
    expect(JSON.parse(formatShow(s, true))).toEqual(s);
  });

  it('io progress and event lines', () => {
    expect(
      formatIoProgress({
        head: 'nvme0n1',
        elapsedMs: 3004,
        phase: 'run',
        ios: 54299,
        iops: 12561.4,
        mbps: 51.45,
        inflight: 8,
        errors: 0,
        mismatches: 0,
        failovers: 1,
        noPathMs: 4,
        paths: [
          { name: 'nvme0c1n1', state: 'live', ana: 'optimized', active: false, usable: true },
          { name: 'nvme0c0n1', state: 'connecting', ana: 'optimized', active: false, usable: false },
        ],
      }),
    ).toBe(
      '[   3.0s] nvme0n1 12561 IOPS 51.5 MB/s  ios 54299  inflight 8  errors 0  mismatches 0  failovers 1  |  nvme0c0n1 connecting optimized, nvme0c1n1 live optimized\n',
    );
    const events: IoEvent[] = [
      { type: 'path-down', atMs: 3612, path: 'nvme0c0n1', reason: 'controller resetting' },
      { type: 'failover-start', atMs: 3613, from: 'nvme0c0n1', reason: 'path error: queue 1: write EPIPE' },
      { type: 'failover-end', atMs: 3617, from: 'nvme0c0n1', to: 'nvme0c1n1', durationMs: 4 },
      { type: 'no-path', atMs: 3612, queued: 3, paths: ['nvme0c0n1 controller resetting', 'nvme0c1n1 ANA inaccessible'] },
      { type: 'path-up', atMs: 13614, path: 'nvme0c1n1', reason: 'controller live, ANA optimized' },
    ];
    expect(events.map(formatIoEvent).join('')).toBe(
      lines(
        '[   3.6s] path down: nvme0c0n1 (controller resetting)',
        '[   3.6s] failover start: away from nvme0c0n1 (path error: queue 1: write EPIPE)',
        '[   3.6s] failover end: nvme0c0n1 -> nvme0c1n1 in 4 ms',
        '[   3.6s] no usable path: 3 I/O queued (nvme0c0n1 controller resetting, nvme0c1n1 ANA inaccessible)',
        '[  13.6s] path up: nvme0c1n1 (controller live, ANA optimized)',
      ),
    );
  });

  it('io summary: IOPS, MB/s, latency percentiles, errors, mismatches, stalls, head counters', () => {
    const s: IoSummary = {
      head: 'nvme0n1',
      policy: 'queue-depth',
      params: { device: 'nvme0n1', rw: 'randrw', bs: 4096, qd: 8, runtimeMs: 10000, verify: true },
      cancelled: false,
      result: {
        elapsedMs: 10000.4,
        ios: 171735,
        reads: 85605,
        writes: 86130,
        bytesRead: 350638080,
        bytesWritten: 352788480,
        iops: 17173.5,
        mbps: 70.34,
        latencyUs: { p50: 228.2, p90: 391, p99: 4898, max: 5006875 },
        errors: [],
        mismatches: [{ lba: 800, kind: 'stale', expectedGeneration: 9, foundGeneration: 7, foundLba: 800, atMs: 2500 }],
        verifiedBlocks: 586064,
        stalls: [{ startMs: 3600, durationMs: 108.4 }],
        maxStallMs: 108.4,
      },
      totals: { errors: 0, mismatches: 1, stalls: 1 },
      counters: { ios: 1, bytesRead: 0, bytesWritten: 0, failovers: 1, retries: 0, errors: 0, requeues: 8, fencedWrites: 1, activations: 0, noPathMs: 4 },
      events: [],
    };
    expect(formatIoSummary(s)).toBe(
      lines(
        'nvme0n1: randrw bs=4096 qd=8 verify=on policy=queue-depth, 10.00 s',
        '  I/Os:        171735 (read 85605, write 86130)',
        '  IOPS:        17174',
        '  MB/s:        70.34 (read 35.06, write 35.28)',
        '  latency us:  p50 228  p90 391  p99 4898  max 5006875',
        '  errors:      0',
        '  mismatches:  1 (586064 blocks read back at the end)',
        '  stalls:      1, longest 108 ms',
        '  head:        failovers 1, retries 0, requeues 8, fenced writes 1, errors 0, time with no path 4 ms',
        '  mismatch at 2.50 s: LBA 800 stale (expected generation 9, found 7)',
      ),
    );
  });
});
