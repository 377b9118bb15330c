/**
 * Admin command set of I/O controllers over real NVMe/TCP sockets and the in-process loopback transport (tests about the wire: TCP only): Identify,
 * Get Log Page, Set/Get Features, Asynchronous Events, Keep Alive, Abort.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  Cns,
  Csi,
  Nmic,
  NsIdType,
  Nstat,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeIdentifyNamespaceCsIndependent,
  decodeNamespaceList,
  decodeNsIdDescriptors,
} from '../../shared/identify.ts';
import {
  CmdEffects,
  LogPageId,
  decodeAnaLog,
  decodeChangedNamespaceList,
  decodeEffectsLog,
  decodeErrorLog,
  decodeFidEffectsLog,
  decodeFirmwareSlotLog,
  decodeSmartLog,
  decodeSupportedLogPages,
  supportedFeatureIds,
  supportedLogIds,
} from '../../shared/log-pages.ts';
import { AerResultValue, FeatureCapability, FeatureId } from '../../shared/features.ts';
import { AdminOpcode, IoOpcode } from '../../shared/opcodes.ts';
import { abortCommand, keepAliveCommand, readCommand, sqe, writeCommand, identifyCommand } from '../../shared/sqe.ts';
import { Status } from '../../shared/status.ts';
import { controlRequest } from '../../target/control.ts';
import type { TargetConfig } from '../../target/config/index.ts';
import { patternBlocks } from '../helpers/raw-client.ts';
import { TRANSPORTS, clientFor } from '../helpers/loop-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import {
  PendingAer,
  Resources,
  connectPair,
  dnr,
  enableAec,
  getFeature,
  getLog,
  getLogData,
  identify,
  identifyData,
  roundTrip,
  sc,
  setFeature,
} from '../helpers/nvme-ops.ts';

const res = new Resources();
afterEach(() => res.cleanup());

const NS1 = { nguid: '0123456789abcdef0123456789abcdef', uuid: '11111111-2222-4333-8444-555555555555', eui64: '0a1b2c3d4e5f6071' };
const SERIAL = 'ADMIN-SN-0001';
const MODEL = 'Admin Test Model';
const FIRMWARE = 'fw1.2';
const HOSTID = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');

/**
 * Active-standby (the default), port 1 active for group 1, plus:
 * nsid 2 with 4096-byte blocks (group 1) and nsid 5 in group 2, active on port 2.
 */
function adminConfig(): TargetConfig {
  return testConfig((doc) => {
    const s = doc['subsystems'][0];
    s.attr.serial = SERIAL;
    s.attr.model = MODEL;
    s.ext.firmware = FIRMWARE;
    s.namespaces[0].device = { ...NS1 };
    s.namespaces.push({ nsid: 2, enable: 1, ana_grpid: 1, device: {}, ext: { store: 'memory', size: 8 * 1024 * 1024, block_size: 4096 } });
    s.namespaces.push({ nsid: 5, enable: 1, ana_grpid: 2, device: {}, ext: { store: 'memory', size: 1024 * 1024, block_size: 512, initial_active_port: 2 } });
  });
}

async function start(config = adminConfig()) {
  const t = await startTarget(config);
  res.targets.push(t.target);
  return t;
}

describe.each(TRANSPORTS)('over %s', (transport) => {
  const Client = clientFor(transport);
  /** Tests about the wire (R2T) run over NVMe/TCP only. */
  const wireIt = transport === 'tcp' ? it : it.skip;

  describe('Identify', () => {
    it('CNS 00h reports size, sharing, ANA group, ids and the LBA format (512 and 4096-byte namespaces)', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));

      const d1 = await identifyData(admin, Cns.Namespace, 1);
      const n1 = decodeIdentifyNamespace(d1);
      const blocks1 = (64 * 1024 * 1024) / 512;
      expect(n1.nsze).toBe(BigInt(blocks1));
      expect(n1.ncap).toBe(BigInt(blocks1));
      expect(d1.readBigUInt64LE(0)).toBe(BigInt(blocks1));
      expect(d1[30]).toBe(1); // NMIC bit 0: shared
      expect(d1.readUInt32LE(92)).toBe(1); // ANAGRPID
      expect(d1.subarray(104, 120).toString('hex')).toBe(NS1.nguid);
      expect(d1.subarray(120, 128).toString('hex')).toBe(NS1.eui64);
      expect(d1[26]! & 0xf).toBe(0); // FLBAS selects format 0
      expect(d1[25]).toBe(0); // NLBAF 0's based: one format
      expect(d1.readUInt16LE(128)).toBe(0); // LBAF0.MS
      expect(d1[130]).toBe(9); // LBAF0.LBADS: 512
      expect(n1.lbaf).toEqual([{ ms: 0, lbads: 9, rp: 0 }]);

      const d2 = await identifyData(admin, Cns.Namespace, 2);
      const n2 = decodeIdentifyNamespace(d2);
      expect(n2.nsze).toBe(BigInt((8 * 1024 * 1024) / 4096));
      expect(d2[130]).toBe(12); // 4096
      expect(d2[30]).toBe(1);
      expect(d2.readUInt32LE(92)).toBe(1);
      // Derived ids: present, and different from nsid 1's.
      expect(n2.nguid.equals(Buffer.alloc(16))).toBe(false);
      expect(n2.nguid.equals(n1.nguid)).toBe(false);

      const d5 = await identifyData(admin, Cns.Namespace, 5);
      expect(d5.readUInt32LE(92)).toBe(2);
    });

    it('CNS 00h: an inactive NSID reads as zeros, NSID 0 and FFFFFFFFh are Invalid Namespace', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const inactive = await identify(admin, Cns.Namespace, 3);
      expect(inactive.cqe.status).toBe(0);
      expect(inactive.data.length).toBe(4096);
      expect(inactive.data.equals(Buffer.alloc(4096))).toBe(true);
      for (const nsid of [0, 0xffffffff]) {
        const r = await identify(admin, Cns.Namespace, nsid);
        expect(sc(r)).toBe(Status.InvalidNamespaceOrFormat);
        expect(dnr(r)).toBe(true);
      }
    });

    it('CNS 01h: cntlid from Connect, multipath/ANA capabilities, sizes and config strings', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const d = await identifyData(admin, Cns.Controller);
      const c = decodeIdentifyController(d);
      expect(d.readUInt16LE(78)).toBe(admin.cntlid);
      expect(c.cntlid).toBe(admin.cntlid);
      expect(d[76]).toBe(0x0b); // CMIC multi-port | multi-controller | ANA
      expect(d.readUInt16LE(320)).toBeGreaterThan(0); // KAS
      expect(d.readUInt32LE(536) & 0x3).toBe(1); // SGLS: supported, byte aligned
      expect(d.readUInt32LE(1792)).toBe((16384 + 64) / 16); // IOCCSZ
      expect(d.readUInt32LE(1796)).toBe(1); // IORCSZ
      expect(d.readUInt16LE(1800)).toBe(0); // ICDOFF
      const nn = d.readUInt32LE(516);
      const mnan = d.readUInt32LE(540);
      expect(mnan).toBeGreaterThan(0);
      expect(mnan).toBeLessThanOrEqual(nn);
      expect(d.readUInt32LE(344)).toBe(128); // ANAGRPMAX
      expect(d.readUInt32LE(348)).toBe(128); // NANAGRPID
      expect(d[342]).toBeGreaterThan(0); // ANATT
      expect(d[343]! & 0x1f).toBe(0x1f); // ANACAP: all states reported
      expect(c.subnqn).toBe(SUBNQN);
      expect(d.subarray(768, 768 + SUBNQN.length).toString()).toBe(SUBNQN);
      expect(d[768 + SUBNQN.length]).toBe(0);
      expect(d.toString('latin1', 4, 24)).toBe(SERIAL.padEnd(20, ' '));
      expect(d.toString('latin1', 24, 64)).toBe(MODEL.padEnd(40, ' '));
      expect(d.toString('latin1', 64, 72)).toBe(FIRMWARE.padEnd(8, ' '));
      expect(d.readUInt32LE(92)).toBe((1 << 8) | (1 << 11)); // OAES
      expect(d.readUInt32LE(96) & 0x41).toBe(0x41); // CTRATT: 128-bit host id, TBKAS
      expect(d[111]).toBe(1); // CNTRLTYPE I/O
      expect(d[77]).toBe(8); // MDTS 1 MiB
      expect(d[259]).toBe(3); // AERL
      expect(d[512]).toBe(0x66);
      expect(d[513]).toBe(0x44);
      expect(d.readUInt32LE(80)).toBe(0x00010400); // VER 1.4
      // The ANA log must fit in MDTS (Linux checks it).
      expect(16 + 32 * 128 + 4 * mnan).toBeLessThanOrEqual(4096 * 2 ** d[77]!);
    });

    it('CNS 02h lists active NSIDs above the given one', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const all = await identifyData(admin, Cns.ActiveNamespaceList, 0);
      expect(decodeNamespaceList(all)).toEqual([1, 2, 5]);
      expect(all.readUInt32LE(0)).toBe(1);
      expect(all.readUInt32LE(12)).toBe(0);
      expect(decodeNamespaceList(await identifyData(admin, Cns.ActiveNamespaceList, 1))).toEqual([2, 5]);
      expect(decodeNamespaceList(await identifyData(admin, Cns.ActiveNamespaceList, 2))).toEqual([5]);
      expect(decodeNamespaceList(await identifyData(admin, Cns.ActiveNamespaceList, 3))).toEqual([5]);
      expect(decodeNamespaceList(await identifyData(admin, Cns.ActiveNamespaceList, 5))).toEqual([]);
      for (const nsid of [0xfffffffe, 0xffffffff]) {
        expect(sc(await identify(admin, Cns.ActiveNamespaceList, nsid))).toBe(Status.InvalidNamespaceOrFormat);
      }
    });

    it('CNS 03h returns EUI64, NGUID, UUID and CSI descriptors', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const d = await identifyData(admin, Cns.NamespaceDescriptorList, 1);
      const descs = decodeNsIdDescriptors(d);
      const byType = new Map(descs.map((x) => [x.nidt, x.nid.toString('hex')]));
      expect(byType.get(NsIdType.Nguid)).toBe(NS1.nguid);
      expect(byType.get(NsIdType.Uuid)).toBe(NS1.uuid.replace(/-/g, ''));
      expect(byType.get(NsIdType.Eui64)).toBe(NS1.eui64);
      expect(byType.get(NsIdType.Csi)).toBe('00');
      expect(descs).toHaveLength(4);
      // Raw walk: each descriptor header is NIDT, NIDL, 2 reserved.
      let off = 0;
      const seen: number[] = [];
      while (d[off] !== 0) {
        const nidt = d[off]!;
        const nidl = d[off + 1]!;
        expect(nidl).toBe({ 1: 8, 2: 16, 3: 16, 4: 1 }[nidt]);
        seen.push(nidt);
        off += 4 + nidl;
      }
      expect(seen.sort()).toEqual([1, 2, 3, 4]);
      // Inactive namespace: Invalid Namespace.
      expect(sc(await identify(admin, Cns.NamespaceDescriptorList, 3))).toBe(Status.InvalidNamespaceOrFormat);
    });

    it('CNS 05h/06h answer for CSI 0, refuse CSI 2; unknown CNS is Invalid Field', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const ns = await identify(admin, Cns.CsiNamespace, 1, Csi.Nvm);
      expect(ns.cqe.status).toBe(0);
      expect(ns.data.length).toBe(4096);
      const ctrl = await identify(admin, Cns.CsiController, 0, Csi.Nvm);
      expect(ctrl.cqe.status).toBe(0);
      expect(ctrl.data.length).toBe(4096);
      for (const cns of [Cns.CsiNamespace, Cns.CsiController]) {
        const r = await identify(admin, cns, cns === Cns.CsiNamespace ? 1 : 0, Csi.Zoned);
        expect(sc(r)).toBe(Status.InvalidField);
        expect(dnr(r)).toBe(true);
      }
      for (const cns of [0x04, 0x13, 0x1f, 0xff]) {
        const r = await identify(admin, cns, 1);
        expect(sc(r)).toBe(Status.InvalidField);
      }
    });

    it('CNS 08h (I/O Command Set Independent, asked first by Linux 6.13+): ready, shared, the ANA group of CNS 00h; inactive reads as zeros', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      for (const nsid of [1, 2, 5]) {
        const r = await identify(admin, Cns.CsIndependentNamespace, nsid);
        expect(r.cqe.status).toBe(0);
        const ind = decodeIdentifyNamespaceCsIndependent(r.data);
        expect(ind.nstat & Nstat.Ready, `nsid ${nsid} NSTAT`).toBe(Nstat.Ready);
        expect(ind.nmic).toBe(Nmic.Shared);
        expect(ind.anagrpid).toBe(decodeIdentifyNamespace(await identifyData(admin, Cns.Namespace, nsid)).anagrpid);
      }
      expect((await identifyData(admin, Cns.CsIndependentNamespace, 3)).equals(Buffer.alloc(4096))).toBe(true);
      for (const nsid of [0, 0xffffffff]) expect(sc(await identify(admin, Cns.CsIndependentNamespace, nsid))).toBe(Status.InvalidNamespaceOrFormat);
    });

    it('identities are identical through controllers on both ports', async () => {
      const { ports } = await start();
      const a1 = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const a2 = res.track(await Client.admin(ports[1]!, { subnqn: SUBNQN }));
      expect(a1.cntlid).not.toBe(a2.cntlid);
      for (const nsid of [1, 2, 5]) {
        expect((await identifyData(a1, Cns.Namespace, nsid)).equals(await identifyData(a2, Cns.Namespace, nsid))).toBe(true);
        expect((await identifyData(a1, Cns.NamespaceDescriptorList, nsid)).equals(await identifyData(a2, Cns.NamespaceDescriptorList, nsid))).toBe(true);
      }
      const c1 = await identifyData(a1, Cns.Controller);
      const c2 = await identifyData(a2, Cns.Controller);
      expect(c1.readUInt16LE(78)).toBe(a1.cntlid);
      expect(c2.readUInt16LE(78)).toBe(a2.cntlid);
      c1.writeUInt16LE(0, 78);
      c2.writeUInt16LE(0, 78);
      expect(c1.equals(c2)).toBe(true);
    });
  });

  describe('Get Log Page', () => {
    it('01h error log records a failed command with its status, cid and sqid; sized by ELPE', async () => {
      const { ports } = await start();
      const { admin, io } = await connectPair(res, ports[0]!, SUBNQN, { via: Client });
      const elpe = (await identifyData(admin, Cns.Controller))[262]!;
      expect(elpe).toBeGreaterThan(0);

      const bad = await io.command(readCommand(1, 0xffffffff, 1, 512), { cid: 0x1234 });
      expect(sc(bad)).toBe(Status.LbaOutOfRange);
      const badAdmin = await admin.command(identifyCommand({ cns: Cns.Namespace, nsid: 0 }), { cid: 0x0bad });
      expect(sc(badAdmin)).toBe(Status.InvalidNamespaceOrFormat);

      const log = await getLogData(admin, { lid: LogPageId.ErrorInformation, length: 64 * 4 });
      const entries = decodeErrorLog(log);
      // Newest first.
      expect(entries[0]!.cid).toBe(0x0bad);
      expect(entries[0]!.sqid).toBe(0);
      expect(entries[0]!.status).toBe(badAdmin.cqe.status);
      expect(entries[0]!.opcode).toBe(AdminOpcode.Identify);
      expect(entries[1]!.cid).toBe(0x1234);
      expect(entries[1]!.sqid).toBe(1);
      expect(entries[1]!.status).toBe(bad.cqe.status);
      expect(entries[1]!.nsid).toBe(1);
      expect(entries[1]!.lba).toBe(0xffffffffn);
      expect(entries[1]!.opcode).toBe(IoOpcode.Read);
      expect(entries[0]!.errorCount).toBe(entries[1]!.errorCount + 1n);
      expect(entries[2]!.errorCount).toBe(0n); // unused entry
      // Raw: sqid @8, cid @10, status field @12 (status << 1 | phase).
      expect(log.readUInt16LE(64 + 8)).toBe(1);
      expect(log.readUInt16LE(64 + 10)).toBe(0x1234);
      expect(log.readUInt16LE(64 + 12) >> 1).toBe(0x4080);
      expect(log[64 + 29]).toBe(3); // TRTYPE TCP

      // The log has ELPE + 1 entries: its last entry is readable, past it is not.
      const last = await getLog(admin, { lid: LogPageId.ErrorInformation, length: 64, offset: elpe * 64 });
      expect(last.cqe.status).toBe(0);
      expect(last.data.equals(Buffer.alloc(64))).toBe(true);
      const beyond = await getLog(admin, { lid: LogPageId.ErrorInformation, length: 64, offset: (elpe + 1) * 64 + 64 });
      expect(sc(beyond)).toBe(Status.InvalidField);
    });

    it('02h SMART counts host commands and data units (512000-byte units, rounded up)', async () => {
      const { ports } = await start();
      const { admin, io } = await connectPair(res, ports[0]!, SUBNQN, { via: Client });
      const smart = async (nsid: number) => {
        const d = await getLogData(admin, { lid: LogPageId.Smart, length: 512, nsid });
        return { d, s: decodeSmartLog(d) };
      };
      const before = await smart(0xffffffff);
      expect(before.s.hostWriteCommands).toBe(0n);
      expect(before.s.dataUnitsWritten).toBe(0n);

      // 1000 blocks of 512 bytes = exactly one data unit.
      const big = patternBlocks(0, 1000, 512);
      expect((await io.command(writeCommand(1, 0, 1000, big.length, false), { data: big })).cqe.status).toBe(0);
      let after = await smart(0xffffffff);
      expect(after.s.hostWriteCommands).toBe(1n);
      expect(after.s.dataUnitsWritten).toBe(1n);
      // One more block rounds up to a second unit.
      const one = patternBlocks(2000, 1, 512);
      expect((await io.command(writeCommand(1, 2000, 1, 512, true), { data: one })).cqe.status).toBe(0);
      expect((await io.command(readCommand(1, 0, 8, 4096))).cqe.status).toBe(0);
      expect((await io.command(readCommand(1, 2000, 1, 512))).cqe.status).toBe(0);
      after = await smart(0xffffffff);
      expect(after.s.hostWriteCommands).toBe(2n);
      expect(after.s.dataUnitsWritten).toBe(2n);
      expect(after.s.hostReadCommands).toBe(2n);
      expect(after.s.dataUnitsRead).toBe(1n);
      // Raw offsets: data units read @32, written @48, host reads @64, host writes @80.
      expect(after.d.readBigUInt64LE(32)).toBe(1n);
      expect(after.d.readBigUInt64LE(48)).toBe(2n);
      expect(after.d.readBigUInt64LE(64)).toBe(2n);
      expect(after.d.readBigUInt64LE(80)).toBe(2n);
      // Per namespace: nsid 2 saw nothing, nsid 1 everything.
      expect((await smart(2)).s.hostWriteCommands).toBe(0n);
      expect((await smart(1)).s.hostWriteCommands).toBe(2n);
      expect(sc(await getLog(admin, { lid: LogPageId.Smart, length: 512, nsid: 3 }))).toBe(Status.InvalidNamespaceOrFormat);
    });

    it('03h firmware slot log shows slot 1 active with the configured revision', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const d = await getLogData(admin, { lid: LogPageId.FirmwareSlot, length: 512 });
      expect(d[0]! & 0x7).toBe(1);
      expect(d.toString('latin1', 8, 16)).toBe(FIRMWARE.padEnd(8, ' '));
      expect(decodeFirmwareSlotLog(d).frs[0]).toBe(FIRMWARE);
      expect(d.subarray(16, 64).equals(Buffer.alloc(48))).toBe(true);
    });

    it('04h changed namespace list shows a namespace added through the control API, cleared by a read without RAE', async () => {
      const { target, ports } = await start();
      const addr = await res.control(target);
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const read = async (rae: boolean) => decodeChangedNamespaceList(await getLogData(admin, { lid: LogPageId.ChangedNamespaceList, length: 4096, rae }));
      expect(await read(true)).toEqual([]);
      await controlRequest(addr, 'ns.add', { nsid: 7, size: '1M' });
      const raw = await getLogData(admin, { lid: LogPageId.ChangedNamespaceList, length: 4096, rae: true });
      expect(raw.readUInt32LE(0)).toBe(7);
      expect(raw.readUInt32LE(4)).toBe(0);
      expect(await read(true)).toEqual([7]); // RAE keeps it
      expect(await read(false)).toEqual([7]); // read without RAE returns it, then clears
      expect(await read(true)).toEqual([]);
      expect(decodeNamespaceList(await identifyData(admin, Cns.ActiveNamespaceList, 0))).toEqual([1, 2, 5, 7]);
    });

    it('05h commands supported and effects list the vendor commands and the I/O set', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const d = await getLogData(admin, { lid: LogPageId.CommandsSupportedEffects, length: 4096 });
      const e = decodeEffectsLog(d);
      expect(d.readUInt32LE(0xfe * 4)).toBe(CmdEffects.CSUPP | CmdEffects.NCC | CmdEffects.NIC);
      expect(d.readUInt32LE(0xfc * 4) & CmdEffects.CSUPP).toBe(CmdEffects.CSUPP);
      for (const op of [
        AdminOpcode.GetLogPage,
        AdminOpcode.Identify,
        AdminOpcode.Abort,
        AdminOpcode.SetFeatures,
        AdminOpcode.GetFeatures,
        AdminOpcode.AsyncEventRequest,
        AdminOpcode.KeepAlive,
      ]) {
        expect(e.acs[op]! & CmdEffects.CSUPP).toBe(CmdEffects.CSUPP);
      }
      expect(e.acs[AdminOpcode.FirmwareCommit]).toBe(0);
      expect(d.readUInt32LE(1024 + IoOpcode.Write * 4)).toBe(CmdEffects.CSUPP | CmdEffects.LBCC);
      expect(d.readUInt32LE(1024 + IoOpcode.Read * 4)).toBe(CmdEffects.CSUPP);
      expect(d.readUInt32LE(1024 + IoOpcode.Flush * 4)).toBe(CmdEffects.CSUPP);
      for (const op of [IoOpcode.Compare, IoOpcode.WriteZeroes, IoOpcode.DatasetManagement]) expect(e.iocs[op]! & CmdEffects.CSUPP).toBe(CmdEffects.CSUPP);
      expect(e.iocs[IoOpcode.WriteZeroes]! & CmdEffects.LBCC).toBe(CmdEffects.LBCC);
      expect(e.iocs[IoOpcode.Verify]).toBe(0);
    });

    it('00h supported log pages lists exactly the logs that read, 12h exactly the features Get Features answers', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const lids = supportedLogIds(decodeSupportedLogPages(await getLogData(admin, { lid: LogPageId.SupportedLogPages, length: 1024 })));
      expect(lids).toEqual([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0c, 0x12]);
      for (let lid = 0; lid <= 0xff; lid++) {
        const r = await getLog(admin, { lid, length: 512, nsid: lid === LogPageId.Ana ? 0xffffffff : 0, rae: true });
        if (lids.includes(lid)) expect(r.cqe.status, `log ${lid.toString(16)}h listed`).toBe(0);
        else expect(sc(r), `log ${lid.toString(16)}h not listed`).toBe(Status.InvalidField);
      }
      const fids = supportedFeatureIds(decodeFidEffectsLog(await getLogData(admin, { lid: LogPageId.FeatureIdsSupportedEffects, length: 1024 })));
      expect(fids).toEqual([
        FeatureId.VolatileWriteCache,
        FeatureId.NumberOfQueues,
        FeatureId.AsyncEventConfig,
        FeatureId.KeepAliveTimer,
        FeatureId.HostIdentifier,
      ]);
      for (const fid of [0x01, 0x02, 0x04, 0x05, 0x08, 0x0c, 0x82, 0x84])
        expect(sc(await getFeature(admin, fid)), `feature ${fid.toString(16)}h`).toBe(Status.InvalidField);
      for (const fid of fids) {
        const r = await getFeature(admin, fid, fid === FeatureId.HostIdentifier ? { cdw11: 1, data: 16 } : {});
        expect(r.cqe.status, `feature ${fid.toString(16)}h listed`).toBe(0);
      }
    });

    it('0Ch ANA log with and without RGO', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const full = await getLogData(admin, { lid: LogPageId.Ana, length: 4096, nsid: 0xffffffff, rae: true });
      const log = decodeAnaLog(full);
      expect(full.readUInt16LE(8)).toBe(2); // NGRPS
      expect(log.chgcnt).toBeGreaterThan(0n);
      // Group 1 (nsids 1, 2) optimized on port 1; group 2 (nsid 5) active on port 2.
      expect(full.readUInt32LE(16)).toBe(1);
      expect(full.readUInt32LE(20)).toBe(2); // NNSIDS
      expect(full[32]).toBe(0x01);
      expect(full.readUInt32LE(48)).toBe(1);
      expect(full.readUInt32LE(52)).toBe(2);
      expect(full.readUInt32LE(56)).toBe(2); // group 2 descriptor
      expect(full.readUInt32LE(60)).toBe(1);
      expect(full[72]).toBe(0x03);
      expect(full.readUInt32LE(88)).toBe(5);
      expect(full.subarray(92).equals(Buffer.alloc(4096 - 92))).toBe(true);

      const rgo = await getLogData(admin, { lid: LogPageId.Ana, length: 4096, nsid: 0xffffffff, lsp: 1, rae: true });
      expect(rgo.readUInt16LE(8)).toBe(2);
      expect(rgo.readBigUInt64LE(0)).toBe(log.chgcnt);
      expect(rgo.readUInt32LE(16)).toBe(1);
      expect(rgo.readUInt32LE(20)).toBe(0); // no NSID list
      expect(rgo[32]).toBe(0x01);
      expect(rgo.readUInt32LE(48)).toBe(2); // next descriptor follows at once
      expect(rgo.readUInt32LE(52)).toBe(0);
      expect(rgo[64]).toBe(0x03);
      expect(rgo.subarray(80).equals(Buffer.alloc(4096 - 80))).toBe(true);
    });

    it('every log read with offsets and partial lengths equals the slice of a full read', async () => {
      const { ports } = await start();
      const { admin, io } = await connectPair(res, ports[0]!, SUBNQN, { via: Client });
      // Give the error and SMART logs some content.
      await io.command(readCommand(1, 0xfffffff0, 1, 512));
      await io.command(writeCommand(1, 0, 1, 512, true), { data: patternBlocks(0, 1, 512) });
      await admin.command(sqe({ opcode: 0x10 }));
      const logs: { lid: number; size: number; nsid?: number; lsp?: number }[] = [
        { lid: LogPageId.ErrorInformation, size: 8192 },
        { lid: LogPageId.Smart, size: 512, nsid: 0xffffffff },
        { lid: LogPageId.FirmwareSlot, size: 512 },
        { lid: LogPageId.ChangedNamespaceList, size: 4096 },
        { lid: LogPageId.CommandsSupportedEffects, size: 4096 },
        { lid: LogPageId.SupportedLogPages, size: 1024 },
        { lid: LogPageId.FeatureIdsSupportedEffects, size: 1024 },
        { lid: LogPageId.Ana, size: 16 + 32 * 2 + 4 * 3, nsid: 0xffffffff },
        { lid: LogPageId.Ana, size: 16 + 32 * 2, nsid: 0xffffffff, lsp: 1 },
      ];
      for (const l of logs) {
        const fullLength = Math.max(l.size, 4096);
        const full = await getLogData(admin, { lid: l.lid, length: fullLength, nsid: l.nsid, lsp: l.lsp, rae: true });
        for (const [offset, length] of [
          [0, 4],
          [4, 8],
          [0, 16],
          [16, 32],
          [60, 68],
          [64, 64],
          [8, 500],
          [l.size - 4, 4],
          [l.size, 4],
          [l.size - 8, 64],
          [1024, 2048],
          [4092, 4],
        ] as const) {
          if (offset > l.size || offset + length > fullLength) continue;
          const r = await getLog(admin, { lid: l.lid, length, offset, nsid: l.nsid, lsp: l.lsp, rae: true });
          expect(r.cqe.status, `lid ${l.lid} offset ${offset} length ${length}`).toBe(0);
          expect(r.data.length).toBe(length);
          expect(r.data.equals(full.subarray(offset, offset + length)), `lid ${l.lid} offset ${offset} length ${length}`).toBe(true);
        }
      }
    });

    it('refuses unaligned or out-of-log offsets, a transfer length other than NUMD, and unknown LIDs', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const unaligned = await getLog(admin, { lid: LogPageId.Smart, length: 64, offset: 2 });
      expect(sc(unaligned)).toBe(Status.InvalidField);
      expect(dnr(unaligned)).toBe(true);
      const beyond = await getLog(admin, { lid: LogPageId.FirmwareSlot, length: 64, offset: 512 + 4 });
      expect(sc(beyond)).toBe(Status.InvalidField);
      const beyondAna = await getLog(admin, { lid: LogPageId.Ana, length: 4, offset: 4096 });
      expect(sc(beyondAna)).toBe(Status.InvalidField);
      for (const sglLength of [256, 1024]) {
        const mismatch = await getLog(admin, { lid: LogPageId.Smart, length: 512, sglLength });
        expect(sc(mismatch)).toBe(Status.DataSglLengthInvalid);
        expect(dnr(mismatch)).toBe(true);
      }
      for (const lid of [0x06, 0x70, 0x80, 0xc0]) {
        const r = await getLog(admin, { lid, length: 512 });
        expect(sc(r), `lid 0x${lid.toString(16)}`).toBe(Status.InvalidField);
      }
      // The controller is still fine.
      expect((await getLog(admin, { lid: LogPageId.Smart, length: 512 })).cqe.status).toBe(0);
    });
  });

  describe('Features', () => {
    it("Number of Queues: grant capped at the maximum, 0's based in DW0, Get returns the grant", async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const initial = await getFeature(admin, FeatureId.NumberOfQueues);
      expect(initial.cqe.status).toBe(0);
      expect(initial.cqe.result >>> 0).toBe((127 | (127 << 16)) >>> 0);
      const big = await setFeature(admin, FeatureId.NumberOfQueues, 199 | (199 << 16));
      expect(big.cqe.status).toBe(0);
      expect(big.cqe.result >>> 0).toBe((127 | (127 << 16)) >>> 0); // capped at 128
      const small = await setFeature(admin, FeatureId.NumberOfQueues, 3 | (1 << 16));
      expect(small.cqe.result >>> 0).toBe((3 | (1 << 16)) >>> 0);
      expect((await getFeature(admin, FeatureId.NumberOfQueues)).cqe.result >>> 0).toBe((3 | (1 << 16)) >>> 0);
      // 65535 is not a valid request.
      expect(sc(await setFeature(admin, FeatureId.NumberOfQueues, 0xffff))).toBe(Status.InvalidField);
      // The grant limits I/O queue ids.
      const r = await Client.connect(ports[0]!);
      res.track(r);
      await r.initialize();
      const q5 = await r.connectQueue({ qid: 5, subnqn: SUBNQN, cntlid: admin.cntlid, sqsize: 31 });
      expect(q5.cqe.status).not.toBe(0);
    });

    it('Number of Queues honours attr.qid_max', async () => {
      const { ports } = await start(
        testConfig((doc) => {
          doc['subsystems'][0].attr.qid_max = '16';
        }),
      );
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const r = await setFeature(admin, FeatureId.NumberOfQueues, 63 | (63 << 16));
      expect(r.cqe.result >>> 0).toBe((15 | (15 << 16)) >>> 0);
    });

    it('AEC and KATO round-trip; SEL=3 reports changeable; SV is not saveable', async () => {
      const { target, ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN, kato: 0 }));
      expect((await getFeature(admin, FeatureId.AsyncEventConfig)).cqe.result).toBe(0);
      expect((await setFeature(admin, FeatureId.AsyncEventConfig, 0x900)).cqe.status).toBe(0);
      expect((await getFeature(admin, FeatureId.AsyncEventConfig)).cqe.result >>> 0).toBe(0x900);
      expect((await setFeature(admin, FeatureId.AsyncEventConfig, 0x100)).cqe.status).toBe(0);
      expect((await getFeature(admin, FeatureId.AsyncEventConfig)).cqe.result >>> 0).toBe(0x100);

      expect((await setFeature(admin, FeatureId.KeepAliveTimer, 15000)).cqe.status).toBe(0);
      expect((await getFeature(admin, FeatureId.KeepAliveTimer)).cqe.result).toBe(15000);
      const ctrl = target.subsystems.get(SUBNQN)!.controllers.get(admin.cntlid)!;
      expect(ctrl.katoMs).toBe(15000);

      for (const fid of [FeatureId.NumberOfQueues, FeatureId.AsyncEventConfig, FeatureId.KeepAliveTimer, FeatureId.VolatileWriteCache]) {
        const cap = await getFeature(admin, fid, { sel: 3 });
        expect(cap.cqe.status).toBe(0);
        expect(cap.cqe.result & FeatureCapability.Changeable).toBe(FeatureCapability.Changeable);
        expect(cap.cqe.result & FeatureCapability.Saveable).toBe(0);
      }
      const sv = await setFeature(admin, FeatureId.KeepAliveTimer, 5000, { save: true });
      expect(sc(sv)).toBe(Status.FeatureIdNotSaveable);
      expect(dnr(sv)).toBe(true);
      expect((await getFeature(admin, FeatureId.KeepAliveTimer)).cqe.result).toBe(15000);
      // Unsupported feature.
      expect(sc(await getFeature(admin, FeatureId.TemperatureThreshold))).toBe(Status.InvalidField);
    });

    it('VWC: disabling the write cache makes each write flush the store', async () => {
      const { target, ports } = await start();
      const { admin, io } = await connectPair(res, ports[0]!, SUBNQN, { via: Client });
      const store = target.subsystems.get(SUBNQN)!.namespaces.get(1)!.store;
      let flushes = 0;
      const origFlush = store.flush.bind(store);
      store.flush = async () => {
        flushes++;
        return origFlush();
      };
      // The memory store also flushes synchronously (the target's path for in-memory stores): count both forms.
      const origFlushSync = store.flushSync?.bind(store);
      if (origFlushSync) {
        store.flushSync = () => {
          flushes++;
          origFlushSync();
        };
      }
      expect((await getFeature(admin, FeatureId.VolatileWriteCache)).cqe.result).toBe(1);
      const data = patternBlocks(0, 1, 512);
      expect((await io.command(writeCommand(1, 0, 1, 512, true), { data })).cqe.status).toBe(0);
      expect(flushes).toBe(0);
      expect((await setFeature(admin, FeatureId.VolatileWriteCache, 0)).cqe.status).toBe(0);
      expect((await getFeature(admin, FeatureId.VolatileWriteCache)).cqe.result).toBe(0);
      expect((await io.command(writeCommand(1, 0, 1, 512, true), { data })).cqe.status).toBe(0);
      expect(flushes).toBe(1);
      expect((await setFeature(admin, FeatureId.VolatileWriteCache, 1)).cqe.status).toBe(0);
      expect((await getFeature(admin, FeatureId.VolatileWriteCache)).cqe.result).toBe(1);
      expect((await io.command(writeCommand(1, 0, 1, 512, true), { data })).cqe.status).toBe(0);
      expect(flushes).toBe(1);
    });

    it('Host Identifier: EXHID=1 returns the Connect hostid, EXHID=0 is refused, Set is a sequence error', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const r = await getFeature(admin, FeatureId.HostIdentifier, { cdw11: 1, data: 16 });
      expect(r.cqe.status).toBe(0);
      expect(r.data.equals(HOSTID)).toBe(true);
      const e0 = await getFeature(admin, FeatureId.HostIdentifier, { cdw11: 0, data: 8 });
      expect(sc(e0)).toBe(Status.HostIdInconsistentFormat);
      expect(dnr(e0)).toBe(true);
      const set = await setFeature(admin, FeatureId.HostIdentifier, 1);
      expect(sc(set)).toBe(Status.CommandSequenceError);
    });
  });

  describe('Asynchronous events', () => {
    it('ANA change event (DW0 0x000C0302) after the active path moves', async () => {
      const { target, ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      await enableAec(admin, 1 << 11);
      const aer = new PendingAer(admin);
      await roundTrip(admin);
      expect(aer.done).toBe(false);
      await target.setActivePort(SUBNQN, 1, 2);
      expect(await aer.dw0()).toBe(0x000c0302);
      expect(AerResultValue.AnaChange).toBe(0x000c0302);
    });

    it('namespace attribute event (DW0 0x00040002) after a namespace is added', async () => {
      const { target, ports } = await start();
      const addr = await res.control(target);
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      await enableAec(admin, 1 << 8);
      const aer = new PendingAer(admin);
      await roundTrip(admin);
      await controlRequest(addr, 'ns.add', { nsid: 9, size: '1M' });
      expect(await aer.dw0()).toBe(0x00040002);
    });

    it('an event stays masked until its log is read without RAE', async () => {
      const { target, ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      await enableAec(admin, 1 << 11);
      const first = new PendingAer(admin);
      await target.setActivePort(SUBNQN, 1, 2);
      expect(await first.dw0()).toBe(0x000c0302);

      const second = new PendingAer(admin);
      await roundTrip(admin);
      await target.setActivePort(SUBNQN, 1, 1); // second change before reading: masked
      await roundTrip(admin);
      expect(second.done).toBe(false);
      await getLogData(admin, { lid: LogPageId.Ana, length: 4096, rae: true }); // RAE keeps it masked
      await target.setActivePort(SUBNQN, 1, 2);
      await roundTrip(admin);
      expect(second.done).toBe(false);
      await getLogData(admin, { lid: LogPageId.Ana, length: 4096, rae: false }); // unmasks
      await roundTrip(admin);
      expect(second.done).toBe(false);
      await target.setActivePort(SUBNQN, 1, 1);
      expect(await second.dw0()).toBe(0x000c0302);
    });

    it('events are sent only when enabled through AEC', async () => {
      const { target, ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const aer = new PendingAer(admin);
      await roundTrip(admin);
      await target.setActivePort(SUBNQN, 1, 2);
      await roundTrip(admin);
      expect(aer.done).toBe(false);
      await enableAec(admin, 1 << 8); // namespace attribute only: ANA still off
      await target.setActivePort(SUBNQN, 1, 1);
      await roundTrip(admin);
      expect(aer.done).toBe(false);
      await enableAec(admin, 1 << 11);
      await target.setActivePort(SUBNQN, 1, 2);
      expect(await aer.dw0()).toBe(0x000c0302);
    });

    it('an event raised while no AER is outstanding is delivered by the next AER', async () => {
      const { target, ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      await enableAec(admin, 1 << 11);
      await target.setActivePort(SUBNQN, 1, 2);
      const late = new PendingAer(admin);
      expect(await late.dw0()).toBe(0x000c0302);
      // Only once: the next AER waits for a new (unmasked) event.
      const next = new PendingAer(admin);
      await roundTrip(admin);
      expect(next.done).toBe(false);
    });

    it('more than AERL+1 outstanding requests: AER Limit Exceeded', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN }));
      const aerl = (await identifyData(admin, Cns.Controller))[259]!;
      expect(aerl).toBe(3);
      const parked = Array.from({ length: aerl + 1 }, () => new PendingAer(admin));
      await roundTrip(admin);
      expect(parked.every((a) => !a.done)).toBe(true);
      const extra = await admin.command(sqe({ opcode: AdminOpcode.AsyncEventRequest }));
      expect(sc(extra)).toBe(Status.AsyncEventRequestLimitExceeded);
      await roundTrip(admin);
      expect(parked.every((a) => !a.done)).toBe(true);
    });
  });

  describe('other admin commands', () => {
    wireIt('Abort of a command still waiting for its R2T data aborts it', async () => {
      const { ports } = await start();
      const { admin, io } = await connectPair(res, ports[0]!, SUBNQN);
      const data = patternBlocks(0, 64, 512);
      const pending = io.command(writeCommand(1, 0, 64, data.length, false), { cid: 0x42 }); // no data: R2T left to us
      const r2t = await io.nextUnclaimed();
      expect(r2t.type).toBe(9);
      const ab = await admin.command(abortCommand({ sqid: 1, cid: 0x42 }));
      expect(ab.cqe.status).toBe(0);
      expect(ab.cqe.result & 1).toBe(0);
      const r = await pending;
      expect(sc(r)).toBe(Status.AbortRequested);
      // The queue keeps working and nothing was written.
      const rd = await io.command(readCommand(1, 0, 64, data.length));
      expect(rd.cqe.status).toBe(0);
      expect(rd.data.equals(Buffer.alloc(data.length))).toBe(true);
    });

    it('Keep Alive succeeds; Abort of an unknown cid reports "not aborted"; unknown opcodes are Invalid Opcode', async () => {
      const { ports } = await start();
      const admin = res.track(await Client.admin(ports[0]!, { subnqn: SUBNQN, kato: 5000 }));
      expect((await admin.command(keepAliveCommand())).cqe.status).toBe(0);
      const ab = await admin.command(abortCommand({ sqid: 0, cid: 0x7777 }));
      expect(ab.cqe.status).toBe(0);
      expect(ab.cqe.result & 1).toBe(1);
      const ab1 = await admin.command(abortCommand({ sqid: 1, cid: 1 }));
      expect(ab1.cqe.status).toBe(0);
      expect(ab1.cqe.result & 1).toBe(1);
      for (const opcode of [AdminOpcode.FirmwareCommit, AdminOpcode.NamespaceManagement, 0x80, 0xc4]) {
        const r = await admin.command(sqe({ opcode }));
        expect(sc(r), `opcode 0x${opcode.toString(16)}`).toBe(Status.InvalidOpcode);
        expect(dnr(r)).toBe(true);
      }
      expect((await admin.command(keepAliveCommand())).cqe.status).toBe(0);
    });
  });
});
