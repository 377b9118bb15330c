/**
 * NVM I/O commands: Read, Write, Compare, Write Zeroes, Dataset Management
 * (deallocate) and Flush, each checked against the namespace, the path's ANA
 * state, the LBA range and the transfer length before it reaches the store.
 *
 * The ANA check and the start of the store operation happen in the same
 * synchronous step, so once a path is demoted (0xFE, ANA change) no command
 * arriving on it can start; fencing then only waits for those already started.
 */
import { AnaState } from '../shared/log-pages.ts';
import { IoOpcode } from '../shared/opcodes.ts';
import { DSM_RANGE_LENGTH, decodeDsm, decodeDsmRanges, decodeRw } from '../shared/sqe.ts';
import { Status, withDnr } from '../shared/status.ts';
import type { Controller } from './controller.ts';
import type { Namespace } from './namespace.ts';
import { SqeField, type Completion, type Request } from './request.ts';
import { StoreError, type StagedWrite } from './store/index.ts';
import type { Subsystem } from './subsystem.ts';

const NSID_ALL = 0xffffffff;

/** Store failures as NVMe status: the one place this translation happens. */
export function storeErrorStatus(err: unknown, op: 'read' | 'write' | 'other'): number {
  if (err instanceof StoreError) {
    switch (err.code) {
      case 'out-of-range':
        return withDnr(Status.LbaOutOfRange);
      case 'no-space':
        return withDnr(Status.CapacityExceeded);
      case 'closed':
        return Status.NamespaceNotReady;
      case 'io':
        return op === 'read' ? Status.UnrecoveredReadError : op === 'write' ? Status.WriteFault : Status.InternalError;
    }
  }
  return Status.InternalError;
}

function failed(err: unknown, op: 'read' | 'write' | 'other'): Completion {
  return { status: storeErrorStatus(err, op) };
}

/** The path status for I/O through this port, or 0 when the path is usable. */
export function anaPathStatus(subsys: Subsystem, ctrl: Controller, ns: Namespace): number {
  switch (subsys.anaState(ctrl.port, ns.anagrpid)) {
    case AnaState.Optimized:
    case AnaState.NonOptimized:
      return 0;
    case AnaState.PersistentLoss:
      return Status.AnaPersistentLoss;
    case AnaState.Change:
      return Status.AnaTransition;
    default:
      return Status.AnaInaccessible;
  }
}

export function executeIo(req: Request, ctrl: Controller): Completion | Promise<Completion> {
  const subsys = ctrl.subsystem;
  const { sqe } = req;
  if (!subsys) return { status: withDnr(Status.InvalidOpcode), errorLocation: SqeField.opcode };
  if (sqe.opcode === IoOpcode.Flush && sqe.nsid === NSID_ALL) return flushAll(subsys, ctrl);
  const ns = subsys.namespaces.get(sqe.nsid);
  if (!ns || !ns.enabled) return { status: withDnr(Status.InvalidNamespaceOrFormat), errorLocation: SqeField.nsid };
  const pathStatus = anaPathStatus(subsys, ctrl, ns);
  if (pathStatus) return { status: pathStatus };
  switch (sqe.opcode) {
    case IoOpcode.Read:
      return read(req, ctrl, ns);
    case IoOpcode.Write:
      return write(req, ctrl, ns);
    case IoOpcode.Compare:
      return compare(req, ctrl, ns);
    case IoOpcode.WriteZeroes:
      return writeZeroes(req, ctrl, ns);
    case IoOpcode.DatasetManagement:
      return datasetManagement(req, ctrl, ns);
    case IoOpcode.Flush:
      return ns
        .execute(ctrl.port.portid, () => ns.store.flush())
        .then(
          () => ({ status: 0 }),
          (err: unknown) => failed(err, 'write'),
        );
    default:
      return { status: withDnr(Status.InvalidOpcode), errorLocation: SqeField.opcode };
  }
}

/** Range and length checks shared by Read, Write and Compare. */
function checkRw(req: Request, ns: Namespace, withData: boolean): { slba: number; nlb: number } | Completion {
  const rw = decodeRw(req.sqe);
  if (rw.slba + rw.nlb > ns.nblocks) return { status: withDnr(Status.LbaOutOfRange), errorLocation: SqeField.cdw10, lba: rw.slba };
  const bytes = rw.nlb * ns.blockSize;
  if (req.transferLength !== bytes || (withData && (!req.data || req.data.length !== bytes))) {
    return { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr };
  }
  return { slba: rw.slba, nlb: rw.nlb };
}

function read(req: Request, ctrl: Controller, ns: Namespace): Completion | Promise<Completion> {
  const r = checkRw(req, ns, false);
  if ('status' in r) return r;
  const into = req.readInto ?? undefined;
  const { store } = ns;
  const done = (data: Buffer): Completion => {
    ns.counters.readCommands += 1n;
    ns.counters.bytesRead += BigInt(data.length);
    return { status: 0, data };
  };
  const error = (err: unknown): Completion => ({ ...failed(err, 'read'), lba: r.slba });
  if (store.readSync) {
    // Over before this returns, so there is nothing for fencing to wait for: not counted by ns.execute.
    try {
      return done(store.readSync(r.slba, r.nlb, into));
    } catch (err) {
      return error(err);
    }
  }
  return ns.execute(ctrl.port.portid, () => store.read(r.slba, r.nlb, into)).then(done, error);
}

function write(req: Request, ctrl: Controller, ns: Namespace): Completion | Promise<Completion> {
  const r = checkRw(req, ns, true);
  if ('status' in r) return r;
  const data = req.data!;
  // FUA, or no volatile write cache: the data is durable before we complete.
  const durable = (req.sqe.cdw12 & 0x40000000) !== 0 || !ctrl.wce;
  const { store } = ns;
  const done = (): Completion => {
    ns.counters.writeCommands += 1n;
    ns.counters.bytesWritten += BigInt(data.length);
    return { status: 0 };
  };
  const error = (err: unknown): Completion => ({ ...failed(err, 'write'), lba: r.slba });
  if (store.writeSync && (!durable || store.flushSync)) {
    // As in read: over before this returns, nothing for fencing to wait for.
    try {
      const staged = req.staged;
      if (!(staged && staged.data === data && store.commitStagedWrite?.(staged, r.slba))) store.writeSync(r.slba, data);
      if (durable) store.flushSync!();
      return done();
    } catch (err) {
      return error(err);
    }
  }
  return ns
    .execute(ctrl.port.portid, async () => {
      await store.write(r.slba, data);
      if (durable) await store.flush();
    })
    .then(done, error);
}

/**
 * Redirect-on-write: memory of the namespace's store for a Write's data to be
 * received into (the transport asks once the data's PDU header is in), or
 * null when the command is not such a write or the store does not offer it.
 * Nothing is checked here that the write handler relies on: it checks the
 * command again when it executes, and a staged write it never commits is
 * discarded.
 */
export function stageWriteData(req: Request, ctrl: Controller | null): StagedWrite | null {
  const { sqe } = req;
  if (sqe.opcode !== IoOpcode.Write || !ctrl || ctrl.isGone) return null;
  const ns = ctrl.subsystem?.namespaces.get(sqe.nsid);
  if (!ns || !ns.enabled || !ns.store.stageWrite) return null;
  const rw = decodeRw(sqe);
  if (rw.nlb * ns.blockSize !== req.transferLength) return null;
  return ns.store.stageWrite(rw.slba, rw.nlb);
}

function compare(req: Request, ctrl: Controller, ns: Namespace): Completion | Promise<Completion> {
  const r = checkRw(req, ns, true);
  if ('status' in r) return r;
  const expected = req.data!;
  return ns
    .execute(ctrl.port.portid, () => ns.store.read(r.slba, r.nlb))
    .then(
      (actual) => (actual.equals(expected) ? { status: 0 } : { status: withDnr(Status.CompareFailure), lba: r.slba }),
      (err: unknown) => ({ ...failed(err, 'read'), lba: r.slba }),
    );
}

function writeZeroes(req: Request, ctrl: Controller, ns: Namespace): Completion | Promise<Completion> {
  const rw = decodeRw(req.sqe);
  if (rw.slba + rw.nlb > ns.nblocks) return { status: withDnr(Status.LbaOutOfRange), errorLocation: SqeField.cdw10, lba: rw.slba };
  return ns
    .execute(ctrl.port.portid, () => (rw.deac ? ns.store.deallocate(rw.slba, rw.nlb) : ns.store.writeZeroes(rw.slba, rw.nlb)))
    .then(
      () => {
        ns.counters.writeCommands += 1n;
        return { status: 0 };
      },
      (err: unknown) => ({ ...failed(err, 'write'), lba: rw.slba }),
    );
}

function datasetManagement(req: Request, ctrl: Controller, ns: Namespace): Completion | Promise<Completion> {
  const dsm = decodeDsm(req.sqe);
  const need = dsm.nr * DSM_RANGE_LENGTH;
  if (req.transferLength < need || !req.data || req.data.length < need) {
    return { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr };
  }
  // Only deallocate has an effect; the other attributes are hints.
  if (!dsm.deallocate) return { status: 0 };
  const ranges = decodeDsmRanges(req.data, dsm.nr);
  for (const r of ranges) {
    if (r.nlb === 0) continue;
    if (r.slba + r.nlb > ns.nblocks) return { status: withDnr(Status.LbaOutOfRange), lba: r.slba };
  }
  return ns
    .execute(ctrl.port.portid, async () => {
      for (const r of ranges) if (r.nlb > 0) await ns.store.deallocate(r.slba, r.nlb);
    })
    .then(
      () => ({ status: 0 }),
      (err: unknown) => failed(err, 'write'),
    );
}

function flushAll(subsys: Subsystem, ctrl: Controller): Promise<Completion> {
  const namespaces = [...subsys.namespaces.values()].filter((ns) => ns.enabled && anaPathStatus(subsys, ctrl, ns) === 0);
  return Promise.all(namespaces.map((ns) => ns.execute(ctrl.port.portid, () => ns.store.flush()))).then(
    () => ({ status: 0 }),
    (err: unknown) => failed(err, 'write'),
  );
}
