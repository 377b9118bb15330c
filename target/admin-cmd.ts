/**
 * Admin commands of I/O controllers: Identify, Get Log Page, Set/Get Features,
 * Asynchronous Event Request, Keep Alive, Abort, and the active-standby vendor
 * commands 0xFE (Set Namespace Active) and 0xFC (Get Persistent Namespace Id).
 */
import {
  Anacap,
  Cmic,
  CntrlType,
  Cns,
  Ctratt,
  Lpa,
  Nmic,
  Nstat,
  NsIdType,
  Oaes,
  Oncs,
  Sgls,
  Vwc,
  encodeIdentifyController,
  encodeIdentifyControllerNvm,
  encodeIdentifyNamespace,
  encodeIdentifyNamespaceCsIndependent,
  encodeIdentifyNamespaceNvm,
  encodeNamespaceList,
  encodeNsIdDescriptors,
  type NsIdDescriptor,
} from '../shared/identify.ts';
import {
  AnaLsp,
  CmdEffects,
  FidEffects,
  LidEffects,
  LogPageId,
  decodeGetLogPageDwords,
  encodeAnaLog,
  encodeChangedNamespaceList,
  encodeEffectsLog,
  encodeErrorLog,
  encodeFidEffectsLog,
  encodeFirmwareSlotLog,
  encodeSmartLog,
  encodeSupportedLogPages,
  sliceLogPage,
} from '../shared/log-pages.ts';
import { FeatureId, FeatureCapability, encodeNumberOfQueues } from '../shared/features.ts';
import { AdminOpcode, IoOpcode } from '../shared/opcodes.ts';
import { PERSISTENT_NSID_DATA_LENGTH, decodeAbort, decodeFeatures, decodeIdentify } from '../shared/sqe.ts';
import { Status, withDnr } from '../shared/status.ts';
import { AERL, ACL, ERROR_LOG_ENTRIES, type Controller } from './controller.ts';
import type { TargetCore } from './core.ts';
import { versionOf } from './fabrics-cmd.ts';
import type { Namespace } from './namespace.ts';
import { SqeField, type Completion, type Request } from './request.ts';
import type { Subsystem } from './subsystem.ts';

/** NN and MNAN, as nvmet. */
export const MAX_NAMESPACES = 1024;
export const ANATT_SECONDS = 10;
export const ANAGRPMAX = 128;
export const KAS_100MS = 10;
const NSID_ALL = 0xffffffff;

export function executeAdmin(req: Request, ctrl: Controller, core: TargetCore): Completion | Promise<Completion> {
  const subsys = ctrl.subsystem!;
  switch (req.sqe.opcode) {
    case AdminOpcode.Identify:
      return identify(req, ctrl, subsys, core);
    case AdminOpcode.GetLogPage:
      return getLogPage(req, ctrl, subsys, core);
    case AdminOpcode.SetFeatures:
      return setFeatures(req, ctrl);
    case AdminOpcode.GetFeatures:
      return getFeatures(req, ctrl);
    case AdminOpcode.AsyncEventRequest:
      return ctrl.parkAer(req.sqe.cid);
    case AdminOpcode.KeepAlive:
      return { status: 0 };
    case AdminOpcode.Abort:
      return abort(req, ctrl);
    case AdminOpcode.SetNamespaceActive:
      return setNamespaceActive(req, ctrl, subsys, core);
    case AdminOpcode.GetPersistentNsId:
      return getPersistentNsId(req, subsys);
    default:
      return { status: withDnr(Status.InvalidOpcode), errorLocation: SqeField.opcode };
  }
}

// ---------------------------------------------------------------- Identify

function needLength(req: Request, length: number): Completion | null {
  return req.transferLength === length ? null : { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr };
}

function activeNamespace(subsys: Subsystem, nsid: number): Namespace | undefined {
  const ns = subsys.namespaces.get(nsid);
  return ns?.enabled ? ns : undefined;
}

function identify(req: Request, ctrl: Controller, subsys: Subsystem, core: TargetCore): Completion {
  const bad = needLength(req, 4096);
  if (bad) return bad;
  const id = decodeIdentify(req.sqe);
  const invalidNs = { status: withDnr(Status.InvalidNamespaceOrFormat), errorLocation: SqeField.nsid };
  switch (id.cns) {
    case Cns.Namespace: {
      if (id.nsid === 0 || id.nsid === NSID_ALL) return invalidNs;
      const ns = activeNamespace(subsys, id.nsid);
      // An inactive NSID reads as zeros (NVMe Base: Identify Namespace of an inactive NSID).
      return { status: 0, data: ns ? identifyNamespace(ns) : Buffer.alloc(4096) };
    }
    case Cns.Controller:
      return { status: 0, data: identifyController(ctrl, subsys, core) };
    case Cns.ActiveNamespaceList: {
      if (id.nsid >= 0xfffffffe) return invalidNs;
      const nsids = [...subsys.namespaces.values()].filter((n) => n.enabled).map((n) => n.nsid);
      return {
        status: 0,
        data: encodeNamespaceList(
          nsids.sort((a, b) => a - b),
          id.nsid,
        ),
      };
    }
    case Cns.NamespaceDescriptorList: {
      const ns = activeNamespace(subsys, id.nsid);
      if (!ns) return invalidNs;
      return { status: 0, data: encodeNsIdDescriptors(namespaceDescriptors(ns)) };
    }
    case Cns.CsiNamespace: {
      if (id.csi !== 0) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw11 };
      const ns = activeNamespace(subsys, id.nsid);
      if (!ns) return invalidNs;
      return { status: 0, data: encodeIdentifyNamespaceNvm({}) };
    }
    case Cns.CsIndependentNamespace: {
      // Linux's host asks this first from 6.13 on (as 7.2's nvmet answers it); an inactive NSID reads as zeros.
      if (id.nsid === 0 || id.nsid === NSID_ALL) return invalidNs;
      const ns = activeNamespace(subsys, id.nsid);
      return {
        status: 0,
        data: ns ? encodeIdentifyNamespaceCsIndependent({ nmic: Nmic.Shared, anagrpid: ns.anagrpid, nstat: Nstat.Ready }) : Buffer.alloc(4096),
      };
    }
    case Cns.CsiController:
      if (id.csi !== 0) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw11 };
      // Zero means "no limit" for every field (VSL, WZSL, DMRL...).
      return { status: 0, data: encodeIdentifyControllerNvm({}) };
    default:
      return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw10 };
  }
}

export function identifyController(ctrl: Controller, subsys: Subsystem, core: TargetCore): Buffer {
  const c = subsys.config;
  return encodeIdentifyController({
    vid: 0,
    ssvid: 0,
    sn: c.serial,
    mn: c.model,
    fr: c.firmware,
    rab: 6,
    ieee: c.ieeeOui,
    cmic: Cmic.MultiPort | Cmic.MultiController | Cmic.Ana,
    mdts: core.limits.mdts,
    cntlid: ctrl.cntlid,
    ver: versionOf(ctrl),
    oaes: Oaes.NamespaceAttribute | Oaes.AnaChange,
    ctratt: Ctratt.HostId128 | Ctratt.Tbkas,
    cntrltype: CntrlType.Io,
    acl: ACL,
    aerl: AERL,
    frmw: 0x03, // one slot, slot 1 read-only
    lpa: Lpa.SmartPerNamespace | Lpa.CommandEffects | Lpa.ExtendedData,
    elpe: ERROR_LOG_ENTRIES - 1,
    npss: 0,
    kas: KAS_100MS,
    anatt: ANATT_SECONDS,
    anacap: Anacap.Optimized | Anacap.NonOptimized | Anacap.Inaccessible | Anacap.PersistentLoss | Anacap.Change,
    anagrpmax: ANAGRPMAX,
    nanagrpid: ANAGRPMAX,
    sqes: 0x66,
    cqes: 0x44,
    maxcmd: ctrl.mqes + 1,
    nn: MAX_NAMESPACES,
    oncs: Oncs.Compare | Oncs.DatasetManagement | Oncs.WriteZeroes,
    vwc: Vwc.Present | Vwc.FlushBroadcastMask,
    sgls: Sgls.SupportedByteAligned | Sgls.AddressAsOffset,
    mnan: MAX_NAMESPACES,
    subnqn: subsys.nqn,
    ioccsz: ctrl.port.ioccsz,
    iorcsz: 1,
    icdoff: 0,
    fcatt: 0,
    msdbd: 1,
    ofcs: 0,
    psd: [{ mp: 0x9c4, enlat: 0x10, exlat: 0x4 }],
  });
}

export function identifyNamespace(ns: Namespace): Buffer {
  const nsze = BigInt(ns.nblocks);
  return encodeIdentifyNamespace({
    nsze,
    ncap: nsze,
    nuse: nsze,
    nmic: Nmic.Shared,
    // Read after deallocate returns zeros (001b); Write Zeroes may deallocate (bit 3).
    dlfeat: 0x09,
    anagrpid: ns.anagrpid,
    nguid: ns.identity.nguid,
    eui64: ns.identity.eui64,
    lbaf: [{ ms: 0, lbads: Math.log2(ns.blockSize), rp: 0 }],
  });
}

export function namespaceDescriptors(ns: Namespace): NsIdDescriptor[] {
  const d: NsIdDescriptor[] = [];
  if (ns.identity.eui64.some((b) => b !== 0)) d.push({ nidt: NsIdType.Eui64, nid: ns.identity.eui64 });
  d.push({ nidt: NsIdType.Nguid, nid: ns.identity.nguid });
  d.push({ nidt: NsIdType.Uuid, nid: ns.identity.uuid });
  d.push({ nidt: NsIdType.Csi, nid: Buffer.from([0]) });
  return d;
}

// ---------------------------------------------------------------- Get Log Page

/** Validates offset/length, then returns the requested window of a log. */
export function logPageWindow(req: Request, full: Buffer): Completion {
  const lp = decodeGetLogPageDwords(req.sqe.cdw10, req.sqe.cdw11, req.sqe.cdw12, req.sqe.cdw13, req.sqe.cdw14);
  if (req.transferLength !== lp.numdBytes) return { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr };
  if (lp.ot) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw14 };
  if ((lp.offset & 3n) !== 0n || lp.offset > BigInt(full.length)) {
    return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw12 };
  }
  return { status: 0, data: sliceLogPage(full, lp.offset, lp.numdBytes) };
}

function getLogPage(req: Request, ctrl: Controller, subsys: Subsystem, core: TargetCore): Completion {
  const lp = decodeGetLogPageDwords(req.sqe.cdw10, req.sqe.cdw11, req.sqe.cdw12, req.sqe.cdw13, req.sqe.cdw14);
  let full: Buffer;
  switch (lp.lid) {
    case LogPageId.ErrorInformation:
      full = encodeErrorLog(ctrl.errorLog(), ERROR_LOG_ENTRIES); // ELPE + 1 entries, unused ones zero
      break;
    case LogPageId.Smart: {
      const nsid = req.sqe.nsid;
      let namespaces: Namespace[];
      if (nsid === 0 || nsid === NSID_ALL) namespaces = [...subsys.namespaces.values()];
      else {
        const ns = activeNamespace(subsys, nsid);
        if (!ns) return { status: withDnr(Status.InvalidNamespaceOrFormat), errorLocation: SqeField.nsid };
        namespaces = [ns];
      }
      full = smartLog(namespaces, ctrl, core);
      break;
    }
    case LogPageId.FirmwareSlot:
      full = encodeFirmwareSlotLog({ afi: 1, frs: [subsys.config.firmware] });
      break;
    case LogPageId.ChangedNamespaceList: {
      full = encodeChangedNamespaceList([...ctrl.changedNamespaces].sort((a, b) => a - b));
      if (!lp.rae) ctrl.changedNamespaces.clear();
      break;
    }
    case LogPageId.CommandsSupportedEffects:
      full = effectsLog(subsys);
      break;
    case LogPageId.Ana:
      full = anaLog(ctrl, subsys, (lp.lsp & AnaLsp.Rgo) !== 0);
      break;
    case LogPageId.SupportedLogPages:
      full = SUPPORTED_LOG_PAGES;
      break;
    case LogPageId.FeatureIdsSupportedEffects:
      full = FID_SUPPORTED_EFFECTS;
      break;
    default:
      return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw10 };
  }
  const c = logPageWindow(req, full);
  if (c.status === 0) ctrl.logRead(lp.lid, lp.rae);
  return c;
}

/** Data units are thousands of 512-byte units, rounded up (NVMe Base, SMART log). */
function dataUnits(bytes: bigint): bigint {
  const units512 = (bytes + 511n) / 512n;
  return (units512 + 999n) / 1000n;
}

function smartLog(namespaces: Namespace[], ctrl: Controller, core: TargetCore): Buffer {
  let bytesRead = 0n;
  let bytesWritten = 0n;
  let reads = 0n;
  let writes = 0n;
  for (const ns of namespaces) {
    bytesRead += ns.counters.bytesRead;
    bytesWritten += ns.counters.bytesWritten;
    reads += ns.counters.readCommands;
    writes += ns.counters.writeCommands;
  }
  return encodeSmartLog({
    compositeTemperature: 308,
    availableSpare: 100,
    availableSpareThreshold: 10,
    dataUnitsRead: dataUnits(bytesRead),
    dataUnitsWritten: dataUnits(bytesWritten),
    hostReadCommands: reads,
    hostWriteCommands: writes,
    powerCycles: 1n,
    powerOnHours: BigInt(Math.floor((core.clock.now() - core.startedAt) / 3_600_000)),
    numErrorLogEntries: ctrl.counters.errors,
  });
}

/** Log 00h: the logs getLogPage answers (nvme-cli 2.16's supported-log-pages reads it; 7.2's nvmet has it). */
const SUPPORTED_LOG_PAGES = encodeSupportedLogPages(
  (() => {
    const e: number[] = [];
    for (const lid of [
      LogPageId.SupportedLogPages,
      LogPageId.ErrorInformation,
      LogPageId.Smart,
      LogPageId.FirmwareSlot,
      LogPageId.ChangedNamespaceList,
      LogPageId.CommandsSupportedEffects,
      LogPageId.Ana,
      LogPageId.FeatureIdsSupportedEffects,
    ])
      e[lid] = LidEffects.LSUPP;
    return e;
  })(),
);

/** Log 12h: the features getFeatures/setFeatures handle, all of controller scope. */
const FID_SUPPORTED_EFFECTS = encodeFidEffectsLog(
  (() => {
    const e: number[] = [];
    for (const fid of [FeatureId.VolatileWriteCache, FeatureId.NumberOfQueues, FeatureId.AsyncEventConfig, FeatureId.KeepAliveTimer, FeatureId.HostIdentifier])
      e[fid] = FidEffects.FSUPP | FidEffects.ControllerScope;
    return e;
  })(),
);

function effectsLog(subsys: Subsystem): Buffer {
  const acs: number[] = [];
  const iocs: number[] = [];
  for (const op of [
    AdminOpcode.GetLogPage,
    AdminOpcode.Identify,
    AdminOpcode.Abort,
    AdminOpcode.SetFeatures,
    AdminOpcode.GetFeatures,
    AdminOpcode.AsyncEventRequest,
    AdminOpcode.KeepAlive,
    AdminOpcode.GetPersistentNsId,
  ]) {
    acs[op] = CmdEffects.CSUPP;
  }
  if (subsys.mode === 'active-standby') {
    acs[AdminOpcode.SetNamespaceActive] = CmdEffects.CSUPP | CmdEffects.NCC | CmdEffects.NIC;
  }
  iocs[IoOpcode.Flush] = CmdEffects.CSUPP;
  iocs[IoOpcode.Read] = CmdEffects.CSUPP;
  iocs[IoOpcode.Compare] = CmdEffects.CSUPP;
  iocs[IoOpcode.Write] = CmdEffects.CSUPP | CmdEffects.LBCC;
  iocs[IoOpcode.WriteZeroes] = CmdEffects.CSUPP | CmdEffects.LBCC;
  iocs[IoOpcode.DatasetManagement] = CmdEffects.CSUPP | CmdEffects.LBCC;
  return encodeEffectsLog({ acs, iocs });
}

export function anaLog(ctrl: Controller, subsys: Subsystem, rgo: boolean): Buffer {
  const groups = subsys.reportedGroups(ctrl.port).map((grpid) => ({
    anagrpid: grpid,
    chgcnt: subsys.groupChgcnt.get(grpid) ?? 0n,
    state: subsys.anaState(ctrl.port, grpid),
    nsids: [...subsys.namespaces.values()]
      .filter((n) => n.enabled && n.anagrpid === grpid)
      .map((n) => n.nsid)
      .sort((a, b) => a - b),
  }));
  return encodeAnaLog({ chgcnt: subsys.anaChgcnt, groups }, { rgo });
}

// ---------------------------------------------------------------- Features

const SUPPORTED_AEC = Oaes.NamespaceAttribute | Oaes.AnaChange;

export function setFeatures(req: Request, ctrl: Controller): Completion {
  const f = decodeFeatures(req.sqe);
  const { cdw11 } = req.sqe;
  if (f.save) return { status: withDnr(Status.FeatureIdNotSaveable), errorLocation: SqeField.cdw10 };
  switch (f.fid) {
    case FeatureId.NumberOfQueues: {
      if (ctrl.kind !== 'io') break;
      const nsqr = (cdw11 & 0xffff) + 1;
      const ncqr = (cdw11 >>> 16) + 1;
      if (nsqr > 0xffff || ncqr > 0xffff) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw11 };
      ctrl.grantedQueues = { nsqr: Math.min(nsqr, ctrl.maxIoQueues), ncqr: Math.min(ncqr, ctrl.maxIoQueues) };
      return { status: 0, result: numberOfQueuesResult(ctrl) };
    }
    case FeatureId.AsyncEventConfig:
      ctrl.aec = cdw11 & (ctrl.kind === 'discovery' ? Oaes.DiscoveryLogChange : SUPPORTED_AEC);
      return { status: 0 };
    case FeatureId.KeepAliveTimer:
      ctrl.setKato(cdw11 >>> 0);
      return { status: 0 };
    case FeatureId.VolatileWriteCache:
      if (ctrl.kind !== 'io') break;
      ctrl.wce = (cdw11 & 1) === 1;
      return { status: 0 };
    case FeatureId.HostIdentifier:
      // On fabrics the host identifier comes from Connect and cannot be changed.
      return { status: withDnr(Status.CommandSequenceError), errorLocation: SqeField.cdw10 };
    default:
      break;
  }
  return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw10 };
}

function numberOfQueuesResult(ctrl: Controller): number {
  const q = ctrl.grantedQueues ?? { nsqr: ctrl.maxIoQueues, ncqr: ctrl.maxIoQueues };
  return encodeNumberOfQueues({ submissionQueues: q.nsqr, completionQueues: q.ncqr });
}

export function getFeatures(req: Request, ctrl: Controller): Completion {
  const f = decodeFeatures(req.sqe);
  const changeable = [FeatureId.NumberOfQueues, FeatureId.AsyncEventConfig, FeatureId.KeepAliveTimer, FeatureId.VolatileWriteCache];
  const known = ctrl.kind === 'io' ? [...changeable, FeatureId.HostIdentifier] : [FeatureId.AsyncEventConfig, FeatureId.KeepAliveTimer];
  if (!(known as number[]).includes(f.fid)) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw10 };
  if (f.sel === 3) {
    // Supported capabilities: changeable, neither saveable nor namespace specific.
    return { status: 0, result: (changeable as number[]).includes(f.fid) ? FeatureCapability.Changeable : 0 };
  }
  if (f.sel > 3) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw10 };
  const current = f.sel === 0;
  switch (f.fid) {
    case FeatureId.NumberOfQueues:
      return {
        status: 0,
        result: current ? numberOfQueuesResult(ctrl) : encodeNumberOfQueues({ submissionQueues: ctrl.maxIoQueues, completionQueues: ctrl.maxIoQueues }),
      };
    case FeatureId.AsyncEventConfig:
      return { status: 0, result: current ? ctrl.aec : 0 };
    case FeatureId.KeepAliveTimer:
      return { status: 0, result: ctrl.katoMs };
    case FeatureId.VolatileWriteCache:
      return { status: 0, result: current ? (ctrl.wce ? 1 : 0) : 1 };
    case FeatureId.HostIdentifier: {
      if ((req.sqe.cdw11 & 1) === 0) return { status: withDnr(Status.HostIdInconsistentFormat), errorLocation: SqeField.cdw11 };
      const bad = needLength(req, 16);
      if (bad) return bad;
      return { status: 0, data: Buffer.from(ctrl.hostid) };
    }
    default:
      return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw10 };
  }
}

// ---------------------------------------------------------------- Abort

function abort(req: Request, ctrl: Controller): Completion {
  const a = decodeAbort(req.sqe);
  const queue = ctrl.queues.get(a.sqid);
  // DW0 bit 0 set: the command was not aborted (it is executing or unknown).
  const aborted = queue ? queue.abortPending(a.cid) : false;
  if (aborted) ctrl.log.info({ sqid: a.sqid, cid: a.cid }, 'command aborted on host request');
  return { status: 0, result: aborted ? 0 : 1 };
}

// ---------------------------------------------------------------- vendor

function setNamespaceActive(req: Request, ctrl: Controller, subsys: Subsystem, core: TargetCore): Completion | Promise<Completion> {
  if (subsys.mode !== 'active-standby') return { status: withDnr(Status.InvalidOpcode), errorLocation: SqeField.opcode };
  const { sqe } = req;
  for (const [i, v] of [sqe.cdw10, sqe.cdw11, sqe.cdw12, sqe.cdw13, sqe.cdw14, sqe.cdw15].entries()) {
    if (v !== 0) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw10 + 4 * i };
  }
  if (!activeNamespace(subsys, sqe.nsid)) return { status: withDnr(Status.InvalidNamespaceOrFormat), errorLocation: SqeField.nsid };
  return core.setNamespaceActive(ctrl, sqe.nsid);
}

function getPersistentNsId(req: Request, subsys: Subsystem): Completion {
  const ns = activeNamespace(subsys, req.sqe.nsid);
  if (!ns) return { status: withDnr(Status.InvalidNamespaceOrFormat), errorLocation: SqeField.nsid };
  if (req.transferLength === 0) return { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr };
  const data = Buffer.alloc(PERSISTENT_NSID_DATA_LENGTH);
  ns.identity.nguid.copy(data, 0);
  return { status: 0, data };
}
