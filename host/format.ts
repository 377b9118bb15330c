/**
 * Output of the host CLI. The nvme-cli verbs print what nvme-cli prints: the
 * same lines, field names and JSON keys (id-ctrl and id-ns as 2.16, Debian
 * forky's, with the NVMe 2.1 fields; the other verbs as 2.4, Debian 12's), and
 * JSON laid out as json-c's pretty printer does (two-space indent, "key":value). The rest
 * (show, io) is ours. Pure functions of their input, tested against fixed
 * strings (test/unit/host-format.test.ts).
 */
import { decodeIdentifyController, decodeIdentifyNamespace, flbasIndex, IDENTIFY_DATA_SIZE } from '../shared/identify.ts';
import type { DiscoveryLog } from '../shared/log-pages.ts';
import { statusName } from '../shared/status.ts';
import type { ControllerInfo, IoEvent, IoProgress, IoSummary, ShowResult, Topology, TopologyHost } from './agent-protocol.ts';
import type { HeadSnapshot } from './multipath/index.ts';

// ---------------------------------------------------------------- basics

/** JSON as json-c's JSON_C_TO_STRING_PRETTY prints it (nvme-cli -o json); bigints as numbers. */
export function jsonC(value: unknown, level = 0): string {
  const pad = (n: number) => '  '.repeat(n);
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => `${pad(level + 1)}${jsonC(v, level + 1)}`).join(',\n')}\n${pad(level)}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, v]) => `${pad(level + 1)}${JSON.stringify(k)}:${jsonC(v, level + 1)}`).join(',\n')}\n${pad(level)}}`;
}

/** printf's %#x: "0" for zero, else 0x and lower-case hex. */
export function hexAlt(n: number | bigint): string {
  return n === 0 || n === 0n ? '0' : `0x${n.toString(16)}`;
}

/** nvme-cli's hex dump (d(buf, len, 16, 1)): an offset column, 16 bytes a line, and their printable characters. */
export function hexDump(buf: Buffer): string {
  let out = '     ';
  for (let i = 0; i <= 15; i++) out += i.toString(16).padStart(3);
  let ascii = '';
  let lineDone = false;
  let i = 0;
  for (; i < buf.length; i++) {
    lineDone = false;
    if (i % 16 === 0) out += `\n${i.toString(16).padStart(4, '0')}:`;
    const b = buf[i]!;
    out += ` ${b.toString(16).padStart(2, '0')}`;
    ascii += b >= 0x21 && b <= 0x7e ? String.fromCharCode(b) : '.';
    if ((i + 1) % 16 === 0) {
      out += ` "${ascii}"`;
      ascii = '';
      lineDone = true;
    }
  }
  if (!lineDone) {
    const rest = 16 - (i % 16);
    out += ` ${' '.repeat(3 * rest)} "${ascii}"`;
  }
  return `${out}\n`;
}

/** Bytes with a binary unit: "1.00 GiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]}`;
}

/** Parse "4k", "64K", "1m", "512", "1g" (powers of 1024), as fio's bs. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new RangeError(`"${text}" is not a size (e.g. 4096, 4k, 1m)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const v = Number(m[1]) * mult;
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`"${text}" is not a positive whole number of bytes`);
  return v;
}

/** Parse "10s", "500ms", "2m", "1h" or a plain number of seconds (fio's runtime), to ms. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!m) throw new RangeError(`"${text}" is not a duration (e.g. 10s, 500ms, 2m)`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm' | 'h'];
  const v = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`"${text}" is not a positive duration`);
  return v;
}

/** strtoul(text, 0) as nvme-cli parses numbers: decimal, 0x hex, 0 octal; whole string, no sign. */
export function parseNumber(text: string): number {
  const t = text.trim();
  let v: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(t)) v = parseInt(t.slice(2), 16);
  else if (/^0[0-7]+$/.test(t)) v = parseInt(t.slice(1), 8);
  else if (/^\d+$/.test(t)) v = parseInt(t, 10);
  else throw new RangeError(`"${text}" is not a number (decimal, 0x hex or 0 octal)`);
  if (!Number.isSafeInteger(v)) throw new RangeError(`"${text}" is too large`);
  return v;
}

// ---------------------------------------------------------------- discovery (nvme discover)

const TRTYPES: Record<number, string> = { 1: 'rdma', 2: 'fc', 3: 'tcp', 254: 'loop' };
const ADRFAMS = ['pci', 'ipv4', 'ipv6', 'infiniband', 'fibre-channel'];
const SUBTYPES: Record<number, string> = { 1: 'discovery subsystem referral', 2: 'nvme subsystem', 3: 'current discovery subsystem' };
const TREQS = [
  'not specified',
  'required',
  'not required',
  undefined,
  'not specified, sq flow control disable supported',
  'required, sq flow control disable supported',
  'not required, sq flow control disable supported',
];
const EFLAGS = [
  'none',
  'duplicate discovery information',
  'explicit discovery connections',
  'explicit discovery connections, duplicate discovery information',
  'no cdc connectivity',
  'duplicate discovery information, no cdc connectivity',
  'explicit discovery connections, no cdc connectivity',
  'explicit discovery connections, duplicate discovery information, no cdc connectivity',
];
const SECTYPES = ['none', 'tls', 'tls13'];

const pick = (table: readonly (string | undefined)[] | Record<number, string>, i: number): string =>
  (table as Record<number, string | undefined>)[i] ?? 'unrecognized';

export function formatDiscoveryLog(log: DiscoveryLog, json = false): string {
  if (json) {
    return `${jsonC({
      genctr: log.genctr,
      records: log.entries.map((e) => ({
        trtype: pick(TRTYPES, e.trtype),
        adrfam: pick(ADRFAMS, e.adrfam),
        subtype: pick(SUBTYPES, e.subtype),
        treq: pick(TREQS, e.treq),
        portid: e.portid,
        trsvcid: e.trsvcid,
        subnqn: e.subnqn,
        traddr: e.traddr,
        eflags: pick(EFLAGS, e.eflags),
        ...(e.trtype === 3 ? { sectype: pick(SECTYPES, e.tsas[0] ?? 0) } : {}),
      })),
    })}\n`;
  }
  const lines = ['', `Discovery Log Number of Records ${log.entries.length}, Generation counter ${log.genctr}`];
  log.entries.forEach((e, i) => {
    lines.push(
      `=====Discovery Log Entry ${i}======`,
      `trtype:  ${pick(TRTYPES, e.trtype)}`,
      `adrfam:  ${e.traddr.length ? pick(ADRFAMS, e.adrfam) : ''}`,
      `subtype: ${pick(SUBTYPES, e.subtype)}`,
      `treq:    ${pick(TREQS, e.treq)}`,
      `portid:  ${e.portid}`,
      `trsvcid: ${e.trsvcid}`,
      `subnqn:  ${e.subnqn}`,
      `traddr:  ${e.traddr}`,
      `eflags:  ${pick(EFLAGS, e.eflags)}`,
    );
    if (e.trtype === 3) lines.push(`sectype: ${pick(SECTYPES, e.tsas[0] ?? 0)}`);
  });
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- list-subsys / show-topology

function hostJson(h: TopologyHost, subsystems: Record<string, unknown>[]): Record<string, unknown> {
  return { HostNQN: h.hostnqn, HostID: h.hostid, Subsystems: subsystems };
}

/**
 * `nvme list-subsys [device]`: each subsystem with the paths of its first
 * namespace (controller, transport, address, state, ANA state), or its
 * controllers when it has no namespace.
 */
export function formatListSubsys(t: Topology, json = false): string {
  if (json) {
    return `${jsonC(
      t.hosts.map((h) =>
        hostJson(
          h,
          h.subsystems.map((s) => {
            const ns = s.namespaces[0];
            const Paths = ns
              ? ns.paths.map((p) => ({ Name: p.controller, Transport: p.transport, Address: p.address, State: p.state, ANAState: p.ana }))
              : s.controllers.map((c) => ({ Name: c.name, Transport: c.transport, Address: c.address, State: c.state }));
            return { Name: s.name, NQN: s.nqn, Paths };
          }),
        ),
      ),
    )}\n`;
  }
  const lines: string[] = [];
  for (const h of t.hosts) {
    for (const s of h.subsystems) {
      lines.push(`${s.name} - NQN=${s.nqn}`, '\\');
      const ns = s.namespaces[0];
      if (ns) for (const p of ns.paths) lines.push(` +- ${p.controller} ${p.transport} ${p.address} ${p.state} ${p.ana}`);
      else for (const c of s.controllers) lines.push(` +- ${c.name} ${c.transport} ${c.address} ${c.state}`);
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** `nvme show-topology [-r namespace|ctrl]`. */
export function formatTopology(t: Topology, opts: { json?: boolean; ranking?: 'namespace' | 'ctrl' } = {}): string {
  if (opts.json) {
    return `${jsonC(
      t.hosts.map((h) =>
        hostJson(
          h,
          h.subsystems.map((s) => ({
            Name: s.name,
            NQN: s.nqn,
            Namespaces: s.namespaces.map((n) => ({
              NSID: n.nsid,
              Paths: n.paths.map((p) => ({ Name: p.controller, Transport: p.transport, Address: p.address, State: p.state, ANAState: p.ana })),
            })),
          })),
        ),
      ),
    )}\n`;
  }
  const lines: string[] = [];
  for (const h of t.hosts) {
    for (const s of h.subsystems) {
      lines.push(`${s.name} - NQN=${s.nqn}`, '\\');
      if (opts.ranking === 'ctrl') {
        for (const c of s.controllers) {
          lines.push(` +- ${c.name} ${c.transport} ${c.address}`, ' \\');
          for (const n of s.namespaces) for (const p of n.paths) if (p.controller === c.name) lines.push(`  +- ns ${n.nsid} ${p.state} ${p.ana}`);
        }
      } else {
        for (const n of s.namespaces) {
          lines.push(` +- ns ${n.nsid}`, ' \\');
          for (const p of n.paths) lines.push(`  +- ${p.controller} ${p.transport} ${p.address} ${p.state} ${p.ana}`);
        }
      }
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

// ---------------------------------------------------------------- id-ctrl / id-ns

/** A fixed-size ASCII field as nvme-cli prints it (%-.*s: up to the first NUL, padding kept). */
function rawAscii(buf: Buffer, off: number, len: number): string {
  const b = buf.subarray(off, off + len);
  const nul = b.indexOf(0);
  return (nul >= 0 ? b.subarray(0, nul) : b).toString('latin1');
}

function uuidOf(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function watts(v: number, scale: number): string {
  switch (scale & 0x3) {
    case 0:
      return '-';
    case 1:
      return `${Math.floor(v / 10000)}.${String(v % 10000).padStart(4, '0')}W`;
    case 2:
      return `${Math.floor(v / 100)}.${String(v % 100).padStart(2, '0')}W`;
    default:
      return 'reserved';
  }
}

function workload(apw: number): string {
  switch (apw & 0x7) {
    case 0:
      return '-';
    case 1:
      return '1MiB 32 RW, 30s idle';
    case 2:
      return '80K 128KiB SW';
    default:
      return 'reserved';
  }
}

const TIME_SCALES = [
  '1 microsecond',
  '10 microseconds',
  '100 microseconds',
  '1 millisecond',
  '10 milliseconds',
  '100 milliseconds',
  '1 second',
  '10 seconds',
  '100 seconds',
  '1,000 seconds',
  '10,000 seconds',
  '100,000 seconds',
  '1,000,000 seconds',
];

/** A power state's emergency power fail / forced quiescence time (NVMe 2.1), right-aligned as nvme-cli 2.16 prints it. */
function psdTime(desc: string, time: number, scale: number): string {
  const value = time === 0 ? '-' : time <= 99 ? `${time} (unit: ${TIME_SCALES[scale] ?? 'Reserved'})` : 'reserved';
  return `${' '.repeat(12)}${desc}: ${value}`;
}

/**
 * `nvme id-ctrl`: the 4096-byte Identify Controller data, with every field
 * nvme-cli 2.16 prints (NVMe 2.1: bpcap, nssl, plsi, crcap, kpioc, ...), in its
 * order and with its names. Older nvme-cli releases print a subset of these
 * keys; 2.3 and 2.4 also print 128-bit fields as JSON strings and the power
 * state flags as one "flags" key, which 2.13 on split into two.
 */
export function formatIdCtrl(data: Buffer, json = false): string {
  const c = decodeIdentifyController(data);
  const sn = rawAscii(data, 4, 20);
  const mn = rawAscii(data, 24, 40);
  const fr = rawAscii(data, 64, 8);
  if (json) {
    const o: Record<string, unknown> = {
      vid: c.vid,
      ssvid: c.ssvid,
      sn,
      mn,
      fr,
      rab: c.rab,
      ieee: c.ieee,
      cmic: c.cmic,
      mdts: c.mdts,
      cntlid: c.cntlid,
      ver: c.ver,
      rtd3r: c.rtd3r,
      rtd3e: c.rtd3e,
      oaes: c.oaes,
      ctratt: c.ctratt,
      rrls: c.rrls,
      bpcap: c.bpcap,
      nssl: c.nssl,
      plsi: c.plsi,
      cntrltype: c.cntrltype,
      fguid: uuidOf(c.fguid),
      crdt1: c.crdt1,
      crdt2: c.crdt2,
      crdt3: c.crdt3,
      crcap: c.crcap,
      nvmsr: c.nvmsr,
      vwci: c.vwci,
      mec: c.mec,
      oacs: c.oacs,
      acl: c.acl,
      aerl: c.aerl,
      frmw: c.frmw,
      lpa: c.lpa,
      elpe: c.elpe,
      npss: c.npss,
      avscc: c.avscc,
      apsta: c.apsta,
      wctemp: c.wctemp,
      cctemp: c.cctemp,
      mtfa: c.mtfa,
      hmpre: c.hmpre,
      hmmin: c.hmmin,
      tnvmcap: c.tnvmcap,
      unvmcap: c.unvmcap,
      rpmbs: c.rpmbs,
      edstt: c.edstt,
      dsto: c.dsto,
      fwug: c.fwug,
      kas: c.kas,
      hctma: c.hctma,
      mntmt: c.mntmt,
      mxtmt: c.mxtmt,
      sanicap: c.sanicap,
      hmminds: c.hmminds,
      hmmaxd: c.hmmaxd,
      nsetidmax: c.nsetidmax,
      endgidmax: c.endgidmax,
      anatt: c.anatt,
      anacap: c.anacap,
      anagrpmax: c.anagrpmax,
      nanagrpid: c.nanagrpid,
      pels: c.pels,
      domainid: c.domainid,
      kpioc: c.kpioc,
      mptfawr: c.mptfawr,
      megcap: c.megcap,
      tmpthha: c.tmpthha,
      cqt: c.cqt,
      sqes: c.sqes,
      cqes: c.cqes,
      maxcmd: c.maxcmd,
      nn: c.nn,
      oncs: c.oncs,
      fuses: c.fuses,
      fna: c.fna,
      vwc: c.vwc,
      awun: c.awun,
      awupf: c.awupf,
      icsvscc: c.nvscc,
      nwpc: c.nwpc,
      acwu: c.acwu,
      ocfs: c.ocfs,
      sgls: c.sgls,
      mnan: c.mnan,
      maxdna: c.maxdna,
      maxcna: c.maxcna,
      oaqd: c.oaqd,
      rhiri: c.rhiri,
      hirt: c.hirt,
      cmmrtd: c.cmmrtd,
      nmmrtd: c.nmmrtd,
      minmrtg: c.minmrtg,
      maxmrtg: c.maxmrtg,
      trattr: c.trattr,
      mcudmq: c.mcudmq,
      mnsudmq: c.mnsudmq,
      mcmr: c.mcmr,
      nmcmr: c.nmcmr,
      mcdqpc: c.mcdqpc,
      ...(c.subnqn.length ? { subnqn: c.subnqn } : {}),
      ioccsz: c.ioccsz,
      iorcsz: c.iorcsz,
      icdoff: c.icdoff,
      fcatt: c.fcatt,
      msdbd: c.msdbd,
      ofcs: c.ofcs,
      psds: c.psd.map((p) => ({
        max_power: p.mp,
        max_power_scale: p.mxps ? 1 : 0,
        'non-operational_state': p.nops ? 1 : 0,
        entry_lat: p.enlat,
        exit_lat: p.exlat,
        read_tput: p.rrt,
        read_lat: p.rrl,
        write_tput: p.rwt,
        write_lat: p.rwl,
        idle_power: p.idlp,
        idle_scale: p.ips,
        active_power: p.actp,
        active_power_work: p.apw,
        active_scale: p.aps,
        emerg_power_fail_recover_time: p.epfrt,
        emerg_power_fail_recover_scale: p.epfrts,
        force_quiesce_vault_time: p.fqvt,
        force_quiesce_vault_scale: p.fqvts,
        emerg_power_fail_vault_time: p.epfvt,
        emerg_power_fail_vault_scale: p.epfvts,
      })),
    };
    return `${jsonC(o)}\n`;
  }
  const f = (name: string, v: string | number | bigint) => `${name.padEnd(10)}: ${v}`;
  const lines = [
    'NVME Identify Controller:',
    f('vid', hexAlt(c.vid)),
    f('ssvid', hexAlt(c.ssvid)),
    f('sn', sn),
    f('mn', mn),
    f('fr', fr),
    f('rab', c.rab),
    f('ieee', c.ieee.toString(16).padStart(6, '0')),
    f('cmic', hexAlt(c.cmic)),
    f('mdts', c.mdts),
    f('cntlid', hexAlt(c.cntlid)),
    f('ver', hexAlt(c.ver)),
    f('rtd3r', hexAlt(c.rtd3r)),
    f('rtd3e', hexAlt(c.rtd3e)),
    f('oaes', hexAlt(c.oaes)),
    f('ctratt', hexAlt(c.ctratt)),
    f('rrls', hexAlt(c.rrls)),
    f('bpcap', hexAlt(c.bpcap)),
    f('nssl', hexAlt(c.nssl)),
    f('plsi', c.plsi),
    f('cntrltype', c.cntrltype),
    f('fguid', uuidOf(c.fguid)),
    f('crdt1', c.crdt1),
    f('crdt2', c.crdt2),
    f('crdt3', c.crdt3),
    f('crcap', c.crcap),
    f('nvmsr', c.nvmsr),
    f('vwci', c.vwci),
    f('mec', c.mec),
    f('oacs', hexAlt(c.oacs)),
    f('acl', c.acl),
    f('aerl', c.aerl),
    f('frmw', hexAlt(c.frmw)),
    f('lpa', hexAlt(c.lpa)),
    f('elpe', c.elpe),
    f('npss', c.npss),
    f('avscc', hexAlt(c.avscc)),
    f('apsta', hexAlt(c.apsta)),
    f('wctemp', c.wctemp),
    f('cctemp', c.cctemp),
    f('mtfa', c.mtfa),
    f('hmpre', c.hmpre),
    f('hmmin', c.hmmin),
    f('tnvmcap', c.tnvmcap),
    f('unvmcap', c.unvmcap),
    f('rpmbs', hexAlt(c.rpmbs)),
    f('edstt', c.edstt),
    f('dsto', c.dsto),
    f('fwug', c.fwug),
    f('kas', c.kas),
    f('hctma', hexAlt(c.hctma)),
    f('mntmt', c.mntmt),
    f('mxtmt', c.mxtmt),
    f('sanicap', hexAlt(c.sanicap)),
    f('hmminds', c.hmminds),
    f('hmmaxd', c.hmmaxd),
    f('nsetidmax', c.nsetidmax),
    f('endgidmax', c.endgidmax),
    f('anatt', c.anatt),
    f('anacap', c.anacap),
    f('anagrpmax', c.anagrpmax),
    f('nanagrpid', c.nanagrpid),
    f('pels', c.pels),
    f('domainid', c.domainid),
    f('kpioc', c.kpioc),
    f('mptfawr', c.mptfawr),
    f('megcap', c.megcap),
    f('tmpthha', hexAlt(c.tmpthha)),
    f('cqt', c.cqt),
    f('sqes', hexAlt(c.sqes)),
    f('cqes', hexAlt(c.cqes)),
    f('maxcmd', c.maxcmd),
    f('nn', c.nn),
    f('oncs', hexAlt(c.oncs)),
    f('fuses', hexAlt(c.fuses)),
    f('fna', hexAlt(c.fna)),
    f('vwc', hexAlt(c.vwc)),
    f('awun', c.awun),
    f('awupf', c.awupf),
    f('icsvscc', c.nvscc),
    f('nwpc', c.nwpc),
    f('acwu', c.acwu),
    f('ocfs', hexAlt(c.ocfs)),
    f('sgls', hexAlt(c.sgls)),
    f('mnan', c.mnan),
    f('maxdna', c.maxdna),
    f('maxcna', c.maxcna),
    f('oaqd', c.oaqd),
    f('rhiri', c.rhiri),
    f('hirt', c.hirt),
    f('cmmrtd', c.cmmrtd),
    f('nmmrtd', c.nmmrtd),
    f('minmrtg', c.minmrtg),
    f('maxmrtg', c.maxmrtg),
    f('trattr', c.trattr),
    f('mcudmq', c.mcudmq),
    f('mnsudmq', c.mnsudmq),
    f('mcmr', c.mcmr),
    f('nmcmr', c.nmcmr),
    f('mcdqpc', c.mcdqpc),
    f('subnqn', c.subnqn),
    f('ioccsz', c.ioccsz),
    f('iorcsz', c.iorcsz),
    f('icdoff', c.icdoff),
    f('fcatt', hexAlt(c.fcatt)),
    f('msdbd', c.msdbd),
    f('ofcs', c.ofcs),
  ];
  c.psd.forEach((p, i) => {
    const mp = p.mxps
      ? `${Math.floor(p.mp / 10000)}.${String(p.mp % 10000).padStart(4, '0')}W`
      : `${Math.floor(p.mp / 100)}.${String(p.mp % 100).padStart(2, '0')}W`;
    lines.push(
      `ps   ${String(i).padStart(4)} : mp:${mp} ${p.nops ? 'non-' : ''}operational enlat:${p.enlat} exlat:${p.exlat} rrt:${p.rrt} rrl:${p.rrl}`,
      `            rwt:${p.rwt} rwl:${p.rwl} idle_power:${watts(p.idlp, p.ips)} active_power:${watts(p.actp, p.aps)}`,
      `            active_power_workload:${workload(p.apw)}`,
      psdTime('emergency power fail recovery time', p.epfrt, p.epfrts),
      psdTime('forced quiescence vault time', p.fqvt, p.fqvts),
      psdTime('emergency power fail vault time', p.epfvt, p.epfvts),
    );
  });
  return `${lines.join('\n')}\n`;
}

/** Identify Namespace's vendor specific area (bytes 4095:384) as nvme-cli's JSON "vs": its text up to the first NUL, 16 characters a string. */
function vsStrings(data: Buffer): string[] {
  const area = data.subarray(384, IDENTIFY_DATA_SIZE);
  const nul = area.indexOf(0);
  const text = nul >= 0 ? area.subarray(0, nul) : area;
  const out: string[] = [];
  for (let i = 0; i < text.length; i += 16) {
    out.push([...text.subarray(i, i + 16)].map((b) => (b >= 0x21 && b <= 0x7e ? String.fromCharCode(b) : '.')).join(''));
  }
  return out;
}

/**
 * `nvme id-ns`: the 4096-byte Identify Namespace data, every field nvme-cli
 * 2.16 prints (2.1's kpios and kpiodaag, the LBA format index and in-use flag
 * in JSON, the vendor specific area). NPWG..NOWS appear when NSFEAT bit 4 or
 * 5 says they are meaningful, NPDG only with bit 4, as nvme-cli does.
 */
export function formatIdNs(data: Buffer, nsid: number, json = false): string {
  const ns = decodeIdentifyNamespace(data);
  const hexBytes = (b: Buffer) => b.toString('hex');
  const inUse = flbasIndex(ns.flbas);
  const optimal = (ns.nsfeat & 0x30) !== 0;
  if (json) {
    const o: Record<string, unknown> = {
      nsze: ns.nsze,
      ncap: ns.ncap,
      nuse: ns.nuse,
      nsfeat: ns.nsfeat,
      nlbaf: ns.nlbaf,
      flbas: ns.flbas,
      mc: ns.mc,
      dpc: ns.dpc,
      dps: ns.dps,
      nmic: ns.nmic,
      rescap: ns.rescap,
      fpi: ns.fpi,
      dlfeat: ns.dlfeat,
      nawun: ns.nawun,
      nawupf: ns.nawupf,
      nacwu: ns.nacwu,
      nabsn: ns.nabsn,
      nabo: ns.nabo,
      nabspf: ns.nabspf,
      noiob: ns.noiob,
      nvmcap: ns.nvmcap,
      ...(optimal ? { npwg: ns.npwg, npwa: ns.npwa, ...(ns.nsfeat & 0x10 ? { npdg: ns.npdg } : {}), npda: ns.npda, nows: ns.nows } : {}),
      mssrl: ns.mssrl,
      mcl: ns.mcl,
      msrc: ns.msrc,
      kpios: ns.kpios,
      nulbaf: ns.nulbaf,
      kpiodaag: ns.kpiodaag,
      anagrpid: ns.anagrpid,
      nsattr: ns.nsattr,
      nvmsetid: ns.nvmsetid,
      endgid: ns.endgid,
      nguid: hexBytes(ns.nguid),
      eui64: hexBytes(ns.eui64),
      lbafs: ns.lbaf.map((l, i) => ({ lbaf: i, ms: l.ms, ds: l.lbads, rp: l.rp, in_use: i === inUse ? 1 : 0 })),
      vs: vsStrings(data),
    };
    return `${jsonC(o)}\n`;
  }
  const f = (name: string, v: string | number | bigint) => `${name.padEnd(8)}: ${v}`;
  const lines = [
    `NVME Identify Namespace ${nsid}:`,
    f('nsze', hexAlt(ns.nsze)),
    f('ncap', hexAlt(ns.ncap)),
    f('nuse', hexAlt(ns.nuse)),
    f('nsfeat', hexAlt(ns.nsfeat)),
    f('nlbaf', ns.nlbaf),
    f('flbas', hexAlt(ns.flbas)),
    f('mc', hexAlt(ns.mc)),
    f('dpc', hexAlt(ns.dpc)),
    f('dps', hexAlt(ns.dps)),
    f('nmic', hexAlt(ns.nmic)),
    f('rescap', hexAlt(ns.rescap)),
    f('fpi', hexAlt(ns.fpi)),
    f('dlfeat', ns.dlfeat),
    f('nawun', ns.nawun),
    f('nawupf', ns.nawupf),
    f('nacwu', ns.nacwu),
    f('nabsn', ns.nabsn),
    f('nabo', ns.nabo),
    f('nabspf', ns.nabspf),
    f('noiob', ns.noiob),
    f('nvmcap', ns.nvmcap),
  ];
  if (optimal) {
    lines.push(f('npwg', ns.npwg), f('npwa', ns.npwa));
    if (ns.nsfeat & 0x10) lines.push(f('npdg', ns.npdg));
    lines.push(f('npda', ns.npda), f('nows', ns.nows));
  }
  lines.push(
    f('mssrl', ns.mssrl),
    f('mcl', ns.mcl),
    f('msrc', ns.msrc),
    f('kpios', ns.kpios),
    f('nulbaf', ns.nulbaf),
    f('kpiodaag', ns.kpiodaag),
    f('anagrpid', ns.anagrpid),
    `nsattr\t: ${ns.nsattr}`,
    f('nvmsetid', ns.nvmsetid),
    f('endgid', ns.endgid),
    f('nguid', hexBytes(ns.nguid)),
    f('eui64', hexBytes(ns.eui64)),
  );
  ns.lbaf.forEach((l, i) => {
    lines.push(
      `lbaf ${String(i).padStart(2)} : ms:${String(l.ms).padEnd(3)} lbads:${String(l.lbads).padEnd(2)} rp:${hexAlt(l.rp)} ${i === inUse ? '(in use)' : ''}`,
    );
  });
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- get-log / admin-passthru

export function formatGetLog(device: string, lid: number, nsid: number, data: Buffer): string {
  return `Device:${device} log-id:${lid} namespace-id:${hexAlt(nsid)}\n${hexDump(data)}`;
}

const ADMIN_NAMES: Record<number, string> = {
  0x00: 'Delete I/O Submission Queue',
  0x01: 'Create I/O Submission Queue',
  0x02: 'Get Log Page',
  0x04: 'Delete I/O Completion Queue',
  0x05: 'Create I/O Completion Queue',
  0x06: 'Identify',
  0x08: 'Abort',
  0x09: 'Set Features',
  0x0a: 'Get Features',
  0x0c: 'Asynchronous Event Request',
  0x0d: 'Namespace Management',
  0x10: 'Firmware Commit',
  0x11: 'Firmware Image Download',
  0x14: 'Device Self-test',
  0x15: 'Namespace Attachment',
  0x18: 'Keep Alive',
  0x19: 'Directive Send',
  0x1a: 'Directive Receive',
  0x1c: 'Virtualization Management',
  0x1d: 'NVMe-MI Send',
  0x1e: 'NVMe-MI Receive',
  0x7c: 'Doorbell Buffer Config',
  0x80: 'Format NVM',
  0x81: 'Security Send',
  0x82: 'Security Receive',
  0x84: 'Sanitize',
  0x86: 'Get LBA Status',
};

/** nvme-cli's admin command names; opcodes it does not know are "Vendor Specific". */
export function adminCommandName(opcode: number): string {
  return ADMIN_NAMES[opcode] ?? 'Vendor Specific';
}

/** The line nvme-cli prints on stderr after a successful passthru. */
export function formatPassthruSuccess(opcode: number, result: number): string {
  return `Admin Command ${adminCommandName(opcode)} is Success and result: 0x${(result >>> 0).toString(16).padStart(8, '0')}\n`;
}

/** nvme-cli's "NVMe status: NAME(0xVAL)" for a failed command. */
export function formatStatus(status: number): string {
  const v = status & 0x7ff;
  return `NVMe status: ${statusName(v)}(${hexAlt(v)})${status & 0x4000 ? ' DNR' : ''}\n`;
}

export function formatPassthruCommand(c: {
  opcode: number;
  flags: number;
  rsvd: number;
  nsid: number;
  cdw2: number;
  cdw3: number;
  dataLen: number;
  metadataLen: number;
  cdw10: number;
  cdw11: number;
  cdw12: number;
  cdw13: number;
  cdw14: number;
  cdw15: number;
  timeoutMs: number;
}): string {
  const h = (v: number, w: number) => (v >>> 0).toString(16).padStart(w, '0');
  return [
    `opcode       : ${h(c.opcode, 2)}`,
    `flags        : ${h(c.flags, 2)}`,
    `rsvd1        : ${h(c.rsvd, 4)}`,
    `nsid         : ${h(c.nsid, 8)}`,
    `cdw2         : ${h(c.cdw2, 8)}`,
    `cdw3         : ${h(c.cdw3, 8)}`,
    `data_len     : ${h(c.dataLen, 8)}`,
    `metadata_len : ${h(c.metadataLen, 8)}`,
    `addr         : 0`,
    `metadata     : 0`,
    `cdw10        : ${h(c.cdw10, 8)}`,
    `cdw11        : ${h(c.cdw11, 8)}`,
    `cdw12        : ${h(c.cdw12, 8)}`,
    `cdw13        : ${h(c.cdw13, 8)}`,
    `cdw14        : ${h(c.cdw14, 8)}`,
    `cdw15        : ${h(c.cdw15, 8)}`,
    `timeout_ms   : ${h(c.timeoutMs, 8)}`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------- show (ours)

function ms(n: number): string {
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60_000) return `${(n / 1000).toFixed(1)} s`;
  const s = Math.round(n / 1000);
  return s < 3600
    ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
    : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function seconds(n: number, negative = 'off'): string {
  return n < 0 ? negative : `${n / 1000} s`;
}

function table(rows: string[][], indent: string): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => `${indent}${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd());
}

function controllerLines(c: ControllerInfo): string[] {
  const lines = [
    `  ${c.name}  ${c.state}  tcp ${c.address}  ${c.subsystem}  cntlid ${c.cntlid}`,
    `    kato ${seconds(c.katoMs)}, reconnect delay ${seconds(c.reconnectDelayMs)}, ctrl loss tmo ${seconds(c.ctrlLossTmoMs, 'never')}, fast io fail tmo ${seconds(c.fastIoFailTmoMs)}, ${c.ioQueues} io queues of ${c.queueSize}${c.hdrDigest ? ', header digest' : ''}${c.dataDigest ? ', data digest' : ''}`,
    `    paths ${c.paths.join(', ') || '-'}`,
  ];
  if (c.lastError) lines.push(`    last error: ${c.lastError}`);
  return lines;
}

function headLines(h: HeadSnapshot): string[] {
  const c = h.counters;
  const lines = [
    `  ${h.name}  ${h.subnqn} nsid ${h.nsid}  ${formatBytes(h.nblocks * h.blockSize)} (${h.nblocks} x ${h.blockSize})  policy ${h.policy}  ${h.usable ? 'usable' : 'NO USABLE PATH'}`,
    `    ios ${c.ios}, read ${formatBytes(c.bytesRead)}, written ${formatBytes(c.bytesWritten)}, failovers ${c.failovers}, retries ${c.retries}, errors ${c.errors}, requeues ${c.requeues}, fenced writes ${c.fencedWrites}, activations ${c.activations}, time with no path ${ms(c.noPathMs)}`,
    `    now: inflight ${h.inflight}, queued ${h.queued}${h.fenced ? ` (${h.fenced} fenced)` : ''}${h.failover ? `, failover from ${h.failover.from} for ${ms(h.failover.sinceMs)}` : ''}${h.noPathForMs !== null ? `, no path for ${ms(h.noPathForMs)}` : ''}${h.policy === 'active-standby' ? `, active ${h.activePath ?? '-'}${h.activating ? `, activating ${h.activating}` : ''}` : ''}`,
  ];
  const rows = [['path', 'state', 'ANA', 'active', 'usable', 'inflight', 'ios', 'errors', 'held out']];
  for (const p of [...h.paths].sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }))) {
    rows.push([
      p.name,
      p.state,
      p.ana,
      p.active ? 'yes' : 'no',
      p.usable ? 'yes' : 'no',
      String(p.inflight),
      String(p.ios),
      String(p.errors),
      p.suspect ?? '-',
    ]);
  }
  lines.push(...table(rows, '    '));
  return lines;
}

/** `nvmets-host show`: the agent, its controllers, and every head with counters and per-path state. */
export function formatShow(s: ShowResult, json = false): string {
  if (json) return `${JSON.stringify(s, null, 2)}\n`;
  const lines = [`host agent pid ${s.agent.pid}, up ${ms(s.agent.uptimeMs)}, socket ${s.agent.socket}, log ${s.agent.log}`, '', 'Controllers'];
  if (s.controllers.length === 0) lines.push('  (none)');
  for (const c of s.controllers) lines.push(...controllerLines(c));
  lines.push('', 'Namespaces (multipath heads)');
  if (s.heads.length === 0) lines.push('  (none)');
  for (const h of s.heads) lines.push(...headLines(h));
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- io (ours)

function stamp(atMs: number): string {
  return `[${(atMs / 1000).toFixed(1).padStart(6)}s]`;
}

export function formatIoProgress(p: IoProgress): string {
  const paths = [...p.paths]
    .sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }))
    .map((x) => `${x.name} ${x.state} ${x.ana}${x.active ? ' (active)' : ''}`)
    .join(', ');
  return `${stamp(p.elapsedMs)} ${p.phase === 'verify' ? 'verify ' : ''}${p.head} ${Math.round(p.iops)} IOPS ${p.mbps.toFixed(1)} MB/s  ios ${p.ios}  inflight ${p.inflight}  errors ${p.errors}  mismatches ${p.mismatches}  failovers ${p.failovers}  |  ${paths}\n`;
}

export function formatIoEvent(e: IoEvent): string {
  switch (e.type) {
    case 'path-up':
      return `${stamp(e.atMs)} path up: ${e.path} (${e.reason})\n`;
    case 'path-down':
      return `${stamp(e.atMs)} path down: ${e.path} (${e.reason})\n`;
    case 'failover-start':
      return `${stamp(e.atMs)} failover start: away from ${e.from} (${e.reason})\n`;
    case 'failover-end':
      return `${stamp(e.atMs)} failover end: ${e.from} -> ${e.to} in ${e.durationMs} ms\n`;
    case 'no-path':
      return `${stamp(e.atMs)} no usable path: ${e.queued} I/O queued (${e.paths.join(', ')})\n`;
  }
}

export function formatIoSummary(s: IoSummary, json = false): string {
  if (json) return `${JSON.stringify(s, null, 2)}\n`;
  const r = s.result;
  const p = s.params;
  const secs = r.elapsedMs / 1000;
  const c = s.counters;
  const lines = [
    `${s.head}: ${p.rw} bs=${p.bs} qd=${p.qd} verify=${p.verify ? 'on' : 'off'} policy=${s.policy}, ${secs.toFixed(2)} s${s.cancelled ? ' (stopped early)' : ''}`,
    `  I/Os:        ${r.ios} (read ${r.reads}, write ${r.writes})`,
    `  IOPS:        ${Math.round(r.iops)}`,
    `  MB/s:        ${r.mbps.toFixed(2)} (read ${(r.bytesRead / Math.max(secs, 1e-9) / 1e6).toFixed(2)}, write ${(r.bytesWritten / Math.max(secs, 1e-9) / 1e6).toFixed(2)})`,
    `  latency us:  p50 ${Math.round(r.latencyUs.p50)}  p90 ${Math.round(r.latencyUs.p90)}  p99 ${Math.round(r.latencyUs.p99)}  max ${Math.round(r.latencyUs.max)}`,
    `  errors:      ${s.totals.errors}`,
    `  mismatches:  ${s.totals.mismatches}${p.verify ? ` (${r.verifiedBlocks} blocks read back at the end)` : ' (verify off)'}`,
    `  stalls:      ${s.totals.stalls}${s.totals.stalls ? `, longest ${Math.round(r.maxStallMs)} ms` : ''}`,
    `  head:        failovers ${c.failovers}, retries ${c.retries}, requeues ${c.requeues}, fenced writes ${c.fencedWrites}, errors ${c.errors}, time with no path ${Math.round(c.noPathMs)} ms`,
  ];
  for (const e of r.errors.slice(0, 5)) lines.push(`  error at ${(e.atMs / 1000).toFixed(2)} s: ${e.op} LBA ${e.slba}: ${e.message}`);
  for (const m of r.mismatches.slice(0, 5)) {
    lines.push(
      `  mismatch at ${(m.atMs / 1000).toFixed(2)} s: LBA ${m.lba} ${m.kind} (expected generation ${m.expectedGeneration}, found ${m.foundGeneration}${m.foundLba >= 0 && m.foundLba !== m.lba ? ` of LBA ${m.foundLba}` : ''})`,
    );
  }
  return `${lines.join('\n')}\n`;
}
