/**
 * Fabrics commands: Connect (admin and I/O queues) and Property Get/Set.
 */
import {
  CNTLID_DYNAMIC,
  CONNECT_DATA_LENGTH,
  ConnectDataOffset,
  Property,
  connectInvalidParam,
  decodeConnectData,
  encodeCap,
  encodeVersion,
  NQN_MAX_LENGTH,
} from '../shared/fabrics.ts';
import { FabricsType } from '../shared/opcodes.ts';
import { CATTR_DISABLE_SQ_FLOW_CONTROL, decodeConnect, decodeProperty, fabricsType } from '../shared/sqe.ts';
import { Status, withDnr } from '../shared/status.ts';
import { authOnConnect, executeAuthReceive, executeAuthSend } from './auth.ts';
import type { TargetCore } from './core.ts';
import { DISCOVERY_DEFAULT_KATO_MS, type Controller } from './controller.ts';
import { SqeField, type Completion, type Request } from './request.ts';
import type { SubmissionQueue } from './sq.ts';
import type { Port } from './port.ts';

/** CAP.TO: worst-case time to ready, 500 ms units (as nvmet). */
export const CAP_TIMEOUT = 15;

/** CAP.MQES of controllers on a port: the target's limit, lowered by the port's max_queue_size (as nvmet). */
export function portMqes(targetMqes: number, port: Port): number {
  const max = port.config.maxQueueSize;
  return max === null ? targetMqes : Math.min(targetMqes, max - 1);
}

const invalid = (where: 'sqe' | 'data', offset: number): Completion => ({
  status: withDnr(Status.ConnectInvalidParameters),
  result: connectInvalidParam(where, offset),
  errorLocation: where === 'sqe' ? offset : undefined,
});

export function executeFabrics(req: Request, core: TargetCore, queue: SubmissionQueue): Completion | Promise<Completion> {
  switch (fabricsType(req.sqe)) {
    case FabricsType.Connect:
      return connect(req, core, queue);
    case FabricsType.PropertyGet:
      return queue.qid === 0 && queue.controller ? propertyGet(req, queue.controller) : notOnThisQueue();
    case FabricsType.PropertySet:
      return queue.qid === 0 && queue.controller ? propertySet(req, queue.controller) : notOnThisQueue();
    case FabricsType.AuthenticationSend:
      return queue.controller ? executeAuthSend(req, queue) : notOnThisQueue();
    case FabricsType.AuthenticationReceive:
      return queue.controller ? executeAuthReceive(req, queue) : notOnThisQueue();
    default:
      // Disconnect (Linux never sends it).
      return { status: withDnr(Status.InvalidOpcode), errorLocation: 4 };
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** An NQN field of the Connect data (256 bytes, NUL-terminated) must be UTF-8 (NVMe Base 4.5). */
function utf8Problem(data: Buffer, offset: number): string | null {
  const field = data.subarray(offset, offset + 256);
  const end = field.indexOf(0);
  try {
    strictUtf8.decode(field.subarray(0, end === -1 ? field.length : end));
    return null;
  } catch {
    return 'is not valid UTF-8';
  }
}

function notOnThisQueue(): Completion {
  return { status: withDnr(Status.InvalidOpcode), errorLocation: 4 };
}

/** What makes a Connect's host NQN unusable (null: usable). Empty and prefix-less NQNs are usable (see connect). */
function hostNqnProblem(hostnqn: string): string | null {
  return Buffer.byteLength(hostnqn, 'utf8') > NQN_MAX_LENGTH ? `is longer than ${NQN_MAX_LENGTH} bytes` : null;
}

function connect(req: Request, core: TargetCore, queue: SubmissionQueue): Completion {
  if (!queue.awaitingConnect) {
    return { status: withDnr(Status.CommandSequenceError), errorLocation: SqeField.opcode };
  }
  if (req.transferLength !== CONNECT_DATA_LENGTH || !req.data) {
    return { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr };
  }
  const c = decodeConnect(req.sqe);
  if (c.recfmt !== 0) return { status: withDnr(Status.ConnectIncompatibleFormat), errorLocation: 40 };
  const data = decodeConnectData(req.data);
  // A host NQN is a key for the access check below, whatever its spelling: an empty one (SPDK's tools' default) and one
  // without the "nqn." prefix are accepted as nvmet and SPDK's target accept them. Kept: the length (SPDK's bound too)
  // and UTF-8 (decoded lossily, two hosts could become one identity).
  const hostProblem = hostNqnProblem(data.hostnqn) ?? utf8Problem(req.data, ConnectDataOffset.hostnqn);
  if (hostProblem) {
    core.log.warn({ hostnqn: data.hostnqn, peer: queue.remoteAddress }, `Connect refused: host NQN ${hostProblem}`);
    return invalid('data', ConnectDataOffset.hostnqn);
  }
  const sqFlowDisabled = (c.cattr & CATTR_DISABLE_SQ_FLOW_CONTROL) !== 0;
  if (c.sqsize === 0 || c.sqsize > portMqes(core.limits.mqes, queue.port)) return invalid('sqe', 44);

  if (c.qid === 0) {
    if (data.cntlid !== CNTLID_DYNAMIC) return invalid('data', ConnectDataOffset.cntlid);
    const isDiscovery = data.subnqn === core.discovery.nqn;
    let ctrl: Controller;
    if (isDiscovery) {
      const cntlid = core.discovery.allocateCntlid();
      if (cntlid === null) return { status: withDnr(Status.ConnectControllerBusy) };
      ctrl = core.createController({
        cntlid,
        kind: 'discovery',
        subsystem: null,
        discovery: core.discovery,
        port: queue.port,
        hostnqn: data.hostnqn,
        hostid: data.hostid,
        katoMs: c.kato || DISCOVERY_DEFAULT_KATO_MS,
      });
    } else {
      const subsys = core.findSubsystem(data.subnqn);
      if (!subsys || !queue.port.subsystems.has(subsys.nqn) || queue.port.state !== 'up') {
        core.log.warn({ subnqn: data.subnqn, port: queue.port.portid }, 'Connect refused: subsystem not exported on this port');
        return invalid('data', ConnectDataOffset.subnqn);
      }
      // As nvmet_host_allowed: the allow list, or any host. An empty host NQN matches no entry (the config takes only
      // well-formed NQNs): refused wherever a list is configured. Only hosts of a list can have a DH-HMAC-CHAP key
      // (auth.ts), so a subsystem that authenticates never admits an empty NQN. Discovery (above) admits any host, as nvmet.
      if (!subsys.isHostAllowed(data.hostnqn)) {
        core.log.warn({ hostnqn: data.hostnqn, subnqn: subsys.nqn, peer: queue.remoteAddress }, 'Connect refused: host not allowed');
        return {
          status: withDnr(Status.ConnectInvalidHost),
          result: connectInvalidParam('data', ConnectDataOffset.hostnqn),
        };
      }
      const cntlid = subsys.allocateCntlid();
      if (cntlid === null) {
        core.log.warn({ subnqn: subsys.nqn }, 'Connect refused: no controller id available (controller limit)');
        return { status: withDnr(Status.ConnectControllerBusy) };
      }
      ctrl = core.createController({
        cntlid,
        kind: 'io',
        subsystem: subsys,
        discovery: null,
        port: queue.port,
        hostnqn: data.hostnqn,
        hostid: data.hostid,
        katoMs: c.kato,
      });
    }
    queue.bind(ctrl, 0, c.sqsize, sqFlowDisabled);
    ctrl.log.info({ hostnqn: data.hostnqn, peer: queue.remoteAddress, kato: ctrl.katoMs, kind: ctrl.kind }, 'controller created');
    // Once per controller: its I/O queues must name the same host NQN and are not logged again.
    if (data.hostnqn === '') {
      const why = ctrl.kind === 'discovery' ? 'discovery admits any host' : 'the subsystem allows any host';
      ctrl.log.warn({ peer: queue.remoteAddress, kind: ctrl.kind }, `Connect with an empty host NQN accepted: ${why}`);
    } else if (!data.hostnqn.startsWith('nqn.')) {
      ctrl.log.warn(
        { peer: queue.remoteAddress, hostnqn: data.hostnqn },
        'Connect with a host NQN that does not start with "nqn." accepted, as nvmet and SPDK accept it',
      );
    }
    return { status: 0, result: ctrl.cntlid | authOnConnect(core, queue, ctrl) };
  }

  // I/O queue: joins the controller the host named.
  const subsys = core.findSubsystem(data.subnqn);
  const ctrl = subsys?.controllers.get(data.cntlid);
  if (!subsys || !ctrl || ctrl.isGone) return invalid('data', ConnectDataOffset.cntlid);
  if (ctrl.hostnqn !== data.hostnqn) return invalid('data', ConnectDataOffset.hostnqn);
  if (ctrl.port !== queue.port) return invalid('data', ConnectDataOffset.cntlid);
  if (!ctrl.ready) return { status: withDnr(Status.CommandSequenceError), errorLocation: SqeField.opcode };
  const maxQid = ctrl.grantedQueues?.nsqr ?? ctrl.maxIoQueues;
  if (c.qid > maxQid) return invalid('sqe', 42);
  if (ctrl.queues.has(c.qid)) return { status: withDnr(Status.CommandSequenceError), errorLocation: 42 };
  queue.bind(ctrl, c.qid, c.sqsize, sqFlowDisabled);
  ctrl.log.debug({ qid: c.qid, sqsize: c.sqsize, peer: queue.remoteAddress }, 'I/O queue connected');
  return { status: 0, result: ctrl.cntlid | authOnConnect(core, queue, ctrl) };
}

function propertyGet(req: Request, ctrl: Controller): Completion {
  const p = decodeProperty(req.sqe);
  if (p.attribInvalid) return { status: withDnr(Status.InvalidField), errorLocation: 40 };
  let value: bigint;
  if (p.size === 8) {
    if (p.offset !== Property.CAP) return { status: withDnr(Status.InvalidField), errorLocation: 44 };
    value = encodeCap({
      mqes: ctrl.mqes,
      cqr: true,
      ams: 0,
      to: CAP_TIMEOUT,
      dstrd: 0,
      nssrs: false,
      css: 0x01,
      mpsmin: 0,
      mpsmax: 0,
    });
  } else {
    switch (p.offset) {
      case Property.VS:
        value = BigInt(versionOf(ctrl));
        break;
      case Property.CC:
        value = BigInt(ctrl.cc);
        break;
      case Property.CSTS:
        value = BigInt(ctrl.csts);
        break;
      default:
        return { status: withDnr(Status.InvalidField), errorLocation: 44 };
    }
  }
  return { status: 0, result: Number(value & 0xffffffffn), dw1: Number(value >> 32n) };
}

function propertySet(req: Request, ctrl: Controller): Completion {
  const p = decodeProperty(req.sqe);
  if (p.attribInvalid || p.size !== 4) return { status: withDnr(Status.InvalidField), errorLocation: 40 };
  if (p.offset !== Property.CC) return { status: withDnr(Status.InvalidField), errorLocation: 44 };
  ctrl.setCc(Number(p.value & 0xffffffffn));
  return { status: 0 };
}

/** VS from the subsystem's configured version ("1.3", "2.0.1"); discovery reports 1.3. */
export function versionOf(ctrl: Controller): number {
  const text = ctrl.subsystem?.config.version ?? '1.3';
  const [major = 1, minor = 3, tertiary = 0] = text.split('.').map((n) => Number.parseInt(n, 10) || 0);
  return encodeVersion(major, minor, tertiary);
}
