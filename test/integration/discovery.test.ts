/**
 * The discovery controller: Identify, the discovery log read the way libnvme
 * reads it, its entries (current discovery subsystem, subsystems per port with
 * advertised addresses, referrals), host access, changes and their event.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Cns, decodeIdentifyController } from '../../shared/identify.ts';
import {
  DISCOVERY_LOG_ENTRY_SIZE,
  DISCOVERY_LOG_HEADER_SIZE,
  LogPageId,
  SubType,
  decodeDiscoveryLog,
  decodeDiscoveryLogHeader,
  type DiscoveryLogEntry,
} from '../../shared/log-pages.ts';
import { DISCOVERY_NQN } from '../../shared/fabrics.ts';
import { AdminOpcode } from '../../shared/opcodes.ts';
import { sqe } from '../../shared/sqe.ts';
import { Status } from '../../shared/status.ts';
import { RawClient, TEST_HOSTNQN } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import { PendingAer, Resources, dnr, enableAec, getLog, getLogData, identify, identifyData, roundTrip, sc } from '../helpers/nvme-ops.ts';

const res = new Resources();
afterEach(() => res.cleanup());

const RESTRICTED = 'nqn.2026-11.io.nvmets:restricted';
const HOST_A = 'nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-00000000000a';
const ADVERTISED = { traddr: '10.0.2.2', trsvcid: 4421 };

/**
 * Port 1: array0 and a subsystem only HOST_A may use, two referrals.
 * Port 2: array0, advertised as 10.0.2.2:4421.
 */
function discoveryConfig() {
  return testConfig((doc) => {
    doc['hosts'] = [{ nqn: HOST_A }];
    const p1 = doc['ports'][0];
    p1.referrals = [
      { name: 'r1', enable: 1, addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '10.0.0.9', trsvcid: '8009', treq: 'not specified', portid: '7' } },
      { name: 'r2', enable: 1, addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '10.0.0.10', trsvcid: '4420', treq: 'not specified', portid: '8' } },
    ];
    p1.subsystems.push(RESTRICTED);
    doc['ports'][1].ext = { advertise: { traddr: ADVERTISED.traddr, trsvcid: String(ADVERTISED.trsvcid) } };
    doc['subsystems'].push({
      nqn: RESTRICTED,
      attr: { allow_any_host: '0' },
      allowed_hosts: [HOST_A],
      namespaces: [{ nsid: 1, enable: 1, ana_grpid: 1, device: {}, ext: { store: 'memory', size: '1M', block_size: 512 } }],
    });
  });
}

async function start() {
  const t = await startTarget(discoveryConfig());
  res.targets.push(t.target);
  return t;
}

/** Read the log as libnvme does: header, entries from 1024 in 4 KiB chunks, header again. */
async function readLikeLibnvme(c: RawClient): Promise<{ log: Buffer; reads: number }> {
  let reads = 0;
  for (let attempt = 0; attempt < 10; attempt++) {
    const header = await getLogData(c, { lid: LogPageId.Discovery, length: DISCOVERY_LOG_HEADER_SIZE });
    reads++;
    const { genctr, numrec } = decodeDiscoveryLogHeader(header);
    const total = Number(numrec) * DISCOVERY_LOG_ENTRY_SIZE;
    const chunks: Buffer[] = [];
    for (let off = 0; off < total; off += 4096) {
      const len = Math.min(4096, total - off);
      chunks.push(await getLogData(c, { lid: LogPageId.Discovery, length: len, offset: DISCOVERY_LOG_HEADER_SIZE + off }));
      reads++;
    }
    const again = decodeDiscoveryLogHeader(await getLogData(c, { lid: LogPageId.Discovery, length: DISCOVERY_LOG_HEADER_SIZE }));
    reads++;
    if (again.genctr === genctr && again.numrec === numrec) return { log: Buffer.concat([header, ...chunks]), reads };
  }
  throw new Error('discovery log kept changing');
}

async function fullLog(c: RawClient) {
  const { log } = await readLikeLibnvme(c);
  return decodeDiscoveryLog(log);
}

const nvmeEntries = (entries: readonly DiscoveryLogEntry[]) => entries.filter((e) => e.subtype === SubType.Nvme);

describe('discovery controller', () => {
  it('Identify reports CNTRLTYPE 2 and the well-known discovery NQN', async () => {
    const { ports } = await start();
    const d = res.track(await RawClient.discovery(ports[0]!));
    const data = await identifyData(d, Cns.Controller);
    expect(data[111]).toBe(2);
    expect(data.subarray(768, 768 + DISCOVERY_NQN.length).toString()).toBe(DISCOVERY_NQN);
    expect(data[768 + DISCOVERY_NQN.length]).toBe(0);
    const c = decodeIdentifyController(data);
    expect(c.cntlid).toBe(d.cntlid);
    expect(c.subnqn).toBe(DISCOVERY_NQN);
    expect(c.kas).toBeGreaterThan(0);
    expect(c.sgls & 3).not.toBe(0);
    expect(c.ioccsz).toBeGreaterThanOrEqual(4);
    expect(c.iorcsz).toBeGreaterThanOrEqual(1);
    expect((c.oaes >>> 0) & 0x80000000).not.toBe(0); // discovery log change notices
    expect(sc(await identify(d, Cns.Namespace, 1))).toBe(Status.InvalidField);
  });

  it("the log read libnvme's way (header, 4 KiB chunks from 1024, header again) equals one full read", async () => {
    const { ports } = await start();
    const d = res.track(await RawClient.discovery(ports[0]!, HOST_A));
    const { log, reads } = await readLikeLibnvme(d);
    const numrec = Number(log.readBigUInt64LE(8));
    expect(numrec).toBe(1 + 3 + 2); // current discovery, array0 x2, restricted, 2 referrals
    expect(reads).toBe(1 + 2 + 1); // 6 KiB of entries: two chunks
    const single = await getLogData(d, { lid: LogPageId.Discovery, length: DISCOVERY_LOG_HEADER_SIZE + numrec * DISCOVERY_LOG_ENTRY_SIZE });
    expect(log.equals(single)).toBe(true);
    // A larger buffer than the log is zero-filled past it.
    const bigger = await getLogData(d, { lid: LogPageId.Discovery, length: 16384 });
    expect(bigger.subarray(0, single.length).equals(single)).toBe(true);
    expect(bigger.subarray(single.length).equals(Buffer.alloc(16384 - single.length))).toBe(true);
    // Odd windows inside entries, too.
    const mid = await getLogData(d, { lid: LogPageId.Discovery, length: 300, offset: 1024 + 256 });
    expect(mid.equals(single.subarray(1024 + 256, 1024 + 556))).toBe(true);
    expect(sc(await getLog(d, { lid: LogPageId.Discovery, length: 16, offset: 2 }))).toBe(Status.InvalidField);
    expect(sc(await getLog(d, { lid: LogPageId.Discovery, length: 16, offset: single.length + 4 }))).toBe(Status.InvalidField);
  });

  it('entries: the current discovery subsystem, the subsystem on every port (advertised address), the referrals', async () => {
    const { ports } = await start();
    const d1 = res.track(await RawClient.discovery(ports[0]!));
    const { log: raw } = await readLikeLibnvme(d1);
    const log = decodeDiscoveryLog(raw);
    expect(log.recfmt).toBe(0);

    const current = log.entries.filter((e) => e.subtype === SubType.CurrentDiscovery);
    expect(current).toHaveLength(1);
    expect(current[0]!.portid).toBe(1);
    expect(current[0]!.subnqn).toBe(DISCOVERY_NQN);
    expect(current[0]!.traddr).toBe('127.0.0.1');
    expect(current[0]!.trsvcid).toBe(String(ports[0]));

    const nvme = nvmeEntries(log.entries);
    expect(nvme.map((e) => [e.subnqn, e.portid, e.traddr, e.trsvcid])).toEqual([
      [SUBNQN, 1, '127.0.0.1', String(ports[0])],
      [SUBNQN, 2, ADVERTISED.traddr, String(ADVERTISED.trsvcid)],
    ]);
    const refs = log.entries.filter((e) => e.subtype === SubType.Referral);
    expect(refs.map((e) => [e.portid, e.traddr, e.trsvcid])).toEqual([
      [7, '10.0.0.9', '8009'],
      [8, '10.0.0.10', '4420'],
    ]);
    // Raw layout of every entry.
    for (let i = 0; i < log.entries.length; i++) {
      const o = DISCOVERY_LOG_HEADER_SIZE + i * DISCOVERY_LOG_ENTRY_SIZE;
      const e = log.entries[i]!;
      expect(raw[o]).toBe(3); // TRTYPE TCP
      expect(raw[o + 1]).toBe(1); // ADRFAM IPv4
      expect(raw[o + 2]).toBe(e.subtype);
      expect(raw[o + 3]! & 0x3).not.toBe(1); // no "TLS required"
      expect(raw.readUInt16LE(o + 4)).toBe(e.portid);
      expect(raw.readUInt16LE(o + 6)).toBe(0xffff);
      expect(raw.toString('latin1', o + 32, o + 32 + e.trsvcid.length)).toBe(e.trsvcid);
      expect(raw.toString('utf8', o + 256, o + 256 + e.subnqn.length)).toBe(e.subnqn);
      expect(raw.toString('latin1', o + 512, o + 512 + e.traddr.length)).toBe(e.traddr);
      expect(raw[o + 768]).toBe(0); // TSAS SECTYPE none
    }

    // Through port 2: its own current entry (advertised address), no referrals.
    const d2 = res.track(await RawClient.discovery(ports[1]!));
    const log2 = await fullLog(d2);
    const current2 = log2.entries.filter((e) => e.subtype === SubType.CurrentDiscovery);
    expect(current2.map((e) => [e.portid, e.traddr, e.trsvcid])).toEqual([[2, ADVERTISED.traddr, String(ADVERTISED.trsvcid)]]);
    expect(nvmeEntries(log2.entries)).toHaveLength(2);
    expect(log2.entries.filter((e) => e.subtype === SubType.Referral)).toHaveLength(0);
  });

  it('a host not in allowed_hosts does not see that subsystem', async () => {
    const { ports } = await start();
    const other = res.track(await RawClient.discovery(ports[0]!, TEST_HOSTNQN));
    const allowed = res.track(await RawClient.discovery(ports[0]!, HOST_A));
    expect(nvmeEntries((await fullLog(other)).entries).map((e) => e.subnqn)).toEqual([SUBNQN, SUBNQN]);
    const mine = nvmeEntries((await fullLog(allowed)).entries);
    expect(mine.map((e) => `${e.subnqn}@${e.portid}`).sort()).toEqual([`${RESTRICTED}@1`, `${SUBNQN}@1`, `${SUBNQN}@2`].sort());
    // And the access check matches Connect.
    await expect(RawClient.admin(ports[0]!, { subnqn: RESTRICTED, hostnqn: TEST_HOSTNQN })).rejects.toThrow(/Connect failed/);
    res.track(await RawClient.admin(ports[0]!, { subnqn: RESTRICTED, hostnqn: HOST_A }));
  });

  it('port down/up changes genctr, is reflected in the log, and raises the discovery event when enabled', async () => {
    const { target, ports } = await start();
    const d = res.track(await RawClient.discovery(ports[1]!));
    const quiet = res.track(await RawClient.discovery(ports[1]!));
    await enableAec(d, 0x80000000);
    const aer = new PendingAer(d);
    const quietAer = new PendingAer(quiet);
    await roundTrip(d);
    await roundTrip(quiet);
    const before = await fullLog(d);
    expect(nvmeEntries(before.entries).map((e) => e.portid)).toEqual([1, 2]);

    await target.portDown(1);
    expect(await aer.dw0()).toBe(0x0070f002);
    await roundTrip(quiet);
    expect(quietAer.done).toBe(false); // AEC bit 31 not set there
    const down = await fullLog(d);
    expect(down.genctr).toBeGreaterThan(before.genctr);
    expect(nvmeEntries(down.entries).map((e) => e.portid)).toEqual([2]);
    expect(down.entries.some((e) => e.portid === 1)).toBe(false);

    // The full read above had RAE clear: the next change is reported again.
    const aer2 = new PendingAer(d);
    await roundTrip(d);
    await target.portUp(1);
    expect(await aer2.dw0()).toBe(0x0070f002);
    const up = await fullLog(d);
    expect(up.genctr).toBeGreaterThan(down.genctr);
    expect(nvmeEntries(up.entries).map((e) => e.portid)).toEqual([1, 2]);
    // The port really is back.
    res.track(await RawClient.admin(ports[0]!, { subnqn: SUBNQN }));
  });

  it('refuses an I/O queue Connect to the discovery controller and unsupported admin opcodes', async () => {
    const { ports } = await start();
    const d = res.track(await RawClient.discovery(ports[0]!));
    const q = res.track(await RawClient.connect(ports[0]!));
    await q.initialize();
    const r = await q.connectQueue({ qid: 1, subnqn: DISCOVERY_NQN, cntlid: d.cntlid, sqsize: 31 });
    expect(r.cqe.status).not.toBe(0);
    expect(dnr(r)).toBe(true);
    for (const opcode of [AdminOpcode.Abort, AdminOpcode.NamespaceManagement, AdminOpcode.SetNamespaceActive, AdminOpcode.GetPersistentNsId, 0x80]) {
      const c = await d.command(
        opcode === AdminOpcode.GetPersistentNsId ? { ...sqe({ opcode }), sgl: { address: 0n, length: 1024, id: 0x5a } } : sqe({ opcode }),
      );
      expect(sc(c), `opcode 0x${opcode.toString(16)}`).toBe(Status.InvalidOpcode);
    }
    for (const lid of [LogPageId.Smart, LogPageId.Ana, LogPageId.ErrorInformation]) {
      expect(sc(await getLog(d, { lid, length: 512 }))).toBe(Status.InvalidField);
    }
    expect((await getLog(d, { lid: LogPageId.Discovery, length: 1024 })).cqe.status).toBe(0);
  });
});
