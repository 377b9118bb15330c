/**
 * The discovery subsystem (well-known NQN): its controllers, the discovery log
 * (LID 70h) and the small admin command set a discovery controller serves.
 *
 * The log lists, for the host asking: the current discovery subsystem entry of
 * the port it came through, one entry per (port, subsystem) it may connect to
 * on every port that is up, and the referrals of its port. Addresses are the
 * ports' advertised ones (a NAT such as qemu's may need them to differ from
 * the listen address). Every change bumps genctr and raises the discovery-log
 * change event on connected discovery controllers.
 */
import { CntrlType, Cns, Ctratt, Lpa, Oaes, Sgls, encodeIdentifyController } from '../shared/identify.ts';
import {
  AdrFam,
  EFlags,
  LogPageId,
  SubType,
  TrType,
  Treq,
  decodeGetLogPageDwords,
  encodeDiscoveryLog,
  tcpTsas,
  type DiscoveryLogEntryInput,
} from '../shared/log-pages.ts';
import { AdminOpcode } from '../shared/opcodes.ts';
import { decodeIdentify } from '../shared/sqe.ts';
import { Status, withDnr } from '../shared/status.ts';
import { getFeatures, logPageWindow, setFeatures, KAS_100MS } from './admin-cmd.ts';
import { AERL, ERROR_LOG_ENTRIES, type Controller } from './controller.ts';
import type { TargetCore } from './core.ts';
import type { PortConfig } from './config/index.ts';
import type { Logger } from './logger.ts';
import type { Port } from './port.ts';
import { SqeField, type Completion, type Request } from './request.ts';
import type { Subsystem } from './subsystem.ts';

export interface DiscoverySource {
  ports(): Iterable<Port>;
  findSubsystem(nqn: string): Subsystem | undefined;
}

/** TREQ as nvmet advertises it: the secure channel requirement plus "SQ flow control disable supported". */
function treqOf(p: PortConfig): number {
  const secure = p.treq === 'required' ? Treq.Required : p.treq === 'not required' ? Treq.NotRequired : Treq.NotSpecified;
  return secure | Treq.DisableSqFlow;
}

function adrfamOf(a: 'ipv4' | 'ipv6'): number {
  return a === 'ipv6' ? AdrFam.Ipv6 : AdrFam.Ipv4;
}

export class DiscoveryService {
  readonly nqn: string;
  readonly controllers = new Map<number, Controller>();
  genctr = 1n;
  #nextCntlid = 1;
  readonly #source: DiscoverySource;
  readonly #log: Logger;

  constructor(nqn: string, source: DiscoverySource, log: Logger) {
    this.nqn = nqn;
    this.#source = source;
    this.#log = log;
  }

  allocateCntlid(): number | null {
    for (let i = 0; i < 0xffef; i++) {
      const id = this.#nextCntlid;
      this.#nextCntlid = id >= 0xffef ? 1 : id + 1;
      if (!this.controllers.has(id)) return id;
    }
    return null;
  }

  /** The log as the host behind this controller sees it. */
  entriesFor(ctrl: Controller): DiscoveryLogEntryInput[] {
    const here = ctrl.port.config;
    const entries: DiscoveryLogEntryInput[] = [
      {
        trtype: TrType.Tcp,
        adrfam: adrfamOf(here.adrfam),
        subtype: SubType.CurrentDiscovery,
        treq: treqOf(here),
        portid: here.portid,
        cntlid: 0xffff,
        asqsz: 32,
        eflags: EFlags.DupRetInfo | EFlags.Epcsd,
        trsvcid: String(here.advertise.trsvcid),
        traddr: here.advertise.traddr,
        subnqn: this.nqn,
        tsas: tcpTsas(),
      },
    ];
    for (const port of this.#source.ports()) {
      if (port.state !== 'up') continue;
      for (const nqn of port.subsystems) {
        const subsys = this.#source.findSubsystem(nqn);
        if (!subsys || !subsys.isHostAllowed(ctrl.hostnqn)) continue;
        entries.push({
          trtype: TrType.Tcp,
          adrfam: adrfamOf(port.config.adrfam),
          subtype: SubType.Nvme,
          treq: treqOf(port.config),
          portid: port.portid,
          cntlid: 0xffff,
          asqsz: 32,
          eflags: 0,
          trsvcid: String(port.config.advertise.trsvcid),
          traddr: port.config.advertise.traddr,
          subnqn: nqn,
          tsas: tcpTsas(),
        });
      }
    }
    for (const r of here.referrals) {
      entries.push({
        trtype: TrType.Tcp,
        adrfam: adrfamOf(r.adrfam),
        subtype: SubType.Referral,
        treq: 0,
        portid: r.portid,
        cntlid: 0xffff,
        asqsz: 32,
        eflags: 0,
        trsvcid: String(r.trsvcid),
        traddr: r.traddr,
        subnqn: this.nqn,
        tsas: tcpTsas(),
      });
    }
    return entries;
  }

  logFor(ctrl: Controller): Buffer {
    return encodeDiscoveryLog({ genctr: this.genctr, recfmt: 0, entries: this.entriesFor(ctrl) });
  }

  /** Something a host could discover changed. */
  changed(reason: string): void {
    this.genctr += 1n;
    this.#log.info({ genctr: this.genctr.toString(), reason }, 'discovery log changed');
    for (const c of this.controllers.values()) c.raiseEvent('discovery-change');
  }
}

function identifyDiscoveryController(ctrl: Controller, core: TargetCore): Buffer {
  return encodeIdentifyController({
    sn: 'discovery',
    mn: 'nvmets discovery',
    fr: '0.1.0',
    cntlid: ctrl.cntlid,
    ver: 0x00010300,
    mdts: core.limits.mdts,
    oaes: Oaes.DiscoveryLogChange,
    ctratt: Ctratt.HostId128 | Ctratt.Tbkas,
    cntrltype: CntrlType.Discovery,
    aerl: AERL,
    lpa: Lpa.ExtendedData,
    elpe: ERROR_LOG_ENTRIES - 1,
    kas: KAS_100MS,
    sqes: 0x66,
    cqes: 0x44,
    maxcmd: ctrl.mqes + 1,
    sgls: Sgls.SupportedByteAligned | Sgls.AddressAsOffset,
    subnqn: ctrl.discovery!.nqn,
    ioccsz: ctrl.port.ioccsz,
    iorcsz: 1,
    msdbd: 1,
  });
}

export function executeDiscoveryAdmin(req: Request, ctrl: Controller, core: TargetCore): Completion | Promise<Completion> {
  const discovery = ctrl.discovery!;
  switch (req.sqe.opcode) {
    case AdminOpcode.Identify: {
      const id = decodeIdentify(req.sqe);
      if (id.cns !== Cns.Controller) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw10 };
      if (req.transferLength !== 4096) return { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr };
      return { status: 0, data: identifyDiscoveryController(ctrl, core) };
    }
    case AdminOpcode.GetLogPage: {
      const lp = decodeGetLogPageDwords(req.sqe.cdw10, req.sqe.cdw11, req.sqe.cdw12, req.sqe.cdw13, req.sqe.cdw14);
      if (lp.lid !== LogPageId.Discovery) return { status: withDnr(Status.InvalidField), errorLocation: SqeField.cdw10 };
      const c = logPageWindow(req, discovery.logFor(ctrl));
      if (c.status === 0) ctrl.logRead(lp.lid, lp.rae);
      return c;
    }
    case AdminOpcode.SetFeatures:
      return setFeatures(req, ctrl);
    case AdminOpcode.GetFeatures:
      return getFeatures(req, ctrl);
    case AdminOpcode.AsyncEventRequest:
      return ctrl.parkAer(req.sqe.cid);
    case AdminOpcode.KeepAlive:
      return { status: 0 };
    default:
      return { status: withDnr(Status.InvalidOpcode), errorLocation: SqeField.opcode };
  }
}
