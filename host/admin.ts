/**
 * Admin-queue procedures shared by I/O and discovery controllers: commands
 * that must succeed (a failure is thrown as a HostError), the enable and
 * shutdown handshakes, Identify and Get Log Page.
 */
import { result64 } from '../shared/cqe.ts';
import { Property, ShutdownNotification, ShutdownStatus, decodeCap, decodeCc, decodeCsts, encodeCc, type Cap } from '../shared/fabrics.ts';
import { IDENTIFY_DATA_SIZE } from '../shared/identify.ts';
import { encodeGetLogPageDwords, type GetLogPageParams } from '../shared/log-pages.ts';
import { adminOpcodeName } from '../shared/opcodes.ts';
import { getLogPageCommand, identifyCommand, propertyGetCommand, propertySetCommand, type Sqe } from '../shared/sqe.ts';
import { HostError } from './errors.ts';
import type { QueueOutcome, SubmitOptions, TcpQueue } from './tcp-queue.ts';
import { sleepOn } from '../shared/clock.ts';

export type Completed = Extract<QueueOutcome, { kind: 'completed' }>;

/** Run a command that must succeed: path errors and non-zero status are thrown. */
export async function mustComplete(q: TcpQueue, sqe: Sqe, opts: SubmitOptions, what = adminOpcodeName(sqe.opcode)): Promise<Completed> {
  const r = await q.submit(sqe, opts);
  if (r.kind === 'path-error') throw new HostError('CONNECTION_CLOSED', `${what}: ${r.reason}`);
  if (r.status !== 0) throw HostError.commandFailed(what, r.status);
  return r;
}

export async function propertyGet(q: TcpQueue, offset: number, size: 4 | 8, timeoutMs: number): Promise<bigint> {
  const r = await mustComplete(q, propertyGetCommand(offset, size), { timeoutMs }, `Property Get 0x${offset.toString(16)}`);
  return size === 8 ? result64({ result: r.result, dw1: r.dw1, sqhd: 0, sqid: 0, cid: 0, status: 0 }) : BigInt(r.result >>> 0);
}

export async function propertySet(q: TcpQueue, offset: number, value: number, timeoutMs: number): Promise<void> {
  await mustComplete(q, propertySetCommand(offset, value, 4), { timeoutMs }, `Property Set 0x${offset.toString(16)}`);
}

/**
 * Enable handshake as Linux's nvme_enable_ctrl: Get CAP (MPSMIN must allow
 * 4 KiB pages), Set CC (NVM command set, MPS 0, IOSQES 6, IOCQES 4, EN), poll
 * CSTS.RDY for up to CAP.TO x 500 ms, Get VS.
 */
export async function enableController(q: TcpQueue, timeoutMs: number): Promise<{ cap: Cap; vs: number }> {
  const cap = decodeCap(await propertyGet(q, Property.CAP, 8, timeoutMs));
  if (cap.mpsmin !== 0) throw new HostError('CONTROLLER_NOT_READY', `CAP.MPSMIN ${cap.mpsmin}: 4 KiB pages not supported`);
  const cc = encodeCc({ en: true, css: 0, mps: 0, ams: 0, shn: 0, iosqes: 6, iocqes: 4 });
  await propertySet(q, Property.CC, cc, timeoutMs);
  const readyWithin = Math.max(1, cap.to) * 500;
  await pollCsts(
    q,
    timeoutMs,
    readyWithin,
    (c) => {
      if (c.cfs) throw new HostError('CONTROLLER_NOT_READY', 'controller fatal status (CSTS.CFS) after enable');
      return c.rdy;
    },
    `CSTS.RDY not set within CAP.TO (${readyWithin} ms)`,
  );
  const vs = Number(await propertyGet(q, Property.VS, 4, timeoutMs));
  return { cap, vs };
}

/** Normal shutdown: CC.SHN = 01b, wait for CSTS.SHST = 10b. */
export async function shutdownController(q: TcpQueue, timeoutMs: number, shutdownWithinMs: number): Promise<void> {
  const cc = decodeCc(Number(await propertyGet(q, Property.CC, 4, timeoutMs)));
  await propertySet(q, Property.CC, encodeCc({ ...cc, shn: ShutdownNotification.Normal }), timeoutMs);
  await pollCsts(q, timeoutMs, shutdownWithinMs, (c) => c.shst === ShutdownStatus.Complete, `CSTS.SHST not complete within ${shutdownWithinMs} ms`);
}

async function pollCsts(q: TcpQueue, timeoutMs: number, withinMs: number, done: (c: ReturnType<typeof decodeCsts>) => boolean, failure: string): Promise<void> {
  const clock = q.clock;
  const deadline = clock.now() + withinMs;
  let wait = 1;
  for (;;) {
    const csts = decodeCsts(Number(await propertyGet(q, Property.CSTS, 4, timeoutMs)));
    if (done(csts)) return;
    if (clock.now() >= deadline) throw new HostError('CONTROLLER_NOT_READY', failure);
    await sleepOn(clock, wait);
    wait = Math.min(wait * 2, 100);
  }
}

export async function identify(q: TcpQueue, cns: number, nsid: number, timeoutMs: number, csi = 0): Promise<Buffer> {
  const r = await mustComplete(q, identifyCommand({ cns, nsid, csi }), { readLength: IDENTIFY_DATA_SIZE, timeoutMs }, `Identify CNS ${cns} NSID ${nsid}`);
  return r.data!;
}

export async function getLogPage(q: TcpQueue, p: GetLogPageParams, nsid: number, timeoutMs: number): Promise<Buffer> {
  const dw = encodeGetLogPageDwords(p);
  const r = await mustComplete(
    q,
    getLogPageCommand({ nsid, ...dw }, p.numdBytes),
    { readLength: p.numdBytes, timeoutMs },
    `Get Log Page 0x${p.lid.toString(16)}`,
  );
  return r.data!;
}
